//! `PlayerEndpoint`: plays a file, HTTP(S) or RTSP URI into the pipeline (Kurento's
//! PlayerEndpoint).
//!
//! The player runs its own GStreamer pipeline, `uridecodebin ! ... ! appsink`, whose sinks are
//! synchronised to its clock so media leaves at its own pace, and so that pause and seek touch
//! nothing else. The media is decoded once: video leaves as frames in the format its sinks ask
//! for, audio as Opus RTP (what every element takes), and any number of sinks share them.
//! Frames are stamped with the media pipeline's running time when they leave, like frames
//! arriving over WebRTC.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use rtc::rtp;
use rtc::shared::marshal::Unmarshal;
use serde::Serialize;

use super::graph::{AudioSink, Outputs, VideoSink};
use super::own::{OwnPipeline, element};
use super::{
    Direction, ElementId, EventBus, EventKind, FlowMeter, MediaElement, MediaPipeline, MediaType,
    PipelineError,
};
use crate::media::rtp::{VideoFrame, raw_caps, running_time};
use crate::media::{MediaError, pull_frame};
use crate::sys::lock;

/// URI schemes a player accepts.
pub const PLAYER_SCHEMES: &[&str] = &["file", "http", "https", "rtsp", "rtsps", "rtspt"];
/// How long `play` waits for the media to open before returning (a slow network source goes on
/// opening in the background and reports failures as `Error` events).
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// RTP payload type of the Opus packets a player sends (receivers rewrite it).
const OPUS_PT: u32 = 111;

/// Kurento's `UriEndpointState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum UriState {
    /// Not playing (initial, or after `stop`).
    Stop,
    /// Playing.
    Start,
    /// Paused.
    Pause,
}

impl UriState {
    /// Kurento's name.
    pub fn name(self) -> &'static str {
        match self {
            UriState::Stop => "STOP",
            UriState::Start => "START",
            UriState::Pause => "PAUSE",
        }
    }
}

/// The `UriEndpointState` of a player or recorder; changes are announced as
/// `UriEndpointStateChanged`.
pub(super) struct UriStateCell(Mutex<UriState>);

impl UriStateCell {
    pub(super) fn new() -> Self {
        Self(Mutex::new(UriState::Stop))
    }

    pub(super) fn get(&self) -> UriState {
        *lock(&self.0)
    }

    /// Sets the state, announcing it on `events` as `id`'s if it changed.
    pub(super) fn set(&self, events: &EventBus, id: &ElementId, state: UriState) {
        let mut current = lock(&self.0);
        if *current != state {
            *current = state;
            events.emit(
                id,
                EventKind::UriEndpointStateChanged {
                    state: state.name().into(),
                },
            );
        }
    }
}

/// What a player knows about its media (Kurento's VideoInfo), times in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoInfo {
    /// Whether `set_position` works.
    pub is_seekable: bool,
    /// First seekable position.
    pub seekable_init: i64,
    /// Last seekable position.
    pub seekable_end: i64,
    /// Duration, or 0 if unknown (live streams).
    pub duration: i64,
}

/// Checks a URI's form and scheme.
pub(super) fn check_uri(uri: &str, schemes: &[&str]) -> Result<String, PipelineError> {
    let bad = |why: String| PipelineError::InvalidArgument(format!("uri {uri:?}: {why}"));
    let Some((scheme, rest)) = uri.split_once("://") else {
        return Err(bad(
            "not a URI (expected e.g. file:///path or http://host/path)".into(),
        ));
    };
    let scheme = scheme.to_ascii_lowercase();
    if !schemes.contains(&scheme.as_str()) {
        return Err(bad(format!(
            "scheme {scheme:?} is not supported (use {})",
            schemes.join(", ")
        )));
    }
    if scheme == "file" && !rest.starts_with('/') {
        return Err(bad("a file URI needs an absolute path (file:///...)".into()));
    }
    if scheme != "file" && rest.split('/').next().unwrap_or("").is_empty() {
        return Err(bad("no host".into()));
    }
    if uri.chars().any(char::is_control) {
        return Err(bad("contains control characters".into()));
    }
    Ok(format!("{scheme}://{rest}"))
}

