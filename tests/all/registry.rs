//! The filter registry over HTTP: upload, validation, auth, persistence, crash safety, delete,
//! and hot swap of a live stream.

use std::time::Duration;

use prism::media::rtp::VideoCodec;
use prism::pipeline::{MediaElement, MediaPipeline};
use prism::registry::{MAX_UPLOAD_BYTES, Registry};
use prism::webrtc::client::{ClientOptions, LoopbackClient};
use prism_tests::http::{call, multipart};
use prism_tests::loopback::{connect, tokio};
use prism_tests::server::{TOKEN, start, start_in};
use prism_tests::wasm;
use serde_json::Value;

fn bytes(name: &str) -> Vec<u8> {
    std::fs::read(wasm(name)).unwrap()
}

fn upload(base: &str, token: Option<&str>, body: Vec<u8>) -> (u16, Value) {
    call(
        "POST",
        &format!("{base}/api/filters"),
        token,
        Some(("application/wasm", body)),
    )
}

#[test]
fn upload_validate_list_and_use() {
    let rt = tokio();
    let server = start(&rt, Duration::from_secs(5));
    let base = format!("http://{}", server.addr);
    // Built-in filters are listed; nothing uploaded yet.
    let (status, list) = call("GET", &format!("{base}/api/filters"), None, None);
    assert_eq!(status, 200);
    assert_eq!(list["filters"], serde_json::json!([]));
    assert!(
        list["builtin"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "grayscale")
    );

    // Refused uploads, each with its status and words; the registry stays empty.
    /// What, token, body, expected status, expected kind.
    type Case<'a> = (&'a str, Option<&'a str>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        ("no token", None, bytes("tint-v1"), 401, "unauthorized"),
        (
            "wrong token",
            Some("nope"),
            bytes("tint-v1"),
            401,
            "unauthorized",
        ),
        (
            "not wasm",
            Some(TOKEN),
            b"GIF89a not a filter".to_vec(),
            400,
            "not-wasm",
        ),
        (
            "core module",
            Some(TOKEN),
            b"\0asm\x01\0\0\0".to_vec(),
            400,
            "core-module",
        ),
        (
            "wrong world",
            Some(TOKEN),
            bytes("wrong-world"),
            422,
            "wrong-world",
        ),
        (
            "bad imports",
            Some(TOKEN),
            bytes("bad-import"),
            422,
            "unsupported-imports",
        ),
        ("empty", Some(TOKEN), Vec::new(), 400, "empty"),
    ];
    for (what, token, body, want, kind) in cases {
        let (status, reply) = upload(&base, token, body);
        assert_eq!(status, want, "{what}: {reply}");
        assert_eq!(reply["kind"], kind, "{what}: {reply}");
        assert!(
            !reply["error"].as_str().unwrap_or("").is_empty(),
            "{what}: {reply}"
        );
    }
    // Oversized: refused from the Content-Length alone, before the body is read.
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(server.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            s,
            "POST /api/filters HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/wasm\r\nContent-Length: {}\r\n\r\n",
            MAX_UPLOAD_BYTES + 100 * 1024
        )
        .unwrap();
        let mut head = [0u8; 512];
        let n = s.read(&mut head).unwrap();
        let head = String::from_utf8_lossy(&head[..n]);
        assert!(head.starts_with("HTTP/1.1 413"), "oversized: {head}");
    }
    assert!(server.registry.list().is_empty());
    let leftovers: Vec<_> = std::fs::read_dir(server.dir.path().join("blobs"))
        .unwrap()
        .collect();
    assert!(leftovers.is_empty(), "refused uploads left blobs");

    // A good upload, raw body.
    let (status, m) = upload(&base, Some(TOKEN), bytes("tint-v1"));
    assert_eq!(status, 201, "{m}");
    assert_eq!(m["name"], "tint");
    assert_eq!(m["version"], "1.0.0");
    assert_eq!(m["format"], "rgba");
    assert_eq!(m["hash"].as_str().unwrap().len(), 64);
    assert!(m["params"].is_object());
    // And multipart.
    let (ct, body) = multipart("file", "tint-v2.wasm", &bytes("tint-v2"));
    let (status, m2) = call(
        "POST",
        &format!("{base}/api/filters"),
        Some(TOKEN),
        Some((&ct, body)),
    );
    assert_eq!(status, 201, "{m2}");
    assert_eq!(m2["version"], "2.0.0");
    let (_, one) = call("GET", &format!("{base}/api/filters/tint"), None, None);
    let versions: Vec<&str> = one["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["1.0.0", "2.0.0"]);
    let (status, v1) = call("GET", &format!("{base}/api/filters/tint/1.0.0"), None, None);
    assert_eq!((status, &v1["hash"]), (200, &m["hash"]));
    assert_eq!(
        call("GET", &format!("{base}/api/filters/nope"), None, None).0,
        404
    );

    // Usable at once from the protocol: newest by name, or pinned.
    use prism::control::kurento::FilterCatalog;
    let newest = server.registry.resolve("tint").unwrap();
    assert_eq!(newest.info.version, "2.0.0");
    assert_eq!(
        server.registry.resolve("tint@1.0.0").unwrap().info.version,
        "1.0.0"
    );
    assert!(server.registry.resolve("tint@9.9.9").is_err());
    // Compiled code is kept beside the blob.
    let hash = m["hash"].as_str().unwrap();
    assert!(
        server
            .dir
            .path()
            .join(format!("compiled/{hash}.cwasm"))
            .is_file()
    );
}

