//! `prism serve`: configuration (TOML file < `PRISM_*` environment < flags) and the HTTP
//! server: the Kurento protocol at `/kurento`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::kurento::{FilterCatalog, KurentoServer};
use super::ws;
use crate::config::RuntimeConfig;
use crate::pipeline::PipelineContext;
use crate::runtime::{FilterRuntime, LoadedFilter};
use crate::webrtc::WebRtcConfig;

/// Server settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// Address to listen on.
    pub bind: String,
    /// Port for HTTP, WebSocket and the web UI.
    pub port: u16,
    /// Where uploaded filters and compiled artifacts are kept.
    pub data_dir: PathBuf,
    /// Bearer token for the filter API (generated at first start when unset).
    pub token: Option<String>,
    /// Seconds a disconnected session's objects live on.
    pub session_grace_secs: u64,
    /// Directory of the filters shipped with Prism (default: the build's wasm output).
    pub builtin_filters: Option<PathBuf>,
    /// Filter runtime limits.
    pub runtime: RuntimeConfig,
    /// WebRTC settings.
    pub webrtc: WebRtcConfig,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            bind: "0.0.0.0".into(),
            port: 8888,
            data_dir: PathBuf::from("prism-data"),
            token: None,
            session_grace_secs: 60,
            builtin_filters: None,
            runtime: RuntimeConfig::default(),
            webrtc: WebRtcConfig::default(),
        }
    }
}

/// Flags of `prism serve` (each overrides the environment and the file).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--bind`.
    pub bind: Option<String>,
    /// `--port`.
    pub port: Option<u16>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
}

impl ServeConfig {
    /// The file (if any), then `PRISM_BIND`, `PRISM_PORT`, `PRISM_DATA_DIR`, `PRISM_TOKEN`,
    /// then the flags.
    pub fn load(file: Option<&Path>, flags: &Overrides) -> anyhow::Result<Self> {
        let mut config: ServeConfig = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("in {}", path.display()))?
            }
            None => ServeConfig::default(),
        };
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        if let Some(v) = env("PRISM_BIND") {
            config.bind = v;
        }
        if let Some(v) = env("PRISM_PORT") {
            config.port = v
                .parse()
                .with_context(|| format!("PRISM_PORT={v:?} is not a port"))?;
        }
        if let Some(v) = env("PRISM_DATA_DIR") {
            config.data_dir = v.into();
        }
        if let Some(v) = env("PRISM_TOKEN") {
            config.token = Some(v);
        }
        if let Some(v) = &flags.bind {
            config.bind = v.clone();
        }
        if let Some(v) = flags.port {
            config.port = v;
        }
        if let Some(v) = &flags.data_dir {
            config.data_dir = v.clone();
        }
        config
            .runtime
            .validate()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(config)
    }
}

/// The filters shipped with Prism: `NAME.wasm` files in a directory.
pub struct DirCatalog {
    runtime: Arc<FilterRuntime>,
    files: HashMap<String, PathBuf>,
}

impl DirCatalog {
    /// Every `.wasm` in `dir` (missing directory: none).
    pub fn new(runtime: Arc<FilterRuntime>, dir: &Path) -> Self {
        let files = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
            .filter_map(|p| Some((p.file_stem()?.to_str()?.to_string(), p)))
            .collect();
        Self { runtime, files }
    }
}

impl FilterCatalog for DirCatalog {
    fn resolve(&self, spec: &str) -> Result<Arc<LoadedFilter>, String> {
        let (name, version) = match spec.split_once('@') {
            Some((n, v)) => (n, Some(v)),
            None => (spec, None),
        };
        let path = self
            .files
            .get(name)
            .ok_or_else(|| format!("no filter named {name:?}"))?;
        let filter = self.runtime.load_file(path).map_err(|e| e.to_string())?;
        if let Some(v) = version
            && filter.info.version != v
        {
            return Err(format!(
                "{name} is version {}, not {v}",
                filter.info.version
            ));
        }
        Ok(filter)
    }
}

/// The HTTP routes.
pub fn router(kurento: KurentoServer) -> Router {
    Router::new()
        .route("/kurento", get(ws::upgrade))
        .with_state(kurento)
}

/// Runs the server until Ctrl-C.
pub fn run(config: ServeConfig) -> anyhow::Result<()> {
    crate::media::init()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let filters = FilterRuntime::new(config.runtime.clone())?;
        let builtin = config
            .builtin_filters
            .clone()
            .unwrap_or_else(crate::cli::default_filters_dir);
        let catalog = Arc::new(DirCatalog::new(filters.clone(), &builtin));
        let ctx = PipelineContext {
            filters,
            tokio: tokio::runtime::Handle::current(),
            webrtc: config.webrtc.clone(),
        };
        let kurento =
            KurentoServer::new(ctx, catalog, Duration::from_secs(config.session_grace_secs));
        let addr = format!("{}:{}", config.bind, config.port);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let local = listener.local_addr()?;
        println!("prism: Kurento protocol on ws://{local}/kurento");
        axum::serve(listener, router(kurento))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        anyhow::Ok(())
    })
}
