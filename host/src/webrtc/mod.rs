//! `WebRtcEndpoint`: terminates one WebRTC peer connection (crate `webrtc`: ICE, DTLS, SRTP).
//!
//! * Received video goes RTP → [`RtpIngest`] (jitter buffer, depay, decode) → decoded frames to
//!   the connected sinks. Received Opus goes, untouched, to the connected audio sinks.
//! * Video from the connected source goes frames → [`RtpEgress`] (encode, payload) → RTP to the
//!   peer; Opus from the source is re-stamped with this peer's SSRC and payload type.
//! * RTCP: a PLI/FIR from the peer forces a keyframe; the encoder's bitrate follows the
//!   congestion controller (TWCC + GCC) and any REMB, within [`WebRtcConfig`]'s bounds; NACKs
//!   are answered by the crate's responder; a PLI goes to the peer when decoding starts.
//! * Signalling: `process_offer` / `generate_offer` + `process_answer`; trickle ICE both ways
//!   (candidates found before `gather_candidates` are held back, as in Kurento).

pub mod client;
pub mod engine;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use gstreamer as gst;
use prism_frame::PixelFormat;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::shared::marshal::{Marshal, Unmarshal};
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceCandidateInit,
    RTCIceConnectionState, RTCIceGatheringState, RTCPeerConnectionIceEvent, RTCPeerConnectionState,
    RTCSessionDescription,
};
use webrtc::rtp_transceiver::RtpSender;
use webrtc::runtime::TokioRuntime;

use crate::media::rtp::{
    EncoderSettings, RtpEgress, RtpIngest, VideoCodec, VideoFrame, running_time,
};
use crate::pipeline::graph::take_frame;
use crate::pipeline::{
    AudioSink, Direction, ElementId, EventBus, EventKind, FlowMeter, IceCandidate, LatencyWindow,
    MediaElement, MediaPipeline, MediaType, Outputs, VideoSink,
};
use crate::sys::lock;

/// RTP packets queued towards the peer connection before new ones are dropped.
const SEND_QUEUE: usize = 1024;
/// How often the encoder bitrate and the decoder's keyframe needs are checked.
const TICK: Duration = Duration::from_millis(200);
/// Keyframe requests to the remote sender are at most this frequent.
const PLI_INTERVAL: Duration = Duration::from_millis(1000);

impl From<RTCIceCandidateInit> for IceCandidate {
    fn from(init: RTCIceCandidateInit) -> Self {
        Self {
            candidate: init.candidate,
            sdp_mid: init.sdp_mid,
            sdp_mline_index: init.sdp_mline_index,
        }
    }
}

impl From<IceCandidate> for RTCIceCandidateInit {
    fn from(c: IceCandidate) -> Self {
        RTCIceCandidateInit {
            candidate: c.candidate,
            sdp_mid: c.sdp_mid,
            sdp_mline_index: c.sdp_mline_index,
            ..Default::default()
        }
    }
}

/// WebRTC settings.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebRtcConfig {
    /// Local UDP addresses to gather host candidates on (`IP:0` picks a free port).
    pub bind_addrs: Vec<String>,
    /// Encoder bitrate floor, bits per second.
    pub min_bitrate_bps: u32,
    /// Encoder bitrate ceiling, bits per second.
    pub max_bitrate_bps: u32,
    /// Encoder bitrate at the start of a call.
    pub start_bitrate_bps: u32,
    /// Video codecs, in order of preference.
    pub codecs: Vec<VideoCodec>,
    /// Encoder threads per outgoing stream.
    pub encoder_threads: u32,
}

impl Default for WebRtcConfig {
    fn default() -> Self {
        Self {
            bind_addrs: vec!["0.0.0.0:0".into()],
            min_bitrate_bps: 150_000,
            max_bitrate_bps: 3_000_000,
            start_bitrate_bps: 800_000,
            codecs: VideoCodec::ALL.to_vec(),
            encoder_threads: 1,
        }
    }
}

