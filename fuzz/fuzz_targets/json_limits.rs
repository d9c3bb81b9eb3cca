//! The input limits of `service::validate` against independent statements of the same rules:
//! ids, text lengths, JSON depth and the JSON-looking text check.

#![no_main]

use brainstorm::error::ErrorCode;
use brainstorm::service::validate::{
    MAX_ID_LENGTH, MAX_JSON_DEPTH, MAX_NAME_LENGTH, MAX_OBJECT_BYTES, check_id, check_json_depth,
    check_json_text, check_text, json_depth, object_json,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Nesting depth computed without recursion, to compare with `json_depth`.
fn depth_by_walk(value: &Value) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(value, 0usize)];
    while let Some((value, above)) = pending.pop() {
        let children: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            Value::Object(fields) => fields.values().collect(),
            _ => continue,
        };
        deepest = deepest.max(above + 1);
        pending.extend(children.into_iter().map(|child| (child, above + 1)));
    }
    deepest
}

fn id_is_valid(text: &str) -> bool {
    let length = text.chars().count();
    (1..=MAX_ID_LENGTH).contains(&length)
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn check_ids(text: &str) {
    let outcome = check_id("project_id", text);
    assert_eq!(
        outcome.is_ok(),
        id_is_valid(text),
        "check_id({text:?}) = {outcome:?}"
    );
    if let Err(err) = outcome {
        let length = text.chars().count();
        let expected = match (1..=MAX_ID_LENGTH).contains(&length) {
            true => ErrorCode::InvalidIdFormat,
            false => ErrorCode::InvalidIdLength,
        };
        assert_eq!(err.code, expected, "check_id({text:?})");
        assert_eq!(err.details["argument"], "project_id");
    }
}

fn check_texts(text: &str) {
    let length = text.chars().count();
    for max in [0, 1, 7, MAX_NAME_LENGTH] {
        for required in [false, true] {
            let outcome = check_text("name", text, max, required);
            let expected = !(required && text.trim().is_empty()) && length <= max;
            assert_eq!(
                outcome.is_ok(),
                expected,
                "check_text({text:?}, {max}, {required}) = {outcome:?}"
            );
            if let Err(err) = outcome {
                assert_eq!(err.code, ErrorCode::InvalidParameter);
                assert_eq!(err.details["argument"], "name");
            }
        }
    }
}

fn check_json(text: &str) {
    let looks_like_json = {
        // Only JSON's own whitespace may stand before the value.
        let start = text.trim_start_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
        start.starts_with('{') || start.starts_with('[')
    };
    let parsed = serde_json::from_str::<Value>(text);
    let outcome = check_json_text("content", text);
    match &outcome {
        Ok(()) => {
            if looks_like_json {
                let value = parsed.as_ref().unwrap_or_else(|err| {
                    panic!("check_json_text accepted {text:?}, which does not parse: {err}")
                });
                let depth = depth_by_walk(value);
                assert!(
                    depth <= MAX_JSON_DEPTH,
                    "check_json_text accepted {text:?}, {depth} levels deep"
                );
            }
        }
        Err(err) => {
            assert!(
                looks_like_json,
                "check_json_text rejected plain text {text:?}: {err:?}"
            );
            match err.code {
                ErrorCode::InvalidJson => assert!(parsed.is_err(), "{text:?}: {err:?}"),
                ErrorCode::JsonTooDeep => {
                    if let Ok(value) = &parsed {
                        assert!(depth_by_walk(value) > MAX_JSON_DEPTH, "{text:?}: {err:?}");
                    }
                }
                other => panic!("check_json_text({text:?}) failed with {other}"),
            }
            assert_eq!(err.details["argument"], "content");
        }
    }
    // Text that looks like JSON, parses and is shallow enough must be accepted.
    if let Ok(value) = &parsed {
        if looks_like_json && depth_by_walk(value) <= MAX_JSON_DEPTH {
            assert!(
                outcome.is_ok(),
                "check_json_text rejected {text:?}: {outcome:?}"
            );
        }
        check_value(value);
    }
}

fn check_value(value: &Value) {
    let depth = json_depth(value);
    assert_eq!(depth, depth_by_walk(value), "json_depth of {value}");
    let outcome = check_json_depth("payload", value);
    assert_eq!(
        outcome.is_ok(),
        depth <= MAX_JSON_DEPTH,
        "check_json_depth: {outcome:?}"
    );
    if let Err(err) = outcome {
        assert_eq!(err.code, ErrorCode::JsonTooDeep);
    }
    let Value::Object(object) = value else {
        return;
    };
    match object_json("context", object) {
        Ok(text) => {
            assert!(
                depth <= MAX_JSON_DEPTH,
                "object_json accepted {depth} levels"
            );
            assert!(
                text.len() <= MAX_OBJECT_BYTES,
                "object_json accepted {} bytes",
                text.len()
            );
            let back: Value = serde_json::from_str(&text)
                .unwrap_or_else(|err| panic!("object_json wrote {text:?}, which fails: {err}"));
            assert!(
                back == *value,
                "object_json changed {value} to {back}"
            );
        }
        Err(err) => {
            let too_big = value.to_string().len() > MAX_OBJECT_BYTES;
            assert!(
                depth > MAX_JSON_DEPTH || too_big,
                "object_json rejected {value}: {err:?}"
            );
            assert_eq!(err.details["argument"], "context");
        }
    }
}

fuzz_target!(|bytes: &[u8]| {
    let text = String::from_utf8_lossy(bytes);
    check_ids(&text);
    check_texts(&text);
    check_json(&text);
});
