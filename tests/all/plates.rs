//! The licence-plate reader end to end: dev photos of ../shared/data/alpr read through the
//! `platedetector` WASM filter (native vision imports), hostile frames, one event per plate.

use std::path::PathBuf;
use std::time::Instant;

use prism::media::Decoder;
use prism::runtime::{EventSink, FilterEvent, Verdict};
use prism_frame::{Color, FrameBuf, PixelFormat};
use prism_tests::{load, prism_bin, root, test_runtime};

fn alpr() -> PathBuf {
    root().join("../shared/data/alpr")
}

/// The photo, its plate box and its plate text.
fn labelled(set: &str, name: &str) -> (FrameBuf, [f64; 4], String) {
    let dir = alpr().join(set);
    let label = std::fs::read_to_string(dir.join(format!("{name}.txt"))).unwrap();
    let f: Vec<&str> = label.split_whitespace().collect();
    let n = |i: usize| f[i].parse::<f64>().unwrap();
    let mut dec = Decoder::open(&dir.join(f[0]), PixelFormat::I420).unwrap();
    let frame = dec.next_frame().unwrap().unwrap().buf;
    (frame, [n(1), n(2), n(3), n(4)], f[5].to_string())
}

fn iou(a: [f64; 4], b: [f64; 4]) -> f64 {
    let ix = (a[0] + a[2]).min(b[0] + b[2]) - a[0].max(b[0]);
    let iy = (a[1] + a[3]).min(b[1] + b[3]) - a[1].max(b[1]);
    if ix <= 0.0 || iy <= 0.0 {
        return 0.0;
    }
    ix * iy / (a[2] * a[3] + b[2] * b[3] - ix * iy)
}

/// The event on the labelled plate at `truth` (a picture may hold other text, a sign, a
/// dealer's frame); fails the test when none overlaps it.
fn event_on_plate<'a>(
    events: &'a [serde_json::Value],
    truth: [f64; 4],
    what: &str,
) -> &'a serde_json::Value {
    let on_plate = |v: &serde_json::Value| {
        let b = &v["box"];
        iou(
            ["x", "y", "width", "height"].map(|k| b[k].as_f64().unwrap()),
            truth,
        )
    };
    let best = events
        .iter()
        .max_by(|a, b| on_plate(a).total_cmp(&on_plate(b)))
        .unwrap_or_else(|| panic!("{what}: no plate"));
    assert!(
        on_plate(best) > 0.4,
        "{what}: no event on the plate {truth:?}: {events:?}"
    );
    best
}

/// Runs `frames` copies of `frame` through a fresh platedetector, a stream that then ends; its
/// `PlateDetected` payloads.
fn detect(frame: &FrameBuf, frames: u64, config: &str) -> Vec<serde_json::Value> {
    let runtime = test_runtime();
    let filter = load(&runtime, "platedetector");
    let (sink, rx) = EventSink::channel(256);
    let mut instance = runtime.instantiate(&filter, Some(sink)).unwrap();
    instance.configure(config).unwrap();
    for i in 0..frames {
        let mut f = frame.clone();
        assert_eq!(instance.process(&mut f, i * 33_333), Verdict::Forward);
    }
    instance.end_of_stream();
    assert_eq!(instance.stats().failures, 0);
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        if let FilterEvent::Event { name, payload, .. } = e {
            assert_eq!(name, "PlateDetected");
            events.push(payload);
        }
    }
    events
}

/// A dev photo darkened: its luma's `light` scaled, then its contrast about the mean cut to
/// `contrast`.
fn dimmed(set: &str, name: &str, light: f64, contrast: f64) -> (FrameBuf, [f64; 4], String) {
    let (mut photo, truth, plate) = labelled(set, name);
    let luma = photo.plane_mut(0);
    let mean = luma.iter().map(|&v| v as f64 * light).sum::<f64>() / luma.len() as f64;
    for v in luma.iter_mut() {
        *v = (mean + (*v as f64 * light - mean) * contrast).round() as u8;
    }
    (photo, truth, plate)
}

