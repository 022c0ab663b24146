//! A minimal WebRTC client for loopback tests and `prism bench sessions`: sends a GStreamer
//! test pattern (VP8 or H.264) to a peer and decodes what comes back, measuring it.
//!
//! It uses the `webrtc` crate directly (its own peer connection, tracks and signalling), not
//! [`super::WebRtcEndpoint`], so a test of the server is not the server testing itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use prism_frame::PixelFormat;
use rtc::peer_connection::configuration::interceptor_registry::{
    Registry, register_default_interceptors,
};
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::shared::marshal::{Marshal, Unmarshal};
use tokio::sync::{mpsc, watch};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
    RTCPeerConnectionIceEvent, RTCPeerConnectionState, RTCSessionDescription,
};
use webrtc::runtime::TokioRuntime;

use super::engine::{opus_codec_parameters, video_codec_parameters};
use super::{WebRtcError, local_track};
use crate::media::rtp::{RtpIngest, VideoCodec, VideoFrame, running_time};
use crate::pipeline::IceCandidate;

/// What the client sends.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Codec to send and to offer.
    pub codec: VideoCodec,
    /// Frame size.
    pub width: u32,
    /// Frame size.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// `videotestsrc` pattern (e.g. `smpte`, `ball`).
    pub pattern: String,
    /// Send this picture (any format GStreamer decodes) as a still camera instead of the
    /// pattern.
    pub picture: Option<std::path::PathBuf>,
    /// Local UDP address to bind.
    pub bind: String,
    /// Encoder bitrate, bits per second.
    pub bitrate_bps: u32,
    /// Decode what comes back (pixel checks); without, frames are counted from RTP marker
    /// bits only, which keeps a load generator cheap.
    pub decode: bool,
    /// Also send Opus (a tone).
    pub audio: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            codec: VideoCodec::Vp8,
            width: 320,
            height: 240,
            fps: 30,
            pattern: "smpte".into(),
            picture: None,
            bind: "127.0.0.1:0".into(),
            bitrate_bps: 600_000,
            decode: true,
            audio: false,
        }
    }
}

/// What the client measured on the frames it got back.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReceivedStats {
    /// Frames decoded.
    pub frames: u64,
    /// Frames whose pixels are all gray (R=G=B within the tolerance).
    pub gray_frames: u64,
    /// Mean colour of the last frame.
    pub last_mean_rgb: [f64; 3],
    /// Largest channel difference seen in the last frame.
    pub last_max_chroma: u8,
    /// Keyframes that started arriving.
    pub keyframes: u64,
    /// Frame size of the last frame.
    pub last_size: (u32, u32),
    /// Mean red level of each frame, in order (the first few thousand).
    pub means: Vec<u8>,
}

/// A channel difference up to this counts as gray (VP8/H.264 chroma noise at 4:2:0).
pub const GRAY_TOLERANCE: u8 = 12;

fn analyse(frame: &VideoFrame, stats: &mut ReceivedStats) {
    let buf = &frame.buf;
    let (w, h) = (buf.width(), buf.height());
    let mut sum = [0u64; 3];
    let mut n = 0u64;
    let mut max_chroma = 0u8;
    for y in (2..h.saturating_sub(2)).step_by(4) {
        for x in (2..w.saturating_sub(2)).step_by(4) {
            if let Some(px) = buf.pixel(x, y) {
                let (r, g, b) = (px[0], px[1], px[2]);
                sum[0] += r as u64;
                sum[1] += g as u64;
                sum[2] += b as u64;
                n += 1;
                let d = r.abs_diff(g).max(g.abs_diff(b)).max(r.abs_diff(b));
                max_chroma = max_chroma.max(d);
            }
        }
    }
    stats.frames += 1;
    if n > 0 && max_chroma <= GRAY_TOLERANCE {
        stats.gray_frames += 1;
    }
    let n = n.max(1) as f64;
    stats.last_mean_rgb = [sum[0] as f64 / n, sum[1] as f64 / n, sum[2] as f64 / n];
    if stats.means.len() < 10_000 {
        stats.means.push(stats.last_mean_rgb[0].round() as u8);
    }
    stats.last_max_chroma = max_chroma;
    stats.last_size = (w, h);
}

