//! `choir worker`.

/// Flags of `choir worker`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

/// Runs `choir worker`.
pub(crate) fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("choir worker is being built (issue #6)")
}
