//! `RecorderEndpoint`: writes what it is fed to a WebM, Matroska or MP4 file (Kurento's
//! RecorderEndpoint).
//!
//! Each recorder has its own GStreamer pipeline: `appsrc (Opus RTP) ! rtpopusdepay ! opusparse
//! ! mux` for audio (Opus fits all three containers, so audio is never re-encoded), and for
//! video either the RTP as it arrived (`appsrc ! rtpvp8depay/rtph264depay ! mux`, when the
//! recorder is fed directly by a WebRTC or RTP endpoint receiving a codec the container takes:
//! VP8 in WebM or Matroska, H.264 in Matroska or MP4) or decoded frames encoded once (VP8 in
//! WebM, H.264 in Matroska and MP4), e.g. after a filter. `stop` ends the streams and the muxer finalises the file
//! (MP4's index, Matroska's cues and duration), so a stopped recording plays.
//!
//! Which tracks a file gets: the profile's, among the media that arrived within
//! [`TRACK_WAIT`] of the first buffer (a muxer waits for every track it was given, so a track
//! that never comes would hold the file back).
//!
//! Timestamps are the media pipeline's running time of each frame (for audio, of the packet
//! that anchored its RTP clock, plus the RTP time since; see [`AudioAnchor`]), shifted so the
//! file starts at 0 and with paused intervals taken out.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use prism_frame::PixelFormat;
use rtc::rtp;
use rtc::shared::marshal::Marshal;

use super::graph::{AudioSink, EncodedVideoSink, Outputs, VideoSink, take_frame};
use super::own::element;
use super::player::{UriState, UriStateCell, check_uri};
use super::{
    Direction, ElementId, EventBus, EventKind, FlowMeter, MediaElement, MediaPipeline, MediaType,
    PipelineError,
};
use crate::media::rtp::{NOMINAL_FPS, VideoCodec, VideoFrame, running_time};
use crate::media::{MediaError, frame_into_buffer, video_info};
use crate::sys::lock;

/// How long after the first buffer a recorder waits for the profile's other track (a WebRTC
/// peer's first video frame can come a second or two after its audio).
pub const TRACK_WAIT: Duration = Duration::from_millis(3000);
/// Bytes of media held while waiting for the other track; beyond, the file starts with the
/// tracks seen so far.
const HELD_MAX_BYTES: usize = 64 * 1024 * 1024;
/// How long `stop_and_wait` waits for the file to be finalised.
pub const FINISH_TIMEOUT: Duration = Duration::from_secs(30);
/// Buffers queued before the encoder per track before the oldest are dropped.
const QUEUE_BUFFERS: u64 = 64;
/// RTP payload types the recorder's depayloaders are set up for.
const OPUS_PT: u8 = 111;
const VIDEO_PT: u8 = 96;
/// Opus's RTP clock rate.
const OPUS_CLOCK_RATE: u32 = 48_000;
/// Buffers held while the tracks are being decided.
const HELD_MAX: usize = 256;

/// Kurento's MediaProfileSpecType (the ones Prism writes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaProfile {
    /// WebM, VP8 + Opus.
    Webm,
    /// WebM, VP8 only.
    WebmVideoOnly,
    /// WebM, Opus only.
    WebmAudioOnly,
    /// Matroska, H.264 + Opus.
    Mkv,
    /// Matroska, H.264 only.
    MkvVideoOnly,
    /// Matroska, Opus only.
    MkvAudioOnly,
    /// MP4, H.264 + Opus.
    Mp4,
    /// MP4, H.264 only.
    Mp4VideoOnly,
    /// MP4, Opus only.
    Mp4AudioOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    Webm,
    Mkv,
    Mp4,
}

