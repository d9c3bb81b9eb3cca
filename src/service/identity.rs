//! Client identity: which client a call acts for.
//!
//! A client is one working directory (its id is derived from the path) unless
//! `BRAINSTORM_CLIENT_ID` names it explicitly.

use sha2::{Digest, Sha256};

use crate::error::{ErrorCode, ServiceError, ServiceResult};

/// Maximum length of a working directory, in bytes.
pub const MAX_PATH_LENGTH: usize = 4096;
/// Maximum length of a client id override, in characters after trimming.
pub const MAX_CLIENT_ID_LENGTH: usize = 256;

/// The client a call acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub client_id: String,
    pub working_directory: String,
}

impl Identity {
    /// Builds the identity of a working directory, or of `client_id_override` when given.
    ///
    /// Fails with `INVALID_WORKING_DIRECTORY` unless the path is absolute and normalized.
    pub fn resolve(
        working_directory: &str,
        client_id_override: Option<&str>,
    ) -> ServiceResult<Self> {
        check_working_directory(working_directory)?;
        // A trailing slash names the same folder, so it must not give a second identity.
        let folder = match working_directory.strip_suffix('/') {
            Some(trimmed) if !trimmed.is_empty() => trimmed,
            _ => working_directory,
        };
        let client_id = match client_id_override {
            Some(id) => id.to_owned(),
            None => client_id_for_path(folder),
        };
        Ok(Identity {
            client_id,
            working_directory: folder.to_owned(),
        })
    }
}

/// Checks that a working directory is absolute and normalized (no `.`, `..` or empty segment).
pub fn check_working_directory(path: &str) -> ServiceResult<()> {
    let invalid = |reason: &str| {
        Err(ServiceError::new(
            ErrorCode::InvalidWorkingDirectory,
            format!("working_directory {path:?} {reason}; pass the absolute, normalized path of the agent's project folder"),
        )
        .with("working_directory", path))
    };
    if !path.starts_with('/') {
        return invalid("is not absolute");
    }
    if path.len() > MAX_PATH_LENGTH {
        return invalid("is too long");
    }
    if path.contains('\0') {
        return invalid("contains a NUL character");
    }
    if path == "/" {
        return Ok(());
    }
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    if trimmed[1..]
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return invalid("is not normalized");
    }
    Ok(())
}

/// Derives a client id from a path: the first 32 hex digits of its SHA-256, as a UUID.
pub fn client_id_for_path(path: &str) -> String {
    let digest = Sha256::digest(path.as_bytes());
    let hex: String = digest
        .iter()
        .take(16)
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Checks a `BRAINSTORM_CLIENT_ID` value and returns it trimmed.
pub fn check_client_id_override(value: &str) -> Result<String, String> {
    let trimmed = value.trim();
    let length = trimmed.chars().count();
    if length == 0 || length > MAX_CLIENT_ID_LENGTH {
        return Err(format!(
            "BRAINSTORM_CLIENT_ID must be 1 to {MAX_CLIENT_ID_LENGTH} characters after trimming, got {length}"
        ));
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_id_is_uuid_shaped() {
        let id = client_id_for_path("/home/agent/work/frontend");
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
    }

    #[test]
    fn working_directory_must_be_normalized() {
        assert!(check_working_directory("/home/a").is_ok());
        assert!(check_working_directory("/home/a/").is_ok());
        assert!(check_working_directory("/").is_ok());
        for bad in ["home/a", "/home/../a", "/home/./a", "/home//a", ""] {
            let err = check_working_directory(bad).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidWorkingDirectory, "{bad}");
        }
    }
}
