//! `RtpEndpoint`: plain RTP and SDES-SRTP with SDP offer/answer. A camera made with GStreamer
//! (`videotestsrc ! enc ! pay [! srtpenc] ! udpsink`) sends to the endpoint's answer; two
//! endpoints negotiate with each other; broken SDPs and wrong keys fail cleanly.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use prism::media::rtp::{VideoCodec, VideoFrame};
use prism::pipeline::{
    AudioSink, ElementId, EventKind, MediaElement, MediaPipeline, MediaType, PipelineContext,
    RtpEndpoint, RtpEndpointError, RtpEndpointOptions, SrtpCrypto, VideoSink,
};
use prism_frame::{Color, FrameBuf, PixelFormat};
use prism_tests::loopback::{context, tokio};
use rtc::rtp;

fn serial() -> std::sync::MutexGuard<'static, ()> {
    prism_tests::media_lock()
}

/// A 30-character raw key (AES-128 master key + salt).
const KEY_128: &str = "prism-rtp-endpoint-test-key-30";

/// Frames seen by a sink, and the colour at the centre of the last one.
struct Probe {
    format: Option<PixelFormat>,
    frames: AtomicU64,
    centre: Mutex<Option<(u8, u8, u8)>>,
}

impl Probe {
    fn new(format: Option<PixelFormat>) -> Arc<Self> {
        Arc::new(Self {
            format,
            frames: AtomicU64::new(0),
            centre: Mutex::new(None),
        })
    }

    fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    fn centre(&self) -> Option<(u8, u8, u8)> {
        *self.centre.lock().unwrap()
    }
}

fn clamp(v: f32) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

/// The RGB colour at the centre of a frame (BT.601 limited range for i420).
fn centre_rgb(buf: &FrameBuf) -> (u8, u8, u8) {
    let (x, y) = (buf.width() / 2, buf.height() / 2);
    match buf.format() {
        PixelFormat::Rgba | PixelFormat::Gray8 => {
            let p = buf.pixel(x, y).unwrap();
            if p.len() >= 3 {
                (p[0], p[1], p[2])
            } else {
                (p[0], p[0], p[0])
            }
        }
        PixelFormat::I420 => {
            let planes = buf.planes();
            let at =
                |i: usize, x: u32, y: u32| buf.plane(i)[(y * planes[i].stride + x) as usize] as f32;
            let luma = 1.164 * (at(0, x, y) - 16.0);
            let (u, v) = (at(1, x / 2, y / 2) - 128.0, at(2, x / 2, y / 2) - 128.0);
            (
                clamp(luma + 1.596 * v),
                clamp(luma - 0.392 * u - 0.813 * v),
                clamp(luma + 2.017 * u),
            )
        }
    }
}

impl VideoSink for Probe {
    fn push_video(&self, frame: Arc<VideoFrame>) {
        *self.centre.lock().unwrap() = Some(centre_rgb(&frame.buf));
        self.frames.fetch_add(1, Ordering::Relaxed);
    }

    fn wanted_format(&self) -> Option<PixelFormat> {
        self.format
    }
}

/// Audio packets seen by a sink.
#[derive(Default)]
struct AudioProbe {
    packets: Mutex<Vec<rtp::Packet>>,
}

impl AudioSink for AudioProbe {
    fn push_audio(&self, packet: &rtp::Packet) {
        self.packets.lock().unwrap().push(packet.clone());
    }
}

fn near(got: (u8, u8, u8), want: Color) -> bool {
    let d = |a: u8, b: u8| (a as i32 - b as i32).abs();
    d(got.0, want.r) <= 24 && d(got.1, want.g) <= 24 && d(got.2, want.b) <= 24
}

/// Waits until `done` or `timeout`; whether it became true.
fn wait_for(timeout: Duration, done: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}

/// The port of the `m=<media>` section of an SDP.
fn port_of(sdp: &str, media: &str) -> u16 {
    sdp.lines()
        .find_map(|l| l.strip_prefix(&format!("m={media} ")))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no m={media} port in\n{sdp}"))
}

/// The `inline:` key of the first `a=crypto` line.
fn inline_key(sdp: &str) -> &str {
    sdp.lines()
        .find_map(|l| l.strip_prefix("a=crypto:"))
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or_else(|| panic!("no a=crypto in\n{sdp}"))
}

