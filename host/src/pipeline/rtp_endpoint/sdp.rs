//! SDP offer/answer for the `RtpEndpoint` (RFC 3264 over plain RTP, RFC 4568 SDES keys):
//! reading a remote description into what to send where and what to accept, and writing
//! Prism's offers and answers. Pure: no sockets, no GStreamer.
//!
//! What Prism puts in an SDP: `RTP/AVP` (`RTP/SAVP` with `a=crypto` when SRTP is on), an
//! `m=video` with VP8 and H.264 (packetization mode 1) and an `m=audio` with Opus/48000/2,
//! each on its own UDP port with RTCP on the next one (`a=rtcp`), `a=rtcp-mux` offered.
//! What it reads: `RTP/AVP`, `RTP/AVPF`, `RTP/SAVP` or `RTP/SAVPF` sections; the codec it
//! sends is the first one of the remote's list it supports; it accepts every supported payload
//! type of the section. Not handled: BUNDLE, ICE, DTLS (that is the WebRtcEndpoint), static
//! payload types (PCMU, H.263...), multicast.

use std::io::Cursor;
use std::net::{IpAddr, SocketAddr};

use rtc::sdp::SessionDescription;
use rtc::sdp::description::common::Attribute;

use super::srtp::{CryptoSuite, SrtpKey};
use crate::media::rtp::VideoCodec;
use crate::pipeline::MediaType;
use crate::webrtc::engine::{H264_FMTP, H264_PAYLOAD_TYPE, OPUS_PAYLOAD_TYPE, VP8_PAYLOAD_TYPE};

/// The fmtp line of Opus as Prism sends it.
const OPUS_FMTP: &str = "minptime=10;useinbandfec=1";
/// Longest piece of a parser's complaint quoted back in an error.
const QUOTE_MAX: usize = 80;

/// A codec of a media section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// A video codec (decoded and re-encoded by Prism).
    Video(VideoCodec),
    /// Opus (passed through).
    Opus,
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Codec::Video(c) => write!(f, "{c}"),
            Codec::Opus => f.write_str("opus"),
        }
    }
}

/// Which way media flows, as the author of an SDP says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Both ways.
    SendRecv,
    /// The author only sends.
    SendOnly,
    /// The author only receives.
    RecvOnly,
    /// Neither.
    Inactive,
}

impl Direction {
    fn parse(attribute: &str) -> Option<Self> {
        match attribute {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    fn from_flags(send: bool, recv: bool) -> Self {
        match (send, recv) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

/// One `a=rtpmap`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RtpMap {
    payload_type: u8,
    name: String,
    clock_rate: u32,
}

/// One `a=crypto`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CryptoLine {
    tag: String,
    suite: String,
    key_params: String,
}

/// One `m=` section of a remote SDP, as far as Prism reads it.
#[derive(Debug, Clone)]
struct Section {
    media: String,
    port: u16,
    proto: String,
    formats: Vec<String>,
    /// The section's or else the session's `c=` address.
    address: Result<IpAddr, String>,
    rtcp: Option<(u16, Option<IpAddr>)>,
    rtcp_mux: bool,
    direction: Direction,
    rtpmaps: Vec<RtpMap>,
    fmtps: Vec<(u8, String)>,
    cryptos: Vec<CryptoLine>,
}

/// A remote SDP, read.
#[derive(Debug, Clone)]
pub struct RemoteSdp {
    sections: Vec<Section>,
}

fn quote(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(QUOTE_MAX) {
        Some((end, _)) => format!("{}...", &s[..end]),
        None => s.to_string(),
    }
}

fn parse_address(
    info: Option<&rtc::sdp::description::common::ConnectionInformation>,
) -> Option<Result<IpAddr, String>> {
    let info = info?;
    let Some(address) = &info.address else {
        return Some(Err("a c= line without an address".into()));
    };
    // `224.2.1.1/127` (multicast TTL) is not for unicast RTP; a host name is not resolved here.
    Some(address.address.parse::<IpAddr>().map_err(|_| {
        format!(
            "c= address {:?} is not an IP address",
            quote(&address.address)
        )
    }))
}

fn attr<'a>(attributes: &'a [Attribute], key: &str) -> impl Iterator<Item = &'a str> {
    attributes
        .iter()
        .filter(move |a| a.key == key)
        .map(|a| a.value.as_deref().unwrap_or(""))
}

