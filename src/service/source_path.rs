//! Reading a resource's content from a file in the user's home folder.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use crate::config::home_dir;
use crate::error::{ErrorCode, ServiceError, ServiceResult};

fn path_error(source_path: &str, code: ErrorCode, reason: &str) -> ServiceError {
    ServiceError::new(code, format!("source_path {source_path:?} {reason}"))
        .with("source_path", source_path)
}

/// Reads the file at `source_path` for a resource.
///
/// The path must be absolute, free of `..` and `~`, and inside the home folder once symbolic
/// links are resolved. It must name a readable regular file of UTF-8 text no larger than
/// `max_bytes`.
pub fn read_source(source_path: &str, max_bytes: usize) -> ServiceResult<String> {
    let resolved = resolve_inside_home(source_path)?;
    let bytes = read_limited(source_path, &resolved, max_bytes)?;
    String::from_utf8(bytes).map_err(|_| {
        ServiceError::invalid_parameter(
            "source_path",
            format!("source_path {source_path:?} is not UTF-8 text; only text files can be stored"),
        )
    })
}

/// Checks the path's form and returns it with symbolic links resolved, inside the home folder.
fn resolve_inside_home(source_path: &str) -> ServiceResult<PathBuf> {
    let error = |code, reason: &str| Err(path_error(source_path, code, reason));
    let path = Path::new(source_path);
    if !path.is_absolute() || source_path.contains('~') || source_path.contains('\0') {
        return error(
            ErrorCode::UnsafePath,
            "must be an absolute path without '~'",
        );
    }
    if path
        .components()
        .any(|part| matches!(part, Component::ParentDir))
    {
        return error(ErrorCode::UnsafePath, "must not contain '..'");
    }

    let Some(home) = home_dir() else {
        return error(
            ErrorCode::PathOutsideHome,
            "cannot be checked: HOME is not set",
        );
    };
    let home = std::fs::canonicalize(&home).unwrap_or(home);
    if !path.starts_with(&home) {
        let reason = format!("is outside the home folder {}", home.display());
        return error(ErrorCode::PathOutsideHome, &reason);
    }
    let resolved = match std::fs::canonicalize(path) {
        Ok(resolved) => resolved,
        Err(err) => {
            return error(
                ErrorCode::FileNotAccessible,
                &format!("cannot be read: {err}"),
            );
        }
    };
    if !resolved.starts_with(&home) {
        return error(
            ErrorCode::PathOutsideHome,
            "links to a file outside the home folder",
        );
    }
    Ok(resolved)
}

/// Reads a regular file of at most `max_bytes`.
fn read_limited(source_path: &str, resolved: &Path, max_bytes: usize) -> ServiceResult<Vec<u8>> {
    let error = |code, reason: &str| Err(path_error(source_path, code, reason));
    let metadata = match std::fs::metadata(resolved) {
        Ok(metadata) => metadata,
        Err(err) => {
            return error(
                ErrorCode::FileNotAccessible,
                &format!("cannot be read: {err}"),
            );
        }
    };
    if !metadata.is_file() {
        return error(ErrorCode::NotAFile, "is not a regular file");
    }
    if metadata.len() > max_bytes as u64 {
        return Err(ServiceError::new(
            ErrorCode::FileTooLarge,
            format!(
                "source_path {source_path:?} is {} bytes; the maximum is {max_bytes} bytes",
                metadata.len()
            ),
        )
        .with("size_bytes", metadata.len())
        .with("max_bytes", max_bytes));
    }

    // The file may grow between the size check and the read, so one byte past the limit is
    // read to notice.
    let mut bytes = Vec::new();
    let read = std::fs::File::open(resolved)
        .and_then(|file| file.take(max_bytes as u64 + 1).read_to_end(&mut bytes));
    match read {
        Ok(_) if bytes.len() > max_bytes => error(
            ErrorCode::FileTooLarge,
            &format!("grew past {max_bytes} bytes while being read"),
        ),
        Ok(_) => Ok(bytes),
        Err(err) => error(
            ErrorCode::FileNotAccessible,
            &format!("cannot be read: {err}"),
        ),
    }
}
