//! The Python semantics the reference modules' output depends on (`str()`, `str.title()`,
//! `f"{n:,}"`, `round(x, 1)`, the age text, truthiness), reproduced so entries match exactly.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::Value;

/// `record[key]` when Python would call it truthy (not null, false, 0, "", [] or {}).
pub(crate) fn truthy<'a>(record: &'a Value, key: &str) -> Option<&'a Value> {
    record.get(key).filter(|v| is_truthy(v))
}

/// Python's truthiness of a JSON value (null, false, 0, "", [] and {} are false).
pub(crate) fn is_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// `record[key]` as a list (absent or not a list: empty).
pub fn list<'a>(record: &'a Value, key: &str) -> &'a [Value] {
    record
        .get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Python's `str()` of a JSON value as the reference sees it (`True`, `None`, `1.0`, `['a']`).
pub(crate) fn py_str(value: &Value) -> String {
    match value {
        Value::Null => "None".to_owned(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (None, Some(u), _) => u.to_string(),
            (None, None, Some(f)) => py_float(f),
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(py_repr).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("'{k}': {}", py_repr(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

/// Python's `repr()` as used inside containers: strings get quotes.
fn py_repr(value: &Value) -> String {
    match value {
        Value::String(s) => format!("'{s}'"),
        other => py_str(other),
    }
}

/// Python's float repr: shortest round-trip digits, always with a fractional part.
pub(crate) fn py_float(f: f64) -> String {
    // Rust's Debug output of f64 is the shortest round-trip form and keeps ".0" like Python.
    format!("{f:?}")
}

/// Python's `str.title()`: a cased character after an uncased one is upper-cased, every other
/// cased character lower-cased (`"ip country_code"` → `"Ip Country_Code"`).
pub(crate) fn title(s: &str) -> String {
    // Labels are ASCII but for a key Iris might add: a byte loop, without the Unicode case
    // tables (this ran for every entry of every Iris reply).
    if s.is_ascii() {
        let mut out = s.as_bytes().to_vec();
        let mut previous_cased = false;
        for b in &mut out {
            let cased = b.is_ascii_alphabetic();
            if cased && !previous_cased {
                b.make_ascii_uppercase();
            } else if cased {
                b.make_ascii_lowercase();
            }
            previous_cased = cased;
        }
        return String::from_utf8(out).unwrap_or_default();
    }
    let mut out = String::with_capacity(s.len());
    let mut previous_cased = false;
    for c in s.chars() {
        let cased = c.is_lowercase() || c.is_uppercase();
        if cased && !previous_cased {
            out.extend(c.to_uppercase());
        } else if cased {
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
        previous_cased = cased;
    }
    out
}

/// Python's `f"{n:,}"` for integers: thousands separated by commas.
pub(crate) fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The reference's `format_age`: seconds as "N seconds/minutes/hours/days/weeks/months/years",
/// rounded to one decimal with Python's float repr ("29.2 years", "3.0 days").
pub(crate) fn format_age(seconds: f64) -> String {
    const MINUTE: f64 = 60.0;
    const HOUR: f64 = 60.0 * MINUTE;
    const DAY: f64 = 24.0 * HOUR;
    if seconds < MINUTE {
        return format!("{} seconds", py_float(seconds));
    }
    let (unit, name) = if seconds < HOUR {
        (MINUTE, "minutes")
    } else if seconds < DAY {
        (HOUR, "hours")
    } else if seconds < 7.0 * DAY {
        (DAY, "days")
    } else if seconds < 30.0 * DAY {
        (7.0 * DAY, "weeks")
    } else if seconds < 365.0 * DAY {
        (30.0 * DAY, "months")
    } else {
        (365.0 * DAY, "years")
    };
    format!("{} {name}", py_float(round1(seconds / unit)))
}

/// Python's `round(x, 1)` (to the nearest tenth; exact ties are vanishingly rare for ages).
fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Parses the dates DomainTools returns (`1997-09-15`, `1997-09-15T07:00:00+00:00`,
/// `1997-09-15 07:00:00`) as a UTC instant; a date alone is midnight UTC.
pub(crate) fn parse_date(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S%z"] {
        if let Ok(dt) = DateTime::parse_from_str(s, format) {
            return Some(dt.with_timezone(&Utc));
        }
    }
    for format in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(s, format) {
            return Some(dt.and_utc());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc())
}

/// The age text of something created at `created`, seen at `now`, computed in UTC
/// (compatibility fix 8: the reference used the server's local time).
pub fn age(created: &str, now: DateTime<Utc>) -> Option<String> {
    let created = parse_date(created)?;
    let seconds = (now - created).num_milliseconds() as f64 / 1000.0;
    Some(format_age(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    #[test]
    fn str_of_json_values_is_pythons() {
        assert_eq!(py_str(&json!(null)), "None");
        assert_eq!(py_str(&json!(true)), "True");
        assert_eq!(py_str(&json!(15169)), "15169");
        assert_eq!(py_str(&json!(1.0)), "1.0");
        assert_eq!(py_str(&json!(["a", 1])), "['a', 1]");
        assert_eq!(py_str(&json!("x")), "x");
    }

    #[test]
    fn title_is_pythons() {
        assert_eq!(title("ip country_code"), "Ip Country_Code");
        assert_eq!(title("ssl hash"), "Ssl Hash");
        assert_eq!(title("mx ip"), "Mx Ip");
        assert_eq!(title("technical contact EMAIL"), "Technical Contact Email");
        assert_eq!(title("a1b"), "A1B");
    }

    #[test]
    fn thousands_are_comma_separated() {
        assert_eq!(thousands(1), "1");
        assert_eq!(thousands(1639), "1,639");
        assert_eq!(thousands(14_122_845), "14,122,845");
        assert_eq!(thousands(234_308_123), "234,308,123");
        assert_eq!(thousands(-1000), "-1,000");
    }

    #[test]
    fn ages_read_like_the_reference() {
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap();
        assert_eq!(age("1997-09-15", now).unwrap(), "29.2 years");
        assert_eq!(age("1997-09-15T07:00:00+00:00", now).unwrap(), "29.2 years");
        assert_eq!(age("2026-11-22", now).unwrap(), "3.0 days");
        assert_eq!(format_age(90.0), "1.5 minutes");
        assert_eq!(format_age(30.5), "30.5 seconds");
        assert_eq!(format_age(8.0 * 86400.0), "1.1 weeks");
        assert_eq!(format_age(45.0 * 86400.0), "1.5 months");
        assert!(age("not a date", now).is_none());
    }
}
