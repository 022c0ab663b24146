//! The Kurento Protocol as a state machine: requests in, responses and event notifications
//! out, no sockets here (the WebSocket edge is `ws.rs`).
//!
//! Sessions: a request without `sessionId` on an unbound connection gets a new session and
//! binds the connection to it; `connect{sessionId}` re-attaches a session (its objects live on
//! for a grace period after its connection closes). Objects: pipelines and elements with
//! Kurento's ids, plus `manager_ServerManager`. Subscriptions deliver `onEvent` to whatever
//! connection the session has now.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokio::sync::mpsc::UnboundedSender;

use super::protocol::*;
use crate::pipeline::{
    Direction, ElementEvent, ElementId, EventKind, GStreamerFilter, Hub, HubKind, IceCandidate,
    MediaElement, MediaPipeline, MediaProfile, MediaType, PipelineContext, PipelineError,
    PlayerEndpoint, RecorderEndpoint, RtpEndpoint, RtpEndpointOptions,
};
use crate::runtime::{FilterEvent, LoadedFilter};
use crate::sys::{lock, now_ms};
use crate::webrtc::WebRtcEndpoint;

/// The id of the server manager object.
pub const SERVER_MANAGER: &str = "manager_ServerManager";
/// Largest request accepted, bytes.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// Operations per transaction.
pub const MAX_TRANSACTION_OPERATIONS: usize = 256;
/// Pipelines per server.
pub const MAX_PIPELINES: usize = 256;

/// Finds filters by `name` or `name@version` (the registry).
pub trait FilterCatalog: Send + Sync {
    /// The loaded filter.
    fn resolve(&self, spec: &str) -> Result<Arc<LoadedFilter>, String>;
    /// Whether a filter of that name exists (without loading it).
    fn available(&self, name: &str) -> bool {
        self.resolve(name).is_ok()
    }
    /// An element was made from `spec` (so the catalog can track and hot-swap it).
    fn attach(&self, _spec: &str, _element: &Arc<crate::pipeline::WasmFilter>) {}
}

/// What a media element is, in Kurento's type system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    WebRtcEndpoint,
    PassThrough,
    WasmFilter,
    PlateDetectorFilter,
    PlayerEndpoint,
    RecorderEndpoint,
    Composite,
    Dispatcher,
    DispatcherOneToMany,
    HubPort,
    GStreamerFilter,
    FaceOverlayFilter,
    RtpEndpoint,
}

impl Class {
    fn parse(type_name: &str) -> Option<Self> {
        let bare = type_name.rsplit('.').next().unwrap_or(type_name);
        Some(match bare {
            "WebRtcEndpoint" => Class::WebRtcEndpoint,
            "PassThrough" => Class::PassThrough,
            "WasmFilter" => Class::WasmFilter,
            "PlateDetectorFilter" => Class::PlateDetectorFilter,
            "PlayerEndpoint" => Class::PlayerEndpoint,
            "RecorderEndpoint" => Class::RecorderEndpoint,
            "Composite" => Class::Composite,
            "Dispatcher" => Class::Dispatcher,
            "DispatcherOneToMany" => Class::DispatcherOneToMany,
            "HubPort" => Class::HubPort,
            "GStreamerFilter" => Class::GStreamerFilter,
            "FaceOverlayFilter" => Class::FaceOverlayFilter,
            "RtpEndpoint" => Class::RtpEndpoint,
            _ => return None,
        })
    }

    fn is_hub(self) -> bool {
        matches!(
            self,
            Class::Composite | Class::Dispatcher | Class::DispatcherOneToMany
        )
    }

    fn module(self) -> &'static str {
        match self {
            Class::WasmFilter => "prism",
            Class::PlateDetectorFilter => "platedetector",
            _ => "kurento",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Class::WebRtcEndpoint => "WebRtcEndpoint",
            Class::PassThrough => "PassThrough",
            Class::WasmFilter => "WasmFilter",
            Class::PlateDetectorFilter => "PlateDetectorFilter",
            Class::PlayerEndpoint => "PlayerEndpoint",
            Class::RecorderEndpoint => "RecorderEndpoint",
            Class::Composite => "Composite",
            Class::Dispatcher => "Dispatcher",
            Class::DispatcherOneToMany => "DispatcherOneToMany",
            Class::HubPort => "HubPort",
            Class::GStreamerFilter => "GStreamerFilter",
            Class::FaceOverlayFilter => "FaceOverlayFilter",
            Class::RtpEndpoint => "RtpEndpoint",
        }
    }

    fn hierarchy(self) -> Vec<&'static str> {
        match self {
            Class::WebRtcEndpoint | Class::RtpEndpoint => vec![
                "kurento.BaseRtpEndpoint",
                "kurento.SdpEndpoint",
                "kurento.SessionEndpoint",
                "kurento.Endpoint",
                "kurento.MediaElement",
                "kurento.MediaObject",
            ],
            Class::PassThrough | Class::HubPort => {
                vec!["kurento.MediaElement", "kurento.MediaObject"]
            }
            Class::PlayerEndpoint | Class::RecorderEndpoint => vec![
                "kurento.UriEndpoint",
                "kurento.Endpoint",
                "kurento.MediaElement",
                "kurento.MediaObject",
            ],
            Class::Composite | Class::Dispatcher | Class::DispatcherOneToMany => {
                vec!["kurento.Hub", "kurento.MediaObject"]
            }
            Class::WasmFilter
            | Class::PlateDetectorFilter
            | Class::GStreamerFilter
            | Class::FaceOverlayFilter => vec![
                "kurento.Filter",
                "kurento.MediaElement",
                "kurento.MediaObject",
            ],
        }
    }
}

#[derive(Clone)]
enum Kind {
    Pipeline(MediaPipeline),
    Element {
        pipeline: MediaPipeline,
        id: ElementId,
        class: Class,
    },
}

struct Meta {
    name: String,
    tags: Vec<(String, String)>,
    created: u64,
    send_tags: bool,
}

#[derive(Clone)]
struct Object {
    kind: Kind,
    session: String,
    meta: Arc<Mutex<Meta>>,
}

struct Subscription {
    object: String,
    event_type: String,
}

#[derive(Default)]
struct Session {
    outbox: Option<UnboundedSender<String>>,
    subscriptions: HashMap<String, Subscription>,
    /// One event forwarder per pipeline this session listens to, so events keep their order.
    forwarders: HashMap<String, tokio::task::JoinHandle<()>>,
    refs: HashSet<String>,
    disconnected_at: Option<Instant>,
}

struct State {
    ctx: PipelineContext,
    catalog: Arc<dyn FilterCatalog>,
    server_id: String,
    grace: Duration,
    started: Instant,
    objects: Mutex<HashMap<String, Object>>,
    sessions: Mutex<HashMap<String, Session>>,
}

/// One client connection: which session it is bound to and where its messages go.
#[derive(Debug)]
pub struct Connection {
    session: Option<String>,
    outbox: UnboundedSender<String>,
}

impl Connection {
    /// The session this connection is bound to, once it is.
    pub fn session(&self) -> Option<&str> {
        self.session.as_deref()
    }
}

/// The Kurento protocol server (shared by every connection).
#[derive(Clone)]
pub struct KurentoServer {
    state: Arc<State>,
}

impl std::fmt::Debug for KurentoServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KurentoServer")
            .field("server_id", &self.state.server_id)
            .finish_non_exhaustive()
    }
}

