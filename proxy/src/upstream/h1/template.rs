//! The header lines of a connection's last response, to make the next response's header map without
//! looking its names up again: an upstream sends the same names in the same order, response after
//! response. When the names match byte for byte, the map is a clone of the last one with the new
//! values put in, instead of a name lookup, a hash and an insert per line.

use super::fields::{Fields, Span};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

/// What one header line is to the parser.
#[derive(Debug, Clone)]
pub(super) enum Line {
    /// A header for the map.
    Value,
    /// `Content-Length`: for the map, and for the framing.
    Length,
    /// A hop-by-hop header (RFC 9110 section 7.6.1): for the framing only.
    HopByHop(HeaderName),
}

/// The last response's header lines.
#[derive(Debug, Default)]
pub(super) struct Template {
    /// The names as they came, one after the other.
    names: Vec<u8>,
    /// Each line's name length in `names`, and what the line is.
    lines: Vec<(usize, Line)>,
    /// The map the lines made, its values empty: it must hold nothing of a read buffer, which the
    /// connection reuses once nothing else holds it.
    map: Option<HeaderMap>,
}

impl Template {
    /// The header map of a head whose lines are at `spans` in `head`, if they have the template's
    /// names in its order; the framing's lines go to `fields`. `None`: not the same names.
    pub(super) fn fill(
        &self,
        head: &Bytes,
        spans: &[Span],
        fields: &mut Fields,
    ) -> Option<Result<HeaderMap, &'static str>> {
        let template = self.map.as_ref()?;
        if self.lines.len() != spans.len() {
            return None;
        }
        let mut at = 0;
        for (&(len, _), &(ns, ne, _, _)) in self.lines.iter().zip(spans) {
            if head.get(ns as usize..ne as usize) != self.names.get(at..at + len) {
                return None;
            }
            at += len;
        }
        let mut map = template.clone();
        {
            let mut slots = map.values_mut();
            for ((_, line), &(_, _, vs, ve)) in self.lines.iter().zip(spans) {
                let (vs, ve) = (vs as usize, ve as usize);
                match line {
                    Line::HopByHop(name) => {
                        fields.hop_by_hop(name, &head[vs..ve]);
                        continue;
                    }
                    Line::Length => fields.content_length(&head[vs..ve]),
                    Line::Value => {}
                }
                let Some(slot) = slots.next() else {
                    return Some(Err("response header template out of step"));
                };
                match HeaderValue::from_maybe_shared(head.slice(vs..ve)) {
                    Ok(value) => *slot = value,
                    Err(_) => return Some(Err("invalid response header value")),
                }
            }
        }
        Some(Ok(map))
    }

    /// Starts learning a new head's lines.
    pub(super) fn clear(&mut self) {
        self.names.clear();
        self.lines.clear();
        self.map = None;
    }

    /// Adds the line named `name` (as it came) to the head being learnt.
    pub(super) fn push(&mut self, name: &[u8], line: Line) {
        self.names.extend_from_slice(name);
        self.lines.push((name.len(), line));
    }

    /// Ends learning with the map the lines made. A head that repeats a name is not kept: the map
    /// groups a name's values, so its values would not come in the lines' order.
    pub(super) fn keep(&mut self, map: &HeaderMap) {
        if map.keys_len() != map.len() {
            self.clear();
            return;
        }
        let mut template = map.clone();
        for value in template.values_mut() {
            *value = HeaderValue::from_static("");
        }
        self.map = Some(template);
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse::{parse, Framing, Head, Parsed};
    use super::*;
    use bytes::BytesMut;

    fn head(text: &str, template: &mut Template) -> Head {
        match parse(&mut BytesMut::from(text), false, template) {
            Ok(Parsed::Complete(head)) => head,
            other => panic!("not complete: {other:?}"),
        }
    }

    /// The lines in map order, as text.
    fn lines(head: &Head) -> Vec<String> {
        head.response
            .headers()
            .iter()
            .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap_or("?")))
            .collect()
    }

    /// A head parsed with a learnt template gives what it gives parsed on its own.
    fn same_as_fresh(text: &str, template: &mut Template) -> Head {
        let filled = head(text, template);
        let fresh = head(text, &mut Template::default());
        assert_eq!(lines(&filled), lines(&fresh), "{text:?}");
        assert_eq!(filled.framing, fresh.framing, "{text:?}");
        assert_eq!(filled.keep_alive, fresh.keep_alive, "{text:?}");
        filled
    }

    #[test]
    fn the_same_names_take_new_values_and_framing() {
        let mut template = Template::default();
        let first = head(
            "HTTP/1.1 200 OK\r\nServer: a\r\nContent-Length: 2\r\nX-Up: 1\r\nConnection: keep-alive\r\n\r\n",
            &mut template,
        );
        assert!(first.keep_alive);
        assert!(template.map.is_some(), "learnt");
        let second = same_as_fresh(
            "HTTP/1.1 404 Not Found\r\nServer: b\r\nContent-Length: 13\r\nX-Up: 22\r\nConnection: close\r\n\r\n",
            &mut template,
        );
        assert_eq!(second.response.status(), 404);
        assert_eq!(
            lines(&second),
            ["server: b", "content-length: 13", "x-up: 22"]
        );
        assert_eq!(second.framing, Framing::Length(13));
        assert!(
            !second.keep_alive,
            "Connection: close seen through the template"
        );
    }

    #[test]
    fn other_names_order_or_case_are_looked_up() {
        let mut template = Template::default();
        head(
            "HTTP/1.1 200 OK\r\nServer: a\r\nX-Up: 1\r\nContent-Length: 0\r\n\r\n",
            &mut template,
        );
        for text in [
            "HTTP/1.1 200 OK\r\nX-Up: 1\r\nServer: a\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nserver: a\r\nX-Up: 1\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nServer: a\r\nX-Up: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nServer: a\r\nX-Up: 1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nServer: a\r\nX-Up: 1\r\nContent-Length: 0\r\nX-More: 1\r\n\r\n",
        ] {
            same_as_fresh(text, &mut template);
        }
    }

    #[test]
    fn a_head_that_repeats_a_name_is_not_learnt() {
        let mut template = Template::default();
        let text = "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nX-Up: 1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n";
        let first = head(text, &mut template);
        assert!(template.map.is_none());
        assert_eq!(
            lines(&first),
            [
                "set-cookie: a=1",
                "set-cookie: b=2",
                "x-up: 1",
                "content-length: 0"
            ]
        );
        same_as_fresh(text, &mut template);
    }

    #[test]
    fn headers_named_by_connection_stay_out_through_the_template() {
        let mut template = Template::default();
        let text = "HTTP/1.1 200 OK\r\nConnection: x-hop\r\nX-Hop: 1\r\nX-Up: 1\r\nContent-Length: 0\r\n\r\n";
        head(text, &mut template);
        let second = same_as_fresh(text, &mut template);
        let mut kept = lines(&second);
        kept.sort();
        assert_eq!(kept, ["content-length: 0", "x-up: 1"]);
    }
}
