//! The `Date` header of the own server's responses (RFC 9110 §6.6.1), formatted once per second per
//! thread.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
const LEN: usize = 29;

thread_local! {
    static CACHED: RefCell<(u64, [u8; LEN])> = const { RefCell::new((u64::MAX, [0; LEN])) };
}

/// Appends the current date to `out`.
pub(crate) fn append(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHED.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs {
            let text = httpdate::fmt_http_date(now);
            if text.len() == LEN {
                c.1.copy_from_slice(text.as_bytes());
                c.0 = secs;
            } else {
                out.extend_from_slice(text.as_bytes());
                return;
            }
        }
        out.extend_from_slice(&c.1);
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_date_is_an_imf_fixdate_of_now() {
        let mut out = Vec::new();
        super::append(&mut out);
        let text = std::str::from_utf8(&out).unwrap();
        assert_eq!(text.len(), 29, "{text}");
        assert!(text.ends_with(" GMT"), "{text}");
        let parsed = httpdate::parse_http_date(text).unwrap();
        let skew = std::time::SystemTime::now()
            .duration_since(parsed)
            .unwrap_or_default();
        assert!(skew.as_secs() <= 2, "{text}");
    }
}
