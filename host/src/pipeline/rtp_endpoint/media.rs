//! The media path of an `RtpEndpoint`: datagrams in (RTP to the decoder or the audio sinks,
//! RTCP keyframe requests to the encoder), frames and Opus out, keyframe requests to the
//! remote, and starting and stopping the negotiated streams.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prism_frame::PixelFormat;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtp;
use rtc::shared::marshal::{Marshal, Unmarshal};

use super::sdp::Codec;
use super::srtp::{Flow, SrtpBranch};
use super::stream::Stream;
use super::transport::{self, Kind};
use super::{KEYFRAME_INTERVAL_FRAMES, RtpEndpointError, Shared};
use crate::media::rtp::{EncoderSettings, RtpEgress, RtpIngest, VideoCodec, VideoFrame};
use crate::pipeline::graph::take_frame;
use crate::pipeline::{AudioSink, Direction, EventKind, MediaType, PipelineError, VideoSink};
use crate::sys::lock;

/// How often the decoder's keyframe needs are checked.
const TICK: Duration = Duration::from_millis(250);
/// Keyframe requests to the remote sender are at most this frequent.
const PLI_INTERVAL: Duration = Duration::from_millis(1000);

fn rtp_header(packet: &[u8]) -> Option<(u8, u32)> {
    let ssrc = packet.get(8..12)?;
    Some((
        packet[1] & 0x7f,
        u32::from_be_bytes([ssrc[0], ssrc[1], ssrc[2], ssrc[3]]),
    ))
}

impl Shared {
    /// One datagram from a socket of `stream`.
    pub(super) fn on_datagram(
        self: &Arc<Self>,
        stream: &Arc<Stream>,
        datagram: Bytes,
        rtcp_port: bool,
    ) {
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
                let encoded = self.outputs.encoded_sinks(codec);
                if encoded > 0
                    && let Ok(parsed) = rtp::Packet::unmarshal(&mut &packet[..])
                {
                    self.outputs.push_encoded(codec, &parsed);
                }
                if encoded > stream.encoded_sinks.swap(encoded, Ordering::Relaxed) {
                    // A new sink keeps the stream as it is: it starts at a keyframe.
                    self.request_keyframe();
                }
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
    pub(super) fn request_keyframe(&self) {
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

    pub(super) fn bitrate(&self) -> u32 {
        let min = self.min_bps.load(Ordering::Relaxed);
        self.start_bps
            .clamp(min, self.max_bps.load(Ordering::Relaxed).max(min))
    }

    pub(super) fn egress(self: &Arc<Self>) -> Option<Arc<RtpEgress>> {
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
    pub(super) fn stop(&self) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
        drop(std::mem::take(&mut *lock(&self.streams)));
    }

    /// Starts the negotiated streams: SRTP branches, receive loops, the keyframe watch. On
    /// failure what was started is stopped.
    pub(super) fn start(self: &Arc<Self>) -> Result<(), RtpEndpointError> {
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
        let packet = crate::media::rtp::restamped(packet, self.audio_ssrc, plan.payload_type);
        if let Ok(bytes) = packet.marshal() {
            stream.send_rtp(bytes.freeze());
            self.flow.mark(Direction::Out, MediaType::Audio);
        }
    }
}
