//! The sandboxed filter runtime (wasmtime, component model).
//!
//! One [`FilterRuntime`] per process owns the `Engine` (pooling allocator, epoch interruption),
//! the `Linker` and a cache of loaded filters keyed by the SHA-256 of their component bytes (each
//! holding its compiled component and `InstancePre`). A [`FilterInstance`] is one filter with
//! its own `Store`: memory cap, per-call deadline, event sink and failure policy.
//!
//! Filters get the `prism:filter` imports and a sandboxed slice of WASI p2 that Rust's standard
//! library links against: no preopened directories, no environment, no arguments, a clock frozen
//! at zero, no sockets (components importing `wasi:sockets` are refused). Time comes only from
//! `host.now-us`.
//!
//! Not here: where frames come from (media/), which filters exist on disk (registry/).

mod bindings;
mod error;
mod events;
mod instance;
mod state;
mod vision;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prism_frame::PixelFormat;
use serde::Serialize;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker, types::ComponentItem};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};

pub use bindings::{ABI_VERSION, FILTER_EXPORT};
pub use error::RuntimeError;
pub use events::{EventSink, FaultKind, FilterEvent};
pub use instance::{FilterInstance, InstanceStats, Verdict};
pub use vision::{AttachedImages, MAX_ATTACHED_IMAGES};

use crate::config::{EPOCH_TICK, RuntimeConfig};
use bindings::{VisionFilter, VisionFilterPre};
use state::{CallLimits, StoreData};

/// Interface-name prefixes the host links. Anything else a component imports is refused.
const PROVIDED_IMPORTS: &[&str] = &[
    "prism:filter/types@0.1.",
    "prism:filter/host@0.1.",
    "prism:filter/vision@0.1.",
    "wasi:cli/",
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:filesystem/",
];

/// What a filter says about itself (`describe`), checked and converted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FilterInfo {
    /// Short machine name.
    pub name: String,
    /// The filter's version.
    pub version: String,
    /// One sentence.
    pub description: String,
    /// Pixel format `process` wants.
    #[serde(serialize_with = "serialize_format")]
    pub format: PixelFormat,
    /// JSON Schema of the configuration.
    pub parameters_schema: serde_json::Value,
}

fn serialize_format<S: serde::Serializer>(f: &PixelFormat, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(f.name())
}

/// A validated, compiled filter component, ready to instantiate.
pub struct LoadedFilter {
    /// Hex SHA-256 of the component bytes.
    pub hash: String,
    /// Size of the component in bytes.
    pub size: usize,
    /// What `describe` returned.
    pub info: FilterInfo,
    /// Interfaces the component imports.
    pub imports: Vec<String>,
    /// Interfaces the component exports.
    pub exports: Vec<String>,
    pre: VisionFilterPre<StoreData>,
}

impl std::fmt::Debug for LoadedFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedFilter")
            .field("hash", &self.hash)
            .field("info", &self.info)
            .finish()
    }
}

/// Increments the engine's epoch every [`EPOCH_TICK`] until the engine is dropped.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("prism-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("invariant: the process can start a thread at startup");
}

/// Most native host time given back to one call's deadline.
const MAX_HOST_CREDIT: Duration = Duration::from_secs(2);

/// Deadline in epoch ticks, rounded up, plus one for the tick in progress.
fn ticks(deadline: Duration) -> u64 {
    (deadline.as_micros().div_ceil(EPOCH_TICK.as_micros()) as u64).max(1) + 1
}

/// The process-wide filter runtime.
pub struct FilterRuntime {
    engine: Engine,
    linker: Linker<StoreData>,
    config: RuntimeConfig,
    cache: Mutex<HashMap<String, Arc<LoadedFilter>>>,
}

impl std::fmt::Debug for FilterRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilterRuntime")
            .field("config", &self.config)
            .finish()
    }
}

