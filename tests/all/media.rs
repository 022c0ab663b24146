//! The media path end to end: real WebRTC peers on 127.0.0.1, the server decoding, filtering
//! (WASM) and re-encoding, the client decoding what comes back.

use std::time::Duration;

use prism::media::rtp::VideoCodec;
use prism::pipeline::{ElementId, MediaElement, MediaPipeline, PipelineContext};
use prism::webrtc::client::{ClientOptions, LoopbackClient};
use prism_tests::load;
use prism_tests::loopback::{connect, context, tokio};

fn serial() -> std::sync::MutexGuard<'static, ()> {
    prism_tests::media_lock()
}

/// Sends `seconds` of colour test pattern through `chain` (filter crate names) and back;
/// returns (frames sent, frames received, gray frames).
async fn loopback(
    ctx: PipelineContext,
    codec: VideoCodec,
    chain: &[&str],
    seconds: u64,
) -> (u64, u64, u64) {
    let pipeline = MediaPipeline::new(ctx).unwrap();
    let endpoint = pipeline.add_webrtc_endpoint().await.unwrap();
    let mut previous: ElementId = endpoint.id().clone();
    for name in chain {
        let filter = load(&pipeline.context().filters, name);
        let element = pipeline
            .add_filter(&filter, None, "prism", "WasmFilter")
            .unwrap();
        pipeline.connect(&previous, element.id(), None).unwrap();
        previous = element.id().clone();
    }
    pipeline.connect(&previous, endpoint.id(), None).unwrap();

    let client = LoopbackClient::new(ClientOptions {
        codec,
        ..ClientOptions::default()
    })
    .await
    .unwrap();
    connect(&pipeline, &endpoint, &client).await.unwrap();
    assert_eq!(endpoint.send_codec(), Some(codec), "negotiated send codec");
    client.start_sending().unwrap();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    client.stop_sending();
    // Let the last frames through the server and back.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let sent = client.frames_sent();
    let got = client.received();
    eprintln!(
        "{codec} {chain:?}: sent {sent}, received {}, gray {}, last mean {:?}, max chroma {}, server {}",
        got.frames,
        got.gray_frames,
        got.last_mean_rgb,
        got.last_max_chroma,
        endpoint.stats()
    );
    assert_eq!(endpoint.receive_codec(), Some(codec));
    client.close().await;
    pipeline.release();
    (sent, got.frames, got.gray_frames)
}

fn assert_gray_loopback(codec: VideoCodec, chain: &[&str]) {
    let rt = tokio();
    let (sent, received, gray) = rt.block_on(loopback(context(&rt), codec, chain, 4));
    assert!(sent >= 90, "the client sent only {sent} frames");
    assert!(
        received * 100 >= sent * 90,
        "{received} of {sent} frames came back (< 90%)"
    );
    assert!(
        gray * 100 >= received * 98,
        "only {gray} of {received} returned frames are gray"
    );
}

#[test]
fn vp8_loopback_through_grayscale_comes_back_gray() {
    let _serial = serial();
    assert_gray_loopback(VideoCodec::Vp8, &["grayscale"]);
}

#[test]
fn h264_loopback_through_grayscale_comes_back_gray() {
    let _serial = serial();
    assert_gray_loopback(VideoCodec::H264, &["grayscale"]);
}

#[test]
fn two_chained_filters() {
    let _serial = serial();
    assert_gray_loopback(VideoCodec::Vp8, &["passthrough", "grayscale"]);
}

#[test]
fn colour_survives_without_a_filter() {
    let _serial = serial();
    let rt = tokio();
    let (sent, received, gray) = rt.block_on(loopback(context(&rt), VideoCodec::Vp8, &[], 3));
    assert!(received * 100 >= sent * 90, "{received} of {sent}");
    assert_eq!(
        gray, 0,
        "the SMPTE bars must stay coloured without the filter"
    );
}

async fn client(codec: VideoCodec) -> LoopbackClient {
    LoopbackClient::new(ClientOptions {
        codec,
        ..ClientOptions::default()
    })
    .await
    .unwrap()
}

