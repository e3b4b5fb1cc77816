//! Lines with file descriptors attached, over a Unix stream socket (`SCM_RIGHTS`).

use super::{MAX_LINE, MAX_SOCKETS};
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

/// Sends `line` (which ends with `\n`) with `fds` attached to its first bytes.
pub(super) fn send(stream: &UnixStream, line: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other("cannot attach the sockets"));
    }
    let sent = rustix::net::sendmsg(
        stream,
        &[IoSlice::new(line)],
        &mut control,
        SendFlags::empty(),
    )?;
    let mut rest = stream;
    rest.write_all(&line[sent..])
}

/// Receives one line (without its `\n`) and the descriptors attached to it. The descriptors come
/// with the line's first byte; the rest is read without reading past the line.
pub(super) fn recv(stream: &UnixStream) -> io::Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_SOCKETS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut first = [0u8; 1];
    let got = rustix::net::recvmsg(
        stream,
        &mut [IoSliceMut::new(&mut first)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    if got.flags.contains(ReturnFlags::CTRUNC) {
        return Err(io::Error::other(format!(
            "more than {MAX_SOCKETS} sockets were attached"
        )));
    }
    if got.bytes == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    if first[0] == b'\n' {
        return Ok((Vec::new(), fds));
    }
    let mut line = vec![first[0]];
    match read_line(stream)? {
        Some(rest) => line.extend(rest),
        None => return Err(io::ErrorKind::UnexpectedEof.into()),
    }
    Ok((line, fds))
}

/// Reads one line (without its `\n`) with no descriptors, one byte at a time so that nothing after
/// it is consumed; `None` at end of stream before any byte.
pub(super) fn read_line(stream: &UnixStream) -> io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let mut reader = stream;
    let mut byte = [0u8; 1];
    loop {
        if reader.read(&mut byte)? == 0 {
            return if line.is_empty() {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        if byte[0] == b'\n' {
            return Ok(Some(line));
        }
        if line.len() >= MAX_LINE {
            return Err(io::Error::other("line too long"));
        }
        line.push(byte[0]);
    }
}

/// Writes `value` as one JSON line.
pub(super) fn write_json(stream: &UnixStream, value: &impl serde::Serialize) -> io::Result<()> {
    let mut line = serde_json::to_vec(value).map_err(io::Error::other)?;
    line.push(b'\n');
    let mut writer = stream;
    writer.write_all(&line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_line_and_its_sockets_arrive_together() {
        let (a, b) = UnixStream::pair().unwrap();
        let l1 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let l2 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        send(&a, b"{\"x\":1}\n", &[l1.as_fd(), l2.as_fd()]).unwrap();
        write_json(&a, &serde_json::json!({"after": true})).unwrap();
        let (line, fds) = recv(&b).unwrap();
        assert_eq!(line, b"{\"x\":1}");
        assert_eq!(fds.len(), 2);
        let got: Vec<_> = fds
            .into_iter()
            .map(|fd| std::net::TcpListener::from(fd).local_addr().unwrap())
            .collect();
        assert_eq!(got, [l1.local_addr().unwrap(), l2.local_addr().unwrap()]);
        assert_eq!(read_line(&b).unwrap().unwrap(), b"{\"after\":true}");
        drop(a);
        assert_eq!(read_line(&b).unwrap(), None);
    }
}