impl MediaProfile {
    /// Every profile with its Kurento name.
    pub const ALL: [(MediaProfile, &'static str); 9] = [
        (MediaProfile::Webm, "WEBM"),
        (MediaProfile::WebmVideoOnly, "WEBM_VIDEO_ONLY"),
        (MediaProfile::WebmAudioOnly, "WEBM_AUDIO_ONLY"),
        (MediaProfile::Mkv, "MKV"),
        (MediaProfile::MkvVideoOnly, "MKV_VIDEO_ONLY"),
        (MediaProfile::MkvAudioOnly, "MKV_AUDIO_ONLY"),
        (MediaProfile::Mp4, "MP4"),
        (MediaProfile::Mp4VideoOnly, "MP4_VIDEO_ONLY"),
        (MediaProfile::Mp4AudioOnly, "MP4_AUDIO_ONLY"),
    ];

    /// The profile of a Kurento name.
    pub fn parse(name: &str) -> Result<Self, PipelineError> {
        Self::ALL
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map(|(p, _)| *p)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|(_, n)| *n).collect();
                PipelineError::InvalidArgument(format!(
                    "media profile {name:?} is not supported (use {})",
                    names.join(", ")
                ))
            })
    }

    /// Kurento's name.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(p, _)| *p == self)
            .map(|(_, n)| *n)
            .unwrap_or("WEBM")
    }

    fn container(self) -> Container {
        use MediaProfile::*;
        match self {
            Webm | WebmVideoOnly | WebmAudioOnly => Container::Webm,
            Mkv | MkvVideoOnly | MkvAudioOnly => Container::Mkv,
            Mp4 | Mp4VideoOnly | Mp4AudioOnly => Container::Mp4,
        }
    }

    fn has(self, media: MediaType) -> bool {
        use MediaProfile::*;
        match media {
            MediaType::Video => !matches!(self, WebmAudioOnly | MkvAudioOnly | Mp4AudioOnly),
            MediaType::Audio => !matches!(self, WebmVideoOnly | MkvVideoOnly | Mp4VideoOnly),
        }
    }
}

/// One buffer on its way to the file: a frame or an Opus RTP packet, with its arrival time in
/// the media pipeline (microseconds).
enum Held {
    Video(VideoFrame),
    /// Video as it arrived (RTP), when the container fits its codec.
    Encoded(VideoCodec, Vec<u8>, u64),
    Audio(Vec<u8>, u64),
}

impl Held {
    fn media(&self) -> MediaType {
        match self {
            Held::Video(_) | Held::Encoded(..) => MediaType::Video,
            Held::Audio(..) => MediaType::Audio,
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Held::Video(f) => f.buf.data().len(),
            Held::Encoded(_, b, _) | Held::Audio(b, _) => b.len(),
        }
    }
}

/// How video reaches the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VideoInput {
    /// Decoded frames, encoded here.
    Frames,
    /// RTP of this codec, depayloaded into the container as it is.
    Rtp(VideoCodec),
}

/// The running muxer.
struct Writer {
    gst: gst::Pipeline,
    video: Option<gst_app::AppSrc>,
    audio: Option<gst_app::AppSrc>,
    /// Video caps set on the video appsrc: format, width, height.
    caps: Option<(PixelFormat, u32, u32, gstreamer_video::VideoInfo)>,
    /// The last frame, held until the next one gives its duration.
    pending: Option<(VideoFrame, u64)>,
    /// How video is written.
    input: Option<VideoInput>,
}

enum Phase {
    /// `record` not called yet.
    Idle,
    /// Recording started; deciding the tracks.
    Waiting {
        since: Option<Instant>,
        held: VecDeque<Held>,
    },
    /// Writing.
    Writing(Box<Writer>),
    /// Stopped: the file is finished (or being finished).
    Done,
}

struct Clock {
    /// Arrival time of the first buffer, µs.
    origin: Option<u64>,
    /// Time spent paused so far, µs.
    paused_total: u64,
    /// When the current pause started, µs.
    paused_at: Option<u64>,
}

/// Where the audio's RTP clock stands in the media pipeline's time: the packets of a source
/// are stamped by their RTP timestamps from the packet that set the anchor, so a burst (a busy
/// source letting several out at once) keeps its spacing in the file.
#[derive(Debug, Clone, Copy)]
struct AudioAnchor {
    ssrc: u32,
    rtp: u32,
    at_us: u64,
}

/// An RTP-derived audio time further than this from the arrival time re-anchors (another
/// source, a paused one, a clock jump).
const AUDIO_RESYNC_US: i64 = 1_000_000;

impl AudioAnchor {
    /// The time of a packet arriving at `arrival_us`, and the anchor from then on.
    fn place(anchor: Option<Self>, ssrc: u32, rtp: u32, arrival_us: u64) -> (u64, Self) {
        if let Some(a) = anchor.filter(|a| a.ssrc == ssrc) {
            // Wrapping: a difference of less than half the RTP clock's range, either way.
            let ticks = rtp.wrapping_sub(a.rtp) as i32 as i64;
            let at = a.at_us as i64 + ticks * 1_000_000 / i64::from(OPUS_CLOCK_RATE);
            if at >= 0 && (at - arrival_us as i64).abs() <= AUDIO_RESYNC_US {
                return (at as u64, a);
            }
        }
        let anchor = Self {
            ssrc,
            rtp,
            at_us: arrival_us,
        };
        (arrival_us, anchor)
    }
}

