//! Prism's cross-crate integration tests, one binary with a module per feature.

mod cli;
mod elements;
mod faces;
mod hostile;
mod kurento;
mod media;
mod plates;
mod registry;
mod rtp_endpoint;
mod runtime;
mod scaffold;
mod web;