fn srtp_options(key: &str) -> RtpEndpointOptions {
    RtpEndpointOptions {
        crypto: Some(SrtpCrypto {
            crypto: None,
            key: Some(key.into()),
            key_base64: None,
        }),
        use_ipv6: false,
    }
}

/// A camera: a solid `colour` test picture, encoded, payloaded, optionally SRTP-protected
/// with `key` (AES_128_CM_HMAC_SHA1_80), sent to 127.0.0.1:`port`.
fn camera(codec: VideoCodec, colour: Color, port: u16, key: Option<&[u8]>) -> gst::Pipeline {
    gst::init().unwrap();
    let argb = 0xff00_0000u32 | (colour.r as u32) << 16 | (colour.g as u32) << 8 | colour.b as u32;
    let encode = match codec {
        VideoCodec::Vp8 => "vp8enc deadline=1 keyframe-max-dist=30 ! rtpvp8pay pt=96 mtu=1200",
        VideoCodec::H264 => {
            "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! \
             video/x-h264,profile=constrained-baseline ! rtph264pay pt=97 config-interval=-1 \
             mtu=1200"
        }
    };
    let srtp = if key.is_some() {
        "srtpenc name=srtp rtp-cipher=aes-128-icm rtp-auth=hmac-sha1-80 ! "
    } else {
        ""
    };
    let description = format!(
        "videotestsrc is-live=true pattern=solid-color foreground-color={argb} ! \
         video/x-raw,width=320,height=240,framerate=30/1 ! {encode} ! {srtp}\
         udpsink host=127.0.0.1 port={port} sync=false"
    );
    let pipeline = gst::parse::launch(&description)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    if let Some(key) = key {
        let srtp = pipeline.by_name("srtp").unwrap();
        srtp.set_property("key", gst::Buffer::from_slice(key.to_vec()));
    }
    pipeline.set_state(gst::State::Playing).unwrap();
    pipeline
}

/// The offer of a send-only camera at 127.0.0.1 whose RTCP port is `rtcp`.
fn camera_offer(codec: VideoCodec, rtcp: u16, crypto: Option<&str>) -> String {
    let (proto, pt, rtpmap) = match codec {
        VideoCodec::Vp8 => ("RTP/AVP", 96, "a=rtpmap:96 VP8/90000\r\n".to_string()),
        VideoCodec::H264 => (
            "RTP/AVP",
            97,
            "a=rtpmap:97 H264/90000\r\na=fmtp:97 packetization-mode=1;profile-level-id=42e01f\r\n"
                .to_string(),
        ),
    };
    let (proto, crypto) = match crypto {
        Some(inline) => (
            "RTP/SAVP",
            format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 {inline}\r\n"),
        ),
        None => (proto, String::new()),
    };
    format!(
        "v=0\r\no=- 7 1 IN IP4 127.0.0.1\r\ns=camera\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=video {} {proto} {pt}\r\n{rtpmap}a=rtcp:{rtcp}\r\n{crypto}a=sendonly\r\n",
        rtcp - 1
    )
}

fn pipeline(rt: &tokio::runtime::Runtime) -> MediaPipeline {
    MediaPipeline::new(context(rt)).unwrap()
}

fn probe_outputs(endpoint: &RtpEndpoint, format: Option<PixelFormat>) -> Arc<Probe> {
    let probe = Probe::new(format);
    let outputs = endpoint.outputs().unwrap();
    outputs.add_video(ElementId::from("probe"), probe.clone());
    endpoint.outputs_changed();
    probe
}

