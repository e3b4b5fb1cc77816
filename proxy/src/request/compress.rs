//! Response compression, opt-in per route (`[routes.compression]`): the encoding is chosen with the
//! routing, by the request's `Accept-Encoding` (its q-values first, then the route's order); the
//! response is compressed if its media type is listed, it is not already encoded, not a range, not
//! marked `no-transform`, and not declared smaller than `min_size`. Its `Content-Length` goes (the
//! body streams, compressed frame by frame), `Content-Encoding` and `Vary: Accept-Encoding` come, a
//! strong `ETag` becomes weak.

mod encoder;

use edgeplane_config::model::{Compression, Encoding};
use encoder::Encoder;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

/// A request whose response may be compressed, and how.
#[derive(Debug)]
pub(crate) struct Compress {
    encoding: Encoding,
    config: Arc<Compression>,
}

/// The encoding for `req` under the route's `config`, if the client accepts one (not for `HEAD` nor
/// for ranges).
pub(crate) fn choose<B>(config: &Arc<Compression>, req: &Request<B>) -> Option<Box<Compress>> {
    if req.method() == Method::HEAD || req.headers().contains_key(header::RANGE) {
        return None;
    }
    let accepted = req.headers().get_all(header::ACCEPT_ENCODING);
    let mut best: Option<(Encoding, u16)> = None;
    for &encoding in &config.algorithms {
        let q = quality(accepted.iter(), encoding.name());
        if q > 0 && best.is_none_or(|(_, top)| q > top) {
            best = Some((encoding, q));
        }
    }
    best.map(|(encoding, _)| {
        Box::new(Compress {
            encoding,
            config: config.clone(),
        })
    })
}

/// The client's preference for `coding`, in thousandths (0: not acceptable), from `Accept-Encoding`
/// values: the coding's own q, else `*`'s, else 0.
fn quality<'a>(values: impl Iterator<Item = &'a HeaderValue>, coding: &str) -> u16 {
    let mut star = 0;
    for value in values {
        let Ok(text) = value.to_str() else { continue };
        for item in text.split(',') {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or("").trim();
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(1000, |q| {
                    (q.trim().parse::<f32>().unwrap_or(0.0).clamp(0.0, 1.0) * 1000.0) as u16
                });
            if name.eq_ignore_ascii_case(coding)
                || (coding == "gzip" && name.eq_ignore_ascii_case("x-gzip"))
            {
                return q;
            }
            if name == "*" {
                star = q;
            }
        }
    }
    star
}

impl Compress {
    /// Compresses `resp` in place, if it qualifies.
    pub(crate) fn apply<B>(&self, resp: &mut Response<B>)
    where
        B: Body + Default + From<CompressBody<B>>,
    {
        if !self.qualifies(resp.status(), resp.headers()) {
            return;
        }
        let Ok(encoder) = Encoder::new(self.encoding) else {
            return;
        };
        let h = resp.headers_mut();
        h.remove(header::CONTENT_LENGTH);
        h.remove(header::ACCEPT_RANGES);
        h.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(self.encoding.name()),
        );
        if !varies_on_encoding(h) {
            h.append(header::VARY, HeaderValue::from_static("accept-encoding"));
        }
        if let Some(tag) = h.get(header::ETAG) {
            if !tag.as_bytes().starts_with(b"W/") {
                let mut weak = b"W/".to_vec();
                weak.extend_from_slice(tag.as_bytes());
                if let Ok(v) = HeaderValue::from_bytes(&weak) {
                    h.insert(header::ETAG, v);
                }
            }
        }
        let inner = std::mem::take(resp.body_mut());
        *resp.body_mut() = CompressBody {
            inner,
            encoder: Some(encoder),
            trailers: None,
        }
        .into();
    }

    /// Whether a response with this status and these headers is compressed.
    fn qualifies(&self, status: StatusCode, h: &HeaderMap) -> bool {
        if status.is_informational()
            || matches!(
                status,
                StatusCode::NO_CONTENT | StatusCode::PARTIAL_CONTENT | StatusCode::NOT_MODIFIED
            )
        {
            return false;
        }
        let encoded = h
            .get(header::CONTENT_ENCODING)
            .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
        let no_transform = h.get_all(header::CACHE_CONTROL).iter().any(|v| {
            v.to_str().is_ok_and(|t| {
                t.split(',')
                    .any(|d| d.trim().eq_ignore_ascii_case("no-transform"))
            })
        });
        if encoded || no_transform || h.contains_key(header::CONTENT_RANGE) {
            return false;
        }
        let small = h
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
            .is_some_and(|n| n < self.config.min_size);
        !small && self.media_type_listed(h)
    }

    fn media_type_listed(&self, h: &HeaderMap) -> bool {
        let Some(Ok(ct)) = h.get(header::CONTENT_TYPE).map(|v| v.to_str()) else {
            return false;
        };
        let media = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let kind = media.split('/').next().unwrap_or("");
        self.config
            .content_types
            .iter()
            .any(|t| *t == media || t.strip_suffix("/*").is_some_and(|prefix| prefix == kind))
    }
}

