//! Integration tests. Each test starts the real `brainstorm` binary on its own temporary data
//! folder and drives it with rmcp's MCP client, over stdio or streamable HTTP.

mod audit;
mod backup;
mod bench;
mod cli;
mod common;
mod conditional;
mod crash;
mod etag;
mod history;
mod http;
mod identity;
mod import;
mod inputs;
mod limits;
mod linearizability;
mod logs;
mod longpoll;
mod mcp_resources;
mod messages;
mod permissions;
mod persistence;
mod projects;
mod prompts;
mod recovery;
mod rejected_calls;
mod resources;
mod retry;
mod security;
mod sharing;
mod updates;
mod validation;