/// A camera sends to the endpoint's answer; the decoded frames have the camera's colour; the
/// endpoint asks the camera for a keyframe on its RTCP port.
fn camera_to_outputs(codec: VideoCodec, srtp: bool) {
    let _serial = serial();
    let rt = tokio();
    let pipeline = pipeline(&rt);
    let mut events = pipeline.subscribe();
    let options = if srtp {
        srtp_options(KEY_128)
    } else {
        RtpEndpointOptions::default()
    };
    let endpoint = pipeline.add_rtp_endpoint(options).unwrap();
    let probe = probe_outputs(&endpoint, Some(PixelFormat::Rgba));

    let rtcp = UdpSocket::bind("127.0.0.1:0").unwrap();
    rtcp.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let rtcp_port = rtcp.local_addr().unwrap().port();
    // The camera's own key, announced in its offer.
    let camera_key = b"camera-key-for-the-srtp-test!!";
    let camera_inline = srtp.then(|| {
        // Another endpoint's offer is a convenient base64 encoder.
        let encoder = pipeline.add_rtp_endpoint(srtp_options("camera-key-for-the-srtp-test!!"));
        let offer = encoder.unwrap().generate_offer().unwrap();
        inline_key(&offer).to_string()
    });
    let answer = endpoint
        .process_offer(&camera_offer(codec, rtcp_port, camera_inline.as_deref()))
        .unwrap();
    assert!(answer.contains("a=recvonly"), "{answer}");
    assert!(answer.contains("c=IN IP4 127.0.0.1"), "{answer}");
    if srtp {
        assert!(answer.contains("RTP/SAVP"), "{answer}");
        assert!(
            answer.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"),
            "{answer}"
        );
    }
    assert_eq!(endpoint.local_sdp().as_deref(), Some(answer.as_str()));
    assert!(endpoint.remote_sdp().unwrap().contains("camera"));

    let colour = Color::rgb(200, 40, 120);
    let sender = camera(
        codec,
        colour,
        port_of(&answer, "video"),
        srtp.then_some(&camera_key[..]),
    );
    let got = wait_for(Duration::from_secs(8), || probe.frames() >= 30);
    let pli = {
        let mut buf = [0u8; 1500];
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut seen = None;
        while seen.is_none() && Instant::now() < deadline {
            if let Ok(n) = rtcp.recv(&mut buf) {
                seen = Some(buf[..n].to_vec());
            }
        }
        seen
    };
    let _ = sender.set_state(gst::State::Null);
    let stats = endpoint.stats();
    eprintln!(
        "{codec} srtp={srtp}: {} frames, centre {:?}, {stats}",
        probe.frames(),
        probe.centre()
    );
    assert!(got, "only {} frames decoded: {stats}", probe.frames());
    let centre = probe.centre().unwrap();
    assert!(near(centre, colour), "centre {centre:?}, sent {colour:?}");
    assert_eq!(endpoint.receive_codec(), Some(codec));
    assert_eq!(
        endpoint.send_codec(),
        None,
        "a send-only camera gets nothing"
    );
    assert!(
        stats["video"]["packetsIn"].as_u64().unwrap() >= 30,
        "{stats}"
    );
    let pli = pli.expect("a keyframe request on the camera's RTCP port");
    if !srtp {
        // A receiver report (201) then a payload-specific feedback (206) of format 1 (PLI).
        assert_eq!(pli[1], 201, "{pli:?}");
        let second = 4 * (u16::from_be_bytes([pli[2], pli[3]]) as usize + 1);
        assert_eq!((pli[second] & 0x1f, pli[second + 1]), (1, 206), "{pli:?}");
    }
    // The pipeline saw the media start.
    let mut flowing = false;
    while let Ok(e) = events.try_recv() {
        if &e.element == endpoint.id()
            && e.kind
                == (EventKind::MediaFlowInStateChanged {
                    media: MediaType::Video,
                    flowing: true,
                })
        {
            flowing = true;
        }
    }
    assert!(flowing, "no MediaFlowInStateChanged(VIDEO, true)");
    pipeline.release();
}

#[test]
fn vp8_camera_to_outputs() {
    camera_to_outputs(VideoCodec::Vp8, false);
}

#[test]
fn h264_camera_to_outputs() {
    camera_to_outputs(VideoCodec::H264, false);
}

#[test]
fn srtp_camera_to_outputs() {
    camera_to_outputs(VideoCodec::Vp8, true);
}

