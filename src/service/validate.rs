//! Input checks that run before any storage access.

use serde_json::Value;

use crate::error::{ErrorCode, ServiceError, ServiceResult};

/// Maximum identifier length, in characters.
pub const MAX_ID_LENGTH: usize = 256;
/// Maximum length of a name (of a project or resource), a MIME type or a trace id, in
/// characters.
pub const MAX_NAME_LENGTH: usize = 256;
/// Maximum length of a description, a reason or a path, in characters.
pub const MAX_TEXT_LENGTH: usize = 4096;
/// Maximum size of a JSON object argument (project context, metadata), in bytes of JSON text.
pub const MAX_OBJECT_BYTES: usize = 65_536;

/// Checks the length of a text argument; `required` also rejects an empty or blank one.
pub fn check_text(
    argument: &str,
    value: &str,
    max_chars: usize,
    required: bool,
) -> ServiceResult<()> {
    if required && value.trim().is_empty() {
        return Err(ServiceError::invalid_parameter(
            argument,
            format!("{argument} must not be empty"),
        ));
    }
    let length = value.chars().count();
    if length > max_chars {
        return Err(ServiceError::invalid_parameter(
            argument,
            format!("{argument} is {length} characters long; the maximum is {max_chars}"),
        )
        .with("max_length", max_chars));
    }
    Ok(())
}

/// Checks an optional text argument's length.
pub fn check_optional_text(
    argument: &str,
    value: Option<&str>,
    max_chars: usize,
) -> ServiceResult<()> {
    value.map_or(Ok(()), |value| {
        check_text(argument, value, max_chars, false)
    })
}

/// Checks a JSON object argument's depth and size, and returns it as JSON text.
pub fn object_json(
    argument: &str,
    object: &serde_json::Map<String, Value>,
) -> ServiceResult<String> {
    let value = Value::Object(object.clone());
    check_json_depth(argument, &value)?;
    let text = value.to_string();
    if text.len() > MAX_OBJECT_BYTES {
        return Err(ServiceError::invalid_parameter(
            argument,
            format!(
                "{argument} is {} bytes of JSON; the maximum is {MAX_OBJECT_BYTES}",
                text.len()
            ),
        )
        .with("max_bytes", MAX_OBJECT_BYTES));
    }
    Ok(text)
}

/// Deepest JSON nesting accepted in content, payloads and objects.
pub const MAX_JSON_DEPTH: usize = 100;

/// Checks an identifier: 1 to 256 characters of `A-Z a-z 0-9 _ -`.
///
/// `argument` names the argument in the error, so that the caller knows which value to fix.
pub fn check_id(argument: &str, value: &str) -> ServiceResult<()> {
    if value.is_empty() || value.chars().count() > MAX_ID_LENGTH {
        return Err(ServiceError::new(
            ErrorCode::InvalidIdLength,
            format!(
                "{argument} must be 1 to {MAX_ID_LENGTH} characters long, got {}",
                value.chars().count()
            ),
        )
        .with("argument", argument)
        .with("length", value.chars().count()));
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(ServiceError::new(
            ErrorCode::InvalidIdFormat,
            format!(
                "{argument} {value:?} contains {bad:?}; use only letters A-Z a-z, digits, '_' and '-'"
            ),
        )
        .with("argument", argument)
        .with("value", value));
    }
    Ok(())
}

/// Returns the nesting depth of a JSON value: 0 for a scalar, 1 for a flat array or object.
pub fn json_depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(json_depth).max().unwrap_or(0),
        Value::Object(fields) => 1 + fields.values().map(json_depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Checks that a JSON argument nests no deeper than [`MAX_JSON_DEPTH`].
pub fn check_json_depth(argument: &str, value: &Value) -> ServiceResult<()> {
    let depth = json_depth(value);
    if depth > MAX_JSON_DEPTH {
        return Err(too_deep(argument, depth));
    }
    Ok(())
}

fn too_deep(argument: &str, depth: usize) -> ServiceError {
    ServiceError::new(
        ErrorCode::JsonTooDeep,
        format!("{argument} nests {depth} levels deep; the maximum is {MAX_JSON_DEPTH}"),
    )
    .with("argument", argument)
    .with("max_depth", MAX_JSON_DEPTH)
}

/// Checks text content that looks like JSON (it starts with `{` or `[`): it must parse and
/// nest no deeper than [`MAX_JSON_DEPTH`]. Other text is accepted as it is.
pub fn check_json_text(argument: &str, text: &str) -> ServiceResult<()> {
    // JSON allows only these four whitespace characters before a value.
    let trimmed = text.trim_start_matches([' ', '\t', '\n', '\r']);
    if !(trimmed.starts_with('{') || trimmed.starts_with('[')) {
        return Ok(());
    }
    // The depth is scanned before parsing: serde_json stops at its own recursion limit (128)
    // with a syntax error, which would hide the real problem.
    let depth = scan_depth(trimmed);
    if depth > MAX_JSON_DEPTH {
        return Err(too_deep(argument, depth));
    }
    serde_json::from_str::<Value>(text).map_err(|err| {
        ServiceError::new(
            ErrorCode::InvalidJson,
            format!(
                "{argument} starts with '{{' or '[' but is not valid JSON: {err}; fix the JSON, \
                 or store it as plain text that does not start with '{{' or '['"
            ),
        )
        .with("argument", argument)
        .with("line", err.line())
        .with("column", err.column())
    })?;
    Ok(())
}

/// Returns the deepest bracket nesting in JSON text, ignoring brackets inside strings.
fn scan_depth(text: &str) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for byte in text.bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_nesting() {
        assert_eq!(json_depth(&serde_json::json!(1)), 0);
        assert_eq!(json_depth(&serde_json::json!([[1], {"a": [2]}])), 3);
    }

    #[test]
    fn stored_objects_keep_their_floats_exactly() {
        // Found by fuzzing: without serde_json's float_roundtrip feature this float came
        // back one unit in the last place lower.
        let object = serde_json::json!({"": 5.333333333333333e38});
        let text = object_json("context", object.as_object().expect("object")).expect("valid");
        let back: Value = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, object);
    }

    #[test]
    fn text_after_non_json_whitespace_is_plain() {
        // A no-break space is not JSON whitespace, so this text is not JSON-looking.
        assert!(check_json_text("content", "\u{a0}[note] not JSON").is_ok());
        assert_eq!(
            check_json_text("content", " \t[note]").unwrap_err().code,
            ErrorCode::InvalidJson
        );
    }

    #[test]
    fn scan_ignores_brackets_in_strings() {
        assert_eq!(scan_depth(r#"{"a": "[[[[\"]]"}"#), 1);
    }

    #[test]
    fn ids_accept_the_allowed_alphabet() {
        assert!(check_id("project_id", "Alpha_9-z").is_ok());
        assert_eq!(
            check_id("project_id", "a.b").unwrap_err().code,
            ErrorCode::InvalidIdFormat
        );
        assert_eq!(
            check_id("project_id", "").unwrap_err().code,
            ErrorCode::InvalidIdLength
        );
        let long = "x".repeat(257);
        assert_eq!(
            check_id("project_id", &long).unwrap_err().code,
            ErrorCode::InvalidIdLength
        );
    }
}