struct Shared {
    id: ElementId,
    path: PathBuf,
    profile: MediaProfile,
    stop_on_eos: bool,
    events: EventBus,
    flow: FlowMeter,
    clock_of: gst::Pipeline,
    phase: Mutex<Phase>,
    clock: Mutex<Clock>,
    state: UriStateCell,
    audio_anchor: Mutex<Option<AudioAnchor>>,
    frames: AtomicU64,
    /// Video RTP packets written as they arrived.
    packets: AtomicU64,
    /// Encoded video came: decoded frames are not needed.
    encoded_seen: AtomicBool,
    /// `Stopped` was sent (once, whether a client or the end of the stream stopped it).
    stopped_sent: AtomicBool,
    audio_packets: AtomicU64,
    dropped: AtomicU64,
    finished: Mutex<Option<std::sync::mpsc::Receiver<Result<(), String>>>>,
}

/// `%XX` escapes of a URI path decoded (invalid ones are kept as they are).
pub(super) fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Pushes `bytes` stamped at `at_us` of the file; whether the source took them.
fn push_stamped(src: &gst_app::AppSrc, bytes: Vec<u8>, at_us: u64) -> bool {
    let mut buffer = gst::Buffer::from_mut_slice(bytes);
    buffer
        .get_mut()
        .expect("invariant: a new buffer is writable")
        .set_pts(gst::ClockTime::from_useconds(at_us));
    src.push_buffer(buffer).is_ok()
}