/// The texts the usual search reads in `photo` (candidates read one by one, no second search).
fn usual_search(photo: &FrameBuf, opts: &prism::vision::PlateOptions) -> Vec<String> {
    use prism::vision::{self, GrayImage};
    let img = GrayImage::of_frame(photo).unwrap();
    vision::find_candidates(&img, opts)
        .unwrap()
        .iter()
        .filter_map(|c| vision::read_plate(&img, c, opts).map(|r| r.text))
        .collect()
}

#[test]
fn a_faint_plate_is_found_by_the_second_search() {
    // The plate of eu1 with the picture's contrast cut to an eighth (dusk, shade, a dirty
    // lens): the usual search finds none of its glyphs, the faint-ink search reads it, through
    // the filter too.
    use prism::vision::{self, GrayImage, PlateOptions, Region};
    let (photo, truth, plate) = dimmed("eu", "eu1", 1.0, 0.12);
    let opts = PlateOptions {
        region: Region::Eu,
        ..PlateOptions::default()
    };
    let usual = usual_search(&photo, &opts);
    assert!(!usual.contains(&plate), "{usual:?}");
    let img = GrayImage::of_frame(&photo).unwrap();
    let reads = vision::detect_plates(&img, &opts).unwrap();
    let best = &reads[0];
    assert_eq!(best.text, plate, "{reads:?}");
    assert!(
        best.confidence >= vision::DEFAULT_MIN_CONFIDENCE,
        "{best:?}"
    );
    let b = best.bounds;
    let found = [b.x as f64, b.y as f64, b.width as f64, b.height as f64];
    assert!(iou(found, truth) > 0.4, "{found:?} vs {truth:?}");
    let events = detect(&photo, 3, r#"{"region": "eu"}"#);
    assert!(
        events.iter().any(|e| e["plate"] == plate.as_str()),
        "{events:?}"
    );
}

#[test]
fn a_quick_search_gives_what_a_thorough_one_would_or_nothing() {
    use prism::vision::{self, GrayImage, PlateOptions, Region, Search};
    for (set, name, region) in [("eu", "eu1", Region::Eu), ("us", "car14", Region::Us)] {
        let (photo, _, plate) = labelled(set, name);
        let img = GrayImage::of_frame(&photo).unwrap();
        let read = |search| {
            let opts = PlateOptions {
                region,
                search,
                ..PlateOptions::default()
            };
            vision::detect_plates(&img, &opts).unwrap()
        };
        let (thorough, quick) = (read(Search::Thorough), read(Search::Quick));
        assert_eq!(thorough[0].text, plate, "{thorough:?}");
        assert_eq!(quick, thorough);
    }
    // Clutter reads `KII7006` at 0.51 and only the search for fainter ink finds this plate: a
    // quick search gives nothing. The filter searches thoroughly every other frame by default
    // (frames 0 and 2 of three: two readings confirm the plate); one frame in three gives it
    // a single reading, which confirms nothing.
    let (photo, _, plate) = labelled("br", "JSP7678");
    let img = GrayImage::of_frame(&photo).unwrap();
    let opts = PlateOptions {
        region: Region::Br,
        ..PlateOptions::default()
    };
    let thorough = vision::detect_plates(&img, &opts).unwrap();
    assert_eq!(thorough[0].text, plate, "{thorough:?}");
    let quick = PlateOptions {
        search: Search::Quick,
        ..opts
    };
    let reads = vision::detect_plates(&img, &quick).unwrap();
    assert!(reads.is_empty(), "{reads:?}");
    let plates = |config: &str| -> Vec<String> {
        let events = detect(&photo, 3, config);
        events
            .iter()
            .map(|e| e["plate"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(plates(r#"{"region": "br"}"#).contains(&plate));
    let sparse = plates(r#"{"region": "br", "thorough_every": 3}"#);
    assert!(!sparse.contains(&plate), "{sparse:?}");
}

#[test]
fn a_dim_plate_is_read_by_the_usual_search() {
    // A US photo darkened as by an underexposed camera (its light at 0.6, its contrast cut to
    // 0.7): ink a fixed number of gray levels from its surroundings broke the plate's 9 and 8
    // apart (the row read 0YTB); ink measured against its neighbourhood's spread keeps them.
    use prism::vision::{PlateOptions, Region};
    let (photo, truth, plate) = dimmed("us", "car14", 0.6, 0.7);
    let opts = PlateOptions {
        region: Region::Us,
        ..PlateOptions::default()
    };
    let usual = usual_search(&photo, &opts);
    assert!(usual.contains(&plate), "{usual:?}");
    let events = detect(&photo, 3, r#"{"region": "us"}"#);
    let best = event_on_plate(&events, truth, "us/car14 dimmed");
    assert_eq!(best["plate"], plate.as_str(), "{events:?}");
}

#[test]
fn dev_photos_read_to_the_exact_plate() {
    for (set, name) in [
        ("eu", "eu1"),
        ("br", "NYL3614"),
        ("us", "us4"),
        ("br", "NZU2673"),
        // Its Ws break into confident pieces at one threshold and stay whole at another.
        ("us", "wts-lg-000144"),
        // Glyphs 15 px tall whose N breaks apart: read again from the plate scaled up.
        ("us", "wts-lg-000053"),
        // Below a shop's window: ten lines of its lettering read more surely than the plate.
        ("us", "car3"),
        // Its F is joined to the plate's frame: cut out a glyph's width next to the row.
        ("us", "wts-lg-000189"),
        // Tilted 13 degrees, its A leaning on a cactus: read again level.
        ("us", "car9-7"),
        // Clutter across the picture reads `KII7006` at 0.51: not well enough to keep the
        // search for fainter ink, the only one to find the plate, from running.
        ("br", "JSP7678"),
    ] {
        let (frame, truth, plate) = labelled(set, name);
        let events = detect(&frame, 3, &format!(r#"{{"region": "{set}"}}"#));
        let best = event_on_plate(&events, truth, &format!("{set}/{name}"));
        assert_eq!(best["plate"], plate.as_str(), "{set}/{name}: {events:?}");
        let c = best["confidence"].as_f64().unwrap();
        assert!(c > 0.5 && c <= 1.0, "{c}");
        assert_eq!(best["region"], set);
        assert!(best["frames"].as_u64().unwrap() >= 2);
    }
}

#[test]
fn overlay_draws_the_plate_box() {
    let (frame, truth, _) = labelled("eu", "eu1");
    let runtime = test_runtime();
    let filter = load(&runtime, "platedetector");
    let mut instance = runtime.instantiate(&filter, None).unwrap();
    let mut last = frame.clone();
    for i in 0..3 {
        last = frame.clone();
        instance.process(&mut last, i * 33_333);
    }
    // The box is drawn in green around the plate: pixels on its outline changed.
    let changed = (truth[0] as u32..(truth[0] + truth[2]) as u32)
        .filter(|&x| {
            (truth[1] as u32 - 20..truth[1] as u32 + 5)
                .any(|y| frame.pixel(x, y) != last.pixel(x, y))
        })
        .count();
    assert!(changed as f64 > truth[2] * 0.5, "{changed}");
    // Without the overlay the picture is untouched.
    let mut plain = runtime.instantiate(&filter, None).unwrap();
    plain.configure(r#"{"overlay": false}"#).unwrap();
    let mut f = frame.clone();
    for i in 0..3 {
        f = frame.clone();
        plain.process(&mut f, i * 33_333);
    }
    assert_eq!(f, frame);
}

#[test]
fn the_same_plate_over_ten_frames_is_one_event() {
    let (frame, _, plate) = labelled("eu", "eu1");
    let events = detect(&frame, 10, r#"{"region": "eu"}"#);
    let plates: Vec<&str> = events.iter().filter_map(|e| e["plate"].as_str()).collect();
    assert_eq!(
        plates.iter().filter(|p| **p == plate).count(),
        1,
        "{plates:?}"
    );
}

#[test]
fn a_plate_still_coming_closer_when_the_stream_ends_is_reported_at_the_end() {
    use prism::bench::{approach, plates::BBox};
    let (photo, [x, y, w, h], plate) = labelled("us", "22e54a62-57a8-4a0a-88c1-4b9758f67651");
    // The clip closing in on the car, cut after 1.5 s: the plate, 35 px wide, has been in
    // sight for under a second with glyphs too small to read well, and is still waiting
    // to be read larger.
    let clip = approach::clip(&photo, BBox { x, y, w, h }).unwrap();
    let runtime = test_runtime();
    let filter = load(&runtime, "platedetector");
    let (sink, rx) = EventSink::channel(256);
    let mut instance = runtime.instantiate(&filter, Some(sink)).unwrap();
    instance.configure(r#"{"region": "us"}"#).unwrap();
    let cut = 44;
    for (i, (frame, _)) in clip[..cut].iter().enumerate() {
        instance.process(&mut frame.clone(), i as u64 * approach::FRAME_US);
    }
    let plates =
        |rx: &std::sync::mpsc::Receiver<FilterEvent>| -> Vec<(serde_json::Value, Option<u64>)> {
            rx.try_iter()
                .filter_map(|e| match e {
                    FilterEvent::Event {
                        payload, pts_us, ..
                    } => Some((payload, pts_us)),
                    _ => None,
                })
                .collect()
        };
    assert_eq!(plates(&rx), [], "reported before the plate grew legible");
    instance.end_of_stream();
    let events = plates(&rx);
    assert_eq!(events.len(), 1, "{events:?}");
    let (payload, pts_us) = &events[0];
    assert_eq!(payload["plate"], plate.as_str());
    assert_eq!(*pts_us, Some((cut as u64 - 1) * approach::FRAME_US));
    let truth = clip[cut - 1].1;
    event_on_plate(
        std::slice::from_ref(payload),
        [truth.x, truth.y, truth.w, truth.h],
        "at the end",
    );
    assert_eq!(instance.stats().failures, 0);
}

#[test]
fn hostile_frames_have_no_plate_and_do_not_fail() {
    let mut noisy = FrameBuf::zeroed(PixelFormat::I420, 640, 480);
    let mut seed = 12345u64;
    for b in noisy.data_mut() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        *b = (seed >> 24) as u8;
    }
    let frames = [
        FrameBuf::zeroed(PixelFormat::I420, 640, 480),
        FrameBuf::filled(PixelFormat::I420, 640, 480, Color::rgb(255, 255, 255)),
        FrameBuf::zeroed(PixelFormat::I420, 2, 2),
        FrameBuf::filled(PixelFormat::I420, 3840, 2160, Color::rgb(128, 128, 128)),
        noisy,
    ];
    for frame in &frames {
        let started = Instant::now();
        let events = detect(frame, 3, "{}");
        assert!(
            events.is_empty(),
            "{}x{}: {events:?}",
            frame.width(),
            frame.height()
        );
        // Bounded: the filter's deadline would have failed the call long before this.
        assert!(started.elapsed().as_secs() < 60);
    }
}

#[test]
fn bad_configuration_is_refused_with_a_reason() {
    let runtime = test_runtime();
    let filter = load(&runtime, "platedetector");
    let mut instance = runtime.instantiate(&filter, None).unwrap();
    let err = instance
        .configure(r#"{"region": "mars"}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown variant `mars`"), "{err}");
    let err = instance
        .configure(r#"{"plate_width_pct": 400}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("plate_width_pct 400"), "{err}");
}

#[test]
fn a_glyph_a_small_plate_lost_is_found_on_a_closer_look() {
    // Shrunk to 640x480 as a live stream gives it, this plate's glyphs are 10 px tall and its
    // 4 blurs into the frame: the plate read 2MFZ76, surely, until every small plate got a
    // second look scaled up.
    let (photo, truth, plate) = labelled("us", "wts-lg-000197");
    let (small, f) = prism::bench::plates::fit(photo, (640, 480)).unwrap();
    let events = detect(&small, 3, r#"{"region": "us"}"#);
    let best = event_on_plate(&events, truth.map(|v| v * f), "us/wts-lg-000197 at 640x480");
    assert_eq!(best["plate"], plate.as_str(), "{events:?}");
}

/// The labelled US plate crop `name` of `ocr-us` (`groundtruth.csv`), its luma shrunk to fit
/// `width` pixels, in the middle of a gray 480x270 picture, and its plate text.
fn crop_in_a_picture(name: &str, width: u32) -> (FrameBuf, String) {
    let dir = alpr().join("ocr-us");
    let labels = std::fs::read_to_string(dir.join("groundtruth.csv")).unwrap();
    let plate = labels
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name},"))?.split(',').nth(1))
        .unwrap()
        .to_string();
    let mut dec = Decoder::open(&dir.join(name), PixelFormat::Gray8).unwrap();
    let crop = dec.next_frame().unwrap().unwrap().buf;
    let crop = prism::bench::plates::fit(crop, (width, 270)).unwrap().0;
    let (w, h) = (crop.width() as usize, crop.height() as usize);
    let stride = crop.planes()[0].stride as usize;
    let mut picture = FrameBuf::filled(PixelFormat::I420, 480, 270, Color::rgb(90, 90, 90));
    let (x0, y0) = ((480 - w) / 2, (270 - h) / 2);
    for (y, row) in picture.rows_mut(0).skip(y0).take(h).enumerate() {
        row[x0..x0 + w].copy_from_slice(&crop.plane(0)[y * stride..y * stride + w]);
    }
    (picture, plate)
}

#[test]
fn a_glyph_standing_on_a_plates_graphic_is_read() {
    // Arizona's `A` of AGB7548 stands on the plate's painted mountains, beyond the row of
    // glyphs the segmenter found: a shaped glyph read there is no frame edge or bolt.
    // Shrunk to 140 and 120 px wide, as a street camera sees it, the plate read GB7548.
    for width in [140, 120] {
        let (picture, plate) = crop_in_a_picture("az102.png", width);
        let events = detect(&picture, 3, r#"{"region": "us"}"#);
        assert_eq!(events.len(), 1, "{width} px: {events:?}");
        assert_eq!(events[0]["plate"], plate.as_str(), "{width} px: {events:?}");
    }
}

#[test]
fn without_a_region_plates_of_every_region_are_read() {
    // An Italian plate that Brazil's format would force into RKZ5541, a Brazilian one whose 1
    // looks like an I, Brazilian ones that California's NLLLNNN (0DJI599) or Poland's LLNNNNN
    // (AY09034) read as well but for the dot between their groups, an American one of a
    // format only American plates have (NNNLLL), and American ones in no listed format, read
    // as they are where European formats would make clear digits letters (NZ427E, 1D49338).
    for (set, name, region) in [
        ("eu", "test_002", "eu"),
        ("br", "OUP1442", "auto"),
        ("br", "ODJ1599", "auto"),
        ("br", "AYO9034", "auto"),
        ("us", "us4", "us"),
        ("us", "wts-lg-000083", "auto"),
        ("us", "car2", "auto"),
    ] {
        let (frame, truth, plate) = labelled(set, name);
        let events = detect(&frame, 3, "{}");
        let best = event_on_plate(&events, truth, &format!("{set}/{name}"));
        assert_eq!(best["plate"], plate.as_str(), "{set}/{name}: {events:?}");
        // The region a format tells (LLLNNNN is Brazilian, Polish and American alike).
        assert_eq!(best["region"], region, "{set}/{name}: {events:?}");
    }
}

#[test]
fn a_cameras_date_caption_is_no_plate_whatever_a_format_makes_of_it() {
    // These street cameras print the date and time in the picture's top-left corner
    // (`2014-05-02 08:00:57`); plate formats would make some of its digits letters
    // (`OSZ0600`, `1OZZ726`): only the plate is reported.
    for (name, config) in [
        ("wts-lg-000037", "{}"),
        ("wts-lg-000045", r#"{"region":"us"}"#),
        ("wts-lg-000062", "{}"),
        ("wts-lg-000060", r#"{"region":"us"}"#),
    ] {
        let (frame, truth, plate) = labelled("us", name);
        let events = detect(&frame, 3, config);
        assert_eq!(events.len(), 1, "{name} {config}: {events:?}");
        let best = event_on_plate(&events, truth, name);
        assert_eq!(best["plate"], plate.as_str(), "{name} {config}: {events:?}");
    }
}

#[test]
fn cli_prints_the_plate_of_a_photo() {
    // A photo is a photo by its content: a copy without an extension (a camera's snapshot)
    // and a one-frame video read as the photo does.
    let photo = alpr().join("eu/eu1.jpg");
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("snapshot");
    std::fs::copy(&photo, &snapshot).unwrap();
    let (frame, _, _) = labelled("eu", "eu1");
    let video = dir.path().join("one-frame.mkv");
    let mut enc = prism::media::Encoder::create(
        &video,
        PixelFormat::I420,
        frame.width(),
        frame.height(),
        (30, 1),
    )
    .unwrap();
    enc.push(&frame, 0).unwrap();
    enc.finish().unwrap();
    for input in [&photo, &snapshot, &video] {
        let out = std::process::Command::new(prism_bin())
            .args(["filter", "run"])
            .arg(root().join("filters/platedetector"))
            .arg("--input")
            .arg(input)
            .args(["--config", r#"{"region": "eu"}"#])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{input:?}: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.lines().any(|l| l.starts_with("plate M5XSX")),
            "{input:?}: {stdout}"
        );
    }
}

#[test]
fn bench_plates_scores_a_folder_as_json() {
    // A set of two labelled photos in a folder of another layout than ../shared's.
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("eu");
    std::fs::create_dir(&set).unwrap();
    for name in ["eu1", "eu3"] {
        for ext in ["jpg", "txt"] {
            let from = alpr().join("eu").join(format!("{name}.{ext}"));
            std::fs::copy(&from, set.join(format!("{name}.{ext}"))).unwrap();
        }
    }
    for how in ["native", "apart", "street"] {
        let native = how == "native";
        let mut cmd = std::process::Command::new(prism_bin());
        cmd.args(["bench", "plates", "--json", "--data"])
            .arg(dir.path());
        match how {
            "native" => cmd.args(["--native", "--variants"]),
            "apart" => cmd.arg("--approach"),
            _ => cmd.args(["--approach", "--street"]),
        };
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let eu = &v["sets"]["eu"];
        assert_eq!(eu["images"], 2);
        // eu1 is read exactly (see dev_photos_read_to_the_exact_plate).
        assert!(eu["strict_pct"].as_f64().unwrap() >= 50.0, "{v}");
        for key in [
            "detected_pct",
            "lenient_pct",
            "fp_per_image",
            "ms_p50",
            "ms_p99",
        ] {
            assert!(eu[key].is_number(), "{key}: {v}");
        }
        // Through the filter, each photo is also a clip closing in on its plate, each in a
        // stream of its own or one after the other: eu1's is found and, by the end, read
        // exactly.
        let clips = &v["approach"]["eu"];
        if native {
            assert!(clips.is_null() && v["clips"].is_null(), "{v}");
            // The photos changed as other cameras would take them, each variant scored as a
            // set is; eu1 is still read dimmed.
            let variants = v["variants"].as_object().expect("variants");
            assert_eq!(variants.len(), 5, "{v}");
            for (name, sets) in variants {
                assert_eq!(sets["eu"]["images"], 2, "{name}: {v}");
                assert!(sets["eu"]["strict_pct"].is_number(), "{name}: {v}");
            }
            assert!(
                variants["dimmed 0.55"]["eu"]["strict_pct"]
                    .as_f64()
                    .unwrap()
                    >= 50.0
            );
            continue;
        }
        assert!(v["variants"].is_null(), "{v}");
        assert_eq!(v["clips"], how, "{v}");
        assert_eq!(clips["clips"], 2, "{v}");
        assert!(clips["found_pct"].as_f64().unwrap() >= 50.0, "{v}");
        assert!(clips["last_pct"].as_f64().unwrap() >= 50.0, "{v}");
        assert!(clips["right_at_px_p50"].as_f64().unwrap() > 0.0, "{v}");
    }
}

#[test]
fn bench_plates_clips_need_the_filter() {
    let out = std::process::Command::new(prism_bin())
        .args(["bench", "plates", "--native", "--approach", "--data"])
        .arg(alpr())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--approach runs the filter"), "{stderr}");
}

#[test]
fn ocr_import_reads_text_for_any_filter() {
    // The probe guest calls vision.ocr on the frame it is given.
    let runtime = test_runtime();
    let filter = load(&runtime, "probe");
    let (sink, rx) = EventSink::channel(16);
    let mut instance = runtime.instantiate(&filter, Some(sink)).unwrap();
    instance.configure(r#"{"ocr": true}"#).unwrap();
    let mut frame = FrameBuf::zeroed(PixelFormat::I420, 320, 80);
    frame.draw_text("PRISM 42", 16, 24, 4, Color::rgb(255, 255, 255));
    assert_eq!(instance.process(&mut frame, 0), Verdict::Forward);
    let text = std::iter::from_fn(|| rx.try_recv().ok())
        .find_map(|e| match e {
            FilterEvent::Event { name, payload, .. } if name == "Text" => Some(payload),
            _ => None,
        })
        .expect("a Text event");
    assert_eq!(
        text["text"].as_str().unwrap().replace(' ', ""),
        "PRISM42",
        "{text}"
    );
    assert!(text["confidence"].as_f64().unwrap() > 0.5, "{text}");
    assert_eq!(text["words"], 2);
}

#[test]
fn cli_prints_each_plate_of_a_video_once() {
    use prism::media::{Encoder, scale_frame};
    use prism_frame::Rect;
    let (photo, _, plate) = labelled("eu", "eu1");
    let big = scale_frame(&photo, 1000, 750).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("pan.mkv");
    let mut enc = Encoder::create(&clip, PixelFormat::I420, 640, 480, (30, 1)).unwrap();
    for k in 0..60u32 {
        let area = Rect::new((k * 2) & !1, k & !1, 640, 480);
        let window =
            FrameBuf::new(PixelFormat::I420, 640, 480, big.read_region(area).unwrap()).unwrap();
        enc.push(&window, k as u64 * 33_333).unwrap();
    }
    assert_eq!(enc.finish().unwrap(), 60);
    let out = std::process::Command::new(prism_bin())
        .args(["filter", "run"])
        .arg(root().join("filters/platedetector"))
        .arg("--input")
        .arg(&clip)
        .args(["--config", r#"{"region": "eu"}"#])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let plates: Vec<&str> = stdout.lines().filter(|l| l.starts_with("plate ")).collect();
    assert_eq!(plates.len(), 1, "{stdout}");
    assert!(
        plates[0].starts_with(&format!("plate {plate} ")),
        "{stdout}"
    );
}

#[test]
fn platedetector_is_a_vision_filter_and_grayscale_is_not() {
    let check = |name: &str| -> serde_json::Value {
        let out = std::process::Command::new(prism_bin())
            .args(["filter", "check", "--json"])
            .arg(prism_tests::wasm(name))
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let plates = check("platedetector");
    assert_eq!(
        plates["world"], "prism:filter/vision-filter@0.1.0",
        "{plates}"
    );
    let imports = plates["imports"].as_array().unwrap();
    assert!(
        imports.iter().any(|i| i == "prism:filter/vision@0.1.0"),
        "{plates}"
    );
    // A filter that never calls vision does not import it.
    let gray = check("grayscale");
    assert!(
        !gray["imports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i.as_str().unwrap().contains("vision")),
        "{gray}"
    );
}
