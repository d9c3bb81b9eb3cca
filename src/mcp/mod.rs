//! The MCP layer: tools and prompts on rmcp, argument parsing and error translation.

mod args;
mod prompts;
mod result;
mod server;
mod tools;

pub use server::BrainstormServer;