#[test]
fn fan_out_to_two_receivers() {
    let _serial = serial();
    let rt = tokio();
    let ctx = context(&rt);
    rt.block_on(async move {
        let pipeline = MediaPipeline::new(ctx).unwrap();
        let source = pipeline.add_webrtc_endpoint().await.unwrap();
        let viewers = [
            pipeline.add_webrtc_endpoint().await.unwrap(),
            pipeline.add_webrtc_endpoint().await.unwrap(),
        ];
        let gray = load(&pipeline.context().filters, "grayscale");
        let filter = pipeline
            .add_filter(&gray, None, "prism", "WasmFilter")
            .unwrap();
        pipeline.connect(source.id(), filter.id(), None).unwrap();
        for v in &viewers {
            pipeline.connect(filter.id(), v.id(), None).unwrap();
        }
        assert_eq!(
            pipeline.sink_connections(filter.id()).len(),
            4,
            "audio+video x2"
        );

        let sender = client(VideoCodec::Vp8).await;
        connect(&pipeline, &source, &sender).await.unwrap();
        let receivers = [client(VideoCodec::Vp8).await, client(VideoCodec::Vp8).await];
        for (viewer, receiver) in viewers.iter().zip(&receivers) {
            connect(&pipeline, viewer, receiver).await.unwrap();
        }
        sender.start_sending().unwrap();
        tokio::time::sleep(Duration::from_secs(4)).await;
        sender.stop_sending();
        tokio::time::sleep(Duration::from_millis(700)).await;
        let sent = sender.frames_sent();
        for receiver in &receivers {
            let got = receiver.received();
            eprintln!("fan-out: sent {sent}, received {got:?}");
            assert!(got.frames * 100 >= sent * 85, "{} of {sent}", got.frames);
            assert!(got.gray_frames * 100 >= got.frames * 98, "{got:?}");
        }
        // Nothing came back to the sender: its endpoint has no source.
        assert_eq!(sender.received().frames, 0);
        pipeline.release();
    });
}

#[test]
fn pli_from_the_receiver_forces_a_keyframe() {
    let _serial = serial();
    let rt = tokio();
    let ctx = context(&rt);
    rt.block_on(async move {
        let pipeline = MediaPipeline::new(ctx).unwrap();
        let endpoint = pipeline.add_webrtc_endpoint().await.unwrap();
        pipeline
            .connect(endpoint.id(), endpoint.id(), None)
            .unwrap();
        let peer = client(VideoCodec::Vp8).await;
        connect(&pipeline, &endpoint, &peer).await.unwrap();
        peer.start_sending().unwrap();
        // Past the first keyframe; the server's keyframe interval is 10 s.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let before = peer.received().keyframes;
        assert!(before >= 1, "the stream starts with a keyframe");
        assert_eq!(endpoint.forced_keyframes(), 0);
        let mut events = pipeline.subscribe();
        peer.send_pli().await.unwrap();
        let asked = tokio::time::Instant::now();
        let mut requested = false;
        while asked.elapsed() < Duration::from_secs(2) {
            if peer.received().keyframes > before {
                break;
            }
            if let Ok(Ok(ev)) = tokio::time::timeout(Duration::from_millis(20), events.recv()).await
            {
                requested |= ev.kind == prism::pipeline::EventKind::KeyframeRequested;
            }
        }
        let waited = asked.elapsed();
        eprintln!("keyframe {waited:?} after PLI");
        assert!(
            peer.received().keyframes > before,
            "no keyframe within {waited:?} of the PLI"
        );
        assert!(requested, "no KeyframeRequested event");
        assert_eq!(endpoint.forced_keyframes(), 1);
        // The GStreamer graph shows this endpoint's decode and encode branches.
        let dot = pipeline.gstreamer_dot();
        assert!(dot.starts_with("digraph"), "{}", &dot[..40.min(dot.len())]);
        for part in [
            "GstRtpJitterBuffer",
            "GstVP8Dec",
            "GstVP8Enc",
            "GstRtpVP8Pay",
        ] {
            assert!(dot.contains(part), "no {part} in the DOT graph");
        }
        assert!(dot.contains(&endpoint.id().gst_name()));
        peer.close().await;
        pipeline.release();
    });
}

