//! Filters on known frames through the real runtime: pixel values, bit-exactness, formats.

use prism::runtime::{EventSink, FilterEvent, RuntimeError, Verdict};
use prism_frame::{Color, FrameBuf, PixelFormat, Rect};
use prism_tests::{load, test_runtime, wasm};

#[test]
fn grayscale_gives_known_pixels() {
    let runtime = test_runtime();
    let filter = load(&runtime, "grayscale");
    assert_eq!(filter.info.name, "grayscale");
    assert_eq!(filter.info.format, PixelFormat::Rgba);
    let mut instance = runtime.instantiate(&filter, None).unwrap();
    // Four quadrants of known colours; luma = (77 R + 150 G + 29 B + 128) >> 8.
    let mut frame = FrameBuf::zeroed(PixelFormat::Rgba, 640, 480);
    frame.fill_rect(Rect::new(0, 0, 320, 240), Color::rgb(255, 0, 0));
    frame.fill_rect(Rect::new(320, 0, 320, 240), Color::rgb(0, 255, 0));
    frame.fill_rect(Rect::new(0, 240, 320, 240), Color::rgb(0, 0, 255));
    frame.fill_rect(Rect::new(320, 240, 320, 240), Color::rgb(200, 100, 50));
    assert_eq!(instance.process(&mut frame, 0), Verdict::Forward);
    assert_eq!(frame.pixel(10, 10), Some(&[77, 77, 77, 255][..]));
    assert_eq!(frame.pixel(630, 10), Some(&[149, 149, 149, 255][..]));
    assert_eq!(frame.pixel(10, 470), Some(&[29, 29, 29, 255][..]));
    assert_eq!(frame.pixel(639, 479), Some(&[124, 124, 124, 255][..]));
    assert!(
        frame
            .data()
            .chunks_exact(4)
            .all(|p| p[0] == p[1] && p[1] == p[2])
    );
    assert_eq!(instance.stats().failures, 0);
}

#[test]
fn passthrough_is_bit_exact() {
    let runtime = test_runtime();
    let filter = load(&runtime, "passthrough");
    let mut instance = runtime.instantiate(&filter, None).unwrap();
    let mut frame = FrameBuf::zeroed(PixelFormat::I420, 322, 242);
    for (i, b) in frame.data_mut().iter_mut().enumerate() {
        *b = ((i * 2654435761usize) >> 7) as u8;
    }
    let original = frame.clone();
    for pts in 0..5 {
        assert_eq!(instance.process(&mut frame, pts * 33_333), Verdict::Forward);
    }
    assert_eq!(frame, original);
}

fn probe_event(format_size: (u32, u32), pts: u64) -> serde_json::Value {
    let runtime = test_runtime();
    let filter = load(&runtime, "probe");
    assert_eq!(filter.info.format, PixelFormat::I420);
    let (sink, rx) = EventSink::channel(16);
    let mut instance = runtime.instantiate(&filter, Some(sink)).unwrap();
    let mut frame = FrameBuf::filled(
        PixelFormat::I420,
        format_size.0,
        format_size.1,
        Color::rgb(0, 0, 0),
    );
    assert_eq!(instance.process(&mut frame, pts), Verdict::Forward);
    // The probe drew a white 2x2 box at the origin: limited-range white luma is 235.
    assert_eq!(frame.pixel(0, 0), Some(&[235][..]));
    assert_eq!(frame.pixel(2, 2), Some(&[16][..]));
    match rx.try_recv().expect("a Frame event") {
        FilterEvent::Event {
            filter,
            name,
            payload,
            pts_us,
        } => {
            assert_eq!(
                (filter.as_str(), name.as_str(), pts_us),
                ("probe", "Frame", Some(pts))
            );
            payload
        }
        other => panic!("unexpected event {other:?}"),
    }
}

