//! `prism bench registry`: how soon an uploaded filter is usable in a new pipeline — first
//! upload (validate, compile, store), after a restart (compiled artifact on disk), and cached
//! in memory. Baseline in the same run: compiling the same component without the registry.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

use crate::config::RuntimeConfig;
use crate::control::kurento::FilterCatalog;
use crate::pipeline::{MediaPipeline, PipelineContext};
use crate::registry::Registry;
use crate::runtime::FilterRuntime;
use crate::webrtc::WebRtcConfig;

/// The figures, milliseconds.
#[derive(Debug, Serialize)]
pub struct RegistryBench {
    /// The component measured.
    pub filter: String,
    /// Its size, bytes.
    pub bytes: usize,
    /// Plain compile + describe, no registry (baseline).
    pub compile_ms: f64,
    /// Upload (validate, compile, store) then a new pipeline with the filter.
    pub upload_to_pipeline_ms: f64,
    /// After a restart: resolve from disk (compiled artifact) then a new pipeline.
    pub restart_to_pipeline_ms: f64,
    /// Cached in memory: resolve then a new pipeline.
    pub cached_to_pipeline_ms: f64,
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn new_pipeline_with(
    registry: &Registry,
    runtime: &Arc<FilterRuntime>,
    name: &str,
) -> anyhow::Result<()> {
    let ctx = PipelineContext {
        filters: runtime.clone(),
        tokio: tokio::runtime::Handle::current(),
        webrtc: WebRtcConfig::default(),
        media: Default::default(),
    };
    let filter = registry.resolve(name).map_err(anyhow::Error::msg)?;
    let pipeline = MediaPipeline::new(ctx)?;
    pipeline.add_filter(&filter, None, "prism", "WasmFilter")?;
    pipeline.release();
    Ok(())
}

/// Runs the measurements on `filters_dir/privacy.wasm`.
pub fn run(filters_dir: &Path, json: bool) -> anyhow::Result<ExitCode> {
    crate::media::init()?;
    let path = filters_dir.join("privacy.wasm");
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let _guard = rt.enter();
    let dir = tempfile_dir()?;
    let empty = dir.join("builtin-none");

    let baseline = FilterRuntime::new(RuntimeConfig::default())?;
    let t = Instant::now();
    let loaded = baseline.load(&bytes)?;
    let compile_ms = ms(t);
    let name = loaded.info.name.clone();

    let runtime = FilterRuntime::new(RuntimeConfig::default())?;
    let registry = Registry::open(&dir, runtime.clone(), &empty)?;
    let t = Instant::now();
    registry.upload(&bytes)?;
    new_pipeline_with(&registry, &runtime, &name)?;
    let upload_to_pipeline_ms = ms(t);

    let cached_to_pipeline_ms = {
        let t = Instant::now();
        new_pipeline_with(&registry, &runtime, &name)?;
        ms(t)
    };

    // A restart: a new runtime (empty memory cache) and a registry reopened from disk.
    let runtime = FilterRuntime::new(RuntimeConfig::default())?;
    let t = Instant::now();
    let registry = Registry::open(&dir, runtime.clone(), &empty)?;
    new_pipeline_with(&registry, &runtime, &name)?;
    let restart_to_pipeline_ms = ms(t);
    let _ = std::fs::remove_dir_all(&dir);

    let b = RegistryBench {
        filter: name,
        bytes: bytes.len(),
        compile_ms,
        upload_to_pipeline_ms,
        restart_to_pipeline_ms,
        cached_to_pipeline_ms,
    };
    if json {
        println!("{}", serde_json::to_string(&b)?);
    } else {
        println!("registry, {} ({} bytes)", b.filter, b.bytes);
        println!("  compile + describe (baseline)   {:>8.1} ms", b.compile_ms);
        println!(
            "  upload -> new pipeline          {:>8.1} ms   (target <= 1000)",
            b.upload_to_pipeline_ms
        );
        println!(
            "  restart -> new pipeline         {:>8.1} ms   (compiled artifact from disk)",
            b.restart_to_pipeline_ms
        );
        println!(
            "  cached -> new pipeline          {:>8.2} ms   (target <= 50)",
            b.cached_to_pipeline_ms
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("prism-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
