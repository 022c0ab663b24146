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
    let dir = root().join("tests/node");
    assert!(
        dir.join("node_modules/kurento-client").is_dir(),
        "kurento-client is not installed: run `make test` (npm ci in tests/node)"
    );
    dir
}

/// A script of tests/node talking to Prism, heard as JSON lines on its stdout and told things
/// on its stdin.
struct NodeScript {
    _node: tokio::process::Child,
    _offer: tempfile::NamedTempFile,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl NodeScript {
    /// Runs `node SCRIPT ws://ADDR/kurento OFFER_FILE`.
    fn spawn(script: &str, addr: std::net::SocketAddr, offer: &str) -> NodeScript {
        let offer_file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(offer_file.path(), offer).unwrap();
        let mut node = tokio::process::Command::new("node")
            .arg(node_dir().join(script))
            .arg(format!("ws://{addr}/kurento"))
            .arg(offer_file.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node");
        NodeScript {
            stdin: node.stdin.take().unwrap(),
            lines: BufReader::new(node.stdout.take().unwrap()).lines(),
            _node: node,
            _offer: offer_file,
        }
    }

    /// The next line; a line with `error` fails the test.
    async fn next(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(30), self.lines.next_line())
            .await
            .expect("node went quiet")
            .unwrap()
            .expect("node ended");
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("{line}"));
        assert!(v.get("error").is_none(), "node: {v}");
        v
    }

    async fn say(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
    }

    /// Hands every `{"candidate"}` line to `peer` until `{"ready"}`; returns the lines.
    async fn trickle(&mut self, peer: &LoopbackClient) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            let v = self.next().await;
            if v.get("ready").is_some() {
                return seen;
            }
            let c = &v["candidate"];
            peer.add_ice_candidate(prism::pipeline::IceCandidate {
                candidate: c["candidate"].as_str().unwrap().to_string(),
                sdp_mid: c["sdpMid"].as_str().map(str::to_string),
                sdp_mline_index: c["sdpMLineIndex"].as_u64().map(|i| i as u16),
            })
            .await
            .unwrap();
            seen.push(v);
        }
    }
}

#[test]
fn kurento_client_hello_world_loopback() {
    let _media = prism_tests::media_lock();
    let rt = tokio();
    let test_server = prism_tests::server::start(&rt, Duration::from_secs(5));
    let (server, addr) = (test_server.kurento.clone(), test_server.addr);
    rt.block_on(async move {
        let peer = LoopbackClient::new(ClientOptions::default()).await.unwrap();
        let offer = peer.create_offer(false).await.unwrap();
        let mut node = NodeScript::spawn("hello.js", addr, &offer);
        // Answer first, then candidates (subscription before processOffer).
        let first = node.next().await;
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
        let seen = node.trickle(&peer).await;
        assert!(!seen.is_empty(), "no IceCandidateFound events");
        for v in &seen {
            assert_eq!(v["type"], "IceCandidateFound");
            assert_eq!(v["source"], endpoint.as_str());
            assert_eq!(v["candidate"]["__type__"], "IceCandidate");
        }
        peer.wait_connected(Duration::from_secs(15)).await.unwrap();
        peer.start_sending().unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        node.say("flowing").await;
        let flowing = node.next().await;
        assert_eq!(flowing["flowingIn"], true);
        let ice: Vec<&str> = flowing["iceStates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert!(
            ice.contains(&"CONNECTED"),
            "IceComponentStateChanged: {ice:?}"
        );
        let got = peer.received();
        assert!(
            got.frames * 100 >= peer.frames_sent() * 80,
            "{} of {} frames came back",
            got.frames,
            peer.frames_sent()
        );
        assert_eq!(got.gray_frames, 0, "no filter: colours stay");
        assert_eq!(server.pipelines(), vec![pipeline.clone()]);
        node.say("release").await;
        assert_eq!(node.next().await["released"], true);
        assert!(server.pipelines().is_empty());
        peer.close().await;
    });
}

