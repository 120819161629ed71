//! The spool: how a process that cannot open the store (another tagguard process owns it)
//! still records its scans. Each scan is written to a file of its own in `spool/` of the data
//! directory (written under a temporary name, then renamed, so a reader never sees half a
//! file); the process that owns the store merges the spool while it runs, and any process
//! that opens the store merges what is waiting first.
//!
//! A merged file's name is recorded in the store in the same transaction as its scan, and
//! the file is deleted only after that commit: a merge cut short by a crash is finished by the
//! next one, and a file whose name is already recorded is deleted without being stored again.
//! So no scan is lost, and none is recorded twice.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{StoreError, io_error};
use crate::domain::{Origin, ScanResult};

/// The spool directory's name in a data directory.
pub const SPOOL_DIR: &str = "spool";

/// The extension of spooled scans ready to merge.
const READY: &str = "scan.json";

/// A spooled scan, as written: borrowed, so handing a scan in copies nothing.
#[derive(Serialize)]
struct SpooledRef<'a> {
    format: u32,
    origin: &'a Origin,
    result: &'a ScanResult,
}

/// A spooled scan, as read back: what recording it needs.
#[derive(Debug, Deserialize)]
pub(crate) struct SpooledScan {
    /// The format of the file (1).
    pub format: u32,
    /// Who asked for the scan.
    pub origin: Origin,
    /// The scan.
    pub result: ScanResult,
}

/// The spool of one data directory.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

impl Spool {
    /// The spool of `data_dir`.
    pub fn of(data_dir: &Path) -> Spool {
        Spool {
            dir: data_dir.join(SPOOL_DIR),
        }
    }

    /// Writes a scan for the store's owner to record; returns the file's name.
    pub fn hand_in(&self, result: &ScanResult, origin: &Origin) -> Result<String, StoreError> {
        self.write(result.meta.scan_id.0, &Spool::encode(result, origin))
    }

    /// A scan as the spool keeps it: for [`Spool::write`], where encoding and writing happen
    /// on different threads.
    pub fn encode(result: &ScanResult, origin: &Origin) -> Vec<u8> {
        let spooled = SpooledRef {
            format: 1,
            origin,
            result,
        };
        serde_json::to_vec(&spooled).expect("a scan result serialises: plain data, string keys")
    }

    /// Writes the encoded scan `scan_id` for the store's owner to record; returns the file's
    /// name.
    pub fn write(&self, scan_id: u64, bytes: &[u8]) -> Result<String, StoreError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| io_error("spooling", e.kind()))?;
        let name = format!(
            "{scan_id}-{}-{}.{READY}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        );
        let temporary = self.dir.join(format!(".{name}.part"));
        let written = std::fs::File::create(&temporary).and_then(|mut file| {
            std::io::Write::write_all(&mut file, bytes)?;
            file.sync_all()
        });
        written
            .and_then(|()| std::fs::rename(&temporary, self.dir.join(&name)))
            .map_err(|e| {
                let _ = std::fs::remove_file(&temporary);
                io_error("spooling", e.kind())
            })?;
        Ok(name)
    }

    /// The files waiting to be merged, oldest scan first, by name. Temporary files an hour
    /// old (a writer that died before its rename) are deleted on the way.
    pub(crate) fn waiting(&self) -> Vec<(String, PathBuf)> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut files: Vec<(String, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().to_str()?.to_string();
                if name.starts_with('.') && name.ends_with(".part") {
                    let stale = entry
                        .metadata()
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > std::time::Duration::from_secs(3600));
                    if stale {
                        let _ = std::fs::remove_file(entry.path());
                    }
                    return None;
                }
                name.ends_with(READY).then(|| (name, entry.path()))
            })
            .collect();
        files.sort();
        files
    }

    /// Reads a spooled scan. An unreadable file is moved aside (`spool/unreadable/`), kept
    /// for a person to look at, and never merged.
    pub(crate) fn read(&self, path: &Path) -> Option<SpooledScan> {
        let read = std::fs::read(path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<SpooledScan>(&bytes).ok())
            .filter(|spooled| spooled.format == 1);
        if read.is_none() {
            let aside = self.dir.join("unreadable");
            let moved = std::fs::create_dir_all(&aside).and_then(|()| {
                std::fs::rename(path, aside.join(path.file_name().unwrap_or_default()))
            });
            tracing::warn!(
                file = %path.file_name().unwrap_or_default().to_string_lossy(),
                moved = moved.is_ok(),
                "a spooled scan could not be read; moved aside"
            );
        }
        read
    }

    /// Deletes a merged file.
    pub(crate) fn remove(&self, path: &Path) {
        if let Err(error) = std::fs::remove_file(path)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(error = %error.kind(), "a merged spool file could not be deleted; it will be skipped as merged");
        }
    }
}
