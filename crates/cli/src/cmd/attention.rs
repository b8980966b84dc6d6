//! `choir attention`.

/// Flags of `choir attention`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

/// Runs `choir attention`.
pub(crate) fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("choir attention is being built (issue #8)")
}
