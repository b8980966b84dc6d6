//! `choir collective`.

/// Flags of `choir collective`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

/// Runs `choir collective`.
pub(crate) fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("choir collective is being built (issue #3)")
}
