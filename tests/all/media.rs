//! The media path end to end: real WebRTC peers on 127.0.0.1, the server decoding, filtering
//! (WASM) and re-encoding, the client decoding what comes back.

use std::time::Duration;

use prism::media::rtp::VideoCodec;
use prism::pipeline::{ElementId, MediaElement, MediaPipeline, PipelineContext};
use prism::webrtc::client::{ClientOptions, LoopbackClient};
use prism_tests::loopback::{connect, context, tokio};
use prism_tests::load;

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
    assert_gray_loopback(VideoCodec::Vp8, &["grayscale"]);
}

#[test]
fn h264_loopback_through_grayscale_comes_back_gray() {
    assert_gray_loopback(VideoCodec::H264, &["grayscale"]);
}

#[test]
fn two_chained_filters() {
    assert_gray_loopback(VideoCodec::Vp8, &["passthrough", "grayscale"]);
}

#[test]
fn colour_survives_without_a_filter() {
    let rt = tokio();
    let (sent, received, gray) = rt.block_on(loopback(context(&rt), VideoCodec::Vp8, &[], 3));
    assert!(received * 100 >= sent * 90, "{received} of {sent}");
    assert_eq!(gray, 0, "the SMPTE bars must stay coloured without the filter");
}
