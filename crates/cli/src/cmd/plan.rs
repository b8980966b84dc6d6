//! `choir plan`.

/// Flags of `choir plan`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

/// Runs `choir plan`.
pub(crate) fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("choir plan is being built (issue #5)")
}
