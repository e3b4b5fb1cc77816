//! An access log line: a JSON object of the configured fields, or a text template filled in. Values
//! that come from the client are escaped: JSON strings as JSON requires (bytes that are not UTF-8 as
//! U+FFFD), text as nginx does (`"`, `\`, controls and bytes above 0x7e as `\xHH`), so a line is
//! always one line and a quote in a path cannot fake a field.

use super::{AccessEntry, Ending};
use edgeplane_config::model::{AccessField, LineFormat, TemplatePart};
use http::Version;
use std::fmt::Write as _;
use std::time::SystemTime;

/// A field's value in a line.
enum Value<'a> {
    /// Bytes as received (escaped when written).
    Text(&'a [u8]),
    /// Text the proxy made (no escaping needed beyond JSON's).
    Owned(String),
    /// A whole number.
    Int(u64),
    /// Milliseconds, written with three decimals.
    Millis(f64),
    /// No value: `null` in JSON, `-` in text.
    Absent,
}

/// The line for a request that ended as `end`, at `now`.
pub(super) fn render(
    format: &LineFormat,
    entry: &AccessEntry,
    end: &Ending<'_>,
    now: SystemTime,
) -> String {
    let mut out = String::with_capacity(320);
    match format {
        LineFormat::Json(fields) => {
            out.push('{');
            for (i, &field) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push('"');
                out.push_str(field.name());
                out.push_str("\":");
                json(&mut out, value(field, entry, end, now));
            }
            out.push('}');
        }
        LineFormat::Template(parts) => {
            for part in parts {
                match part {
                    TemplatePart::Text(t) => out.push_str(t),
                    TemplatePart::Field(f) => text(&mut out, value(*f, entry, end, now)),
                }
            }
        }
    }
    out
}

fn value<'a>(
    field: AccessField,
    e: &'a AccessEntry,
    end: &'a Ending<'_>,
    now: SystemTime,
) -> Value<'a> {
    let header = |v: &'a Option<http::HeaderValue>| match v {
        Some(v) => Value::Text(v.as_bytes()),
        None => Value::Absent,
    };
    let named = |s: &'a str| match s {
        "" => Value::Absent,
        s => Value::Text(s.as_bytes()),
    };
    match field {
        AccessField::Time => Value::Owned(crate::telemetry::utc::rfc3339_millis(now)),
        AccessField::Client => Value::Text(e.client.as_bytes()),
        AccessField::Method => Value::Text(e.method.as_str().as_bytes()),
        AccessField::Host => e
            .host()
            .map_or(Value::Absent, |h| Value::Text(h.as_bytes())),
        AccessField::Path => Value::Text(e.uri.path().as_bytes()),
        AccessField::Query => e
            .uri
            .query()
            .map_or(Value::Absent, |q| Value::Text(q.as_bytes())),
        AccessField::Target => Value::Text(
            e.uri
                .path_and_query()
                .map_or(e.uri.path(), |pq| pq.as_str())
                .as_bytes(),
        ),
        AccessField::Protocol => Value::Text(protocol(e.version).as_bytes()),
        AccessField::Status => Value::Int(u64::from(end.status.as_u16())),
        AccessField::DurationMs => Value::Millis(end.elapsed.as_secs_f64() * 1e3),
        AccessField::Route => named(&end.metrics.route),
        AccessField::Cluster => named(&end.metrics.cluster),
        AccessField::Upstream => end
            .upstream
            .map_or(Value::Absent, |a| Value::Owned(a.to_string())),
        AccessField::Error => end
            .error
            .map_or(Value::Absent, |c| Value::Text(c.as_bytes())),
        AccessField::RequestId => Value::Text(e.request_id.as_bytes()),
        AccessField::TraceId => e
            .trace_id
            .as_deref()
            .map_or(Value::Absent, |t| Value::Text(t.as_bytes())),
        AccessField::GrpcStatus => end
            .grpc_status
            .map_or(Value::Absent, |c| Value::Int(u64::from(c))),
        AccessField::UserAgent => header(&e.user_agent),
        AccessField::Referer => header(&e.referer),
    }
}

fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP",
    }
}

/// Writes a value as JSON.
fn json(out: &mut String, v: Value<'_>) {
    match v {
        Value::Text(bytes) => json_string(out, &String::from_utf8_lossy(bytes)),
        Value::Owned(s) => json_string(out, &s),
        Value::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Millis(ms) => {
            let _ = write!(out, "{ms:.3}");
        }
        Value::Absent => out.push_str("null"),
    }
}

fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Writes a value in a text line.
fn text(out: &mut String, v: Value<'_>) {
    match v {
        Value::Text(bytes) => {
            for &b in bytes {
                match b {
                    b'"' | b'\\' | 0..=0x1f | 0x7f..=0xff => {
                        let _ = write!(out, "\\x{b:02X}");
                    }
                    b => out.push(char::from(b)),
                }
            }
        }
        Value::Owned(s) => out.push_str(&s),
        Value::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Millis(ms) => {
            let _ = write!(out, "{ms:.3}");
        }
        Value::Absent => out.push('-'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped() {
        let mut j = String::new();
        json(&mut j, Value::Text(b"a\"b\\c\x01\xff"));
        assert_eq!(j, "\"a\\\"b\\\\c\\u0001\u{fffd}\"");
        let mut t = String::new();
        text(&mut t, Value::Text(b"/a\"b c\x7f\xc3"));
        assert_eq!(t, "/a\\x22b c\\x7F\\xC3");
        let mut t = String::new();
        text(&mut t, Value::Absent);
        json(&mut t, Value::Absent);
        text(&mut t, Value::Millis(1.23456));
        assert_eq!(t, "-null1.235");
    }
}