/// Kurento's platedetector tutorial: the unmodified client module
/// `kurento-module-platedetector@6.18.0` creates `PlateDetectorFilter`, sets the plate width
/// hint and hears `PlateDetected` while a peer's camera shows a car (a dev photo).
#[test]
fn kurento_module_platedetector_reads_a_plate() {
    let _media = prism_tests::media_lock();
    let photo = root().join("../shared/data/alpr/eu/eu1.jpg");
    let rt = tokio();
    let test_server = prism_tests::server::start(&rt, Duration::from_secs(5));
    let (server, addr) = (test_server.kurento.clone(), test_server.addr);
    rt.block_on(async move {
        let peer = LoopbackClient::new(ClientOptions {
            width: 960,
            height: 720,
            bitrate_bps: 2_000_000,
            picture: Some(photo),
            ..ClientOptions::default()
        })
        .await
        .unwrap();
        let offer = peer.create_offer(false).await.unwrap();
        let mut node = NodeScript::spawn("platedetector.js", addr, &offer);
        let first = node.next().await;
        let filter = first["filter"].as_str().unwrap().to_string();
        assert!(
            filter.ends_with("_platedetector.PlateDetectorFilter"),
            "{filter}"
        );
        peer.set_answer(first["answer"].as_str().unwrap())
            .await
            .unwrap();
        node.trickle(&peer).await;
        peer.wait_connected(Duration::from_secs(15)).await.unwrap();
        peer.start_sending().unwrap();
        // Other text in the picture may be announced too; the plate must be, once.
        let event = loop {
            let e = node.next().await;
            assert_eq!(e["type"], "PlateDetected");
            assert_eq!(e["source"], filter.as_str());
            if e["plate"] == "M5XSX" {
                break e;
            }
        };
        assert_eq!(event["plate"], "M5XSX");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while let Ok(more) = tokio::time::timeout_at(deadline, node.next()).await {
            assert_ne!(more["plate"], "M5XSX", "announced twice: {more}");
        }
        assert!(peer.received().frames > 10, "video came back");
        node.say("release").await;
        assert_eq!(node.next().await["released"], true);
        assert!(server.pipelines().is_empty());
        peer.close().await;
    });
}

/// The protocol state machine without sockets: request in, response out.
mod golden {
    use std::time::Duration;

    use prism::control::kurento::{KurentoServer, MAX_MESSAGE_BYTES};
    use prism_tests::rpc::Client;
    use serde_json::{Value, json};

    fn with_server(f: impl AsyncFnOnce(KurentoServer)) {
        let rt = super::tokio();
        let test_server = prism_tests::server::start(&rt, Duration::from_millis(300));
        rt.block_on(f(test_server.kurento.clone()));
    }

    #[test]
    fn sessions_ping_describe_and_info() {
        with_server(async |server| {
            let mut c = Client::new(&server);
            assert_eq!(c.ok("ping", json!({})).await, json!({"value": "pong"}));
            // No session yet: describe creates one and binds the connection.
            let d = c
                .ok("describe", json!({"object": "manager_ServerManager"}))
                .await;
            assert_eq!(d["type"], "ServerManager");
            assert_eq!(d["qualifiedType"], "kurento.ServerManager");
            let session = d["sessionId"].as_str().unwrap().to_string();
            let info = c
                .ok("invoke", json!({"object": "manager_ServerManager", "operation": "getInfo", "sessionId": session}))
                .await;
            assert_eq!(info["sessionId"], session.as_str());
            let names: Vec<&str> = info["value"]["modules"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["name"].as_str().unwrap())
                .collect();
            for m in ["core", "elements", "filters"] {
                assert!(names.contains(&m), "{names:?}");
            }
            // connect re-attaches; unknown sessions are refused.
            let r = c.ok("connect", json!({"sessionId": session})).await;
            assert_eq!(r["sessionId"], session.as_str());
            assert!(r["serverId"].is_string());
            let mut other = Client::new(&server);
            let (code, _) = other.err("connect", json!({"sessionId": "nope"})).await;
            assert_eq!(code, 40007);
            let r = other.ok("connect", json!({})).await;
            assert_ne!(r["sessionId"], session.as_str());
            // A second connection re-attaches the first session.
            let r = other.ok("connect", json!({"sessionId": session})).await;
            assert_eq!(r["sessionId"], session.as_str());
        });
    }