struct Shared {
    id: ElementId,
    outputs: Outputs,
    flow: FlowMeter,
    events: EventBus,
    /// The media pipeline, whose running time stamps the frames.
    clock_of: gst::Pipeline,
    state: UriStateCell,
    last_error: Mutex<Option<String>>,
    video_sink: Mutex<Option<gst_app::AppSink>>,
    ended: AtomicBool,
    frames: AtomicU64,
    audio_packets: AtomicU64,
}

impl Shared {
    fn set_state(&self, state: UriState) {
        self.state.set(&self.events, &self.id, state);
    }

    fn on_message(&self, msg: &gst::Message) {
        match msg.view() {
            gst::MessageView::Eos(_) if !self.ended.swap(true, Ordering::AcqRel) => {
                self.outputs.end_of_stream();
                self.events.emit(&self.id, EventKind::EndOfStream);
            }
            gst::MessageView::Error(err) => {
                let message = format!("{}", err.error());
                tracing::warn!(element = %self.id, "player: {message} ({:?})", err.debug());
                *lock(&self.last_error) = Some(message.clone());
                self.events.emit(&self.id, EventKind::Error { message });
            }
            _ => {}
        }
    }

    fn push_video(&self, sink: &gst_app::AppSink) -> Result<gst::FlowSuccess, gst::FlowError> {
        if let Some((buf, running)) = pull_frame(sink)? {
            self.frames.fetch_add(1, Ordering::Relaxed);
            if self.outputs.push_video(VideoFrame {
                buf,
                pts_us: self.media_time(sink, running),
                decoded_at: Instant::now(),
            }) > 0
            {
                self.flow.mark(Direction::Out, MediaType::Video);
            }
        }
        Ok(gst::FlowSuccess::Ok)
    }

    /// The media pipeline's time, µs, at which a frame of `running` time in the player is due:
    /// the time it leaves when the player keeps pace, and still its due time when the player
    /// fell behind (a busy machine) and lets frames out in a burst, so they keep their spacing.
    /// When the two pipelines do not share a clock, the time it leaves.
    fn media_time(&self, sink: &gst_app::AppSink, running: Option<gst::ClockTime>) -> u64 {
        let due = || {
            let same_clock = sink.clock()? == self.clock_of.clock()?;
            let at = sink.base_time()? + running?;
            same_clock.then(|| at.checked_sub(self.clock_of.base_time()?))?
        };
        due()
            .or_else(|| running_time(&self.clock_of))
            .map(|t| t.useconds())
            .unwrap_or(0)
    }

    fn push_audio(&self, sink: &gst_app::AppSink) -> Result<gst::FlowSuccess, gst::FlowError> {
        let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
        let Some(buffer) = sample.buffer() else {
            return Ok(gst::FlowSuccess::Ok);
        };
        let Ok(map) = buffer.map_readable() else {
            return Ok(gst::FlowSuccess::Ok);
        };
        if let Ok(packet) = rtp::Packet::unmarshal(&mut map.as_slice()) {
            self.audio_packets.fetch_add(1, Ordering::Relaxed);
            if self.outputs.push_audio(&packet) > 0 {
                self.flow.mark(Direction::Out, MediaType::Audio);
            }
        }
        Ok(gst::FlowSuccess::Ok)
    }
}

/// A player element.
pub struct PlayerEndpoint {
    shared: Arc<Shared>,
    gst: OwnPipeline,
    uri: String,
}

impl std::fmt::Debug for PlayerEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlayerEndpoint")
            .field("id", &self.shared.id)
            .field("uri", &self.uri)
            .finish()
    }
}

fn media_error(what: &str, message: impl std::fmt::Display) -> PipelineError {
    PipelineError::Media(MediaError::Element {
        element: what.to_string(),
        message: message.to_string(),
    })
}