#[test]
fn restart_keeps_the_registry_and_cleans_interrupted_writes() {
    let rt = tokio();
    let server = start(&rt, Duration::from_secs(5));
    let base = format!("http://{}", server.addr);
    assert_eq!(upload(&base, Some(TOKEN), bytes("tint-v1")).0, 201);
    let before = server.registry.list();
    let dir = server.dir;
    // Debris of a crash mid-upload: a temp blob, a half-written manifest, a manifest whose
    // blob never landed.
    std::fs::write(dir.path().join("tmp/upload.partial"), b"\0asm...").unwrap();
    std::fs::write(
        dir.path().join("filters/tint/.2.0.0.json.1234.tmp"),
        b"{\"name\":",
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("filters/ghost")).unwrap();
    std::fs::write(
        dir.path().join("filters/ghost/1.0.0.json"),
        serde_json::to_vec(&serde_json::json!({
            "name": "ghost", "version": "1.0.0", "hash": "00", "format": "rgba",
            "params": {}, "description": "", "size": 1, "uploaded_ms": 0
        }))
        .unwrap(),
    )
    .unwrap();
    let runtime = prism_tests::test_runtime();
    let builtin = wasm("grayscale").parent().unwrap().to_path_buf();
    let reopened = Registry::open(dir.path(), runtime, &builtin).unwrap();
    assert_eq!(reopened.list(), before, "same filters after a restart");
    assert!(
        std::fs::read_dir(dir.path().join("tmp"))
            .unwrap()
            .next()
            .is_none()
    );
    assert!(
        !dir.path()
            .join("filters/tint/.2.0.0.json.1234.tmp")
            .exists()
    );
    // And it still serves them (from the compiled artifact).
    use prism::control::kurento::FilterCatalog;
    let t = std::time::Instant::now();
    assert_eq!(reopened.resolve("tint").unwrap().info.version, "1.0.0");
    eprintln!("load after restart: {:?}", t.elapsed());
    drop(server.kurento);
}

/// A `prism serve` process on a free port with `dir` as its data directory.
fn serve_process(dir: &std::path::Path) -> (std::process::Child, u16) {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let child = serve_on(dir, port);
    (child, port)
}

fn serve_on(dir: &std::path::Path, port: u16) -> std::process::Child {
    let mut child = std::process::Command::new(prism_tests::prism_bin())
        .args([
            "serve",
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--data-dir",
        ])
        .arg(dir)
        .env("PRISM_TOKEN", TOKEN)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return child;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("prism serve did not start");
}