impl<'de> serde::Deserialize<'de> for VideoCodec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Why a WebRTC operation failed. [`WebRtcError::kurento_code`] maps it to the protocol.
#[derive(Debug, thiserror::Error)]
pub enum WebRtcError {
    /// The SDP could not be parsed.
    #[error("malformed SDP: {0}")]
    BadSdp(String),
    /// The SDP has no video section.
    #[error("the SDP offers no video (m=video); a WebRtcEndpoint needs video")]
    NoVideo,
    /// None of the offered video codecs is one Prism handles.
    #[error("no supported video codec offered (offered: {offered}; supported: {supported})")]
    UnsupportedCodec {
        /// What the peer offered.
        offered: String,
        /// What Prism supports.
        supported: String,
    },
    /// Offer/answer failed (wrong state, mismatched answer).
    #[error("SDP negotiation failed: {0}")]
    Negotiation(String),
    /// A remote ICE candidate was refused.
    #[error("bad ICE candidate: {0}")]
    Ice(String),
    /// The peer connection could not be created.
    #[error("cannot set up the peer connection: {0}")]
    Setup(String),
}

impl WebRtcError {
    /// The Kurento protocol error code.
    pub fn kurento_code(&self) -> i64 {
        match self {
            WebRtcError::BadSdp(_) => 40208,
            WebRtcError::NoVideo | WebRtcError::UnsupportedCodec { .. } => 40206,
            WebRtcError::Negotiation(_) => 40209,
            WebRtcError::Ice(_) => 40400,
            WebRtcError::Setup(_) => 40009,
        }
    }
}

#[derive(Default)]
struct CandidateGate {
    open: bool,
    held: Vec<EventKind>,
}

#[derive(Default)]
struct Counters {
    video_packets_in: AtomicU64,
    audio_packets_in: AtomicU64,
    video_packets_out: AtomicU64,
    audio_packets_out: AtomicU64,
    send_dropped: AtomicU64,
    keyframe_requests_in: AtomicU64,
    keyframe_requests_out: AtomicU64,
    frames_in: AtomicU64,
}

struct Shared {
    id: ElementId,
    events: EventBus,
    gst: gst::Pipeline,
    config: WebRtcConfig,
    me: Weak<Shared>,
    tokio: tokio::runtime::Handle,
    outputs: Outputs,
    flow: FlowMeter,
    video_track: Arc<TrackLocalStaticRTP>,
    video_ssrc: u32,
    audio_track: Arc<TrackLocalStaticRTP>,
    audio_ssrc: u32,
    video_sender: Mutex<Option<Arc<dyn RtpSender>>>,
    audio_sender: Mutex<Option<Arc<dyn RtpSender>>>,
    /// Negotiated send codec and payload type for video, and payload type for Opus.
    send_video: Mutex<Option<(VideoCodec, u8)>>,
    send_audio_pt: Mutex<Option<u8>>,
    egress: Mutex<Option<Arc<RtpEgress>>>,
    ingest: Mutex<Option<Arc<RtpIngest>>>,
    remote_video: Mutex<Option<Arc<dyn TrackRemote>>>,
    last_pli: Mutex<Option<Instant>>,
    gate: Mutex<CandidateGate>,
    target_bitrate: Arc<AtomicU64>,
    remb_bps: AtomicU32,
    /// Encoder bitrate bounds now (from `WebRtcConfig`, changeable per endpoint).
    min_bps: AtomicU32,
    max_bps: AtomicU32,
    send_tx: mpsc::Sender<(MediaType, rtp::Packet)>,
    latency_rtp: LatencyWindow,
    latency_decode: LatencyWindow,
    latency_frames: LatencyWindow,
    counters: Counters,
    released: AtomicBool,
    /// The peer connection (set once built), for stats.
    pc: std::sync::OnceLock<Arc<dyn PeerConnection>>,
}

/// A local track sending `kind` as `ssrc` with `codec`.
pub(crate) fn local_track(
    kind: RtpCodecKind,
    ssrc: u32,
    codec: rtc::rtp_transceiver::rtp_sender::RTCRtpCodec,
) -> Arc<TrackLocalStaticRTP> {
    let name = format!("prism-{kind}");
    Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        "prism".to_string(),
        format!("{name}-{ssrc:08x}"),
        name,
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec,
            ..Default::default()
        }],
    )))
}

fn random_ssrc() -> u32 {
    let bytes = *uuid::Uuid::new_v4().as_bytes();
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) | 1
}

impl Shared {
    fn emit(&self, kind: EventKind) {
        self.events.emit(&self.id, kind);
    }

    /// ICE events wait for `gather_candidates`.
    fn emit_ice(&self, kind: EventKind) {
        let mut gate = lock(&self.gate);
        if gate.open {
            drop(gate);
            self.emit(kind);
        } else {
            gate.held.push(kind);
        }
    }