fn pipeline_error(e: PipelineError) -> RpcError {
    match &e {
        PipelineError::NoSuchElement(_) | PipelineError::Released => {
            RpcError::new(MEDIA_OBJECT_NOT_FOUND, e.to_string())
        }
        PipelineError::WrongRole { .. } | PipelineError::Loop { .. } => {
            RpcError::new(CONNECT_ERROR, e.to_string())
        }
        PipelineError::Filter(_) => RpcError::new(MEDIA_OBJECT_ILLEGAL_PARAM_ERROR, e.to_string()),
        PipelineError::WebRtc(w) => RpcError::new(w.kurento_code(), e.to_string()),
        PipelineError::Media(_) => RpcError::new(NOT_ENOUGH_RESOURCES, e.to_string()),
        PipelineError::InvalidArgument(_) | PipelineError::InvalidState(_) => {
            RpcError::new(MEDIA_OBJECT_ILLEGAL_PARAM_ERROR, e.to_string())
        }
    }
}

fn media_type(value: Option<&Value>) -> Result<Option<MediaType>, RpcError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => match s.as_str() {
            "AUDIO" => Ok(Some(MediaType::Audio)),
            "VIDEO" => Ok(Some(MediaType::Video)),
            "DATA" => Err(RpcError::new(
                MEDIA_OBJECT_ILLEGAL_PARAM_ERROR,
                "DATA connections are not supported",
            )),
            other => Err(bad_param(
                "mediaType",
                &format!("must be AUDIO, VIDEO or DATA, not {other:?}"),
            )),
        },
        Some(_) => Err(bad_param("mediaType", "must be a string")),
    }
}

fn media_name(media: MediaType) -> &'static str {
    match media {
        MediaType::Audio => "AUDIO",
        MediaType::Video => "VIDEO",
    }
}

/// Kurento's name and data for a pipeline event (without the common fields).
fn kurento_event(event: &ElementEvent) -> Option<(String, Value)> {
    let (name, data) = match &event.kind {
        EventKind::Filter { event } => match event {
            FilterEvent::Event { name, payload, .. } => {
                let data = match payload {
                    Value::Object(map) => Value::Object(map.clone()),
                    other => json!({ "value": other }),
                };
                (name.clone(), data)
            }
            FilterEvent::Error { message, fault, .. } => (
                "Error".into(),
                json!({ "description": message, "errorCode": 1, "type": format!("FILTER_{fault:?}").to_uppercase() }),
            ),
            FilterEvent::Disabled { filter, failures } => (
                "Error".into(),
                json!({
                    "description": format!("filter {filter} disabled after {failures} failures in a row"),
                    "errorCode": 2,
                    "type": "FILTER_DISABLED",
                }),
            ),
            FilterEvent::Restarted { .. } => return None,
        },
        EventKind::MediaFlowInStateChanged { media, flowing }
        | EventKind::MediaFlowOutStateChanged { media, flowing } => (
            if matches!(event.kind, EventKind::MediaFlowInStateChanged { .. }) {
                "MediaFlowInStateChanged".into()
            } else {
                "MediaFlowOutStateChanged".into()
            },
            json!({
                "state": if *flowing { "FLOWING" } else { "NOT_FLOWING" },
                "padName": "default",
                "mediaType": media_name(*media),
            }),
        ),
        EventKind::IceCandidateFound { candidate } => (
            "IceCandidateFound".into(),
            json!({ "candidate": ice_candidate_json(candidate) }),
        ),
        EventKind::IceGatheringDone => ("IceGatheringDone".into(), json!({})),
        EventKind::ConnectionStateChanged { state } => {
            let new = match state.as_str() {
                "connected" => "CONNECTED",
                _ => "DISCONNECTED",
            };
            (
                "ConnectionStateChanged".into(),
                json!({ "oldState": "DISCONNECTED", "newState": new }),
            )
        }
        EventKind::KeyframeRequested => return None,
        EventKind::CandidatePairSelected { local, remote } => (
            "NewCandidatePairSelected".into(),
            json!({
                "candidatePair": {
                    "__module__": "kurento",
                    "__type__": "IceCandidatePair",
                    "streamID": "1",
                    "componentID": 1,
                    "localCandidate": local,
                    "remoteCandidate": remote,
                }
            }),
        ),
        EventKind::IceStateChanged { state } => {
            let kurento = match state.as_str() {
                "checking" => "CONNECTING",
                "connected" => "CONNECTED",
                "completed" => "READY",
                "failed" => "FAILED",
                "new" => "GATHERING",
                _ => "DISCONNECTED",
            };
            (
                "IceComponentStateChanged".into(),
                json!({ "state": kurento, "streamId": 1, "componentId": 1 }),
            )
        }
        EventKind::ElementConnected {
            source,
            sink,
            media,
        }
        | EventKind::ElementDisconnected {
            source,
            sink,
            media,
        } => (
            if matches!(event.kind, EventKind::ElementConnected { .. }) {
                "ElementConnected".into()
            } else {
                "ElementDisconnected".into()
            },
            json!({
                "source": source.as_str(),
                "sink": sink.as_str(),
                "mediaType": media_name(*media),
                "sourceMediaDescription": "default",
                "sinkMediaDescription": "default",
            }),
        ),
        EventKind::EndOfStream => ("EndOfStream".into(), json!({})),
        EventKind::UriEndpointStateChanged { state } => {
            ("UriEndpointStateChanged".into(), json!({ "state": state }))
        }
        EventKind::Recording => ("Recording".into(), json!({})),
        EventKind::Paused => ("Paused".into(), json!({})),
        EventKind::Stopped => ("Stopped".into(), json!({})),
        EventKind::Error { message } => (
            "Error".into(),
            json!({ "description": message, "errorCode": 3, "type": "MEDIA_ERROR" }),
        ),
    };
    Some((name, data))
}

fn ice_candidate_json(c: &IceCandidate) -> Value {
    json!({
        "__module__": "kurento",
        "__type__": "IceCandidate",
        "candidate": c.candidate,
        "sdpMid": c.sdp_mid.clone().unwrap_or_default(),
        "sdpMLineIndex": c.sdp_mline_index.unwrap_or(0),
    })
}

/// Replaces `"newref:N"` strings with the ids created by operation N of a transaction.
fn substitute_refs(value: &mut Value, created: &[Option<String>]) -> Result<(), RpcError> {
    match value {
        Value::String(s) => {
            if let Some(n) = s.strip_prefix("newref:") {
                let index: usize = n.parse().map_err(|_| {
                    RpcError::new(MALFORMED_TRANSACTION, format!("bad reference {s:?}"))
                })?;
                let id = created.get(index).cloned().flatten().ok_or_else(|| {
                    RpcError::new(
                        MALFORMED_TRANSACTION,
                        format!("{s:?} refers to an operation that created nothing"),
                    )
                })?;
                *s = id;
            }
        }
        Value::Array(items) => {
            for item in items {
                substitute_refs(item, created)?;
            }
        }
        Value::Object(map) => {
            for (_, item) in map.iter_mut() {
                substitute_refs(item, created)?;
            }
        }
        _ => {}
    }
    Ok(())
}

