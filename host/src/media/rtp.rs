//! Live RTP in and out of GStreamer, one branch per media element inside the element's
//! pipeline:
//!
//! * [`RtpIngest`]: `appsrc (RTP) ! rtpjitterbuffer ! depay ! decoder ! videoconvert ! appsink`
//!   in the pixel format the consumers asked for (`videoconvert` passes through when the decoder
//!   already gives it, e.g. I420 from vp8dec);
//! * [`RtpEgress`]: `appsrc (raw) ! videoconvert ! encoder ! payloader ! appsink`.
//!
//! Both are bounded: a full input queue drops the oldest data and counts it, so a slow stage
//! never grows memory. Timestamps are GStreamer running time of the pipeline: the ingest
//! stamps each RTP packet with its arrival, a decoded frame keeps the stamp of its first packet,
//! and the egress keeps the frame's stamp on the packets it makes. So `now - pts` anywhere is
//! the time since the frame's first packet arrived.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use prism_frame::{FrameBuf, PixelFormat};
use std::sync::Mutex;

use super::MediaError;
use super::convert::{frame_into_buffer, pull_frame, video_info};

/// Packets held by the ingest appsrc before the oldest are dropped (about a second of 640x480
/// VP8 at 1 Mbit/s).
pub const INGEST_QUEUE_PACKETS: u64 = 400;
/// Raw frames held by the egress appsrc before the oldest are dropped.
pub const EGRESS_QUEUE_FRAMES: u64 = 2;
/// How long the jitter buffer waits for a missing packet (NACK retransmission has this long).
pub const JITTER_LATENCY_MS: u32 = 100;
/// Frame rate announced to encoders (live input is variable; see `RtpEgress::push_frame`).
pub const NOMINAL_FPS: i32 = 30;
/// RTP payload size the payloaders aim for (room for SRTP and header extensions in 1280 bytes).
pub const RTP_MTU: u32 = 1200;

/// A video codec Prism receives and sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum VideoCodec {
    /// VP8 (RFC 7741).
    Vp8,
    /// H.264 constrained baseline, packetization mode 1 (RFC 6184).
    H264,
}

impl VideoCodec {
    /// Every codec, in Prism's order of preference when it makes an offer.
    pub const ALL: [VideoCodec; 2] = [VideoCodec::Vp8, VideoCodec::H264];

    /// The MIME type in SDP and in the webrtc crate (`video/VP8`).
    pub fn mime_type(self) -> &'static str {
        match self {
            VideoCodec::Vp8 => "video/VP8",
            VideoCodec::H264 => "video/H264",
        }
    }

    /// The codec for a MIME type, case-insensitively.
    pub fn from_mime_type(mime: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.mime_type().eq_ignore_ascii_case(mime))
    }

    fn encoding_name(self) -> &'static str {
        match self {
            VideoCodec::Vp8 => "VP8",
            VideoCodec::H264 => "H264",
        }
    }

    fn depayloader(self) -> &'static str {
        match self {
            VideoCodec::Vp8 => "rtpvp8depay",
            VideoCodec::H264 => "rtph264depay",
        }
    }

    fn decoder(self) -> &'static str {
        match self {
            VideoCodec::Vp8 => "vp8dec",
            VideoCodec::H264 => "avdec_h264",
        }
    }
}

impl std::str::FromStr for VideoCodec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.encoding_name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown video codec {s:?} (use VP8 or H264)"))
    }
}

impl std::fmt::Display for VideoCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.encoding_name())
    }
}

/// Encoder settings of one egress.
#[derive(Debug, Clone, Copy)]
pub struct EncoderSettings {
    /// Target bitrate to start with, bits per second.
    pub bitrate_bps: u32,
    /// Largest distance between keyframes, frames.
    pub keyframe_interval: u32,
    /// Encoder threads (1 keeps many sessions fair on few cores).
    pub threads: u32,
}

impl Default for EncoderSettings {
    fn default() -> Self {
        Self {
            bitrate_bps: 1_000_000,
            keyframe_interval: 300,
            threads: 1,
        }
    }
}

pub(crate) fn make(name: &str, element: &str) -> Result<gst::Element, MediaError> {
    gst::ElementFactory::make(element)
        .name(name)
        .build()
        .map_err(|e| MediaError::Element {
            element: element.to_string(),
            message: e.to_string(),
        })
}

