//! `choir model`.

/// Flags of `choir model`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

/// Runs `choir model`.
pub(crate) fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("choir model is being built (issue #2)")
}
