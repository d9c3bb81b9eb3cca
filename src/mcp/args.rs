//! Argument parsing: raw JSON arguments to typed requests, with every failure reported as an
//! `INVALID_PARAMETER` tool error that names the argument, instead of a protocol error.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{ServiceError, ServiceResult};

/// Arguments that a client may never set, with the reason given back to it.
const FORBIDDEN: &[(&str, &str)] = &[(
    "creator_agent",
    "creator_agent cannot be set: the creator of a resource is the agent that first stores it",
)];

/// Parses a tool's arguments into its request type.
pub fn parse<T: DeserializeOwned>(arguments: Map<String, Value>) -> ServiceResult<T> {
    for (name, reason) in FORBIDDEN {
        if arguments.contains_key(*name) {
            return Err(ServiceError::invalid_parameter(name, *reason));
        }
    }
    let value = Value::Object(arguments);
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner().to_string();
        let argument = if path == "." {
            quoted_name(&inner).unwrap_or_default()
        } else {
            path
        };
        let message = describe(&argument, &inner);
        ServiceError::invalid_parameter(&argument, message)
    })
}

/// Rewrites a serde message in terms of tool arguments.
fn describe(argument: &str, serde_message: &str) -> String {
    if serde_message.starts_with("missing field") {
        format!("missing required argument {argument:?}")
    } else if serde_message.starts_with("unknown field") {
        match serde_message.split_once(", expected") {
            Some((_, expected)) if !expected.trim().is_empty() => {
                format!("unknown argument {argument:?}; the accepted arguments are{expected}")
            }
            // serde lists nothing when the tool takes no arguments at all.
            _ => format!("unknown argument {argument:?}; this tool takes no arguments"),
        }
    } else {
        format!("invalid argument {argument:?}: {serde_message}")
    }
}

/// Returns the first name quoted in backticks in a serde message.
fn quoted_name(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    Some(message[start..end].to_owned())
}

/// Removes and returns an optional string argument.
pub fn take_string(
    arguments: &mut Map<String, Value>,
    name: &str,
) -> ServiceResult<Option<String>> {
    match arguments.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(other) => Err(ServiceError::invalid_parameter(
            name,
            format!("invalid argument {name:?}: expected a string, got {other}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;
    use crate::error::ErrorCode;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Example {
        name: String,
        count: Option<u64>,
    }

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().expect("object")
    }

    #[test]
    fn wrong_type_names_the_argument() {
        let err = parse::<Example>(object(json!({"name": 5}))).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidParameter);
        assert_eq!(err.details["argument"], "name");
        assert!(err.message.contains("expected a string"), "{}", err.message);
    }

    #[test]
    fn missing_argument_is_named() {
        let err = parse::<Example>(object(json!({}))).unwrap_err();
        assert_eq!(err.details["argument"], "name");
        assert!(
            err.message.contains("missing required argument"),
            "{}",
            err.message
        );
    }

    #[test]
    fn unknown_argument_is_rejected() {
        let err = parse::<Example>(object(json!({"name": "a", "nmae": 1}))).unwrap_err();
        assert_eq!(err.details["argument"], "nmae");
    }
}
