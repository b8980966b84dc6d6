//! The end-to-end suite: one test binary, one module per area.

mod support;

mod chaos;
mod cli;
mod collective;
mod daemons;
mod model;
mod nn;
mod plan;
mod recovery;
mod sim;
mod tokenize;
mod topology;
