//! `GStreamerFilter`: a client-given GStreamer bin over the video (Kurento's GStreamerFilter,
//! e.g. `videoflip method=horizontal-flip`), restricted to the operator's allowlist of element
//! factories ([`crate::config::MediaConfig::gstreamer_filter_elements`]): otherwise any client
//! could run any pipeline (read files, open sockets) on the server.
//!
//! The element runs its own GStreamer pipeline, `appsrc ! videoconvert ! <command> !
//! videoconvert ! appsink`; frames keep their timestamps through it. Audio passes by.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use prism_frame::PixelFormat;
use rtc::rtp;

use super::graph::{AudioSink, Outputs, VideoSink, take_frame};
use super::own::{OwnPipeline, element};
use super::{
    Direction, ElementId, EventBus, EventKind, FlowMeter, MediaElement, MediaPipeline, MediaType,
    PipelineError,
};
use crate::media::rtp::{NOMINAL_FPS, VideoFrame, raw_caps};
use crate::media::{frame_into_buffer, pull_frame, video_info};
use crate::sys::lock;

/// Frames queued before the bin before the oldest are dropped.
const QUEUE_FRAMES: u64 = 4;
/// Longest command accepted.
const MAX_COMMAND: usize = 4096;
/// Elements one command may have.
const MAX_ELEMENTS: usize = 16;
/// Largest picture and rate a command may produce (it could otherwise ask for frames of any
/// size or rate and exhaust the server).
const MAX_OUTPUT: (i32, i32, i32) = (3840, 2160, 60);
/// How long the end of a stream waits for frames still in the bin.
const EOS_DRAIN: std::time::Duration = std::time::Duration::from_millis(500);

struct Shared {
    /// Itself, for the end-of-stream drain thread.
    me: std::sync::Weak<Shared>,
    id: ElementId,
    outputs: Outputs,
    flow: FlowMeter,
    events: EventBus,
    appsrc: gst_app::AppSrc,
    appsink: gst_app::AppSink,
    caps: Mutex<Option<(PixelFormat, u32, u32, gst_video::VideoInfo)>>,
    frames_in: AtomicU64,
    frames_out: AtomicU64,
}

impl VideoSink for Shared {
    fn push_video(&self, frame: Arc<VideoFrame>) {
        self.flow.mark(Direction::In, MediaType::Video);
        self.frames_in.fetch_add(1, Ordering::Relaxed);
        let frame = take_frame(frame);
        let (format, width, height) = (frame.buf.format(), frame.buf.width(), frame.buf.height());
        let info = {
            let mut caps = lock(&self.caps);
            match &*caps {
                Some((f, w, h, info)) if (*f, *w, *h) == (format, width, height) => info.clone(),
                _ => match video_info(format, width, height, (NOMINAL_FPS, 1)) {
                    Ok(info) => {
                        if let Ok(c) = info.to_caps() {
                            self.appsrc.set_caps(Some(&c));
                        }
                        *caps = Some((format, width, height, info.clone()));
                        info
                    }
                    Err(message) => {
                        self.events.emit(&self.id, EventKind::Error { message });
                        return;
                    }
                },
            }
        };
        let Ok(mut buffer) = frame_into_buffer(frame.buf, &info) else {
            return;
        };
        buffer
            .get_mut()
            .expect("invariant: a new buffer is writable")
            .set_pts(gst::ClockTime::from_useconds(frame.pts_us));
        let _ = self.appsrc.push_buffer(buffer);
    }

    fn wanted_format(&self) -> Option<PixelFormat> {
        None
    }

