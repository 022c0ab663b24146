//! The `prism` binary: `filter check` and `filter run` on real files, decoded and encoded by
//! GStreamer.

use std::path::Path;
use std::process::{Command, Output};

use prism::media::{Decoder, Encoder};
use prism_frame::{Color, FrameBuf, PixelFormat, Rect};
use prism_tests::{prism_bin, sample_photo, wasm};

fn prism(args: &[&str]) -> Output {
    Command::new(prism_bin())
        .args(args)
        .output()
        .expect("prism runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A 160x120 picture of four colour blocks.
fn blocks() -> FrameBuf {
    let mut frame = FrameBuf::zeroed(PixelFormat::Rgba, 160, 120);
    frame.fill_rect(Rect::new(0, 0, 80, 60), Color::rgb(255, 0, 0));
    frame.fill_rect(Rect::new(80, 0, 80, 60), Color::rgb(0, 255, 0));
    frame.fill_rect(Rect::new(0, 60, 80, 60), Color::rgb(0, 0, 255));
    frame.fill_rect(Rect::new(80, 60, 80, 60), Color::rgb(255, 255, 255));
    frame
}

fn write_png(path: &Path, frame: &FrameBuf) {
    let mut enc =
        Encoder::create(path, frame.format(), frame.width(), frame.height(), (1, 1)).unwrap();
    enc.push(frame, 0).unwrap();
    assert_eq!(enc.finish().unwrap(), 1);
}

fn decode_all(path: &Path, format: PixelFormat) -> Vec<(FrameBuf, u64)> {
    let mut dec = Decoder::open(path, format).unwrap();
    let mut frames = Vec::new();
    while let Some(f) = dec.next_frame().unwrap() {
        frames.push((f.buf, f.pts_us));
    }
    frames
}

/// `prism filter run FILTER --input IN --output OUT --json`: its JSON lines (it must succeed).
fn run_json(filter: &str, input: &Path, output: &Path) -> Vec<serde_json::Value> {
    let out = prism(&[
        "filter",
        "run",
        wasm(filter).to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn check_prints_the_description() {
    let out = prism(&[
        "filter",
        "check",
        wasm("grayscale").to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["filter"]["name"], "grayscale");
    assert_eq!(report["filter"]["format"], "rgba");
    assert_eq!(report["world"], "prism:filter/video-filter@0.1.0");
    assert!(
        report["exports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "prism:filter/filter@0.1.0")
    );

    let out = prism(&["filter", "check", wasm("privacy").to_str().unwrap()]);
    assert!(out.status.success());
    assert!(
        text(&out.stdout).contains("name         privacy"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn check_rejects_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let not_wasm = dir.path().join("photo.wasm");
    std::fs::write(&not_wasm, b"\xff\xd8\xff\xe0 a JPEG really").unwrap();
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let missing = dir.path().join("missing.wasm");
    let cases = [
        (not_wasm.clone(), "not a WebAssembly file"),
        (core, "core WebAssembly module, not a component"),
        (wasm("wrong-world"), "built for another world"),
        (
            wasm("bad-import"),
            "imports evil:net/socket@1.0.0, which Prism does not give filters",
        ),
        (missing, "cannot read"),
    ];
    for (file, expected) in cases {
        let out = prism(&["filter", "check", file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{}", file.display());
        let stderr = text(&out.stderr);
        assert!(stderr.contains(expected), "{}: {stderr}", file.display());
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let out = prism(&["filter", "check", not_wasm.to_str().unwrap(), "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains("not a WebAssembly file")
    );
}

#[test]
fn run_grayscale_on_an_image() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("blocks.png");
    let output = dir.path().join("gray.png");
    write_png(&input, &blocks());
    let lines = run_json("grayscale", &input, &output);
    let summary = lines.last().unwrap();
    assert_eq!(summary["kind"], "summary");
    assert_eq!(
        (summary["frames"].as_u64(), summary["failures"].as_u64()),
        (Some(1), Some(0))
    );
    assert!(summary["ms_per_frame_p50"].as_f64().unwrap() > 0.0);

    let frames = decode_all(&output, PixelFormat::Rgba);
    assert_eq!(frames.len(), 1);
    let gray = &frames[0].0;
    assert_eq!((gray.width(), gray.height()), (160, 120));
    assert_eq!(gray.pixel(10, 10), Some(&[77, 77, 77, 255][..]));
    assert_eq!(gray.pixel(150, 10), Some(&[149, 149, 149, 255][..]));
    assert_eq!(gray.pixel(10, 110), Some(&[29, 29, 29, 255][..]));
    assert_eq!(gray.pixel(150, 110), Some(&[255, 255, 255, 255][..]));
}

#[test]
fn run_on_a_video_prints_events_per_frame_and_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("clip.webm");
    let output = dir.path().join("out.mkv");
    let mut enc = Encoder::create(&input, PixelFormat::I420, 320, 240, (30, 1)).unwrap();
    for i in 0..30u64 {
        let shade = (i * 8) as u8;
        let frame = FrameBuf::filled(
            PixelFormat::I420,
            320,
            240,
            Color::rgb(shade, 128, 255 - shade),
        );
        enc.push(&frame, i * 33_333).unwrap();
    }
    assert_eq!(enc.finish().unwrap(), 30);

    let lines = run_json("probe", &input, &output);
    let mut events: Vec<_> = lines.iter().filter(|l| l["kind"] == "event").collect();
    assert_eq!(events.len(), 31);
    // After the last frame the filter hears that the stream ended, at the last frame's time.
    let end = events.pop().unwrap();
    assert_eq!(end["name"], "EndOfStream");
    assert_eq!(end["payload"]["frames"], 30);
    assert_eq!(end["payload"]["last_pts_us"], events[29]["pts_us"]);
    assert_eq!(end["pts_us"], events[29]["pts_us"]);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["name"], "Frame");
        assert_eq!(e["payload"]["format"], "i420");
        assert_eq!(e["payload"]["width"], 320);
        let pts = e["pts_us"].as_u64().unwrap();
        assert!(
            pts.abs_diff(i as u64 * 33_333) <= 1_000,
            "frame {i} pts {pts}"
        );
    }
    let summary = lines.last().unwrap();
    assert_eq!(
        (
            summary["frames"].as_u64(),
            summary["frames_written"].as_u64()
        ),
        (Some(30), Some(30))
    );
    let written = decode_all(&output, PixelFormat::I420);
    assert_eq!(written.len(), 30);
    // The probe's white box survived encoding (H.264, so within tolerance).
    assert!(written[0].0.pixel(0, 0).unwrap()[0] > 180);
}

#[test]
fn run_on_a_photo_from_the_data_set() {
    let Some(photo) = sample_photo() else {
        eprintln!("skipped: ../shared/data/alpr is not present");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.png");
    let out = prism(&[
        "filter",
        "run",
        wasm("privacy").to_str().unwrap(),
        "--input",
        photo.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--config",
        r#"{"regions":[{"x":0,"y":0,"width":64,"height":64}],"block":64,"timestamp":false}"#,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let original = &decode_all(&photo, PixelFormat::Rgba)[0].0;
    let result = &decode_all(&output, PixelFormat::Rgba)[0].0;
    assert_eq!(
        (result.width(), result.height()),
        (original.width(), original.height())
    );
    // One flat 64x64 block in the corner; the rest of the picture is untouched.
    let corner = result.read_region(Rect::new(0, 0, 64, 64)).unwrap();
    assert!(corner.chunks_exact(4).all(|p| p == &corner[..4]));
    let far = Rect::new(original.width() - 64, original.height() - 64, 64, 64);
    assert_eq!(
        result.read_region(far).unwrap(),
        original.read_region(far).unwrap()
    );
}

#[test]
fn run_reports_bad_input_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.mp4");
    std::fs::write(&junk, b"this is not a video").unwrap();
    let out = prism(&[
        "filter",
        "run",
        wasm("grayscale").to_str().unwrap(),
        "--input",
        junk.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("cannot decode"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let input = dir.path().join("blocks.png");
    write_png(&input, &blocks());
    let out = prism(&[
        "filter",
        "run",
        wasm("privacy").to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--config",
        r#"{"block": "big"}"#,
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("configuration refused by filter privacy"),
        "{}",
        text(&out.stderr)
    );

    let out = prism(&[
        "filter",
        "run",
        wasm("grayscale").to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        dir.path().join("x.gif").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("unsupported output"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn bench_plates_scores_a_labelled_folder() {
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("mine");
    std::fs::create_dir(&set).unwrap();
    for (i, size) in [(1, (800u32, 600u32)), (2, (1280, 720))] {
        let img = FrameBuf::filled(PixelFormat::Rgba, size.0, size.1, Color::rgb(90, 90, 90));
        let path = set.join(format!("car{i}.png"));
        write_png(&path, &img);
        std::fs::write(
            set.join(format!("car{i}.txt")),
            format!("car{i}.png\t100\t100\t200\t50\tAB{i}23\n"),
        )
        .unwrap();
    }
    let probe = wasm("probe");
    let out = prism(&[
        "bench",
        "plates",
        "--data",
        dir.path().to_str().unwrap(),
        "--filter",
        probe.to_str().unwrap(),
        "--config",
        "{}",
        "--max-size",
        "640x480",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mine = &v["sets"]["mine"];
    assert_eq!(mine["images"], 2, "{v}");
    // The probe reports frames, not plates: nothing detected, nothing false, time measured.
    assert_eq!(mine["detected_pct"], 0.0);
    assert_eq!(mine["strict_pct"], 0.0);
    assert_eq!(mine["fp_per_image"], 0.0);
    assert!(mine["ms_p50"].as_f64().unwrap() > 0.0);
    assert_eq!(v["max_size"], serde_json::json!([640, 480]));
    assert_eq!(v["filter"], "probe@0.1.0");
    // A folder without labels is an error that says so.
    let empty = tempfile::tempdir().unwrap();
    let out = prism(&[
        "bench",
        "plates",
        "--data",
        empty.path().to_str().unwrap(),
        "--filter",
        probe.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no labelled images"),
        "{}",
        text(&out.stderr)
    );
}
