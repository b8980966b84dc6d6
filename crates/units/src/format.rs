//! Numbers to text, with units people read.

/// `124439808` → `"124.44 M"`, `8.03e9` → `"8.03 B"`, `1.2e12` → `"1.20 T"`. Decimal suffixes; `B` = billion.
pub fn format_count(value: f64) -> String {
    scaled(value, &[(1e15, "P"), (1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")], "")
}

/// Decimal bytes: `1.5e9` → `"1.50 GB"`.
pub fn format_bytes(bytes: f64) -> String {
    scaled(bytes, &[(1e15, "PB"), (1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "KB")], "B")
}

/// Binary bytes: `1 << 30` → `"1.00 GiB"`.
pub fn format_bytes_binary(bytes: f64) -> String {
    const K: f64 = 1024.0;
    scaled(
        bytes,
        &[(K * K * K * K * K, "PiB"), (K * K * K * K, "TiB"), (K * K * K, "GiB"), (K * K, "MiB"), (K, "KiB")],
        "B",
    )
}

/// FLOP counts: `3.1e23` → `"3.10e23 FLOP"`; small counts get SI prefixes (`"1.20 TFLOP"`).
pub fn format_flops(flop: f64) -> String {
    if flop >= 1e18 {
        format!("{flop:.2e} FLOP")
    } else {
        scaled(
            flop,
            &[(1e15, "PFLOP"), (1e12, "TFLOP"), (1e9, "GFLOP"), (1e6, "MFLOP"), (1e3, "KFLOP")],
            "FLOP",
        )
    }
}

/// A rate with a unit: `format_rate(4.5e14, "FLOP/s")` → `"450.00 TFLOP/s"`.
pub fn format_rate(value: f64, unit: &str) -> String {
    for (scale, prefix) in [(1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")] {
        if value.abs() >= scale {
            return format!("{:.2} {prefix}{unit}", value / scale);
        }
    }
    format!("{value:.2} {unit}")
}

/// Seconds in the most readable unit: `0.000012` → `"12.0 µs"`, `93.4` → `"1.56 min"`, `4.1e6` → `"47.45 d"`.
pub fn format_duration(seconds: f64) -> String {
    let s = seconds.abs();
    if s == 0.0 {
        "0 s".to_owned()
    } else if s < 1e-6 {
        format!("{:.1} ns", seconds * 1e9)
    } else if s < 1e-3 {
        format!("{:.1} µs", seconds * 1e6)
    } else if s < 1.0 {
        format!("{:.2} ms", seconds * 1e3)
    } else if s < 120.0 {
        format!("{seconds:.3} s")
    } else if s < 7200.0 {
        format!("{:.2} min", seconds / 60.0)
    } else if s < 2.0 * 86400.0 {
        format!("{:.2} h", seconds / 3600.0)
    } else {
        format!("{:.2} d", seconds / 86400.0)
    }
}

fn scaled(value: f64, table: &[(f64, &str)], base: &str) -> String {
    for &(scale, suffix) in table {
        if value.abs() >= scale {
            return format!("{:.2} {suffix}", value / scale);
        }
    }
    if base.is_empty() { format!("{value}") } else { format!("{value} {base}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(format_count(124_439_808.0), "124.44 M");
        assert_eq!(format_count(8.03e9), "8.03 B");
        assert_eq!(format_bytes(1.5e9), "1.50 GB");
        assert_eq!(format_bytes_binary((1u64 << 30) as f64), "1.00 GiB");
        assert_eq!(format_rate(4.5e14, "FLOP/s"), "450.00 TFLOP/s");
        assert_eq!(format_duration(12e-6), "12.0 µs");
        assert_eq!(format_duration(93.4), "93.400 s");
        assert_eq!(format_duration(4.1e6), "47.45 d");
        assert_eq!(format_flops(3.1e23), "3.10e23 FLOP");
        assert_eq!(format_count(12.0), "12");
    }
}