/// Whether an RTP payload starts a keyframe.
pub fn starts_keyframe(codec: VideoCodec, payload: &[u8]) -> bool {
    match codec {
        VideoCodec::Vp8 => {
            // RFC 7741 payload descriptor, then the VP8 frame tag (bit 0 = 0: keyframe).
            let Some(&first) = payload.first() else {
                return false;
            };
            let start = first & 0x10 != 0 && first & 0x07 == 0;
            if !start {
                return false;
            }
            let mut i = 1;
            if first & 0x80 != 0 {
                let Some(&x) = payload.get(1) else {
                    return false;
                };
                i = 2;
                if x & 0x80 != 0 {
                    // PictureID, 7 or 15 bits.
                    i += if payload.get(i).is_some_and(|b| b & 0x80 != 0) {
                        2
                    } else {
                        1
                    };
                }
                if x & 0x40 != 0 {
                    i += 1;
                }
                if x & 0x30 != 0 {
                    i += 1;
                }
            }
            payload.get(i).is_some_and(|tag| tag & 0x01 == 0)
        }
        VideoCodec::H264 => {
            let Some(&nal) = payload.first() else {
                return false;
            };
            match nal & 0x1f {
                5 | 7 => true,
                // STAP-A: look at the aggregated NAL units.
                24 => {
                    let mut i = 1;
                    while i + 2 < payload.len() {
                        let size = u16::from_be_bytes([payload[i], payload[i + 1]]) as usize;
                        if matches!(payload[i + 2] & 0x1f, 5 | 7) {
                            return true;
                        }
                        i += 2 + size;
                    }
                    false
                }
                // FU-A start of an IDR.
                28 => payload
                    .get(1)
                    .is_some_and(|h| h & 0x80 != 0 && h & 0x1f == 5),
                _ => false,
            }
        }
    }
}

/// Payload checksums kept per direction.
const AUDIO_KEPT: usize = 5000;

fn note_payload(list: &Mutex<Vec<u64>>, payload: &[u8]) {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    payload.hash(&mut h);
    let mut list = crate::sys::lock(list);
    if list.len() < AUDIO_KEPT {
        list.push(h.finish());
    }
}

struct State {
    received: Mutex<ReceivedStats>,
    frames_sent: AtomicU64,
    packets_sent: AtomicU64,
    packets_received: AtomicU64,
    candidates: mpsc::UnboundedSender<IceCandidate>,
    gathered: watch::Sender<bool>,
    connected: watch::Sender<Option<RTCPeerConnectionState>>,
    remote_video: Mutex<Option<Arc<dyn TrackRemote>>>,
    ingest: Mutex<Option<Arc<RtpIngest>>>,
    closed: std::sync::atomic::AtomicBool,
    decode: bool,
    /// Checksums of the Opus payloads sent and received (the first few thousand).
    audio_sent: Mutex<Vec<u64>>,
    audio_received: Mutex<Vec<u64>>,
    gst: gst::Pipeline,
}

