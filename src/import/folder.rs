//! Reading the original's folder safely: listing without following links, bounded reads,
//! and telling leftovers from data.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::ImportReport;

/// One entry of a folder, with its path relative to the imported folder for the report.
pub(super) struct Entry {
    pub name: String,
    pub path: PathBuf,
    pub relative: String,
    pub is_dir: bool,
}

/// Lists a folder sorted by name. Symbolic links, names that are not UTF-8 and entries that
/// are neither files nor folders are reported and left out, so no path is ever built from
/// anything but a checked name.
pub(super) fn list(report: &mut ImportReport, dir: &Path, relative: &str) -> Vec<Entry> {
    let reader = match std::fs::read_dir(dir) {
        Ok(reader) => reader,
        Err(err) => {
            report.skip(relative, format!("cannot be read: {err}"));
            return Vec::new();
        }
    };
    let mut entries = Vec::new();
    for entry in reader {
        let entry = match entry {
            Ok(entry) => entry,
            Err(err) => {
                report.skip(relative, format!("cannot be listed: {err}"));
                continue;
            }
        };
        let raw = entry.file_name();
        let Some(name) = raw.to_str().map(str::to_owned) else {
            let lossy = raw.to_string_lossy();
            report.skip(&format!("{relative}/{lossy}"), "name is not UTF-8");
            continue;
        };
        let entry_relative = if relative.is_empty() {
            name.clone()
        } else {
            format!("{relative}/{name}")
        };
        let kind = match entry.file_type() {
            Ok(kind) => kind,
            Err(err) => {
                report.skip(&entry_relative, format!("cannot be read: {err}"));
                continue;
            }
        };
        if kind.is_symlink() {
            report.skip(
                &entry_relative,
                "is a symbolic link, which the import does not follow",
            );
            continue;
        }
        if !kind.is_dir() && !kind.is_file() {
            report.skip(&entry_relative, "is neither a file nor a folder");
            continue;
        }
        entries.push(Entry {
            path: entry.path(),
            relative: entry_relative,
            is_dir: kind.is_dir(),
            name,
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    entries
}

/// Reports a leftover of the original's normal work and returns true, or returns false.
pub(super) fn is_leftover(report: &mut ImportReport, entry: &Entry) -> bool {
    let why = if entry.name.ends_with(".tmp") {
        "temporary file of an interrupted write"
    } else if entry.name.ends_with(".lock") {
        "lock file"
    } else {
        return false;
    };
    report.ignore(&entry.relative, why);
    true
}

/// Reports an entry that the original's layout has no place for.
pub(super) fn unexpected(report: &mut ImportReport, entry: &Entry) {
    if !is_leftover(report, entry) {
        report.skip(
            &entry.relative,
            "is not part of the original server's layout",
        );
    }
}

/// Reads a whole file of at most `limit` bytes.
pub(super) fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|err| format!("cannot be read: {err}"))?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| format!("cannot be read: {err}"))?;
    if bytes.len() as u64 > limit {
        return Err(format!("is larger than {limit} bytes"));
    }
    Ok(bytes)
}
