//! Text to numbers.

/// A quantity that could not be read. The message names the text and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read {text:?} as {expected}")]
pub struct ParseError {
    /// The text as given.
    pub text: String,
    /// What a valid value looks like.
    pub expected: &'static str,
}

fn err(text: &str, expected: &'static str) -> ParseError {
    ParseError { text: text.to_owned(), expected }
}

/// Splits `"1.5T"` into `(1.5, "T")`. Accepts scientific notation (`7e9`).
fn split_number(text: &str) -> Option<(f64, &str)> {
    let t = text.trim();
    // The numeric prefix ends at the first character that cannot continue a float; an `e` only continues it
    // when a digit (or sign and digit) follows, so that `5e9` is a number but `5eB` is not.
    let bytes = t.as_bytes();
    let mut end = 0;
    while end < bytes.len() {
        let c = bytes[end];
        let ok = c.is_ascii_digit()
            || c == b'.'
            || ((c == b'+' || c == b'-') && (end == 0 || matches!(bytes[end - 1], b'e' | b'E')))
            || ((c == b'e' || c == b'E')
                && end > 0
                && bytes.get(end + 1).is_some_and(|n| n.is_ascii_digit() || *n == b'-' || *n == b'+'));
        if !ok {
            break;
        }
        end += 1;
    }
    let value: f64 = t[..end].parse().ok()?;
    Some((value, t[end..].trim()))
}

/// Reads a count such as `124M`, `500B`, `1.5T`, `7e9` or `8192`. Suffixes are decimal (`B` = billion).
pub fn parse_count(text: &str) -> Result<f64, ParseError> {
    const EXPECTED: &str = "a count like 7e9, 124M, 500B or 1.5T";
    let (value, suffix) = split_number(text).ok_or_else(|| err(text, EXPECTED))?;
    let scale = match suffix {
        "" => 1.0,
        "k" | "K" => 1e3,
        "m" | "M" => 1e6,
        "b" | "B" | "g" | "G" => 1e9,
        "t" | "T" => 1e12,
        "p" | "P" => 1e15,
        _ => return Err(err(text, EXPECTED)),
    };
    let out = value * scale;
    if !out.is_finite() || out < 0.0 {
        return Err(err(text, EXPECTED));
    }
    Ok(out)
}

/// Reads a byte size such as `8`, `1K`, `128MiB`, `8G`, `80GB`. Bare letters and `*iB` are binary; `*B` decimal.
pub fn parse_bytes(text: &str) -> Result<u64, ParseError> {
    const EXPECTED: &str = "a byte size like 4096, 1K, 128MiB, 8G or 80GB";
    let (value, suffix) = split_number(text).ok_or_else(|| err(text, EXPECTED))?;
    let scale: f64 = match suffix {
        "" | "B" => 1.0,
        "K" | "k" | "KiB" => 1024.0,
        "M" | "MiB" => 1024.0 * 1024.0,
        "G" | "GiB" => 1024.0 * 1024.0 * 1024.0,
        "T" | "TiB" => 1024.0_f64.powi(4),
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        _ => return Err(err(text, EXPECTED)),
    };
    let out = value * scale;
    if !out.is_finite() || out < 0.0 || out > u64::MAX as f64 {
        return Err(err(text, EXPECTED));
    }
    Ok(out.round() as u64)
}

/// Reads `MIN:MAX` (e.g. `1K:8G`) or a single size as a byte range, doubling from MIN to MAX as nccl-tests
/// does with `-f 2`. Returns the sizes in ascending order.
pub fn parse_size_range(text: &str) -> Result<Vec<u64>, ParseError> {
    const EXPECTED: &str = "a size range like 1K:8G (doubling from the first to the last) or one size";
    let (lo, hi) = match text.split_once(':') {
        Some((a, b)) => (parse_bytes(a)?, parse_bytes(b)?),
        None => {
            let s = parse_bytes(text)?;
            (s, s)
        }
    };
    if lo == 0 || lo > hi {
        return Err(err(text, EXPECTED));
    }
    let mut sizes = Vec::new();
    let mut s = lo;
    while s <= hi {
        sizes.push(s);
        match s.checked_mul(2) {
            Some(next) => s = next,
            None => break,
        }
    }
    Ok(sizes)
}

/// Reads a duration such as `10s`, `30m`, `1.5h`, `54d`, `500ms`; a bare number is seconds. Returns seconds.
pub fn parse_duration(text: &str) -> Result<f64, ParseError> {
    const EXPECTED: &str = "a duration like 500ms, 10s, 30m, 2h or 54d";
    let (value, suffix) = split_number(text).ok_or_else(|| err(text, EXPECTED))?;
    let scale = match suffix {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "" | "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => return Err(err(text, EXPECTED)),
    };
    let out = value * scale;
    if !out.is_finite() || out < 0.0 {
        return Err(err(text, EXPECTED));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_accept_suffixes_and_scientific_notation() {
        assert_eq!(parse_count("500B").unwrap(), 5e11);
        assert_eq!(parse_count("1.5T").unwrap(), 1.5e12);
        assert_eq!(parse_count("7e9").unwrap(), 7e9);
        assert_eq!(parse_count("124M").unwrap(), 1.24e8);
        assert_eq!(parse_count(" 42 ").unwrap(), 42.0);
        assert!(parse_count("5x").is_err());
        assert!(parse_count("").is_err());
        assert!(parse_count("-3").is_err());
    }

    #[test]
    fn bytes_distinguish_decimal_and_binary() {
        assert_eq!(parse_bytes("1K").unwrap(), 1024);
        assert_eq!(parse_bytes("8G").unwrap(), 8 << 30);
        assert_eq!(parse_bytes("128MiB").unwrap(), 128 << 20);
        assert_eq!(parse_bytes("80GB").unwrap(), 80_000_000_000);
        assert!(parse_bytes("3 parsecs").is_err());
    }

    #[test]
    fn size_range_doubles() {
        assert_eq!(parse_size_range("1K:8K").unwrap(), vec![1024, 2048, 4096, 8192]);
        assert_eq!(parse_size_range("64").unwrap(), vec![64]);
        assert!(parse_size_range("8K:1K").is_err());
        assert!(parse_size_range("0:1K").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30m").unwrap(), 1800.0);
        assert_eq!(parse_duration("500ms").unwrap(), 0.5);
        assert_eq!(parse_duration("54d").unwrap(), 54.0 * 86400.0);
        assert_eq!(parse_duration("12").unwrap(), 12.0);
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn error_names_text_and_expectation() {
        let e = parse_count("lots").unwrap_err();
        assert_eq!(e.to_string(), "cannot read \"lots\" as a count like 7e9, 124M, 500B or 1.5T");
    }
}