    #[test]
    fn objects_methods_and_errors() {
        with_server(async |server| {
            let mut c = Client::new(&server);
            let p = c
                .ok(
                    "create",
                    json!({"type": "MediaPipeline", "constructorParams": {}}),
                )
                .await;
            let pipeline = p["value"].as_str().unwrap().to_string();
            assert!(pipeline.ends_with("_kurento.MediaPipeline"));
            let e = c
                .ok("create", json!({"type": "kurento.PassThrough", "constructorParams": {"mediaPipeline": pipeline}}))
                .await;
            let pass = e["value"].as_str().unwrap().to_string();
            assert!(
                pass.starts_with(&format!("{pipeline}/")) && pass.ends_with("_kurento.PassThrough")
            );
            let f = c
                .ok("create", json!({"type": "WasmFilter", "constructorParams": {"mediaPipeline": pipeline, "filter": "grayscale"}}))
                .await;
            let filter = f["value"].as_str().unwrap().to_string();
            assert!(filter.ends_with("_prism.WasmFilter"), "{filter}");
            let d = c.ok("describe", json!({"object": filter})).await;
            assert_eq!(d["qualifiedType"], "prism.WasmFilter");
            assert_eq!(d["hierarchy"][0], "kurento.Filter");

            let inv = |object: &str, operation: &str, params: Value| json!({"object": object, "operation": operation, "operationParams": params});
            c.ok(
                "invoke",
                inv(
                    &pass,
                    "connect",
                    json!({"sink": filter, "mediaType": "VIDEO"}),
                ),
            )
            .await;
            let sinks = c
                .ok("invoke", inv(&pass, "getSinkConnections", json!({})))
                .await;
            assert_eq!(sinks["value"][0]["sink"], filter.as_str());
            assert_eq!(sinks["value"][0]["type"], "VIDEO");
            assert_eq!(sinks["value"][0]["__type__"], "ElementConnectionData");
            let sources = c
                .ok(
                    "invoke",
                    inv(
                        &filter,
                        "getSourceConnections",
                        json!({"mediaType": "AUDIO"}),
                    ),
                )
                .await;
            assert_eq!(sources["value"], json!([]));
            let flowing = c
                .ok(
                    "invoke",
                    inv(&filter, "isMediaFlowingIn", json!({"mediaType": "VIDEO"})),
                )
                .await;
            assert_eq!(flowing["value"], false);
            c.ok("invoke", inv(&filter, "setName", json!({"name": "gray"})))
                .await;
            assert_eq!(
                c.ok("invoke", inv(&filter, "getName", json!({}))).await["value"],
                "gray"
            );
            c.ok(
                "invoke",
                inv(&filter, "addTag", json!({"key": "k", "value": "v"})),
            )
            .await;
            assert_eq!(
                c.ok("invoke", inv(&filter, "getTag", json!({"key": "k"})))
                    .await["value"],
                "v"
            );
            assert_eq!(
                c.ok("invoke", inv(&filter, "getMediaPipeline", json!({})))
                    .await["value"],
                pipeline.as_str()
            );
            let children = c
                .ok("invoke", inv(&pipeline, "getChildren", json!({})))
                .await;
            assert_eq!(children["value"].as_array().unwrap().len(), 2);
            let dot = c
                .ok("invoke", inv(&pipeline, "getGstreamerDot", json!({})))
                .await;
            assert!(dot["value"].as_str().unwrap().starts_with("digraph"));
            c.ok("invoke", inv(&filter, "configure", json!({"config": {}})))
                .await;
            let ep = c
                .ok("create", json!({"type": "WebRtcEndpoint", "constructorParams": {"mediaPipeline": pipeline}}))
                .await["value"]
                .as_str()
                .unwrap()
                .to_string();
            c.ok(
                "invoke",
                inv(
                    &ep,
                    "setMaxVideoSendBandwidth",
                    json!({"maxVideoSendBandwidth": 500}),
                ),
            )
            .await;
            assert_eq!(
                c.err(
                    "invoke",
                    inv(
                        &ep,
                        "setMinVideoSendBandwidth",
                        json!({"minVideoSendBandwidth": "fast"})
                    )
                )
                .await
                .0,
                -32602
            );
            assert_eq!(
                c.err(
                    "invoke",
                    inv(
                        &ep,
                        "setMaxVideoRecvBandwidth",
                        json!({"maxVideoRecvBandwidth": 500})
                    )
                )
                .await
                .0,
                40105
            );

            // Errors, each with its code.
            assert_eq!(c.err("nosuch", json!({})).await.0, -32601);
            assert_eq!(
                c.err(
                    "create",
                    json!({"type": "Teleporter", "constructorParams": {}})
                )
                .await
                .0,
                40108
            );
            assert_eq!(
                c.err(
                    "create",
                    json!({"type": "PassThrough", "constructorParams": {}})
                )
                .await
                .0,
                -32602
            );
            assert_eq!(c.err("create", json!({"type": "WasmFilter", "constructorParams": {"mediaPipeline": pipeline, "filter": "nosuch"}})).await.0, 40108);
            assert_eq!(
                c.err("invoke", inv("nope", "getName", json!({}))).await.0,
                40101
            );
            assert_eq!(
                c.err("invoke", inv(&filter, "fly", json!({}))).await.0,
                40105
            );
            assert_eq!(
                c.err(
                    "invoke",
                    inv(
                        &pass,
                        "connect",
                        json!({"sink": pass, "mediaType": "VIDEO"})
                    )
                )
                .await
                .0,
                40012
            );
            assert_eq!(
                c.err(
                    "invoke",
                    inv(
                        &pass,
                        "connect",
                        json!({"sink": filter, "mediaType": "SMELL"})
                    )
                )
                .await
                .0,
                -32602
            );
            assert_eq!(
                c.err(
                    "invoke",
                    inv(&filter, "configure", json!({"config": "{not json"}))
                )
                .await
                .0,
                40107
            );
            assert_eq!(c.err("describe", json!({})).await.0, -32602);
            let (code, msg) = c.err("release", json!({"object": "x"})).await;
            assert_eq!(code, 40101, "{msg}");

            c.ok("release", json!({"object": pipeline})).await;
            assert_eq!(c.err("describe", json!({"object": filter})).await.0, 40101);
            assert!(server.pipelines().is_empty());
        });
    }

