//! Faces end to end: the host's detector (`vision.detect-faces`) on a real portrait, the
//! `faceoverlay` WASM filter drawing a picture the host holds (`vision.draw-image`) over the
//! face, loading pictures from files and HTTP, the `WasmFilter` element's `set_image`, and
//! `prism filter run --image`.
//!
//! Material: Debian's `python-matplotlib-data` (in the Makefile's APT_PACKAGES) ships
//! matplotlib's sample pictures: `grace_hopper.jpg`, a 512x600 portrait of Grace Hopper
//! (from Wikimedia Commons, public domain), and `Minduka_Present_Blue_Pack.png`, a 128x128
//! blue gift box with a transparent background (RGBA).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prism::media::rtp::VideoFrame;
use prism::media::{Decoder, scale_frame};
use prism::pipeline::{ElementId, MediaElement, MediaPipeline, VideoSink};
use prism::runtime::{EventSink, FilterEvent, FilterInstance, Verdict};
use prism::vision::faces::{FaceOptions, detect_faces};
use prism::vision::{GrayImage, ImageError, RgbaImage, load_image};
use prism_frame::{Color, FrameBuf, PixelFormat, Rect};
use prism_tests::{load, prism_bin, root, test_runtime};

const SAMPLES: &str = "/usr/share/matplotlib/mpl-data/sample_data";

fn portrait_path() -> PathBuf {
    let path = Path::new(SAMPLES).join("grace_hopper.jpg");
    assert!(
        path.is_file(),
        "{} is missing: install python-matplotlib-data (make setup)",
        path.display()
    );
    path
}

fn gift_path() -> PathBuf {
    Path::new(SAMPLES).join("Minduka_Present_Blue_Pack.png")
}

/// Grace Hopper's face in `grace_hopper.jpg` (x, y, width, height), read off the picture with
/// a 50-pixel grid drawn on it: cheek to cheek at the height of her glasses (x 160..370), the
/// brim of her cap to her chin (y 130..335).
const FACE: [f64; 4] = [160.0, 130.0, 210.0, 205.0];

fn portrait() -> FrameBuf {
    let mut dec = Decoder::open(&portrait_path(), PixelFormat::I420).unwrap();
    let frame = dec.next_frame().unwrap().unwrap().buf;
    assert_eq!((frame.width(), frame.height()), (512, 600));
    frame
}

/// The portrait scaled to 410x480 in the middle of a dark-grey 640x480 frame (a webcam's
/// size), and where the face is in it.
fn webcam_frame() -> (FrameBuf, [f64; 4]) {
    let photo = scale_frame(&portrait(), 410, 480).unwrap();
    let mut frame = FrameBuf::filled(PixelFormat::I420, 640, 480, Color::rgb(60, 60, 60));
    let area = Rect::new(0, 0, 410, 480);
    frame
        .write_region(
            Rect::new(114, 0, 410, 480),
            &photo.read_region(area).unwrap(),
        )
        .unwrap();
    let s = 480.0 / 600.0;
    let face = [114.0 + FACE[0] * s, FACE[1] * s, FACE[2] * s, FACE[3] * s];
    (frame, face)
}

fn gift() -> RgbaImage {
    load_image(&format!("file://{}", gift_path().display())).unwrap()
}

/// A texel of the gift's blue body: opaque, in a flat 5x5 neighbourhood, blue well above red.
fn blue_texel(picture: &RgbaImage) -> (u32, u32) {
    for v in 2..picture.height() - 2 {
        for u in 2..picture.width() - 2 {
            let first = picture.pixel(u, v).unwrap();
            let flat = (v - 2..=v + 2).all(|y| {
                (u - 2..=u + 2).all(|x| {
                    let p = picture.pixel(x, y).unwrap();
                    p[3] == 255 && (0..3).all(|c| p[c].abs_diff(first[c]) <= 6)
                })
            });
            if flat && first[2] > first[0].saturating_add(60) {
                return (u, v);
            }
        }
    }
    panic!("the gift has no flat blue part");
}

fn iou(a: [f64; 4], b: [f64; 4]) -> f64 {
    let ix = (a[0] + a[2]).min(b[0] + b[2]) - a[0].max(b[0]);
    let iy = (a[1] + a[3]).min(b[1] + b[3]) - a[1].max(b[1]);
    if ix <= 0.0 || iy <= 0.0 {
        return 0.0;
    }
    ix * iy / (a[2] * a[3] + b[2] * b[3] - ix * iy)
}

