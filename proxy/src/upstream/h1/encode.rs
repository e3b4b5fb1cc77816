//! An upstream request head (and a small body held whole) written into one buffer, sent with one
//! write.

use crate::request::added_headers::{AddedHeaders, Written};
use bytes::Bytes;
use http::{header, Method, Request};
use std::io::Write;

/// Writes `req`'s head with its `added` headers, then `body`, into `out` (cleared first). Any
/// `Content-Length` of the request is replaced by the length of `body`, which is also sent when there
/// is no body for a method that normally has one.
pub(super) fn request<B>(
    req: &Request<B>,
    body: Option<&Bytes>,
    added: &AddedHeaders<'_>,
    out: &mut Vec<u8>,
) {
    out.clear();
    out.extend_from_slice(req.method().as_str().as_bytes());
    out.push(b' ');
    let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    out.extend_from_slice(if target.is_empty() {
        b"/"
    } else {
        target.as_bytes()
    });
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut had_length = false;
    let mut written = Written::default();
    let headers = req.headers();
    for (name, value) in headers {
        if name == header::CONTENT_LENGTH {
            had_length = true;
            continue;
        }
        if added.write_header(name, value, headers, &mut written, out) {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    added.write_rest(written, out);
    let len = body.map_or(0, Bytes::len);
    let method = req.method();
    if len > 0
        || had_length
        || method == Method::POST
        || method == Method::PUT
        || method == Method::PATCH
    {
        // Writing into a Vec cannot fail.
        let _ = write!(out, "content-length: {len}\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if let Some(body) = body {
        out.extend_from_slice(body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    static CLIENT: HeaderValue = HeaderValue::from_static("127.0.0.1");
    static PROTO: HeaderValue = HeaderValue::from_static("http");
    static VIA: HeaderValue = HeaderValue::from_static("1.1 edge");
    const ADDED: &str =
        "x-forwarded-for: 127.0.0.1\r\nx-forwarded-proto: http\r\nvia: 1.1 edge\r\n\
                         x-request-id: 00000000000000010000000000000002\r\n";

    fn added() -> AddedHeaders<'static> {
        AddedHeaders::new(&CLIENT, &PROTO, &VIA, None, 1, 2)
    }

    #[test]
    fn head_then_body() {
        let req = Request::post("/a?b=1")
            .header("host", "example.com")
            .header("content-length", "99")
            .header("x-two", "1")
            .header("x-two", "2")
            .body(())
            .expect("request");
        let mut out = Vec::new();
        let body = Bytes::from_static(b"hello");
        request(&req, Some(&body), &added(), &mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            format!("POST /a?b=1 HTTP/1.1\r\nhost: example.com\r\nx-two: 1\r\nx-two: 2\r\n{ADDED}content-length: 5\r\n\r\nhello")
        );
    }

    #[test]
    fn bodiless_requests_get_a_length_only_where_expected() {
        let mut out = Vec::new();
        let get = Request::get("/").body(()).expect("request");
        request(&get, None, &added(), &mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            format!("GET / HTTP/1.1\r\n{ADDED}\r\n")
        );
        let put = Request::put("/x").body(()).expect("request");
        request(&put, None, &added(), &mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            format!("PUT /x HTTP/1.1\r\n{ADDED}content-length: 0\r\n\r\n")
        );
    }
}
