//! `choir up`.

/// Flags of `choir up`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

/// Runs `choir up`.
pub(crate) fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("choir up is being built (issue #6)")
}