    #[test]
    fn malformed_messages() {
        with_server(async |server| {
            let mut c = Client::new(&server);
            let r = c.raw("{nope").await;
            assert_eq!(r["error"]["code"], -32700);
            assert_eq!(r["id"], Value::Null);
            let r = c.raw("[1,2]").await;
            assert_eq!(r["error"]["code"], -32600);
            let r = c.raw(r#"{"jsonrpc":"2.0","id":5}"#).await;
            assert_eq!(r["error"]["code"], -32600);
            assert_eq!(r["id"], 5);
            let r = c.raw(r#"{"jsonrpc":"1.0","id":6,"method":"ping"}"#).await;
            assert_eq!(r["error"]["code"], -32600);
            let r = c
                .raw(r#"{"jsonrpc":"2.0","id":7,"method":"create","params":[1]}"#)
                .await;
            assert_eq!(r["error"]["code"], -32602);
            let big = format!(
                r#"{{"jsonrpc":"2.0","id":8,"method":"ping","params":{{"x":"{}"}}}}"#,
                "a".repeat(MAX_MESSAGE_BYTES)
            );
            let r = c.raw(&big).await;
            assert_eq!(r["error"]["code"], -32600);
            assert!(r["error"]["message"].as_str().unwrap().contains("limit"));
            // Still serving.
            assert_eq!(c.ok("ping", json!({})).await["value"], "pong");
        });
    }

    #[test]
    fn transactions_with_newref_stop_at_the_first_error() {
        with_server(async |server| {
            let mut c = Client::new(&server);
            let r = c
                .ok(
                    "transaction",
                    json!({"operations": [
                        {"jsonrpc": "2.0", "id": 0, "method": "create", "params": {"type": "MediaPipeline", "constructorParams": {}}},
                        {"jsonrpc": "2.0", "id": 1, "method": "create", "params": {"type": "PassThrough", "constructorParams": {"mediaPipeline": "newref:0"}}},
                        {"jsonrpc": "2.0", "id": 2, "method": "invoke", "params": {"object": "newref:1", "operation": "getMediaPipeline", "operationParams": {}}},
                        {"jsonrpc": "2.0", "id": 3, "method": "invoke", "params": {"object": "newref:1", "operation": "fly"}},
                        {"jsonrpc": "2.0", "id": 4, "method": "ping", "params": {}},
                    ]}),
                )
                .await;
            let results = r["value"].as_array().unwrap();
            assert_eq!(results.len(), 4, "stops after the failing operation: {r}");
            let pipeline = results[0]["result"]["value"].as_str().unwrap();
            assert_eq!(results[2]["result"]["value"], pipeline);
            assert_eq!(results[3]["error"]["code"], 40105);
            // Malformed transactions.
            assert_eq!(c.err("transaction", json!({})).await.0, 40008);
            let r = c
                .ok("transaction", json!({"operations": [{"method": "create"}]}))
                .await;
            assert_eq!(r["value"][0]["error"]["code"], 40008);
            let r = c
                .ok("transaction", json!({"operations": [{"method": "invoke", "params": {"object": "newref:3", "operation": "x"}}]}))
                .await;
            assert_eq!(r["value"][0]["error"]["code"], 40008);
        });
    }

    #[test]
    fn subscriptions_deliver_events_and_sessions_expire() {
        with_server(async |server| {
            let mut c = Client::new(&server);
            let p = c
                .ok(
                    "create",
                    json!({"type": "MediaPipeline", "constructorParams": {}}),
                )
                .await;
            let pipeline = p["value"].as_str().unwrap().to_string();
            let mk = |t: &str| json!({"type": t, "constructorParams": {"mediaPipeline": pipeline}});
            let a = c.ok("create", mk("PassThrough")).await["value"]
                .as_str()
                .unwrap()
                .to_string();
            let b = c.ok("create", mk("PassThrough")).await["value"]
                .as_str()
                .unwrap()
                .to_string();
            let sub = c
                .ok(
                    "subscribe",
                    json!({"object": a, "type": "ElementConnected"}),
                )
                .await;
            assert!(sub["value"].is_string());
            c.ok(
                "invoke",
                json!({"object": a, "operation": "connect", "operationParams": {"sink": b}}),
            )
            .await;
            let mut seen = Vec::new();
            while seen.len() < 2 {
                let msg = tokio::time::timeout(Duration::from_secs(2), c.events.recv())
                    .await
                    .expect("events")
                    .unwrap();
                seen.push(serde_json::from_str::<Value>(&msg).unwrap());
            }
            for ev in &seen {
                assert_eq!(ev["method"], "onEvent");
                let v = &ev["params"]["value"];
                assert_eq!(v["object"], a.as_str());
                assert_eq!(v["type"], "ElementConnected");
                assert_eq!(v["data"]["source"], a.as_str());
                assert_eq!(v["data"]["sink"], b.as_str());
                assert_eq!(v["data"]["type"], "ElementConnected");
                assert!(v["data"]["timestampMillis"].is_string());
                assert!(v["data"]["tags"].is_array());
            }
            let kinds: Vec<&str> = seen
                .iter()
                .map(|e| e["params"]["value"]["data"]["mediaType"].as_str().unwrap())
                .collect();
            assert!(
                kinds.contains(&"AUDIO") && kinds.contains(&"VIDEO"),
                "{kinds:?}"
            );
            c.ok("unsubscribe", json!({"subscription": sub["value"]}))
                .await;
            assert_eq!(
                c.err("unsubscribe", json!({"subscription": sub["value"]}))
                    .await
                    .0,
                40107
            );
            // The connection goes away: after the grace period the session's objects go too.
            server.disconnected(&c.conn);
            assert_eq!(server.pipelines().len(), 1);
            tokio::time::sleep(Duration::from_millis(800)).await;
            assert!(server.pipelines().is_empty());
        });
    }
}

/// Kurento's other elements through the unmodified `kurento-client`: a played clip goes
/// through a GStreamerFilter and a FaceOverlayFilter into a recorder that stops at the end of
/// the stream; hubs hand out ports; a refused profile comes back as the client's error.
#[test]
fn kurento_client_player_filters_recorder_and_hubs() {
    let _media = prism_tests::media_lock();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("clip.webm");
    let status = std::process::Command::new("gst-launch-1.0")
        .args(["-q", "videotestsrc", "num-buffers=45", "pattern=smpte"])
        .args(["!", "video/x-raw,width=320,height=240,framerate=30/1"])
        .args(["!", "vp8enc", "deadline=1", "!", "webmmux", "!", "filesink"])
        .arg(format!("location={}", input.display()))
        .status()
        .unwrap();
    assert!(status.success());
    let output = dir.path().join("out.webm");
    let config = serde_json::json!({
        "input": input,
        "output": output,
        "picture": "/usr/share/matplotlib/mpl-data/sample_data/Minduka_Present_Blue_Pack.png",
    });
    let rt = tokio();
    let test_server = prism_tests::server::start(&rt, Duration::from_secs(5));
    let addr = test_server.addr;
    rt.block_on(async move {
        let mut node = NodeScript::spawn("elements.js", addr, &config.to_string());
        let info = node.next().await;
        assert_eq!(info["info"]["isSeekable"], true, "{info}");
        assert!(
            (1400..=1600).contains(&info["info"]["duration"].as_i64().unwrap()),
            "{info}"
        );
        let done = node.next().await;
        assert_eq!(done["done"], true, "{done}");
        let events: Vec<&str> = done["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect();
        for e in ["Recording", "State:START", "EndOfStream", "Stopped"] {
            assert!(events.contains(&e), "{e} missing from {events:?}");
        }
        assert_eq!(done["command"], "videoflip method=horizontal-flip");
        assert!(
            done["port"].as_str().unwrap().ends_with("kurento.HubPort"),
            "{done}"
        );
        let refused = done["refused"].as_str().unwrap_or_default();
        assert!(refused.contains("FLV"), "{done}");
    });
    let mut decoder = prism::media::Decoder::open(&output, prism_frame::PixelFormat::Rgba).unwrap();
    let mut frames = 0;
    while decoder.next_frame().unwrap().is_some() {
        frames += 1;
    }
    assert!(
        (30..=45).contains(&frames),
        "{frames} frames recorded of 45"
    );
}
