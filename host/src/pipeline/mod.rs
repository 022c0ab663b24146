//! The media pipeline object model (Kurento's MediaPipeline): a pipeline owns media elements
//! with typed ids, and connections between them.
//!
//! * [`MediaPipeline`]: `connect(source, sink, media)` / `disconnect` / `release_element` /
//!   `release`; fan-out (one source, many sinks) and chains; a sink has at most one source
//!   per media type (connecting a new one replaces the old, as in Kurento).
//! * Elements implement [`MediaElement`]: [`WasmFilter`], [`PassThrough`],
//!   [`crate::webrtc::WebRtcEndpoint`], [`RtpEndpoint`], [`PlayerEndpoint`],
//!   [`RecorderEndpoint`], [`GStreamerFilter`], hubs ([`Hub`]: Composite, Dispatcher,
//!   DispatcherOneToMany) and their [`HubPort`]s.
//! * Events of every element ([`ElementEvent`]) go to subscribers of [`MediaPipeline::subscribe`].
//! * One GStreamer pipeline per media pipeline holds the endpoints' RTP branches, so
//!   [`MediaPipeline::gstreamer_dot`] shows them (Kurento's getGstreamerDot). Players,
//!   recorders and GStreamer filters run their own GStreamer pipelines, so that pausing,
//!   seeking or finishing a file touches nothing else.
//! * The end of a played stream travels from element to element ([`VideoSink::end_of_stream`])
//!   after the last frame, so a recorder downstream of filters can finish its file.
//!
//! Releasing a pipeline stops every element: peer connections close, filter threads end, wasm
//! stores drop, the GStreamer pipeline goes to NULL.

mod filter;
pub mod flow;
pub mod graph;
mod gst_filter;
mod hub;
pub mod mixer;
mod own;
mod passthrough;
mod player;
mod recorder;
mod rtp_endpoint;

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use serde::Serialize;
use tokio::sync::broadcast;

pub use filter::WasmFilter;
pub use flow::{Direction, FlowMeter, LatencyWindow};
pub use graph::{AudioSink, EncodedVideoSink, MediaType, Outputs, VideoSink};
pub use gst_filter::GStreamerFilter;
pub use hub::{COMPOSITE_DEFAULT, Hub, HubKind, HubPort, MAX_HUB_PORTS};
pub use passthrough::PassThrough;
pub use player::{PlayerEndpoint, UriState, VideoInfo};
pub use recorder::{MediaProfile, RecorderEndpoint};
pub use rtp_endpoint::{
    CryptoSuite, RtpEndpoint, RtpEndpointError, RtpEndpointOptions, SdpStage, SrtpCrypto, SrtpError,
};

use crate::runtime::{FilterEvent, FilterRuntime, LoadedFilter, RuntimeError};
use crate::sys::{lock, now_ms};
use crate::webrtc::{WebRtcConfig, WebRtcEndpoint};

/// Events buffered per subscriber before the slowest one starts missing some.
pub const EVENT_BUFFER: usize = 1024;
/// How often media-flow states are checked.
const FLOW_POLL: Duration = Duration::from_millis(250);

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        impl $name {
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.into())
            }
        }
    };
}

string_id!(
    /// A pipeline id, `<uuid>_kurento.MediaPipeline`.
    PipelineId
);
string_id!(
    /// An element id, `<pipeline id>/<uuid>_<module>.<Type>`.
    ElementId
);

impl PipelineId {
    fn generate() -> Self {
        Self(format!("{}_kurento.MediaPipeline", uuid::Uuid::new_v4()).into())
    }
}

impl ElementId {
    fn generate(pipeline: &PipelineId, module: &str, type_name: &str) -> Self {
        Self(format!("{pipeline}/{}_{module}.{type_name}", uuid::Uuid::new_v4()).into())
    }

    /// A name GStreamer accepts for the element's branch.
    pub fn gst_name(&self) -> String {
        let short = self.0.rsplit('/').next().unwrap_or(&self.0);
        short
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect()
    }
}

