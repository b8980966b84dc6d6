//! Real text found on this machine, gathered deterministically, for the heavy equality test, the `compare`
//! example and `build_fixture`.
//!
//! Every source is optional: a missing directory just contributes nothing. Files are visited in sorted
//! order and each source is capped, so the same machine always yields the same corpus.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// One source of text: a label and the text.
pub(crate) struct Source {
    /// What it is and where it came from.
    pub(crate) label: String,
    /// The text.
    pub(crate) text: String,
}

/// Files under `dir` (recursively) whose name ends with one of `suffixes`, sorted.
pub(crate) fn files_under(dir: &Path, suffixes: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() && suffixes.iter().any(|s| p.to_string_lossy().ends_with(s)) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Concatenates the UTF-8 files among `paths` until `cap_bytes`.
pub(crate) fn concat_files(paths: &[PathBuf], cap_bytes: usize) -> String {
    let mut text = String::new();
    for p in paths {
        if text.len() >= cap_bytes {
            break;
        }
        if let Ok(t) = std::fs::read_to_string(p) {
            text.push_str(&t);
            text.push('\n');
        }
    }
    text
}

/// Replaces glibc's `<U0930>` escapes by the characters they name.
pub(crate) fn decode_glibc_escapes(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(p) = rest.find("<U") {
        out.push_str(&rest[..p]);
        let tail = &rest[p + 2..];
        match tail.find('>').and_then(|e| u32::from_str_radix(&tail[..e], 16).ok().map(|cp| (e, cp))) {
            Some((e, cp)) => {
                out.extend(char::from_u32(cp));
                rest = &tail[e + 1..];
            }
            None => {
                out.push_str("<U");
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The quoted strings of the glibc locale files (month and day names, yes/no words, formats), one locale per
/// line, at most `cap_per_file` bytes of each.
pub(crate) fn glibc_locale_strings(dir: &Path, cap_per_file: usize) -> String {
    let mut text = String::new();
    for p in files_under(dir, &[""]) {
        let Ok(src) = std::fs::read_to_string(&p) else { continue };
        let mut line_out = Vec::new();
        for line in src.lines().filter(|l| !l.starts_with('%')) {
            let mut parts = line.split('"');
            parts.next();
            for (i, quoted) in parts.enumerate() {
                if i % 2 == 0 && quoted.contains("<U") {
                    line_out.push(decode_glibc_escapes(quoted).replace("//", "/"));
                }
            }
        }
        if !line_out.is_empty() {
            let mut line = line_out.join(" ");
            let mut end = line.len().min(cap_per_file);
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            line.truncate(end);
            text.push_str(&line);
            text.push('\n');
        }
    }
    text
}

/// The translated strings (msgstr) of GNU gettext `.mo` catalogs that declare UTF-8, at most
/// `cap_per_file` bytes from each.
pub(crate) fn mo_translations(paths: &[PathBuf], cap_per_file: usize) -> String {
    let mut text = String::new();
    for p in paths {
        let Ok(data) = std::fs::read(p) else { continue };
        let u32_at =
            |o: usize| data.get(o..o + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
        if u32_at(0) != Some(0x9504_12de) {
            continue;
        }
        let (Some(n), Some(table)) = (u32_at(8), u32_at(16)) else { continue };
        let mut strings = Vec::new();
        for i in 0..n {
            let (Some(len), Some(off)) = (u32_at(table + 8 * i), u32_at(table + 8 * i + 4)) else { break };
            let Some(bytes) = data.get(off..off + len) else { break };
            if let Ok(s) = std::str::from_utf8(bytes) {
                strings.push(s.replace('\0', "\n"));
            }
        }
        // The first entry is the catalog header; keep only catalogs whose header says UTF-8.
        if strings.first().is_some_and(|h| h.to_ascii_lowercase().contains("charset=utf-8")) {
            let mut from_file = String::new();
            for s in &strings[1..] {
                from_file.push_str(s);
                from_file.push('\n');
            }
            text.push_str(&truncate_at_line(&from_file, cap_per_file));
        }
    }
    text
}

/// The machine's home directory for the cargo registry sources, if any.
pub(crate) fn cargo_registry_src() -> Option<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    let src = home.join("registry").join("src");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&src).ok()?.flatten().map(|e| e.path()).collect();
    dirs.sort();
    dirs.into_iter().next()
}

/// The newest Python 3 standard library found (under pyenv or /usr/lib).
pub(crate) fn python_stdlib() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(home) = std::env::var_os("HOME") {
        let versions = PathBuf::from(home).join(".pyenv").join("versions");
        let found = files_under(&versions, &["/textwrap.py"]);
        candidates.extend(found.into_iter().filter_map(|p| p.parent().map(Path::to_path_buf)));
    }
    for v in ["python3.13", "python3.12", "python3.11"] {
        candidates.push(PathBuf::from("/usr/lib").join(v));
    }
    let minor = |p: &PathBuf| -> Option<u32> {
        let name = p.file_name()?.to_str()?;
        name.strip_prefix("python3.")?.parse().ok()
    };
    candidates
        .into_iter()
        .filter(|p| p.join("textwrap.py").exists())
        .filter_map(|p| minor(&p).map(|m| (m, p)))
        .max()
        .map(|(_, p)| p)
}

/// The longest prefix of `text` that ends a line and is at most `cap` bytes (the whole text if shorter).
pub(crate) fn truncate_at_line(text: &str, cap: usize) -> String {
    if text.len() <= cap {
        return text.to_owned();
    }
    let mut end = cap;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let end = text[..end].rfind('\n').map_or(end, |p| p + 1);
    text[..end].to_owned()
}

/// Varied real text from this machine, about `cap_bytes` in all: English prose, Rust and Python code,
/// licences, translations in many scripts, CJK test texts and emoji.
pub(crate) fn machine_corpus(cap_bytes: usize) -> Vec<Source> {
    let share = cap_bytes / 10;
    let mut sources = Vec::new();
    let mut add = |label: &str, text: String, budget: usize| {
        let text = truncate_at_line(&text, budget);
        if !text.is_empty() {
            sources.push(Source { label: label.to_owned(), text });
        }
    };
    let shakespeare = std::fs::read_to_string("/work/shared/data/tinyshakespeare.txt").unwrap_or_default();
    add("English prose: Tiny Shakespeare (/work/shared/data)", shakespeare, share * 2);
    if let Some(src) = cargo_registry_src() {
        add(
            "Rust code: *.rs in the cargo registry",
            concat_files(&files_under(&src, &[".rs"]), share * 2),
            share * 2,
        );
        add("Markdown: *.md in the cargo registry", concat_files(&files_under(&src, &[".md"]), share), share);
    }
    if let Some(py) = python_stdlib() {
        let mut py_files = files_under(&py, &[".py"]);
        py_files.retain(|p| !p.to_string_lossy().contains("site-packages"));
        add("Python code: the standard library", concat_files(&py_files, share), share);
        let cjk = files_under(&py.join("test").join("cjkencodings"), &["-utf8.txt"]);
        add(
            "Chinese/Japanese/Korean: CPython test/cjkencodings/*-utf8.txt",
            concat_files(&cjk, share),
            share,
        );
        let rich = py.join("site-packages/pip/_vendor/rich");
        let emoji = concat_files(&[rich.join("_emoji_codes.py"), rich.join("_spinners.py")], share);
        add("emoji: pip's vendored rich _emoji_codes.py, _spinners.py", emoji, share / 2);
    }
    let licences = concat_files(&files_under(Path::new("/usr/share/common-licenses"), &[""]), share);
    add("licence texts: /usr/share/common-licenses", licences, share / 2);
    let locales = Path::new("/usr/share/i18n/locales");
    let per_locale = (share / files_under(locales, &[""]).len().max(1)).max(100);
    add("many scripts: glibc locale strings", glibc_locale_strings(locales, per_locale), share);
    let mo = files_under(Path::new("/usr/share/locale"), &["/glib20.mo", "/coreutils.mo"]);
    let per_file = (share * 2 / mo.len().max(1)).max(1024);
    add("translations in ~100 languages: glib20.mo, coreutils.mo", mo_translations(&mo, per_file), share * 2);
    sources
}
