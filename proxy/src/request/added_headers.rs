//! What the proxy adds to a request on its way upstream: `X-Forwarded-For` and `Via` (the client's
//! values kept, ours appended, joined into one line), `X-Forwarded-Proto` and `X-Forwarded-Host`
//! (ours replace the client's) and an `x-request-id` when the client sent no usable one.
//!
//! They are kept beside the request instead of in its header map: edgeplane's own HTTP/1.1 client
//! writes them while it writes the request head (no map insertion, no hashing), and only a request
//! that goes through hyper gets them in its map, once, right before it is sent. Both ways produce
//! the same headers (a unit test holds them to it).

use http::header::{self, GetAll, HeaderMap, HeaderName, HeaderValue};

/// `X-Forwarded-For`.
pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub(crate) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
pub(crate) static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `x-request-id`: kept from the client when usable, else generated, and sent upstream.
pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-supplied request id kept; a longer one is replaced.
const MAX_REQUEST_ID: usize = 128;

/// The forwarding headers of one request.
#[derive(Debug)]
pub(crate) struct AddedHeaders<'a> {
    client_ip: &'a HeaderValue,
    proto: &'a HeaderValue,
    via: &'a HeaderValue,
    host: Option<HeaderValue>,
    id_seed: u64,
    id_n: u64,
    /// The request's header map holds them already: hyper's path put them there, and the request
    /// came back unsent.
    in_map: bool,
    /// The client sent `TE: trailers`: it goes on over HTTP/2 only (gRPC servers check it; over
    /// HTTP/1.1 `TE` is hop-by-hop).
    pub(crate) te_trailers: bool,
}

impl<'a> AddedHeaders<'a> {
    /// The headers for a request from `client_ip` over `proto` (`http` or `https`), through this
    /// node (`via`, e.g. `1.1 edge-1`), for `host` (the host the client asked for, if any); a
    /// generated request id is made of the node's `id_seed` and the request's number `id_n`.
    pub(crate) fn new(
        client_ip: &'a HeaderValue,
        proto: &'a HeaderValue,
        via: &'a HeaderValue,
        host: Option<HeaderValue>,
        id_seed: u64,
        id_n: u64,
    ) -> Self {
        AddedHeaders {
            client_ip,
            proto,
            via,
            host,
            id_seed,
            id_n,
            in_map: false,
            te_trailers: false,
        }
    }

    /// Headers already in the request's map (a mirrored copy got them with [`Self::copy_into`]).
    pub(crate) fn in_map() -> AddedHeaders<'static> {
        static NONE: HeaderValue = HeaderValue::from_static("");
        AddedHeaders {
            client_ip: &NONE,
            proto: &NONE,
            via: &NONE,
            host: None,
            id_seed: 0,
            id_n: 0,
            in_map: true,
            te_trailers: false,
        }
    }

    /// Puts the headers into `map` (for hyper's client), unless they are there already.
    pub(crate) fn apply(&mut self, map: &mut HeaderMap) {
        self.copy_into(map);
        self.in_map = true;
    }

    /// Puts the headers into `map`, a copy of the request's, leaving the request's own state alone.
    pub(crate) fn copy_into(&self, map: &mut HeaderMap) {
        if self.in_map {
            return;
        }
        if !map.get(&X_REQUEST_ID).is_some_and(usable_id) {
            let id = generated_id(self.id_seed, self.id_n);
            if let Ok(v) = HeaderValue::from_bytes(&id) {
                map.insert(X_REQUEST_ID.clone(), v);
            }
        }
        match &self.host {
            Some(host) => {
                map.insert(X_FORWARDED_HOST.clone(), host.clone());
            }
            None => {
                map.remove(&X_FORWARDED_HOST);
            }
        }
        let forwarded_for = joined_value(map.get_all(&X_FORWARDED_FOR), self.client_ip);
        map.insert(X_FORWARDED_FOR.clone(), forwarded_for);
        map.insert(X_FORWARDED_PROTO.clone(), self.proto.clone());
        let via = joined_value(map.get_all(header::VIA), self.via);
        map.insert(header::VIA, via);
    }

    /// The request is a fresh copy (a retry from the kept original): the headers are no longer in
    /// its map.
    pub(crate) fn reset(&mut self) {
        self.in_map = false;
    }

    /// Writes the request header `name: value` of `map` into `out` as forwarding requires, if it is
    /// one of the forwarding headers; `false` means it is not, and the caller writes it as is.
    #[inline]
    pub(crate) fn write_header(
        &self,
        name: &HeaderName,
        value: &HeaderValue,
        map: &HeaderMap,
        written: &mut Written,
        out: &mut Vec<u8>,
    ) -> bool {
        if self.in_map {
            return false;
        }
        let Some(kind) = Kind::of(name) else {
            return false;
        };
        match kind {
            Kind::For if !written.forwarded_for => {
                written.forwarded_for = true;
                line(out, &X_FORWARDED_FOR, |out| {
                    join(map.get_all(&X_FORWARDED_FOR), self.client_ip, out)
                });
            }
            Kind::Via if !written.via => {
                written.via = true;
                line(out, &header::VIA, |out| {
                    join(map.get_all(header::VIA), self.via, out)
                });
            }
            Kind::For | Kind::Via | Kind::Proto | Kind::Host => {}
            Kind::Id => {
                // The first value decides, as a map lookup would: all kept, or all replaced.
                if *written.id_kept.get_or_insert_with(|| usable_id(value)) {
                    line(out, name, |out| out.extend_from_slice(value.as_bytes()));
                }
            }
        }
        true
    }

    /// Writes into `out` the forwarding headers [`write_header`](Self::write_header) did not meet.
    #[inline]
    pub(crate) fn write_rest(&self, written: Written, out: &mut Vec<u8>) {
        if self.in_map {
            return;
        }
        if !written.forwarded_for {
            line(out, &X_FORWARDED_FOR, |out| {
                out.extend_from_slice(self.client_ip.as_bytes())
            });
        }
        if let Some(host) = &self.host {
            line(out, &X_FORWARDED_HOST, |out| {
                out.extend_from_slice(host.as_bytes())
            });
        }
        line(out, &X_FORWARDED_PROTO, |out| {
            out.extend_from_slice(self.proto.as_bytes())
        });
        if !written.via {
            line(out, &header::VIA, |out| {
                out.extend_from_slice(self.via.as_bytes())
            });
        }
        if written.id_kept != Some(true) {
            let id = generated_id(self.id_seed, self.id_n);
            line(out, &X_REQUEST_ID, |out| out.extend_from_slice(&id));
        }
    }
}