fn parse_rtpmap(value: &str) -> Option<RtpMap> {
    let (pt, codec) = value.trim().split_once(' ')?;
    let mut parts = codec.trim().split('/');
    let name = parts.next()?.to_string();
    let clock_rate = parts.next()?.trim().parse().ok()?;
    Some(RtpMap {
        payload_type: pt.trim().parse().ok()?,
        name,
        clock_rate,
    })
}

fn parse_rtcp(value: &str) -> Option<(u16, Option<IpAddr>)> {
    // a=rtcp:<port> [IN IP4 <address>] (RFC 3605)
    let mut parts = value.split_whitespace();
    let port = parts.next()?.parse().ok()?;
    let address = parts.nth(2).and_then(|a| a.parse().ok());
    Some((port, address))
}

/// Reads a remote SDP. The error says what is wrong with it.
pub fn parse(sdp: &str) -> Result<RemoteSdp, String> {
    if !sdp.trim_start().starts_with("v=") {
        return Err("an SDP starts with a \"v=\" line".into());
    }
    let session = SessionDescription::unmarshal(&mut Cursor::new(sdp.as_bytes()))
        .map_err(|e| quote(&e.to_string()))?;
    if session.media_descriptions.is_empty() {
        return Err("no media (m=) sections".into());
    }
    let session_address = parse_address(session.connection_information.as_ref());
    let session_direction = session
        .attributes
        .iter()
        .find_map(|a| Direction::parse(&a.key));
    let mut sections = Vec::new();
    for m in &session.media_descriptions {
        let name = &m.media_name;
        let port = u16::try_from(name.port.value)
            .map_err(|_| format!("m={} has port {}", name.media, name.port.value))?;
        let address = parse_address(m.connection_information.as_ref())
            .or_else(|| session_address.clone())
            .unwrap_or_else(|| Err(format!("m={} has no c= address", name.media)));
        let fmtps = attr(&m.attributes, "fmtp")
            .filter_map(|v| {
                let (pt, params) = v.split_once(' ')?;
                Some((pt.trim().parse().ok()?, params.trim().to_string()))
            })
            .collect();
        let cryptos = attr(&m.attributes, "crypto")
            .filter_map(|v| {
                let mut parts = v.split_whitespace();
                Some(CryptoLine {
                    tag: parts.next()?.to_string(),
                    suite: parts.next()?.to_string(),
                    key_params: parts.next()?.to_string(),
                })
            })
            .collect();
        sections.push(Section {
            media: name.media.clone(),
            port,
            proto: name.protos.join("/"),
            formats: name.formats.clone(),
            address,
            rtcp: attr(&m.attributes, "rtcp").find_map(parse_rtcp),
            rtcp_mux: m.attributes.iter().any(|a| a.key == "rtcp-mux"),
            direction: m
                .attributes
                .iter()
                .find_map(|a| Direction::parse(&a.key))
                .or(session_direction)
                .unwrap_or(Direction::SendRecv),
            rtpmaps: attr(&m.attributes, "rtpmap")
                .filter_map(parse_rtpmap)
                .collect(),
            fmtps,
            cryptos,
        });
    }
    Ok(RemoteSdp { sections })
}

impl RemoteSdp {
    /// The address of the first section that has one (to pick the local address facing it).
    pub fn first_address(&self) -> Option<IpAddr> {
        self.sections.iter().find_map(|s| s.address.clone().ok())
    }
}

