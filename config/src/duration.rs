//! Durations in config text: an integer with a unit, `250ms`, `10s`, `5m`, `1h`.

use std::time::Duration;

/// Parses `<integer><unit>` where unit is `ms`, `s`, `m` or `h`.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("invalid duration {text:?}: missing unit (ms, s, m, h)"))?;
    let (digits, unit) = text.split_at(split);
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: expected e.g. \"250ms\" or \"10s\""))?;
    let millis_per_unit = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => {
            return Err(format!(
                "invalid duration {text:?}: unknown unit {unit:?} (ms, s, m, h)"
            ))
        }
    };
    value
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("invalid duration {text:?}: too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse(" 1h "), Ok(Duration::from_secs(3600)));
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse("10").is_err());
        assert!(parse("s").is_err());
        assert!(parse("1.5s").is_err());
        assert!(parse("10 days").is_err());
        assert!(parse("99999999999999999999h").is_err());
    }
}
