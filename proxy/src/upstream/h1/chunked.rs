//! The chunked transfer coding of an upstream response body (RFC 9112 section 7.1), decoded in place:
//! data frames share the read buffer.

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};

/// Longest chunk-size line (size and extensions) or trailer line accepted.
const MAX_LINE: usize = 4096;
/// Most trailer bytes accepted.
const MAX_TRAILERS: usize = 16 * 1024;

/// Where the decoder is in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before a chunk-size line.
    Size,
    /// Inside a chunk's data, this many bytes left.
    Data(u64),
    /// After a chunk's data, before its CRLF.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
    /// The body is complete.
    Done,
}

/// One step of decoding.
#[derive(Debug)]
pub(super) enum Step {
    /// The buffer holds nothing more to decode: read more.
    NeedMore,
    /// Body data.
    Data(Bytes),
    /// The trailer fields, right before the end.
    Trailers(HeaderMap),
    /// The body is complete.
    End,
}

/// A chunked body decoder.
#[derive(Debug)]
pub(super) struct Decoder {
    state: State,
    trailers: HeaderMap,
    trailer_bytes: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            state: State::Size,
            trailers: HeaderMap::new(),
            trailer_bytes: 0,
        }
    }
}

impl Decoder {
    /// Decodes what it can from the front of `buf`, consuming it.
    pub(super) fn step(&mut self, buf: &mut BytesMut) -> Result<Step, &'static str> {
        loop {
            match self.state {
                State::Done => return Ok(Step::End),
                State::Size => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Step::NeedMore);
                    };
                    let size = chunk_size(&line)?;
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    let n = left.min(buf.len() as u64);
                    let data = buf.split_to(n as usize).freeze();
                    self.state = if n == left {
                        State::DataEnd
                    } else {
                        State::Data(left - n)
                    };
                    return Ok(Step::Data(data));
                }
                State::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Step::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err("invalid chunk: data not followed by CRLF");
                    }
                    let _ = buf.split_to(2);
                    self.state = State::Size;
                }
                State::Trailers => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Step::NeedMore);
                    };
                    if line.is_empty() {
                        self.state = State::Done;
                        if !self.trailers.is_empty() {
                            return Ok(Step::Trailers(std::mem::take(&mut self.trailers)));
                        }
                        return Ok(Step::End);
                    }
                    self.trailer_bytes += line.len();
                    if self.trailer_bytes > MAX_TRAILERS {
                        return Err("chunked trailers too large");
                    }
                    let (name, value) = trailer(&line)?;
                    self.trailers.append(name, value);
                }
            }
        }
    }
}

/// The next CRLF-terminated line, without its CRLF, consumed from `buf`; `None` if incomplete.
fn take_line(buf: &mut BytesMut) -> Result<Option<BytesMut>, &'static str> {
    let Some(lf) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > MAX_LINE {
            return Err("chunk line too long");
        }
        return Ok(None);
    };
    if lf > MAX_LINE {
        return Err("chunk line too long");
    }
    if lf == 0 || buf[lf - 1] != b'\r' {
        return Err("invalid chunk: line not ended by CRLF");
    }
    let mut line = buf.split_to(lf + 1);
    line.truncate(lf - 1);
    Ok(Some(line))
}

/// The size at the start of a chunk-size line (hex digits, then optional extensions).
fn chunk_size(line: &[u8]) -> Result<u64, &'static str> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 15 {
        return Err("invalid chunk size");
    }
    match line[digits..].first() {
        None | Some(b';' | b' ' | b'\t') => {}
        Some(_) => return Err("invalid chunk size"),
    }
    let mut size = 0u64;
    for &d in &line[..digits] {
        let v = (d as char).to_digit(16).ok_or("invalid chunk size")?;
        size = size * 16 + u64::from(v);
    }
    Ok(size)
}

fn trailer(line: &[u8]) -> Result<(HeaderName, HeaderValue), &'static str> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or("invalid chunked trailer")?;
    let name = HeaderName::from_bytes(&line[..colon]).map_err(|_| "invalid chunked trailer")?;
    let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii())
        .map_err(|_| "invalid chunked trailer")?;
    Ok((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `wire` one piece at a time (pieces of `step` bytes) and collects the body.
    fn decode(wire: &[u8], piece: usize) -> Result<(Vec<u8>, HeaderMap), &'static str> {
        let mut d = Decoder::default();
        let mut buf = BytesMut::new();
        let (mut body, mut trailers) = (Vec::new(), HeaderMap::new());
        let mut pieces = wire.chunks(piece);
        loop {
            match d.step(&mut buf)? {
                Step::NeedMore => match pieces.next() {
                    Some(p) => buf.extend_from_slice(p),
                    None => return Err("truncated"),
                },
                Step::Data(b) => body.extend_from_slice(&b),
                Step::Trailers(t) => trailers = t,
                Step::End => {
                    assert_eq!(d.state, State::Done);
                    return Ok((body, trailers));
                }
            }
        }
    }

    #[test]
    fn decodes_in_any_pieces() {
        let wire = b"5\r\nhello\r\nA;ext=1\r\n, world!!!\r\n0\r\nX-Sum: 7\r\n\r\n";
        for piece in [1, 2, 3, 7, wire.len()] {
            let (body, trailers) = decode(wire, piece).expect("decodes");
            assert_eq!(body, b"hello, world!!!");
            assert_eq!(trailers.get("x-sum").map(|v| v.as_bytes()), Some(&b"7"[..]));
        }
    }

    #[test]
    fn the_end_leaves_what_follows() {
        let mut d = Decoder::default();
        let mut buf = BytesMut::from(&b"0\r\n\r\nHTTP/1.1"[..]);
        assert!(matches!(d.step(&mut buf), Ok(Step::End)));
        assert_eq!(&buf[..], b"HTTP/1.1");
    }

    #[test]
    fn malformed_bodies_are_errors() {
        for wire in [
            &b"x\r\n"[..],
            b"5\r\nhelloXX0\r\n\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"fffffffffffffffff\r\n",
            b"5x\r\n",
            b"0\r\nbad trailer\r\n\r\n",
        ] {
            assert!(decode(wire, 4).is_err(), "{wire:?}");
        }
        let long = vec![b'1'; MAX_LINE + 10];
        assert_eq!(decode(&long, long.len()).err(), Some("chunk line too long"));
    }
}
