//! `RtpEndpoint`: plain RTP with SDP offer/answer, optionally SRTP keyed in the SDP (SDES), for
//! cameras, SIP gateways and other media servers (Kurento's RtpEndpoint).
//!
//! * Signalling ([`sdp`]): `generate_offer` + `process_answer`, or `process_offer` (returns the
//!   answer). One `m=video` (VP8, H.264 packetization mode 1) and one `m=audio` (Opus), each
//!   on its own UDP port pair ([`transport`]); `RTP/SAVP` with `a=crypto` when the endpoint was
//!   created with `crypto` ([`srtp`]).
//! * Received video goes UDP → (srtpdec) → [`RtpIngest`] (jitter buffer, depay, decode) → the
//!   connected sinks; received Opus goes, untouched, to the connected audio sinks.
//! * Video from the connected source goes frames → [`RtpEgress`] (encode, payload) → (srtpenc)
//!   → UDP to the remote; Opus from the source is re-stamped with this endpoint's SSRC and the
//!   negotiated payload type.
//! * RTCP: a PLI/FIR from the remote forces a keyframe; a PLI goes to the remote when decoding
//!   starts and while the decoder waits for a keyframe; the encoder also makes a keyframe every
//!   [`KEYFRAME_INTERVAL_FRAMES`] for receivers that never ask. No RTCP reports, NACK or
//!   congestion control: the encoder holds its configured bitrate.
//!
//! Not here: ICE, DTLS, BUNDLE, multicast, renegotiation (a second offer is refused, as in
//! Kurento).
//!
//! Lock order: `signalling` before `streams`; `ingest`, `egress` and `last_pli` are taken
//! alone.

mod sdp;
mod srtp;
mod transport;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gstreamer as gst;
use prism_frame::PixelFormat;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtp;
use rtc::shared::marshal::{Marshal, Unmarshal};

pub use srtp::{CryptoSuite, SrtpCrypto, SrtpError};

use self::sdp::{Capabilities, Codec, Local, LocalStream, MediaPlan, Outcome};
use self::srtp::{Flow, SrtpBranch, SrtpKey};
use self::transport::{Kind, PortPair};
use super::graph::take_frame;
use super::{
    AudioSink, Direction, ElementId, EventBus, EventKind, FlowMeter, MediaElement, MediaPipeline,
    MediaType, Outputs, PipelineError, VideoSink,
};
use crate::media::rtp::{EncoderSettings, RtpEgress, RtpIngest, VideoCodec, VideoFrame};
use crate::sys::lock;

/// How often the decoder's keyframe needs are checked.
const TICK: Duration = Duration::from_millis(250);
/// Keyframe requests to the remote sender are at most this frequent.
const PLI_INTERVAL: Duration = Duration::from_millis(1000);
/// Largest distance between keyframes sent: plain-RTP receivers often never ask for one, so a
/// late or lossy receiver waits at most this long (2 s at 30 frames/s).
pub const KEYFRAME_INTERVAL_FRAMES: u32 = 60;

/// Kurento's constructor parameters of an RtpEndpoint (besides `mediaPipeline`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpEndpointOptions {
    /// SRTP with keys in the SDP (SDES); plain RTP when absent.
    #[serde(default)]
    pub crypto: Option<SrtpCrypto>,
    /// Bind and announce IPv6 instead of IPv4.
    #[serde(default)]
    pub use_ipv6: bool,
}

/// Which negotiation step a remote SDP was given to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdpStage {
    /// `process_offer`.
    Offer,
    /// `process_answer`.
    Answer,
}