impl KurentoServer {
    /// A server creating pipelines with `ctx` and finding filters in `catalog`; objects of a
    /// disconnected session are released after `grace`.
    pub fn new(ctx: PipelineContext, catalog: Arc<dyn FilterCatalog>, grace: Duration) -> Self {
        Self {
            state: Arc::new(State {
                ctx,
                catalog,
                server_id: uuid::Uuid::new_v4().to_string(),
                grace,
                started: Instant::now(),
                objects: Mutex::new(HashMap::new()),
                sessions: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// A new connection whose messages (events) go to `outbox`.
    pub fn connection(&self, outbox: UnboundedSender<String>) -> Connection {
        Connection {
            session: None,
            outbox,
        }
    }

    /// The connection closed: its session's objects live on for the grace period.
    pub fn disconnected(&self, conn: &Connection) {
        let Some(session) = conn.session.clone() else {
            return;
        };
        {
            let mut sessions = lock(&self.state.sessions);
            let Some(s) = sessions.get_mut(&session) else {
                return;
            };
            // Only if this connection is still the session's (it may have re-attached).
            if s.outbox
                .as_ref()
                .is_some_and(|o| o.same_channel(&conn.outbox))
            {
                s.outbox = None;
                s.disconnected_at = Some(Instant::now());
            } else {
                return;
            }
        }
        let server = self.clone();
        let grace = self.state.grace;
        self.state.ctx.tokio.spawn(async move {
            tokio::time::sleep(grace).await;
            let expired = lock(&server.state.sessions)
                .get(&session)
                .and_then(|s| s.disconnected_at)
                .is_some_and(|at| at.elapsed() >= grace);
            if expired {
                server.close_session(&session);
            }
        });
    }

    /// A live pipeline by id.
    pub fn pipeline(&self, id: &str) -> Option<MediaPipeline> {
        match lock(&self.state.objects).get(id).map(|o| o.kind.clone()) {
            Some(Kind::Pipeline(p)) => Some(p),
            _ => None,
        }
    }

    /// Ids of the live pipelines.
    pub fn pipelines(&self) -> Vec<String> {
        let mut ids: Vec<String> = lock(&self.state.objects)
            .iter()
            .filter(|(_, o)| matches!(o.kind, Kind::Pipeline(_)))
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// Handles one text message; returns the response to send, if any.
    pub async fn handle_text(&self, conn: &mut Connection, text: &str) -> Option<String> {
        if text.len() > MAX_MESSAGE_BYTES {
            let e = RpcError::new(
                INVALID_REQUEST,
                format!(
                    "message of {} bytes is over the {MAX_MESSAGE_BYTES}-byte limit",
                    text.len()
                ),
            );
            return Some(error_response(&Value::Null, &e).to_string());
        }
        let request: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                let e = RpcError::new(PARSE_ERROR, format!("not JSON: {e}"));
                return Some(error_response(&Value::Null, &e).to_string());
            }
        };
        self.handle(conn, request).await.map(|v| v.to_string())
    }

    /// Handles one parsed message.
    pub async fn handle(&self, conn: &mut Connection, request: Value) -> Option<Value> {
        let Value::Object(map) = &request else {
            let e = RpcError::new(INVALID_REQUEST, "a request is a JSON object");
            return Some(error_response(&Value::Null, &e));
        };
        let id = map.get("id").cloned();
        let Some(method) = map.get("method").and_then(Value::as_str) else {
            // A response from the client (to nothing we sent) or garbage.
            if id.is_some() && (map.contains_key("result") || map.contains_key("error")) {
                return None;
            }
            let e = RpcError::new(INVALID_REQUEST, "a request has a string 'method'");
            return Some(error_response(&id.unwrap_or(Value::Null), &e));
        };
        if map.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            let e = RpcError::new(INVALID_REQUEST, "'jsonrpc' must be \"2.0\"");
            return Some(error_response(&id.unwrap_or(Value::Null), &e));
        }
        let params = map.get("params").cloned().unwrap_or_else(|| json!({}));
        let result = self.dispatch(conn, method, params).await;
        // Notifications (no id) get no response.
        let id = id?;
        Some(match result {
            Ok(value) => response(&id, value),
            Err(e) => error_response(&id, &e),
        })
    }

    /// Binds the connection to the request's session (or a new one).
    fn bind_session(&self, conn: &mut Connection, params: &Value) -> Result<String, RpcError> {
        let asked = opt_str_param(params, "sessionId")?;
        let mut sessions = lock(&self.state.sessions);
        if let Some(asked) = asked {
            if conn.session.as_deref() == Some(asked) {
                return Ok(asked.to_string());
            }
            let Some(s) = sessions.get_mut(asked) else {
                return Err(RpcError::new(
                    INVALID_SESSION,
                    format!("invalid session {asked}"),
                ));
            };
            s.outbox = Some(conn.outbox.clone());
            s.disconnected_at = None;
            conn.session = Some(asked.to_string());
            return Ok(asked.to_string());
        }
        if let Some(s) = &conn.session {
            return Ok(s.clone());
        }
        let id = uuid::Uuid::new_v4().to_string();
        sessions.insert(
            id.clone(),
            Session {
                outbox: Some(conn.outbox.clone()),
                ..Session::default()
            },
        );
        conn.session = Some(id.clone());
        Ok(id)
    }

    fn dispatch<'a>(
        &'a self,
        conn: &'a mut Connection,
        method: &'a str,
        params: Value,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Value, RpcError>> + Send + 'a>> {
        Box::pin(async move {
            if method == "ping" {
                return Ok(json!({ "value": "pong" }));
            }
            if !params.is_object() {
                return Err(bad_param("params", "must be an object"));
            }
            if method == "connect" {
                let session = self.bind_session(conn, &params)?;
                return Ok(json!({ "sessionId": session, "serverId": self.state.server_id }));
            }
            let session = self.bind_session(conn, &params)?;
            let mut result = match method {
                "create" => self.create(&session, &params).await?,
                "invoke" => self.invoke(&params).await?,
                "subscribe" => self.subscribe(&session, &params)?,
                "unsubscribe" => self.unsubscribe(&session, &params)?,
                "release" => self.release(&params)?,
                "describe" => self.describe(&params)?,
                "ref" => self.reference(&session, &params, true)?,
                "unref" => self.reference(&session, &params, false)?,
                "keepAlive" => json!({}),
                "closeSession" => {
                    self.close_session(&session);
                    conn.session = None;
                    json!({})
                }
                "transaction" => self.transaction(conn, &params).await?,
                other => {
                    return Err(RpcError::new(
                        METHOD_NOT_FOUND,
                        format!("unknown method {other:?}"),
                    ));
                }
            };
            if let Value::Object(map) = &mut result {
                map.insert("sessionId".into(), Value::String(session));
            }
            Ok(result)
        })
    }

    async fn transaction(&self, conn: &mut Connection, params: &Value) -> Result<Value, RpcError> {
        let operations = params
            .get("operations")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                RpcError::new(
                    MALFORMED_TRANSACTION,
                    "a transaction needs an 'operations' array",
                )
            })?;
        if operations.len() > MAX_TRANSACTION_OPERATIONS {
            return Err(RpcError::new(
                MALFORMED_TRANSACTION,
                format!("more than {MAX_TRANSACTION_OPERATIONS} operations"),
            ));
        }
        let mut results = Vec::new();
        let mut created: Vec<Option<String>> = Vec::new();
        for op in operations {
            let method = op.get("method").and_then(Value::as_str);
            let (Some(method), Some(op_params)) = (method, op.get("params")) else {
                let e = RpcError::new(
                    MALFORMED_TRANSACTION,
                    "each operation needs 'method' and 'params'",
                );
                results.push(json!({ "error": e.to_json() }));
                break;
            };
            if method == "transaction" {
                let e = RpcError::new(MALFORMED_TRANSACTION, "transactions do not nest");
                results.push(json!({ "error": e.to_json() }));
                break;
            }
            let mut op_params = op_params.clone();
            if let Err(e) = substitute_refs(&mut op_params, &created) {
                results.push(json!({ "error": e.to_json() }));
                break;
            }
            match self.dispatch(conn, method, op_params).await {
                Ok(result) => {
                    created.push(if method == "create" {
                        result
                            .get("value")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    } else {
                        None
                    });
                    results.push(json!({ "result": result }));
                }
                Err(e) => {
                    results.push(json!({ "error": e.to_json() }));
                    break;
                }
            }
        }
        Ok(json!({ "value": results }))
    }

    fn object(&self, id: &str) -> Result<Object, RpcError> {
        lock(&self.state.objects)
            .get(id)
            .cloned()
            .ok_or_else(|| RpcError::new(MEDIA_OBJECT_NOT_FOUND, format!("object {id} not found")))
    }

    fn insert(&self, id: String, kind: Kind, session: &str) {
        lock(&self.state.objects).insert(
            id,
            Object {
                kind,
                session: session.to_string(),
                meta: Arc::new(Mutex::new(Meta {
                    name: String::new(),
                    tags: Vec::new(),
                    created: now_ms() / 1000,
                    send_tags: false,
                })),
            },
        );
    }

    fn pipeline_param(&self, params: &Value) -> Result<MediaPipeline, RpcError> {
        let id = str_param(params, "mediaPipeline")?;
        match self.object(id)?.kind {
            Kind::Pipeline(p) => Ok(p),
            Kind::Element { .. } => Err(bad_param("mediaPipeline", "is not a MediaPipeline")),
        }
    }

    async fn create(&self, session: &str, params: &Value) -> Result<Value, RpcError> {
        let type_name = str_param(params, "type")?;
        let cp = params
            .get("constructorParams")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let bare = type_name.rsplit('.').next().unwrap_or(type_name);
        if bare == "MediaPipeline" {
            let live = self.pipelines().len();
            if live >= MAX_PIPELINES {
                return Err(RpcError::new(
                    NOT_ENOUGH_RESOURCES,
                    format!("{live} pipelines is the limit"),
                ));
            }
            let pipeline = MediaPipeline::new(self.state.ctx.clone()).map_err(pipeline_error)?;
            let id = pipeline.id().to_string();
            self.insert(id.clone(), Kind::Pipeline(pipeline), session);
            return Ok(json!({ "value": id }));
        }
        let Some(class) = Class::parse(type_name) else {
            return Err(RpcError::new(
                FACTORY_NOT_FOUND,
                format!("no factory for type {type_name:?}"),
            ));
        };
        let pipeline = if class == Class::HubPort {
            match self.object(str_param(&cp, "hub")?)?.kind {
                Kind::Element { pipeline, .. } => pipeline,
                Kind::Pipeline(_) => return Err(bad_param("hub", "is not a Hub")),
            }
        } else {
            self.pipeline_param(&cp)?
        };
        let id = match class {
            Class::WebRtcEndpoint => pipeline
                .add_webrtc_endpoint()
                .await
                .map_err(pipeline_error)?
                .id()
                .clone(),
            Class::PassThrough => pipeline
                .add_passthrough()
                .map_err(pipeline_error)?
                .id()
                .clone(),
            Class::WasmFilter | Class::PlateDetectorFilter | Class::FaceOverlayFilter => {
                let spec = match class {
                    Class::WasmFilter => str_param(&cp, "filter")?.to_string(),
                    Class::FaceOverlayFilter => FACE_OVERLAY_FILTER.to_string(),
                    _ => "platedetector".to_string(),
                };
                let filter = self.state.catalog.resolve(&spec).map_err(|e| {
                    RpcError::new(FACTORY_NOT_FOUND, format!("filter {spec:?}: {e}"))
                })?;
                let config = match cp.get("config") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(v) => Some(v.to_string()),
                };
                let element = pipeline
                    .add_filter(&filter, config.as_deref(), class.module(), class.name())
                    .map_err(pipeline_error)?;
                self.state.catalog.attach(&spec, &element);
                element.id().clone()
            }
            Class::RtpEndpoint => {
                let options: RtpEndpointOptions = serde_json::from_value(cp.clone())
                    .map_err(|e| bad_param("constructorParams", &format!("of RtpEndpoint: {e}")))?;
                pipeline
                    .add_rtp_endpoint(options)
                    .map_err(|e| RpcError::new(e.kurento_code(), e.to_string()))?
                    .id()
                    .clone()
            }
            Class::PlayerEndpoint => {
                let cache = match cp.get("networkCache") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(
                        v.as_u64()
                            .filter(|ms| *ms <= 60_000)
                            .ok_or_else(|| bad_param("networkCache", "must be 0..60000 ms"))?
                            as u32,
                    ),
                };
                pipeline
                    .add_player(str_param(&cp, "uri")?, cache)
                    .map_err(pipeline_error)?
                    .id()
                    .clone()
            }
            Class::RecorderEndpoint => {
                let profile = match opt_str_param(&cp, "mediaProfile")? {
                    Some(name) => MediaProfile::parse(name).map_err(pipeline_error)?,
                    None => MediaProfile::Webm,
                };
                let stop_on_eos = match cp.get("stopOnEndOfStream") {
                    None | Some(Value::Null) => false,
                    Some(v) => v
                        .as_bool()
                        .ok_or_else(|| bad_param("stopOnEndOfStream", "must be a boolean"))?,
                };
                pipeline
                    .add_recorder(str_param(&cp, "uri")?, profile, stop_on_eos)
                    .map_err(pipeline_error)?
                    .id()
                    .clone()
            }
            Class::Composite | Class::Dispatcher | Class::DispatcherOneToMany => {
                let kind = match class {
                    Class::Composite => {
                        // Prism extensions: the grid's size and rate.
                        let (w, h, fps) = crate::pipeline::COMPOSITE_DEFAULT;
                        let num = |name: &str, default: u32| match cp.get(name) {
                            None | Some(Value::Null) => Ok(default),
                            Some(v) => v
                                .as_u64()
                                .map(|n| n.min(u32::MAX as u64) as u32)
                                .ok_or_else(|| bad_param(name, "must be a whole number")),
                        };
                        HubKind::composite(
                            num("width", w)?,
                            num("height", h)?,
                            num("framerate", fps)?,
                        )
                        .map_err(pipeline_error)?
                    }
                    Class::Dispatcher => HubKind::Dispatcher,
                    _ => HubKind::DispatcherOneToMany,
                };
                pipeline.add_hub(kind).map_err(pipeline_error)?.id().clone()
            }
            Class::HubPort => {
                let hub = ElementId::from(str_param(&cp, "hub")?);
                pipeline
                    .add_hub_port(&hub)
                    .map_err(|e| match e {
                        PipelineError::NoSuchElement(_) => bad_param("hub", "is not a Hub"),
                        e => pipeline_error(e),
                    })?
                    .id()
                    .clone()
            }
            Class::GStreamerFilter => {
                match opt_str_param(&cp, "filterType")? {
                    None | Some("VIDEO") | Some("AUTODETECT") => {}
                    Some(other) => {
                        return Err(bad_param(
                            "filterType",
                            &format!("{other:?} is not supported (VIDEO or AUTODETECT)"),
                        ));
                    }
                }
                pipeline
                    .add_gstreamer_filter(str_param(&cp, "command")?)
                    .map_err(pipeline_error)?
                    .id()
                    .clone()
            }
        };
        let text = id.to_string();
        self.insert(
            text.clone(),
            Kind::Element {
                pipeline,
                id,
                class,
            },
            session,
        );
        Ok(json!({ "value": text }))
    }

    fn describe(&self, params: &Value) -> Result<Value, RpcError> {
        let id = str_param(params, "object")?;
        if id == SERVER_MANAGER {
            return Ok(json!({
                "type": "ServerManager",
                "qualifiedType": "kurento.ServerManager",
                "hierarchy": ["kurento.MediaObject"],
            }));
        }
        let object = self.object(id)?;
        Ok(match object.kind {
            Kind::Pipeline(_) => json!({
                "type": "MediaPipeline",
                "qualifiedType": "kurento.MediaPipeline",
                "hierarchy": ["kurento.MediaObject"],
            }),
            Kind::Element { class, .. } => json!({
                "type": class.name(),
                "qualifiedType": format!("{}.{}", class.module(), class.name()),
                "hierarchy": class.hierarchy(),
            }),
        })
    }

    fn release(&self, params: &Value) -> Result<Value, RpcError> {
        let id = str_param(params, "object")?;
        let object = self.object(id)?;
        self.release_object(id, &object);
        Ok(json!({}))
    }

    fn release_object(&self, id: &str, object: &Object) {
        match &object.kind {
            Kind::Pipeline(p) => {
                p.release();
                let prefix = format!("{id}/");
                lock(&self.state.objects).retain(|k, _| k != id && !k.starts_with(&prefix));
            }
            Kind::Element {
                pipeline, id: eid, ..
            } => {
                let _ = pipeline.release_element(eid);
                lock(&self.state.objects).remove(id);
            }
        }
        // Subscriptions to released objects end, and so do forwarders of a released pipeline.
        let prefix = format!("{id}/");
        for s in lock(&self.state.sessions).values_mut() {
            s.subscriptions
                .retain(|_, sub| sub.object != id && !sub.object.starts_with(&prefix));
            if let Some(task) = s.forwarders.remove(id) {
                task.abort();
            }
        }
    }

    fn close_session(&self, session: &str) {
        let owned: Vec<(String, Object)> = lock(&self.state.objects)
            .iter()
            .filter(|(_, o)| o.session == session && matches!(o.kind, Kind::Pipeline(_)))
            .map(|(k, o)| (k.clone(), o.clone()))
            .collect();
        for (id, object) in owned {
            self.release_object(&id, &object);
        }
        if let Some(s) = lock(&self.state.sessions).remove(session) {
            for task in s.forwarders.into_values() {
                task.abort();
            }
        }
    }

    fn reference(&self, session: &str, params: &Value, add: bool) -> Result<Value, RpcError> {
        let id = str_param(params, "object")?;
        if id != SERVER_MANAGER {
            self.object(id)?;
        }
        let mut sessions = lock(&self.state.sessions);
        let s = sessions.entry(session.to_string()).or_default();
        if add {
            s.refs.insert(id.to_string());
        } else {
            s.refs.remove(id);
        }
        Ok(json!({}))
    }

    fn subscribe(&self, session: &str, params: &Value) -> Result<Value, RpcError> {
        let id = str_param(params, "object")?.to_string();
        let event_type = str_param(params, "type")?.to_string();
        let object = self.object(&id)?;
        let pipeline = match &object.kind {
            Kind::Pipeline(p) => p.clone(),
            Kind::Element { pipeline, .. } => pipeline.clone(),
        };
        let sub_id = uuid::Uuid::new_v4().to_string();
        let mut sessions = lock(&self.state.sessions);
        let s = sessions.entry(session.to_string()).or_default();
        s.subscriptions.insert(
            sub_id.clone(),
            Subscription {
                object: id,
                event_type,
            },
        );
        let key = pipeline.id().to_string();
        if let std::collections::hash_map::Entry::Vacant(slot) = s.forwarders.entry(key) {
            // Subscribe now, not in the task: events of operations that follow this call
            // must not slip past before the task first runs.
            let rx = pipeline.subscribe();
            let task = self
                .state
                .ctx
                .tokio
                .spawn(self.clone().forward(session.to_string(), rx));
            slot.insert(task);
        }
        Ok(json!({ "value": sub_id }))
    }

    /// Sends the events of `pipeline` that `session` subscribed to, in order.
    async fn forward(
        self,
        session: String,
        mut rx: tokio::sync::broadcast::Receiver<ElementEvent>,
    ) {
        loop {
            let event = match rx.recv().await {
                Ok(e) => e,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("session {session} missed {n} events");
                    continue;
                }
                Err(_) => return,
            };
            let Some((name, data)) = kurento_event(&event) else {
                continue;
            };
            let object_id = event.element.as_str();
            let outbox = {
                let sessions = lock(&self.state.sessions);
                let Some(s) = sessions.get(&session) else {
                    return;
                };
                let wanted = s.subscriptions.values().any(|sub| {
                    sub.object == object_id && (sub.event_type == name || sub.event_type == "*")
                });
                if !wanted {
                    continue;
                }
                s.outbox.clone()
            };
            let Some(outbox) = outbox else { continue };
            let meta = lock(&self.state.objects)
                .get(object_id)
                .map(|o| o.meta.clone());
            let tags: Vec<Value> = meta
                .map(|meta| {
                    let meta = lock(&meta);
                    if meta.send_tags {
                        meta.tags
                            .iter()
                            .map(|(k, v)| json!({"__module__": "kurento", "__type__": "Tag", "key": k, "value": v}))
                            .collect()
                    } else {
                        Vec::new()
                    }
                })
                .unwrap_or_default();
            let mut data = match data {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            data.insert("source".into(), json!(object_id));
            data.insert("tags".into(), Value::Array(tags));
            data.insert(
                "timestampMillis".into(),
                json!(event.timestamp_ms.to_string()),
            );
            data.insert(
                "timestamp".into(),
                json!((event.timestamp_ms / 1000).to_string()),
            );
            data.insert("type".into(), json!(name));
            let message = event_notification(object_id, &name, Value::Object(data));
            let _ = outbox.send(message.to_string());
        }
    }

    fn unsubscribe(&self, session: &str, params: &Value) -> Result<Value, RpcError> {
        let sub = str_param(params, "subscription")?;
        let removed = lock(&self.state.sessions)
            .get_mut(session)
            .and_then(|s| s.subscriptions.remove(sub));
        match removed {
            Some(_) => Ok(json!({})),
            None => Err(RpcError::new(
                MEDIA_OBJECT_ILLEGAL_PARAM_ERROR,
                format!("no subscription {sub}"),
            )),
        }
    }

    async fn invoke(&self, params: &Value) -> Result<Value, RpcError> {
        let id = str_param(params, "object")?;
        let operation = str_param(params, "operation")?;
        let op = params
            .get("operationParams")
            .cloned()
            .unwrap_or_else(|| json!({}));
        if id == SERVER_MANAGER {
            return self.invoke_manager(operation, &op);
        }
        let object = self.object(id)?;
        if let Some(v) = self.invoke_media_object(id, &object, operation, &op)? {
            return Ok(json!({ "value": v }));
        }
        let value = match &object.kind {
            Kind::Pipeline(p) => match operation {
                "getGstreamerDot" => json!(p.gstreamer_dot()),
                _ => return Err(no_method(operation, "MediaPipeline")),
            },
            Kind::Element {
                pipeline,
                id: eid,
                class,
            } if class.is_hub() => invoke_hub(pipeline, eid, *class, operation, &op)?,
            Kind::Element {
                pipeline,
                id: eid,
                class,
            } => {
                if let Some(v) = self.invoke_element(pipeline, eid, operation, &op)? {
                    v
                } else {
                    match class {
                        Class::WebRtcEndpoint => {
                            let ep = pipeline
                                .element_as::<WebRtcEndpoint>(eid)
                                .map_err(pipeline_error)?;
                            invoke_webrtc(&ep, operation, &op).await?
                        }
                        Class::WasmFilter | Class::PlateDetectorFilter => {
                            let f = pipeline
                                .element_as::<crate::pipeline::WasmFilter>(eid)
                                .map_err(pipeline_error)?;
                            invoke_filter(&f, *class, operation, &op)?
                        }
                        Class::FaceOverlayFilter => {
                            let f = pipeline
                                .element_as::<crate::pipeline::WasmFilter>(eid)
                                .map_err(pipeline_error)?;
                            let media = &pipeline.context().media;
                            invoke_face_overlay(f, media, operation, &op).await?
                        }
                        Class::RtpEndpoint => {
                            let ep = pipeline
                                .element_as::<RtpEndpoint>(eid)
                                .map_err(pipeline_error)?;
                            invoke_rtp(&ep, operation, &op)?
                        }
                        Class::PlayerEndpoint => {
                            let p = pipeline
                                .element_as::<PlayerEndpoint>(eid)
                                .map_err(pipeline_error)?;
                            invoke_player(p, operation, &op).await?
                        }
                        Class::RecorderEndpoint => {
                            let r = pipeline
                                .element_as::<RecorderEndpoint>(eid)
                                .map_err(pipeline_error)?;
                            invoke_recorder(r, operation).await?
                        }
                        Class::GStreamerFilter => {
                            let f = pipeline
                                .element_as::<GStreamerFilter>(eid)
                                .map_err(pipeline_error)?;
                            invoke_gstreamer_filter(&f, operation, &op)?
                        }
                        Class::PassThrough
                        | Class::HubPort
                        | Class::Composite
                        | Class::Dispatcher
                        | Class::DispatcherOneToMany => {
                            return Err(no_method(operation, class.name()));
                        }
                    }
                }
            }
        };
        Ok(json!({ "value": value }))
    }

    fn invoke_manager(&self, operation: &str, _op: &Value) -> Result<Value, RpcError> {
        let value = match operation {
            "getInfo" => self.server_info(),
            "getPipelines" => json!(self.pipelines()),
            "getSessions" => {
                let mut ids: Vec<String> = lock(&self.state.sessions).keys().cloned().collect();
                ids.sort();
                json!(ids)
            }
            "getUsedCpu" => json!(used_cpu_percent(self.state.started)),
            "getUsedMemory" => json!(used_memory_kib()),
            "getName" => json!("ServerManager"),
            "getChildren" => json!(self.pipelines()),
            _ => return Err(no_method(operation, "ServerManager")),
        };
        Ok(json!({ "value": value }))
    }

    fn server_info(&self) -> Value {
        let version = env!("CARGO_PKG_VERSION");
        let module = |name: &str, factories: &[&str]| {
            json!({
                "__module__": "kurento",
                "__type__": "ModuleInfo",
                "version": "7.3.0",
                "name": name,
                "generationTime": "prism",
                "factories": factories,
            })
        };
        let mut modules = vec![
            module("core", &["MediaPipeline"]),
            module(
                "elements",
                &[
                    "WebRtcEndpoint",
                    "RtpEndpoint",
                    "PlayerEndpoint",
                    "RecorderEndpoint",
                    "Composite",
                    "Dispatcher",
                    "DispatcherOneToMany",
                    "HubPort",
                ],
            ),
            module(
                "filters",
                &["PassThrough", "GStreamerFilter", "FaceOverlayFilter"],
            ),
            module("prism", &["WasmFilter"]),
        ];
        if self.state.catalog.available("platedetector") {
            modules.push(module("platedetector", &["PlateDetectorFilter"]));
        }
        json!({
            "__module__": "kurento",
            "__type__": "ServerInfo",
            "version": format!("prism {version}"),
            "modules": modules,
            "type": "KMS",
            "capabilities": ["transactions"],
        })
    }

    /// MediaObject methods every object has.
    fn invoke_media_object(
        &self,
        id: &str,
        object: &Object,
        operation: &str,
        op: &Value,
    ) -> Result<Option<Value>, RpcError> {
        let pipeline_id = match &object.kind {
            Kind::Pipeline(p) => p.id().to_string(),
            Kind::Element { pipeline, .. } => pipeline.id().to_string(),
        };
        let mut meta = lock(&object.meta);
        Ok(Some(match operation {
            "getName" => {
                if meta.name.is_empty() {
                    json!(id)
                } else {
                    json!(meta.name)
                }
            }
            "setName" => {
                meta.name = str_param(op, "name")?.to_string();
                Value::Null
            }
            "getId" => json!(id),
            "getCreationTime" => json!(meta.created),
            "getMediaPipeline" => json!(pipeline_id),
            "getParent" => match &object.kind {
                Kind::Pipeline(_) => json!(SERVER_MANAGER),
                Kind::Element { .. } => json!(pipeline_id),
            },
            "getChildren" | "getChilds" => match &object.kind {
                Kind::Pipeline(p) => json!(
                    p.elements()
                        .iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                ),
                Kind::Element { .. } => json!([]),
            },
            "addTag" => {
                let key = str_param(op, "key")?.to_string();
                let value = str_param(op, "value")?.to_string();
                meta.tags.retain(|(k, _)| *k != key);
                meta.tags.push((key, value));
                Value::Null
            }
            "removeTag" => {
                let key = str_param(op, "key")?;
                meta.tags.retain(|(k, _)| k != key);
                Value::Null
            }
            "getTag" => {
                let key = str_param(op, "key")?;
                match meta.tags.iter().find(|(k, _)| k == key) {
                    Some((_, v)) => json!(v),
                    None => {
                        return Err(RpcError::new(
                            MEDIA_OBJECT_ILLEGAL_PARAM_ERROR,
                            format!("no tag {key:?}"),
                        ));
                    }
                }
            }
            "getTags" => json!(
                meta.tags
                    .iter()
                    .map(|(k, v)| json!({"__module__": "kurento", "__type__": "Tag", "key": k, "value": v}))
                    .collect::<Vec<_>>()
            ),
            "getSendTagsInEvents" => json!(meta.send_tags),
            "setSendTagsInEvents" => {
                meta.send_tags = op
                    .get("sendTagsInEvents")
                    .and_then(Value::as_bool)
                    .ok_or_else(|| bad_param("sendTagsInEvents", "must be a boolean"))?;
                Value::Null
            }
            _ => return Ok(None),
        }))
    }

    /// MediaElement methods.
    fn invoke_element(
        &self,
        pipeline: &MediaPipeline,
        eid: &ElementId,
        operation: &str,
        op: &Value,
    ) -> Result<Option<Value>, RpcError> {
        let connection_json = |c: &crate::pipeline::Connection| {
            json!({
                "__module__": "kurento",
                "__type__": "ElementConnectionData",
                "source": c.source.as_str(),
                "sink": c.sink.as_str(),
                "type": media_name(c.media),
                "sourceDescription": "default",
                "sinkDescription": "default",
            })
        };
        Ok(Some(match operation {
            "connect" => {
                let sink = object_param(op, "sink")?;
                let sink_obj = self.object(sink)?;
                let Kind::Element {
                    id: sink_id,
                    pipeline: sink_pipeline,
                    ..
                } = sink_obj.kind
                else {
                    return Err(bad_param("sink", "is not a media element"));
                };
                if sink_pipeline.id() != pipeline.id() {
                    return Err(RpcError::new(
                        CONNECT_ERROR,
                        "elements of different pipelines cannot be connected",
                    ));
                }
                let media = media_type(op.get("mediaType"))?;
                pipeline
                    .connect(eid, &sink_id, media)
                    .map_err(pipeline_error)?;
                Value::Null
            }
            "disconnect" => {
                let sink = object_param(op, "sink")?;
                let media = media_type(op.get("mediaType"))?;
                pipeline
                    .disconnect(eid, &ElementId::from(sink), media)
                    .map_err(pipeline_error)?;
                Value::Null
            }
            "getSourceConnections" | "getSinkConnections" => {
                let media = media_type(op.get("mediaType"))?;
                let all = if operation == "getSourceConnections" {
                    pipeline.source_connections(eid)
                } else {
                    pipeline.sink_connections(eid)
                };
                json!(
                    all.iter()
                        .filter(|c| media.is_none_or(|m| m == c.media))
                        .map(connection_json)
                        .collect::<Vec<_>>()
                )
            }
            "isMediaFlowingIn" | "isMediaFlowingOut" => {
                let media = media_type(op.get("mediaType"))?
                    .ok_or_else(|| bad_param("mediaType", "is missing"))?;
                let element = pipeline.element(eid).map_err(pipeline_error)?;
                let dir = if operation == "isMediaFlowingIn" {
                    Direction::In
                } else {
                    Direction::Out
                };
                json!(element.flow().is_flowing(dir, media))
            }
            "getStats" => {
                let element = pipeline.element(eid).map_err(pipeline_error)?;
                let mut stats = element.stats();
                if let Value::Object(m) = &mut stats {
                    m.insert("__module__".into(), json!("kurento"));
                    m.insert("__type__".into(), json!("ElementStats"));
                    m.insert("id".into(), json!(eid.as_str()));
                    m.insert("timestampMillis".into(), json!(now_ms()));
                }
                json!({ eid.as_str(): stats })
            }
            "getGstreamerDot" => json!(pipeline.gstreamer_dot()),
            _ => return Ok(None),
        }))
    }
}

