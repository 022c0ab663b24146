//! Prism, a WebAssembly-extensible media server.
//!
//! Module map:
//! * [`config`]: the one configuration struct, its defaults and limits.
//! * [`runtime`]: wasmtime; loads filter components and runs them on frames in a sandbox.
//! * [`media`]: GStreamer glue: decoding images and videos into frames, encoding them back.
//! * [`pipeline`]: media pipelines: elements (WebRTC endpoints, WASM filters), connections, events.
//! * [`webrtc`]: the WebRTC endpoint (crate `webrtc`) and a loopback client for tests and benches.
//! * [`control`]: the control plane: Kurento protocol over WebSocket, `prism serve`.
//! * [`registry`]: uploaded filters on disk (content-addressed, atomic writes, hot swap).
//! * [`cli`]: the `prism` command line (`filter new|check|run`, `bench`).
//!
//! Invariants: nothing a client or a filter sends can panic the process; every resource they
//! can grow has a cap in [`config`]; frames are moved, not copied, between stages.

pub mod bench;
pub mod cli;
pub mod config;
pub mod control;
pub mod media;
pub mod pipeline;
pub mod registry;
pub mod runtime;
pub mod sys;
pub mod vision;
pub mod webrtc;