fn centre_distance(a: [f64; 4], b: [f64; 4]) -> f64 {
    let dx = (a[0] + a[2] / 2.0) - (b[0] + b[2] / 2.0);
    let dy = (a[1] + a[3] / 2.0) - (b[1] + b[3] / 2.0);
    (dx * dx + dy * dy).sqrt()
}

fn boxed(r: Rect) -> [f64; 4] {
    [r.x as f64, r.y as f64, r.width as f64, r.height as f64]
}

/// The face boxes of the `FacesDetected` events received so far, one list per event.
fn faces_events(rx: &std::sync::mpsc::Receiver<FilterEvent>) -> Vec<Vec<[f64; 4]>> {
    std::iter::from_fn(|| rx.try_recv().ok())
        .filter_map(|e| match e {
            FilterEvent::Event { name, payload, .. } if name == "FacesDetected" => Some(payload),
            _ => None,
        })
        .map(|p| {
            let faces = p["faces"].as_array().unwrap().clone();
            assert_eq!(p["count"].as_u64().unwrap() as usize, faces.len(), "{p}");
            faces
                .iter()
                .map(|f| ["x", "y", "width", "height"].map(|k| f[k].as_f64().unwrap()))
                .collect()
        })
        .collect()
}

fn faceoverlay(config: &str) -> (FilterInstance, std::sync::mpsc::Receiver<FilterEvent>) {
    let runtime = test_runtime();
    let filter = load(&runtime, "faceoverlay");
    let (sink, rx) = EventSink::channel(64);
    let mut instance = runtime.instantiate(&filter, Some(sink)).unwrap();
    instance.configure(config).unwrap();
    (instance, rx)
}

/// Where the filter puts the picture for `face` with Kurento's fractions (x, y, w, h).
fn placement(face: [f64; 4], fractions: [f64; 4]) -> [f64; 4] {
    [
        face[0] + fractions[0] * face[2],
        face[1] + fractions[1] * face[3],
        fractions[2] * face[2],
        fractions[3] * face[3],
    ]
}

/// Checks that `after` shows `picture` scaled into `at` over `before`: where the picture is
/// opaque and flat, the frame's luma is the picture's; where it is transparent, and anywhere
/// more than 2 pixels outside `at`, the frame is unchanged. Returns the mean U (blue-yellow
/// chroma) over the opaque points.
fn assert_picture_drawn(before: &FrameBuf, after: &FrameBuf, picture: &RgbaImage, at: [f64; 4]) {
    let (pw, ph) = (picture.width() as f64, picture.height() as f64);
    let (mut opaque, mut transparent) = (0, 0);
    let mut blue_chroma = Vec::new();
    let planes = after.planes();
    for gy in 1..24 {
        for gx in 1..24 {
            let fx = (at[0] + at[2] * gx as f64 / 24.0).round();
            let fy = (at[1] + at[3] * gy as f64 / 24.0).round();
            if fx < 0.0 || fy < 0.0 || fx >= after.width() as f64 || fy >= after.height() as f64 {
                continue;
            }
            let u = ((fx + 0.5 - at[0]) * pw / at[2] - 0.5).round() as i64;
            let v = ((fy + 0.5 - at[1]) * ph / at[3] - 0.5).round() as i64;
            // The picture's 5x5 neighbourhood around the sampled texel.
            let around: Vec<[u8; 4]> = (-2..=2)
                .flat_map(|dy| (-2..=2).map(move |dx| (u + dx, v + dy)))
                .filter_map(|(x, y)| {
                    (x >= 0 && y >= 0)
                        .then(|| picture.pixel(x as u32, y as u32))
                        .flatten()
                })
                .collect();
            if around.len() < 25 {
                continue;
            }
            let (x, y) = (fx as u32, fy as u32);
            let got = after.pixel(x, y).unwrap()[0];
            if around.iter().all(|p| p[3] == 0) {
                transparent += 1;
                assert_eq!(
                    got,
                    before.pixel(x, y).unwrap()[0],
                    "({x}, {y}) is under a transparent part of the picture"
                );
                continue;
            }
            let first = around[0];
            let flat = around
                .iter()
                .all(|p| p[3] == 255 && (0..3).all(|c| p[c].abs_diff(first[c]) <= 6));
            if flat {
                opaque += 1;
                let want = Color::rgb(first[0], first[1], first[2]).yuv().0;
                assert!(
                    got.abs_diff(want) <= 8,
                    "({x}, {y}): luma {got}, the picture's {want} ({first:?})"
                );
                if first[2] > first[0].saturating_add(60) {
                    let cu = planes[1].offset + (y / 2) * planes[1].stride + x / 2;
                    blue_chroma.push(after.data()[cu as usize] as f64);
                }
            }
        }
    }
    assert!(opaque >= 40, "only {opaque} opaque sample points checked");
    assert!(
        transparent >= 5,
        "only {transparent} transparent sample points"
    );
    // The gift is blue: high U (Cb) where its blue body is.
    let mean_u = blue_chroma.iter().sum::<f64>() / blue_chroma.len().max(1) as f64;
    assert!(
        blue_chroma.len() >= 10 && mean_u > 150.0,
        "{} blue points, mean U {mean_u}",
        blue_chroma.len()
    );
    // Outside the placement (and its 2-pixel bilinear / chroma margin) nothing changed.
    let (x0, y0) = (at[0] - 2.0, at[1] - 2.0);
    let (x1, y1) = (at[0] + at[2] + 2.0, at[1] + at[3] + 2.0);
    let mut checked = 0;
    for y in (0..after.height()).step_by(3) {
        for x in (0..after.width()).step_by(3) {
            let (xf, yf) = (x as f64, y as f64);
            if xf >= x0 && xf < x1 && yf >= y0 && yf < y1 {
                continue;
            }
            assert_eq!(after.pixel(x, y), before.pixel(x, y), "({x}, {y}) changed");
            checked += 1;
        }
    }
    assert!(checked > 1000, "{checked}");
}