/// What was agreed for one media type.
#[derive(Debug, Clone)]
pub struct MediaPlan {
    /// Audio or video.
    pub kind: MediaType,
    /// The section's transport (`RTP/AVP`...), echoed in an answer.
    proto: String,
    /// Where RTP goes.
    pub remote_rtp: SocketAddr,
    /// Where RTCP goes.
    pub remote_rtcp: SocketAddr,
    /// RTCP on the RTP port.
    pub rtcp_mux: bool,
    /// Whether Prism sends (the remote receives).
    pub send: bool,
    /// Whether Prism receives (the remote sends).
    pub recv: bool,
    /// The codec Prism sends, and its payload type.
    pub codec: Codec,
    /// Its payload type.
    pub payload_type: u8,
    /// Every payload type Prism accepts on this stream.
    pub receive: Vec<(u8, Codec)>,
    /// The remote's SRTP key (what it sends is protected with it).
    pub remote_key: Option<SrtpKey>,
    crypto_tag: Option<String>,
}

impl MediaPlan {
    /// The codec of a received payload type.
    pub fn codec_of(&self, payload_type: u8) -> Option<Codec> {
        self.receive
            .iter()
            .find(|(pt, _)| *pt == payload_type)
            .map(|(_, c)| *c)
    }
}

/// What became of one remote section.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Usable.
    Accepted(MediaPlan),
    /// Not usable (or declined by the remote), and why.
    Rejected {
        /// `m=` media name.
        media: String,
        /// Its transport.
        proto: String,
        /// Its formats.
        formats: Vec<String>,
        /// Why.
        reason: String,
    },
}

/// What Prism supports, for a negotiation.
#[derive(Debug, Clone, Copy)]
pub struct Capabilities<'a> {
    /// Video codecs in order of preference.
    pub codecs: &'a [VideoCodec],
    /// Prism's SRTP key, when SRTP is on.
    pub key: Option<&'a SrtpKey>,
}

fn is_secure(proto: &str) -> Option<bool> {
    match proto.to_ascii_uppercase().as_str() {
        "RTP/AVP" | "RTP/AVPF" => Some(false),
        "RTP/SAVP" | "RTP/SAVPF" => Some(true),
        _ => None,
    }
}

fn packetization_mode_1(fmtp: Option<&str>) -> bool {
    fmtp.is_some_and(|f| {
        f.split(';')
            .any(|p| p.trim().eq_ignore_ascii_case("packetization-mode=1"))
    })
}

/// The codecs of a section Prism supports, in the section's order: (payload type, codec,
/// whether Prism can send it).
fn supported(section: &Section, kind: MediaType, codecs: &[VideoCodec]) -> Vec<(u8, Codec, bool)> {
    let mut found = Vec::new();
    for format in &section.formats {
        let Ok(pt) = format.parse::<u8>() else {
            continue;
        };
        let Some(map) = section.rtpmaps.iter().find(|m| m.payload_type == pt) else {
            continue;
        };
        let fmtp = section
            .fmtps
            .iter()
            .find(|(p, _)| *p == pt)
            .map(|(_, f)| f.as_str());
        match kind {
            MediaType::Video => {
                let codec = codecs
                    .iter()
                    .copied()
                    .find(|c| c.to_string().eq_ignore_ascii_case(&map.name));
                if let Some(codec) = codec
                    && map.clock_rate == 90_000
                {
                    // Prism's payloader fragments (FU-A): H.264 in mode 0 can be received but
                    // not sent.
                    let sendable = codec != VideoCodec::H264 || packetization_mode_1(fmtp);
                    found.push((pt, Codec::Video(codec), sendable));
                }
            }
            MediaType::Audio => {
                if map.name.eq_ignore_ascii_case("opus") && map.clock_rate == 48_000 {
                    found.push((pt, Codec::Opus, true));
                }
            }
        }
    }
    found
}

