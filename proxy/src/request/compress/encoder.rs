//! The streaming encoders: each data frame of a response is compressed and flushed at once (a
//! sync flush: what the client gets decodes to everything sent so far, so a slow stream such as
//! server-sent events is not held back), the end of the body finishes the stream.

use bytes::Bytes;
use edgeplane_config::model::Encoding;
use std::io::{self, Write};

/// Gzip level: 3 of 9. On generated HTML (BENCHMARKS.md), level 1 costs 3.8 ms of CPU per MiB but
/// sends 37 % of the page, level 3 6.6 ms and 25 %, level 6 32 ms and 21 %.
const GZIP_LEVEL: u32 = 3;
/// Brotli quality: fast enough for responses compressed on the fly (11 is for static assets).
const BROTLI_QUALITY: u32 = 4;
/// Brotli window: 4 MiB.
const BROTLI_WINDOW: u32 = 22;
/// Zstandard level: its default.
const ZSTD_LEVEL: i32 = 3;

/// One response's encoder.
pub(crate) enum Encoder {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Brotli(Option<Box<brotli::CompressorWriter<Vec<u8>>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Encoder {
    /// A new stream in `encoding`.
    pub(crate) fn new(encoding: Encoding) -> io::Result<Encoder> {
        Ok(match encoding {
            Encoding::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(GZIP_LEVEL),
            )),
            Encoding::Brotli => Encoder::Brotli(Some(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                4096,
                BROTLI_QUALITY,
                BROTLI_WINDOW,
            )))),
            Encoding::Zstd => {
                Encoder::Zstd(zstd::stream::write::Encoder::new(Vec::new(), ZSTD_LEVEL)?)
            }
        })
    }

    /// Compresses `data` and flushes: the compressed bytes so far.
    pub(crate) fn encode(&mut self, data: &[u8]) -> io::Result<Bytes> {
        match self {
            Encoder::Gzip(e) => {
                e.write_all(data)?;
                e.flush()?;
                Ok(take(e.get_mut()))
            }
            Encoder::Brotli(Some(e)) => {
                e.write_all(data)?;
                e.flush()?;
                Ok(take(e.get_mut()))
            }
            Encoder::Brotli(None) => Err(io::Error::other("brotli stream already finished")),
            Encoder::Zstd(e) => {
                e.write_all(data)?;
                e.flush()?;
                Ok(take(e.get_mut()))
            }
        }
    }

    /// Ends the stream: its last bytes.
    pub(crate) fn finish(&mut self) -> io::Result<Bytes> {
        match self {
            Encoder::Gzip(e) => {
                e.try_finish()?;
                Ok(take(e.get_mut()))
            }
            Encoder::Brotli(slot) => match slot.take() {
                // Taking the writer apart finishes its stream.
                Some(e) => Ok(Bytes::from(e.into_inner())),
                None => Ok(Bytes::new()),
            },
            Encoder::Zstd(e) => {
                e.do_finish()?;
                Ok(take(e.get_mut()))
            }
        }
    }
}

fn take(buf: &mut Vec<u8>) -> Bytes {
    Bytes::from(std::mem::take(buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn decode(encoding: Encoding, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match encoding {
            Encoding::Gzip => {
                flate2::read::GzDecoder::new(data)
                    .read_to_end(&mut out)
                    .unwrap();
            }
            Encoding::Brotli => {
                brotli::Decompressor::new(data, 4096)
                    .read_to_end(&mut out)
                    .unwrap();
            }
            Encoding::Zstd => out = zstd::stream::decode_all(data).unwrap(),
        }
        out
    }

    #[test]
    fn every_encoding_round_trips_and_flushes_each_chunk() {
        let text = "the same line of text again and again\n".repeat(400);
        for (_, encoding) in Encoding::ALL {
            let mut e = Encoder::new(encoding).unwrap();
            let mut all = Vec::new();
            for chunk in text.as_bytes().chunks(1000) {
                let out = e.encode(chunk).unwrap();
                assert!(
                    !out.is_empty(),
                    "{encoding:?}: a chunk in, bytes out (flushed)"
                );
                all.extend_from_slice(&out);
                // What was sent so far decodes to a prefix of the text (sync flush).
            }
            all.extend_from_slice(&e.finish().unwrap());
            assert_eq!(decode(encoding, &all), text.as_bytes(), "{encoding:?}");
            assert!(
                all.len() < text.len() / 5,
                "{encoding:?}: {} of {}",
                all.len(),
                text.len()
            );
        }
    }
}