#[test]
fn detect_faces_finds_the_portraits_face() {
    let photo = portrait();
    let faces = detect_faces(
        &GrayImage::of_frame(&photo).unwrap(),
        &FaceOptions::default(),
    )
    .unwrap();
    assert_eq!(faces.len(), 1, "{faces:?}");
    let got = boxed(faces[0].bounds);
    assert!(iou(got, FACE) > 0.6, "{got:?} vs {FACE:?}");
    assert!(centre_distance(got, FACE) < 20.0, "{got:?} vs {FACE:?}");
    assert!(faces[0].confidence > 0.5, "{faces:?}");

    // At a webcam's size, and how long it takes.
    let (frame, truth) = webcam_frame();
    let luma = GrayImage::of_frame(&frame).unwrap();
    let started = Instant::now();
    let runs = 10;
    for _ in 0..runs {
        let faces = detect_faces(&luma, &FaceOptions::default()).unwrap();
        assert_eq!(faces.len(), 1, "{faces:?}");
        let got = boxed(faces[0].bounds);
        assert!(iou(got, truth) > 0.6, "{got:?} vs {truth:?}");
    }
    eprintln!(
        "detect-faces, 640x480: {:.1} ms per frame",
        started.elapsed().as_secs_f64() * 1000.0 / runs as f64
    );

    // Searching only where the face is not finds nothing; faces bigger than asked for are
    // still found with a minimum size.
    let elsewhere = FaceOptions {
        area: Some(Rect::new(0, 300, 640, 180)),
        ..FaceOptions::default()
    };
    assert!(detect_faces(&luma, &elsewhere).unwrap().is_empty());
    let big_only = FaceOptions {
        min_size: 120,
        ..FaceOptions::default()
    };
    assert_eq!(detect_faces(&luma, &big_only).unwrap().len(), 1);
    let too_big = FaceOptions {
        min_size: 300,
        ..FaceOptions::default()
    };
    assert!(detect_faces(&luma, &too_big).unwrap().is_empty());
}