fn encode_error(path: &std::path::Path, message: impl std::fmt::Display) -> MediaError {
    MediaError::Encode {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

impl Shared {
    fn now_us(&self) -> u64 {
        running_time(&self.clock_of)
            .map(|t| t.useconds())
            .unwrap_or(0)
    }

    fn stopped(&self) {
        if !self.stopped_sent.swap(true, Ordering::AcqRel) {
            self.events.emit(&self.id, EventKind::Stopped);
        }
    }

    fn set_state(&self, state: UriState) {
        self.state.set(&self.events, &self.id, state);
    }

    /// Stops: the file is finished in the background (`Stopped` follows when it is done), or,
    /// if nothing was written, `Stopped` now.
    fn stop(self: &Arc<Self>) {
        let was_stopped = self.state.get() == UriState::Stop;
        match self.finish() {
            Some(rx) => *lock(&self.finished) = Some(rx),
            // Nothing was written: there is no file to finish.
            None if !was_stopped => self.stopped(),
            None => {}
        }
        *lock(&self.phase) = Phase::Done;
        self.set_state(UriState::Stop);
    }

    /// The file time of a buffer that arrived at `at_us`, or `None` while paused.
    fn file_time(&self, at_us: u64) -> Option<u64> {
        let mut clock = lock(&self.clock);
        if clock.paused_at.is_some() {
            return None;
        }
        let origin = *clock.origin.get_or_insert(at_us);
        Some(
            at_us
                .saturating_sub(origin)
                .saturating_sub(clock.paused_total),
        )
    }

    fn take(&self, held: Held) {
        let mut phase = lock(&self.phase);
        match &mut *phase {
            Phase::Idle | Phase::Done => {}
            Phase::Waiting { since, held: queue } => {
                let since = *since.get_or_insert_with(Instant::now);
                let bytes: usize = queue.iter().map(Held::bytes).sum();
                if queue.len() < HELD_MAX && bytes < HELD_MAX_BYTES {
                    queue.push_back(held);
                } else {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
                let seen = |m: MediaType| queue.iter().any(|h| h.media() == m);
                let all_seen = MediaType::ALL
                    .iter()
                    .all(|&m| !self.profile.has(m) || seen(m));
                if all_seen
                    || since.elapsed() >= TRACK_WAIT
                    || queue.len() >= HELD_MAX
                    || bytes >= HELD_MAX_BYTES
                {
                    self.start_writing(&mut phase);
                }
            }
            Phase::Writing(writer) => self.write(writer, held),
        }
    }

    /// Builds the muxer for the media seen so far and writes what was held.
    fn start_writing(&self, phase: &mut Phase) {
        let Phase::Waiting { held, .. } = std::mem::replace(phase, Phase::Done) else {
            return;
        };
        if held.is_empty() {
            // Stopped before any media came: there is no file to write.
            return;
        }
        // Video as it arrived when some came that way (it arrives before the decoded frames of
        // the same source), else decoded frames.
        let video = held
            .iter()
            .find_map(|h| match h {
                Held::Encoded(codec, ..) => Some(VideoInput::Rtp(*codec)),
                _ => None,
            })
            .or_else(|| {
                held.iter()
                    .any(|h| matches!(h, Held::Video(_)))
                    .then_some(VideoInput::Frames)
            })
            .filter(|_| self.profile.has(MediaType::Video));
        let audio = self.profile.has(MediaType::Audio)
            && held.iter().any(|h| h.media() == MediaType::Audio);
        match self.build(video, audio) {
            Ok(writer) => {
                let mut writer = Box::new(writer);
                for h in held {
                    self.write(&mut writer, h);
                }
                *phase = Phase::Writing(writer);
            }
            Err(e) => {
                self.events.emit(
                    &self.id,
                    EventKind::Error {
                        message: e.to_string(),
                    },
                );
            }
        }
    }

    fn build(&self, video: Option<VideoInput>, audio: bool) -> Result<Writer, MediaError> {
        let fail = |m: String| encode_error(&self.path, m);
        if video.is_none() && !audio {
            return Err(fail(
                "nothing to record: no media of the profile arrived".into(),
            ));
        }
        let container = self.profile.container();
        let gst = gst::Pipeline::with_name(&format!("recorder-{}", self.id.gst_name()));
        let mux = element(match container {
            Container::Webm => "webmmux",
            Container::Mkv => "matroskamux",
            Container::Mp4 => "mp4mux",
        })?;
        let sink = element("filesink")?;
        sink.set_property("location", self.path.to_string_lossy().as_ref());
        sink.set_property("sync", false);
        gst.add_many([&mux, &sink])
            .map_err(|e| fail(e.to_string()))?;
        mux.link(&sink).map_err(|e| fail(e.to_string()))?;
        let appsrc = |name: &str| {
            gst_app::AppSrc::builder()
                .name(name)
                .format(gst::Format::Time)
                .is_live(true)
                // Room for what was held while the tracks were decided, written at once.
                .max_buffers(QUEUE_BUFFERS + HELD_MAX as u64)
                // Bounded by buffers, not bytes (the 200 kB default is less than one
                // 640x480 frame, and would drop frames before the queue is full).
                .max_bytes(0)
                .leaky_type(gst_app::AppLeakyType::Downstream)
                .build()
        };
        let branch = |chain: Vec<gst::Element>| -> Result<(), MediaError> {
            gst.add_many(&chain).map_err(|e| fail(e.to_string()))?;
            gst::Element::link_many(&chain).map_err(|e| fail(e.to_string()))?;
            let last = chain.last().expect("invariant: a branch has elements");
            last.link(&mux).map_err(|e| fail(format!("{e}")))
        };
        let video_src = if let Some(VideoInput::Rtp(codec)) = video {
            let src = appsrc("video");
            src.set_caps(Some(
                &gst::Caps::builder("application/x-rtp")
                    .field("media", "video")
                    .field("clock-rate", 90_000i32)
                    .field("encoding-name", codec.to_string())
                    .field("payload", VIDEO_PT as i32)
                    .build(),
            ));
            let depay = element(match codec {
                VideoCodec::Vp8 => "rtpvp8depay",
                VideoCodec::H264 => "rtph264depay",
            })?;
            // The file starts at a keyframe, and a lost packet skips to the next one.
            depay.set_property("wait-for-keyframe", true);
            let mut chain = vec![src.clone().upcast(), element("queue")?, depay];
            if codec == VideoCodec::H264 {
                chain.push(element("h264parse")?);
            }
            branch(chain)?;
            Some(src)
        } else if video == Some(VideoInput::Frames) {
            let src = appsrc("video");
            let mut chain = vec![
                src.clone().upcast(),
                element("queue")?,
                element("videoconvert")?,
            ];
            match container {
                Container::Webm => {
                    let enc = element("vp8enc")?;
                    enc.set_property("deadline", 1i64);
                    enc.set_property("cpu-used", 8i32);
                    enc.set_property("threads", 2i32);
                    enc.set_property("target-bitrate", 2_000_000i32);
                    enc.set_property("keyframe-max-dist", 60i32);
                    chain.push(enc);
                }
                Container::Mkv | Container::Mp4 => {
                    let enc = element("x264enc")?;
                    enc.set_property_from_str("speed-preset", "veryfast");
                    enc.set_property("key-int-max", 60u32);
                    chain.push(enc);
                    chain.push(element("h264parse")?);
                }
            }
            branch(chain)?;
            Some(src)
        } else {
            None
        };
        let audio_src = if audio {
            let src = appsrc("audio");
            src.set_caps(Some(
                &gst::Caps::builder("application/x-rtp")
                    .field("media", "audio")
                    .field("clock-rate", OPUS_CLOCK_RATE as i32)
                    .field("encoding-name", "OPUS")
                    .field("encoding-params", "2")
                    .field("payload", OPUS_PT as i32)
                    .build(),
            ));
            branch(vec![
                src.clone().upcast(),
                element("queue")?,
                element("rtpopusdepay")?,
                element("opusparse")?,
            ])?;
            Some(src)
        } else {
            None
        };
        if let Some(bus) = gst.bus() {
            // Failures while recording (a full disk...) are reported when they happen; the end
            // of the stream and errors stay on the bus for `finish`.
            let (events, id) = (self.events.clone(), self.id.clone());
            bus.set_sync_handler(move |_, msg| match msg.view() {
                gst::MessageView::Error(err) => {
                    events.emit(
                        &id,
                        EventKind::Error {
                            message: format!("recording: {}", err.error()),
                        },
                    );
                    gst::BusSyncReply::Pass
                }
                gst::MessageView::Eos(_) => gst::BusSyncReply::Pass,
                _ => gst::BusSyncReply::Drop,
            });
        }
        gst.set_state(gst::State::Playing)
            .map_err(|e| fail(format!("cannot start: {e}")))?;
        Ok(Writer {
            gst,
            video: video_src,
            audio: audio_src,
            caps: None,
            pending: None,
            input: video,
        })
    }

    fn write(&self, writer: &mut Writer, held: Held) {
        match held {
            Held::Video(frame) => {
                if writer.input != Some(VideoInput::Frames) {
                    // The video is written as it arrived; its decoded frames are not needed.
                    return;
                }
                let Some(at) = self.file_time(frame.pts_us) else {
                    return;
                };
                // The previous frame lasts until this one.
                if let Some((prev, prev_at)) = writer.pending.take() {
                    self.write_frame(writer, prev, prev_at, at.saturating_sub(prev_at));
                }
                writer.pending = Some((frame, at));
            }
            Held::Encoded(codec, bytes, arrived) => {
                if writer.input == Some(VideoInput::Rtp(codec))
                    && let (Some(src), Some(at)) = (&writer.video, self.file_time(arrived))
                    && push_stamped(src, bytes, at)
                {
                    self.packets.fetch_add(1, Ordering::Relaxed);
                }
            }
            Held::Audio(bytes, arrived) => {
                let (Some(src), Some(at)) = (&writer.audio, self.file_time(arrived)) else {
                    return;
                };
                if push_stamped(src, bytes, at) {
                    self.audio_packets.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    fn write_frame(&self, writer: &mut Writer, frame: VideoFrame, at_us: u64, duration_us: u64) {
        let Some(src) = writer.video.clone() else {
            return;
        };
        let (format, width, height) = (frame.buf.format(), frame.buf.width(), frame.buf.height());
        let info = match &writer.caps {
            Some((f, w, h, info)) if (*f, *w, *h) == (format, width, height) => info.clone(),
            _ => match video_info(format, width, height, (NOMINAL_FPS, 1)) {
                Ok(info) => {
                    if let Ok(caps) = info.to_caps() {
                        src.set_caps(Some(&caps));
                    }
                    writer.caps = Some((format, width, height, info.clone()));
                    info
                }
                Err(message) => {
                    self.events.emit(&self.id, EventKind::Error { message });
                    return;
                }
            },
        };
        let Ok(mut buffer) = frame_into_buffer(frame.buf, &info) else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        {
            let b = buffer
                .get_mut()
                .expect("invariant: a new buffer is writable");
            b.set_pts(gst::ClockTime::from_useconds(at_us));
            b.set_duration(gst::ClockTime::from_useconds(duration_us.max(1)));
        }
        if src.current_level_buffers() >= QUEUE_BUFFERS {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        if src.push_buffer(buffer).is_ok() {
            self.frames.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Ends the file: the held frame goes out, the streams end, and a thread waits for the
    /// muxer to finish and then frees the pipeline. Returns a receiver of the outcome.
    fn finish(self: &Arc<Self>) -> Option<std::sync::mpsc::Receiver<Result<(), String>>> {
        let mut phase = lock(&self.phase);
        if matches!(*phase, Phase::Waiting { .. }) {
            self.start_writing(&mut phase);
        }
        let Phase::Writing(mut writer) = std::mem::replace(&mut *phase, Phase::Done) else {
            return None;
        };
        drop(phase);
        if let Some((frame, at)) = writer.pending.take() {
            // The last frame lasts one nominal frame interval.
            self.write_frame(&mut writer, frame, at, 1_000_000 / NOMINAL_FPS as u64);
        }
        for src in [&writer.video, &writer.audio].into_iter().flatten() {
            let _ = src.end_of_stream();
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let shared = self.clone();
        let gst = writer.gst.clone();
        std::thread::Builder::new()
            .name("recorder-finish".into())
            .spawn(move || {
                let result = match gst.bus().and_then(|bus| {
                    bus.timed_pop_filtered(
                        gst::ClockTime::from_mseconds(FINISH_TIMEOUT.as_millis() as u64),
                        &[gst::MessageType::Eos, gst::MessageType::Error],
                    )
                }) {
                    Some(msg) => match msg.view() {
                        gst::MessageView::Error(err) => Err(err.error().to_string()),
                        _ => Ok(()),
                    },
                    None => Err(format!(
                        "the file was not finished within {} s",
                        FINISH_TIMEOUT.as_secs()
                    )),
                };
                let _ = gst.set_state(gst::State::Null);
                match &result {
                    Ok(()) => shared.stopped(),
                    Err(message) => shared.events.emit(
                        &shared.id,
                        EventKind::Error {
                            message: message.clone(),
                        },
                    ),
                }
                let _ = tx.send(result);
            })
            .ok()?;
        Some(rx)
    }
}

impl VideoSink for Shared {
    fn push_video(&self, frame: Arc<VideoFrame>) {
        self.flow.mark(Direction::In, MediaType::Video);
        if self.profile.has(MediaType::Video) && !self.encoded_seen.load(Ordering::Acquire) {
            self.take(Held::Video(take_frame(frame)));
        }
    }

    fn wanted_format(&self) -> Option<PixelFormat> {
        Some(PixelFormat::I420)
    }
}

impl EncodedVideoSink for EosAware {
    fn accepts(&self, codec: VideoCodec) -> bool {
        let container = self.0.profile.container();
        self.0.profile.has(MediaType::Video)
            && match codec {
                VideoCodec::Vp8 => matches!(container, Container::Webm | Container::Mkv),
                VideoCodec::H264 => matches!(container, Container::Mkv | Container::Mp4),
            }
    }

    fn push_rtp(&self, codec: VideoCodec, packet: &rtp::Packet) {
        let s = &self.0;
        s.flow.mark(Direction::In, MediaType::Video);
        s.encoded_seen.store(true, Ordering::Release);
        // One payload type in the file's caps, whatever the source negotiated.
        let mut packet = packet.clone();
        packet.header.payload_type = VIDEO_PT;
        if let Ok(bytes) = packet.marshal() {
            s.take(Held::Encoded(codec, bytes.to_vec(), s.now_us()));
        }
    }
}

impl AudioSink for EosAware {
    fn push_audio(&self, packet: &rtp::Packet) {
        self.0.push_audio(packet);
    }

    fn end_of_stream(&self) {
        VideoSink::end_of_stream(self);
    }
}

impl AudioSink for Shared {
    fn push_audio(&self, packet: &rtp::Packet) {
        self.flow.mark(Direction::In, MediaType::Audio);
        if !self.profile.has(MediaType::Audio) {
            return;
        }
        // One payload type in the file's caps, whatever the source negotiated.
        let mut packet = packet.clone();
        packet.header.payload_type = OPUS_PT;
        if let Ok(bytes) = packet.marshal() {
            let at = {
                let mut anchor = lock(&self.audio_anchor);
                let (at, placed) = AudioAnchor::place(
                    *anchor,
                    packet.header.ssrc,
                    packet.header.timestamp,
                    self.now_us(),
                );
                *anchor = Some(placed);
                at
            };
            self.take(Held::Audio(bytes.to_vec(), at));
        }
    }
}

/// A recorder element.
pub struct RecorderEndpoint {
    shared: Arc<Shared>,
    uri: String,
}

impl std::fmt::Debug for RecorderEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecorderEndpoint")
            .field("id", &self.shared.id)
            .field("uri", &self.uri)
            .finish()
    }
}

impl RecorderEndpoint {
    /// A recorder writing to `uri` (`file:///...`; the directory must exist) in `profile`.
    pub(super) fn new(
        id: ElementId,
        pipeline: &MediaPipeline,
        uri: &str,
        profile: MediaProfile,
        stop_on_eos: bool,
    ) -> Result<Self, PipelineError> {
        let uri = check_uri(uri, &["file"])?;
        let path = PathBuf::from(percent_decode(&uri["file://".len()..]));
        pipeline
            .context()
            .media
            .check_path(&uri, &path)
            .map_err(PipelineError::InvalidArgument)?;
        let dir_ok = path
            .parent()
            .is_some_and(|d| d.as_os_str().is_empty() || d.is_dir());
        if !dir_ok || path.is_dir() || path.file_name().is_none() {
            return Err(PipelineError::InvalidArgument(format!(
                "uri {uri:?}: {} is not a file in an existing directory",
                path.display()
            )));
        }
        Ok(Self {
            shared: Arc::new(Shared {
                id,
                path,
                profile,
                stop_on_eos,
                events: pipeline.events().clone(),
                flow: FlowMeter::default(),
                clock_of: pipeline.gst_pipeline().clone(),
                phase: Mutex::new(Phase::Idle),
                clock: Mutex::new(Clock {
                    origin: None,
                    paused_total: 0,
                    paused_at: None,
                }),
                state: UriStateCell::new(),
                audio_anchor: Mutex::new(None),
                frames: AtomicU64::new(0),
                packets: AtomicU64::new(0),
                encoded_seen: AtomicBool::new(false),
                stopped_sent: AtomicBool::new(false),
                audio_packets: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                finished: Mutex::new(None),
            }),
            uri,
        })
    }

    /// The file's URI.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Kurento's state: `START` while recording.
    pub fn state(&self) -> UriState {
        self.shared.state.get()
    }

    /// The profile.
    pub fn profile(&self) -> MediaProfile {
        self.shared.profile
    }

    /// Starts recording, or resumes after `pause`.
    pub fn record(&self) -> Result<(), PipelineError> {
        let s = &self.shared;
        {
            let mut phase = lock(&s.phase);
            match &*phase {
                Phase::Done => {
                    return Err(PipelineError::InvalidState(format!(
                        "the recording to {} has stopped; use a new recorder",
                        self.uri
                    )));
                }
                Phase::Idle => {
                    *phase = Phase::Waiting {
                        since: None,
                        held: VecDeque::new(),
                    }
                }
                _ => {}
            }
        }
        {
            let now = s.now_us();
            let mut clock = lock(&s.clock);
            if let Some(at) = clock.paused_at.take() {
                clock.paused_total += now.saturating_sub(at);
            }
        }
        s.set_state(UriState::Start);
        s.events.emit(&s.id, EventKind::Recording);
        Ok(())
    }

    /// Pauses: what arrives is not written until `record` again (the file has no gap).
    pub fn pause(&self) -> Result<(), PipelineError> {
        let s = &self.shared;
        if !matches!(*lock(&s.phase), Phase::Waiting { .. } | Phase::Writing(_)) {
            return Err(PipelineError::InvalidState("not recording".into()));
        }
        let now = s.now_us();
        lock(&s.clock).paused_at.get_or_insert(now);
        s.set_state(UriState::Pause);
        s.events.emit(&s.id, EventKind::Paused);
        Ok(())
    }

    /// Stops and finalises the file in the background (`Stopped` follows when it is done).
    pub fn stop(&self) {
        self.shared.stop();
    }

    /// Stops and waits until the file is finalised (blocking; at most [`FINISH_TIMEOUT`]).
    pub fn stop_and_wait(&self) -> Result<(), PipelineError> {
        self.stop();
        let rx = lock(&self.shared.finished).take();
        match rx {
            None => Ok(()),
            Some(rx) => match rx.recv() {
                Ok(Ok(())) => Ok(()),
                Ok(Err(message)) => Err(encode_error(&self.shared.path, message).into()),
                Err(_) => Ok(()),
            },
        }
    }
}

impl MediaElement for RecorderEndpoint {
    fn id(&self) -> &ElementId {
        &self.shared.id
    }

    fn type_name(&self) -> &'static str {
        "RecorderEndpoint"
    }

    fn outputs(&self) -> Option<&Outputs> {
        None
    }

    fn video_sink(&self) -> Option<Arc<dyn VideoSink>> {
        Some(Arc::new(EosAware(self.shared.clone())))
    }

    fn audio_sink(&self) -> Option<Arc<dyn AudioSink>> {
        Some(Arc::new(EosAware(self.shared.clone())))
    }

    fn flow(&self) -> &FlowMeter {
        &self.shared.flow
    }

    fn forwards_input(&self) -> bool {
        false
    }

    fn stats(&self) -> serde_json::Value {
        let s = &self.shared;
        serde_json::json!({
            "uri": self.uri,
            "profile": s.profile.name(),
            "state": s.state.get().name(),
            "framesWritten": s.frames.load(Ordering::Relaxed),
            "videoPacketsWritten": s.packets.load(Ordering::Relaxed),
            "audioPacketsWritten": s.audio_packets.load(Ordering::Relaxed),
            "dropped": s.dropped.load(Ordering::Relaxed),
        })
    }

    fn release(&self) {
        // A recording released while running is finished, not lost.
        self.stop();
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}

/// The recorder's video input: frames, and the source's end of stream (which stops the
/// recording when the recorder was made with `stopOnEndOfStream`).
struct EosAware(Arc<Shared>);

impl VideoSink for EosAware {
    fn push_video(&self, frame: Arc<VideoFrame>) {
        self.0.push_video(frame);
    }

    fn wanted_format(&self) -> Option<PixelFormat> {
        self.0.wanted_format()
    }

    fn encoded(&self) -> Option<&dyn EncodedVideoSink> {
        Some(self)
    }

    fn end_of_stream(&self) {
        if self.0.stop_on_eos {
            self.0.stop();
        }
    }
}

impl MediaPipeline {
    /// Adds a recorder to `uri` (see [`RecorderEndpoint`]).
    pub fn add_recorder(
        &self,
        uri: &str,
        profile: MediaProfile,
        stop_on_eos: bool,
    ) -> Result<Arc<RecorderEndpoint>, PipelineError> {
        self.add("kurento", "RecorderEndpoint", |id| {
            RecorderEndpoint::new(id, self, uri, profile, stop_on_eos).map(Arc::new)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_paths_are_percent_decoded() {
        assert_eq!(percent_decode("/tmp/a%20b.webm"), "/tmp/a b.webm");
        assert_eq!(percent_decode("/tmp/100%.webm"), "/tmp/100%.webm");
        assert_eq!(percent_decode("/tmp/%zz%4"), "/tmp/%zz%4");
    }

    #[test]
    fn audio_keeps_its_rtp_spacing_through_a_burst_and_resyncs_on_a_jump() {
        let place = |anchor, ssrc, rtp, arrival| AudioAnchor::place(anchor, ssrc, rtp, arrival);
        let (at, a) = place(None, 7, u32::MAX - 479, 5_000_000);
        assert_eq!(at, 5_000_000);
        // Three packets of 20 ms arriving together, across the RTP timestamp's wrap.
        let (at1, a) = place(Some(a), 7, 480, 5_000_100);
        let (at2, a) = place(Some(a), 7, 1440, 5_000_200);
        assert_eq!((at1, at2), (5_020_000, 5_040_000));
        // A packet from another source, or far from its arrival, starts a new anchor.
        assert_eq!(place(Some(a), 8, 1440, 6_000_000).0, 6_000_000);
        assert_eq!(place(Some(a), 7, 2400, 9_000_000).0, 9_000_000);
        // Late (a stall) but within the resync window: still by its timestamp.
        assert_eq!(place(Some(a), 7, 2400, 5_500_000).0, 5_060_000);
    }

    #[test]
    fn profiles_parse() {
        assert_eq!(MediaProfile::parse("WEBM").unwrap(), MediaProfile::Webm);
        assert_eq!(
            MediaProfile::parse("mp4_video_only").unwrap(),
            MediaProfile::Mp4VideoOnly
        );
        let err = MediaProfile::parse("FLV").unwrap_err().to_string();
        assert!(err.contains("FLV") && err.contains("WEBM"), "{err}");
        assert!(!MediaProfile::WebmAudioOnly.has(MediaType::Video));
        assert!(MediaProfile::WebmAudioOnly.has(MediaType::Audio));
        assert!(!MediaProfile::Mp4VideoOnly.has(MediaType::Audio));
    }
}
