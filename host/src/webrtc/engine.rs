//! How every Prism peer connection is set up: codecs, interceptors (NACK, RTCP reports, TWCC
//! with Google congestion control, keyframe-request forwarding) and the bandwidth estimate
//! that drives the encoder.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rtc::interceptor::{
    Attribute, BandwidthEstimator, EstimatorStats, Gcc, Interceptor, Packet, PacketReport, Slot,
    StreamInfo, TaggedPacket,
};
use rtc::peer_connection::configuration::interceptor_registry::{
    CongestionFeedback, Registry, configure_congestion_control, register_default_interceptors,
};
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MediaEngine};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind,
};
use rtc::sansio::Protocol;

use super::{WebRtcConfig, WebRtcError};
use crate::media::rtp::VideoCodec;

/// Payload types Prism offers (the answerer's numbers win when Prism answers).
pub const VP8_PAYLOAD_TYPE: u8 = 96;
/// H.264 constrained baseline, packetization mode 1.
pub const H264_PAYLOAD_TYPE: u8 = 102;
/// Opus.
pub const OPUS_PAYLOAD_TYPE: u8 = 111;
/// The fmtp line of the H.264 profile Prism sends and receives.
pub const H264_FMTP: &str =
    "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";

/// Where the forwarder sits: after every built-in interceptor has seen the RTCP.
const FORWARDER_SLOT: usize = 14_000;

fn feedback(kind: &str, parameter: &str) -> RTCPFeedback {
    RTCPFeedback {
        typ: kind.to_string(),
        parameter: parameter.to_string(),
    }
}

/// The codec parameters of a video codec as Prism registers it.
pub fn video_codec_parameters(codec: VideoCodec) -> RTCRtpCodecParameters {
    let (payload_type, fmtp) = match codec {
        VideoCodec::Vp8 => (VP8_PAYLOAD_TYPE, ""),
        VideoCodec::H264 => (H264_PAYLOAD_TYPE, H264_FMTP),
    };
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: codec.mime_type().to_string(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: fmtp.to_string(),
            rtcp_feedback: vec![feedback("ccm", "fir"), feedback("goog-remb", "")],
        },
        payload_type,
    }
}

/// Opus as Prism registers it.
pub fn opus_codec_parameters() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_OPUS.to_string(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".to_string(),
            rtcp_feedback: vec![],
        },
        payload_type: OPUS_PAYLOAD_TYPE,
    }
}

/// The media engine and interceptors of one peer connection, and the handle on its
/// bandwidth estimate (bits per second, as `f64` bits).
pub fn build(
    config: &WebRtcConfig,
    codecs: &[VideoCodec],
) -> Result<(MediaEngine, Registry, Arc<AtomicU64>), WebRtcError> {
    let setup = |e: rtc::shared::error::Error| WebRtcError::Setup(e.to_string());
    let mut media_engine = MediaEngine::default();
    for &codec in codecs {
        media_engine
            .register_codec(video_codec_parameters(codec), RtpCodecKind::Video)
            .map_err(setup)?;
    }
    media_engine
        .register_codec(opus_codec_parameters(), RtpCodecKind::Audio)
        .map_err(setup)?;
    let (estimator, target) = ReportingEstimator::new(Gcc::new(
        config.start_bitrate_bps as f64,
        config.min_bitrate_bps as f64,
        config.max_bitrate_bps as f64,
    ));
    let registry = configure_congestion_control(
        Registry::new(),
        estimator,
        CongestionFeedback::Twcc,
        &mut media_engine,
    )
    .map_err(setup)?;
    let registry = register_default_interceptors(registry, &mut media_engine).map_err(setup)?;
    let registry = registry.with(Slot::from(FORWARDER_SLOT), RtcpForwarder::default());
    Ok((media_engine, registry, target))
}

/// Publishes the congestion controller's target after every update.
struct ReportingEstimator<E: BandwidthEstimator> {
    inner: E,
    target: Arc<AtomicU64>,
}

impl<E: BandwidthEstimator> ReportingEstimator<E> {
    fn new(inner: E) -> (Self, Arc<AtomicU64>) {
        let target = Arc::new(AtomicU64::new(inner.target_bitrate().to_bits()));
        (
            Self {
                inner,
                target: target.clone(),
            },
            target,
        )
    }

    fn publish(&self) {
        self.target
            .store(self.inner.target_bitrate().to_bits(), Ordering::Relaxed);
    }
}

impl<E: BandwidthEstimator> BandwidthEstimator for ReportingEstimator<E> {
    fn on_reports(&mut self, now: Instant, reports: &[PacketReport]) {
        self.inner.on_reports(now, reports);
        self.publish();
    }

    fn target_bitrate(&self) -> f64 {
        self.inner.target_bitrate()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.inner.handle_timeout(now);
        self.publish();
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }

    fn stats(&self) -> EstimatorStats {
        self.inner.stats()
    }
}

/// Whether the application acts on this RTCP packet: keyframe requests and REMB.
pub fn is_for_application(packet: &dyn rtc::rtcp::Packet) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>()
        || any.is::<FullIntraRequest>()
        || any.is::<ReceiverEstimatedMaximumBitrate>()
}

/// Passes keyframe requests and REMB on to the application; everything else inbound was for
/// the interceptors and stops here.
#[derive(Default)]
struct RtcpForwarder {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for RtcpForwarder {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            let wanted: Vec<Box<dyn rtc::rtcp::Packet>> = packets
                .iter()
                .filter(|p| is_for_application(p.as_ref()))
                .cloned()
                .collect();
            if wanted.is_empty() {
                return Ok(());
            }
            msg.message.packet = Packet::Rtcp(wanted);
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write.pop_front()
    }
}

impl Interceptor for RtcpForwarder {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// What an SDP offers for video: the codecs by name, in order.
pub fn offered_video_codecs(sdp: &str) -> Option<Vec<String>> {
    let mut in_video = false;
    let mut any_video = false;
    let mut payloads: Vec<String> = Vec::new();
    let mut names = Vec::new();
    for line in sdp.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("m=") {
            in_video = m.starts_with("video ");
            if in_video {
                any_video = true;
                payloads = m.split_whitespace().skip(3).map(str::to_string).collect();
            }
        } else if in_video && let Some(rtpmap) = line.strip_prefix("a=rtpmap:") {
            let mut parts = rtpmap.splitn(2, ' ');
            let (Some(pt), Some(codec)) = (parts.next(), parts.next()) else {
                continue;
            };
            if payloads.iter().any(|p| p == pt) {
                let name = codec.split('/').next().unwrap_or(codec).to_string();
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
    }
    any_video.then_some(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_offered_video_codecs() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96 97 98\r\na=rtpmap:96 VP8/90000\r\n\
                   a=rtpmap:97 rtx/90000\r\na=rtpmap:98 H264/90000\r\n";
        assert_eq!(
            offered_video_codecs(sdp).unwrap(),
            vec!["VP8".to_string(), "rtx".into(), "H264".into()]
        );
        assert_eq!(offered_video_codecs("v=0\r\nm=audio 9 RTP 0\r\n"), None);
    }
}
