//! `prism serve`: configuration (TOML file < `PRISM_*` environment < flags) and the HTTP
//! server: the Kurento protocol at `/kurento`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::kurento::{FilterCatalog, KurentoServer};
use super::{api, web, ws};
use crate::config::RuntimeConfig;
use crate::pipeline::PipelineContext;
use crate::registry::{MAX_UPLOAD_BYTES, Registry};
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
    /// Media settings.
    pub media: crate::config::MediaConfig,
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
            media: crate::config::MediaConfig::default(),
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
        Self::load_with(file, flags, |name| std::env::var(name).ok())
    }

    /// [`ServeConfig::load`] with the environment given as a function.
    pub fn load_with(
        file: Option<&Path>,
        flags: &Overrides,
        getenv: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let mut config: ServeConfig = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("in {}", path.display()))?
            }
            None => ServeConfig::default(),
        };
        let env = |name: &str| getenv(name).filter(|v| !v.is_empty());
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

impl DirCatalog {
    /// The filter names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.files.keys().cloned().collect();
        names.sort();
        names
    }
}

impl FilterCatalog for DirCatalog {
    fn available(&self, name: &str) -> bool {
        self.files
            .contains_key(name.split('@').next().unwrap_or(name))
    }

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

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The Kurento protocol.
    pub kurento: KurentoServer,
    /// Uploaded filters.
    pub registry: Arc<Registry>,
    /// Bearer token for changes to the registry.
    pub token: Arc<str>,
}

impl FromRef<AppState> for KurentoServer {
    fn from_ref(state: &AppState) -> Self {
        state.kurento.clone()
    }
}

/// The HTTP routes: the demo page at `/`, `/kurento` (WebSocket), `/api/filters`, and
/// `/api/pipelines/{id}/graph.svg`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(web::index))
        .route("/app.js", get(web::app))
        .route("/kurento.js", get(web::kurento))
        .route("/style.css", get(web::style))
        .route("/api/pipelines/{id}/graph.svg", get(web::graph_svg))
        .route("/kurento", get(ws::upgrade))
        .route("/api/filters", get(api::list).post(api::upload))
        .route(
            "/api/filters/{name}",
            get(api::versions).delete(api::delete),
        )
        .route(
            "/api/filters/{name}/{version}",
            get(api::version).delete(api::delete_version),
        )
        .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES + 64 * 1024))
        .with_state(state)
}

/// The token from the configuration, else the one kept in the data directory, else a new
/// one (kept there, printed once).
pub fn resolve_token(config: &ServeConfig) -> anyhow::Result<String> {
    if let Some(t) = &config.token {
        return Ok(t.clone());
    }
    let path = config.data_dir.join("token");
    if let Ok(t) = std::fs::read_to_string(&path)
        && !t.trim().is_empty()
    {
        return Ok(t.trim().to_string());
    }
    let token = uuid::Uuid::new_v4().simple().to_string();
    crate::registry::write_atomic(&path, token.as_bytes())
        .with_context(|| format!("cannot store the API token in {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    println!(
        "prism: generated the filter API token {token} (kept in {})",
        path.display()
    );
    Ok(token)
}

/// The filters shipped with this build: `target/prism-filters` beside the binary (made by
/// `make build`), else the build's wasm output directory.
pub fn default_builtin_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("prism-filters")))
        .filter(|d| d.is_dir())
        .unwrap_or_else(crate::cli::default_filters_dir)
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
            .unwrap_or_else(default_builtin_dir);
        let registry = Arc::new(
            Registry::open(&config.data_dir, filters.clone(), &builtin).with_context(|| {
                format!("cannot open the registry in {}", config.data_dir.display())
            })?,
        );
        let token = resolve_token(&config)?;
        let ctx = PipelineContext {
            filters,
            tokio: tokio::runtime::Handle::current(),
            webrtc: config.webrtc.clone(),
            media: config.media.clone(),
        };
        let kurento = KurentoServer::new(
            ctx,
            registry.clone(),
            Duration::from_secs(config.session_grace_secs),
        );
        let addr = format!("{}:{}", config.bind, config.port);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let local = listener.local_addr()?;
        println!(
            "prism: demo on http://{local}/, Kurento protocol on ws://{local}/kurento, filters API on http://{local}/api/filters"
        );
        let state = AppState {
            kurento,
            registry,
            token: token.into(),
        };
        axum::serve(listener, router(state))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        anyhow::Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_environment_beat_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("prism.toml");
        std::fs::write(
            &file,
            "bind = \"10.0.0.1\"\nport = 7000\ndata_dir = \"/srv/prism\"\n\
             session_grace_secs = 5\n[runtime]\nprocess_deadline_ms = 40\n\
             [webrtc]\nmax_bitrate_bps = 900000\n",
        )
        .unwrap();
        let env = |name: &str| match name {
            "PRISM_PORT" => Some("7100".to_string()),
            "PRISM_TOKEN" => Some("from-env".to_string()),
            _ => None,
        };
        let flags = Overrides {
            port: Some(7200),
            ..Overrides::default()
        };
        let c = ServeConfig::load_with(Some(&file), &flags, env).unwrap();
        assert_eq!(c.bind, "10.0.0.1", "file");
        assert_eq!(c.port, 7200, "flag over env over file");
        assert_eq!(c.data_dir, PathBuf::from("/srv/prism"));
        assert_eq!(c.token.as_deref(), Some("from-env"));
        assert_eq!(c.session_grace_secs, 5);
        assert_eq!(c.runtime.process_deadline_ms, 40);
        assert_eq!(c.webrtc.max_bitrate_bps, 900_000);
        let c = ServeConfig::load_with(None, &Overrides::default(), |_| None).unwrap();
        assert_eq!((c.bind.as_str(), c.port), ("0.0.0.0", 8888));
        assert_eq!(c.data_dir, PathBuf::from("prism-data"));
        // Unknown keys and bad values are errors naming the problem.
        std::fs::write(&file, "prot = 1\n").unwrap();
        let e = ServeConfig::load_with(Some(&file), &flags, |_| None).unwrap_err();
        assert!(format!("{e:#}").contains("prot"), "{e:#}");
        let e = ServeConfig::load_with(None, &flags, |n| {
            (n == "PRISM_PORT").then(|| "eighty".to_string())
        })
        .unwrap_err();
        assert!(e.to_string().contains("PRISM_PORT"), "{e}");
    }
}
