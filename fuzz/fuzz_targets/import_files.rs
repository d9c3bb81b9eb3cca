//! Files of the original server's data folder: every converter of the import returns a record
//! or a reason and never panics. What it accepts keeps the ids its location implies and
//! stays within the payload limit.

#![no_main]

use brainstorm::import::convert::{self, MessagePlace};
use brainstorm::service::validate::check_id;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&kind, bytes)) = input.split_first() else {
        return;
    };
    match kind % 7 {
        0 => {
            if let Ok(project) = convert::project(bytes, "web-app") {
                assert_eq!(project.project_id, "web-app");
            }
        }
        1 => {
            if let Ok(member) = convert::member(bytes, "web-app", "frontend") {
                assert_eq!(member.agent_name, "frontend");
            }
        }
        2 => {
            let place = MessagePlace {
                project_id: "web-app",
                recipient: "backend",
                file_message_id: "m-1",
                default_ttl_secs: 60,
                max_payload_bytes: 4096,
            };
            if let Ok(message) = convert::message(bytes, &place) {
                assert_eq!(message.record.message_id, "m-1");
                assert!(message.record.payload_json.len() <= 4096);
                assert!(check_id("from_agent", &message.record.from_agent).is_ok());
            }
        }
        3 => {
            if let Ok(manifest) = convert::manifest(bytes, "web-app", "readme") {
                assert!(manifest.etag.as_deref().is_none_or(convert::is_etag));
                let content = convert::inline_content(&manifest, bytes.to_vec(), 4096);
                if let Ok(text) = content {
                    assert!(text.len() <= 4096);
                }
            }
        }
        4 => {
            let _ = convert::client(bytes, "a7e311f1-9ccc-48e8-52c6-6a193b382c44");
        }
        5 => {
            if let Ok((record, project_id)) = convert::audit_line(bytes) {
                assert!(check_id("project_id", &project_id).is_ok());
                assert_eq!(record.project_id.as_deref(), Some(project_id.as_str()));
            }
        }
        _ => {
            let _ = convert::memberships(bytes);
            let _ = convert::config_ttl(bytes);
            if let Ok(text) = std::str::from_utf8(bytes) {
                let _ = convert::timestamp("at", text);
            }
        }
    }
});
