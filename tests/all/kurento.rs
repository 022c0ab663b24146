//! The Kurento protocol with the real `kurento-client@7.3.0` (Node) driving Prism, and a real
//! WebRTC peer (the loopback client) on the other side.

use std::process::Stdio;
use std::time::Duration;

use prism::webrtc::client::{ClientOptions, LoopbackClient};
use prism_tests::loopback::tokio;
use prism_tests::root;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The Node test directory, with `kurento-client` installed (`make test` runs npm).
fn node_dir() -> std::path::PathBuf {
    let dir = root().join("tests/kurento");
    assert!(
        dir.join("node_modules/kurento-client").is_dir(),
        "kurento-client is not installed: run `make test` (npm ci in tests/kurento)"
    );
    dir
}

#[test]
fn kurento_client_hello_world_loopback() {
    let rt = tokio();
    let (server, addr) = prism_tests::server::start(&rt, Duration::from_secs(5));
    rt.block_on(async move {
        let peer = LoopbackClient::new(ClientOptions::default()).await.unwrap();
        let offer = peer.create_offer(false).await.unwrap();
        let offer_file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(offer_file.path(), &offer).unwrap();
        let mut node = tokio::process::Command::new("node")
            .arg(node_dir().join("hello.js"))
            .arg(format!("ws://{addr}/kurento"))
            .arg(offer_file.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node");
        let mut stdin = node.stdin.take().unwrap();
        let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
        let mut next = async || -> Value {
            let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
                .await
                .expect("node went quiet")
                .unwrap()
                .expect("node ended");
            let v: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("{line}"));
            assert!(v.get("error").is_none(), "node: {v}");
            v
        };
        // Answer first, then candidates (subscription before processOffer).
        let first = next().await;
        let answer = first["answer"].as_str().expect("answer").to_string();
        assert!(answer.contains("m=video"));
        let endpoint = first["endpoint"].as_str().unwrap().to_string();
        let pipeline = first["pipeline"].as_str().unwrap().to_string();
        assert!(pipeline.ends_with("_kurento.MediaPipeline"), "{pipeline}");
        assert!(
            endpoint.starts_with(&format!("{pipeline}/"))
                && endpoint.ends_with("_kurento.WebRtcEndpoint"),
            "{endpoint}"
        );
        peer.set_answer(&answer).await.unwrap();
        let mut candidates = 0;
        loop {
            let v = next().await;
            if v.get("ready").is_some() {
                break;
            }
            let c = &v["candidate"];
            assert_eq!(v["type"], "IceCandidateFound");
            assert_eq!(v["source"], endpoint.as_str());
            assert_eq!(c["__type__"], "IceCandidate");
            peer.add_ice_candidate(prism::pipeline::IceCandidate {
                candidate: c["candidate"].as_str().unwrap().to_string(),
                sdp_mid: c["sdpMid"].as_str().map(str::to_string),
                sdp_mline_index: c["sdpMLineIndex"].as_u64().map(|i| i as u16),
            })
            .await
            .unwrap();
            candidates += 1;
        }
        assert!(candidates >= 1, "no IceCandidateFound events");
        peer.wait_connected(Duration::from_secs(15)).await.unwrap();
        peer.start_sending().unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        stdin.write_all(b"flowing\n").await.unwrap();
        assert_eq!(next().await["flowingIn"], true);
        let got = peer.received();
        assert!(
            got.frames * 100 >= peer.frames_sent() * 80,
            "{} of {} frames came back",
            got.frames,
            peer.frames_sent()
        );
        assert_eq!(got.gray_frames, 0, "no filter: colours stay");
        assert_eq!(server.pipelines(), vec![pipeline.clone()]);
        stdin.write_all(b"release\n").await.unwrap();
        assert_eq!(next().await["released"], true);
        assert!(server.pipelines().is_empty());
        peer.close().await;
    });
}
