//! The control plane: the Kurento protocol over WebSocket (`/kurento`) and the HTTP API.
//!
//! * [`protocol`]: JSON-RPC envelopes and Kurento error codes.
//! * [`kurento`]: the protocol state machine (sessions, objects, subscriptions), no sockets.
//! * [`ws`]: the WebSocket edge.
//! * [`api`]: the filter registry over HTTP (`/api/filters`).
//! * [`server`]: `prism serve`: configuration and the HTTP server.

pub mod api;
pub mod kurento;
pub mod protocol;
pub mod server;
pub mod ws;
