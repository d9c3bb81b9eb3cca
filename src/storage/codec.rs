//! Record encoding: one format-version byte, then the record in bincode.
//!
//! The leading byte lets a migration change the encoding of a table: a decoder that meets a
//! version it does not know fails with [`StorageError::UnknownFormat`] instead of misreading.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StorageError;

/// Format version written in front of every record.
pub const FORMAT_VERSION: u8 = 1;

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes a record behind the current format-version byte.
pub fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>, StorageError> {
    let mut bytes = vec![FORMAT_VERSION];
    bytes.extend(bincode::serde::encode_to_vec(record, config())?);
    Ok(bytes)
}

/// Decodes a record of `table` written by [`encode`].
pub fn decode<T: DeserializeOwned>(table: &'static str, bytes: &[u8]) -> Result<T, StorageError> {
    let (&version, body) = bytes
        .split_first()
        .ok_or(StorageError::EmptyRecord { table })?;
    if version != FORMAT_VERSION {
        return Err(StorageError::UnknownFormat { table, version });
    }
    let (record, _) = bincode::serde::decode_from_slice(body, config())
        .map_err(|source| StorageError::Decode { table, source })?;
    Ok(record)
}