pub(crate) fn link_bin(bin: &gst::Bin, elements: &[&gst::Element]) -> Result<(), MediaError> {
    bin.add_many(elements.iter().copied())
        .and_then(|_| gst::Element::link_many(elements.iter().copied()))
        .map_err(|e| MediaError::Element {
            element: bin.name().to_string(),
            message: format!("cannot link: {e}"),
        })
}

/// Adds `bin` to `pipeline` and starts it with the pipeline.
pub(crate) fn attach(pipeline: &gst::Pipeline, bin: &gst::Bin) -> Result<(), MediaError> {
    pipeline.add(bin).map_err(|e| MediaError::Element {
        element: bin.name().to_string(),
        message: e.to_string(),
    })?;
    bin.sync_state_with_parent()
        .map_err(|e| MediaError::Element {
            element: bin.name().to_string(),
            message: format!("cannot start: {e}"),
        })?;
    Ok(())
}

/// Stops `bin` and takes it out of its pipeline. The last owner may be one of the bin's own
/// streaming threads (a callback), which cannot stop itself, so a short-lived thread does it.
pub(crate) fn detach(bin: &gst::Bin) {
    // From now on the pipeline's own state changes (its release racing this one) leave the
    // branch alone: it cannot be brought back to PAUSED after it went to NULL, and so is
    // never disposed of while running.
    bin.set_locked_state(true);
    let bin = bin.clone();
    let stop = move || {
        let _ = bin.set_state(gst::State::Null);
        if let Some(parent) = bin.parent().and_then(|p| p.downcast::<gst::Bin>().ok()) {
            let _ = parent.remove(&bin);
        }
    };
    if std::thread::Builder::new()
        .name("gst-detach".into())
        .spawn(stop)
        .is_err()
    {
        tracing::warn!("cannot spawn a thread to stop a GStreamer branch");
    }
}

/// `packet` as this leg sends it: our SSRC and payload type, and no header extensions (the
/// source's extension ids mean nothing here, and a stack refuses ids it did not negotiate);
/// the payload goes on untouched.
pub fn restamped(packet: &rtc::rtp::Packet, ssrc: u32, payload_type: u8) -> rtc::rtp::Packet {
    let mut packet = packet.clone();
    packet.header.ssrc = ssrc;
    packet.header.payload_type = payload_type;
    packet.header.extension = false;
    packet.header.extension_profile = 0;
    packet.header.extensions.clear();
    packet.header.extensions_padding = 0;
    packet
}

/// The pipeline's running time now, if it is running.
pub fn running_time(element: &impl IsA<gst::Element>) -> Option<gst::ClockTime> {
    let clock = element.clock()?;
    let base = element.base_time()?;
    clock.time().checked_sub(base)
}

/// A decoded frame on its way through the pipeline.
#[derive(Debug, Clone)]
pub struct VideoFrame {
    /// The pixels.
    pub buf: FrameBuf,
    /// Presentation timestamp: pipeline running time of the frame's arrival, microseconds.
    pub pts_us: u64,
    /// When the decoded frame left the ingest (for the added-latency figure).
    pub decoded_at: Instant,
}

/// Counters of one ingest.
#[derive(Debug, Default)]
pub struct IngestStats {
    /// RTP packets pushed in.
    pub packets: AtomicU64,
    /// Packets dropped because the queue was full.
    pub dropped_packets: AtomicU64,
    /// Frames decoded.
    pub frames: AtomicU64,
}

/// Arrival time of the first packet of each recent RTP timestamp (one per frame).
#[derive(Default)]
struct Arrivals {
    recent: std::collections::VecDeque<(u32, gst::ClockTime)>,
}

/// Frames remembered for re-stamping after the jitter buffer.
const ARRIVALS_KEPT: usize = 256;

impl Arrivals {
    fn note(&mut self, rtp_ts: u32, at: gst::ClockTime) {
        if self.recent.iter().any(|(ts, _)| *ts == rtp_ts) {
            return;
        }
        if self.recent.len() == ARRIVALS_KEPT {
            self.recent.pop_front();
        }
        self.recent.push_back((rtp_ts, at));
    }

    fn get(&self, rtp_ts: u32) -> Option<gst::ClockTime> {
        self.recent
            .iter()
            .rev()
            .find(|(ts, _)| *ts == rtp_ts)
            .map(|(_, at)| *at)
    }
}

