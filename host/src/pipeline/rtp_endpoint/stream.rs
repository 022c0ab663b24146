//! One negotiated media stream of an `RtpEndpoint`: its sockets, what was agreed, its SRTP
//! branch and counters, and how it sends (protected first when SRTP is on).

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;

use super::sdp::{LocalStream, MediaPlan};
use super::srtp::{Flow, SrtpBranch};
use super::transport::{self, Kind, PortPair};
use crate::pipeline::MediaType;

#[derive(Default)]
pub(super) struct StreamCounters {
    pub(super) packets_in: AtomicU64,
    pub(super) bytes_in: AtomicU64,
    pub(super) packets_out: AtomicU64,
    pub(super) bytes_out: AtomicU64,
    pub(super) rtcp_in: AtomicU64,
    pub(super) rtcp_out: AtomicU64,
    pub(super) unknown_payload_type: AtomicU64,
    pub(super) invalid: AtomicU64,
    pub(super) send_errors: AtomicU64,
}

/// One media stream: its sockets, what was negotiated, its SRTP.
pub(super) struct Stream {
    pub(super) kind: MediaType,
    pub(super) ports: PortPair,
    /// Whether the sockets are IPv6.
    pub(super) ipv6: bool,
    pub(super) plan: OnceLock<MediaPlan>,
    pub(super) srtp: OnceLock<SrtpBranch>,
    /// The remote's SSRC (0 until its first packet), for keyframe requests.
    pub(super) remote_ssrc: AtomicU32,
    /// Sinks that took the last video packet as it is (encoded).
    pub(super) encoded_sinks: AtomicUsize,
    pub(super) counters: StreamCounters,
}

impl Stream {
    pub(super) fn local(&self, ssrc: u32) -> LocalStream {
        LocalStream {
            kind: self.kind,
            rtp_port: self.ports.rtp_port(),
            rtcp_port: self.ports.rtcp_port(),
            ssrc,
        }
    }

    /// Sends a datagram to the remote as it is.
    pub(super) fn transmit(&self, kind: Kind, datagram: &[u8]) {
        let Some(plan) = self.plan.get() else { return };
        if !plan.send && kind == Kind::Rtp {
            return;
        }
        let (socket, to) = match kind {
            Kind::Rtcp if !plan.rtcp_mux => (&self.ports.rtcp, plan.remote_rtcp),
            _ => (&self.ports.rtp, plan.remote_rtp),
        };
        let to = transport::reachable(self.ipv6, to);
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
    pub(super) fn send_rtp(&self, packet: Bytes) {
        match self.srtp.get() {
            Some(srtp) => srtp.push(Flow::RtpOut, packet),
            None => self.transmit(Kind::Rtp, &packet),
        }
    }

    /// Sends an RTCP packet (protected first when SRTP is on).
    pub(super) fn send_rtcp(&self, packet: Bytes) {
        match self.srtp.get() {
            Some(srtp) => srtp.push(Flow::RtcpOut, packet),
            None => self.transmit(Kind::Rtcp, &packet),
        }
    }

    pub(super) fn stats(&self) -> serde_json::Value {
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
pub(super) struct Streams {
    pub(super) video: Option<Arc<Stream>>,
    pub(super) audio: Option<Arc<Stream>>,
}

impl Streams {
    pub(super) fn get(&self, kind: MediaType) -> Option<&Arc<Stream>> {
        match kind {
            MediaType::Video => self.video.as_ref(),
            MediaType::Audio => self.audio.as_ref(),
        }
    }

    pub(super) fn all(&self) -> impl Iterator<Item = &Arc<Stream>> {
        self.video.iter().chain(self.audio.iter())
    }
}
