//! `choir tokenize`.

/// Subcommands of `choir tokenize`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Encode stdin.
    Encode,
}

/// Runs `choir tokenize`.
pub(crate) fn run(_command: Command) -> anyhow::Result<()> {
    anyhow::bail!("choir tokenize is being built (issue #8)")
}