#[test]
fn filter_gets_the_format_it_asked_for() {
    let payload = probe_event((640, 360), 1_234_567);
    assert_eq!(payload["format"], "i420");
    assert_eq!(
        (payload["width"].as_u64(), payload["height"].as_u64()),
        (Some(640), Some(360))
    );
    assert_eq!(payload["pts_us"], 1_234_567);
    assert_eq!(payload["bytes"], 640 * 360 * 3 / 2);
    let offsets: Vec<u64> = payload["planes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, [0, 230_400, 288_000]);
    // Odd sizes: chroma rounds up.
    let odd = probe_event((33, 17), 0);
    assert_eq!(odd["planes"][1]["width"], 17);
    assert_eq!(odd["planes"][1]["height"], 9);
    assert_eq!(odd["bytes"], 33 * 17 + 2 * 17 * 9);
}

#[test]
fn wrong_format_is_reported_not_processed() {
    let runtime = test_runtime();
    let filter = load(&runtime, "grayscale");
    let (sink, rx) = EventSink::channel(16);
    let mut instance = runtime.instantiate(&filter, Some(sink)).unwrap();
    let mut frame = FrameBuf::filled(PixelFormat::Gray8, 8, 8, Color::rgb(9, 9, 9));
    let original = frame.clone();
    assert_eq!(instance.process(&mut frame, 0), Verdict::Forward);
    assert_eq!(frame, original);
    let event = serde_json::to_value(rx.try_recv().unwrap()).unwrap();
    assert_eq!(event["kind"], "error");
    assert_eq!(event["fault"], "format");
    assert!(
        event["message"]
            .as_str()
            .unwrap()
            .contains("asked for rgba"),
        "{event}"
    );
}

#[test]
fn check_rejects_what_is_not_a_filter() {
    let runtime = test_runtime();
    let err = |bytes: &[u8]| runtime.load(bytes).unwrap_err();
    assert!(matches!(
        err(b"GIF89a not wasm at all"),
        RuntimeError::NotWasm { .. }
    ));
    assert!(matches!(err(b"\0asm\x01\0\0\0"), RuntimeError::CoreModule));
    assert!(matches!(
        err(b"\0asm\x0d\0\x01\0garbage"),
        RuntimeError::InvalidComponent(_)
    ));
    let wrong = std::fs::read(wasm("wrong-world")).unwrap();
    match err(&wrong) {
        RuntimeError::WrongWorld { found } => assert_eq!(found, "other:thing/api@1.0.0"),
        e => panic!("unexpected {e}"),
    }
    let bad = std::fs::read(wasm("bad-import")).unwrap();
    match err(&bad) {
        RuntimeError::UnsupportedImports { imports } => {
            assert_eq!(imports, "evil:net/socket@1.0.0")
        }
        e => panic!("unexpected {e}"),
    }
}

#[test]
fn loading_is_cached_by_content() {
    let runtime = test_runtime();
    let a = load(&runtime, "privacy");
    let b = runtime
        .load(&std::fs::read(wasm("privacy")).unwrap())
        .unwrap();
    assert!(std::sync::Arc::ptr_eq(&a, &b));
    assert_eq!(a.hash.len(), 64);
    assert_eq!(
        a.info.parameters_schema["properties"]["block"]["maximum"],
        128
    );
}

#[test]
fn privacy_pixelates_and_stamps_time() {
    let runtime = test_runtime();
    let filter = load(&runtime, "privacy");
    let mut instance = runtime.instantiate(&filter, None).unwrap();
    instance
        .configure(r#"{"regions":[{"x":100,"y":100,"width":64,"height":64}],"block":32}"#)
        .unwrap();
    let mut frame = FrameBuf::zeroed(PixelFormat::Rgba, 320, 240);
    // A vertical split inside the first 32x32 block: left half red, right half blue.
    frame.fill_rect(Rect::new(100, 100, 16, 64), Color::rgb(200, 0, 0));
    frame.fill_rect(Rect::new(116, 100, 48, 64), Color::rgb(0, 0, 200));
    assert_eq!(instance.process(&mut frame, 61_000_000), Verdict::Forward);
    assert_eq!(frame.pixel(101, 101), Some(&[100, 0, 100, 255][..]));
    assert_eq!(frame.pixel(140, 140), Some(&[0, 0, 200, 255][..]));
    let white = frame
        .data()
        .chunks_exact(4)
        .filter(|p| p[..3] == [255, 255, 255])
        .count();
    assert!(white > 100, "the timestamp is drawn ({white} white pixels)");
    let err = instance.configure(r#"{"block": 1000}"#).unwrap_err();
    assert!(err.to_string().contains("block must be 2 to 128"), "{err}");
}
