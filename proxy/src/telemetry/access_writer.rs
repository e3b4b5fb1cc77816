//! The access log's logger and writer: request tasks hand finished lines to a bounded queue and never wait; a
//! thread of its own writes them (buffered, flushed whenever the queue runs empty). A full queue
//! drops the line and counts it, so a slow disk or a blocked pipe costs log lines, never latency. A
//! log file moved or removed (log rotation) is opened again under its name within a second.

use crate::telemetry::Telemetry;
use edgeplane_config::model::{AccessLog, LineFormat, LogOutput};
use metrics::Counter;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

/// How often the writer checks whether its log file was moved away.
const REOPEN_CHECK: Duration = Duration::from_secs(1);

/// How the node logs requests.
#[derive(Debug)]
pub(crate) enum AccessLogger {
    /// As `tracing` events.
    Tracing,
    /// As lines of this format, written by the sink's thread.
    Lines(LineFormat, AccessSink),
}

impl AccessLogger {
    /// The logger `config` asks for; lines of its own start their writer thread (and open their
    /// file), with their drop and error counters in `telemetry`.
    pub(crate) fn start(
        config: &AccessLog,
        telemetry: Option<&Telemetry>,
    ) -> std::io::Result<AccessLogger> {
        let lines = match config {
            AccessLog::Tracing => return Ok(AccessLogger::Tracing),
            AccessLog::Lines(lines) => lines,
        };
        let counter =
            |name| telemetry.map_or_else(metrics::Counter::noop, |t| t.counter(name, &[]));
        let sink = AccessSink::start(
            &lines.output,
            lines.buffer_lines,
            counter("edgeplane_access_log_dropped_lines_total"),
            counter("edgeplane_access_log_write_errors_total"),
        )?;
        Ok(AccessLogger::Lines(lines.format.clone(), sink))
    }
}

/// The request side of the access log: hands lines to the writer thread.
#[derive(Debug)]
pub(crate) struct AccessSink {
    lines: SyncSender<String>,
    dropped: Counter,
}

impl AccessSink {
    /// Opens `output` (a file is created if absent and appended to) and starts the writer thread,
    /// which queues at most `buffer_lines` lines; it ends once every sink is dropped.
    pub(crate) fn start(
        output: &LogOutput,
        buffer_lines: usize,
        dropped: Counter,
        write_errors: Counter,
    ) -> io::Result<AccessSink> {
        let target = match output {
            LogOutput::Stdout => Target::Stdout,
            LogOutput::Stderr => Target::Stderr,
            LogOutput::File(path) => Target::File(LogFile::open(path).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display()))
            })?),
        };
        let (lines, rx) = mpsc::sync_channel(buffer_lines);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_lines(rx, target, write_errors))?;
        Ok(AccessSink { lines, dropped })
    }

    /// Queues a finished line (without its line break); drops and counts it when the queue is full.
    pub(crate) fn send(&self, line: String) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.lines.try_send(line)
        {
            self.dropped.increment(1);
        }
    }
}

/// Where the writer writes.
enum Target {
    Stdout,
    Stderr,
    File(LogFile),
}

/// A log file and the identity of what it was opened as.
struct LogFile {
    path: PathBuf,
    out: BufWriter<File>,
    identity: Option<(u64, u64)>,
}

impl LogFile {
    fn open(path: &Path) -> io::Result<LogFile> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let identity = identity(&file.metadata()?);
        Ok(LogFile {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(64 * 1024, file),
            identity,
        })
    }

    /// Whether the path no longer names the open file (moved, removed or replaced).
    fn moved(&self) -> bool {
        match std::fs::metadata(&self.path) {
            Ok(meta) => identity(&meta) != self.identity,
            Err(_) => true,
        }
    }
}

#[cfg(unix)]
fn identity(meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn identity(_: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}

impl Target {
    fn write(&mut self, line: &str) -> io::Result<()> {
        let out: &mut dyn Write = match self {
            Target::Stdout => &mut io::stdout().lock(),
            Target::Stderr => &mut io::stderr().lock(),
            Target::File(f) => &mut f.out,
        };
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Target::Stdout => io::stdout().flush(),
            Target::Stderr => Ok(()),
            Target::File(f) => f.out.flush(),
        }
    }

    /// Opens the log file again if it was moved away (after flushing what went to the old one).
    fn follow_rotation(&mut self) -> io::Result<()> {
        let Target::File(f) = self else {
            return Ok(());
        };
        if f.moved() {
            f.out.flush()?;
            *f = LogFile::open(&f.path)?;
        }
        Ok(())
    }
}

/// The writer thread's loop.
fn write_lines(rx: Receiver<String>, mut target: Target, errors: Counter) {
    let mut checked = Instant::now();
    let mut failing = false;
    let mut report = |result: io::Result<()>| match result {
        Ok(()) => failing = false,
        Err(e) => {
            errors.increment(1);
            if !failing {
                tracing::warn!(error = %e, "access log: cannot write; lines are lost until it can");
            }
            failing = true;
        }
    };
    loop {
        let line = match rx.try_recv() {
            Ok(line) => Some(line),
            Err(mpsc::TryRecvError::Empty) => {
                report(target.flush());
                match rx.recv_timeout(REOPEN_CHECK) {
                    Ok(line) => Some(line),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            Err(mpsc::TryRecvError::Disconnected) => break,
        };
        if checked.elapsed() >= REOPEN_CHECK {
            checked = Instant::now();
            report(target.follow_rotation());
        }
        if let Some(line) = line {
            report(target.write(&line));
        }
    }
    report(target.flush());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_for(path: &Path, want: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if text.contains(want) || Instant::now() > deadline {
                return text;
            }
            std::thread::yield_now();
        }
    }

    #[test]
    fn lines_reach_the_file_and_follow_its_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let output = LogOutput::File(path.clone());
        let sink = AccessSink::start(&output, 16, Counter::noop(), Counter::noop()).unwrap();
        sink.send("first".into());
        assert_eq!(wait_for(&path, "first"), "first\n");
        let rotated = dir.path().join("access.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        // Lines written before the writer notices go to the moved file; later ones to a new file.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut n = 0;
        while !std::fs::read_to_string(&path).is_ok_and(|t| t.contains("later")) {
            assert!(Instant::now() < deadline, "no new file after the rotation");
            n += 1;
            sink.send(format!("later {n}"));
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(std::fs::read_to_string(&rotated)
            .unwrap()
            .starts_with("first\n"));
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let t = crate::telemetry::Telemetry::new();
        let name = "edgeplane_access_log_dropped_lines_total";
        let sink = AccessSink::start(
            &LogOutput::File(path.clone()),
            1,
            t.counter(name, &[]),
            Counter::noop(),
        )
        .unwrap();
        for i in 0..10_000 {
            sink.send(format!("line {i}"));
        }
        drop(sink);
        let rendered = t.render();
        let counted: u64 = rendered
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0);
        let deadline = Instant::now() + Duration::from_secs(5);
        let written = loop {
            let n = std::fs::read_to_string(&path)
                .unwrap_or_default()
                .lines()
                .count() as u64;
            if n + counted == 10_000 || Instant::now() > deadline {
                break n;
            }
            std::thread::yield_now();
        };
        assert!(
            counted > 0,
            "a queue of one line took 10,000 without a drop"
        );
        assert_eq!(
            written + counted,
            10_000,
            "every line is written or counted"
        );
    }
}