fn rtp_timestamp(packet: &[u8]) -> Option<u32> {
    packet
        .get(4..8)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// RTP in, decoded frames out (to a callback on GStreamer's streaming thread).
pub struct RtpIngest {
    arrivals: Arc<Mutex<Arrivals>>,
    bin: gst::Bin,
    appsrc: gst_app::AppSrc,
    appsink: gst_app::AppSink,
    codec: VideoCodec,
    stats: Arc<IngestStats>,
}

impl std::fmt::Debug for RtpIngest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtpIngest")
            .field("name", &self.bin.name())
            .field("codec", &self.codec)
            .finish()
    }
}

pub(crate) fn raw_caps(format: PixelFormat) -> gst::Caps {
    gst::Caps::builder("video/x-raw")
        .field("format", format.gst_name())
        .build()
}

impl RtpIngest {
    /// Builds the branch `name` inside `pipeline` for `codec` with RTP payload type
    /// `payload_type`; `on_frame` gets every decoded frame in `format`.
    pub fn new(
        pipeline: &gst::Pipeline,
        name: &str,
        codec: VideoCodec,
        payload_type: u8,
        format: PixelFormat,
        on_frame: impl Fn(VideoFrame) + Send + Sync + 'static,
    ) -> Result<Self, MediaError> {
        let bin = gst::Bin::with_name(name);
        let caps = gst::Caps::builder("application/x-rtp")
            .field("media", "video")
            .field("clock-rate", 90_000i32)
            .field("encoding-name", codec.encoding_name())
            .field("payload", payload_type as i32)
            .build();
        let appsrc = gst_app::AppSrc::builder()
            .name("rtp-in")
            .caps(&caps)
            .is_live(true)
            .format(gst::Format::Time)
            .do_timestamp(true)
            .max_buffers(INGEST_QUEUE_PACKETS)
            // Bounded by packets, not bytes (the 200 kB default would drop packets
            // long before the queue is full).
            .max_bytes(0)
            .leaky_type(gst_app::AppLeakyType::Downstream)
            .build();
        let jitter = make("jitterbuffer", "rtpjitterbuffer")?;
        jitter.set_property("latency", JITTER_LATENCY_MS);
        jitter.set_property("drop-on-latency", true);
        jitter.set_property_from_str("mode", "none");
        // The jitter buffer re-times packets from their RTP timestamps; put the arrival time
        // of each frame's first packet back, so a frame's pts says when it arrived.
        let arrivals = Arc::new(Mutex::new(Arrivals::default()));
        if let Some(pad) = jitter.static_pad("src") {
            let arrivals = arrivals.clone();
            pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let Some(buffer) = info.buffer_mut() {
                    let ts = buffer.map_readable().ok().and_then(|m| rtp_timestamp(&m));
                    let at = ts.and_then(|ts| crate::sys::lock(&arrivals).get(ts));
                    if let Some(at) = at {
                        buffer.make_mut().set_pts(at);
                    }
                }
                gst::PadProbeReturn::Ok
            });
        }
        let depay = make("depay", codec.depayloader())?;

        let decoder = make("decoder", codec.decoder())?;
        if codec == VideoCodec::Vp8 {
            // One thread per stream: many sessions share few cores.
            decoder.set_property("threads", 1u32);
        }
        if codec == VideoCodec::H264 {
            decoder.set_property("max-threads", 1i32);
            decoder.set_property_from_str("thread-type", "slice");
        }
        let convert = make("convert", "videoconvert")?;
        let appsink = gst_app::AppSink::builder()
            .name("frames-out")
            .caps(&raw_caps(format))
            .sync(false)
            .max_buffers(2)
            .drop(true)
            .build();
        appsink.set_async(false);
        let mut chain: Vec<&gst::Element> = vec![appsrc.upcast_ref(), &jitter, &depay];
        let au = make("au", "capsfilter")?;
        if codec == VideoCodec::H264 {
            // Whole access units: the decoder need not wait for the next frame to see where
            // this one ends (that wait is a frame of latency).
            au.set_property(
                "caps",
                gst::Caps::builder("video/x-h264")
                    .field("stream-format", "avc")
                    .field("alignment", "au")
                    .build(),
            );
            chain.push(&au);
        }
        chain.extend([&decoder, &convert, appsink.upcast_ref()]);
        link_bin(&bin, &chain)?;
        let stats = Arc::new(IngestStats::default());
        let frame_stats = stats.clone();
        appsink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    if let Some((buf, pts)) = pull_frame(sink)? {
                        frame_stats.frames.fetch_add(1, Ordering::Relaxed);
                        on_frame(VideoFrame {
                            buf,
                            pts_us: pts.map(|t| t.useconds()).unwrap_or(0),
                            decoded_at: Instant::now(),
                        });
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        attach(pipeline, &bin)?;
        Ok(Self {
            arrivals,
            bin,
            appsrc,
            appsink,
            codec,
            stats,
        })
    }

    /// The codec this ingest decodes.
    pub fn codec(&self) -> VideoCodec {
        self.codec
    }

    /// Counters.
    pub fn stats(&self) -> &Arc<IngestStats> {
        &self.stats
    }

    /// Pushes one RTP packet (never blocks; a full queue drops the oldest packet). The bytes
    /// become the GStreamer buffer as they are, without a copy.
    pub fn push_rtp(&self, packet: impl AsRef<[u8]> + Send + 'static) {
        self.stats.packets.fetch_add(1, Ordering::Relaxed);
        if self.appsrc.current_level_buffers() >= INGEST_QUEUE_PACKETS {
            self.stats.dropped_packets.fetch_add(1, Ordering::Relaxed);
        }
        if let (Some(ts), Some(now)) = (rtp_timestamp(packet.as_ref()), running_time(&self.appsrc))
        {
            crate::sys::lock(&self.arrivals).note(ts, now);
        }
        let _ = self.appsrc.push_buffer(gst::Buffer::from_slice(packet));
    }

    /// Changes the pixel format of the frames handed out (renegotiates the converter).
    pub fn set_format(&self, format: PixelFormat) {
        self.appsink.set_caps(Some(&raw_caps(format)));
        if let Some(pad) = self.appsink.static_pad("sink") {
            pad.push_event(gst::event::Reconfigure::new());
        }
    }

    /// The branch, for DOT output.
    pub fn bin(&self) -> &gst::Bin {
        &self.bin
    }
}