/// Feeds `frames` solid frames at 30 frames/s, and an Opus-like packet with each.
fn feed(endpoint: &RtpEndpoint, colour: Color, frames: u32) {
    let video = endpoint.video_sink().unwrap();
    let audio = endpoint.audio_sink().unwrap();
    let start = Instant::now();
    for i in 0..frames {
        video.push_video(Arc::new(VideoFrame {
            buf: FrameBuf::filled(PixelFormat::I420, 320, 240, colour),
            pts_us: u64::from(i) * 33_333,
            decoded_at: Instant::now(),
        }));
        let mut packet = rtp::Packet::default();
        packet.header.version = 2;
        packet.header.payload_type = 100;
        packet.header.sequence_number = i as u16;
        packet.header.timestamp = i * 960;
        packet.header.ssrc = 0x1234;
        packet.payload = bytes::Bytes::from(vec![0xab, i as u8, 0xcd]);
        audio.push_audio(&packet);
        let next = start + Duration::from_micros(u64::from(i + 1) * 33_333);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

struct Pair {
    pipeline: MediaPipeline,
    a: Arc<RtpEndpoint>,
    b: Arc<RtpEndpoint>,
    video: Arc<Probe>,
    audio: Arc<AudioProbe>,
}

/// A offers, B answers, A takes the answer; B's output goes through a PassThrough to probes.
fn pair(
    ctx: PipelineContext,
    a: RtpEndpointOptions,
    b: RtpEndpointOptions,
    tamper: impl Fn(String) -> String,
) -> Pair {
    let pipeline = MediaPipeline::new(ctx).unwrap();
    let ea = pipeline.add_rtp_endpoint(a).unwrap();
    let eb = pipeline.add_rtp_endpoint(b).unwrap();
    let offer = ea.generate_offer().unwrap();
    assert_eq!(
        ea.generate_offer().unwrap(),
        offer,
        "asking again gives the same offer"
    );
    let answer = eb.process_offer(&tamper(offer)).unwrap();
    ea.process_answer(&answer).unwrap();
    let through = pipeline.add_passthrough().unwrap();
    pipeline.connect(eb.id(), through.id(), None).unwrap();
    let video = Probe::new(None);
    let audio = Arc::new(AudioProbe::default());
    let outputs = through.outputs().unwrap();
    outputs.add_video(ElementId::from("probe"), video.clone());
    outputs.add_audio(ElementId::from("probe"), audio.clone());
    Pair {
        pipeline,
        a: ea,
        b: eb,
        video,
        audio,
    }
}

fn bindable(port: u16) -> bool {
    wait_for(Duration::from_secs(2), || {
        UdpSocket::bind(("127.0.0.1", port)).is_ok()
    })
}

/// Two endpoints with SRTP (each its own key) negotiate; frames pushed into A come out of B
/// in their colour, Opus passes through with B's payload type, B's keyframe request reaches
/// A over SRTCP; releasing frees the ports.
#[test]
fn two_endpoints_with_srtp() {
    let _serial = serial();
    let rt = tokio();
    let b_options = RtpEndpointOptions {
        crypto: Some(SrtpCrypto {
            crypto: Some(prism::pipeline::CryptoSuite::Aes256CmHmacSha1_32),
            key: None,
            key_base64: None,
        }),
        use_ipv6: false,
    };
    // Both ends must use the same suite; B's key is random.
    let a_options = RtpEndpointOptions {
        crypto: Some(SrtpCrypto {
            crypto: Some(prism::pipeline::CryptoSuite::Aes256CmHmacSha1_32),
            key: Some("0123456789abcdef0123456789abcdef0123456789abcd".into()),
            key_base64: None,
        }),
        use_ipv6: false,
    };
    let p = pair(context(&rt), a_options, b_options, |o| o);
    let offer = p.a.local_sdp().unwrap();
    assert!(
        offer.contains("m=video") && offer.contains("RTP/SAVP"),
        "{offer}"
    );
    assert!(
        offer.contains("a=crypto:1 AES_256_CM_HMAC_SHA1_32 inline:"),
        "{offer}"
    );
    assert_ne!(inline_key(&offer), inline_key(&p.b.local_sdp().unwrap()));
    assert_eq!(p.a.send_codec(), Some(VideoCodec::Vp8));

    let colour = Color::rgb(30, 160, 220);
    feed(&p.a, colour, 90);
    let got = wait_for(Duration::from_secs(3), || p.video.frames() >= 30);
    let (sa, sb) = (p.a.stats(), p.b.stats());
    eprintln!("A {sa}\nB {sb}");
    assert!(got, "B decoded {} frames", p.video.frames());
    let centre = p.video.centre().unwrap();
    assert!(near(centre, colour), "centre {centre:?}, sent {colour:?}");
    assert!(
        sb["video"]["srtpPacketsDecrypted"].as_u64().unwrap() > 30,
        "{sb}"
    );
    assert!(sa["keyframeRequestsIn"].as_u64().unwrap() >= 1, "{sa}");

    let audio = p.audio.packets.lock().unwrap().clone();
    assert!(audio.len() >= 60, "{} audio packets", audio.len());
    let last = audio.last().unwrap();
    assert_eq!(last.header.payload_type, 111);
    assert_eq!(&last.payload[..], &[0xab, last.payload[1], 0xcd]);
    assert_ne!(last.header.ssrc, 0x1234, "re-stamped with A's SSRC");

    let ports: Vec<u16> = [&p.a, &p.b]
        .iter()
        .flat_map(|e| {
            let sdp = e.local_sdp().unwrap();
            [port_of(&sdp, "video"), port_of(&sdp, "audio")]
        })
        .collect();
    p.pipeline.release_element(p.a.id()).unwrap();
    p.pipeline.release();
    for port in ports {
        assert!(bindable(port), "port {port} still taken after release");
    }
    assert!(matches!(
        p.a.generate_offer(),
        Err(RtpEndpointError::Released)
    ));
}

/// B is told a key that is not the one A protects with: nothing decodes, nothing breaks.
#[test]
fn mismatched_srtp_key_decodes_nothing() {
    let _serial = serial();
    let rt = tokio();
    let pipeline = pipeline(&rt);
    let other = pipeline
        .add_rtp_endpoint(srtp_options("another-key-of-thirty-bytes!!!"))
        .unwrap();
    let wrong = inline_key(&other.generate_offer().unwrap()).to_string();
    let p = pair(
        context(&rt),
        srtp_options(KEY_128),
        srtp_options(KEY_128),
        |offer| offer.replace(inline_key(&offer), &wrong),
    );
    feed(&p.a, Color::rgb(250, 250, 0), 60);
    std::thread::sleep(Duration::from_millis(500));
    let sb = p.b.stats();
    eprintln!("B {sb}");
    assert_eq!(p.video.frames(), 0, "{sb}");
    assert!(p.audio.packets.lock().unwrap().is_empty());
    assert!(sb["video"]["srtpPacketsIn"].as_u64().unwrap() > 30, "{sb}");
    assert_eq!(
        sb["video"]["srtpPacketsDecrypted"].as_u64(),
        Some(0),
        "{sb}"
    );
    assert_eq!(sb["video"]["packetsIn"].as_u64(), Some(0), "{sb}");
    if let Some(rejected) = sb["video"]["srtpPacketsRejected"].as_u64() {
        assert!(rejected > 30, "{sb}");
    }
    assert_eq!(sb["framesDecoded"].as_u64(), Some(0));
    p.pipeline.release();
    pipeline.release();
}

fn code(result: Result<impl std::fmt::Debug, RtpEndpointError>) -> (i64, String) {
    let e = result.unwrap_err();
    (e.kurento_code(), e.to_string())
}

/// Broken SDPs and wrong keys are errors with Kurento codes; the endpoint stays usable.
#[test]
fn broken_sdps_are_errors() {
    let rt = tokio();
    let pipeline = pipeline(&rt);
    let plain = pipeline
        .add_rtp_endpoint(RtpEndpointOptions::default())
        .unwrap();
    let head = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n";

    let (c, m) = code(plain.process_offer("this is not an SDP"));
    assert_eq!(c, 40201, "{m}");
    assert!(m.contains("v="), "{m}");
    let (c, m) = code(plain.process_offer(head));
    assert_eq!(c, 40201, "{m}");
    assert!(m.contains("no media"), "{m}");
    let (c, m) = code(plain.process_offer(&format!(
        "{head}m=video 5000 RTP/AVP 34 97\r\na=rtpmap:97 H265/90000\r\nm=audio 5002 RTP/AVP 0\r\n"
    )));
    assert_eq!(c, 40205, "{m}");
    assert!(m.contains("H265/90000") && m.contains("m=audio"), "{m}");
    let (c, m) = code(plain.process_offer(&format!(
        "{head}m=video 5000 RTP/SAVP 96\r\na=rtpmap:96 VP8/90000\r\n\
         a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{}\r\n",
        "A".repeat(40)
    )));
    assert_eq!(c, 40205, "{m}");
    assert!(m.contains("without `crypto`"), "{m}");
    let (c, m) = code(plain.process_answer(head));
    assert_eq!(c, 40209, "{m}");
    assert_eq!(plain.local_sdp(), None);

    // A wrong key length in an offer.
    let secure = pipeline.add_rtp_endpoint(srtp_options(KEY_128)).unwrap();
    let (c, m) = code(secure.process_offer(&format!(
        "{head}m=video 5000 RTP/SAVP 96\r\na=rtpmap:96 VP8/90000\r\n\
         a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:c2hvcnQga2V5\r\n"
    )));
    assert_eq!(c, 40205, "{m}");
    assert!(m.contains("30 bytes"), "{m}");
    // ... and in the constructor.
    let (c, m) = code(pipeline.add_rtp_endpoint(srtp_options("too short")));
    assert_eq!(c, 40107, "{m}");
    assert!(m.contains("30 bytes") && m.contains("is 9"), "{m}");

    // After all that the endpoint still negotiates, once.
    let good = format!("{head}m=video 5000 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n");
    let answer = plain.process_offer(&good).unwrap();
    assert!(
        answer.contains("m=video ") && answer.contains("a=sendrecv"),
        "{answer}"
    );
    let (c, m) = code(plain.process_offer(&good));
    assert_eq!(c, 40208, "{m}");
    let (c, m) = code(plain.process_answer(&good));
    assert_eq!(c, 40210, "{m}");

    // An offerer refuses a garbage answer and then takes a good one.
    let offerer = pipeline
        .add_rtp_endpoint(RtpEndpointOptions::default())
        .unwrap();
    offerer.generate_offer().unwrap();
    let (c, m) = code(offerer.process_answer("v=0\r\nm=video x"));
    assert_eq!(c, 40201, "{m}");
    let (c, m) = code(offerer.process_answer(&format!(
        "{head}m=video 5000 RTP/AVP 34\r\nm=audio 0 RTP/AVP 111\r\n"
    )));
    assert_eq!(c, 40206, "{m}");
    offerer.process_answer(&good).unwrap();
    assert_eq!(offerer.send_codec(), Some(VideoCodec::Vp8));

    // An IPv6 peer for an IPv4 endpoint.
    let v4 = pipeline
        .add_rtp_endpoint(RtpEndpointOptions::default())
        .unwrap();
    let (c, m) = code(v4.process_offer(&good.replace("IN IP4 127.0.0.1", "IN IP6 ::1")));
    assert_eq!(c, 40205, "{m}");
    assert!(m.contains("useIpv6"), "{m}");
    pipeline.release();
}

/// `useIpv6`: both ends bind and announce IPv6, and media flows.
#[test]
fn ipv6_endpoints() {
    if UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback on this machine: nothing to test");
        return;
    }
    let _serial = serial();
    let rt = tokio();
    let mut ctx = context(&rt);
    ctx.webrtc.bind_addrs.push("[::1]:0".into());
    let ipv6 = RtpEndpointOptions {
        crypto: None,
        use_ipv6: true,
    };
    let p = pair(ctx, ipv6.clone(), ipv6, |o| o);
    let offer = p.a.local_sdp().unwrap();
    assert!(offer.contains("c=IN IP6 ::1\r\n"), "{offer}");
    assert!(
        offer.contains("m=video ") && offer.contains(" RTP/AVP 96 102\r\n"),
        "{offer}"
    );
    let colour = Color::rgb(240, 240, 240);
    feed(&p.a, colour, 45);
    let got = wait_for(Duration::from_secs(3), || p.video.frames() >= 10);
    assert!(
        got,
        "B decoded {} frames: {}",
        p.video.frames(),
        p.b.stats()
    );
    assert!(near(p.video.centre().unwrap(), colour));
    p.pipeline.release();
}