fn no_method(operation: &str, type_name: &str) -> RpcError {
    RpcError::new(
        MEDIA_OBJECT_METHOD_NOT_FOUND,
        format!("{type_name} has no method {operation:?}"),
    )
}

async fn invoke_webrtc(
    ep: &WebRtcEndpoint,
    operation: &str,
    op: &Value,
) -> Result<Value, RpcError> {
    let werr = |e: crate::webrtc::WebRtcError| RpcError::new(e.kurento_code(), e.to_string());
    Ok(match operation {
        "processOffer" => json!(
            ep.process_offer(str_param(op, "offer")?)
                .await
                .map_err(werr)?
        ),
        "generateOffer" => json!(ep.generate_offer().await.map_err(werr)?),
        "processAnswer" => {
            ep.process_answer(str_param(op, "answer")?)
                .await
                .map_err(werr)?;
            json!(ep.local_sdp().await.unwrap_or_default())
        }
        "gatherCandidates" => {
            ep.gather_candidates();
            Value::Null
        }
        "addIceCandidate" => {
            let c = op
                .get("candidate")
                .ok_or_else(|| bad_param("candidate", "is missing"))?;
            let candidate = IceCandidate {
                candidate: str_param(c, "candidate")?.to_string(),
                sdp_mid: opt_str_param(c, "sdpMid")?.map(str::to_string),
                sdp_mline_index: c
                    .get("sdpMLineIndex")
                    .and_then(Value::as_u64)
                    .map(|v| v as u16),
            };
            ep.add_ice_candidate(candidate).await.map_err(werr)?;
            Value::Null
        }
        "getLocalSessionDescriptor" => json!(ep.local_sdp().await.unwrap_or_default()),
        "getRemoteSessionDescriptor" => json!(ep.remote_sdp().await.unwrap_or_default()),
        "setMinVideoSendBandwidth" | "setMaxVideoSendBandwidth" => {
            match send_bandwidth(operation, op)? {
                (true, bps) => ep.set_min_bitrate(bps),
                (false, bps) => ep.set_max_bitrate(bps),
            }
            Value::Null
        }
        // Accepted so Kurento tutorial apps run, but not used: Prism gathers host candidates
        // only (no STUN/TURN yet).
        "setStunServerAddress" | "setStunServerPort" | "setTurnUrl" => Value::Null,
        _ => return Err(no_method(operation, "WebRtcEndpoint")),
    })
}

