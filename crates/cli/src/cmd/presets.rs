//! `choir presets`.

/// Flags of `choir presets`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

/// Runs `choir presets`.
pub(crate) fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("choir presets is being built (issue #2)")
}