/// An ICE candidate as sent to and from clients (W3C `RTCIceCandidateInit`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceCandidate {
    /// The `candidate:` attribute.
    pub candidate: String,
    /// The media stream id.
    pub sdp_mid: Option<String>,
    /// The m-line index.
    #[serde(rename = "sdpMLineIndex")]
    pub sdp_mline_index: Option<u16>,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum EventKind {
    /// A filter emitted an event or failed.
    Filter {
        /// The filter's event.
        event: FilterEvent,
    },
    /// Media started or stopped arriving.
    MediaFlowInStateChanged {
        /// Audio or video.
        media: MediaType,
        /// Whether it flows now.
        flowing: bool,
    },
    /// Media started or stopped leaving.
    MediaFlowOutStateChanged {
        /// Audio or video.
        media: MediaType,
        /// Whether it flows now.
        flowing: bool,
    },
    /// A local ICE candidate to send to the remote peer.
    IceCandidateFound {
        /// The candidate.
        candidate: IceCandidate,
    },
    /// Candidate gathering finished.
    IceGatheringDone,
    /// The ICE connection changed state (`new`, `checking`, `connected`, `completed`, ...).
    IceStateChanged {
        /// The new state.
        state: String,
    },
    /// ICE picked the candidate pair media flows on.
    CandidatePairSelected {
        /// The local candidate (`candidate:` attribute form).
        local: String,
        /// The remote candidate.
        remote: String,
    },
    /// The peer connection changed state (`new`, `connecting`, `connected`, ...).
    ConnectionStateChanged {
        /// The new state.
        state: String,
    },
    /// A receiver asked for a keyframe (PLI or FIR).
    KeyframeRequested,
    /// Two elements were connected.
    ElementConnected {
        /// Source element.
        source: ElementId,
        /// Sink element.
        sink: ElementId,
        /// Media type.
        media: MediaType,
    },
    /// Two elements were disconnected.
    ElementDisconnected {
        /// Source element.
        source: ElementId,
        /// Sink element.
        sink: ElementId,
        /// Media type.
        media: MediaType,
    },
    /// A player reached the end of its media.
    EndOfStream,
    /// A player or recorder changed state: `STOP`, `START` or `PAUSE` (Kurento's
    /// UriEndpointState).
    UriEndpointStateChanged {
        /// The new state.
        state: String,
    },
    /// A recorder started (or resumed) writing.
    Recording,
    /// A recorder paused.
    Paused,
    /// A recorder finished its file: it is complete and playable.
    Stopped,
    /// Something failed in the element.
    Error {
        /// What.
        message: String,
    },
}

/// An event of one element.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ElementEvent {
    /// The element.
    pub element: ElementId,
    /// Wall-clock time, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// Where elements send their events.
#[derive(Debug, Clone)]
pub struct EventBus {
    tx: broadcast::Sender<ElementEvent>,
}

impl EventBus {
    fn new() -> Self {
        Self {
            tx: broadcast::channel(EVENT_BUFFER).0,
        }
    }

    /// Sends an event of `element` (nobody listening is fine).
    pub fn emit(&self, element: &ElementId, kind: EventKind) {
        let _ = self.tx.send(ElementEvent {
            element: element.clone(),
            timestamp_ms: now_ms(),
            kind,
        });
    }
}

/// One media element in a pipeline.
pub trait MediaElement: Send + Sync + 'static {
    /// Its id.
    fn id(&self) -> &ElementId;
    /// Kurento type name, e.g. `WebRtcEndpoint`.
    fn type_name(&self) -> &'static str;
    /// Where its output goes, if it produces media.
    fn outputs(&self) -> Option<&Outputs>;
    /// Its video input, if it takes video.
    fn video_sink(&self) -> Option<Arc<dyn VideoSink>>;
    /// Its audio input, if it takes audio.
    fn audio_sink(&self) -> Option<Arc<dyn AudioSink>>;
    /// Media-flow stamps.
    fn flow(&self) -> &FlowMeter;
    /// Whether its input flows to its output (filters do; an endpoint's received media is
    /// unrelated to what it sends, so connecting an endpoint to itself is a loopback, not a
    /// loop).
    fn forwards_input(&self) -> bool {
        true
    }
    /// Called after its sinks changed (e.g. to renegotiate the decoded format).
    fn outputs_changed(&self) {}
    /// Counters and figures as JSON.
    fn stats(&self) -> serde_json::Value;
    /// Stops the element and frees what it holds.
    fn release(&self);
    /// For downcasting to the concrete type.
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