fn rtpmap_names(section: &Section) -> String {
    let names: Vec<String> = section
        .formats
        .iter()
        .map(|f| {
            f.parse::<u8>()
                .ok()
                .and_then(|pt| section.rtpmaps.iter().find(|m| m.payload_type == pt))
                .map_or_else(
                    || format!("payload type {f}"),
                    |m| format!("{}/{}", m.name, m.clock_rate),
                )
        })
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn plan(section: &Section, kind: MediaType, caps: Capabilities<'_>) -> Result<MediaPlan, String> {
    if section.port == 0 {
        return Err("declined by the peer (port 0)".into());
    }
    let secure = is_secure(&section.proto).ok_or_else(|| {
        format!(
            "transport {} is not plain RTP (RTP/AVP, RTP/AVPF, RTP/SAVP or RTP/SAVPF; \
             WebRTC peers use a WebRtcEndpoint)",
            section.proto
        )
    })?;
    let address = section.address.clone()?;
    let found = supported(section, kind, caps.codecs);
    let Some(&(payload_type, codec, _)) = found.iter().find(|(_, _, sendable)| *sendable) else {
        let supported = match kind {
            MediaType::Video => caps
                .codecs
                .iter()
                .map(|c| {
                    if *c == VideoCodec::H264 {
                        "H264/90000 (packetization-mode=1)".to_string()
                    } else {
                        format!("{c}/90000")
                    }
                })
                .collect::<Vec<_>>()
                .join(", "),
            MediaType::Audio => "opus/48000/2".into(),
        };
        return Err(format!(
            "no supported codec (offered: {}; supported: {supported})",
            rtpmap_names(section)
        ));
    };
    let (remote_key, crypto_tag) = match (secure, caps.key) {
        (false, None) => (None, None),
        (true, None) => {
            return Err(format!(
                "{} needs SRTP, and this endpoint was created without `crypto`",
                section.proto
            ));
        }
        (false, Some(key)) => {
            return Err(format!(
                "this endpoint uses SRTP ({}), the peer offers unencrypted {}",
                key.suite(),
                section.proto
            ));
        }
        (true, Some(key)) => {
            let ours = key.suite();
            let line = section
                .cryptos
                .iter()
                .find(|c| CryptoSuite::from_sdp_name(&c.suite) == Some(ours))
                .ok_or_else(|| {
                    let offered: Vec<&str> =
                        section.cryptos.iter().map(|c| c.suite.as_str()).collect();
                    format!(
                        "no a=crypto line with {} (offered: {})",
                        ours.sdp_name(),
                        if offered.is_empty() {
                            "none".into()
                        } else {
                            offered.join(", ")
                        }
                    )
                })?;
            let remote = SrtpKey::from_sdp(ours, &line.key_params)
                .map_err(|e| format!("a=crypto:{}: {e}", line.tag))?;
            (Some(remote), Some(line.tag.clone()))
        }
    };
    let remote_rtp = SocketAddr::new(address, section.port);
    let remote_rtcp = if section.rtcp_mux {
        remote_rtp
    } else {
        match section.rtcp {
            Some((port, rtcp_address)) => SocketAddr::new(rtcp_address.unwrap_or(address), port),
            None => SocketAddr::new(address, section.port.saturating_add(1)),
        }
    };
    Ok(MediaPlan {
        kind,
        proto: section.proto.clone(),
        remote_rtp,
        remote_rtcp,
        rtcp_mux: section.rtcp_mux,
        // An unspecified address (0.0.0.0) is the old way of putting a stream on hold.
        send: section.direction.receives() && !address.is_unspecified(),
        recv: section.direction.sends(),
        codec,
        payload_type,
        receive: found.iter().map(|(pt, c, _)| (*pt, *c)).collect(),
        remote_key,
        crypto_tag,
    })
}

/// Decides, per remote section, what Prism does with it. The error lists why nothing is usable.
pub fn negotiate(remote: &RemoteSdp, caps: Capabilities<'_>) -> Result<Vec<Outcome>, String> {
    let mut taken = Vec::new();
    let mut reasons = Vec::new();
    let outcomes: Vec<Outcome> = remote
        .sections
        .iter()
        .map(|section| {
            let kind = match section.media.as_str() {
                "video" => Ok(MediaType::Video),
                "audio" => Ok(MediaType::Audio),
                other => Err(format!("{other} media is not supported")),
            };
            let result = kind.and_then(|kind| {
                if taken.contains(&kind) {
                    return Err(format!("only one {} section is used", section.media));
                }
                let plan = plan(section, kind, caps)?;
                taken.push(kind);
                Ok(plan)
            });
            match result {
                Ok(plan) => Outcome::Accepted(plan),
                Err(reason) => {
                    reasons.push(format!("m={}: {reason}", section.media));
                    Outcome::Rejected {
                        media: section.media.clone(),
                        proto: section.proto.clone(),
                        formats: section.formats.clone(),
                        reason,
                    }
                }
            }
        })
        .collect();
    if taken.is_empty() {
        return Err(reasons.join("; "));
    }
    Ok(outcomes)
}

/// Prism's side of a session description.
#[derive(Debug, Clone, Copy)]
pub struct Local<'a> {
    /// `o=` session id.
    pub session_id: u64,
    /// `o=` version.
    pub version: u64,
    /// The address the remote sends to (`c=`).
    pub address: IpAddr,
    /// What Prism supports.
    pub caps: Capabilities<'a>,
    /// `a=ssrc ... cname:`.
    pub cname: &'a str,
}

