//! Integration tests. Each test starts the real `brainstorm` binary on its own temporary data
//! folder and drives it with rmcp's MCP client, over stdio or streamable HTTP.

mod common;
mod etag;
mod http;
mod identity;
mod inputs;
mod longpoll;
mod messages;
mod persistence;
mod projects;
mod prompts;
mod rejected_calls;
mod resources;
mod retry;
mod security;
mod sharing;
mod validation;
