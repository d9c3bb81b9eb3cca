//! Record encoding: one format-version byte, then the record in bincode.
//!
//! The leading byte lets a migration change the encoding of a table: a decoder that meets a
//! version it does not know fails with [`StorageError::UnknownFormat`] instead of misreading.

use bincode::error::DecodeError;
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
    decode_body(body).map_err(|source| StorageError::Decode { table, source })
}

/// Maximum bytes bincode claims per byte of a valid record: a varint integer claims the 8 bytes
/// of its in-memory width, however short its encoding, and no field of a record claims more.
/// A `u128` field would claim 16, so adding one means raising this.
const CLAIMS_PER_BYTE: usize = 8;

/// Decodes a record body under a limit on the bytes bincode may claim.
///
/// bincode allocates what a length prefix announces before it reads the bytes, so without a
/// limit one damaged prefix claiming 2^60 bytes aborts the process. A valid body claims at
/// most [`CLAIMS_PER_BYTE`] per byte, so the limit is the first step above that: what a
/// damaged body can make bincode allocate stays within a small multiple of its own size.
fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, DecodeError> {
    let needed = body
        .len()
        .saturating_mul(CLAIMS_PER_BYTE)
        .saturating_add(64);
    // The limit is a type parameter of bincode's configuration, hence one call per step.
    macro_rules! first_step_above_needed {
        ($($limit:expr),*) => {$(
            if needed <= $limit {
                return decode_within::<T, { $limit }>(body);
            }
        )*};
    }
    first_step_above_needed!(1 << 16, 1 << 20, 1 << 24, 1 << 28);
    #[cfg(target_pointer_width = "64")]
    first_step_above_needed!(1 << 32, 1 << 36);
    // On a 64-bit target only a body over 8 GiB gets here, and redb stores no value over 3 GiB.
    decode_within::<T, { usize::MAX }>(body)
}

fn decode_within<T: DeserializeOwned, const LIMIT: usize>(body: &[u8]) -> Result<T, DecodeError> {
    let config = config().with_limit::<LIMIT>();
    bincode::serde::decode_from_slice(body, config).map(|(record, _)| record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::records::{HistoryRecord, ProjectRecord};

    fn history(content_bytes: usize) -> HistoryRecord {
        HistoryRecord {
            version: u64::MAX,
            etag: "e".repeat(40),
            author: "agent-1".to_owned(),
            at_ms: i64::MIN,
            size_bytes: content_bytes as u64,
            content_hash: "sha256:00".to_owned(),
            content: (0..content_bytes).map(|i| (i % 251) as u8).collect(),
        }
    }

    #[test]
    fn decode_rejects_length_prefix_beyond_record() {
        // Found by the record_decoding fuzz target: an empty project id, then a name whose
        // u32 length prefix announces 4 GiB in a 7-byte record.
        let found = [FORMAT_VERSION, 0x00, 0xfc, 0xf7, 0x01, 0x40, 0xf7];
        // The same with a u64 prefix announcing 2^60 bytes, which no allocator can serve:
        // before the limit this aborted the whole test binary.
        let mut huge = vec![FORMAT_VERSION, 0x00, 0xfd];
        huge.extend((1u64 << 60).to_le_bytes());
        for bytes in [&found[..], &huge[..]] {
            let err = decode::<ProjectRecord>("projects", bytes).unwrap_err();
            assert!(
                matches!(
                    err,
                    StorageError::Decode {
                        table: "projects",
                        ..
                    }
                ),
                "{err:?}"
            );
        }
    }

    #[test]
    fn decode_round_trips_at_each_limit_step() {
        // Bodies just under the first three steps of the limit, and one inside the fourth.
        for content_bytes in [0, 8_000, 130_000, 2_000_000, 3_000_000] {
            let record = history(content_bytes);
            let bytes = encode(&record).unwrap();
            let decoded: HistoryRecord = decode("history", &bytes).unwrap();
            assert_eq!(decoded, record, "content of {content_bytes} bytes");
        }
    }
}
