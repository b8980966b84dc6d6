//! `choir coordinator`.

/// Flags of `choir coordinator`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

/// Runs `choir coordinator`.
pub(crate) fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("choir coordinator is being built (issue #6)")
}