#[test]
fn faceoverlay_draws_the_picture_over_the_face() {
    // Above and over the face, starting above the top of the picture (clipped there).
    let fractions = [-0.1, -0.6, 1.2, 1.2];
    let (mut instance, rx) = faceoverlay(
        r#"{"image": "gift", "offset_x": -0.1, "offset_y": -0.6, "width": 1.2, "height": 1.2}"#,
    );
    let picture = gift();
    instance
        .images()
        .set("gift", Some(Arc::new(picture.clone())))
        .unwrap();
    let before = portrait();
    let mut after = before.clone();
    let started = Instant::now();
    assert_eq!(instance.process(&mut after, 0), Verdict::Forward);
    eprintln!(
        "faceoverlay on 512x600: {:.1} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    assert_eq!(instance.stats().failures, 0);
    let events = faces_events(&rx);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].len(), 1, "{events:?}");
    let face = events[0][0];
    assert!(iou(face, FACE) > 0.6, "{face:?}");
    let at = placement(face, fractions);
    assert!(at[1] < 0.0, "the placement starts above the frame: {at:?}");
    assert_picture_drawn(&before, &after, &picture, at);

    // The same frame again: the same drawing, and no second event (the count did not change).
    let mut again = before.clone();
    assert_eq!(instance.process(&mut again, 33_333), Verdict::Forward);
    assert_eq!(again, after);
    assert!(faces_events(&rx).is_empty());

    // On a webcam-sized frame with Kurento's hat fractions (magic-mirror tutorial).
    let (mut instance, rx) = faceoverlay(
        r#"{"image": "hat", "offset_x": -0.35, "offset_y": -1.2, "width": 1.6, "height": 1.6}"#,
    );
    instance
        .images()
        .set("hat", Some(Arc::new(picture.clone())))
        .unwrap();
    let (before, truth) = webcam_frame();
    let mut after = before.clone();
    assert_eq!(instance.process(&mut after, 0), Verdict::Forward);
    let face = faces_events(&rx)[0][0];
    assert!(iou(face, truth) > 0.6, "{face:?} vs {truth:?}");
    assert_picture_drawn(
        &before,
        &after,
        &picture,
        placement(face, [-0.35, -1.2, 1.6, 1.6]),
    );
}

#[test]
fn without_a_picture_faces_get_boxes() {
    for config in [r#"{}"#, r#"{"image": "not-attached"}"#] {
        let (mut instance, rx) = faceoverlay(config);
        let before = portrait();
        let mut after = before.clone();
        assert_eq!(instance.process(&mut after, 0), Verdict::Forward);
        assert_eq!(instance.stats().failures, 0, "{config}");
        let face = faces_events(&rx)[0][0];
        // The box's outline is green (luma of (40, 230, 90)); its inside is untouched.
        let green = Color::rgb(40, 230, 90).yuv().0;
        let (x0, y0) = (face[0] as u32, face[1] as u32);
        let (x1, y1) = (
            (face[0] + face[2]) as u32 - 1,
            (face[1] + face[3]) as u32 - 1,
        );
        for (x, y) in [
            (x0 + 1, (y0 + y1) / 2),
            (x1 - 1, (y0 + y1) / 2),
            ((x0 + x1) / 2, y0 + 1),
        ] {
            assert_eq!(
                after.pixel(x, y),
                Some(&[green][..]),
                "{config}: ({x}, {y})"
            );
        }
        let centre = ((x0 + x1) / 2, (y0 + y1) / 2);
        assert_eq!(
            after.pixel(centre.0, centre.1),
            before.pixel(centre.0, centre.1)
        );
        assert_eq!(after.pixel(5, 5), before.pixel(5, 5));
    }
}

#[test]
fn no_face_leaves_the_frame_unchanged() {
    let (mut instance, rx) = faceoverlay(r#"{"image": "gift"}"#);
    instance
        .images()
        .set("gift", Some(Arc::new(gift())))
        .unwrap();
    // The lower part of the portrait (uniform, medals, name tag: no face), and a gradient.
    let photo = portrait();
    let lower = FrameBuf::new(
        PixelFormat::I420,
        512,
        200,
        photo.read_region(Rect::new(0, 400, 512, 200)).unwrap(),
    )
    .unwrap();
    let mut gradient = FrameBuf::zeroed(PixelFormat::I420, 320, 240);
    for (i, b) in gradient.data_mut().iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    for frame in [lower, gradient] {
        for i in 0..3 {
            let mut f = frame.clone();
            assert_eq!(instance.process(&mut f, i * 33_333), Verdict::Forward);
            assert_eq!(f, frame);
        }
    }
    assert_eq!(instance.stats().failures, 0);
    // One event, for the first frame (count 0); none while the count stays 0.
    assert_eq!(faces_events(&rx), vec![Vec::<[f64; 4]>::new()]);
}

/// Serves `count` HTTP requests on 127.0.0.1: `/gift.png` is the gift, anything else 404.
fn serve(count: usize) -> (String, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let body = std::fs::read(gift_path()).unwrap();
    let handle = std::thread::spawn(move || {
        for _ in 0..count {
            let (mut stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).unwrap();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
            }
            let (status, payload): (&str, &[u8]) = if request.starts_with("GET /gift.png ") {
                ("200 OK", &body)
            } else {
                ("404 Not Found", b"no such picture")
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                payload.len()
            );
            stream.write_all(head.as_bytes()).unwrap();
            stream.write_all(payload).unwrap();
        }
    });
    (base, handle)
}