struct Handler {
    state: Arc<State>,
    tokio: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            let _ = self.state.candidates.send(init.into());
        }
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.state.gathered.send(true);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.state.connected.send(Some(state));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let state = self.state.clone();
        self.tokio.spawn(async move {
            if track.kind().await != RtpCodecKind::Video {
                while let Some(event) = track.poll().await {
                    if let TrackRemoteEvent::OnRtpPacket(packet) = event {
                        note_payload(&state.audio_received, &packet.payload);
                    }
                }
                return;
            }
            *crate::sys::lock(&state.remote_video) = Some(track.clone());
            while let Some(event) = track.poll().await {
                let TrackRemoteEvent::OnRtpPacket(packet) = event else {
                    continue;
                };
                if state.closed.load(Ordering::Acquire) {
                    break;
                }
                state.packets_received.fetch_add(1, Ordering::Relaxed);
                if !state.decode {
                    if packet.header.marker {
                        crate::sys::lock(&state.received).frames += 1;
                    }
                    continue;
                }
                let existing = crate::sys::lock(&state.ingest).as_ref().map(|i| i.codec());
                let codec = match existing {
                    Some(codec) => codec,
                    None => {
                        let codec = track
                            .codec(packet.header.ssrc)
                            .await
                            .and_then(|c| VideoCodec::from_mime_type(&c.mime_type));
                        let Some(codec) = codec else { continue };
                        let stats = state.clone();
                        let ingest = RtpIngest::new(
                            &state.gst,
                            "client-in",
                            codec,
                            packet.header.payload_type,
                            PixelFormat::Rgba,
                            move |frame| analyse(&frame, &mut crate::sys::lock(&stats.received)),
                        );
                        match ingest {
                            Ok(i) => *crate::sys::lock(&state.ingest) = Some(Arc::new(i)),
                            Err(e) => {
                                tracing::error!("client cannot decode {codec}: {e}");
                                return;
                            }
                        }
                        codec
                    }
                };
                if starts_keyframe(codec, &packet.payload) {
                    crate::sys::lock(&state.received).keyframes += 1;
                }
                let ingest = crate::sys::lock(&state.ingest).clone();
                if let (Ok(bytes), Some(ingest)) = (packet.marshal(), ingest) {
                    ingest.push_rtp(bytes);
                }
            }
        });
    }
}

/// A loopback WebRTC client.
pub struct LoopbackClient {
    options: ClientOptions,
    pc: Arc<dyn PeerConnection>,
    state: Arc<State>,
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    audio_track: Arc<TrackLocalStaticRTP>,
    audio_ssrc: u32,
    candidates: Mutex<Option<mpsc::UnboundedReceiver<IceCandidate>>>,
    gathered: watch::Receiver<bool>,
    connected: watch::Receiver<Option<RTCPeerConnectionState>>,
    source: Mutex<Option<gst::Pipeline>>,
    audio_source: Mutex<Option<gst::Pipeline>>,
    tokio: tokio::runtime::Handle,
}

impl std::fmt::Debug for LoopbackClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopbackClient")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn err(e: impl std::fmt::Display) -> WebRtcError {
    WebRtcError::Setup(e.to_string())
}