/// Prism's ports and SSRC for one media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalStream {
    /// Audio or video.
    pub kind: MediaType,
    /// RTP port.
    pub rtp_port: u16,
    /// RTCP port.
    pub rtcp_port: u16,
    /// The SSRC Prism sends with.
    pub ssrc: u32,
}

fn media_name(kind: MediaType) -> &'static str {
    match kind {
        MediaType::Video => "video",
        MediaType::Audio => "audio",
    }
}

fn push(sdp: &mut String, line: impl AsRef<str>) {
    sdp.push_str(line.as_ref());
    sdp.push_str("\r\n");
}

fn session_header(local: &Local<'_>) -> String {
    let family = if local.address.is_ipv4() {
        "IP4"
    } else {
        "IP6"
    };
    let mut sdp = String::new();
    push(&mut sdp, "v=0");
    push(
        &mut sdp,
        format!(
            "o=- {} {} IN {family} {}",
            local.session_id, local.version, local.address
        ),
    );
    push(&mut sdp, "s=Prism RtpEndpoint");
    push(&mut sdp, format!("c=IN {family} {}", local.address));
    push(&mut sdp, "t=0 0");
    sdp
}

fn codec_lines(sdp: &mut String, payload_type: u8, codec: Codec) {
    match codec {
        Codec::Video(c) => {
            push(sdp, format!("a=rtpmap:{payload_type} {c}/90000"));
            if c == VideoCodec::H264 {
                push(sdp, format!("a=fmtp:{payload_type} {H264_FMTP}"));
            }
            push(sdp, format!("a=rtcp-fb:{payload_type} nack pli"));
            push(sdp, format!("a=rtcp-fb:{payload_type} ccm fir"));
        }
        Codec::Opus => {
            push(sdp, format!("a=rtpmap:{payload_type} opus/48000/2"));
            push(sdp, format!("a=fmtp:{payload_type} {OPUS_FMTP}"));
        }
    }
}

fn stream_lines(sdp: &mut String, local: &Local<'_>, stream: &LocalStream) {
    push(sdp, format!("a=ssrc:{} cname:{}", stream.ssrc, local.cname));
}

/// The payload type Prism gives a codec in its offers (as the WebRtcEndpoint does).
fn offer_payload_type(codec: Codec) -> u8 {
    match codec {
        Codec::Video(VideoCodec::Vp8) => VP8_PAYLOAD_TYPE,
        Codec::Video(VideoCodec::H264) => H264_PAYLOAD_TYPE,
        Codec::Opus => OPUS_PAYLOAD_TYPE,
    }
}

