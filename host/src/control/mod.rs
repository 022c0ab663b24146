//! The control plane: the Kurento protocol over WebSocket (`/kurento`) and the HTTP API.
//!
//! * [`protocol`]: JSON-RPC envelopes and Kurento error codes.
//! * [`kurento`]: the protocol state machine (sessions, objects, subscriptions), no sockets.
//! * [`ws`]: the WebSocket edge.
//! * [`server`]: `prism serve`: configuration and the HTTP server.

pub mod kurento;
pub mod protocol;
pub mod server;
pub mod ws;