/// What [`AddedHeaders::write_header`] met of a request's headers.
#[derive(Debug, Default)]
pub(crate) struct Written {
    forwarded_for: bool,
    via: bool,
    /// Whether the client's request id is kept, once its first value was seen.
    id_kept: Option<bool>,
}

/// The forwarding headers, told apart by name.
enum Kind {
    For,
    Via,
    Proto,
    Host,
    Id,
}

impl Kind {
    /// Which forwarding header `name` is; names of other lengths are rejected by one comparison.
    #[inline]
    fn of(name: &HeaderName) -> Option<Kind> {
        let s = name.as_str();
        match s.len() {
            3 if s == "via" => Some(Kind::Via),
            12 if s == "x-request-id" => Some(Kind::Id),
            15 if s == "x-forwarded-for" => Some(Kind::For),
            16 if s == "x-forwarded-host" => Some(Kind::Host),
            17 if s == "x-forwarded-proto" => Some(Kind::Proto),
            _ => None,
        }
    }
}

/// The request id the request goes upstream with: the client's if usable, else the one generated
/// from `id_seed` and `id_n` (for the access log, which runs whichever client sends the request).
pub(crate) fn request_id(map: &HeaderMap, id_seed: u64, id_n: u64) -> HeaderValue {
    match map.get(&X_REQUEST_ID) {
        Some(v) if usable_id(v) => v.clone(),
        _ => HeaderValue::from_bytes(&generated_id(id_seed, id_n))
            .unwrap_or(HeaderValue::from_static("-")),
    }
}

/// Whether a client's request id is kept: not empty and not too long.
fn usable_id(v: &HeaderValue) -> bool {
    !v.is_empty() && v.len() <= MAX_REQUEST_ID
}

/// 32 hex digits: the node's seed, then the request's number (unique per node and restart).
pub(crate) fn generated_id(seed: u64, n: u64) -> [u8; 32] {
    let mut id = [0u8; 32];
    for (digits, word) in id.chunks_exact_mut(16).zip([seed, n]) {
        for (pair, byte) in digits.chunks_exact_mut(2).zip(word.to_be_bytes()) {
            pair.copy_from_slice(&HEX_PAIRS[usize::from(byte)]);
        }
    }
    id
}

/// The two lower-case hex digits of every byte.
static HEX_PAIRS: [[u8; 2]; 256] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut pairs = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        pairs[i] = [HEX[i >> 4], HEX[i & 0xf]];
        i += 1;
    }
    pairs
};

/// Writes the header line `name: <value>\r\n`, the value written by `value`.
#[inline]
fn line(out: &mut Vec<u8>, name: &HeaderName, value: impl FnOnce(&mut Vec<u8>)) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    value(out);
    out.extend_from_slice(b"\r\n");
}

/// Writes the earlier values, then ours, separated by `, `.
fn join(previous: GetAll<'_, HeaderValue>, ours: &HeaderValue, out: &mut Vec<u8>) {
    for v in previous {
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(ours.as_bytes());
}

/// The earlier values and ours as one header value (ours alone, without copying, when there are
/// none).
fn joined_value(previous: GetAll<'_, HeaderValue>, ours: &HeaderValue) -> HeaderValue {
    if previous.iter().next().is_none() {
        return ours.clone();
    }
    let mut joined = Vec::with_capacity(64);
    join(previous, ours, &mut joined);
    // Valid values joined by `, ` stay valid; the fallback is never taken.
    HeaderValue::from_bytes(&joined).unwrap_or_else(|_| ours.clone())
}

#[cfg(test)]
mod tests;