/// The filter behind `kurento.FaceOverlayFilter`, and the name its picture is attached under.
const FACE_OVERLAY_FILTER: &str = "faceoverlay";
const FACE_OVERLAY_IMAGE: &str = "overlay";

/// Kurento's FaceOverlayFilter on the `faceoverlay` filter: the host fetches and decodes the
/// picture (the filter never sees the URI) and attaches it to the element; the offsets and
/// sizes are fractions of the face box, as in Kurento.
async fn invoke_face_overlay(
    f: Arc<crate::pipeline::WasmFilter>,
    media: &crate::config::MediaConfig,
    operation: &str,
    op: &Value,
) -> Result<Value, RpcError> {
    let illegal = |e: String| RpcError::new(MEDIA_OBJECT_ILLEGAL_PARAM_ERROR, e);
    match operation {
        "setOverlayedImage" => {
            let uri = str_param(op, "uri")?.to_string();
            if let Some(path) = crate::vision::picture::local_path(&uri) {
                media.check_path(&uri, &path).map_err(illegal)?;
            }
            let num = |name: &str| {
                op.get(name)
                    .and_then(Value::as_f64)
                    .filter(|v| v.is_finite() && v.abs() <= 100.0)
                    .ok_or_else(|| bad_param(name, "must be a number (a fraction of the face)"))
            };
            let config = json!({
                "image": FACE_OVERLAY_IMAGE,
                "offset_x": num("offsetXPercent")?,
                "offset_y": num("offsetYPercent")?,
                "width": num("widthPercent")?,
                "height": num("heightPercent")?,
            });
            let image = tokio::task::spawn_blocking(move || crate::vision::load_image(&uri))
                .await
                .map_err(|e| RpcError::new(INTERNAL_ERROR, e.to_string()))?
                .map_err(|e| illegal(e.to_string()))?;
            f.set_image(FACE_OVERLAY_IMAGE, Some(Arc::new(image)))
                .map_err(|e| illegal(e.to_string()))?;
            f.configure(&config.to_string())
                .map_err(|e| illegal(e.to_string()))?;
            Ok(Value::Null)
        }
        "unsetOverlayedImage" => {
            f.configure(r#"{"image":null}"#)
                .map_err(|e| illegal(e.to_string()))?;
            f.set_image(FACE_OVERLAY_IMAGE, None)
                .map_err(|e| illegal(e.to_string()))?;
            Ok(Value::Null)
        }
        _ => invoke_filter(&f, Class::FaceOverlayFilter, operation, op),
    }
}

/// `set{Min,Max}VideoSendBandwidth`: whether it is the minimum, and the bitrate in bit/s
/// (Kurento's send bandwidths are kbit/s).
fn send_bandwidth(operation: &str, op: &Value) -> Result<(bool, u32), RpcError> {
    let min = operation == "setMinVideoSendBandwidth";
    let name = if min {
        "minVideoSendBandwidth"
    } else {
        "maxVideoSendBandwidth"
    };
    let kbps = op
        .get(name)
        .and_then(Value::as_u64)
        .ok_or_else(|| bad_param(name, "must be a whole number of kbit/s"))?;
    Ok((
        min,
        u32::try_from(kbps.saturating_mul(1000)).unwrap_or(u32::MAX),
    ))
}

fn invoke_rtp(ep: &RtpEndpoint, operation: &str, op: &Value) -> Result<Value, RpcError> {
    let rerr =
        |e: crate::pipeline::RtpEndpointError| RpcError::new(e.kurento_code(), e.to_string());
    let missing =
        |code: i64, what: &str| RpcError::new(code, format!("no {what} session description yet"));
    Ok(match operation {
        "processOffer" => json!(ep.process_offer(str_param(op, "offer")?).map_err(rerr)?),
        "generateOffer" => json!(ep.generate_offer().map_err(rerr)?),
        "processAnswer" => {
            ep.process_answer(str_param(op, "answer")?).map_err(rerr)?;
            json!(ep.local_sdp().unwrap_or_default())
        }
        // Kurento's SDP_END_POINT_NO_LOCAL_SDP_ERROR / NO_REMOTE_SDP_ERROR.
        "getLocalSessionDescriptor" => {
            json!(ep.local_sdp().ok_or_else(|| missing(40202, "local"))?)
        }
        "getRemoteSessionDescriptor" => {
            json!(ep.remote_sdp().ok_or_else(|| missing(40203, "remote"))?)
        }
        "setMinVideoSendBandwidth" | "setMaxVideoSendBandwidth" => {
            match send_bandwidth(operation, op)? {
                (true, bps) => ep.set_min_bitrate(bps),
                (false, bps) => ep.set_max_bitrate(bps),
            }
            Value::Null
        }
        _ => return Err(no_method(operation, "RtpEndpoint")),
    })
}

/// A parameter naming a media object: its id, or the object itself (`{"id": ...}`), which is
/// how kurento-client sends objects it does not recognise as its own.
fn object_param<'a>(op: &'a Value, name: &str) -> Result<&'a str, RpcError> {
    match op.get(name) {
        Some(Value::String(id)) => Ok(id),
        Some(Value::Object(o)) => o.get("id").and_then(Value::as_str).ok_or_else(|| {
            bad_param(
                name,
                &format!("is not a media object: {}", Value::Object(o.clone())),
            )
        }),
        Some(_) => Err(bad_param(name, "must be a media object id")),
        None => Err(bad_param(name, "is missing")),
    }
}