fn varies_on_encoding(h: &HeaderMap) -> bool {
    h.get_all(header::VARY).iter().any(|v| {
        v.to_str().is_ok_and(|t| {
            t.split(',')
                .any(|f| f.trim() == "*" || f.trim().eq_ignore_ascii_case("accept-encoding"))
        })
    })
}

/// A response body compressed as it streams.
pub(crate) struct CompressBody<B> {
    inner: B,
    /// `None` once the stream is finished.
    encoder: Option<Encoder>,
    /// Trailers held while the encoder's last bytes go out.
    trailers: Option<HeaderMap>,
}

impl<B> std::fmt::Debug for CompressBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompressBody").finish_non_exhaustive()
    }
}

impl<B> Body for CompressBody<B>
where
    B: Body<Data = bytes::Bytes> + Unpin,
    B::Error: From<std::io::Error>,
{
    type Data = bytes::Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<bytes::Bytes>, B::Error>>> {
        let this = self.get_mut();
        loop {
            let Some(encoder) = &mut this.encoder else {
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            };
            let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
            let out = match frame {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => encoder.encode(&data),
                    Err(frame) => {
                        // Trailers: the compressed stream ends before them.
                        this.trailers = frame.into_trailers().ok();
                        let last = encoder.finish();
                        this.encoder = None;
                        last
                    }
                },
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => {
                    let last = encoder.finish();
                    this.encoder = None;
                    last
                }
            };
            match out {
                Ok(bytes) if !bytes.is_empty() => return Poll::Ready(Some(Ok(Frame::data(bytes)))),
                Ok(_) => continue,
                Err(e) => {
                    this.encoder = None;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.encoder.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Arc<Compression> {
        Arc::new(Compression {
            algorithms: vec![Encoding::Zstd, Encoding::Brotli, Encoding::Gzip],
            min_size: 100,
            content_types: vec!["text/html".into(), "application/*".into()],
        })
    }

    fn chosen(accept: Option<&str>, method: &str, range: bool) -> Option<Encoding> {
        let mut req = Request::builder().method(method);
        if let Some(a) = accept {
            req = req.header(header::ACCEPT_ENCODING, a);
        }
        if range {
            req = req.header(header::RANGE, "bytes=0-9");
        }
        choose(&config(), &req.body(()).unwrap()).map(|c| c.encoding)
    }

    #[test]
    fn the_encoding_follows_the_client_then_the_route() {
        assert_eq!(
            chosen(Some("gzip, deflate, br, zstd"), "GET", false),
            Some(Encoding::Zstd)
        );
        assert_eq!(
            chosen(Some("gzip, br;q=0.9"), "GET", false),
            Some(Encoding::Gzip)
        );
        assert_eq!(
            chosen(Some("br;q=0.5, gzip;q=0.4"), "GET", false),
            Some(Encoding::Brotli)
        );
        assert_eq!(
            chosen(Some("*;q=0.1, zstd;q=0"), "GET", false),
            Some(Encoding::Brotli)
        );
        assert_eq!(chosen(Some("identity"), "GET", false), None);
        assert_eq!(chosen(None, "GET", false), None);
        assert_eq!(chosen(Some("gzip"), "HEAD", false), None);
        assert_eq!(chosen(Some("gzip"), "GET", true), None, "never for ranges");
    }

    #[test]
    fn only_listed_unencoded_large_enough_responses_qualify() {
        let c = Compress {
            encoding: Encoding::Gzip,
            config: config(),
        };
        let h = |pairs: &[(&str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.append(
                    header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                );
            }
            m
        };
        let ok = StatusCode::OK;
        assert!(c.qualifies(ok, &h(&[("content-type", "text/html; charset=utf-8")])));
        assert!(c.qualifies(
            ok,
            &h(&[
                ("content-type", "application/json"),
                ("content-length", "100")
            ])
        ));
        assert!(!c.qualifies(
            ok,
            &h(&[
                ("content-type", "application/json"),
                ("content-length", "99")
            ])
        ));
        assert!(!c.qualifies(ok, &h(&[("content-type", "image/png")])));
        assert!(!c.qualifies(
            ok,
            &h(&[("content-type", "text/html"), ("content-encoding", "gzip")])
        ));
        assert!(!c.qualifies(
            ok,
            &h(&[
                ("content-type", "text/html"),
                ("cache-control", "public, no-transform")
            ])
        ));
        assert!(!c.qualifies(
            StatusCode::PARTIAL_CONTENT,
            &h(&[("content-type", "text/html")])
        ));
        assert!(!c.qualifies(
            StatusCode::NOT_MODIFIED,
            &h(&[("content-type", "text/html")])
        ));
        assert!(!c.qualifies(ok, &h(&[])));
    }
}