/// Prism's offer: one section per stream, sending and receiving.
pub fn write_offer(local: &Local<'_>, streams: &[LocalStream]) -> String {
    let mut sdp = session_header(local);
    let proto = if local.caps.key.is_some() {
        "RTP/SAVP"
    } else {
        "RTP/AVP"
    };
    for stream in streams {
        let codecs: Vec<Codec> = match stream.kind {
            MediaType::Video => local.caps.codecs.iter().map(|c| Codec::Video(*c)).collect(),
            MediaType::Audio => vec![Codec::Opus],
        };
        let pts: Vec<String> = codecs
            .iter()
            .map(|c| offer_payload_type(*c).to_string())
            .collect();
        push(
            &mut sdp,
            format!(
                "m={} {} {proto} {}",
                media_name(stream.kind),
                stream.rtp_port,
                pts.join(" ")
            ),
        );
        for codec in codecs {
            codec_lines(&mut sdp, offer_payload_type(codec), codec);
        }
        push(&mut sdp, format!("a=rtcp:{}", stream.rtcp_port));
        push(&mut sdp, "a=rtcp-mux");
        if let Some(key) = local.caps.key {
            push(
                &mut sdp,
                format!("a=crypto:1 {} {}", key.suite().sdp_name(), key.sdp_inline()),
            );
        }
        push(&mut sdp, "a=sendrecv");
        stream_lines(&mut sdp, local, stream);
    }
    sdp
}