    fn send(&self, media: MediaType, packet: rtp::Packet) {
        if self.send_tx.try_send((media, packet)).is_err() {
            self.counters.send_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Asks the remote sender for a keyframe (rate-limited).
    async fn request_keyframe(&self) {
        let track = lock(&self.remote_video).clone();
        let Some(track) = track else { return };
        {
            let mut last = lock(&self.last_pli);
            if last.is_some_and(|t| t.elapsed() < PLI_INTERVAL) {
                return;
            }
            *last = Some(Instant::now());
        }
        let Some(media_ssrc) = track.ssrcs().await.first().copied() else {
            return;
        };
        self.counters
            .keyframe_requests_out
            .fetch_add(1, Ordering::Relaxed);
        let _ = track
            .write_rtcp(vec![Box::new(PictureLossIndication {
                sender_ssrc: self.video_ssrc,
                media_ssrc,
            })])
            .await;
    }

    fn ingest_for(self: &Arc<Self>, codec: VideoCodec, payload_type: u8) -> Option<Arc<RtpIngest>> {
        let mut slot = lock(&self.ingest);
        if let Some(ingest) = &*slot {
            return Some(ingest.clone());
        }
        let weak = Arc::downgrade(self);
        let made = RtpIngest::new(
            &self.gst,
            &format!("{}-in", self.id.gst_name()),
            codec,
            payload_type,
            self.outputs.preferred_format(),
            move |frame| {
                if let Some(shared) = weak.upgrade() {
                    shared.counters.frames_in.fetch_add(1, Ordering::Relaxed);
                    if let Some(now) = running_time(&shared.gst) {
                        let arrived = gst::ClockTime::from_useconds(frame.pts_us);
                        shared.latency_decode.record(Duration::from_nanos(
                            now.nseconds().saturating_sub(arrived.nseconds()),
                        ));
                    }
                    if shared.outputs.push_video(frame) > 0 {
                        shared.flow.mark(Direction::Out, MediaType::Video);
                    }
                }
            },
        );
        match made {
            Ok(ingest) => {
                let ingest = Arc::new(ingest);
                *slot = Some(ingest.clone());
                Some(ingest)
            }
            Err(e) => {
                drop(slot);
                self.emit(EventKind::Error {
                    message: format!("cannot decode {codec}: {e}"),
                });
                None
            }
        }
    }

    async fn read_remote(self: Arc<Self>, track: Arc<dyn TrackRemote>) {
        let kind = track.kind().await;
        if kind == RtpCodecKind::Video {
            *lock(&self.remote_video) = Some(track.clone());
        }
        let mut ingest: Option<Arc<RtpIngest>> = None;
        // Sinks that took the last packet as it is (encoded).
        let mut encoded_sinks = 0;
        while let Some(event) = track.poll().await {
            let TrackRemoteEvent::OnRtpPacket(packet) = event else {
                if matches!(event, TrackRemoteEvent::OnEnded) {
                    break;
                }
                continue;
            };
            if self.released.load(Ordering::Acquire) {
                break;
            }
            match kind {
                RtpCodecKind::Video => {
                    self.counters
                        .video_packets_in
                        .fetch_add(1, Ordering::Relaxed);
                    self.flow.mark(Direction::In, MediaType::Video);
                    if ingest.is_none() {
                        let codec = track
                            .codec(packet.header.ssrc)
                            .await
                            .and_then(|c| VideoCodec::from_mime_type(&c.mime_type));
                        let Some(codec) = codec else { continue };
                        ingest = self.ingest_for(codec, packet.header.payload_type);
                        self.request_keyframe().await;
                    }
                    if let Some(codec) = ingest.as_ref().map(|i| i.codec()) {
                        let n = self.outputs.push_encoded(codec, &packet);
                        if n > encoded_sinks {
                            // A new sink keeps the stream as it is: it starts at a keyframe.
                            self.request_keyframe().await;
                        }
                        encoded_sinks = n;
                    }
                    if let (Some(ingest), Ok(bytes)) = (&ingest, packet.marshal()) {
                        ingest.push_rtp(bytes);
                    }
                }
                _ => {
                    self.counters
                        .audio_packets_in
                        .fetch_add(1, Ordering::Relaxed);
                    self.flow.mark(Direction::In, MediaType::Audio);
                    if self.outputs.push_audio(&packet) > 0 {
                        self.flow.mark(Direction::Out, MediaType::Audio);
                    }
                }
            }
        }
    }

    /// Reads RTCP about what this endpoint sends: keyframe requests and REMB.
    async fn read_feedback(self: Arc<Self>) {
        while let Some(TrackLocalEvent::OnRtcpPacket(packets)) = self.video_track.poll().await {
            for p in packets {
                let any = p.as_any();
                if any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>() {
                    self.counters
                        .keyframe_requests_in
                        .fetch_add(1, Ordering::Relaxed);
                    if let Some(egress) = lock(&self.egress).clone() {
                        egress.force_keyframe();
                    }
                    self.emit(EventKind::KeyframeRequested);
                } else if let Some(remb) = any.downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
                    self.remb_bps.store(remb.bitrate as u32, Ordering::Relaxed);
                }
            }
        }
    }

    /// Emits the candidate pair ICE selected, from the connection's stats.
    async fn announce_selected_pair(&self) {
        use webrtc::peer_connection::{RTCStatsReportEntry, StatsSelector};
        let Some(pc) = self.pc.get() else { return };
        let report = pc.get_stats(Instant::now(), StatsSelector::None).await;
        let selected = report.iter().find_map(|e| match e {
            RTCStatsReportEntry::Transport(t) if !t.selected_candidate_pair_id.is_empty() => {
                Some(t.selected_candidate_pair_id.clone())
            }
            _ => None,
        });
        let Some(selected) = selected else { return };
        let pair = report.iter().find_map(|e| match e {
            RTCStatsReportEntry::IceCandidatePair(p) if p.stats.id == selected => {
                Some((p.local_candidate_id.clone(), p.remote_candidate_id.clone()))
            }
            _ => None,
        });
        let Some((local_id, remote_id)) = pair else {
            return;
        };
        let describe = |id: &str| {
            report.iter().find_map(|e| match e {
                RTCStatsReportEntry::LocalCandidate(c)
                | RTCStatsReportEntry::RemoteCandidate(c)
                    if c.stats.id == id =>
                {
                    Some(format!(
                        "candidate:{} 1 {} {} {} {} typ {}",
                        c.stats.id,
                        c.protocol,
                        c.priority,
                        c.address.clone().unwrap_or_default(),
                        c.port,
                        c.candidate_type
                    ))
                }
                _ => None,
            })
        };
        if let (Some(local), Some(remote)) = (describe(&local_id), describe(&remote_id)) {
            self.emit(EventKind::CandidatePairSelected { local, remote });
        }
    }

    /// The bitrate the encoder should use now.
    fn wanted_bitrate(&self) -> u32 {
        let mut bps = f64::from_bits(self.target_bitrate.load(Ordering::Relaxed)) as u32;
        let remb = self.remb_bps.load(Ordering::Relaxed);
        if remb > 0 {
            bps = bps.min(remb);
        }
        let min = self.min_bps.load(Ordering::Relaxed);
        bps.clamp(min, self.max_bps.load(Ordering::Relaxed).max(min))
    }

    async fn tick(self: Arc<Self>) {
        let mut tick = tokio::time::interval(TICK);
        loop {
            tick.tick().await;
            if self.released.load(Ordering::Acquire) {
                return;
            }
            if let Some(egress) = lock(&self.egress).clone() {
                egress.set_bitrate(self.wanted_bitrate());
            }
            // Packets but no pictures: the decoder waits for a keyframe.
            let stuck = lock(&self.ingest).as_ref().is_some_and(|i| {
                i.stats().packets.load(Ordering::Relaxed) > 0
                    && i.stats().frames.load(Ordering::Relaxed) == 0
            });
            if stuck {
                self.request_keyframe().await;
            }
        }
    }

    async fn write_loop(self: Arc<Self>, mut rx: mpsc::Receiver<(MediaType, rtp::Packet)>) {
        while let Some((media, packet)) = rx.recv().await {
            let track = match media {
                MediaType::Video => &self.video_track,
                MediaType::Audio => &self.audio_track,
            };
            if track.write_rtp(packet).await.is_ok() {
                let counter = match media {
                    MediaType::Video => &self.counters.video_packets_out,
                    MediaType::Audio => &self.counters.audio_packets_out,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn egress(self: &Arc<Self>) -> Option<Arc<RtpEgress>> {
        let mut slot = lock(&self.egress);
        if let Some(e) = &*slot {
            return Some(e.clone());
        }
        let (codec, payload_type) = (*lock(&self.send_video))?;
        let weak: Weak<Shared> = Arc::downgrade(self);
        let settings = EncoderSettings {
            bitrate_bps: self.wanted_bitrate(),
            threads: self.config.encoder_threads,
            ..EncoderSettings::default()
        };
        let made = RtpEgress::new(
            &self.gst,
            &format!("{}-out", self.id.gst_name()),
            codec,
            payload_type,
            settings,
            move |bytes, pts| {
                let Some(shared) = weak.upgrade() else { return };
                let Ok(mut packet) = rtp::Packet::unmarshal(&mut &bytes[..]) else {
                    return;
                };
                if let (Some(pts), Some(now)) = (pts, running_time(&shared.gst))
                    && packet.header.marker
                {
                    shared.latency_rtp.record(Duration::from_nanos(
                        now.nseconds().saturating_sub(pts.nseconds()),
                    ));
                }
                packet.header.ssrc = shared.video_ssrc;
                packet.header.payload_type = payload_type;
                shared.send(MediaType::Video, packet);
            },
        );
        match made {
            Ok(egress) => {
                let egress = Arc::new(egress);
                *slot = Some(egress.clone());
                Some(egress)
            }
            Err(e) => {
                drop(slot);
                self.emit(EventKind::Error {
                    message: format!("cannot encode {codec}: {e}"),
                });
                None
            }
        }
    }
}

impl VideoSink for Shared {
    fn push_video(&self, frame: Arc<VideoFrame>) {
        self.flow.mark(Direction::In, MediaType::Video);
        let Some(me) = self.me.upgrade() else { return };
        let Some(egress) = me.egress() else { return };
        self.latency_frames.record(frame.decoded_at.elapsed());
        if egress.push_frame(take_frame(frame)).is_ok() {
            self.flow.mark(Direction::Out, MediaType::Video);
        }
    }

    fn wanted_format(&self) -> Option<PixelFormat> {
        None
    }
}

impl AudioSink for Shared {
    fn push_audio(&self, packet: &rtp::Packet) {
        self.flow.mark(Direction::In, MediaType::Audio);
        let Some(pt) = *lock(&self.send_audio_pt) else {
            return;
        };
        let packet = crate::media::rtp::restamped(packet, self.audio_ssrc, pt);
        self.send(MediaType::Audio, packet);
        self.flow.mark(Direction::Out, MediaType::Audio);
    }
}

struct Handler {
    shared: Weak<Shared>,
    tokio: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        if let Ok(init) = event.candidate.to_json() {
            shared.emit_ice(EventKind::IceCandidateFound {
                candidate: init.into(),
            });
        }
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete
            && let Some(shared) = self.shared.upgrade()
        {
            shared.emit_ice(EventKind::IceGatheringDone);
        }
    }

    async fn on_ice_connection_state_change(&self, state: RTCIceConnectionState) {
        if let Some(shared) = self.shared.upgrade() {
            shared.emit(EventKind::IceStateChanged {
                state: state.to_string(),
            });
            if state == RTCIceConnectionState::Connected {
                // Stats take the connection's lock; not from inside its event dispatch.
                self.tokio
                    .spawn(async move { shared.announce_selected_pair().await });
            }
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        if let Some(shared) = self.shared.upgrade() {
            shared.emit(EventKind::ConnectionStateChanged {
                state: state.to_string(),
            });
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        if let Some(shared) = self.shared.upgrade() {
            self.tokio.spawn(shared.read_remote(track));
        }
    }
}

/// A WebRTC endpoint element.
pub struct WebRtcEndpoint {
    shared: Arc<Shared>,
    pc: Arc<dyn PeerConnection>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for WebRtcEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebRtcEndpoint")
            .field("id", &self.shared.id)
            .finish_non_exhaustive()
    }
}

impl WebRtcEndpoint {
    pub(crate) async fn new(
        id: ElementId,
        pipeline: &MediaPipeline,
    ) -> Result<Arc<Self>, WebRtcError> {
        let ctx = pipeline.context();
        let config = ctx.webrtc.clone();
        let (media_engine, registry, target_bitrate) = engine::build(&config, &config.codecs)?;
        let first_codec = *config
            .codecs
            .first()
            .ok_or_else(|| WebRtcError::Setup("no video codec configured".into()))?;
        let video_ssrc = random_ssrc();
        let audio_ssrc = random_ssrc();
        let (send_tx, send_rx) = mpsc::channel(SEND_QUEUE);
        let shared = Arc::new_cyclic(|me| Shared {
            me: me.clone(),
            tokio: ctx.tokio.clone(),
            id,
            events: pipeline.events().clone(),
            gst: pipeline.gst_pipeline().clone(),
            outputs: Outputs::default(),
            flow: FlowMeter::default(),
            video_track: local_track(
                RtpCodecKind::Video,
                video_ssrc,
                engine::video_codec_parameters(first_codec).rtp_codec,
            ),
            video_ssrc,
            audio_track: local_track(
                RtpCodecKind::Audio,
                audio_ssrc,
                engine::opus_codec_parameters().rtp_codec,
            ),
            audio_ssrc,
            video_sender: Mutex::new(None),
            audio_sender: Mutex::new(None),
            send_video: Mutex::new(None),
            send_audio_pt: Mutex::new(None),
            egress: Mutex::new(None),
            ingest: Mutex::new(None),
            remote_video: Mutex::new(None),
            last_pli: Mutex::new(None),
            gate: Mutex::new(CandidateGate::default()),
            target_bitrate,
            remb_bps: AtomicU32::new(0),
            min_bps: AtomicU32::new(config.min_bitrate_bps),
            max_bps: AtomicU32::new(config.max_bitrate_bps),
            send_tx,
            latency_rtp: LatencyWindow::default(),
            latency_decode: LatencyWindow::default(),
            latency_frames: LatencyWindow::default(),
            counters: Counters::default(),
            released: AtomicBool::new(false),
            pc: std::sync::OnceLock::new(),
            config,
        });
        let handler = Arc::new(Handler {
            shared: Arc::downgrade(&shared),
            tokio: ctx.tokio.clone(),
        });
        let pc = PeerConnectionBuilder::new()
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .with_handler(handler)
            .with_runtime(Arc::new(TokioRuntime))
            .with_udp_addrs(shared.config.bind_addrs.clone())
            .build()
            .await
            .map_err(|e| WebRtcError::Setup(e.to_string()))?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        let _ = shared.pc.set(pc.clone());
        let video_sender = pc
            .add_track(shared.video_track.clone())
            .await
            .map_err(|e| WebRtcError::Setup(e.to_string()))?;
        let audio_sender = pc
            .add_track(shared.audio_track.clone())
            .await
            .map_err(|e| WebRtcError::Setup(e.to_string()))?;
        *lock(&shared.video_sender) = Some(video_sender);
        *lock(&shared.audio_sender) = Some(audio_sender);
        let tasks = vec![
            ctx.tokio.spawn(shared.clone().write_loop(send_rx)),
            ctx.tokio.spawn(shared.clone().read_feedback()),
            ctx.tokio.spawn(shared.clone().tick()),
        ];
        Ok(Arc::new(Self {
            shared,
            pc,
            tasks: Mutex::new(tasks),
        }))
    }

    /// Answers an SDP offer; returns the answer.
    pub async fn process_offer(&self, offer: &str) -> Result<String, WebRtcError> {
        check_video(offer, &self.shared.config.codecs)?;
        let offer = RTCSessionDescription::offer(offer.to_string())
            .map_err(|e| WebRtcError::BadSdp(e.to_string()))?;
        self.pc
            .set_remote_description(offer)
            .await
            .map_err(|e| WebRtcError::BadSdp(e.to_string()))?;
        let answer = self
            .pc
            .create_answer(None)
            .await
            .map_err(|e| WebRtcError::Negotiation(e.to_string()))?;
        self.pc
            .set_local_description(answer)
            .await
            .map_err(|e| WebRtcError::Negotiation(e.to_string()))?;
        self.negotiated().await?;
        self.local_sdp()
            .await
            .ok_or_else(|| WebRtcError::Negotiation("no local description".into()))
    }

    /// Makes an SDP offer (video and audio, send and receive).
    pub async fn generate_offer(&self) -> Result<String, WebRtcError> {
        let offer = self
            .pc
            .create_offer(None)
            .await
            .map_err(|e| WebRtcError::Negotiation(e.to_string()))?;
        self.pc
            .set_local_description(offer)
            .await
            .map_err(|e| WebRtcError::Negotiation(e.to_string()))?;
        self.local_sdp()
            .await
            .ok_or_else(|| WebRtcError::Negotiation("no local description".into()))
    }

    /// Takes the answer to [`WebRtcEndpoint::generate_offer`].
    pub async fn process_answer(&self, answer: &str) -> Result<(), WebRtcError> {
        check_video(answer, &self.shared.config.codecs)?;
        let answer = RTCSessionDescription::answer(answer.to_string())
            .map_err(|e| WebRtcError::BadSdp(e.to_string()))?;
        self.pc
            .set_remote_description(answer)
            .await
            .map_err(|e| WebRtcError::Negotiation(e.to_string()))?;
        self.negotiated().await
    }

    /// Records what was negotiated for sending.
    async fn negotiated(&self) -> Result<(), WebRtcError> {
        let video = lock(&self.shared.video_sender).clone();
        if let Some(sender) = video {
            let params = sender
                .get_parameters()
                .await
                .map_err(|e| WebRtcError::Negotiation(e.to_string()))?;
            let chosen = params.rtp_parameters.codecs.iter().find_map(|c| {
                let codec = VideoCodec::from_mime_type(&c.rtp_codec.mime_type)?;
                self.shared
                    .config
                    .codecs
                    .contains(&codec)
                    .then_some((codec, c.payload_type))
            });
            *lock(&self.shared.send_video) = chosen;
        }
        let audio = lock(&self.shared.audio_sender).clone();
        if let Some(sender) = audio
            && let Ok(params) = sender.get_parameters().await
        {
            *lock(&self.shared.send_audio_pt) = params
                .rtp_parameters
                .codecs
                .iter()
                .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case("audio/opus"))
                .map(|c| c.payload_type);
        }
        Ok(())
    }

    /// The local SDP (with the candidates gathered so far).
    pub async fn local_sdp(&self) -> Option<String> {
        self.pc.local_description().await.map(|d| d.sdp)
    }

    /// The remote SDP.
    pub async fn remote_sdp(&self) -> Option<String> {
        self.pc.remote_description().await.map(|d| d.sdp)
    }

    /// Adds a remote ICE candidate (trickle ICE).
    pub async fn add_ice_candidate(&self, candidate: IceCandidate) -> Result<(), WebRtcError> {
        if candidate.candidate.trim().is_empty() {
            // End-of-candidates.
            return Ok(());
        }
        self.pc
            .add_ice_candidate(candidate.into())
            .await
            .map_err(|e| WebRtcError::Ice(e.to_string()))
    }

    /// Starts sending `IceCandidateFound` events (those found so far come first).
    pub fn gather_candidates(&self) {
        let held = {
            let mut gate = lock(&self.shared.gate);
            gate.open = true;
            std::mem::take(&mut gate.held)
        };
        for kind in held {
            self.shared.emit(kind);
        }
    }

    /// The negotiated send codec, once negotiated.
    pub fn send_codec(&self) -> Option<VideoCodec> {
        lock(&self.shared.send_video).map(|(c, _)| c)
    }

    /// The codec being received, once video arrives.
    pub fn receive_codec(&self) -> Option<VideoCodec> {
        lock(&self.shared.ingest).as_ref().map(|i| i.codec())
    }

    /// Added latency, RTP in (at the source endpoint) to RTP out (here), p50/p99 ms.
    pub fn latency_rtp(&self) -> &LatencyWindow {
        &self.shared.latency_rtp
    }

    /// Arrival of a frame's first RTP packet to its decoded picture (jitter buffer, depay,
    /// decode), at this endpoint's ingest.
    pub fn latency_decode(&self) -> &LatencyWindow {
        &self.shared.latency_decode
    }

    /// Added latency, decoded frame (ingest appsink) to this encoder's input, p50/p99 ms.
    pub fn latency_frames(&self) -> &LatencyWindow {
        &self.shared.latency_frames
    }

    /// Sets the encoder's bitrate floor (Kurento's setMinVideoSendBandwidth), bits per second.
    pub fn set_min_bitrate(&self, bps: u32) {
        self.shared.min_bps.store(bps, Ordering::Relaxed);
    }

    /// Sets the encoder's bitrate ceiling (Kurento's setMaxVideoSendBandwidth).
    pub fn set_max_bitrate(&self, bps: u32) {
        self.shared.max_bps.store(bps, Ordering::Relaxed);
    }

    /// Keyframes forced by the peer's PLI/FIR so far.
    pub fn forced_keyframes(&self) -> u64 {
        lock(&self.shared.egress)
            .as_ref()
            .map_or(0, |e| e.stats().forced_keyframes.load(Ordering::Relaxed))
    }

    /// The encoder's current target bitrate.
    pub fn encoder_bitrate(&self) -> Option<u32> {
        lock(&self.shared.egress)
            .as_ref()
            .map(|e| e.stats().bitrate_bps.load(Ordering::Relaxed))
    }
}

/// Refuses SDPs without video or without a codec Prism handles, before the stack sees them.
fn check_video(sdp: &str, supported: &[VideoCodec]) -> Result<(), WebRtcError> {
    if !sdp.trim_start().starts_with("v=") {
        return Err(WebRtcError::BadSdp(
            "an SDP starts with a \"v=\" line".into(),
        ));
    }
    let Some(offered) = engine::offered_video_codecs(sdp) else {
        return Err(WebRtcError::NoVideo);
    };
    let ok = offered.iter().any(|name| {
        supported
            .iter()
            .any(|c| c.to_string().eq_ignore_ascii_case(name))
    });
    if !ok {
        return Err(WebRtcError::UnsupportedCodec {
            offered: if offered.is_empty() {
                "none".into()
            } else {
                offered.join(", ")
            },
            supported: supported
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(())
}

impl MediaElement for WebRtcEndpoint {
    fn id(&self) -> &ElementId {
        &self.shared.id
    }

    fn type_name(&self) -> &'static str {
        "WebRtcEndpoint"
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

    fn forwards_input(&self) -> bool {
        false
    }

    fn outputs_changed(&self) {
        if let Some(ingest) = lock(&self.shared.ingest).as_ref() {
            ingest.set_format(self.shared.outputs.preferred_format());
        }
    }

    fn stats(&self) -> serde_json::Value {
        let c = &self.shared.counters;
        let ms = |w: &LatencyWindow| w.percentiles_ms().unwrap_or((0.0, 0.0));
        let (rtp50, rtp99) = ms(&self.shared.latency_rtp);
        let (f50, f99) = ms(&self.shared.latency_frames);
        let (d50, d99) = ms(&self.shared.latency_decode);
        let egress = lock(&self.shared.egress).clone();
        let ingest = lock(&self.shared.ingest).clone();
        serde_json::json!({
            "receiveCodec": ingest.as_ref().map(|i| i.codec().to_string()),
            "sendCodec": self.send_codec().map(|c| c.to_string()),
            "videoPacketsIn": c.video_packets_in.load(Ordering::Relaxed),
            "audioPacketsIn": c.audio_packets_in.load(Ordering::Relaxed),
            "videoPacketsOut": c.video_packets_out.load(Ordering::Relaxed),
            "audioPacketsOut": c.audio_packets_out.load(Ordering::Relaxed),
            "sendQueueDropped": c.send_dropped.load(Ordering::Relaxed),
            "framesDecoded": c.frames_in.load(Ordering::Relaxed),
            "ingestPacketsDropped": ingest.as_ref().map_or(0, |i| i.stats().dropped_packets.load(Ordering::Relaxed)),
            "framesEncoded": egress.as_ref().map_or(0, |e| e.stats().frames.load(Ordering::Relaxed)),
            "framesDroppedBeforeEncoder": egress.as_ref().map_or(0, |e| e.stats().dropped_frames.load(Ordering::Relaxed)),
            "keyframeRequestsIn": c.keyframe_requests_in.load(Ordering::Relaxed),
            "keyframeRequestsOut": c.keyframe_requests_out.load(Ordering::Relaxed),
            "encoderBitrate": egress.as_ref().map(|e| e.stats().bitrate_bps.load(Ordering::Relaxed)),
            "latencyRtpMsP50": rtp50,
            "latencyRtpMsP99": rtp99,
            "latencyDecodeMsP50": d50,
            "latencyDecodeMsP99": d99,
            "latencyFramesMsP50": f50,
            "latencyFramesMsP99": f99,
        })
    }

    fn release(&self) {
        if self.shared.released.swap(true, Ordering::AcqRel) {
            return;
        }
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
        lock(&self.shared.egress).take();
        lock(&self.shared.ingest).take();
        lock(&self.shared.remote_video).take();
        let pc = self.pc.clone();
        self.shared.tokio.spawn(async move {
            let _ = pc.close().await;
        });
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}

impl Drop for WebRtcEndpoint {
    fn drop(&mut self) {
        self.release();
    }
}