impl LoopbackClient {
    /// A client offering `options.codec` video (send and receive) and Opus.
    pub async fn new(options: ClientOptions) -> Result<Self, WebRtcError> {
        crate::media::init().map_err(err)?;
        let mut media_engine = MediaEngine::default();
        let video = video_codec_parameters(options.codec);
        media_engine
            .register_codec(video.clone(), RtpCodecKind::Video)
            .map_err(err)?;
        media_engine
            .register_codec(opus_codec_parameters(), RtpCodecKind::Audio)
            .map_err(err)?;
        let registry =
            register_default_interceptors(Registry::new(), &mut media_engine).map_err(err)?;
        let (candidates_tx, candidates_rx) = mpsc::unbounded_channel();
        let (gathered_tx, gathered) = watch::channel(false);
        let (connected_tx, connected) = watch::channel(None);
        let gst = gst::Pipeline::with_name("client");
        gst.set_state(gst::State::Playing).map_err(err)?;
        let state = Arc::new(State {
            received: Mutex::new(ReceivedStats::default()),
            frames_sent: AtomicU64::new(0),
            packets_sent: AtomicU64::new(0),
            packets_received: AtomicU64::new(0),
            candidates: candidates_tx,
            gathered: gathered_tx,
            connected: connected_tx,
            remote_video: Mutex::new(None),
            ingest: Mutex::new(None),
            closed: std::sync::atomic::AtomicBool::new(false),
            decode: options.decode,
            audio_sent: Mutex::new(Vec::new()),
            audio_received: Mutex::new(Vec::new()),
            gst,
        });
        let tokio = tokio::runtime::Handle::current();
        let pc = PeerConnectionBuilder::new()
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .with_handler(Arc::new(Handler {
                state: state.clone(),
                tokio: tokio.clone(),
            }))
            .with_runtime(Arc::new(TokioRuntime))
            .with_udp_addrs(vec![options.bind.clone()])
            .build()
            .await
            .map_err(err)?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        let ssrc = 0x5eed_0000 | (std::process::id() & 0xffff);
        let track = local_track(RtpCodecKind::Video, ssrc, video.rtp_codec.clone());
        pc.add_track(track.clone() as Arc<dyn TrackLocal>)
            .await
            .map_err(err)?;
        let audio_ssrc = ssrc ^ 0xa0d1_0000;
        let audio_track = local_track(
            RtpCodecKind::Audio,
            audio_ssrc,
            opus_codec_parameters().rtp_codec,
        );
        pc.add_track(audio_track.clone() as Arc<dyn TrackLocal>)
            .await
            .map_err(err)?;
        Ok(Self {
            options,
            pc,
            state,
            track,
            ssrc,
            audio_track,
            audio_ssrc,
            candidates: Mutex::new(Some(candidates_rx)),
            gathered,
            connected,
            source: Mutex::new(None),
            audio_source: Mutex::new(None),
            tokio,
        })
    }

    /// Makes an offer. With `wait_for_candidates` the offer carries every candidate (no
    /// trickle); without, candidates come from [`LoopbackClient::take_candidates`].
    pub async fn create_offer(&self, wait_for_candidates: bool) -> Result<String, WebRtcError> {
        let offer = self.pc.create_offer(None).await.map_err(err)?;
        self.pc.set_local_description(offer).await.map_err(err)?;
        if wait_for_candidates {
            let mut gathered = self.gathered.clone();
            let _ = tokio::time::timeout(Duration::from_secs(10), gathered.wait_for(|g| *g)).await;
        }
        self.pc
            .local_description()
            .await
            .map(|d| d.sdp)
            .ok_or_else(|| err("no local description"))
    }

    /// Takes the peer's answer.
    pub async fn set_answer(&self, sdp: &str) -> Result<(), WebRtcError> {
        let answer = RTCSessionDescription::answer(sdp.to_string()).map_err(err)?;
        self.pc.set_remote_description(answer).await.map_err(err)
    }

    /// The stream of local candidates (once).
    pub fn take_candidates(&self) -> Option<mpsc::UnboundedReceiver<IceCandidate>> {
        crate::sys::lock(&self.candidates).take()
    }

    /// Adds a remote candidate.
    pub async fn add_ice_candidate(&self, c: IceCandidate) -> Result<(), WebRtcError> {
        self.pc.add_ice_candidate(c.into()).await.map_err(err)
    }