/// Builds the branch for one decoded pad: video to frames, audio to Opus RTP.
fn link_pad(shared: &Weak<Shared>, bin: &gst::Pipeline, pad: &gst::Pad) -> Result<(), MediaError> {
    let Some(strong) = shared.upgrade() else {
        return Ok(());
    };
    let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
    let Some(name) = caps.structure(0).map(|s| s.name().to_string()) else {
        return Ok(());
    };
    let mut chain: Vec<gst::Element> = vec![element("queue")?];
    if name.starts_with("video/") {
        let format = strong.outputs.preferred_format();
        chain.push(element("videoconvert")?);
        let sink = gst_app::AppSink::builder()
            .caps(&raw_caps(format))
            .sync(true)
            .max_buffers(2)
            .build();
        let weak = shared.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| match weak.upgrade() {
                    Some(s) => s.push_video(sink),
                    None => Err(gst::FlowError::Flushing),
                })
                .build(),
        );
        *lock(&strong.video_sink) = Some(sink.clone());
        chain.push(sink.upcast());
    } else if name.starts_with("audio/") {
        chain.push(element("audioconvert")?);
        chain.push(element("audioresample")?);
        let caps = element("capsfilter")?;
        caps.set_property(
            "caps",
            gst::Caps::builder("audio/x-raw")
                .field("rate", 48_000i32)
                .field("channels", 2i32)
                .build(),
        );
        chain.push(caps);
        chain.push(element("opusenc")?);
        let pay = element("rtpopuspay")?;
        pay.set_property("pt", OPUS_PT);
        pay.set_property("mtu", crate::media::rtp::RTP_MTU);
        chain.push(pay);
        let sink = gst_app::AppSink::builder()
            .sync(true)
            .max_buffers(8)
            .build();
        let weak = shared.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| match weak.upgrade() {
                    Some(s) => s.push_audio(sink),
                    None => Err(gst::FlowError::Flushing),
                })
                .build(),
        );
        chain.push(sink.upcast());
    } else {
        return Ok(());
    }
    let fail = |message: String| MediaError::Element {
        element: "player".into(),
        message,
    };
    bin.add_many(&chain).map_err(|e| fail(e.to_string()))?;
    gst::Element::link_many(&chain).map_err(|e| fail(e.to_string()))?;
    for e in &chain {
        e.sync_state_with_parent()
            .map_err(|e| fail(e.to_string()))?;
    }
    let sinkpad = chain[0]
        .static_pad("sink")
        .ok_or_else(|| fail("queue without a sink pad".into()))?;
    pad.link(&sinkpad)
        .map_err(|e| fail(format!("cannot link {name}: {e:?}")))?;
    Ok(())
}

