//! The MCP layer: tools and prompts on rmcp, argument parsing and error translation.

pub mod args;
mod prompts;
pub mod resources;
mod result;
mod server;
mod tools;

pub use server::{Authenticated, BrainstormServer, ForwardedClientId};
pub use tools::{Acts, acts};

/// Returns every tool with its schema.
pub fn tool_list() -> Vec<rmcp::model::Tool> {
    tools::list()
}

/// Returns every prompt with its arguments.
pub fn prompt_list() -> Vec<rmcp::model::Prompt> {
    prompts::list()
}