impl FilterRuntime {
    /// Builds the engine and linker. Call once per process.
    pub fn new(config: RuntimeConfig) -> Result<Arc<Self>, RuntimeError> {
        config
            .validate()
            .map_err(|e| RuntimeError::Engine(e.to_string()))?;
        let mut pool = PoolingAllocationConfig::default();
        let n = config.max_instances;
        // A Rust wasip2 component holds a handful of core instances, memories and tables.
        pool.total_component_instances(n)
            .total_core_instances(n * 8)
            .total_memories(n * 2)
            .total_tables(n * 4)
            .max_memories_per_component(4)
            .max_tables_per_component(8)
            .max_memory_size(config.filter_memory_bytes as usize);
        let mut wasm = Config::new();
        wasm.wasm_component_model(true)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm).map_err(|e| RuntimeError::Engine(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        link(&mut linker).map_err(|e| RuntimeError::Engine(e.to_string()))?;
        start_epoch_ticker(&engine);
        Ok(Arc::new(Self {
            engine,
            linker,
            config,
            cache: Mutex::new(HashMap::new()),
        }))
    }

    /// The limits in force.
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// Validates, compiles and describes a component; cached by content hash.
    pub fn load(&self, bytes: &[u8]) -> Result<Arc<LoadedFilter>, RuntimeError> {
        self.load_with_artifact(bytes, None)
    }

    /// [`FilterRuntime::load`], keeping the compiled code in `artifact`: an artifact written
    /// by an earlier run is loaded instead of compiling again; a fresh compile writes one
    /// (atomically). A stale or foreign artifact is ignored and replaced.
    pub fn load_with_artifact(
        &self,
        bytes: &[u8],
        artifact: Option<&Path>,
    ) -> Result<Arc<LoadedFilter>, RuntimeError> {
        let hash = content_hash(bytes);
        if let Some(hit) = self.cache.lock().expect("invariant: cache lock").get(&hash) {
            return Ok(hit.clone());
        }
        check_header(bytes)?;
        let precompiled = artifact.and_then(|path| {
            // SAFETY: artifacts live in Prism's own data directory and are written only by
            // `Component::serialize` below; wasmtime checks that the artifact matches this
            // engine's version and configuration and refuses it otherwise.
            unsafe { Component::deserialize_file(&self.engine, path) }.ok()
        });
        let compiled_now = precompiled.is_none();
        let component = match precompiled {
            Some(component) => component,
            None => Component::new(&self.engine, bytes)
                .map_err(|e| RuntimeError::InvalidComponent(format!("{e:#}")))?,
        };
        let (imports, exports) = self.interfaces(&component)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| RuntimeError::InvalidComponent(format!("{e:#}")))?;
        let pre = VisionFilterPre::new(pre).map_err(|e| {
            // Its filter interface differs from the host's: e.g. built before a function
            // was added.
            RuntimeError::InvalidComponent(format!(
                "{e:#}: it was built against another prism:filter 0.1 (an older SDK?), \
                 rebuild it with the current filter SDK"
            ))
        })?;
        let info = self.describe(&pre)?;
        // Only a component that passed every check is worth keeping compiled.
        if compiled_now
            && let Some(path) = artifact
            && let Ok(code) = component.serialize()
            && let Err(e) = crate::registry::write_atomic(path, &code)
        {
            tracing::warn!("cannot keep the compiled filter at {}: {e}", path.display());
        }
        let loaded = Arc::new(LoadedFilter {
            hash,
            size: bytes.len(),
            info,
            imports,
            exports,
            pre,
        });
        self.cache
            .lock()
            .expect("invariant: cache lock")
            .insert(loaded.hash.clone(), loaded.clone());
        Ok(loaded)
    }

