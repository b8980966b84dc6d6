//! `choir chaos`.

/// Flags of `choir chaos`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

/// Runs `choir chaos`.
pub(crate) fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("choir chaos is being built (issue #7)")
}