#[test]
fn cli_upload_and_ls_against_prism_serve() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, port) = serve_process(dir.path());
    let url = format!("http://127.0.0.1:{port}");
    let prism = |args: &[&str], token: Option<&str>| {
        let mut cmd = std::process::Command::new(prism_tests::prism_bin());
        cmd.args(args).env_remove("PRISM_TOKEN");
        if let Some(t) = token {
            cmd.env("PRISM_TOKEN", t);
        }
        cmd.output().unwrap()
    };
    let file = wasm("tint-v1");
    let file = file.to_str().unwrap();
    let out = prism(&["filter", "upload", file, "--server", &url], Some(TOKEN));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("uploaded tint@1.0.0"), "{stdout}");
    let out = prism(
        &[
            "filter", "upload", file, "--server", &url, "--token", "wrong",
        ],
        None,
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{:?}",
        out
    );
    let out = prism(&["filter", "ls", "--server", &url], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("tint") && l.contains("1.0.0")),
        "{stdout}"
    );
    assert!(
        stdout.contains("grayscale") && stdout.contains("(built in)"),
        "{stdout}"
    );
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn killed_mid_upload_leaves_a_consistent_registry() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let (mut server, port) = serve_process(dir.path());
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(upload(&base, Some(TOKEN), bytes("tint-v1")).0, 201);
    // Half an upload, then kill -9.
    let body = bytes("tint-v2");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST /api/filters HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/wasm\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(&body[..body.len() / 2]).unwrap();
    s.flush().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    server.kill().unwrap();
    server.wait().unwrap();
    drop(s);
    let mut server = serve_on(dir.path(), port);
    let (status, list) = call("GET", &format!("{base}/api/filters"), None, None);
    assert_eq!(status, 200);
    let versions: Vec<&str> = list["filters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["1.0.0"], "only the finished upload: {list}");
    // The interrupted one can be uploaded again.
    assert_eq!(upload(&base, Some(TOKEN), body).0, 201);
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn delete_refused_while_in_use_unless_forced() {
    let rt = tokio();
    let server = start(&rt, Duration::from_secs(5));
    let base = format!("http://{}", server.addr);
    assert_eq!(upload(&base, Some(TOKEN), bytes("tint-v1")).0, 201);
    let _guard = rt.enter();
    let pipeline = MediaPipeline::new(server.ctx.clone()).unwrap();
    use prism::control::kurento::FilterCatalog;
    let filter = server.registry.resolve("tint").unwrap();
    let element = pipeline
        .add_filter(&filter, None, "prism", "WasmFilter")
        .unwrap();
    server.registry.attach("tint", &element);
    let (status, reply) = call(
        "DELETE",
        &format!("{base}/api/filters/tint"),
        Some(TOKEN),
        None,
    );
    assert_eq!(status, 409, "{reply}");
    assert_eq!(
        call("DELETE", &format!("{base}/api/filters/tint"), None, None).0,
        401
    );
    assert_eq!(
        call(
            "DELETE",
            &format!("{base}/api/filters/nope"),
            Some(TOKEN),
            None
        )
        .0,
        404
    );
    let (status, reply) = call(
        "DELETE",
        &format!("{base}/api/filters/tint?force=true"),
        Some(TOKEN),
        None,
    );
    assert_eq!(status, 200, "{reply}");
    assert!(server.registry.list().is_empty());
    assert!(
        std::fs::read_dir(server.dir.path().join("blobs"))
            .unwrap()
            .next()
            .is_none()
    );
    pipeline.release();
}

#[test]
fn hot_swap_in_a_live_session() {
    let _media = prism_tests::media_lock();
    let rt = tokio();
    let server = start_in(&rt, Duration::from_secs(5), tempfile::tempdir().unwrap());
    let base = format!("http://{}", server.addr);
    assert_eq!(upload(&base, Some(TOKEN), bytes("tint-v1")).0, 201);
    let ctx = server.ctx.clone();
    let registry = server.registry.clone();
    rt.block_on(async move {
        use prism::control::kurento::FilterCatalog;
        let pipeline = MediaPipeline::new(ctx).unwrap();
        let endpoint = pipeline.add_webrtc_endpoint().await.unwrap();
        let following = pipeline
            .add_filter(
                &registry.resolve("tint").unwrap(),
                None,
                "prism",
                "WasmFilter",
            )
            .unwrap();
        registry.attach("tint", &following);
        let pinned = pipeline
            .add_filter(
                &registry.resolve("tint@1.0.0").unwrap(),
                None,
                "prism",
                "WasmFilter",
            )
            .unwrap();
        registry.attach("tint@1.0.0", &pinned);
        pipeline
            .connect(endpoint.id(), following.id(), None)
            .unwrap();
        pipeline
            .connect(following.id(), endpoint.id(), None)
            .unwrap();
        let peer = LoopbackClient::new(ClientOptions {
            codec: VideoCodec::Vp8,
            ..ClientOptions::default()
        })
        .await
        .unwrap();
        connect(&pipeline, &endpoint, &peer).await.unwrap();
        peer.start_sending().unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let v1_hash = following.filter_hash();
        let base2 = base.clone();
        let (status, m) =
            tokio::task::spawn_blocking(move || upload(&base2, Some(TOKEN), bytes("tint-v2")))
                .await
                .unwrap();
        assert_eq!(status, 201, "{m}");
        assert_eq!(
            following.filter_hash(),
            m["hash"].as_str().unwrap(),
            "the follower switched"
        );
        assert_eq!(pinned.filter_hash(), v1_hash, "the pinned element stayed");
        tokio::time::sleep(Duration::from_secs(2)).await;
        peer.stop_sending();
        tokio::time::sleep(Duration::from_millis(700)).await;
        let got = peer.received();
        let sent = peer.frames_sent();
        // Every frame is v1's gray (60) or v2's (200), all v1 before all v2.
        let levels: Vec<u8> = got.means.clone();
        let v1 = levels.iter().take_while(|&&l| l.abs_diff(60) <= 6).count();
        let v2 = levels[v1..]
            .iter()
            .take_while(|&&l| l.abs_diff(200) <= 6)
            .count();
        eprintln!(
            "sent {sent}, received {}, v1 {v1}, v2 {v2}, stats {}",
            got.frames,
            following.stats()
        );
        assert!(v1 > 20 && v2 > 20, "both versions seen: {levels:?}");
        assert!(
            v1 + v2 + 1 >= levels.len(),
            "frames after the swap are v2's: {levels:?}"
        );
        assert!(
            got.frames * 100 >= sent * 90,
            "{} of {sent} frames came back",
            got.frames
        );
        peer.close().await;
        pipeline.release();
    });
}