/// Runs a blocking element call (one that waits for GStreamer) off the async workers.
async fn blocking<T: Send + 'static>(
    call: impl FnOnce() -> Result<T, PipelineError> + Send + 'static,
) -> Result<T, RpcError> {
    tokio::task::spawn_blocking(call)
        .await
        .map_err(|e| RpcError::new(INTERNAL_ERROR, e.to_string()))?
        .map_err(pipeline_error)
}

/// A position or duration parameter in milliseconds.
fn ms_param(op: &Value, name: &str) -> Result<i64, RpcError> {
    op.get(name)
        .and_then(Value::as_i64)
        .ok_or_else(|| bad_param(name, "must be a whole number of milliseconds"))
}

async fn invoke_player(
    p: Arc<PlayerEndpoint>,
    operation: &str,
    op: &Value,
) -> Result<Value, RpcError> {
    Ok(match operation {
        "play" => {
            blocking(move || p.play()).await?;
            Value::Null
        }
        "pause" => {
            blocking(move || p.pause()).await?;
            Value::Null
        }
        "stop" => {
            blocking(move || {
                p.stop();
                Ok(())
            })
            .await?;
            Value::Null
        }
        "getPosition" | "getPositon" => json!(p.position_ms()),
        "setPosition" => {
            let ms = ms_param(op, "position")?;
            blocking(move || p.set_position(ms)).await?;
            Value::Null
        }
        "getVideoInfo" => {
            let mut info = serde_json::to_value(p.video_info()).unwrap_or_default();
            if let Value::Object(m) = &mut info {
                m.insert("__module__".into(), json!("kurento"));
                m.insert("__type__".into(), json!("VideoInfo"));
            }
            info
        }
        "getUri" => json!(p.uri()),
        "getState" => json!(p.state().name()),
        _ => return Err(no_method(operation, "PlayerEndpoint")),
    })
}

