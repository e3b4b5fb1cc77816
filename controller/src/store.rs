//! The last applied pushed config on local disk, so a node starts and serves with NATS down.
//!
//! Two files in the state folder: `routing.doc` (the document as pushed) and `routing.revision` (its KV
//! revision). Each is written to a temporary file and renamed, revision last, so a crash leaves either
//! the old pair or the new document with the old revision (which is then re-applied, harmlessly).

use std::io;
use std::path::{Path, PathBuf};

/// The state folder.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// A store in `dir` (created on first save).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Store { dir: dir.into() }
    }

    fn doc(&self) -> PathBuf {
        self.dir.join("routing.doc")
    }

    fn revision(&self) -> PathBuf {
        self.dir.join("routing.revision")
    }

    /// Saves an applied revision.
    pub fn save(&self, revision: u64, text: &str) -> io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        write_atomic(&self.doc(), text.as_bytes())?;
        write_atomic(&self.revision(), revision.to_string().as_bytes())
    }

    /// The last saved revision and document, if any.
    pub fn load(&self) -> io::Result<Option<(u64, String)>> {
        let text = match std::fs::read_to_string(self.doc()) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let revision = std::fs::read_to_string(self.revision())?
            .trim()
            .parse()
            .map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidData, format!("routing.revision: {e}"))
            })?;
        Ok(Some((revision, text)))
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("state"));
        assert!(store.load().unwrap().is_none());
        store.save(7, "doc seven").unwrap();
        store.save(9, "doc nine").unwrap();
        assert_eq!(store.load().unwrap(), Some((9, "doc nine".to_string())));
    }
}
