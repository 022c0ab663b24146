//! Errors of the filter runtime, and the classification of guest faults.

use super::events::FaultKind;

/// Why a filter could not be loaded, described or configured.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The bytes are not WebAssembly at all.
    #[error("not a WebAssembly file: it starts with [{head}], a wasm file starts with 00 61 73 6d")]
    NotWasm {
        /// The first bytes, hex.
        head: String,
    },
    /// A core module where a component is needed.
    #[error(
        "this is a core WebAssembly module, not a component: build the filter with \
         `cargo build --target wasm32-wasip2 --release` (see filter-sdk/README.md)"
    )]
    CoreModule,
    /// The component does not parse, validate or link.
    #[error("invalid component: {0}")]
    InvalidComponent(String),
    /// The component does not export the filter interface.
    #[error(
        "the component does not export prism:filter/filter@0.1.x, so it was built for another \
         world (it exports: {found})"
    )]
    WrongWorld {
        /// What it exports instead.
        found: String,
    },
    /// The component imports something the host does not give filters.
    #[error(
        "the component imports {imports}, which Prism does not give filters (filters get \
         prism:filter/types, prism:filter/host, prism:filter/vision and a sandboxed subset of \
         wasi:cli, io, clocks, random and filesystem)"
    )]
    UnsupportedImports {
        /// The interfaces refused.
        imports: String,
    },
    /// `describe` failed or returned nonsense.
    #[error("describe failed: {0}")]
    Describe(String),
    /// `configure` was refused.
    #[error("configuration refused by filter {filter}: {message}")]
    Configure {
        /// Filter name.
        filter: String,
        /// The cause (the filter's own words, or the fault).
        message: String,
    },
    /// A new instance could not be made (its start-up code trapped or ran out of time).
    #[error("cannot instantiate filter {filter}: {message}")]
    Instantiate {
        /// Filter name.
        filter: String,
        /// The cause.
        message: String,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        message: String,
    },
    /// The engine could not be set up.
    #[error("wasm engine: {0}")]
    Engine(String),
    /// A picture could not be attached to a filter (bad name, too many pictures).
    #[error("cannot attach picture {name:?}: {message}")]
    AttachImage {
        /// The picture's name.
        name: String,
        /// Why.
        message: String,
    },
}

/// Classifies a wasmtime error from a guest call.
pub(crate) fn classify(e: &wasmtime::Error) -> FaultKind {
    if let Some(trap) = e.downcast_ref::<wasmtime::Trap>()
        && *trap == wasmtime::Trap::Interrupt
    {
        return FaultKind::Timeout;
    }
    let text = format!("{e:#}");
    if text.contains("forcing trap when growing memory") {
        FaultKind::MemoryLimit
    } else {
        FaultKind::Trap
    }
}

/// One line describing a trap: its cause and the guest function it happened in, without the
/// full backtrace.
pub(crate) fn describe_trap(e: &wasmtime::Error) -> String {
    let cause = e.root_cause().to_string();
    let place = e
        .downcast_ref::<wasmtime::WasmBacktrace>()
        .and_then(|bt| bt.frames().iter().find_map(|f| f.func_name()))
        .map(|name| format!(" in {:#}", rustc_demangle::demangle(name)))
        .unwrap_or_default();
    format!("{cause}{place}").replace('\n', " ")
}
