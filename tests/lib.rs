//! Helpers shared by Prism's cross-crate integration tests (`tests/all`): where the built guest
//! components and the `prism` binary are, and small media fixtures made on the fly.
//!
//! The README's test command (`make test`) builds the guests (`wasm32-wasip2`) and the binary
//! before running the tests.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use prism::config::RuntimeConfig;
use prism::runtime::{FilterRuntime, LoadedFilter};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
        .to_path_buf()
}

/// The cargo target directory.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// Path of a guest component built by `make guests` (crate name with `-` as `_`).
pub fn wasm(name: &str) -> PathBuf {
    let path = target_dir()
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    assert!(
        path.is_file(),
        "{} is missing: build the guests first (make guests, or make test)",
        path.display()
    );
    path
}

/// The `prism` binary built by `make test`.
pub fn prism_bin() -> PathBuf {
    let path = target_dir().join("release/prism");
    assert!(
        path.is_file(),
        "{} is missing: run `make test` (it builds it first)",
        path.display()
    );
    path
}

/// A runtime with test-friendly limits: small memory cap, short deadline, no back-off.
pub fn test_runtime() -> Arc<FilterRuntime> {
    FilterRuntime::new(test_config()).expect("runtime")
}

/// The configuration of [`test_runtime`]: small memory cap, short deadlines, no back-off.
pub fn test_config() -> RuntimeConfig {
    RuntimeConfig {
        filter_memory_bytes: 32 * 1024 * 1024,
        process_deadline_ms: 50,
        control_deadline_ms: 500,
        backoff_initial_ms: 0,
        backoff_max_ms: 0,
        max_instances: 64,
        ..RuntimeConfig::default()
    }
}

/// Loads a guest component by crate name.
pub fn load(runtime: &FilterRuntime, name: &str) -> Arc<LoadedFilter> {
    runtime
        .load_file(&wasm(name))
        .unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

/// A licence-plate photo from the shared test data, if present.
pub fn sample_photo() -> Option<PathBuf> {
    let dir = root().join("../shared/data/alpr/eu");
    let mut photos: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
        .collect();
    photos.sort();
    photos.into_iter().next()
}

/// One streaming test at a time: each runs real encoders and decoders, and the delivery
/// assertions should measure Prism, not a machine shared with other tests' codecs.
pub fn media_lock() -> std::sync::MutexGuard<'static, ()> {
    static MEDIA: std::sync::Mutex<()> = std::sync::Mutex::new(());
    MEDIA.lock().unwrap_or_else(|e| e.into_inner())
}

/// WebRTC loopback helpers: a server-side pipeline context bound to 127.0.0.1 and the
/// signalling between a [`LoopbackClient`] and a `WebRtcEndpoint` (trickle ICE both ways).
pub mod loopback {
    use std::sync::Arc;
    use std::time::Duration;

    use prism::pipeline::{EventKind, MediaPipeline, PipelineContext};
    use prism::webrtc::client::LoopbackClient;
    use prism::webrtc::{WebRtcConfig, WebRtcEndpoint};

    /// A multi-threaded tokio runtime for a test.
    pub fn tokio() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
    }

    /// A pipeline context whose endpoints only use 127.0.0.1.
    pub fn context(rt: &tokio::runtime::Runtime) -> PipelineContext {
        PipelineContext {
            filters: super::test_runtime(),
            tokio: rt.handle().clone(),
            webrtc: WebRtcConfig {
                bind_addrs: vec!["127.0.0.1:0".into()],
                ..WebRtcConfig::default()
            },
            media: Default::default(),
        }
    }

    /// Negotiates `client` with `endpoint` (client offers, server answers, trickle ICE both
    /// ways) and waits until the client is connected.
    pub async fn connect(
        pipeline: &MediaPipeline,
        endpoint: &Arc<WebRtcEndpoint>,
        client: &LoopbackClient,
    ) -> anyhow::Result<()> {
        use prism::pipeline::MediaElement;
        let mut events = pipeline.subscribe();
        let offer = client.create_offer(false).await?;
        let answer = endpoint.process_offer(&offer).await?;
        client.set_answer(&answer).await?;
        let mut local = client
            .take_candidates()
            .ok_or_else(|| anyhow::anyhow!("candidates already taken"))?;
        let server = endpoint.clone();
        tokio::spawn(async move {
            while let Some(c) = local.recv().await {
                let _ = server.add_ice_candidate(c).await;
            }
        });
        endpoint.gather_candidates();
        let id = endpoint.id().clone();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        let connected = client.wait_connected(Duration::from_secs(15));
        tokio::pin!(connected);
        loop {
            tokio::select! {
                r = &mut connected => return r.map_err(Into::into),
                ev = events.recv() => {
                    if let Ok(ev) = ev
                        && ev.element == id
                        && let EventKind::IceCandidateFound { candidate } = ev.kind
                    {
                        client.add_ice_candidate(candidate).await?;
                    }
                }
                _ = tokio::time::sleep_until(deadline) => anyhow::bail!("ICE timed out"),
            }
        }
    }
}

/// An in-process Prism control server on 127.0.0.1 (random port) with the built filters and
/// a registry in a temporary directory.
pub mod server {
    use std::net::SocketAddr;
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    use prism::control::kurento::KurentoServer;
    use prism::control::server::{AppState, router};
    use prism::registry::Registry;

    /// The API token of test servers.
    pub const TOKEN: &str = "test-token";