#[test]
fn bad_sdp_gets_a_clear_error() {
    let _serial = serial();
    use prism::webrtc::WebRtcError;
    let rt = tokio();
    let ctx = context(&rt);
    rt.block_on(async move {
        let pipeline = MediaPipeline::new(ctx).unwrap();
        let endpoint = pipeline.add_webrtc_endpoint().await.unwrap();
        type Check = fn(&WebRtcError) -> bool;
        let cases: [(&str, Check); 4] = [
            ("", |e| matches!(e, WebRtcError::BadSdp(_))),
            ("hello, I am not an SDP", |e| matches!(e, WebRtcError::BadSdp(_))),
            (
                "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n",
                |e| matches!(e, WebRtcError::NoVideo),
            ),
            (
                "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 98\r\na=rtpmap:98 VP9/90000\r\n",
                |e| matches!(e, WebRtcError::UnsupportedCodec { .. }),
            ),
        ];
        for (sdp, expected) in cases {
            let err = endpoint.process_offer(sdp).await.unwrap_err();
            eprintln!("{sdp:?} -> {err} ({})", err.kurento_code());
            assert!(expected(&err), "{sdp:?} gave {err:?}");
        }
        let err = endpoint.process_offer("v=0\r\nm=video 9 RTP 98\r\na=rtpmap:98 VP9/90000\r\n").await.unwrap_err();
        assert!(err.to_string().contains("VP9"), "{err}");
        // A real offer cut in half: an error, not a panic.
        let peer = client(VideoCodec::Vp8).await;
        let offer = peer.create_offer(false).await.unwrap();
        let cut = &offer[..offer.len() / 2];
        let fresh = pipeline.add_webrtc_endpoint().await.unwrap();
        match fresh.process_offer(cut).await {
            Ok(_) => {}
            Err(e) => eprintln!("truncated offer -> {e}"),
        }
        // The endpoint still works after the errors.
        let ok = pipeline.add_webrtc_endpoint().await.unwrap();
        assert!(ok.process_offer(&offer).await.unwrap().contains("m=video"));
        peer.close().await;
        pipeline.release();
    });
}

fn process_counts() -> (usize, usize, u64) {
    let threads = std::fs::read_dir("/proc/self/task").unwrap().count();
    let fds = std::fs::read_dir("/proc/self/fd").unwrap().count();
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let rss_pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    (threads, fds, rss_pages * 4096 / (1024 * 1024))
}

