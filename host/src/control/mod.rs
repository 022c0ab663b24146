//! The control plane: the Kurento protocol over WebSocket (`/kurento`) and the HTTP API.
//!
//! * [`protocol`]: JSON-RPC envelopes and Kurento error codes.
//! * [`kurento`]: the protocol state machine (sessions, objects, subscriptions), no sockets.
//! * [`ws`]: the WebSocket edge.
//! * [`api`]: the filter registry over HTTP (`/api/filters`).
//! * [`web`]: the browser demo (embedded) and pipeline graphs as SVG.
//! * [`server`]: `prism serve`: configuration and the HTTP server.

pub mod api;
pub mod kurento;
pub mod protocol;
pub mod server;
pub mod web;
pub mod ws;