/// Why a pipeline operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// No element with that id in this pipeline.
    #[error("no element {0} in this pipeline")]
    NoSuchElement(String),
    /// The element cannot play that role.
    #[error("{element} ({type_name}) cannot be a {role} of {media:?}")]
    WrongRole {
        /// The element.
        element: ElementId,
        /// Its type.
        type_name: &'static str,
        /// `source` or `sink`.
        role: &'static str,
        /// Media type asked for.
        media: Option<MediaType>,
    },
    /// Connecting an element to itself, or making a cycle.
    #[error("connecting {source_id} to {sink_id} would make a loop")]
    Loop {
        /// Source.
        source_id: ElementId,
        /// Sink.
        sink_id: ElementId,
    },
    /// The pipeline has been released.
    #[error("the pipeline has been released")]
    Released,
    /// A filter could not be loaded or configured.
    #[error(transparent)]
    Filter(#[from] RuntimeError),
    /// GStreamer failed.
    #[error(transparent)]
    Media(#[from] crate::media::MediaError),
    /// WebRTC failed.
    #[error(transparent)]
    WebRtc(#[from] crate::webrtc::WebRtcError),
    /// A parameter is unusable (a URI, a profile, a GStreamer command...).
    #[error("{0}")]
    InvalidArgument(String),
    /// The element cannot do that now (e.g. record after it stopped).
    #[error("{0}")]
    InvalidState(String),
}

/// What elements need from the server.
#[derive(Clone)]
pub struct PipelineContext {
    /// Loads and runs filters.
    pub filters: Arc<FilterRuntime>,
    /// Runs the WebRTC stack.
    pub tokio: tokio::runtime::Handle,
    /// WebRTC settings.
    pub webrtc: WebRtcConfig,
    /// Media settings (GStreamerFilter allowlist).
    pub media: crate::config::MediaConfig,
}

impl std::fmt::Debug for PipelineContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineContext")
            .field("webrtc", &self.webrtc)
            .finish_non_exhaustive()
    }
}

/// One connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Connection {
    /// Source element.
    pub source: ElementId,
    /// Sink element.
    pub sink: ElementId,
    /// Media type.
    pub media: MediaType,
}

struct Inner {
    id: PipelineId,
    ctx: PipelineContext,
    gst: gst::Pipeline,
    events: EventBus,
    elements: Mutex<HashMap<ElementId, Arc<dyn MediaElement>>>,
    connections: Mutex<Vec<Connection>>,
    released: AtomicBool,
}

/// A media pipeline. Cheap to clone (a handle); [`MediaPipeline::release`] ends it.
#[derive(Clone)]
pub struct MediaPipeline {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MediaPipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaPipeline")
            .field("id", &self.inner.id)
            .finish_non_exhaustive()
    }
}

impl MediaPipeline {
    /// A new, empty pipeline (its GStreamer pipeline is already playing).
    pub fn new(ctx: PipelineContext) -> Result<Self, PipelineError> {
        crate::media::init()?;
        let id = PipelineId::generate();
        let gst = gst::Pipeline::with_name(&format!("pipeline-{}", &id.as_str()[..8]));
        // Branches come and go; the pipeline keeps one clock for all of them.
        gst.set_state(gst::State::Playing)
            .map_err(|e| crate::media::MediaError::Element {
                element: "pipeline".into(),
                message: format!("cannot start: {e}"),
            })?;
        let inner = Arc::new(Inner {
            id,
            ctx,
            gst,
            events: EventBus::new(),
            elements: Mutex::new(HashMap::new()),
            connections: Mutex::new(Vec::new()),
            released: AtomicBool::new(false),
        });
        spawn_monitor(Arc::downgrade(&inner));
        Ok(Self { inner })
    }

