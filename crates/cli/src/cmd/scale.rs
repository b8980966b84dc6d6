//! `choir scale`.

/// Flags of `choir scale`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

/// Runs `choir scale`.
pub(crate) fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("choir scale is being built (issue #2)")
}