impl Drop for RtpIngest {
    fn drop(&mut self) {
        detach(&self.bin);
    }
}

/// Counters of one egress.
#[derive(Debug, Default)]
pub struct EgressStats {
    /// Frames pushed in.
    pub frames: AtomicU64,
    /// Frames dropped because the encoder was behind.
    pub dropped_frames: AtomicU64,
    /// RTP packets made.
    pub packets: AtomicU64,
    /// Keyframes forced by a receiver's request.
    pub forced_keyframes: AtomicU64,
    /// The encoder's target bitrate now, bits per second.
    pub bitrate_bps: AtomicU32,
}

/// Which input pts each encoded frame came from. Encoders may re-time their output (x264enc
/// counts from its first frame in a segment starting at 1000 h); frames leave an encoder in
/// the order they entered (no B-frames here), so the n-th output is the n-th input.
#[derive(Default)]
struct PtsMap {
    inputs: std::collections::VecDeque<gst::ClockTime>,
    outputs: std::collections::VecDeque<(gst::ClockTime, gst::ClockTime)>,
}

/// Frames remembered on each side of the encoder.
const PTS_MAP_KEPT: usize = 64;

impl PtsMap {
    fn entered(&mut self, pts: gst::ClockTime) {
        if self.inputs.len() == PTS_MAP_KEPT {
            self.inputs.pop_front();
        }
        self.inputs.push_back(pts);
    }

    fn left(&mut self, out: gst::ClockTime) {
        if let Some(input) = self.inputs.pop_front() {
            if self.outputs.len() == PTS_MAP_KEPT {
                self.outputs.pop_front();
            }
            self.outputs.push_back((out, input));
        }
    }

    fn input_of(&self, out: gst::ClockTime) -> Option<gst::ClockTime> {
        self.outputs
            .iter()
            .rev()
            .find(|(o, _)| *o == out)
            .map(|(_, i)| *i)
    }
}

/// Raw frames in, RTP packets out (to a callback on GStreamer's streaming thread).
pub struct RtpEgress {
    bin: gst::Bin,
    appsrc: gst_app::AppSrc,
    encoder: gst::Element,
    codec: VideoCodec,
    caps: Mutex<Option<(PixelFormat, u32, u32, gst_video::VideoInfo)>>,
    stats: Arc<EgressStats>,
}