impl PlayerEndpoint {
    /// A player of `uri`; `network_cache_ms` is the buffering of network streams (RTSP
    /// latency). Nothing is opened until [`PlayerEndpoint::play`].
    pub(super) fn new(
        id: ElementId,
        pipeline: &MediaPipeline,
        uri: &str,
        network_cache_ms: Option<u32>,
    ) -> Result<Self, PipelineError> {
        let uri = check_uri(uri, PLAYER_SCHEMES)?;
        if let Some(path) = uri.strip_prefix("file://") {
            let path = std::path::PathBuf::from(super::recorder::percent_decode(path));
            pipeline
                .context()
                .media
                .check_path(&uri, &path)
                .map_err(PipelineError::InvalidArgument)?;
        }
        let gst = OwnPipeline::new(&format!("player-{}", id.gst_name()));
        let decode = gst::ElementFactory::make("uridecodebin")
            .property("uri", &uri)
            .build()
            .map_err(|e| media_error("uridecodebin", e))?;
        if let Some(ms) = network_cache_ms {
            decode.connect("source-setup", false, move |args| {
                if let Some(source) = args.get(1).and_then(|v| v.get::<gst::Element>().ok())
                    && source.has_property("latency")
                {
                    source.set_property("latency", ms);
                }
                None
            });
        }
        gst.add(&decode).map_err(|e| media_error("player", e))?;
        let shared = Arc::new(Shared {
            id,
            outputs: Outputs::default(),
            flow: FlowMeter::default(),
            events: pipeline.events().clone(),
            clock_of: pipeline.gst_pipeline().clone(),
            state: UriStateCell::new(),
            last_error: Mutex::new(None),
            video_sink: Mutex::new(None),
            ended: AtomicBool::new(false),
            frames: AtomicU64::new(0),
            audio_packets: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&shared);
        let weak_bin = gst.downgrade();
        decode.connect_pad_added(move |_, pad| {
            let Some(bin) = weak_bin.upgrade() else {
                return;
            };
            if let Err(e) = link_pad(&weak, &bin, pad)
                && let Some(s) = weak.upgrade()
            {
                s.events.emit(
                    &s.id,
                    EventKind::Error {
                        message: e.to_string(),
                    },
                );
            }
        });
        let weak = Arc::downgrade(&shared);
        gst.on_message(move |msg| {
            if let Some(s) = weak.upgrade() {
                s.on_message(msg);
            }
        });
        Ok(Self { shared, gst, uri })
    }

    /// The URI played.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Starts or resumes playing; after the end of the media, plays it again from the start.
    /// Waits (a few seconds at most) until the media opened, so a missing file or an
    /// unreachable server is an error here.
    pub fn play(&self) -> Result<(), PipelineError> {
        *lock(&self.shared.last_error) = None;
        if self.shared.ended.swap(false, Ordering::AcqRel) {
            // Played to the end: start over (a flushing seek; through READY the decoder would
            // drop its pads and the branches built for them would be left behind).
            self.rewind();
        }
        // Opened (prerolled) in PAUSED first: a branch added for a decoded pad while the
        // pipeline was on its way to PLAYING would be set playing before the pipeline has a
        // clock, and would let its media out unsynchronised, as fast as it decodes.
        let opened = if self.gst.current_state() < gst::State::Paused {
            match self.gst.set_state(gst::State::Paused) {
                Ok(gst::StateChangeSuccess::Async) => self.wait_open(),
                other => other,
            }
        } else {
            Ok(gst::StateChangeSuccess::Success)
        };
        let result = opened.and_then(|_| self.gst.set_state(gst::State::Playing));
        // Not held across the state change below: the streaming thread that reports errors
        // takes this lock, and going to NULL waits for that thread.
        let error = lock(&self.shared.last_error).clone();
        if let Some(message) = error {
            let _ = self.gst.set_state(gst::State::Null);
            self.shared.set_state(UriState::Stop);
            return Err(PipelineError::InvalidArgument(format!(
                "cannot play {}: {message}",
                self.uri
            )));
        }
        if result.is_err() {
            let _ = self.gst.set_state(gst::State::Null);
            self.shared.set_state(UriState::Stop);
            return Err(media_error("player", format!("cannot play {}", self.uri)));
        }
        self.shared.set_state(UriState::Start);
        Ok(())
    }

    /// Waits until the media opened, an error came, or [`OPEN_TIMEOUT`] passed.
    fn wait_open(&self) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        let deadline = Instant::now() + OPEN_TIMEOUT;
        loop {
            let (result, _, _) = self.gst.state(gst::ClockTime::from_mseconds(50));
            let failed = lock(&self.shared.last_error).is_some();
            if !matches!(result, Ok(gst::StateChangeSuccess::Async))
                || failed
                || Instant::now() >= deadline
            {
                return result;
            }
        }
    }

    /// Pauses where it is.
    pub fn pause(&self) -> Result<(), PipelineError> {
        self.gst
            .set_state(gst::State::Paused)
            .map_err(|e| media_error("player", e))?;
        self.shared.set_state(UriState::Pause);
        Ok(())
    }

    /// Stops; the next `play` starts from the beginning.
    pub fn stop(&self) {
        if self.gst.current_state() >= gst::State::Paused {
            let _ = self.gst.set_state(gst::State::Paused);
            self.rewind();
        }
        self.shared.ended.store(false, Ordering::Release);
        self.shared.set_state(UriState::Stop);
    }

    /// Back to the start of the media, if it can seek.
    fn rewind(&self) {
        let _ = self.gst.state(gst::ClockTime::from_mseconds(
            OPEN_TIMEOUT.as_millis() as u64
        ));
        let _ = self.gst.seek_simple(
            gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT,
            gst::ClockTime::ZERO,
        );
    }

    /// Kurento's state.
    pub fn state(&self) -> UriState {
        self.shared.state.get()
    }

    /// Where playing is, in milliseconds (0 before the media opened).
    pub fn position_ms(&self) -> i64 {
        self.gst
            .query_position::<gst::ClockTime>()
            .map(|t| t.mseconds() as i64)
            .unwrap_or(0)
    }