#[test]
fn pictures_load_from_files_and_http_and_bad_uris_say_why() {
    let from_file = gift();
    assert_eq!((from_file.width(), from_file.height()), (128, 128));
    // RGBA with a transparent corner and an opaque middle.
    assert_eq!(from_file.pixel(0, 0).unwrap()[3], 0);
    assert_eq!(from_file.pixel(64, 80).unwrap()[3], 255);
    let plain = load_image(gift_path().to_str().unwrap()).unwrap();
    assert_eq!(plain, from_file);

    let (base, server) = serve(2);
    let over_http = load_image(&format!("{base}/gift.png")).unwrap();
    assert_eq!(over_http, from_file);
    let e = load_image(&format!("{base}/missing.png")).unwrap_err();
    assert!(matches!(e, ImageError::Fetch { .. }), "{e:?}");
    assert!(e.to_string().contains("404"), "{e}");
    server.join().unwrap();

    let cases: [(String, &str); 5] = [
        (
            "file:///nonexistent/hat.png".into(),
            "cannot read image /nonexistent/hat.png",
        ),
        (
            root().join("wit/filter.wit").display().to_string(),
            "is not a PNG or JPEG image",
        ),
        (
            "ftp://example.invalid/hat.png".into(),
            "unsupported image URI",
        ),
        // Nothing listens on the discard port of the loopback.
        ("http://127.0.0.1:9/hat.png".into(), "cannot fetch image"),
        (SAMPLES.into(), "cannot read image"),
    ];
    for (uri, why) in cases {
        let e = load_image(&uri).unwrap_err().to_string();
        assert!(e.contains(why), "{uri}: {e}");
    }
}

/// Collects the frames an element sends on.
#[derive(Default)]
struct Collect(Mutex<Vec<FrameBuf>>);

impl VideoSink for Collect {
    fn push_video(&self, frame: Arc<VideoFrame>) {
        self.0.lock().unwrap().push(frame.buf.clone());
    }

    fn wanted_format(&self) -> Option<PixelFormat> {
        Some(PixelFormat::I420)
    }
}

