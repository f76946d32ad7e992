//! Durations as staff type them: a whole number with a unit, `30s`, `15m`, `96h`, `4d`.

const UNITS: [(char, u64); 4] = [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];

/// Parse a duration into seconds. Used as a clap value parser, so clap names the option
/// (`invalid value '5 weeks' for '--expiry <DURATION>': ...`).
pub fn parse_duration(text: &str) -> Result<u64, String> {
    const HINT: &str = "expected a whole number with unit s, m, h or d, e.g. 30s, 15m, 96h, 4d";
    let s = text.trim();
    let unit = s.chars().last().ok_or_else(|| format!("empty duration: {HINT}"))?;
    let Some((_, scale)) = UNITS.iter().find(|(u, _)| *u == unit.to_ascii_lowercase()) else {
        return Err(HINT.to_owned());
    };
    let number = &s[..s.len() - unit.len_utf8()];
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HINT.to_owned());
    }
    let n: u64 = number.parse().map_err(|_| format!("{number} is too large"))?;
    if n == 0 {
        return Err("must be longer than zero".to_owned());
    }
    n.checked_mul(*scale).ok_or_else(|| format!("{s} is too long"))
}

/// Seconds for people, in the largest unit that divides them: `4d`, `90m`, `45s`.
pub fn format_duration(secs: u64) -> String {
    if secs == 0 {
        return "0s".to_owned();
    }
    let (unit, scale) = UNITS.iter().find(|(_, scale)| secs.is_multiple_of(*scale)).copied().unwrap_or(('s', 1));
    format!("{}{unit}", secs / scale)
}

/// A measured time span for people, in its two largest units: `2d 3h`, `5h 20m`, `45m`,
/// `12s`; `-` for zero (no data).
pub fn format_span(secs: f64) -> String {
    if !secs.is_finite() || secs <= 0.0 {
        return "-".to_owned();
    }
    if secs < 1.0 {
        return "<1s".to_owned();
    }
    let total = secs.round() as u64;
    let Some(first) = UNITS.iter().position(|(_, scale)| total >= *scale) else {
        return "<1s".to_owned();
    };
    let (unit, scale) = UNITS[first];
    let mut text = format!("{}{unit}", total / scale);
    if let Some((next_unit, next_scale)) = UNITS.get(first + 1) {
        let rest = (total % scale) / next_scale;
        if rest > 0 {
            text.push_str(&format!(" {rest}{next_unit}"));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_durations() {
        assert_eq!(parse_duration("30s"), Ok(30));
        assert_eq!(parse_duration("15m"), Ok(900));
        assert_eq!(parse_duration("96h"), Ok(345_600));
        assert_eq!(parse_duration("4d"), Ok(345_600));
        assert_eq!(parse_duration(" 4D "), Ok(345_600));
    }

    #[test]
    fn bad_durations() {
        for bad in ["", "5", "d", "5 weeks", "5w", "-5d", "1.5h", "4 d", "h4", "5dd", "ünits"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains("s, m, h or d") || e.contains("empty"), "{bad:?}: {e}");
        }
        assert!(parse_duration("0s").unwrap_err().contains("zero"));
        assert!(parse_duration("99999999999999999999d").unwrap_err().contains("too large"));
        assert!(parse_duration("999999999999999999d").unwrap_err().contains("too long"));
    }

    #[test]
    fn spans() {
        assert_eq!(format_span(0.0), "-");
        assert_eq!(format_span(f64::NAN), "-");
        assert_eq!(format_span(0.4), "<1s");
        assert_eq!(format_span(12.0), "12s");
        assert_eq!(format_span(2_700.0), "45m");
        assert_eq!(format_span(2_730.0), "45m 30s");
        assert_eq!(format_span(19_200.0), "5h 20m");
        assert_eq!(format_span(2.0 * 86_400.0 + 3.0 * 3_600.0 + 59.0), "2d 3h");
        assert_eq!(format_span(86_400.0), "1d");
    }

    #[test]
    fn formatting() {
        assert_eq!(format_duration(345_600), "4d");
        assert_eq!(format_duration(5_400), "90m");
        assert_eq!(format_duration(45), "45s");
        assert_eq!(format_duration(7_200), "2h");
        assert_eq!(format_duration(0), "0s");
    }
}
