//! Resolving the inputs every simulating command shares: a model (preset or `config.json`) and a cluster
//! (preset or TOML file). Errors are bad input (exit 2) and name the file or list the valid names.

use std::path::Path;

use crate::exit::bad_input;
use crate::output::read_text;

/// A model preset by name, else a Hugging Face `config.json` by path.
pub(crate) fn load_model(name: &str) -> anyhow::Result<model::ModelSpec> {
    let path = Path::new(name);
    if name.ends_with(".json") || (path.exists() && model::preset(name).is_err()) {
        let text = read_text(path)?;
        return model::from_hf_config(&text).map_err(|e| bad_input(format!("{}: {e}", path.display())));
    }
    model::preset(name).map_err(bad_input)
}

/// A cluster preset by name, else a cluster TOML file by path.
pub(crate) fn load_cluster_spec(name: &str) -> anyhow::Result<topology::ClusterSpec> {
    if let Some(spec) = topology::try_preset(name) {
        return spec.map_err(bad_input);
    }
    let path = Path::new(name);
    if !path.exists() {
        let known: Vec<_> = topology::PRESETS.iter().map(|p| p.name).collect();
        return Err(bad_input(format!(
            "{name}: no such file, and not a cluster preset: expected a cluster TOML file or one of {}",
            known.join(", ")
        )));
    }
    topology::from_toml(&read_text(path)?, &path.display().to_string()).map_err(bad_input)
}