/// Prism's answer to a remote offer: a section for each of the offer's, in order, the rejected
/// ones with port 0 (RFC 3264 6). `streams` has the local ports of the accepted media.
pub fn write_answer(local: &Local<'_>, outcomes: &[Outcome], streams: &[LocalStream]) -> String {
    let mut sdp = session_header(local);
    for outcome in outcomes {
        let accepted = match outcome {
            Outcome::Accepted(plan) => streams
                .iter()
                .find(|s| s.kind == plan.kind)
                .map(|s| (plan, s)),
            Outcome::Rejected { .. } => None,
        };
        let Some((plan, stream)) = accepted else {
            let (media, proto, formats) = match outcome {
                Outcome::Rejected {
                    media,
                    proto,
                    formats,
                    ..
                } => (media.as_str(), proto.as_str(), formats.join(" ")),
                Outcome::Accepted(plan) => (
                    media_name(plan.kind),
                    plan.proto.as_str(),
                    plan.payload_type.to_string(),
                ),
            };
            let formats = if formats.is_empty() {
                "0".into()
            } else {
                formats
            };
            push(&mut sdp, format!("m={media} 0 {proto} {formats}"));
            continue;
        };
        push(
            &mut sdp,
            format!(
                "m={} {} {} {}",
                media_name(plan.kind),
                stream.rtp_port,
                plan.proto,
                plan.payload_type
            ),
        );
        codec_lines(&mut sdp, plan.payload_type, plan.codec);
        if plan.rtcp_mux {
            push(&mut sdp, "a=rtcp-mux");
        } else {
            push(&mut sdp, format!("a=rtcp:{}", stream.rtcp_port));
        }
        if let (Some(key), Some(tag)) = (local.caps.key, &plan.crypto_tag) {
            push(
                &mut sdp,
                format!(
                    "a=crypto:{tag} {} {}",
                    key.suite().sdp_name(),
                    key.sdp_inline()
                ),
            );
        }
        push(
            &mut sdp,
            format!("a={}", Direction::from_flags(plan.send, plan.recv).as_str()),
        );
        stream_lines(&mut sdp, local, stream);
    }
    sdp
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODECS: &[VideoCodec] = &[VideoCodec::Vp8, VideoCodec::H264];

    fn caps(key: Option<&SrtpKey>) -> Capabilities<'_> {
        Capabilities {
            codecs: CODECS,
            key,
        }
    }

    fn local<'a>(key: Option<&'a SrtpKey>) -> Local<'a> {
        Local {
            session_id: 42,
            version: 1,
            address: "10.0.0.5".parse().unwrap(),
            caps: caps(key),
            cname: "prism",
        }
    }

    fn streams() -> Vec<LocalStream> {
        vec![
            LocalStream {
                kind: MediaType::Video,
                rtp_port: 40000,
                rtcp_port: 40001,
                ssrc: 1111,
            },
            LocalStream {
                kind: MediaType::Audio,
                rtp_port: 40002,
                rtcp_port: 40003,
                ssrc: 2222,
            },
        ]
    }

    fn accepted(outcomes: &[Outcome]) -> Vec<&MediaPlan> {
        outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Accepted(p) => Some(p),
                Outcome::Rejected { .. } => None,
            })
            .collect()
    }

    const CAMERA: &str = "v=0\r\no=- 1 1 IN IP4 192.168.1.20\r\ns=cam\r\nc=IN IP4 192.168.1.20\r\n\
        t=0 0\r\nm=video 5000 RTP/AVP 97 96\r\na=rtpmap:97 H264/90000\r\n\
        a=fmtp:97 packetization-mode=1;profile-level-id=42e01f\r\na=rtpmap:96 VP8/90000\r\n\
        a=sendonly\r\nm=application 6000 RTP/AVP 100\r\n";

    #[test]
    fn answers_a_camera() {
        let remote = parse(CAMERA).unwrap();
        assert_eq!(
            remote.first_address(),
            Some("192.168.1.20".parse().unwrap())
        );
        let outcomes = negotiate(&remote, caps(None)).unwrap();
        let plans = accepted(&outcomes);
        assert_eq!(plans.len(), 1);
        let video = plans[0];
        assert_eq!(video.codec, Codec::Video(VideoCodec::H264));
        assert_eq!(video.payload_type, 97);
        assert_eq!(
            video.receive,
            vec![
                (97, Codec::Video(VideoCodec::H264)),
                (96, Codec::Video(VideoCodec::Vp8))
            ]
        );
        assert!(video.recv && !video.send, "a sendonly camera");
        assert_eq!(
            video.remote_rtp,
            "192.168.1.20:5000".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            video.remote_rtcp,
            "192.168.1.20:5001".parse::<SocketAddr>().unwrap()
        );
        assert!(
            matches!(&outcomes[1], Outcome::Rejected { reason, .. } if reason.contains("application"))
        );

        let answer = write_answer(&local(None), &outcomes, &streams());
        assert!(answer.contains("c=IN IP4 10.0.0.5\r\n"), "{answer}");
        assert!(answer.contains("m=video 40000 RTP/AVP 97\r\n"), "{answer}");
        assert!(answer.contains("a=rtpmap:97 H264/90000\r\n"), "{answer}");
        assert!(answer.contains("packetization-mode=1"), "{answer}");
        assert!(answer.contains("a=rtcp:40001\r\n"), "{answer}");
        assert!(answer.contains("a=recvonly\r\n"), "{answer}");
        assert!(
            answer.contains("m=application 0 RTP/AVP 100\r\n"),
            "{answer}"
        );
        // Prism's answer reads back as a valid SDP.
        parse(&answer).unwrap();
    }

    #[test]
    fn offer_and_answer_with_srtp_round_trip() {
        let ours = SrtpKey::random(CryptoSuite::Aes256CmHmacSha1_80);
        let theirs = SrtpKey::random(CryptoSuite::Aes256CmHmacSha1_80);
        let offer = write_offer(&local(Some(&ours)), &streams());
        assert!(
            offer.contains("m=video 40000 RTP/SAVP 96 102\r\n"),
            "{offer}"
        );
        assert!(offer.contains("m=audio 40002 RTP/SAVP 111\r\n"), "{offer}");
        assert!(
            offer.contains("a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:"),
            "{offer}"
        );
        assert!(offer.contains("a=rtpmap:111 opus/48000/2\r\n"), "{offer}");

        // The other side answers it.
        let remote = parse(&offer).unwrap();
        let outcomes = negotiate(&remote, caps(Some(&theirs))).unwrap();
        let plans = accepted(&outcomes);
        assert_eq!(plans.len(), 2);
        assert_eq!(plans[0].remote_key.as_ref(), Some(&ours));
        assert!(plans[0].rtcp_mux && plans[0].send && plans[0].recv);
        assert_eq!(plans[0].remote_rtcp, plans[0].remote_rtp);
        assert_eq!(plans[1].codec, Codec::Opus);
        let answer = write_answer(&local(Some(&theirs)), &outcomes, &streams());
        assert!(answer.contains("a=rtcp-mux\r\n"), "{answer}");
        assert!(answer.contains("m=video 40000 RTP/SAVP 96\r\n"), "{answer}");

        // And the offerer reads the answer.
        let outcomes = negotiate(&parse(&answer).unwrap(), caps(Some(&ours))).unwrap();
        let plans = accepted(&outcomes);
        assert_eq!(plans[0].remote_key.as_ref(), Some(&theirs));
        assert_eq!(plans[0].codec, Codec::Video(VideoCodec::Vp8));
        assert_eq!(plans[1].payload_type, 111);
    }

    fn reasons(sdp: &str, key: Option<&SrtpKey>) -> String {
        negotiate(&parse(sdp).unwrap(), caps(key)).unwrap_err()
    }

    #[test]
    fn unusable_offers_say_why() {
        let h263 = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n\
                    m=video 5000 RTP/AVP 34\r\na=rtpmap:34 H263/90000\r\n";
        let why = reasons(h263, None);
        assert!(
            why.contains("no supported codec") && why.contains("H263/90000"),
            "{why}"
        );

        let mode0 = h263.replace("34 H263", "34 H264");
        let why = reasons(&mode0, None);
        assert!(why.contains("packetization-mode=1"), "{why}");

        let key = SrtpKey::random(CryptoSuite::default());
        let plain = h263.replace("34 H263", "34 VP8");
        assert!(reasons(&plain, Some(&key)).contains("unencrypted"));
        let savp = plain.replace("RTP/AVP", "RTP/SAVP");
        assert!(reasons(&savp, None).contains("without `crypto`"));
        assert!(reasons(&savp, Some(&key)).contains("no a=crypto line"));
        let short_key = format!("{savp}a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:QUJDRA==\r\n");
        let why = reasons(&short_key, Some(&key));
        assert!(why.contains("30 bytes") && why.contains("is 4"), "{why}");

        let webrtc = plain.replace("RTP/AVP", "UDP/TLS/RTP/SAVPF");
        assert!(reasons(&webrtc, None).contains("WebRtcEndpoint"));
        let no_address = plain.replace("c=IN IP4 1.2.3.4\r\n", "");
        assert!(reasons(&no_address, None).contains("no c= address"));
        let declined = plain.replace("video 5000", "video 0");
        assert!(reasons(&declined, None).contains("declined"));
    }

    #[test]
    fn broken_sdps_are_errors() {
        for bad in [
            "",
            "hello",
            "v=0\r\n",
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\n",
            "v=0\r\nm=video 5000 RTP/AVP 96\r\n",
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=video 99999 RTP/AVP 96\r\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
        assert!(parse("garbage").unwrap_err().contains("v="));
    }

    /// Every truncation and many byte flips of a valid offer: errors or outcomes, no panic.
    #[test]
    fn mangled_sdps_never_panic() {
        let key = SrtpKey::random(CryptoSuite::default());
        let offer = write_offer(&local(Some(&key)), &streams());
        let bytes = offer.as_bytes();
        let try_one = |text: &str| {
            if let Ok(remote) = parse(text) {
                let _ = negotiate(&remote, caps(Some(&key)));
                let _ = negotiate(&remote, caps(None));
            }
        };
        for end in 0..bytes.len() {
            try_one(&String::from_utf8_lossy(&bytes[..end]));
        }
        let mut state = 0x2545_f491_u32;
        for _ in 0..3000 {
            let mut mangled = bytes.to_vec();
            for _ in 0..3 {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                let at = state as usize % mangled.len();
                mangled[at] = b" =:/\r\n0123456789abcmv"[(state >> 20) as usize % 21];
            }
            try_one(&String::from_utf8_lossy(&mangled));
        }
    }
}