    fn end_of_stream(&self) {
        // Frames still inside the bin go out first: pass the end on once the output caught up
        // with the input (or after a short wait, as the bin may drop or merge frames).
        let target = self.frames_in.load(Ordering::Relaxed);
        let Some(me) = self.me.upgrade() else { return };
        let spawned = std::thread::Builder::new()
            .name("gstfilter-eos".into())
            .spawn(move || {
                let deadline = Instant::now() + EOS_DRAIN;
                while me.frames_out.load(Ordering::Relaxed) < target && Instant::now() < deadline {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                me.outputs.end_of_stream();
            });
        if spawned.is_err() {
            self.outputs.end_of_stream();
        }
    }
}

impl AudioSink for Shared {
    fn push_audio(&self, packet: &rtp::Packet) {
        self.flow.mark(Direction::In, MediaType::Audio);
        if self.outputs.push_audio(packet) > 0 {
            self.flow.mark(Direction::Out, MediaType::Audio);
        }
    }
}

impl Shared {
    fn pull(&self, sink: &gst_app::AppSink) -> Result<gst::FlowSuccess, gst::FlowError> {
        if let Some((buf, pts)) = pull_frame(sink)? {
            self.frames_out.fetch_add(1, Ordering::Relaxed);
            let frame = VideoFrame {
                buf,
                pts_us: pts.map(|t| t.useconds()).unwrap_or(0),
                decoded_at: Instant::now(),
            };
            if self.outputs.push_video(frame) > 0 {
                self.flow.mark(Direction::Out, MediaType::Video);
            }
        }
        Ok(gst::FlowSuccess::Ok)
    }
}

/// Parses `command` and checks every element against `allowed`.
fn parse_command(command: &str, allowed: &[String]) -> Result<gst::Bin, PipelineError> {
    let bad = |why: String| PipelineError::InvalidArgument(format!("GStreamerFilter: {why}"));
    if command.trim().is_empty() {
        return Err(bad("the command is empty".into()));
    }
    if command.len() > MAX_COMMAND {
        return Err(bad(format!(
            "the command is longer than {MAX_COMMAND} bytes"
        )));
    }
    let bin = gst::parse::bin_from_description(command, true)
        .map_err(|e| bad(format!("cannot parse {command:?}: {e}")))?;
    let mut refused = Vec::new();
    let mut elements = 0;
    for e in bin.iterate_recurse().into_iter().flatten() {
        elements += 1;
        let factory = e
            .factory()
            .map(|f| f.name().to_string())
            .unwrap_or_default();
        if !allowed.iter().any(|a| a == &factory) {
            refused.push(factory);
        }
    }
    if elements > MAX_ELEMENTS {
        return Err(bad(format!(
            "{elements} elements; a command may have at most {MAX_ELEMENTS}"
        )));
    }
    if !refused.is_empty() {
        refused.sort();
        refused.dedup();
        return Err(bad(format!(
            "element(s) {} not allowed on this server (allowed: {})",
            refused.join(", "),
            allowed.join(", ")
        )));
    }
    if elements == 0 || bin.static_pad("sink").is_none() || bin.static_pad("src").is_none() {
        return Err(bad(format!(
            "{command:?} must be one chain with a video input and a video output"
        )));
    }
    Ok(bin)
}

/// A GStreamer filter element.
pub struct GStreamerFilter {
    shared: Arc<Shared>,
    gst: OwnPipeline,
    user: gst::Bin,
    command: String,
}

impl std::fmt::Debug for GStreamerFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GStreamerFilter")
            .field("id", &self.shared.id)
            .field("command", &self.command)
            .finish()
    }
}

impl GStreamerFilter {
    fn new(id: ElementId, pipeline: &MediaPipeline, command: &str) -> Result<Self, PipelineError> {
        let allowed = &pipeline.context().media.gstreamer_filter_elements;
        let user = parse_command(command, allowed)?;
        let fail = |e: String| {
            PipelineError::Media(crate::media::MediaError::Element {
                element: "GStreamerFilter".into(),
                message: e,
            })
        };
        let gst = OwnPipeline::new(&format!("gstfilter-{}", id.gst_name()));
        let appsrc = gst_app::AppSrc::builder()
            .format(gst::Format::Time)
            .is_live(true)
            .max_buffers(QUEUE_FRAMES)
            // Bounded by buffers, not bytes (the 200 kB default is less than one
            // 640x480 frame, and would drop frames before the queue is full).
            .max_bytes(0)
            .leaky_type(gst_app::AppLeakyType::Downstream)
            .build();
        let appsink = gst_app::AppSink::builder()
            .caps(&raw_caps(PixelFormat::I420))
            .sync(false)
            .max_buffers(2)
            .drop(true)
            .build();
        let (max_w, max_h, max_fps) = MAX_OUTPUT;
        let bounds = element("capsfilter")?;
        bounds.set_property(
            "caps",
            gst::Caps::builder("video/x-raw")
                .field("width", gst::IntRange::new(1, max_w))
                .field("height", gst::IntRange::new(1, max_h))
                .field(
                    "framerate",
                    gst::FractionRange::new(
                        gst::Fraction::new(0, 1),
                        gst::Fraction::new(max_fps, 1),
                    ),
                )
                .build(),
        );
        let chain: Vec<gst::Element> = vec![
            appsrc.clone().upcast(),
            element("videoconvert")?,
            user.clone().upcast(),
            bounds,
            element("videoconvert")?,
            appsink.clone().upcast(),
        ];
        gst.add_many(&chain).map_err(|e| fail(e.to_string()))?;
        gst::Element::link_many(&chain)
            .map_err(|e| fail(format!("{command:?} does not take and give raw video: {e}")))?;
        let shared = Arc::new_cyclic(|me| Shared {
            me: me.clone(),
            id,
            outputs: Outputs::default(),
            flow: FlowMeter::default(),
            events: pipeline.events().clone(),
            appsrc,
            appsink: appsink.clone(),
            caps: Mutex::new(None),
            frames_in: AtomicU64::new(0),
            frames_out: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&shared);
        appsink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| match weak.upgrade() {
                    Some(s) => s.pull(sink),
                    None => Err(gst::FlowError::Flushing),
                })
                .build(),
        );
        let weak = Arc::downgrade(&shared);
        gst.on_message(move |msg| {
            if let (gst::MessageView::Error(err), Some(s)) = (msg.view(), weak.upgrade()) {
                s.events.emit(
                    &s.id,
                    EventKind::Error {
                        message: format!("GStreamerFilter: {}", err.error()),
                    },
                );
            }
        });
        gst.set_state(gst::State::Playing)
            .map_err(|e| fail(format!("cannot start {command:?}: {e}")))?;
        Ok(Self {
            shared,
            gst,
            user,
            command: command.to_string(),
        })
    }

    /// The command it runs.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// Kurento's `setElementProperty`: sets a property of the command's element (the first
    /// one that has it).
    pub fn set_element_property(&self, name: &str, value: &str) -> Result<(), PipelineError> {
        let target = self
            .user
            .iterate_recurse()
            .into_iter()
            .flatten()
            .find(|e| e.has_property(name));
        let Some(target) = target else {
            return Err(PipelineError::InvalidArgument(format!(
                "no element of {:?} has a property {name:?}",
                self.command
            )));
        };
        let pspec = target
            .find_property(name)
            .expect("invariant: has_property said so");
        let invalid = |e: String| {
            PipelineError::InvalidArgument(format!("property {name:?} = {value:?}: {e}"))
        };
        let parsed = glib_value(&pspec, value).map_err(invalid)?;
        // Out-of-range values are refused here: GStreamer would refuse them with a panic.
        if !in_range(&pspec, &parsed) {
            return Err(invalid("out of the property's range".into()));
        }
        target.set_property_from_value(name, &parsed);
        Ok(())
    }
}

