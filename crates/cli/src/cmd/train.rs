//! `choir train`.

/// Flags of `choir train`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

/// Runs `choir train`.
pub(crate) fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("choir train is being built (issue #8)")
}