    /// A running test server.
    pub struct TestServer {
        /// The protocol state machine.
        pub kurento: KurentoServer,
        /// The registry.
        pub registry: Arc<Registry>,
        /// Where it listens.
        pub addr: SocketAddr,
        /// Its data directory.
        pub dir: tempfile::TempDir,
        /// What its pipelines are made with (the same filter runtime).
        pub ctx: prism::pipeline::PipelineContext,
    }

    /// Starts a server on `rt` with a fresh data directory.
    pub fn start(rt: &tokio::runtime::Runtime, grace: Duration) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        start_in(rt, grace, dir)
    }

    /// Starts a server on `rt` with the data directory `dir`.
    pub fn start_in(
        rt: &tokio::runtime::Runtime,
        grace: Duration,
        dir: tempfile::TempDir,
    ) -> TestServer {
        let ctx = super::loopback::context(rt);
        let wasm = super::wasm("grayscale");
        let builtin: &Path = wasm.parent().expect("wasm dir");
        let registry =
            Arc::new(Registry::open(dir.path(), ctx.filters.clone(), builtin).expect("registry"));
        let kurento = KurentoServer::new(ctx.clone(), registry.clone(), grace);
        let app = router(AppState {
            kurento: kurento.clone(),
            registry: registry.clone(),
            token: TOKEN.into(),
        });
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        rt.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TestServer {
            kurento,
            registry,
            addr,
            dir,
            ctx,
        }
    }
}

/// A small blocking HTTP client for the API tests.
pub mod http {
    use serde_json::Value;

    /// Sends a request; returns the status and the JSON body (`Null` when there is none).
    pub fn call(
        method: &str,
        url: &str,
        token: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
    ) -> (u16, Value) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut request = ureq::http::Request::builder().method(method).uri(url);
        if let Some(t) = token {
            request = request.header("Authorization", format!("Bearer {t}"));
        }
        let (content_type, bytes) = body.unwrap_or(("application/octet-stream", Vec::new()));
        let request = request
            .header("Content-Type", content_type)
            .body(bytes)
            .expect("request");
        let mut response = agent.run(request).expect("HTTP request");
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_string()
            .unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A multipart/form-data body with one file field.
    pub fn multipart(field: &str, filename: &str, bytes: &[u8]) -> (String, Vec<u8>) {
        let boundary = "prism-test-boundary-7d1e";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\nContent-Type: application/wasm\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        (format!("multipart/form-data; boundary={boundary}"), body)
    }
}

/// A Kurento JSON-RPC client on a [`KurentoServer`] without sockets: request in, reply out.
pub mod rpc {
    use prism::control::kurento::{Connection, KurentoServer};
    use serde_json::{Value, json};
    use tokio::sync::mpsc::UnboundedReceiver;

    /// One client connection with its own session.
    pub struct Client {
        server: KurentoServer,
        /// The connection (to end it with `KurentoServer::disconnected`).
        pub conn: Connection,
        /// Events pushed to this connection (JSON-RPC notifications).
        pub events: UnboundedReceiver<String>,
        next_id: u64,
    }

    impl Client {
        /// A new connection to `server`.
        pub fn new(server: &KurentoServer) -> Self {
            let (tx, events) = tokio::sync::mpsc::unbounded_channel();
            Self {
                server: server.clone(),
                conn: server.connection(tx),
                events,
                next_id: 1,
            }
        }

        /// Sends raw text; the parsed reply.
        pub async fn raw(&mut self, text: &str) -> Value {
            let reply = self
                .server
                .handle_text(&mut self.conn, text)
                .await
                .expect("a reply");
            serde_json::from_str(&reply).unwrap()
        }

        /// Calls `method`; the whole reply.
        pub async fn call(&mut self, method: &str, params: Value) -> Value {
            let id = self.next_id;
            self.next_id += 1;
            let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
            let reply = self.raw(&request.to_string()).await;
            assert_eq!(reply["id"], id, "{reply}");
            assert_eq!(reply["jsonrpc"], "2.0");
            reply
        }

        /// Calls `method` and expects success; the `result`.
        pub async fn ok(&mut self, method: &str, params: Value) -> Value {
            let reply = self.call(method, params).await;
            assert!(reply.get("error").is_none(), "{method}: {reply}");
            reply["result"].clone()
        }

        /// Calls `method` and expects an error; its code and message.
        pub async fn err(&mut self, method: &str, params: Value) -> (i64, String) {
            let reply = self.call(method, params).await;
            let e = &reply["error"];
            assert!(e.is_object(), "{method} should fail: {reply}");
            assert!(e["data"]["type"].is_string(), "{reply}");
            (
                e["code"].as_i64().unwrap(),
                e["message"].as_str().unwrap().to_string(),
            )
        }
    }

    impl Client {
        /// Waits for the next event notification named `event` (other notifications are
        /// skipped) and returns its `value` (`object`, `type`, `data`).
        pub async fn event(&mut self, event: &str, timeout: std::time::Duration) -> Value {
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                let text = tokio::time::timeout_at(deadline, self.events.recv())
                    .await
                    .unwrap_or_else(|_| panic!("no {event} event within {timeout:?}"))
                    .expect("the connection is open");
                let note: Value = serde_json::from_str(&text).unwrap();
                let value = &note["params"]["value"];
                if value["type"] == event {
                    return value.clone();
                }
            }
        }
    }
}
