//! `RtpEndpoint`: plain RTP with SDP offer/answer, optionally SRTP keyed in the SDP (SDES), for
//! cameras, SIP gateways and other media servers (Kurento's RtpEndpoint).
//!
//! * Signalling (`sdp`): `generate_offer` + `process_answer`, or `process_offer` (returns the
//!   answer). One `m=video` (VP8, H.264 packetization mode 1) and one `m=audio` (Opus), each
//!   on its own UDP port pair (`transport`); `RTP/SAVP` with `a=crypto` when the endpoint was
//!   created with `crypto` (`srtp`).
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
//! Files: signalling and the element here, the media path in `media`, one stream's sockets and
//! sending in `stream`, errors and their Kurento codes in `error`.
//!
//! Lock order: `signalling` before `streams`; `ingest`, `egress` and `last_pli` are taken
//! alone.

mod error;
mod media;
mod sdp;
mod srtp;
mod stream;
mod transport;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Instant;

use gstreamer as gst;

pub use error::{RtpEndpointError, SdpStage};
pub use srtp::{CryptoSuite, SrtpCrypto, SrtpError};

use self::sdp::{Capabilities, Codec, Local, LocalStream, MediaPlan, Outcome};
use self::srtp::SrtpKey;
use self::stream::{Stream, StreamCounters, Streams};
use super::{
    AudioSink, ElementId, EventBus, EventKind, FlowMeter, MediaElement, MediaPipeline, MediaType,
    Outputs, VideoSink,
};
use crate::media::rtp::{RtpEgress, RtpIngest, VideoCodec};
use crate::sys::lock;

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

/// Where signalling is.
enum Signalling {
    New,
    OfferSent { offer: String },
    Negotiated { local: String, remote: String },
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
            ipv6: self.bind_ip.is_ipv6(),
            plan: OnceLock::new(),
            srtp: OnceLock::new(),
            remote_ssrc: AtomicU32::new(0),
            encoded_sinks: Default::default(),
            counters: StreamCounters::default(),
        }))
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
            // No video section without a video codec configured.
            video: if shared.codecs.is_empty() {
                None
            } else {
                Some(shared.bind(MediaType::Video)?)
            },
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