    /// [`FilterRuntime::load`] from a file.
    pub fn load_file(&self, path: &Path) -> Result<Arc<LoadedFilter>, RuntimeError> {
        let bytes = std::fs::read(path).map_err(|e| RuntimeError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        self.load(&bytes)
    }

    /// Checks what the component imports and exports against what the host serves.
    fn interfaces(
        &self,
        component: &Component,
    ) -> Result<(Vec<String>, Vec<String>), RuntimeError> {
        let ty = component.component_type();
        let imports: Vec<String> = ty
            .imports(&self.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        let exports: Vec<(String, bool)> = ty
            .exports(&self.engine)
            .map(|(n, item)| {
                (
                    n.to_string(),
                    matches!(item.ty, ComponentItem::ComponentInstance(_)),
                )
            })
            .collect();
        let missing: Vec<&str> = imports
            .iter()
            .filter(|i| !PROVIDED_IMPORTS.iter().any(|p| i.starts_with(p)))
            .map(String::as_str)
            .collect();
        if !exports
            .iter()
            .any(|(n, is_instance)| *is_instance && n.starts_with("prism:filter/filter@0.1."))
        {
            let found: Vec<&str> = exports.iter().map(|(n, _)| n.as_str()).collect();
            return Err(RuntimeError::WrongWorld {
                found: if found.is_empty() {
                    "nothing".into()
                } else {
                    found.join(", ")
                },
            });
        }
        if !missing.is_empty() {
            return Err(RuntimeError::UnsupportedImports {
                imports: missing.join(", "),
            });
        }
        Ok((imports, exports.into_iter().map(|(n, _)| n).collect()))
    }

    fn call_limits(&self) -> CallLimits {
        CallLimits {
            max_events: self.config.max_events_per_call,
            max_event_bytes: self.config.max_event_bytes,
            max_logs: self.config.max_logs_per_call,
        }
    }

    /// A fresh store and instance of `pre`, drawing from `images`.
    fn instantiate_raw(
        &self,
        name: Arc<str>,
        pre: &VisionFilterPre<StoreData>,
        sink: Option<EventSink>,
        images: AttachedImages,
    ) -> Result<(Store<StoreData>, VisionFilter), wasmtime::Error> {
        let data = StoreData::new(
            name,
            self.config.filter_memory_bytes,
            self.call_limits(),
            sink,
            images,
        );
        let mut store = Store::new(&self.engine, data);
        store.limiter(|d| &mut d.limits);
        // The deadline bounds the filter's own code: time it spent waiting for the host's
        // native vision is given back (up to MAX_HOST_CREDIT per call), then the call traps.
        store.epoch_deadline_callback(|mut ctx| {
            let call = &mut ctx.data_mut().call;
            let credit = std::mem::take(&mut call.host_credit);
            if credit.is_zero() || call.host_granted >= MAX_HOST_CREDIT {
                return Ok(wasmtime::UpdateDeadline::Interrupt);
            }
            call.host_granted += credit;
            Ok(wasmtime::UpdateDeadline::Continue(ticks(credit)))
        });
        store.set_epoch_deadline(ticks(self.config.control_deadline()));
        let bindings = pre.instantiate(&mut store)?;
        Ok((store, bindings))
    }

    fn describe(&self, pre: &VisionFilterPre<StoreData>) -> Result<FilterInfo, RuntimeError> {
        let fail = |e: wasmtime::Error| RuntimeError::Describe(error::describe_trap(&e));
        let (mut store, bindings) = self
            .instantiate_raw("(describe)".into(), pre, None, AttachedImages::default())
            .map_err(fail)?;
        let raw = bindings
            .prism_filter_filter()
            .call_describe(&mut store)
            .map_err(fail)?;
        let parameters_schema = serde_json::from_str(&raw.parameters_schema).map_err(|e| {
            RuntimeError::Describe(format!("parameters-schema is not valid JSON: {e}"))
        })?;
        if raw.name.is_empty() || raw.name.len() > 64 {
            return Err(RuntimeError::Describe(format!(
                "the filter name must be 1 to 64 bytes, got {:?}",
                raw.name
            )));
        }
        Ok(FilterInfo {
            name: raw.name,
            version: raw.version,
            description: raw.description,
            format: raw.format.into(),
            parameters_schema,
        })
    }

    /// A new instance of `filter` (its own store) sending events to `sink`.
    pub fn instantiate(
        self: &Arc<Self>,
        filter: &Arc<LoadedFilter>,
        sink: Option<EventSink>,
    ) -> Result<FilterInstance, RuntimeError> {
        FilterInstance::new(self.clone(), filter.clone(), sink)
    }
}

/// Hex SHA-256 of component bytes: the id the cache and the registry use.
pub fn content_hash(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Rejects files that are not components before the compiler sees them.
fn check_header(bytes: &[u8]) -> Result<(), RuntimeError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        let head = bytes
            .iter()
            .take(4)
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>();
        return Err(RuntimeError::NotWasm {
            head: head.join(" "),
        });
    }
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(RuntimeError::CoreModule);
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Adds the `prism:filter` imports and the sandboxed WASI subset to the linker.
fn link(linker: &mut Linker<StoreData>) -> wasmtime::Result<()> {
    use wasmtime::component::HasSelf;
    use wasmtime_wasi::cli::{WasiCli, WasiCliView as _};
    use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView as _};
    use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView as _};
    use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random, sync};
    use wasmtime_wasi::random::WasiRandom;
    use wasmtime_wasi::{ResourceTable, WasiView};

    struct HasIo;
    impl wasmtime::component::HasData for HasIo {
        type Data<'a> = &'a mut ResourceTable;
    }

    VisionFilter::add_to_linker::<_, HasSelf<StoreData>>(linker, |s| s)?;
    linker.allow_shadowing(true);
    linker
        .instance("prism:filter/types@0.1.0")?
        .func_wrap("[method]frame.write-region", state::write_region_from_guest)?;
    linker.allow_shadowing(false);

    let l = linker;
    wasmtime_wasi_io::bindings::wasi::io::error::add_to_linker::<_, HasIo>(l, |t| t.ctx().table)?;
    sync::io::poll::add_to_linker::<_, HasIo>(l, |t| t.ctx().table)?;
    sync::io::streams::add_to_linker::<_, HasIo>(l, |t| t.ctx().table)?;
    clocks::wall_clock::add_to_linker::<_, WasiClocks>(l, StoreData::clocks)?;
    clocks::monotonic_clock::add_to_linker::<_, WasiClocks>(l, StoreData::clocks)?;
    filesystem::preopens::add_to_linker::<_, WasiFilesystem>(l, StoreData::filesystem)?;
    sync::filesystem::types::add_to_linker::<_, WasiFilesystem>(l, StoreData::filesystem)?;
    random::random::add_to_linker::<_, WasiRandom>(l, |t| t.ctx().ctx.random())?;
    random::insecure::add_to_linker::<_, WasiRandom>(l, |t| t.ctx().ctx.random())?;
    random::insecure_seed::add_to_linker::<_, WasiRandom>(l, |t| t.ctx().ctx.random())?;
    cli::exit::add_to_linker::<_, WasiCli>(l, StoreData::cli)?;
    cli::environment::add_to_linker::<_, WasiCli>(l, StoreData::cli)?;
    cli::stdin::add_to_linker::<_, WasiCli>(l, StoreData::cli)?;
    cli::stdout::add_to_linker::<_, WasiCli>(l, StoreData::cli)?;
    cli::stderr::add_to_linker::<_, WasiCli>(l, StoreData::cli)?;
    cli::terminal_input::add_to_linker::<_, WasiCli>(l, StoreData::cli)?;
    cli::terminal_output::add_to_linker::<_, WasiCli>(l, StoreData::cli)?;
    cli::terminal_stdin::add_to_linker::<_, WasiCli>(l, StoreData::cli)?;
    cli::terminal_stdout::add_to_linker::<_, WasiCli>(l, StoreData::cli)?;
    cli::terminal_stderr::add_to_linker::<_, WasiCli>(l, StoreData::cli)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_checks() {
        assert!(matches!(
            check_header(b"hello world"),
            Err(RuntimeError::NotWasm { .. })
        ));
        assert!(matches!(
            check_header(b"\0asm\x01\0\0\0"),
            Err(RuntimeError::CoreModule)
        ));
        assert!(check_header(b"\0asm\x0d\0\x01\0").is_ok());
    }

    #[test]
    fn ticks_round_up() {
        assert_eq!(ticks(Duration::from_millis(100)), 101);
        assert_eq!(ticks(Duration::from_micros(1)), 2);
    }
}