impl std::fmt::Debug for RtpEgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtpEgress")
            .field("name", &self.bin.name())
            .field("codec", &self.codec)
            .finish()
    }
}

fn encoder(codec: VideoCodec, settings: &EncoderSettings) -> Result<gst::Element, MediaError> {
    let enc = match codec {
        VideoCodec::Vp8 => {
            let enc = make("encoder", "vp8enc")?;
            enc.set_property("deadline", 1i64);
            enc.set_property("cpu-used", 16i32);
            enc.set_property_from_str("end-usage", "cbr");
            enc.set_property("lag-in-frames", 0i32);
            enc.set_property("threads", settings.threads as i32);
            enc.set_property("keyframe-max-dist", settings.keyframe_interval as i32);
            enc.set_property_from_str("error-resilient", "default");
            enc.set_property("target-bitrate", settings.bitrate_bps as i32);
            enc
        }
        VideoCodec::H264 => {
            let enc = make("encoder", "x264enc")?;
            enc.set_property_from_str("tune", "zerolatency");
            enc.set_property_from_str("speed-preset", "ultrafast");
            enc.set_property("threads", settings.threads);
            enc.set_property("key-int-max", settings.keyframe_interval);
            enc.set_property("rc-lookahead", 0i32);
            enc.set_property("sync-lookahead", 0i32);
            enc.set_property("bframes", 0u32);
            enc.set_property("bitrate", (settings.bitrate_bps / 1000).max(1));
            enc
        }
    };
    Ok(enc)
}