/// Why an RtpEndpoint operation failed. [`RtpEndpointError::kurento_code`] maps it to the
/// protocol.
#[derive(Debug, thiserror::Error)]
pub enum RtpEndpointError {
    /// The SDP could not be parsed.
    #[error("malformed SDP: {0}")]
    BadSdp(String),
    /// The SDP parsed, but nothing in it is usable (codecs, transport, keys...).
    #[error("no usable media in the {}: {reasons}", match stage { SdpStage::Offer => "offer", SdpStage::Answer => "answer" })]
    Incompatible {
        /// Offer or answer.
        stage: SdpStage,
        /// Why, per `m=` section.
        reasons: String,
    },
    /// The `crypto` constructor parameter is unusable.
    #[error("bad crypto parameter: {0}")]
    Crypto(#[from] SrtpError),
    /// The endpoint has already negotiated (or has an offer out, for `process_offer`).
    #[error("the endpoint is already negotiated: {0}")]
    AlreadyNegotiated(&'static str),
    /// `process_answer` before `generate_offer`.
    #[error("no offer was generated: call generateOffer before processAnswer")]
    NotOfferGenerated,
    /// `process_answer` twice.
    #[error("the answer was already processed")]
    AnswerAlreadyProcessed,
    /// UDP ports could not be opened.
    #[error("cannot open UDP ports on {address}: {source}")]
    Transport {
        /// Where.
        address: IpAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The endpoint has been released.
    #[error("the endpoint has been released")]
    Released,
    /// The pipeline refused the element.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

impl RtpEndpointError {
    /// The Kurento protocol error code (Kurento's names in the comments).
    pub fn kurento_code(&self) -> i64 {
        match self {
            // SDP_PARSE_ERROR
            RtpEndpointError::BadSdp(_) => 40201,
            // SDP_END_POINT_PROCESS_OFFER_ERROR / SDP_END_POINT_PROCESS_ANSWER_ERROR
            RtpEndpointError::Incompatible {
                stage: SdpStage::Offer,
                ..
            } => 40205,
            RtpEndpointError::Incompatible {
                stage: SdpStage::Answer,
                ..
            } => 40206,
            // MEDIA_OBJECT_ILLEGAL_PARAM_ERROR
            RtpEndpointError::Crypto(_) => 40107,
            // SDP_END_POINT_ALREADY_NEGOTIATED
            RtpEndpointError::AlreadyNegotiated(_) => 40208,
            // SDP_END_POINT_NOT_OFFER_GENERATED
            RtpEndpointError::NotOfferGenerated => 40209,
            // SDP_END_POINT_ANSWER_ALREADY_PROCCESED
            RtpEndpointError::AnswerAlreadyProcessed => 40210,
            // SDP_END_POINT_CANNOT_CREATE_SESSON
            RtpEndpointError::Transport { .. } => 40211,
            // MEDIA_OBJECT_NOT_FOUND
            RtpEndpointError::Released
            | RtpEndpointError::Pipeline(PipelineError::Released)
            | RtpEndpointError::Pipeline(PipelineError::NoSuchElement(_)) => 40101,
            // NOT_ENOUGH_RESOURCES
            RtpEndpointError::Pipeline(_) => 40009,
        }
    }
}

/// Where signalling is.
enum Signalling {
    New,
    OfferSent { offer: String },
    Negotiated { local: String, remote: String },
}

#[derive(Default)]
struct StreamCounters {
    packets_in: AtomicU64,
    bytes_in: AtomicU64,
    packets_out: AtomicU64,
    bytes_out: AtomicU64,
    rtcp_in: AtomicU64,
    rtcp_out: AtomicU64,
    unknown_payload_type: AtomicU64,
    invalid: AtomicU64,
    send_errors: AtomicU64,
}

/// One media stream: its sockets, what was negotiated, its SRTP.
struct Stream {
    kind: MediaType,
    ports: PortPair,
    plan: OnceLock<MediaPlan>,
    srtp: OnceLock<SrtpBranch>,
    /// The remote's SSRC (0 until its first packet), for keyframe requests.
    remote_ssrc: AtomicU32,
    counters: StreamCounters,
}

impl Stream {
    fn local(&self, ssrc: u32) -> LocalStream {
        LocalStream {
            kind: self.kind,
            rtp_port: self.ports.rtp_port(),
            rtcp_port: self.ports.rtcp_port(),
            ssrc,
        }
    }

    /// Sends a datagram to the remote as it is.
    fn transmit(&self, kind: Kind, datagram: &[u8]) {
        let Some(plan) = self.plan.get() else { return };
        if !plan.send && kind == Kind::Rtp {
            return;
        }
        let (socket, to) = match kind {
            Kind::Rtcp if !plan.rtcp_mux => (&self.ports.rtcp, plan.remote_rtcp),
            _ => (&self.ports.rtp, plan.remote_rtp),
        };
        let to = transport::reachable_from(socket, to);
        match socket.send_to(datagram, to) {
            Ok(n) => {
                let (packets, bytes) = match kind {
                    Kind::Rtcp => (&self.counters.rtcp_out, None),
                    _ => (&self.counters.packets_out, Some(&self.counters.bytes_out)),
                };
                packets.fetch_add(1, Ordering::Relaxed);
                if let Some(bytes) = bytes {
                    bytes.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
            Err(e) => {
                if self.counters.send_errors.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::debug!(to = %to, cause = %e, "RTP send failed");
                }
            }
        }
    }

    /// Sends an RTP packet (protected first when SRTP is on).
    fn send_rtp(&self, packet: Bytes) {
        match self.srtp.get() {
            Some(srtp) => srtp.push(Flow::RtpOut, packet),
            None => self.transmit(Kind::Rtp, &packet),
        }
    }

    /// Sends an RTCP packet (protected first when SRTP is on).
    fn send_rtcp(&self, packet: Bytes) {
        match self.srtp.get() {
            Some(srtp) => srtp.push(Flow::RtcpOut, packet),
            None => self.transmit(Kind::Rtcp, &packet),
        }
    }

    fn stats(&self) -> serde_json::Value {
        let c = &self.counters;
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let plan = self.plan.get();
        let srtp = self.srtp.get();
        serde_json::json!({
            "localRtpPort": self.ports.rtp_port(),
            "localRtcpPort": self.ports.rtcp_port(),
            "remoteRtp": plan.map(|p| p.remote_rtp.to_string()),
            "remoteRtcp": plan.map(|p| p.remote_rtcp.to_string()),
            "rtcpMux": plan.map(|p| p.rtcp_mux),
            "codec": plan.map(|p| p.codec.to_string()),
            "payloadType": plan.map(|p| p.payload_type),
            "sending": plan.is_some_and(|p| p.send),
            "receiving": plan.is_some_and(|p| p.recv),
            "packetsIn": n(&c.packets_in),
            "bytesIn": n(&c.bytes_in),
            "packetsOut": n(&c.packets_out),
            "bytesOut": n(&c.bytes_out),
            "rtcpIn": n(&c.rtcp_in),
            "rtcpOut": n(&c.rtcp_out),
            "unknownPayloadType": n(&c.unknown_payload_type),
            "invalidDatagrams": n(&c.invalid),
            "sendErrors": n(&c.send_errors),
            "srtpPacketsIn": srtp.map(|s| n(&s.stats().rtp_in)),
            "srtpPacketsDecrypted": srtp.map(|s| n(&s.stats().rtp_decrypted)),
            "srtpPacketsRejected": srtp.and_then(|s| s.rejected()),
        })
    }
}

#[derive(Default)]
struct Streams {
    video: Option<Arc<Stream>>,
    audio: Option<Arc<Stream>>,
}

impl Streams {
    fn get(&self, kind: MediaType) -> Option<&Arc<Stream>> {
        match kind {
            MediaType::Video => self.video.as_ref(),
            MediaType::Audio => self.audio.as_ref(),
        }
    }

    fn all(&self) -> impl Iterator<Item = &Arc<Stream>> {
        self.video.iter().chain(self.audio.iter())
    }
}

#[derive(Default)]
struct Counters {
    frames_in: AtomicU64,
    keyframe_requests_in: AtomicU64,
    keyframe_requests_out: AtomicU64,
    wrong_codec: AtomicU64,
}

struct Shared {
    id: ElementId,
    me: Weak<Shared>,
    events: EventBus,
    gst: gst::Pipeline,
    tokio: tokio::runtime::Handle,
    codecs: Vec<VideoCodec>,
    key: Option<SrtpKey>,
    bind_ip: IpAddr,
    encoder_threads: u32,
    start_bps: u32,
    min_bps: AtomicU32,
    max_bps: AtomicU32,
    outputs: Outputs,
    flow: FlowMeter,
    video_ssrc: u32,
    audio_ssrc: u32,
    session_id: u64,
    signalling: Mutex<Signalling>,
    streams: Mutex<Streams>,
    ingest: Mutex<Option<Arc<RtpIngest>>>,
    egress: Mutex<Option<Arc<RtpEgress>>>,
    last_pli: Mutex<Option<Instant>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    counters: Counters,
    released: AtomicBool,
}

fn random_u32() -> u32 {
    let b = *uuid::Uuid::new_v4().as_bytes();
    u32::from_le_bytes([b[0], b[1], b[2], b[3]]) | 1
}

fn rtp_header(packet: &[u8]) -> Option<(u8, u32)> {
    let ssrc = packet.get(8..12)?;
    Some((
        packet[1] & 0x7f,
        u32::from_be_bytes([ssrc[0], ssrc[1], ssrc[2], ssrc[3]]),
    ))
}

impl Shared {
    fn emit(&self, kind: EventKind) {
        self.events.emit(&self.id, kind);
    }

    fn stream(&self, kind: MediaType) -> Option<Arc<Stream>> {
        lock(&self.streams).get(kind).cloned()
    }

    fn capabilities(&self) -> Capabilities<'_> {
        Capabilities {
            codecs: &self.codecs,
            key: self.key.as_ref(),
        }
    }

    fn local(&self, address: IpAddr, version: u64) -> Local<'_> {
        Local {
            session_id: self.session_id,
            version,
            address,
            caps: self.capabilities(),
            cname: "prism",
        }
    }

    fn ssrc(&self, kind: MediaType) -> u32 {
        match kind {
            MediaType::Video => self.video_ssrc,
            MediaType::Audio => self.audio_ssrc,
        }
    }

    fn bind(&self, kind: MediaType) -> Result<Arc<Stream>, RtpEndpointError> {
        let ports =
            transport::bind_pair(self.bind_ip).map_err(|source| RtpEndpointError::Transport {
                address: self.bind_ip,
                source,
            })?;
        Ok(Arc::new(Stream {
            kind,
            ports,
            plan: OnceLock::new(),
            srtp: OnceLock::new(),
            remote_ssrc: AtomicU32::new(0),
            counters: StreamCounters::default(),
        }))
    }

    /// One datagram from a socket of `stream`.
    fn on_datagram(self: &Arc<Self>, stream: &Arc<Stream>, datagram: Bytes, rtcp_port: bool) {
        if self.released.load(Ordering::Acquire) {
            return;
        }
        let kind = transport::classify(&datagram, rtcp_port);
        match (kind, stream.srtp.get()) {
            (Kind::Rtp, Some(srtp)) => srtp.push(Flow::RtpIn, datagram),
            (Kind::Rtcp, Some(srtp)) => srtp.push(Flow::RtcpIn, datagram),
            (Kind::Rtp, None) => self.on_rtp(stream, datagram),
            (Kind::Rtcp, None) => self.on_rtcp(stream, &datagram),
            (Kind::Other, _) => {
                stream.counters.invalid.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// One RTP packet (decrypted) of `stream`.
    fn on_rtp(self: &Arc<Self>, stream: &Stream, packet: Bytes) {
        let Some(plan) = stream.plan.get() else {
            return;
        };
        let Some((payload_type, ssrc)) = rtp_header(&packet) else {
            stream.counters.invalid.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let c = &stream.counters;
        c.packets_in.fetch_add(1, Ordering::Relaxed);
        c.bytes_in.fetch_add(packet.len() as u64, Ordering::Relaxed);
        let Some(codec) = plan.codec_of(payload_type) else {
            c.unknown_payload_type.fetch_add(1, Ordering::Relaxed);
            return;
        };
        stream.remote_ssrc.store(ssrc, Ordering::Relaxed);
        match codec {
            Codec::Video(codec) => {
                self.flow.mark(Direction::In, MediaType::Video);
                if let Some(ingest) = self.ingest_for(codec, payload_type) {
                    ingest.push_rtp(packet);
                }
            }
            Codec::Opus => {
                self.flow.mark(Direction::In, MediaType::Audio);
                if let Ok(packet) = rtp::Packet::unmarshal(&mut &packet[..])
                    && self.outputs.push_audio(&packet) > 0
                {
                    self.flow.mark(Direction::Out, MediaType::Audio);
                }
            }
        }
    }

    /// One RTCP packet (decrypted) of `stream`: keyframe requests about what Prism sends.
    fn on_rtcp(&self, stream: &Stream, packet: &[u8]) {
        stream.counters.rtcp_in.fetch_add(1, Ordering::Relaxed);
        if stream.kind != MediaType::Video {
            return;
        }
        let Ok(packets) = rtc::rtcp::packet::unmarshal(&mut &packet[..]) else {
            stream.counters.invalid.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let asks_keyframe = packets.iter().any(|p| {
            let any = p.as_any();
            any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
        });
        if asks_keyframe {
            self.counters
                .keyframe_requests_in
                .fetch_add(1, Ordering::Relaxed);
            if let Some(egress) = lock(&self.egress).clone() {
                egress.force_keyframe();
            }
            self.emit(EventKind::KeyframeRequested);
        }
    }

    /// Asks the remote sender for a keyframe (rate-limited): an empty receiver report and a
    /// PLI, one compound RTCP packet.
    fn request_keyframe(&self) {
        let Some(stream) = self.stream(MediaType::Video) else {
            return;
        };
        let media_ssrc = stream.remote_ssrc.load(Ordering::Relaxed);
        if media_ssrc == 0 {
            return;
        }
        {
            let mut last = lock(&self.last_pli);
            if last.is_some_and(|t| t.elapsed() < PLI_INTERVAL) {
                return;
            }
            *last = Some(Instant::now());
        }
        let packets: Vec<Box<dyn rtc::rtcp::packet::Packet>> = vec![
            Box::new(ReceiverReport {
                ssrc: self.video_ssrc,
                reports: Vec::new(),
                profile_extensions: Bytes::new(),
            }),
            Box::new(PictureLossIndication {
                sender_ssrc: self.video_ssrc,
                media_ssrc,
            }),
        ];
        if let Ok(bytes) = rtc::rtcp::packet::marshal(&packets) {
            self.counters
                .keyframe_requests_out
                .fetch_add(1, Ordering::Relaxed);
            stream.send_rtcp(bytes.freeze());
        }
    }

    fn ingest_for(self: &Arc<Self>, codec: VideoCodec, payload_type: u8) -> Option<Arc<RtpIngest>> {
        let mut slot = lock(&self.ingest);
        if let Some(ingest) = &*slot {
            if ingest.codec() == codec {
                return Some(ingest.clone());
            }
            // The remote switched codecs mid-stream; the decoder stays with the first one.
            self.counters.wrong_codec.fetch_add(1, Ordering::Relaxed);
            return None;
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
                drop(slot);
                self.request_keyframe();
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

    fn bitrate(&self) -> u32 {
        let min = self.min_bps.load(Ordering::Relaxed);
        self.start_bps
            .clamp(min, self.max_bps.load(Ordering::Relaxed).max(min))
    }

    fn egress(self: &Arc<Self>) -> Option<Arc<RtpEgress>> {
        let mut slot = lock(&self.egress);
        if let Some(egress) = &*slot {
            return Some(egress.clone());
        }
        let stream = self.stream(MediaType::Video)?;
        let plan = stream.plan.get().filter(|p| p.send)?;
        let Codec::Video(codec) = plan.codec else {
            return None;
        };
        let weak = Arc::downgrade(&stream);
        let ssrc = self.video_ssrc;
        let settings = EncoderSettings {
            bitrate_bps: self.bitrate(),
            keyframe_interval: KEYFRAME_INTERVAL_FRAMES,
            threads: self.encoder_threads,
        };
        let made = RtpEgress::new(
            &self.gst,
            &format!("{}-out", self.id.gst_name()),
            codec,
            plan.payload_type,
            settings,
            move |bytes, _pts| {
                let Some(stream) = weak.upgrade() else { return };
                if bytes.len() < 12 {
                    return;
                }
                let mut packet = bytes.to_vec();
                packet[8..12].copy_from_slice(&ssrc.to_be_bytes());
                stream.send_rtp(Bytes::from(packet));
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

    /// Stops the streams' tasks and frees their ports and SRTP branches.
    fn stop(&self) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
        drop(std::mem::take(&mut *lock(&self.streams)));
    }

    /// Starts the negotiated streams: SRTP branches, receive loops, the keyframe watch. On
    /// failure what was started is stopped.
    fn start(self: &Arc<Self>) -> Result<(), RtpEndpointError> {
        self.try_start().inspect_err(|_| self.stop())
    }

    fn try_start(self: &Arc<Self>) -> Result<(), RtpEndpointError> {
        let _runtime = self.tokio.enter();
        let streams: Vec<Arc<Stream>> = lock(&self.streams).all().cloned().collect();
        for stream in &streams {
            let Some(plan) = stream.plan.get() else {
                continue;
            };
            if let (Some(local), Some(remote)) = (&self.key, &plan.remote_key) {
                let shared = Arc::downgrade(self);
                let weak = Arc::downgrade(stream);
                let branch = SrtpBranch::new(
                    &self.gst,
                    &format!(
                        "{}-srtp-{}",
                        self.id.gst_name(),
                        match stream.kind {
                            MediaType::Video => "video",
                            MediaType::Audio => "audio",
                        }
                    ),
                    local,
                    remote,
                    move |flow, packet| {
                        let (Some(shared), Some(stream)) = (shared.upgrade(), weak.upgrade())
                        else {
                            return;
                        };
                        match flow {
                            Flow::RtpIn => shared.on_rtp(&stream, packet),
                            Flow::RtcpIn => shared.on_rtcp(&stream, &packet),
                            Flow::RtpOut => stream.transmit(Kind::Rtp, &packet),
                            Flow::RtcpOut => stream.transmit(Kind::Rtcp, &packet),
                        }
                    },
                )
                .map_err(PipelineError::from)?;
                let _ = stream.srtp.set(branch);
            }
            for (socket, rtcp_port) in [(&stream.ports.rtp, false), (&stream.ports.rtcp, true)] {
                let socket = socket
                    .try_clone()
                    .and_then(tokio::net::UdpSocket::from_std)
                    .map_err(|source| RtpEndpointError::Transport {
                        address: self.bind_ip,
                        source,
                    })?;
                let shared = Arc::downgrade(self);
                let weak = Arc::downgrade(stream);
                let task =
                    self.tokio
                        .spawn(transport::receive_loop(Arc::new(socket), move |datagram| {
                            if let (Some(shared), Some(stream)) = (shared.upgrade(), weak.upgrade())
                            {
                                shared.on_datagram(&stream, datagram, rtcp_port);
                            }
                        }));
                lock(&self.tasks).push(task);
            }
        }
        let task = self.tokio.spawn(tick(Arc::downgrade(self)));
        lock(&self.tasks).push(task);
        self.emit(EventKind::ConnectionStateChanged {
            state: "connected".into(),
        });
        Ok(())
    }
}

/// Asks for a keyframe while packets arrive but nothing decodes.
async fn tick(shared: Weak<Shared>) {
    let mut tick = tokio::time::interval(TICK);
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if shared.released.load(Ordering::Acquire) {
            return;
        }
        let stuck = lock(&shared.ingest).as_ref().is_some_and(|i| {
            i.stats().packets.load(Ordering::Relaxed) > 0
                && i.stats().frames.load(Ordering::Relaxed) == 0
        });
        if stuck {
            shared.request_keyframe();
        }
    }
}

impl VideoSink for Shared {
    fn push_video(&self, frame: Arc<VideoFrame>) {
        self.flow.mark(Direction::In, MediaType::Video);
        if self.released.load(Ordering::Acquire) {
            return;
        }
        let Some(me) = self.me.upgrade() else { return };
        let Some(egress) = me.egress() else { return };
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
        if self.released.load(Ordering::Acquire) {
            return;
        }
        let Some(stream) = self.stream(MediaType::Audio) else {
            return;
        };
        let Some(plan) = stream.plan.get().filter(|p| p.send) else {
            return;
        };
        let mut packet = packet.clone();
        packet.header.ssrc = self.audio_ssrc;
        packet.header.payload_type = plan.payload_type;
        // The source's header extension ids mean nothing on this leg: the payload goes on
        // untouched, the extensions do not.
        packet.header.extension = false;
        packet.header.extension_profile = 0;
        packet.header.extensions.clear();
        packet.header.extensions_padding = 0;
        if let Ok(bytes) = packet.marshal() {
            stream.send_rtp(bytes.freeze());
            self.flow.mark(Direction::Out, MediaType::Audio);
        }
    }
}

/// An RTP endpoint element.
pub struct RtpEndpoint {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RtpEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtpEndpoint")
            .field("id", &self.shared.id)
            .finish_non_exhaustive()
    }
}

impl RtpEndpoint {
    fn new(id: ElementId, pipeline: &MediaPipeline, key: Option<SrtpKey>, ipv6: bool) -> Self {
        let ctx = pipeline.context();
        let config = &ctx.webrtc;
        let session_id = u64::from(random_u32()) << 31 | u64::from(random_u32() >> 1);
        let shared = Arc::new_cyclic(|me| Shared {
            id,
            me: me.clone(),
            events: pipeline.events().clone(),
            gst: pipeline.gst_pipeline().clone(),
            tokio: ctx.tokio.clone(),
            codecs: config.codecs.clone(),
            key,
            bind_ip: transport::bind_ip(&config.bind_addrs, ipv6),
            encoder_threads: config.encoder_threads,
            start_bps: config.start_bitrate_bps,
            min_bps: AtomicU32::new(config.min_bitrate_bps),
            max_bps: AtomicU32::new(config.max_bitrate_bps),
            outputs: Outputs::default(),
            flow: FlowMeter::default(),
            video_ssrc: random_u32(),
            audio_ssrc: random_u32(),
            session_id,
            signalling: Mutex::new(Signalling::New),
            streams: Mutex::new(Streams::default()),
            ingest: Mutex::new(None),
            egress: Mutex::new(None),
            last_pli: Mutex::new(None),
            tasks: Mutex::new(Vec::new()),
            counters: Counters::default(),
            released: AtomicBool::new(false),
        });
        Self { shared }
    }

    fn check_live(&self) -> Result<(), RtpEndpointError> {
        if self.shared.released.load(Ordering::Acquire) {
            Err(RtpEndpointError::Released)
        } else {
            Ok(())
        }
    }

    /// Makes an SDP offer: video and audio, send and receive. Asking again before the answer
    /// returns the same offer.
    pub fn generate_offer(&self) -> Result<String, RtpEndpointError> {
        self.check_live()?;
        let shared = &self.shared;
        let mut signalling = lock(&shared.signalling);
        match &*signalling {
            Signalling::New => {}
            Signalling::OfferSent { offer } => return Ok(offer.clone()),
            Signalling::Negotiated { .. } => {
                return Err(RtpEndpointError::AlreadyNegotiated(
                    "renegotiation is not supported",
                ));
            }
        }
        let streams = Streams {
            video: Some(shared.bind(MediaType::Video)?),
            audio: Some(shared.bind(MediaType::Audio)?),
        };
        let address = transport::announce_ip(shared.bind_ip, None);
        let local: Vec<LocalStream> = streams
            .all()
            .map(|s| s.local(shared.ssrc(s.kind)))
            .collect();
        let offer = sdp::write_offer(&shared.local(address, 1), &local);
        *lock(&shared.streams) = streams;
        *signalling = Signalling::OfferSent {
            offer: offer.clone(),
        };
        Ok(offer)
    }

    /// Answers a remote offer; returns the answer.
    pub fn process_offer(&self, offer: &str) -> Result<String, RtpEndpointError> {
        self.check_live()?;
        let shared = &self.shared;
        let mut signalling = lock(&shared.signalling);
        match &*signalling {
            Signalling::New => {}
            Signalling::OfferSent { .. } => {
                return Err(RtpEndpointError::AlreadyNegotiated(
                    "an offer was generated: it takes an answer (processAnswer)",
                ));
            }
            Signalling::Negotiated { .. } => {
                return Err(RtpEndpointError::AlreadyNegotiated(
                    "renegotiation is not supported",
                ));
            }
        }
        let remote = sdp::parse(offer).map_err(RtpEndpointError::BadSdp)?;
        let outcomes = self.negotiate(&remote, SdpStage::Offer)?;
        let mut streams = Streams::default();
        for outcome in &outcomes {
            if let Outcome::Rejected { media, reason, .. } = outcome {
                tracing::info!(element = %shared.id, media = %media, reason = %reason, "m= section declined");
            }
            if let Outcome::Accepted(plan) = outcome {
                let stream = shared.bind(plan.kind)?;
                let _ = stream.plan.set(plan.clone());
                match plan.kind {
                    MediaType::Video => streams.video = Some(stream),
                    MediaType::Audio => streams.audio = Some(stream),
                }
            }
        }
        let address = transport::announce_ip(shared.bind_ip, remote.first_address());
        let local: Vec<LocalStream> = streams
            .all()
            .map(|s| s.local(shared.ssrc(s.kind)))
            .collect();
        let answer = sdp::write_answer(&shared.local(address, 1), &outcomes, &local);
        *lock(&shared.streams) = streams;
        shared.start()?;
        *signalling = Signalling::Negotiated {
            local: answer.clone(),
            remote: offer.to_string(),
        };
        Ok(answer)
    }

    /// Takes the answer to [`RtpEndpoint::generate_offer`].
    pub fn process_answer(&self, answer: &str) -> Result<(), RtpEndpointError> {
        self.check_live()?;
        let shared = &self.shared;
        let mut signalling = lock(&shared.signalling);
        let offer = match &*signalling {
            Signalling::New => return Err(RtpEndpointError::NotOfferGenerated),
            Signalling::OfferSent { offer } => offer.clone(),
            Signalling::Negotiated { .. } => return Err(RtpEndpointError::AnswerAlreadyProcessed),
        };
        let remote = sdp::parse(answer).map_err(RtpEndpointError::BadSdp)?;
        let outcomes = self.negotiate(&remote, SdpStage::Answer)?;
        let mut streams = std::mem::take(&mut *lock(&shared.streams));
        for outcome in &outcomes {
            if let Outcome::Accepted(plan) = outcome
                && let Some(stream) = streams.get(plan.kind)
            {
                let _ = stream.plan.set(plan.clone());
            }
        }
        // Streams the answer declined free their ports.
        streams.video = streams.video.filter(|s| s.plan.get().is_some());
        streams.audio = streams.audio.filter(|s| s.plan.get().is_some());
        *lock(&shared.streams) = streams;
        if let Err(e) = shared.start() {
            // The ports are gone with the failed start: begin again from an offer.
            *signalling = Signalling::New;
            return Err(e);
        }
        *signalling = Signalling::Negotiated {
            local: offer,
            remote: answer.to_string(),
        };
        Ok(())
    }

    /// Negotiates, refusing remotes of the other IP family.
    fn negotiate(
        &self,
        remote: &sdp::RemoteSdp,
        stage: SdpStage,
    ) -> Result<Vec<Outcome>, RtpEndpointError> {
        let incompatible = |reasons: String| RtpEndpointError::Incompatible { stage, reasons };
        let outcomes = sdp::negotiate(remote, self.shared.capabilities()).map_err(incompatible)?;
        let ipv6 = self.shared.bind_ip.is_ipv6();
        for outcome in &outcomes {
            if let Outcome::Accepted(plan) = outcome
                && plan.remote_rtp.is_ipv6()
                && !ipv6
            {
                return Err(incompatible(format!(
                    "the peer's address {} is IPv6: create the endpoint with useIpv6",
                    plan.remote_rtp.ip()
                )));
            }
        }
        Ok(outcomes)
    }

    /// The local SDP: the offer made, or the answer given.
    pub fn local_sdp(&self) -> Option<String> {
        match &*lock(&self.shared.signalling) {
            Signalling::New => None,
            Signalling::OfferSent { offer } => Some(offer.clone()),
            Signalling::Negotiated { local, .. } => Some(local.clone()),
        }
    }

    /// The remote SDP, once negotiated.
    pub fn remote_sdp(&self) -> Option<String> {
        match &*lock(&self.shared.signalling) {
            Signalling::Negotiated { remote, .. } => Some(remote.clone()),
            _ => None,
        }
    }

    /// The SRTP suite, when SRTP is on.
    pub fn crypto_suite(&self) -> Option<CryptoSuite> {
        self.shared.key.as_ref().map(|k| k.suite())
    }

    /// The negotiated send codec, once negotiated (and if video goes out).
    pub fn send_codec(&self) -> Option<VideoCodec> {
        let stream = self.shared.stream(MediaType::Video)?;
        match stream.plan.get()? {
            MediaPlan {
                send: true,
                codec: Codec::Video(codec),
                ..
            } => Some(*codec),
            _ => None,
        }
    }

    /// The codec being received, once video arrives.
    pub fn receive_codec(&self) -> Option<VideoCodec> {
        lock(&self.shared.ingest).as_ref().map(|i| i.codec())
    }

    /// Sets the encoder's bitrate floor (Kurento's setMinVideoSendBandwidth), bits per second.
    pub fn set_min_bitrate(&self, bps: u32) {
        self.shared.min_bps.store(bps, Ordering::Relaxed);
        self.apply_bitrate();
    }

    /// Sets the encoder's bitrate ceiling (Kurento's setMaxVideoSendBandwidth).
    pub fn set_max_bitrate(&self, bps: u32) {
        self.shared.max_bps.store(bps, Ordering::Relaxed);
        self.apply_bitrate();
    }

    fn apply_bitrate(&self) {
        if let Some(egress) = lock(&self.shared.egress).clone() {
            egress.set_bitrate(self.shared.bitrate());
        }
    }
}

impl MediaElement for RtpEndpoint {
    fn id(&self) -> &ElementId {
        &self.shared.id
    }

    fn type_name(&self) -> &'static str {
        "RtpEndpoint"
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
        let shared = &self.shared;
        let c = &shared.counters;
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let state = match &*lock(&shared.signalling) {
            Signalling::New => "new",
            Signalling::OfferSent { .. } => "offerSent",
            Signalling::Negotiated { .. } => "negotiated",
        };
        let (video, audio) = {
            let streams = lock(&shared.streams);
            (
                streams.video.as_ref().map(|s| s.stats()),
                streams.audio.as_ref().map(|s| s.stats()),
            )
        };
        let ingest = lock(&shared.ingest).clone();
        let egress = lock(&shared.egress).clone();
        serde_json::json!({
            "state": state,
            "crypto": self.crypto_suite().map(|s| s.kurento_name()),
            "sendCodec": self.send_codec().map(|c| c.to_string()),
            "receiveCodec": ingest.as_ref().map(|i| i.codec().to_string()),
            "video": video,
            "audio": audio,
            "framesDecoded": n(&c.frames_in),
            "ingestPacketsDropped": ingest.as_ref().map_or(0, |i| n(&i.stats().dropped_packets)),
            "wrongCodecPackets": n(&c.wrong_codec),
            "framesEncoded": egress.as_ref().map_or(0, |e| n(&e.stats().frames)),
            "framesDroppedBeforeEncoder": egress.as_ref().map_or(0, |e| n(&e.stats().dropped_frames)),
            "forcedKeyframes": egress.as_ref().map_or(0, |e| n(&e.stats().forced_keyframes)),
            "encoderBitrate": egress.as_ref().map(|e| e.stats().bitrate_bps.load(Ordering::Relaxed)),
            "keyframeRequestsIn": n(&c.keyframe_requests_in),
            "keyframeRequestsOut": n(&c.keyframe_requests_out),
        })
    }

    fn release(&self) {
        let shared = &self.shared;
        if shared.released.swap(true, Ordering::AcqRel) {
            return;
        }
        lock(&shared.egress).take();
        lock(&shared.ingest).take();
        // The sockets close with their last handle (the aborted receive tasks hold the
        // others); the SRTP branches leave the GStreamer pipeline.
        shared.stop();
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}

impl Drop for RtpEndpoint {
    fn drop(&mut self) {
        self.release();
    }
}

impl MediaPipeline {
    /// Adds an RTP endpoint (Kurento's `RtpEndpoint`; `options` are its constructor
    /// parameters). Ports are opened when it negotiates.
    pub fn add_rtp_endpoint(
        &self,
        options: RtpEndpointOptions,
    ) -> Result<Arc<RtpEndpoint>, RtpEndpointError> {
        let key = options
            .crypto
            .as_ref()
            .map(SrtpKey::from_config)
            .transpose()?;
        Ok(self.add("kurento", "RtpEndpoint", |id| {
            Ok(Arc::new(RtpEndpoint::new(id, self, key, options.use_ipv6)))
        })?)
    }
}
