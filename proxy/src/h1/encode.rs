//! An upstream request head (and a small body held whole) written into one buffer, sent with one
//! write.

use bytes::Bytes;
use http::{header, Method, Request};
use std::io::Write;

/// Writes `req`'s head, then `body`, into `out` (cleared first). Any `Content-Length` of the request is
/// replaced by the length of `body`, which is also sent when there is no body for a method that
/// normally has one.
pub fn request<B>(req: &Request<B>, body: Option<&Bytes>, out: &mut Vec<u8>) {
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
    for (name, value) in req.headers() {
        if name == header::CONTENT_LENGTH {
            had_length = true;
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
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
        request(&req, Some(&Bytes::from_static(b"hello")), &mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "POST /a?b=1 HTTP/1.1\r\nhost: example.com\r\nx-two: 1\r\nx-two: 2\r\ncontent-length: 5\r\n\r\nhello"
        );
    }

    #[test]
    fn bodiless_requests_get_a_length_only_where_expected() {
        let mut out = Vec::new();
        let get = Request::get("/").body(()).expect("request");
        request(&get, None, &mut out);
        assert_eq!(&out[..], b"GET / HTTP/1.1\r\n\r\n");
        let put = Request::put("/x").body(()).expect("request");
        request(&put, None, &mut out);
        assert_eq!(&out[..], b"PUT /x HTTP/1.1\r\ncontent-length: 0\r\n\r\n");
    }
}