impl RtpEgress {
    /// Builds the branch `name` inside `pipeline`; `on_rtp` gets every RTP packet made, with
    /// the pts the frame it carries had when it came in (its arrival running time).
    pub fn new(
        pipeline: &gst::Pipeline,
        name: &str,
        codec: VideoCodec,
        payload_type: u8,
        settings: EncoderSettings,
        on_rtp: impl Fn(&[u8], Option<gst::ClockTime>) + Send + Sync + 'static,
    ) -> Result<Self, MediaError> {
        let bin = gst::Bin::with_name(name);
        let appsrc = gst_app::AppSrc::builder()
            .name("frames-in")
            .is_live(true)
            .format(gst::Format::Time)
            .do_timestamp(false)
            .max_buffers(EGRESS_QUEUE_FRAMES)
            // Bounded by buffers, not bytes (the 200 kB default is less than one
            // 640x480 frame, and would drop frames before the queue is full).
            .max_bytes(0)
            .leaky_type(gst_app::AppLeakyType::Downstream)
            .build();
        let convert = make("convert", "videoconvert")?;
        let to_i420 = make("i420", "capsfilter")?;
        to_i420.set_property("caps", raw_caps(PixelFormat::I420));
        let enc = encoder(codec, &settings)?;
        let pts_map = Arc::new(Mutex::new(PtsMap::default()));
        for (pad, entering) in [("sink", true), ("src", false)] {
            let map = pts_map.clone();
            if let Some(pad) = enc.static_pad(pad) {
                pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                    if let Some(pts) = info.buffer().and_then(|b| b.pts()) {
                        let mut map = crate::sys::lock(&map);
                        if entering {
                            map.entered(pts);
                        } else {
                            map.left(pts);
                        }
                    }
                    gst::PadProbeReturn::Ok
                });
            }
        }
        let sink_map = pts_map.clone();
        let mut chain: Vec<gst::Element> =
            vec![appsrc.clone().upcast(), convert, to_i420, enc.clone()];
        let pay = match codec {
            VideoCodec::Vp8 => {
                let pay = make("pay", "rtpvp8pay")?;
                pay.set_property_from_str("picture-id-mode", "15-bit");
                pay
            }
            VideoCodec::H264 => {
                let profile = make("profile", "capsfilter")?;
                profile.set_property(
                    "caps",
                    gst::Caps::builder("video/x-h264")
                        .field("profile", "constrained-baseline")
                        .build(),
                );
                chain.push(profile);
                let pay = make("pay", "rtph264pay")?;
                pay.set_property("config-interval", -1i32);
                pay.set_property_from_str("aggregate-mode", "zero-latency");
                pay
            }
        };
        pay.set_property("pt", payload_type as u32);
        pay.set_property("mtu", RTP_MTU);
        chain.push(pay);
        let appsink = gst_app::AppSink::builder()
            .name("rtp-out")
            .sync(false)
            .build();
        appsink.set_async(false);
        chain.push(appsink.clone().upcast());
        link_bin(&bin, &chain.iter().collect::<Vec<_>>())?;
        let stats = Arc::new(EgressStats::default());
        stats
            .bitrate_bps
            .store(settings.bitrate_bps, Ordering::Relaxed);
        let rtp_stats = stats.clone();
        appsink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let emit = |buffer: &gst::BufferRef| {
                        if let Ok(map) = buffer.map_readable() {
                            rtp_stats.packets.fetch_add(1, Ordering::Relaxed);
                            let pts_in = buffer
                                .pts()
                                .and_then(|out| crate::sys::lock(&sink_map).input_of(out));
                            on_rtp(map.as_slice(), pts_in);
                        }
                    };
                    if let Some(list) = sample.buffer_list() {
                        list.iter().for_each(emit);
                    } else if let Some(buffer) = sample.buffer() {
                        emit(buffer);
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        attach(pipeline, &bin)?;
        Ok(Self {
            bin,
            appsrc,
            encoder: enc,
            codec,
            caps: Mutex::new(None),
            stats,
        })
    }

    /// The codec this egress encodes.
    pub fn codec(&self) -> VideoCodec {
        self.codec
    }

    /// Counters.
    pub fn stats(&self) -> &Arc<EgressStats> {
        &self.stats
    }

    /// Encodes one frame (never blocks; a full queue drops the oldest frame). The frame's
    /// pixels move into the GStreamer buffer without a copy when the strides allow.
    pub fn push_frame(&self, frame: VideoFrame) -> Result<(), MediaError> {
        self.stats.frames.fetch_add(1, Ordering::Relaxed);
        let (format, width, height) = (frame.buf.format(), frame.buf.width(), frame.buf.height());
        let info = {
            let mut caps = crate::sys::lock(&self.caps);
            match &*caps {
                Some((f, w, h, info)) if (*f, *w, *h) == (format, width, height) => info.clone(),
                _ => {
                    // A nominal rate: with "variable" (0/1) x264 waits for the next frame to
                    // learn this one's duration, a frame of latency. Timing still follows pts.
                    let info =
                        video_info(format, width, height, (NOMINAL_FPS, 1)).map_err(|message| {
                            MediaError::Element {
                                element: "egress".into(),
                                message,
                            }
                        })?;
                    if let Ok(c) = info.to_caps() {
                        self.appsrc.set_caps(Some(&c));
                    }
                    *caps = Some((format, width, height, info.clone()));
                    info
                }
            }
        };
        let mut buffer =
            frame_into_buffer(frame.buf, &info).map_err(|message| MediaError::Element {
                element: "egress".into(),
                message,
            })?;
        buffer
            .get_mut()
            .expect("invariant: a new buffer is writable")
            .set_pts(gst::ClockTime::from_useconds(frame.pts_us));
        if self.appsrc.current_level_buffers() >= EGRESS_QUEUE_FRAMES {
            self.stats.dropped_frames.fetch_add(1, Ordering::Relaxed);
        }
        self.appsrc
            .push_buffer(buffer)
            .map(|_| ())
            .map_err(|e| MediaError::Element {
                element: "egress".into(),
                message: format!("encoder refused a frame: {e:?}"),
            })
    }

    /// Makes the next encoded frame a keyframe (a receiver sent PLI or FIR).
    pub fn force_keyframe(&self) {
        self.stats.forced_keyframes.fetch_add(1, Ordering::Relaxed);
        let event = gst_video::UpstreamForceKeyUnitEvent::builder()
            .all_headers(true)
            .build();
        if let Some(pad) = self.encoder.static_pad("src") {
            pad.send_event(event);
        }
    }

    /// Sets the encoder's target bitrate.
    pub fn set_bitrate(&self, bps: u32) {
        let old = self.stats.bitrate_bps.swap(bps, Ordering::Relaxed);
        if old == bps {
            return;
        }
        match self.codec {
            VideoCodec::Vp8 => self.encoder.set_property("target-bitrate", bps as i32),
            VideoCodec::H264 => self.encoder.set_property("bitrate", (bps / 1000).max(1)),
        }
    }

    /// The branch, for DOT output.
    pub fn bin(&self) -> &gst::Bin {
        &self.bin
    }
}

impl Drop for RtpEgress {
    fn drop(&mut self) {
        detach(&self.bin);
    }
}
