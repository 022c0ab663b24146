//! Prism's cross-crate integration tests, one binary with a module per feature.

mod cli;
mod hostile;
mod kurento;
mod media;
mod plates;
mod registry;
mod runtime;
mod scaffold;
mod web;
