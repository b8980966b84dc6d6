//! `choir topology`.

/// Flags of `choir topology`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

/// Runs `choir topology`.
pub(crate) fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("choir topology is being built (issue #3)")
}