    /// Its id.
    pub fn id(&self) -> &PipelineId {
        &self.inner.id
    }

    /// What elements are built with.
    pub fn context(&self) -> &PipelineContext {
        &self.inner.ctx
    }

    /// Whether [`MediaPipeline::release`] was called.
    pub fn is_released(&self) -> bool {
        self.inner.released.load(Ordering::Acquire)
    }

    /// Events of every element, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ElementEvent> {
        self.inner.events.tx.subscribe()
    }

    /// The event bus, for elements.
    pub fn events(&self) -> &EventBus {
        &self.inner.events
    }

    /// The GStreamer pipeline elements put their branches in.
    pub fn gst_pipeline(&self) -> &gst::Pipeline {
        &self.inner.gst
    }

    fn check_live(&self) -> Result<(), PipelineError> {
        if self.is_released() {
            Err(PipelineError::Released)
        } else {
            Ok(())
        }
    }

    fn new_id(&self, module: &str, type_name: &str) -> ElementId {
        ElementId::generate(&self.inner.id, module, type_name)
    }

    /// Adds an element built by `build` with a fresh id.
    pub fn add<E: MediaElement>(
        &self,
        module: &str,
        type_name: &str,
        build: impl FnOnce(ElementId) -> Result<Arc<E>, PipelineError>,
    ) -> Result<Arc<E>, PipelineError> {
        self.check_live()?;
        let element = build(self.new_id(module, type_name))?;
        lock(&self.inner.elements).insert(element.id().clone(), element.clone());
        Ok(element)
    }

    /// Adds a WebRTC endpoint.
    pub async fn add_webrtc_endpoint(&self) -> Result<Arc<WebRtcEndpoint>, PipelineError> {
        self.check_live()?;
        let id = self.new_id("kurento", "WebRtcEndpoint");
        let endpoint = WebRtcEndpoint::new(id, self).await?;
        lock(&self.inner.elements).insert(endpoint.id().clone(), endpoint.clone());
        Ok(endpoint)
    }

    /// Adds an instance of a loaded filter configured with `config` (JSON, if any).
    /// `module` and `type_name` make the Kurento id (`platedetector`, `PlateDetectorFilter`).
    pub fn add_filter(
        &self,
        filter: &Arc<LoadedFilter>,
        config: Option<&str>,
        module: &str,
        type_name: &str,
    ) -> Result<Arc<WasmFilter>, PipelineError> {
        self.add(module, type_name, |id| {
            WasmFilter::new(id, self, filter, config).map(Arc::new)
        })
    }

    /// Adds a pass-through element.
    pub fn add_passthrough(&self) -> Result<Arc<PassThrough>, PipelineError> {
        self.add("kurento", "PassThrough", |id| {
            Ok(Arc::new(PassThrough::new(id)))
        })
    }

    /// The element with this id.
    pub fn element(&self, id: &ElementId) -> Result<Arc<dyn MediaElement>, PipelineError> {
        lock(&self.inner.elements)
            .get(id)
            .cloned()
            .ok_or_else(|| PipelineError::NoSuchElement(id.to_string()))
    }

    /// The element with this id as its concrete type.
    pub fn element_as<E: MediaElement>(&self, id: &ElementId) -> Result<Arc<E>, PipelineError> {
        let element = self.element(id)?;
        element
            .into_any()
            .downcast::<E>()
            .map_err(|_| PipelineError::NoSuchElement(id.to_string()))
    }

    /// Every element's id.
    pub fn elements(&self) -> Vec<ElementId> {
        let mut ids: Vec<_> = lock(&self.inner.elements).keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Every connection.
    pub fn connections(&self) -> Vec<Connection> {
        lock(&self.inner.connections).clone()
    }

    /// Connections into `sink`.
    pub fn source_connections(&self, sink: &ElementId) -> Vec<Connection> {
        lock(&self.inner.connections)
            .iter()
            .filter(|c| &c.sink == sink)
            .cloned()
            .collect()
    }

    /// Connections out of `source`.
    pub fn sink_connections(&self, source: &ElementId) -> Vec<Connection> {
        lock(&self.inner.connections)
            .iter()
            .filter(|c| &c.source == source)
            .cloned()
            .collect()
    }

    /// Whether media entering `from` would come back to `to`: connections are followed
    /// through elements that forward their input.
    fn reaches(&self, from: &ElementId, to: &ElementId) -> bool {
        let forwards = |id: &ElementId| {
            lock(&self.inner.elements)
                .get(id)
                .is_some_and(|e| e.forwards_input())
        };
        if !forwards(from) {
            return false;
        }
        let connections = lock(&self.inner.connections);
        let mut stack = vec![from.clone()];
        let mut seen = std::collections::HashSet::new();
        while let Some(at) = stack.pop() {
            if &at == to {
                return true;
            }
            if seen.insert(at.clone()) && forwards(&at) {
                stack.extend(
                    connections
                        .iter()
                        .filter(|c| c.source == at)
                        .map(|c| c.sink.clone()),
                );
            }
        }
        false
    }

    /// Connects `source` to `sink` for one media type, or for every type both support
    /// (`None`). A sink has one source per media type: an older connection is replaced.
    pub fn connect(
        &self,
        source: &ElementId,
        sink: &ElementId,
        media: Option<MediaType>,
    ) -> Result<Vec<MediaType>, PipelineError> {
        self.check_live()?;
        let src = self.element(source)?;
        let dst = self.element(sink)?;
        if self.reaches(sink, source) {
            return Err(PipelineError::Loop {
                source_id: source.clone(),
                sink_id: sink.clone(),
            });
        }
        let Some(outputs) = src.outputs() else {
            return Err(PipelineError::WrongRole {
                element: source.clone(),
                type_name: src.type_name(),
                role: "source",
                media,
            });
        };
        let kinds: Vec<MediaType> = match media {
            Some(m) => vec![m],
            None => MediaType::ALL.to_vec(),
        };
        let mut connected = Vec::new();
        for kind in kinds {
            let attached = match kind {
                MediaType::Video => dst.video_sink().map(|s| {
                    self.detach_sink(sink, kind);
                    outputs.add_video(sink.clone(), s);
                }),
                MediaType::Audio => dst.audio_sink().map(|s| {
                    self.detach_sink(sink, kind);
                    outputs.add_audio(sink.clone(), s);
                }),
            };
            if attached.is_some() {
                lock(&self.inner.connections).push(Connection {
                    source: source.clone(),
                    sink: sink.clone(),
                    media: kind,
                });
                connected.push(kind);
            }
        }
        if connected.is_empty() {
            return Err(PipelineError::WrongRole {
                element: sink.clone(),
                type_name: dst.type_name(),
                role: "sink",
                media,
            });
        }
        src.outputs_changed();
        for &kind in &connected {
            for id in [source, sink] {
                self.inner.events.emit(
                    id,
                    EventKind::ElementConnected {
                        source: source.clone(),
                        sink: sink.clone(),
                        media: kind,
                    },
                );
            }
        }
        Ok(connected)
    }

    /// Removes whatever feeds `sink` with `media`.
    fn detach_sink(&self, sink: &ElementId, media: MediaType) {
        let old: Vec<Connection> = lock(&self.inner.connections)
            .iter()
            .filter(|c| &c.sink == sink && c.media == media)
            .cloned()
            .collect();
        for c in old {
            let _ = self.disconnect(&c.source, &c.sink, Some(c.media));
        }
    }

    /// Disconnects `source` from `sink` (one media type, or all). Disconnecting what is not
    /// connected is not an error.
    pub fn disconnect(
        &self,
        source: &ElementId,
        sink: &ElementId,
        media: Option<MediaType>,
    ) -> Result<(), PipelineError> {
        let src = self.element(source)?;
        self.element(sink)?;
        let removed: Vec<Connection> = {
            let mut connections = lock(&self.inner.connections);
            let (gone, kept) = connections.drain(..).partition(|c: &Connection| {
                &c.source == source && &c.sink == sink && media.is_none_or(|m| m == c.media)
            });
            *connections = kept;
            gone
        };
        if let Some(outputs) = src.outputs() {
            for c in &removed {
                outputs.remove(sink, c.media);
            }
        }
        if !removed.is_empty() {
            src.outputs_changed();
        }
        for c in removed {
            for id in [source, sink] {
                self.inner.events.emit(
                    id,
                    EventKind::ElementDisconnected {
                        source: source.clone(),
                        sink: sink.clone(),
                        media: c.media,
                    },
                );
            }
        }
        Ok(())
    }

    /// Disconnects and releases one element.
    pub fn release_element(&self, id: &ElementId) -> Result<(), PipelineError> {
        let element = self.element(id)?;
        for c in self.connections() {
            if &c.source == id || &c.sink == id {
                let _ = self.disconnect(&c.source, &c.sink, Some(c.media));
            }
        }
        lock(&self.inner.elements).remove(id);
        element.release();
        Ok(())
    }

    /// Releases every element and the pipeline itself. Idempotent.
    pub fn release(&self) {
        if self.inner.released.swap(true, Ordering::AcqRel) {
            return;
        }
        // Stop the media first (every branch goes to NULL with the pipeline), then the
        // elements' threads and connections.
        let _ = self.inner.gst.set_state(gst::State::Null);
        for id in self.elements() {
            let _ = self.release_element(&id);
        }
    }

    /// The GStreamer graph as DOT (Kurento's getGstreamerDot).
    pub fn gstreamer_dot(&self) -> String {
        self.inner
            .gst
            .debug_to_dot_data(gst::DebugGraphDetails::all())
            .to_string()
    }

    /// The element graph as DOT: elements and their connections.
    pub fn graph_dot(&self) -> String {
        let mut dot = String::from("digraph pipeline {\n  rankdir=LR;\n  node [shape=box];\n");
        let elements = lock(&self.inner.elements);
        let mut ids: Vec<_> = elements.keys().collect();
        ids.sort();
        for id in ids {
            let e = &elements[id];
            dot.push_str(&format!(
                "  \"{id}\" [label=\"{}\\n{}\"];\n",
                e.type_name(),
                id.gst_name()
            ));
        }
        for c in lock(&self.inner.connections).iter() {
            dot.push_str(&format!(
                "  \"{}\" -> \"{}\" [label=\"{:?}\"];\n",
                c.source, c.sink, c.media
            ));
        }
        dot.push_str("}\n");
        dot
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.gst.set_state(gst::State::Null);
    }
}

/// Polls media-flow states of every element while the pipeline lives.
fn spawn_monitor(inner: Weak<Inner>) {
    let Some(handle) = inner.upgrade().map(|i| i.ctx.tokio.clone()) else {
        return;
    };
    handle.spawn(async move {
        let mut tick = tokio::time::interval(FLOW_POLL);
        loop {
            tick.tick().await;
            let Some(inner) = inner.upgrade() else { return };
            if inner.released.load(Ordering::Acquire) {
                return;
            }
            let elements: Vec<_> = lock(&inner.elements).values().cloned().collect();
            for e in elements {
                for (dir, media, flowing) in e.flow().poll() {
                    let kind = match dir {
                        Direction::In => EventKind::MediaFlowInStateChanged { media, flowing },
                        Direction::Out => EventKind::MediaFlowOutStateChanged { media, flowing },
                    };
                    inner.events.emit(e.id(), kind);
                }
            }
        }
    });
}
