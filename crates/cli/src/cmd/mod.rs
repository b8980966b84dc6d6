//! One module per subcommand: its flags (`Args`) and `run`.

pub(crate) mod model;
pub(crate) mod presets;
pub(crate) mod scale;
