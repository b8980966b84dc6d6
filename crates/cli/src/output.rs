//! Writing results: JSON to stdout, files atomically.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

/// Prints a value as pretty JSON on stdout, followed by a newline.
pub(crate) fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value).context("serialising the report as JSON")?;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}") {
        // A closed pipe (`choir ... --json | head`) is the reader's choice, not a failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing JSON to stdout"),
    }
}

/// Writes `contents` to `path` so that the file is either the old one or the complete new one: write a temporary
/// file beside it, fsync, rename over the target, then fsync the directory.
pub(crate) fn write_atomic(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().with_context(|| format!("{}: not a file path", path.display()))?;
    let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            // Directory fsync makes the rename durable; not every platform allows opening a directory.
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}

/// Reads a whole text file, naming the file in the error.
pub(crate) fn read_text(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path)
        .with_context(|| format!("reading {}", path.display()))
        .map_err(|e| crate::exit::bad_input(format!("{e:#}")))
}
