//! The browser demo end to end in Debian's headless Chromium (driven by playwright-core from
//! Node): the page loads the filter list, shows the server's words for a bad upload, uploads
//! a filter, runs the camera (a slow pan over a car photo) through it, and the processed video comes back — gray through
//! the uploaded grayscale filter, in colour through passthrough. Screenshots go to
//! `target/e2e/`.

use std::process::Command;
use std::time::Duration;

use prism_tests::loopback::tokio;
use prism_tests::server::{TOKEN, start};
use prism_tests::{root, target_dir, wasm};
use serde_json::Value;

/// The fake camera (Chromium reads Y4M): a slow pan over a car photo from the data set, or a
/// colour test pattern when the data set is not there.
fn camera_clip(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("camera.y4m");
    match prism_tests::sample_photo() {
        Some(photo) => write_pan(&photo, &path),
        None => test_pattern(&path),
    }
    path
}

/// 90 frames of a 640x480 window moving across `photo` (scaled to 1000x750), as I420 Y4M.
fn write_pan(photo: &std::path::Path, out: &std::path::Path) {
    use prism::media::{Decoder, FrameConverter, scale_frame};
    use prism_frame::{FrameBuf, PixelFormat, Rect};
    use std::io::Write;
    let mut decoder = Decoder::open(photo, PixelFormat::Rgba).unwrap();
    let image = decoder.next_frame().unwrap().expect("a picture").buf;
    let image = scale_frame(&image, 1000, 750).unwrap();
    let mut converter = FrameConverter::default();
    let mut y4m = std::io::BufWriter::new(std::fs::File::create(out).unwrap());
    y4m.write_all(b"YUV4MPEG2 W640 H480 F30:1 Ip A1:1 C420jpeg\n")
        .unwrap();
    for k in 0..90u32 {
        let area = Rect::new((k * 160 / 90) & !1, (k * 120 / 90) & !1, 640, 480);
        let window = FrameBuf::new(
            PixelFormat::Rgba,
            640,
            480,
            image.read_region(area).unwrap(),
        )
        .unwrap();
        let i420 = converter.convert(window, PixelFormat::I420).unwrap();
        y4m.write_all(b"FRAME\n").unwrap();
        y4m.write_all(i420.data()).unwrap();
    }
    y4m.flush().unwrap();
}

fn test_pattern(out: &std::path::Path) {
    let status = Command::new("gst-launch-1.0")
        .args([
            "-q",
            "videotestsrc",
            "num-buffers=90",
            "pattern=smpte",
            "!",
            "video/x-raw,format=I420,width=640,height=480,framerate=30/1",
            "!",
            "y4menc",
            "!",
            "filesink",
        ])
        .arg(format!("location={}", out.display()))
        .status()
        .expect("gst-launch-1.0");
    assert!(status.success(), "cannot make the camera clip");
}

#[test]
fn browser_demo_upload_and_gray_video() {
    let _media = prism_tests::media_lock();
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "Debian's chromium is missing: run `make test` (it installs it)"
    );
    let node_dir = root().join("tests/node");
    assert!(
        node_dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run `make test`"
    );
    let rt = tokio();
    let server = start(&rt, Duration::from_secs(5));
    let scratch = tempfile::tempdir().unwrap();
    let clip = camera_clip(scratch.path());
    let shots = target_dir().join("e2e");
    let out = Command::new("node")
        .arg(node_dir.join("web.js"))
        .arg(format!("http://{}/", server.addr))
        .arg(&clip)
        .arg(&shots)
        .arg(wasm("grayscale"))
        .arg(TOKEN)
        .env("EXPECT_PLATE", "M5XSX")
        .env("PLATE_REGION", "eu")
        .output()
        .expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let steps: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    for s in &steps {
        assert!(s.get("error").is_none(), "browser: {}", s["error"]);
    }
    assert!(out.status.success(), "node failed");
    let step = |name: &str| -> &Value {
        steps
            .iter()
            .find(|s| s["step"] == name)
            .unwrap_or_else(|| panic!("no step {name}: {stdout}"))
    };
    let loaded = step("loaded");
    assert!(
        loaded["filters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "passthrough"),
        "{loaded}"
    );
    let bad = step("bad-upload")["message"].as_str().unwrap();
    assert!(bad.contains("WebAssembly") || bad.contains("wasm"), "{bad}");
    let up = step("upload");
    assert!(
        up["message"].as_str().unwrap().contains("grayscale@"),
        "{up}"
    );
    assert_eq!(up["selected"], "grayscale");
    assert_eq!(server.registry.versions("grayscale").len(), 1, "stored");

    let gray = step("grayscale");
    let s = &gray["sample"];
    assert!(
        s["frames"].as_u64().unwrap() > 30,
        "video came back: {gray}"
    );
    assert_eq!(
        (s["width"].as_u64(), s["height"].as_u64()),
        (Some(640), Some(480))
    );
    let mean: Vec<f64> = s["mean"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!(mean[0] > 30.0, "not black: {gray}");
    assert!(s["maxChroma"].as_f64().unwrap() <= 16.0, "gray: {gray}");
    assert!(
        gray["statsText"].as_str().unwrap().contains("fps in"),
        "{gray}"
    );
    assert!(
        gray["graphBytes"].as_u64().unwrap() > 100,
        "graph drawn: {gray}"
    );

    let colour = step("passthrough");
    assert!(
        colour["sample"]["frames"].as_u64().unwrap() > 30,
        "{colour}"
    );
    assert!(
        colour["sample"]["maxChroma"].as_f64().unwrap() > 60.0,
        "colour: {colour}"
    );
    // The demo's default: the licence-plate filter over a camera panning across a car whose
    // plate reads M5-XSX, read for European plates as chosen on the page (the choice shows
    // for the plate filter only); the page lists the PlateDetected event and its region.
    let plates = step("platedetector");
    assert!(
        plates["sample"]["frames"].as_u64().unwrap() > 30,
        "{plates}"
    );
    assert_eq!(plates["regionShown"], true, "{plates}");
    assert_eq!(gray["regionShown"], false, "{gray}");
    assert!(
        plates["plates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["plate"] == "M5XSX"
                && p["region"] == "eu"
                // Its thumbnail shows the white plate, not a black picture.
                && p["thumbnail"].as_f64().is_some_and(|m| m > 60.0)),
        "plate listed: {plates}"
    );
    assert!(shots.join("platedetector.png").is_file());
    assert!(shots.join("uploaded-filter.png").is_file());
    // Every session the page started was released when it stopped.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        server.kurento.pipelines().is_empty(),
        "{:?}",
        server.kurento.pipelines()
    );
}