    /// Waits until the connection is up.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), WebRtcError> {
        let mut rx = self.connected.clone();
        let ok = tokio::time::timeout(
            timeout,
            rx.wait_for(|s| {
                matches!(
                    s,
                    Some(RTCPeerConnectionState::Connected | RTCPeerConnectionState::Failed)
                )
            }),
        )
        .await;
        match ok {
            Ok(Ok(s)) if *s == Some(RTCPeerConnectionState::Connected) => Ok(()),
            Ok(Ok(s)) => Err(err(format!("connection ended as {s:?}"))),
            _ => Err(err("timed out waiting for the connection")),
        }
    }

    /// Starts sending the test pattern.
    pub fn start_sending(&self) -> Result<(), WebRtcError> {
        let o = &self.options;
        let encoder = match o.codec {
            VideoCodec::Vp8 => format!(
                "vp8enc deadline=1 cpu-used=8 end-usage=cbr lag-in-frames=0 threads=1 \
                 keyframe-max-dist=60 target-bitrate={} ! rtpvp8pay pt=96 mtu=1200 picture-id-mode=15-bit",
                o.bitrate_bps
            ),
            VideoCodec::H264 => format!(
                "x264enc tune=zerolatency speed-preset=ultrafast threads=1 key-int-max=60 bitrate={} \
                 ! video/x-h264,profile=constrained-baseline ! rtph264pay pt=102 mtu=1200 \
                 config-interval=-1 aggregate-mode=zero-latency",
                o.bitrate_bps / 1000
            ),
        };
        let source = match &o.picture {
            Some(path) => format!(
                "filesrc location=\"{}\" ! decodebin ! videoconvert ! videoscale \
                 ! video/x-raw,width={},height={} ! imagefreeze is-live=true",
                path.display().to_string().replace('"', "\\\""),
                o.width,
                o.height
            ),
            None => format!("videotestsrc is-live=true pattern={}", o.pattern),
        };
        let desc = format!(
            "{source} ! videoconvert ! video/x-raw,format=I420,width={},height={},framerate={}/1 \
             ! identity name=count ! {encoder} ! appsink name=rtp sync=false",
            o.width, o.height, o.fps
        );
        let pipeline = gst::parse::launch(&desc)
            .map_err(err)?
            .downcast::<gst::Pipeline>()
            .map_err(|_| err("not a pipeline"))?;
        let count = pipeline.by_name("count").ok_or_else(|| err("no counter"))?;
        let state = self.state.clone();
        count.connect("handoff", false, move |_| {
            state.frames_sent.fetch_add(1, Ordering::Relaxed);
            None
        });
        count.set_property("signal-handoffs", true);
        let state = self.state.clone();
        self.pump(&pipeline, self.track.clone(), self.ssrc, move |_| {
            state.packets_sent.fetch_add(1, Ordering::Relaxed);
        })?;
        pipeline.set_state(gst::State::Playing).map_err(err)?;
        *crate::sys::lock(&self.source) = Some(pipeline);
        if self.options.audio {
            self.start_audio()?;
        }
        Ok(())
    }

    /// Sends the RTP packets `pipeline` makes (its appsink `rtp`) on `track` as `ssrc`;
    /// `sent` sees the payload of each packet sent.
    fn pump(
        &self,
        pipeline: &gst::Pipeline,
        track: Arc<TrackLocalStaticRTP>,
        ssrc: u32,
        sent: impl Fn(&[u8]) + Send + 'static,
    ) -> Result<(), WebRtcError> {
        let sink = pipeline
            .by_name("rtp")
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .ok_or_else(|| err("no appsink"))?;
        let (tx, mut rx) = mpsc::channel::<rtp::Packet>(1024);
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    if let Some(buffer) = sample.buffer()
                        && let Ok(map) = buffer.map_readable()
                        && let Ok(mut p) = rtp::Packet::unmarshal(&mut map.as_slice())
                    {
                        p.header.ssrc = ssrc;
                        let _ = tx.try_send(p);
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        self.tokio.spawn(async move {
            while let Some(p) = rx.recv().await {
                let payload = p.payload.clone();
                if track.write_rtp(p).await.is_ok() {
                    sent(&payload);
                }
            }
        });
        Ok(())
    }

    /// Sends a live Opus tone on the audio track.
    fn start_audio(&self) -> Result<(), WebRtcError> {
        let pipeline = gst::parse::launch(
            "audiotestsrc is-live=true wave=sine freq=440 ! audio/x-raw,rate=48000,channels=2 \
             ! opusenc ! rtpopuspay pt=111 ! appsink name=rtp sync=false",
        )
        .map_err(err)?
        .downcast::<gst::Pipeline>()
        .map_err(|_| err("not a pipeline"))?;
        let state = self.state.clone();
        self.pump(
            &pipeline,
            self.audio_track.clone(),
            self.audio_ssrc,
            move |payload| {
                note_payload(&state.audio_sent, payload);
            },
        )?;
        pipeline.set_state(gst::State::Playing).map_err(err)?;
        *crate::sys::lock(&self.audio_source) = Some(pipeline);
        Ok(())
    }

    /// Sends one pre-encoded frame (its RTP packets), re-stamped with this client's SSRC.
    pub async fn send_encoded_frame(&self, packets: &[Vec<u8>]) {
        self.state.frames_sent.fetch_add(1, Ordering::Relaxed);
        for bytes in packets {
            if let Ok(mut p) = rtp::Packet::unmarshal(&mut bytes.as_slice()) {
                p.header.ssrc = self.ssrc;
                if self.track.write_rtp(p).await.is_ok() {
                    self.state.packets_sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Stops sending.
    pub fn stop_sending(&self) {
        for source in [&self.source, &self.audio_source] {
            if let Some(p) = crate::sys::lock(source).take() {
                let _ = p.set_state(gst::State::Null);
            }
        }
    }

    /// Sends one RTCP packet about the video received from the peer, made for its SSRC.
    async fn feedback(
        &self,
        make: impl FnOnce(u32) -> Box<dyn rtc::rtcp::Packet>,
    ) -> Result<(), WebRtcError> {
        let track = crate::sys::lock(&self.state.remote_video).clone();
        let track = track.ok_or_else(|| err("no video received yet"))?;
        let media_ssrc = track.ssrcs().await.first().copied().unwrap_or(0);
        track.write_rtcp(vec![make(media_ssrc)]).await.map_err(err)
    }

    /// Asks the peer for a keyframe.
    pub async fn send_pli(&self) -> Result<(), WebRtcError> {
        let sender_ssrc = self.ssrc;
        self.feedback(|media_ssrc| {
            Box::new(PictureLossIndication {
                sender_ssrc,
                media_ssrc,
            })
        })
        .await
    }

    /// Tells the peer the most this receiver can take (REMB), bits per second.
    pub async fn send_remb(&self, bps: u32) -> Result<(), WebRtcError> {
        use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
        let sender_ssrc = self.ssrc;
        self.feedback(|media_ssrc| {
            Box::new(ReceiverEstimatedMaximumBitrate {
                sender_ssrc,
                bitrate: bps as f32,
                ssrcs: vec![media_ssrc],
            })
        })
        .await
    }

    /// Frames handed to the encoder so far.
    pub fn frames_sent(&self) -> u64 {
        self.state.frames_sent.load(Ordering::Relaxed)
    }

    /// RTP packets received so far.
    pub fn packets_received(&self) -> u64 {
        self.state.packets_received.load(Ordering::Relaxed)
    }

    /// Opus packets sent, and how many of them came back byte for byte.
    pub fn audio_echo(&self) -> (usize, usize) {
        let sent = crate::sys::lock(&self.state.audio_sent).clone();
        let received: std::collections::HashSet<u64> = crate::sys::lock(&self.state.audio_received)
            .iter()
            .copied()
            .collect();
        let back = sent.iter().filter(|h| received.contains(h)).count();
        (sent.len(), back)
    }

    /// What came back so far.
    pub fn received(&self) -> ReceivedStats {
        crate::sys::lock(&self.state.received).clone()
    }

    /// The client pipeline's running time (for latency figures).
    pub fn running_time(&self) -> Option<gst::ClockTime> {
        running_time(&self.state.gst)
    }

    /// Closes the connection and stops everything.
    pub async fn close(&self) {
        self.stop_sending();
        self.state.closed.store(true, Ordering::Release);
        let _ = self.state.gst.set_state(gst::State::Null);
        crate::sys::lock(&self.state.ingest).take();
        let _ = self.pc.close().await;
    }
}
