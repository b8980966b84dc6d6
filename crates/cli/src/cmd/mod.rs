//! One module per subcommand: its flags (`Args`) and `run`.

pub(crate) mod attention;
pub(crate) mod chaos;
pub(crate) mod collective;
pub(crate) mod coordinator;
pub(crate) mod generate;
pub(crate) mod inject;
pub(crate) mod model;
pub(crate) mod plan;
pub(crate) mod presets;
pub(crate) mod scale;
pub(crate) mod sim;
pub(crate) mod tokenize;
pub(crate) mod topology;
pub(crate) mod train;
pub(crate) mod up;
pub(crate) mod validate;
pub(crate) mod worker;
