//! brainstorm: a coordination service for AI agents that speak MCP.
//!
//! Agents join projects, send each other messages and share resources. Concurrent writers are
//! kept apart by etags, and every compare-and-swap happens inside one redb write transaction.
//!
//! The layers, from the bottom up:
//! - [`storage`]: redb tables, record encoding, schema migrations, typed transactions and
//!   group commit.
//! - [`service`]: the rules of the product (identity, membership, messages, resources,
//!   permissions, long-polls), independent of MCP.
//! - [`mcp`]: the MCP tools, prompts and resources on rmcp, argument parsing and error
//!   translation.
//! - [`transport`]: streamable HTTP, ownership of a shared data folder, stdio forwarding,
//!   and the audit command's reader.
//! - [`config`]: settings from flags, environment and defaults.
//! - [`client`]: retry with backoff for programs that drive the service over MCP.
//! - [`bench`]: the load generator behind `brainstorm bench`.

pub mod bench;
pub mod client;
pub mod config;
pub mod error;
pub mod import;
pub mod mcp;
pub mod service;
pub mod storage;
pub mod time;
pub mod transport;