async fn invoke_recorder(r: Arc<RecorderEndpoint>, operation: &str) -> Result<Value, RpcError> {
    Ok(match operation {
        "record" => {
            r.record().map_err(pipeline_error)?;
            Value::Null
        }
        "pause" => {
            r.pause().map_err(pipeline_error)?;
            Value::Null
        }
        "stop" => {
            r.stop();
            Value::Null
        }
        "stopAndWait" => {
            blocking(move || r.stop_and_wait()).await?;
            Value::Null
        }
        "getUri" => json!(r.uri()),
        "getState" => json!(r.state().name()),
        _ => return Err(no_method(operation, "RecorderEndpoint")),
    })
}

/// Hub methods (hubs are not media elements: `connect` routes ports).
fn invoke_hub(
    pipeline: &MediaPipeline,
    eid: &ElementId,
    class: Class,
    operation: &str,
    op: &Value,
) -> Result<Value, RpcError> {
    let hub = pipeline.element_as::<Hub>(eid).map_err(pipeline_error)?;
    let port = |name: &str| object_param(op, name).map(ElementId::from);
    Ok(match (class, operation) {
        (_, "getGstreamerDot") => json!(pipeline.gstreamer_dot()),
        (Class::Dispatcher, "connect") => {
            hub.route(&port("source")?, &port("sink")?)
                .map_err(pipeline_error)?;
            Value::Null
        }
        (Class::DispatcherOneToMany, "setSource") => {
            hub.set_source(Some(&port("source")?))
                .map_err(pipeline_error)?;
            Value::Null
        }
        (Class::DispatcherOneToMany, "removeSource") => {
            hub.set_source(None).map_err(pipeline_error)?;
            Value::Null
        }
        _ => return Err(no_method(operation, class.name())),
    })
}

