//! Prism's cross-crate integration tests, one binary with a module per feature.

mod cli;
mod hostile;
mod runtime;
mod scaffold;
