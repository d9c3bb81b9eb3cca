//! Etags: 16 lowercase hex digits, fresh and unpredictable on every write.

use sha2::{Digest, Sha256};

/// Creates a new etag from the current time and a random UUID.
pub fn new_etag() -> String {
    let mut hasher = Sha256::new();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    hasher.update(nanos.to_le_bytes());
    hasher.update(uuid::Uuid::new_v4().as_bytes());
    hasher
        .finalize()
        .iter()
        .take(8)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn etag_is_sixteen_hex_digits() {
        let etag = super::new_etag();
        assert_eq!(etag.len(), 16);
        assert!(
            etag.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(etag, super::new_etag());
    }
}