#[test]
fn release_cycles_do_not_leak() {
    let _serial = serial();
    let rt = tokio();
    let ctx = context(&rt);
    rt.block_on(async move {
        let gray = load(&ctx.filters, "grayscale");
        let cycle = |ctx: prism::pipeline::PipelineContext| {
            let gray = gray.clone();
            async move {
                let pipeline = MediaPipeline::new(ctx).unwrap();
                let a = pipeline.add_webrtc_endpoint().await.unwrap();
                let b = pipeline.add_webrtc_endpoint().await.unwrap();
                let f = pipeline
                    .add_filter(&gray, None, "prism", "WasmFilter")
                    .unwrap();
                pipeline.connect(a.id(), f.id(), None).unwrap();
                pipeline.connect(f.id(), b.id(), None).unwrap();
                let _offer = a.generate_offer().await.unwrap();
                pipeline.release();
                assert!(pipeline.connect(a.id(), b.id(), None).is_err());
            }
        };
        for _ in 0..5 {
            cycle(ctx.clone()).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = process_counts();
        for _ in 0..50 {
            cycle(ctx.clone()).await;
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let after = process_counts();
        eprintln!("threads/fds/rss MB before {before:?}, after {after:?}");
        assert!(
            after.0 <= before.0 + 2,
            "threads grew: {before:?} -> {after:?}"
        );
        assert!(after.1 <= before.1 + 4, "fds grew: {before:?} -> {after:?}");
        assert!(
            after.2 <= before.2 + 40,
            "RSS grew: {before:?} -> {after:?}"
        );
    });
}

#[test]
fn graph_connect_replace_disconnect_release_without_network() {
    let _serial = serial();
    use prism::pipeline::{Connection, MediaType, PipelineError};
    let rt = tokio();
    let ctx = context(&rt);
    let _guard = rt.enter();
    let pipeline = MediaPipeline::new(ctx).unwrap();
    let a = pipeline.add_passthrough().unwrap();
    let b = pipeline.add_passthrough().unwrap();
    let gray = load(&pipeline.context().filters, "grayscale");
    let f = pipeline
        .add_filter(&gray, None, "prism", "WasmFilter")
        .unwrap();
    assert!(f.id().as_str().starts_with(pipeline.id().as_str()));
    assert!(f.id().as_str().ends_with("_prism.WasmFilter"));

    // Video only, then everything.
    assert_eq!(
        pipeline
            .connect(a.id(), f.id(), Some(MediaType::Video))
            .unwrap(),
        vec![MediaType::Video]
    );
    assert_eq!(pipeline.connect(f.id(), b.id(), None).unwrap().len(), 2);
    // A loop through forwarding elements is refused.
    assert!(matches!(
        pipeline.connect(b.id(), a.id(), None),
        Err(PipelineError::Loop { .. })
    ));
    // A new source for f's video replaces a.
    pipeline
        .connect(b.id(), f.id(), Some(MediaType::Video))
        .unwrap_err();
    let c = pipeline.add_passthrough().unwrap();
    pipeline
        .connect(c.id(), f.id(), Some(MediaType::Video))
        .unwrap();
    assert_eq!(
        pipeline.source_connections(f.id()),
        vec![Connection {
            source: c.id().clone(),
            sink: f.id().clone(),
            media: MediaType::Video
        }]
    );
    assert!(pipeline.graph_dot().contains("WasmFilter"));
    pipeline
        .disconnect(f.id(), b.id(), Some(MediaType::Audio))
        .unwrap();
    assert_eq!(pipeline.sink_connections(f.id()).len(), 1);
    pipeline.release_element(f.id()).unwrap();
    assert!(pipeline.connections().is_empty());
    assert!(matches!(
        pipeline.connect(c.id(), f.id(), None),
        Err(PipelineError::NoSuchElement(_))
    ));
    pipeline.release();
    assert!(matches!(
        pipeline.add_passthrough(),
        Err(PipelineError::Released)
    ));
}

#[test]
fn opus_passes_through_the_filter_chain_untouched() {
    let _serial = serial();
    let rt = tokio();
    let ctx = context(&rt);
    rt.block_on(async move {
        let pipeline = MediaPipeline::new(ctx).unwrap();
        let endpoint = pipeline.add_webrtc_endpoint().await.unwrap();
        let gray = load(&pipeline.context().filters, "grayscale");
        let filter = pipeline
            .add_filter(&gray, None, "prism", "WasmFilter")
            .unwrap();
        pipeline.connect(endpoint.id(), filter.id(), None).unwrap();
        pipeline.connect(filter.id(), endpoint.id(), None).unwrap();
        let peer = LoopbackClient::new(ClientOptions {
            audio: true,
            ..ClientOptions::default()
        })
        .await
        .unwrap();
        connect(&pipeline, &endpoint, &peer).await.unwrap();
        peer.start_sending().unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        peer.stop_sending();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (sent, back) = peer.audio_echo();
        eprintln!(
            "opus: {back} of {sent} packets came back unchanged; {}",
            endpoint.stats()
        );
        assert!(sent >= 100, "only {sent} Opus packets sent");
        assert!(
            back * 100 >= sent * 90,
            "{back} of {sent} Opus packets came back"
        );
        // Video still came back gray alongside.
        let video = peer.received();
        assert!(
            video.frames > 60 && video.gray_frames == video.frames,
            "{video:?}"
        );
        peer.close().await;
        pipeline.release();
    });
}

#[test]
fn encoder_bitrate_follows_the_receiver_within_bounds() {
    let _serial = serial();
    let rt = tokio();
    let mut ctx = context(&rt);
    ctx.webrtc.min_bitrate_bps = 200_000;
    ctx.webrtc.max_bitrate_bps = 700_000;
    ctx.webrtc.start_bitrate_bps = 500_000;
    rt.block_on(async move {
        let pipeline = MediaPipeline::new(ctx).unwrap();
        let endpoint = pipeline.add_webrtc_endpoint().await.unwrap();
        pipeline
            .connect(endpoint.id(), endpoint.id(), None)
            .unwrap();
        let peer = client(VideoCodec::Vp8).await;
        connect(&pipeline, &endpoint, &peer).await.unwrap();
        peer.start_sending().unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let free = endpoint.encoder_bitrate().unwrap();
        assert!(
            (200_000..=700_000).contains(&free),
            "bitrate {free} outside the configured bounds"
        );
        // The receiver says it can only take 300 kbit/s.
        for _ in 0..10 {
            peer.send_remb(300_000).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let capped = endpoint.encoder_bitrate().unwrap();
        eprintln!("bitrate free {free}, after REMB 300k {capped}");
        assert!(
            (200_000..=300_000).contains(&capped),
            "bitrate {capped} after a 300 kbit/s REMB"
        );
        // Below the floor: the floor wins.
        for _ in 0..5 {
            peer.send_remb(50_000).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(endpoint.encoder_bitrate(), Some(200_000));
        // The bounds can be changed per endpoint (Kurento's set{Min,Max}VideoSendBandwidth).
        endpoint.set_min_bitrate(100_000);
        endpoint.set_max_bitrate(250_000);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(endpoint.encoder_bitrate(), Some(100_000));
        peer.close().await;
        pipeline.release();
    });
}

#[test]
fn a_filter_that_hangs_is_contained_and_the_stream_goes_on() {
    use prism::pipeline::EventKind;
    use prism::runtime::{FaultKind, FilterEvent};
    let _serial = serial();
    let rt = tokio();
    let ctx = context(&rt);
    rt.block_on(async move {
        let pipeline = MediaPipeline::new(ctx).unwrap();
        let mut events = pipeline.subscribe();
        let endpoint = pipeline.add_webrtc_endpoint().await.unwrap();
        let hostile = load(&pipeline.context().filters, "hostile");
        let filter = pipeline
            .add_filter(&hostile, Some(r#"{"mode":"loop"}"#), "prism", "WasmFilter")
            .unwrap();
        pipeline.connect(endpoint.id(), filter.id(), None).unwrap();
        pipeline.connect(filter.id(), endpoint.id(), None).unwrap();
        let peer = client(VideoCodec::Vp8).await;
        connect(&pipeline, &endpoint, &peer).await.unwrap();
        peer.start_sending().unwrap();
        tokio::time::sleep(Duration::from_secs(4)).await;
        peer.stop_sending();
        tokio::time::sleep(Duration::from_millis(700)).await;
        let (sent, got) = (peer.frames_sent(), peer.received());
        let mut timeouts = 0;
        let mut disabled = false;
        while let Ok(ev) = events.try_recv() {
            if ev.element != *filter.id() {
                continue;
            }
            match ev.kind {
                EventKind::Filter {
                    event: FilterEvent::Error { fault, .. },
                } => {
                    assert_eq!(fault, FaultKind::Timeout);
                    timeouts += 1;
                }
                EventKind::Filter {
                    event: FilterEvent::Disabled { .. },
                } => disabled = true,
                _ => {}
            }
        }
        eprintln!(
            "hanging filter: sent {sent}, back {}, timeouts {timeouts}, disabled {disabled}; {}",
            got.frames,
            filter.stats()
        );
        assert!(
            timeouts >= 1 && disabled,
            "the hang was reported and the filter disabled"
        );
        // Every frame came back (passed on unchanged while failing, then with the filter off).
        assert!(
            got.frames * 100 >= sent * 80,
            "{} of {sent} frames came back",
            got.frames
        );
        // The server still makes new sessions.
        let other = pipeline.add_webrtc_endpoint().await.unwrap();
        assert!(
            other
                .process_offer(
                    &client(VideoCodec::Vp8)
                        .await
                        .create_offer(false)
                        .await
                        .unwrap()
                )
                .await
                .is_ok()
        );
        peer.close().await;
        pipeline.release();
    });
}

#[test]
fn a_slow_filter_drops_stale_frames_instead_of_queueing() {
    let _serial = serial();
    let rt = tokio();
    let ctx = context(&rt);
    rt.block_on(async move {
        let pipeline = MediaPipeline::new(ctx).unwrap();
        let endpoint = pipeline.add_webrtc_endpoint().await.unwrap();
        let hostile = load(&pipeline.context().filters, "hostile");
        let filter = pipeline
            .add_filter(&hostile, Some(r#"{"mode":"slow"}"#), "prism", "WasmFilter")
            .unwrap();
        pipeline.connect(endpoint.id(), filter.id(), None).unwrap();
        pipeline.connect(filter.id(), endpoint.id(), None).unwrap();
        let peer = client(VideoCodec::Vp8).await;
        connect(&pipeline, &endpoint, &peer).await.unwrap();
        peer.start_sending().unwrap();
        tokio::time::sleep(Duration::from_secs(4)).await;
        let stats = filter.stats();
        let latency = endpoint.latency_rtp().percentiles_ms();
        peer.stop_sending();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let got = peer.received();
        eprintln!(
            "slow filter: {stats}; back {} of {}; latency {latency:?}",
            got.frames,
            peer.frames_sent()
        );
        let n = |k: &str| stats[k].as_u64().unwrap();
        // 40 ms a frame cannot keep up with 30 fps: stale frames are dropped, not queued.
        assert!(n("framesDroppedStale") > 10, "{stats}");
        // Every frame in was processed or dropped, but for one in the worker and one in the
        // mailbox when the counters were read.
        assert!(
            n("framesProcessed") + n("framesDroppedStale") + 2 >= n("framesIn"),
            "{stats}"
        );
        assert!(n("framesProcessed") > 40, "{stats}");
        // So the delay stays one frame's work, not a growing queue.
        let (_, p99) = latency.unwrap();
        assert!(p99 < 400.0, "added latency p99 {p99} ms");
        assert!(got.frames > 40, "frames still come back: {got:?}");
        peer.close().await;
        pipeline.release();
    });
}