impl Collect {
    fn wait(&self, n: usize) -> FrameBuf {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(f) = self.0.lock().unwrap().get(n - 1) {
                return f.clone();
            }
            assert!(Instant::now() < deadline, "frame {n} never came out");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[test]
fn the_wasm_filter_element_attaches_and_detaches_pictures() {
    let rt = prism_tests::loopback::tokio();
    let _guard = rt.enter();
    let pipeline = MediaPipeline::new(prism_tests::loopback::context(&rt)).unwrap();
    let loaded = load(&pipeline.context().filters, "faceoverlay");
    let element = pipeline
        .add_filter(
            &loaded,
            Some(r#"{"image": "overlay"}"#),
            "prism",
            "WasmFilter",
        )
        .unwrap();
    let collect = Arc::new(Collect::default());
    element
        .outputs()
        .unwrap()
        .add_video(ElementId::from("test-collector"), collect.clone());
    let input = element.video_sink().unwrap();
    let before = portrait();
    let push = |n: u64| {
        input.push_video(Arc::new(VideoFrame {
            buf: before.clone(),
            pts_us: n * 33_333,
            decoded_at: Instant::now(),
        }))
    };
    let picture = gift();
    element
        .set_image("overlay", Some(Arc::new(picture.clone())))
        .unwrap();
    push(0);
    let drawn = collect.wait(1);
    // The picture covers the face box (offsets 0, size 1): the face's centre is the gift's.
    let faces = detect_faces(
        &GrayImage::of_frame(&before).unwrap(),
        &FaceOptions::default(),
    )
    .unwrap();
    let face = boxed(faces[0].bounds);
    assert_picture_drawn(&before, &drawn, &picture, face);

    // Detached: boxes again, from the next frame on, without reconfiguring.
    element.set_image("overlay", None).unwrap();
    push(1);
    let boxed_frame = collect.wait(2);
    let centre = (
        (face[0] + face[2] / 2.0) as u32,
        (face[1] + face[3] / 2.0) as u32,
    );
    assert_eq!(
        boxed_frame.pixel(centre.0, centre.1),
        before.pixel(centre.0, centre.1)
    );
    let green = Color::rgb(40, 230, 90).yuv().0;
    assert_eq!(
        boxed_frame.pixel(face[0] as u32 + 1, centre.1),
        Some(&[green][..])
    );
    // Names are checked.
    assert!(element.set_image("", Some(Arc::new(picture))).is_err());
    pipeline.release();
}

#[test]
fn cli_runs_faceoverlay_with_an_attached_picture() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.png");
    let out = std::process::Command::new(prism_bin())
        .args(["filter", "run"])
        .arg(root().join("filters/faceoverlay"))
        .arg("--input")
        .arg(portrait_path())
        .arg("--image")
        .arg(format!("gift={}", gift_path().display()))
        .args(["--config", r#"{"image": "gift"}"#, "--output"])
        .arg(&output)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let event: serde_json::Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["name"] == "FacesDetected")
        .unwrap_or_else(|| panic!("no FacesDetected in {stdout}"));
    assert_eq!(event["payload"]["count"], 1, "{event}");
    // Where the gift's blue body is drawn, the written picture is that blue.
    let written = Decoder::open(&output, PixelFormat::Rgba)
        .unwrap()
        .next_frame()
        .unwrap()
        .unwrap()
        .buf;
    let f = &event["payload"]["faces"][0];
    let n = |k: &str| f[k].as_f64().unwrap();
    let picture = gift();
    let (u, v) = blue_texel(&picture);
    let x = n("x") + (u as f64 + 0.5) * n("width") / picture.width() as f64;
    let y = n("y") + (v as f64 + 0.5) * n("height") / picture.height() as f64;
    let want = picture.pixel(u, v).unwrap();
    let got = written.pixel(x as u32, y as u32).unwrap();
    for c in 0..3 {
        assert!(
            got[c].abs_diff(want[c]) <= 12,
            "{got:?} vs the gift's {want:?}"
        );
    }
    // Away from the face the picture is what the same run without the gift writes (the
    // filter then draws a box around the face instead).
    let plain = dir.path().join("plain.png");
    let out = std::process::Command::new(prism_bin())
        .args(["filter", "run"])
        .arg(root().join("filters/faceoverlay"))
        .arg("--input")
        .arg(portrait_path())
        .args(["--config", r#"{"image": "gift"}"#, "--output"])
        .arg(&plain)
        .output()
        .unwrap();
    assert!(out.status.success());
    let plain = Decoder::open(&plain, PixelFormat::Rgba)
        .unwrap()
        .next_frame()
        .unwrap()
        .unwrap()
        .buf;
    assert_ne!(plain.pixel(x as u32, y as u32), Some(got));
    let mut same = 0;
    for y in (0..written.height()).step_by(4) {
        for x in (0..written.width()).step_by(4) {
            let (xf, yf) = (x as f64, y as f64);
            let near = xf > n("x") - 4.0
                && xf < n("x") + n("width") + 4.0
                && yf > n("y") - 4.0
                && yf < n("y") + n("height") + 4.0;
            if !near {
                assert_eq!(written.pixel(x, y), plain.pixel(x, y), "({x}, {y})");
                same += 1;
            }
        }
    }
    assert!(same > 10_000, "{same}");

    // A picture that is not there: a clear error, non-zero exit.
    let out = std::process::Command::new(prism_bin())
        .args(["filter", "run"])
        .arg(root().join("filters/faceoverlay"))
        .arg("--input")
        .arg(portrait_path())
        .args(["--image", "gift=/nonexistent/gift.png"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("loading picture \"gift\"")
            && stderr.contains("cannot read image /nonexistent/gift.png"),
        "{stderr}"
    );
}
