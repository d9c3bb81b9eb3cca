//! Stored bytes of every record type: decoding fails cleanly on damaged input, allocates no
//! more than the input can describe, and whatever decodes survives an encode/decode round trip.

#![no_main]

use std::fmt::Debug;

use brainstorm::storage::records::{
    AuditRecord, ClientRecord, HistoryRecord, LogEntryRecord, ManifestRecord, MemberRecord,
    MembershipRecord, MessageRecord, ProjectRecord,
};
use brainstorm::storage::{decode, encode};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Decodes `bytes` as a record of one table. A record that decodes must encode again and
/// decode to an equal value.
fn round_trip<R>(table: &'static str, bytes: &[u8])
where
    R: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let Ok(record) = decode::<R>(table, bytes) else {
        return;
    };
    let encoded = encode(&record)
        .unwrap_or_else(|err| panic!("{table}: decoded record {record:?} does not encode: {err}"));
    let again = decode::<R>(table, &encoded).unwrap_or_else(|err| {
        panic!("{table}: re-encoded record {record:?} does not decode: {err}")
    });
    assert_eq!(again, record, "{table}: the round trip changed the record");
}

fuzz_target!(|bytes: &[u8]| {
    round_trip::<ProjectRecord>("projects", bytes);
    round_trip::<MemberRecord>("members", bytes);
    round_trip::<MessageRecord>("inbox", bytes);
    round_trip::<ManifestRecord>("manifests", bytes);
    round_trip::<HistoryRecord>("history", bytes);
    round_trip::<LogEntryRecord>("log_entries", bytes);
    round_trip::<AuditRecord>("audit", bytes);
    round_trip::<ClientRecord>("clients", bytes);
    round_trip::<MembershipRecord>("memberships", bytes);
});
