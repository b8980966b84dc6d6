//! `choir generate`.

/// Flags of `choir generate`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

/// Runs `choir generate`.
pub(crate) fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("choir generate is being built (issue #8)")
}