fn invoke_gstreamer_filter(
    f: &GStreamerFilter,
    operation: &str,
    op: &Value,
) -> Result<Value, RpcError> {
    Ok(match operation {
        "getCommand" => json!(f.command()),
        "setElementProperty" => {
            let value = match op.get("propertyValue") {
                Some(Value::String(s)) => s.clone(),
                Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
                _ => return Err(bad_param("propertyValue", "must be a string")),
            };
            f.set_element_property(str_param(op, "propertyName")?, &value)
                .map_err(pipeline_error)?;
            Value::Null
        }
        _ => return Err(no_method(operation, "GStreamerFilter")),
    })
}

fn invoke_filter(
    f: &crate::pipeline::WasmFilter,
    class: Class,
    operation: &str,
    op: &Value,
) -> Result<Value, RpcError> {
    let configure = |json: String| {
        f.configure(&json)
            .map_err(|e| RpcError::new(MEDIA_OBJECT_ILLEGAL_PARAM_ERROR, e.to_string()))
    };
    Ok(match (class, operation) {
        (_, "configure" | "setConfig") => {
            let config = match op.get("config") {
                Some(Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => return Err(bad_param("config", "is missing")),
            };
            configure(config)?;
            Value::Null
        }
        (_, "getFilterName") => json!(f.filter_name()),
        (Class::PlateDetectorFilter, "setPlateWidthPercentage") => {
            let pct = op
                .get("plateWidthPercentage")
                .and_then(Value::as_f64)
                .filter(|p| (0.0..=100.0).contains(p))
                .ok_or_else(|| bad_param("plateWidthPercentage", "must be a number 0..100"))?;
            // Kurento's clients pass either a fraction of the width (0.3) or a percentage (30).
            let pct = if pct <= 1.0 { pct * 100.0 } else { pct };
            configure(json!({ "plate_width_pct": pct }).to_string())?;
            Value::Null
        }
        _ => return Err(no_method(operation, class.name())),
    })
}

/// CPU used by this process since it started, percent of one core.
fn used_cpu_percent(started: Instant) -> f64 {
    crate::sys::process_cpu_time().as_secs_f64() / started.elapsed().as_secs_f64().max(1e-3) * 100.0
}

/// Resident memory of this process, KiB.
fn used_memory_kib() -> u64 {
    crate::sys::resident_bytes() / 1024
}