    /// Seeks to `ms` milliseconds from the start.
    pub fn set_position(&self, ms: i64) -> Result<(), PipelineError> {
        let info = self.video_info();
        if !info.is_seekable {
            return Err(PipelineError::InvalidState(format!(
                "{} cannot seek (not opened yet, or a live stream)",
                self.uri
            )));
        }
        if ms < 0 || (info.duration > 0 && ms > info.duration) {
            return Err(PipelineError::InvalidArgument(format!(
                "position {ms} ms is outside 0..{} ms",
                info.duration
            )));
        }
        self.shared.ended.store(false, Ordering::Release);
        self.gst
            .seek_simple(
                gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
                gst::ClockTime::from_mseconds(ms as u64),
            )
            .map_err(|e| media_error("player", format!("seek to {ms} ms failed: {e}")))
    }

    /// Duration and seekability.
    pub fn video_info(&self) -> VideoInfo {
        let duration = self
            .gst
            .query_duration::<gst::ClockTime>()
            .map(|t| t.mseconds() as i64)
            .unwrap_or(0);
        let mut query = gst::query::Seeking::new(gst::Format::Time);
        let (is_seekable, init, end) = if self.gst.query(&mut query) {
            let (seekable, start, end) = query.result();
            let ms = |v: gst::GenericFormattedValue| match v {
                gst::GenericFormattedValue::Time(Some(t)) => t.mseconds() as i64,
                _ => 0,
            };
            (seekable, ms(start), ms(end))
        } else {
            (false, 0, 0)
        };
        VideoInfo {
            is_seekable,
            seekable_init: init,
            seekable_end: if end > 0 { end } else { duration },
            duration,
        }
    }
}

impl MediaElement for PlayerEndpoint {
    fn id(&self) -> &ElementId {
        &self.shared.id
    }

    fn type_name(&self) -> &'static str {
        "PlayerEndpoint"
    }

    fn outputs(&self) -> Option<&Outputs> {
        Some(&self.shared.outputs)
    }

    fn video_sink(&self) -> Option<Arc<dyn VideoSink>> {
        None
    }

    fn audio_sink(&self) -> Option<Arc<dyn AudioSink>> {
        None
    }

    fn flow(&self) -> &FlowMeter {
        &self.shared.flow
    }

    fn forwards_input(&self) -> bool {
        false
    }

    fn outputs_changed(&self) {
        let sink = lock(&self.shared.video_sink).clone();
        if let Some(sink) = sink {
            sink.set_caps(Some(&raw_caps(self.shared.outputs.preferred_format())));
            if let Some(pad) = sink.static_pad("sink") {
                pad.push_event(gst::event::Reconfigure::new());
            }
        }
    }

    fn stats(&self) -> serde_json::Value {
        serde_json::json!({
            "uri": self.uri,
            "state": self.state().name(),
            "positionMs": self.position_ms(),
            "framesOut": self.shared.frames.load(Ordering::Relaxed),
            "audioPacketsOut": self.shared.audio_packets.load(Ordering::Relaxed),
        })
    }

    fn release(&self) {
        self.gst.stop();
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}

impl MediaPipeline {
    /// Adds a player of `uri` (see [`PlayerEndpoint`]).
    pub fn add_player(
        &self,
        uri: &str,
        network_cache_ms: Option<u32>,
    ) -> Result<Arc<PlayerEndpoint>, PipelineError> {
        self.add("kurento", "PlayerEndpoint", |id| {
            PlayerEndpoint::new(id, self, uri, network_cache_ms).map(Arc::new)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_are_checked() {
        assert!(check_uri("file:///tmp/a.webm", PLAYER_SCHEMES).is_ok());
        assert!(check_uri("HTTP://example.com/a.mp4", PLAYER_SCHEMES).is_ok());
        assert!(check_uri("rtsp://10.0.0.1:554/cam", PLAYER_SCHEMES).is_ok());
        for bad in [
            "",
            "/tmp/a.webm",
            "file://relative.webm",
            "ftp://h/a",
            "http:///a",
            "gopher://x",
        ] {
            let err = check_uri(bad, PLAYER_SCHEMES).unwrap_err().to_string();
            assert!(err.contains("uri"), "{bad}: {err}");
        }
    }
}