/// Whether a numeric value lies within the property's bounds (others were checked when parsed).
fn in_range(pspec: &gst::glib::ParamSpec, value: &gst::glib::Value) -> bool {
    use gst::glib::{
        ParamSpecDouble, ParamSpecFloat, ParamSpecInt, ParamSpecInt64, ParamSpecUInt,
        ParamSpecUInt64,
    };
    macro_rules! bounded {
        ($($spec:ty => $t:ty),*) => {$(
            if let Some(p) = pspec.downcast_ref::<$spec>() {
                return value
                    .get::<$t>()
                    .is_ok_and(|v| v >= p.minimum() && v <= p.maximum());
            }
        )*};
    }
    bounded!(ParamSpecDouble => f64, ParamSpecFloat => f32, ParamSpecInt => i32,
        ParamSpecUInt => u32, ParamSpecInt64 => i64, ParamSpecUInt64 => u64);
    true
}

/// Parses `text` as a value of the property's type (GStreamer's own deserialisation).
fn glib_value(pspec: &gst::glib::ParamSpec, text: &str) -> Result<gst::glib::Value, String> {
    let flags = pspec.flags();
    if !flags.contains(gst::glib::ParamFlags::WRITABLE)
        || flags.contains(gst::glib::ParamFlags::CONSTRUCT_ONLY)
    {
        return Err("the property cannot be changed".into());
    }
    gst::glib::Value::deserialize(text, pspec.value_type())
        .map_err(|_| format!("not a valid {}", pspec.value_type().name()))
}

impl MediaElement for GStreamerFilter {
    fn id(&self) -> &ElementId {
        &self.shared.id
    }

    fn type_name(&self) -> &'static str {
        "GStreamerFilter"
    }

    fn outputs(&self) -> Option<&Outputs> {
        Some(&self.shared.outputs)
    }

    fn video_sink(&self) -> Option<Arc<dyn VideoSink>> {
        Some(self.shared.clone())
    }

    fn audio_sink(&self) -> Option<Arc<dyn AudioSink>> {
        Some(self.shared.clone())
    }

    fn flow(&self) -> &FlowMeter {
        &self.shared.flow
    }

    fn outputs_changed(&self) {
        let format = self.shared.outputs.preferred_format();
        self.shared.appsink.set_caps(Some(&raw_caps(format)));
    }

    fn stats(&self) -> serde_json::Value {
        serde_json::json!({
            "command": self.command,
            "framesIn": self.shared.frames_in.load(Ordering::Relaxed),
            "framesOut": self.shared.frames_out.load(Ordering::Relaxed),
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
    /// Adds a GStreamer filter running `command` (checked against the server's allowlist).
    pub fn add_gstreamer_filter(
        &self,
        command: &str,
    ) -> Result<Arc<GStreamerFilter>, PipelineError> {
        self.add("kurento", "GStreamerFilter", |id| {
            GStreamerFilter::new(id, self, command).map(Arc::new)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_checked_against_the_allowlist() {
        gst::init().unwrap();
        let allowed: Vec<String> = crate::config::DEFAULT_GSTREAMER_FILTER_ELEMENTS
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(parse_command("videoflip method=horizontal-flip", &allowed).is_ok());
        assert!(
            parse_command(
                "videobalance saturation=0 ! videoflip method=clockwise",
                &allowed
            )
            .is_ok()
        );
        let err = parse_command("filesrc location=/etc/passwd ! identity", &allowed)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("filesrc") && err.contains("not allowed"),
            "{err}"
        );
        let err = parse_command("udpsink host=1.2.3.4", &allowed)
            .unwrap_err()
            .to_string();
        assert!(err.contains("udpsink"), "{err}");
        let err = parse_command("no-such-element", &allowed)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot parse"), "{err}");
        assert!(parse_command("  ", &allowed).is_err());
    }
}
