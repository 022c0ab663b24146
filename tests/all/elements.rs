//! Kurento's other media elements: PlayerEndpoint, RecorderEndpoint, hubs (Composite,
//! Dispatcher, DispatcherOneToMany), GStreamerFilter — on clips the tests make with GStreamer.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use prism::media::rtp::VideoFrame;
use prism::media::{Decoder, FrameConverter};
use prism::pipeline::{
    ElementId, EventKind, HubKind, MediaElement, MediaPipeline, MediaProfile, VideoSink,
};
use prism::runtime::FilterEvent;
use prism_frame::{FrameBuf, PixelFormat};
use prism_tests::load;
use prism_tests::loopback::{context, tokio};
use serde_json::json;

/// Solid colours of the test clips (videotestsrc's ARGB `foreground-color`).
const RED: u32 = 0xffff0000;
const BLUE: u32 = 0xff0000ff;
/// Clip frame rate.
const FPS: u32 = 30;

/// Writes a WebM clip of `seconds` of one solid colour at 320x240, 30 fps, with an Opus tone
/// if `audio`.
fn clip(dir: &Path, name: &str, argb: u32, seconds: u32, audio: bool) -> PathBuf {
    let path = dir.join(name);
    let mut desc = format!(
        "webmmux name=m ! filesink location={} \
         videotestsrc num-buffers={} pattern=solid-color foreground-color={argb} \
         ! video/x-raw,width=320,height=240,framerate={FPS}/1 ! vp8enc deadline=1 ! m.",
        path.display(),
        seconds * FPS
    );
    if audio {
        // 960 samples at 48 kHz = 20 ms per buffer.
        desc.push_str(&format!(
            " audiotestsrc num-buffers={} samplesperbuffer=960 \
             ! audio/x-raw,rate=48000,channels=2 ! opusenc ! m.",
            seconds * 50
        ));
    }
    let status = std::process::Command::new("gst-launch-1.0")
        .arg("-q")
        .args(desc.split_whitespace())
        .status()
        .expect("gst-launch-1.0 runs");
    assert!(status.success(), "making {name} failed");
    path
}

fn file_uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// The elementary stream types in a file (`video/x-vp8`, `audio/x-opus`, ...): the file is
/// parsed to its end, so every stream has shown itself whatever the parser's pace.
fn tracks(path: &Path) -> Vec<String> {
    gst::init().unwrap();
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} ! parsebin name=p",
        path.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let parse = pipeline.by_name("p").unwrap();
    let found = Arc::new(Mutex::new(Vec::new()));
    let f = found.clone();
    let weak = pipeline.downgrade();
    parse.connect_pad_added(move |_, pad| {
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        if let Some(s) = caps.structure(0) {
            f.lock().unwrap().push(s.name().to_string());
        }
        // A queue per stream, or the first sink to preroll would hold the demuxer's thread.
        let Some(pipeline) = weak.upgrade() else {
            return;
        };
        let sink = gst::parse::bin_from_description("queue ! fakesink sync=false", true).unwrap();
        pipeline.add(&sink).unwrap();
        sink.sync_state_with_parent().unwrap();
        pad.link(&sink.static_pad("sink").unwrap()).unwrap();
    });
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let end = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(20),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    let _ = pipeline.set_state(gst::State::Null);
    match end.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => {}
        Some(gst::MessageView::Error(e)) => panic!("{}: {}", path.display(), e.error()),
        _ => panic!("{}: not parsed to its end within 20 s", path.display()),
    }
    let mut v = found.lock().unwrap().clone();
    v.sort();
    v
}

/// A test sink: counts frames, keeps the last one as RGBA, notes the end of stream.
#[derive(Default)]
struct Probe {
    frames: AtomicU64,
    last: Mutex<Option<FrameBuf>>,
    eos: AtomicBool,
    converter: Mutex<FrameConverter>,
}

impl VideoSink for Probe {
    fn push_video(&self, frame: Arc<VideoFrame>) {
        let rgba = self
            .converter
            .lock()
            .unwrap()
            .convert(frame.buf.clone(), PixelFormat::Rgba)
            .unwrap();
        *self.last.lock().unwrap() = Some(rgba);
        self.frames.fetch_add(1, Ordering::Relaxed);
    }

    fn wanted_format(&self) -> Option<PixelFormat> {
        Some(PixelFormat::Rgba)
    }

    fn end_of_stream(&self) {
        self.eos.store(true, Ordering::Release);
    }
}

impl Probe {
    fn attach(element: &dyn MediaElement) -> Arc<Probe> {
        let probe = Arc::new(Probe::default());
        element
            .outputs()
            .expect("a source element")
            .add_video(ElementId::from("probe"), probe.clone());
        element.outputs_changed();
        probe
    }

    /// Waits until `ready` holds for the last frame.
    fn wait_for(&self, what: &str, ready: impl Fn(&FrameBuf) -> bool) -> FrameBuf {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(frame) = self.last.lock().unwrap().as_ref()
                && ready(frame)
            {
                return frame.clone();
            }
            assert!(
                Instant::now() < deadline,
                "{what}: no such frame within 10 s ({} frames, last pixel {:?})",
                self.frames.load(Ordering::Relaxed),
                self.last
                    .lock()
                    .unwrap()
                    .as_ref()
                    .and_then(|f| f.pixel(f.width() / 2, f.height() / 2).map(<[u8]>::to_vec))
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Whether an RGBA pixel is within 40 of `rgb` on every channel.
fn near(px: &[u8], rgb: [u8; 3]) -> bool {
    px.iter()
        .zip(rgb)
        .all(|(&a, b)| (a as i32 - b as i32).abs() <= 40)
}

fn pixel(frame: &FrameBuf, x: u32, y: u32) -> [u8; 3] {
    let px = frame.pixel(x, y).unwrap();
    [px[0], px[1], px[2]]
}

/// Waits for the first event of `kind` from `element`.
fn wait_event(
    rx: &mut tokio::sync::broadcast::Receiver<prism::pipeline::ElementEvent>,
    element: &ElementId,
    kind: &EventKind,
    timeout: Duration,
) {
    wait_event_where(rx, element, |k| k == kind, timeout);
}

/// Waits for the first event from `element` whose kind passes `wanted`, and returns it.
fn wait_event_where(
    rx: &mut tokio::sync::broadcast::Receiver<prism::pipeline::ElementEvent>,
    element: &ElementId,
    wanted: impl Fn(&EventKind) -> bool,
    timeout: Duration,
) -> EventKind {
    let deadline = Instant::now() + timeout;
    loop {
        match rx.try_recv() {
            Ok(e) if &e.element == element && wanted(&e.kind) => return e.kind,
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::TryRecvError::Empty) => {
                assert!(
                    Instant::now() < deadline,
                    "no such event from {element} in {timeout:?}"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("events: {e}"),
        }
    }
}

#[test]
fn player_to_grayscale_to_recorder_writes_a_playable_gray_file() {
    let _serial = prism_tests::media_lock();
    let dir = tempfile::tempdir().unwrap();
    let input = clip(dir.path(), "red.webm", RED, 2, true);
    let rt = tokio();
    let _guard = rt.enter();
    let pipeline = MediaPipeline::new(context(&rt)).unwrap();
    let mut events = pipeline.subscribe();
    let player = pipeline.add_player(&file_uri(&input), None).unwrap();
    let gray = load(&pipeline.context().filters, "grayscale");
    let filter = pipeline
        .add_filter(&gray, None, "prism", "WasmFilter")
        .unwrap();
    let output = dir.path().join("out.webm");
    let recorder = pipeline
        .add_recorder(&file_uri(&output), MediaProfile::Webm, true)
        .unwrap();
    pipeline.connect(player.id(), filter.id(), None).unwrap();
    pipeline.connect(filter.id(), recorder.id(), None).unwrap();
    recorder.record().unwrap();
    player.play().unwrap();
    assert_eq!(player.state().name(), "START");
    wait_event(
        &mut events,
        player.id(),
        &EventKind::EndOfStream,
        Duration::from_secs(15),
    );
    // stopOnEndOfStream: the end travels through the filter and finishes the file.
    wait_event(
        &mut events,
        recorder.id(),
        &EventKind::Stopped,
        Duration::from_secs(15),
    );
    let filter_stats = filter.stats();
    eprintln!(
        "player: {}\nfilter: {filter_stats}\nrecorder: {}",
        player.stats(),
        recorder.stats()
    );
    pipeline.release();

    assert_eq!(tracks(&output), vec!["audio/x-opus", "video/x-vp8"]);
    let mut decoder = Decoder::open(&output, PixelFormat::Rgba).unwrap();
    let mut frames = 0;
    let mut pts = Vec::new();
    let mut duration = None;
    while let Some(frame) = decoder.next_frame().unwrap() {
        // The container's duration (written when the file was finalised), once it is open.
        duration = duration.or_else(|| decoder.duration());
        let [r, g, b] = pixel(&frame.buf, 160, 120);
        assert!(
            r.abs_diff(g) <= 6 && g.abs_diff(b) <= 6,
            "frame {frames} is not gray: {r},{g},{b}"
        );
        // Red's luma (BT.601): 0.299 × 255 ≈ 76.
        assert!((50..=110).contains(&r), "frame {frames}: gray level {r}");
        pts.push(frame.pts_us);
        frames += 1;
    }
    // Frames may be dropped on a loaded machine (a filter behind the frame rate replaces stale
    // frames, and counts them), but every frame is accounted for, each one the filter
    // processed is recorded, the first and the last are there and the timing is the clip's.
    let count = |k: &str| filter_stats[k].as_u64().unwrap();
    assert_eq!(count("framesIn"), 60, "{filter_stats}");
    assert_eq!(
        count("framesProcessed") + count("framesDroppedStale"),
        60,
        "{filter_stats}"
    );
    assert_eq!(frames, count("framesProcessed"), "{filter_stats}");
    assert!(frames >= 10, "{frames} frames recorded of 60 played");
    let interval = Duration::from_secs(1) / FPS;
    let clip_length = Duration::from_secs(2);
    let duration = duration.expect("a finalised file has a duration");
    let span = Duration::from_micros(pts.last().unwrap() - pts[0]) + interval;
    eprintln!("recorded duration {duration:?}, frames span {span:?}");
    for d in [duration, span] {
        assert!(
            d + interval >= clip_length && d <= clip_length + interval,
            "duration {d:?}, expected 2 s ± a frame"
        );
    }
}

#[test]
fn a_filter_hears_the_end_of_the_played_stream_before_the_elements_after_it() {
    let _serial = prism_tests::media_lock();
    let dir = tempfile::tempdir().unwrap();
    let input = clip(dir.path(), "red.webm", RED, 1, false);
    let rt = tokio();
    let _guard = rt.enter();
    let pipeline = MediaPipeline::new(context(&rt)).unwrap();
    let mut events = pipeline.subscribe();
    let player = pipeline.add_player(&file_uri(&input), None).unwrap();
    let probe = load(&pipeline.context().filters, "probe");
    let filter = pipeline
        .add_filter(&probe, None, "prism", "WasmFilter")
        .unwrap();
    pipeline.connect(player.id(), filter.id(), None).unwrap();
    let sink = Probe::attach(filter.as_ref());
    player.play().unwrap();
    let kind = wait_event_where(
        &mut events,
        filter.id(),
        |k| matches!(k, EventKind::Filter { event: FilterEvent::Event { name, .. } } if name == "EndOfStream"),
        Duration::from_secs(15),
    );
    let EventKind::Filter {
        event: FilterEvent::Event {
            payload, pts_us, ..
        },
    } = kind
    else {
        unreachable!("matched above")
    };
    // The filter's last word covers every frame it processed, at the last one's time, and the
    // end then travels on.
    let processed = filter.stats()["framesProcessed"].as_u64().unwrap();
    assert!(processed >= 10, "{processed} frames of 30 processed");
    assert_eq!(payload["frames"], processed);
    assert_eq!(payload["last_pts_us"].as_u64(), pts_us);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !sink.eos.load(Ordering::Acquire) {
        assert!(Instant::now() < deadline, "the end did not pass the filter");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(sink.frames.load(Ordering::Relaxed), processed);
    pipeline.release();
}

#[test]
fn player_feeds_a_webrtc_peer_until_end_of_stream() {
    use prism::webrtc::client::{ClientOptions, LoopbackClient};
    let _serial = prism_tests::media_lock();
    let dir = tempfile::tempdir().unwrap();
    let input = clip(dir.path(), "blue.webm", BLUE, 3, false);
    let rt = tokio();
    rt.block_on(async {
        let pipeline = MediaPipeline::new(context(&rt)).unwrap();
        let mut events = pipeline.subscribe();
        let player = pipeline.add_player(&file_uri(&input), None).unwrap();
        let endpoint = pipeline.add_webrtc_endpoint().await.unwrap();
        pipeline.connect(player.id(), endpoint.id(), None).unwrap();
        let client = LoopbackClient::new(ClientOptions::default()).await.unwrap();
        prism_tests::loopback::connect(&pipeline, &endpoint, &client)
            .await
            .unwrap();
        let p = player.clone();
        tokio::task::spawn_blocking(move || p.play())
            .await
            .unwrap()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match tokio::time::timeout(Duration::from_secs(1), events.recv()).await {
                Ok(Ok(e)) if &e.element == player.id() && e.kind == EventKind::EndOfStream => {
                    break;
                }
                _ => assert!(Instant::now() < deadline, "no EndOfStream"),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let got = client.received();
        eprintln!(
            "peer received {} frames, last mean {:?}",
            got.frames, got.last_mean_rgb
        );
        assert!(got.frames >= 60, "the peer got {} of 90 frames", got.frames);
        let [r, g, b] = got.last_mean_rgb;
        assert!(b > 150.0 && r < 80.0 && g < 80.0, "not blue: {r},{g},{b}");
        client.close().await;
        pipeline.release();
    });
}

#[test]
fn composite_puts_each_input_in_its_grid_cell() {
    let _serial = prism_tests::media_lock();
    let dir = tempfile::tempdir().unwrap();
    let red = clip(dir.path(), "red.webm", RED, 4, false);
    let blue = clip(dir.path(), "blue.webm", BLUE, 4, false);
    let rt = tokio();
    let _guard = rt.enter();
    let pipeline = MediaPipeline::new(context(&rt)).unwrap();
    let hub = pipeline
        .add_hub(HubKind::composite(640, 240, 15).unwrap())
        .unwrap();
    let mut ports = Vec::new();
    for path in [&red, &blue] {
        let player = pipeline.add_player(&file_uri(path), None).unwrap();
        let port = pipeline.add_hub_port(hub.id()).unwrap();
        pipeline.connect(player.id(), port.id(), None).unwrap();
        ports.push((player, port));
    }
    // A third port only watches: it gets the grid of the other two.
    let viewer = pipeline.add_hub_port(hub.id()).unwrap();
    let probe = Probe::attach(viewer.as_ref());
    for (player, _) in &ports {
        player.play().unwrap();
    }
    // Three inputs → 2x2 grid of 320x120 cells; each 320x240 input is scaled to 160x120,
    // centred in its cell. Cell 0 (top left) red, cell 1 (top right) blue.
    let frame = probe.wait_for("red and blue cells", |f| {
        near(&pixel(f, 160, 60), [255, 0, 0]) && near(&pixel(f, 480, 60), [0, 0, 255])
    });
    assert_eq!((frame.width(), frame.height()), (640, 240));
    // Letterbox around a scaled input, and the empty cells, are black.
    for (x, y) in [(10, 60), (330, 60), (160, 180), (480, 180)] {
        assert!(near(&pixel(&frame, x, y), [0, 0, 0]), "({x},{y}) not black");
    }
    pipeline.release();
}

#[test]
fn players_and_recorders_stay_in_the_media_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    std::fs::create_dir(&media).unwrap();
    let inside = clip(&media, "red.webm", RED, 1, false);
    let outside = clip(dir.path(), "blue.webm", BLUE, 1, false);
    let rt = tokio();
    let _guard = rt.enter();
    let mut ctx = context(&rt);
    ctx.media.media_dirs = vec![media.clone()];
    let pipeline = MediaPipeline::new(ctx).unwrap();
    assert!(pipeline.add_player(&file_uri(&inside), None).is_ok());
    assert!(
        pipeline
            .add_recorder(
                &file_uri(&media.join("out.webm")),
                MediaProfile::Webm,
                false
            )
            .is_ok()
    );
    let escape = media.join("../blue.webm");
    for uri in [file_uri(&outside), file_uri(&escape)] {
        let err = pipeline.add_player(&uri, None).unwrap_err().to_string();
        assert!(err.contains("media_dirs"), "{uri}: {err}");
    }
    let err = pipeline
        .add_recorder(
            &file_uri(&dir.path().join("out.webm")),
            MediaProfile::Webm,
            false,
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("media_dirs"), "{err}");
    // Network sources are not files: the directories do not apply.
    assert!(
        pipeline
            .add_player("http://127.0.0.1:9/a.webm", None)
            .is_ok()
    );
    pipeline.release();
}

#[test]
fn a_hub_never_has_more_ports_than_its_limit() {
    let rt = tokio();
    let _guard = rt.enter();
    let pipeline = MediaPipeline::new(context(&rt)).unwrap();
    let hub = pipeline.add_hub(HubKind::Dispatcher).unwrap();
    // Four threads ask for the limit's worth of ports each, all at once.
    let added: usize = std::thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    (0..prism::pipeline::MAX_HUB_PORTS)
                        .filter(|_| pipeline.add_hub_port(hub.id()).is_ok())
                        .count()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    assert_eq!(added, prism::pipeline::MAX_HUB_PORTS);
    assert_eq!(hub.ports().len(), prism::pipeline::MAX_HUB_PORTS);
    let err = pipeline.add_hub_port(hub.id()).unwrap_err().to_string();
    assert!(err.contains("the limit"), "{err}");
    // Refused ports leave no element behind: the hub and its ports are all there is.
    assert_eq!(
        pipeline.elements().len(),
        prism::pipeline::MAX_HUB_PORTS + 1
    );
    pipeline.release();
}

#[test]
fn dispatchers_route_one_port_to_others() {
    let _serial = prism_tests::media_lock();
    let dir = tempfile::tempdir().unwrap();
    let red = clip(dir.path(), "red.webm", RED, 6, false);
    let blue = clip(dir.path(), "blue.webm", BLUE, 6, false);
    let rt = tokio();
    let _guard = rt.enter();
    let pipeline = MediaPipeline::new(context(&rt)).unwrap();

    let hub = pipeline.add_hub(HubKind::Dispatcher).unwrap();
    let red_port = pipeline.add_hub_port(hub.id()).unwrap();
    let blue_port = pipeline.add_hub_port(hub.id()).unwrap();
    let out = pipeline.add_hub_port(hub.id()).unwrap();
    let probe = Probe::attach(out.as_ref());
    let mut players = Vec::new();
    for (path, port) in [(&red, &red_port), (&blue, &blue_port)] {
        let player = pipeline.add_player(&file_uri(path), None).unwrap();
        pipeline.connect(player.id(), port.id(), None).unwrap();
        player.play().unwrap();
        players.push(player);
    }
    hub.route(red_port.id(), out.id()).unwrap();
    probe.wait_for("red routed", |f| near(&pixel(f, 160, 120), [255, 0, 0]));
    hub.route(blue_port.id(), out.id()).unwrap();
    probe.wait_for("blue routed", |f| near(&pixel(f, 160, 120), [0, 0, 255]));
    assert!(
        hub.set_source(Some(red_port.id())).is_err(),
        "not a one-to-many"
    );

    let one_to_many = pipeline.add_hub(HubKind::DispatcherOneToMany).unwrap();
    let source = pipeline.add_hub_port(one_to_many.id()).unwrap();
    let viewers: Vec<_> = (0..2)
        .map(|_| pipeline.add_hub_port(one_to_many.id()).unwrap())
        .collect();
    let probes: Vec<_> = viewers.iter().map(|v| Probe::attach(v.as_ref())).collect();
    pipeline
        .connect(players[0].id(), source.id(), None)
        .unwrap();
    one_to_many.set_source(Some(source.id())).unwrap();
    for p in &probes {
        p.wait_for("red to every viewer", |f| {
            near(&pixel(f, 160, 120), [255, 0, 0])
        });
    }
    one_to_many.set_source(None).unwrap();
    let before = probes[0].frames.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(400));
    assert!(
        probes[0].frames.load(Ordering::Relaxed) <= before + 1,
        "frames still flow after removeSource"
    );
    assert!(one_to_many.route(source.id(), viewers[0].id()).is_err());
    pipeline.release();
}

#[test]
fn gstreamer_filter_runs_allowed_elements_and_refuses_others() {
    let _serial = prism_tests::media_lock();
    let dir = tempfile::tempdir().unwrap();
    let red = clip(dir.path(), "red.webm", RED, 4, false);
    let rt = tokio();
    let _guard = rt.enter();
    let pipeline = MediaPipeline::new(context(&rt)).unwrap();
    let player = pipeline.add_player(&file_uri(&red), None).unwrap();
    let filter = pipeline
        .add_gstreamer_filter("videobalance saturation=0.0")
        .unwrap();
    pipeline.connect(player.id(), filter.id(), None).unwrap();
    let probe = Probe::attach(filter.as_ref());
    player.play().unwrap();
    let frame = probe.wait_for("desaturated", |f| {
        let [r, g, b] = pixel(f, 160, 120);
        r.abs_diff(g) <= 8 && g.abs_diff(b) <= 8
    });
    assert_eq!((frame.width(), frame.height()), (320, 240));
    // Kurento's setElementProperty: saturation back to normal brings the red back.
    filter.set_element_property("saturation", "1.0").unwrap();
    probe.wait_for("red again", |f| near(&pixel(f, 160, 120), [255, 0, 0]));
    assert!(
        filter
            .set_element_property("no-such-property", "1")
            .is_err()
    );
    assert!(filter.set_element_property("saturation", "very").is_err());
    // videobalance's saturation is 0..2: out of range is an error, not a crash.
    assert!(filter.set_element_property("saturation", "100").is_err());
    // The end of the stream comes out of the bin after the last frame.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !probe.eos.load(Ordering::Acquire) {
        assert!(
            Instant::now() < deadline,
            "no end of stream out of the filter"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let frames = probe.frames.load(Ordering::Relaxed);
    assert!(
        (90..=120).contains(&frames),
        "{frames} frames of 120 before the end"
    );

    for (command, word) in [
        ("filesrc location=/etc/passwd", "filesrc"),
        ("videoflip ! tcpclientsink host=10.0.0.1", "tcpclientsink"),
        ("videoflip ! ( filesink location=/tmp/x )", "filesink"),
        ("queue max-size-buffers=0 max-size-bytes=0", "queue"),
        (
            "capsfilter caps=video/x-raw,width=100000,height=100000",
            "raw video",
        ),
        ("this-is-no-element", "cannot parse"),
        ("", "empty"),
    ] {
        let err = pipeline
            .add_gstreamer_filter(command)
            .unwrap_err()
            .to_string();
        assert!(err.contains(word), "{command:?}: {err}");
    }
    pipeline.release();
}

/// The same elements driven through the Kurento protocol, with its events and errors.
#[test]
fn kurento_player_recorder_hubs_and_their_errors() {
    use prism_tests::rpc::Client;
    let _serial = prism_tests::media_lock();
    let dir = tempfile::tempdir().unwrap();
    let input = clip(dir.path(), "red.webm", RED, 1, true);
    let output = dir.path().join("out.mp4");
    let rt = tokio();
    let server = prism_tests::server::start(&rt, Duration::from_millis(300));
    rt.block_on(async {
        let mut c = Client::new(&server.kurento);
        let p = c
            .ok("create", json!({"type": "MediaPipeline", "constructorParams": {}}))
            .await["value"]
            .as_str()
            .unwrap()
            .to_string();
        let create = |ty: &str, params: serde_json::Value| {
            let mut params = params;
            params["mediaPipeline"] = json!(p);
            json!({"type": ty, "constructorParams": params})
        };
        let invoke = |object: &str, operation: &str, params: serde_json::Value| {
            json!({"object": object, "operation": operation, "operationParams": params})
        };
        // Errors first: nothing is created, nothing crashes.
        for (ty, params, word) in [
            ("PlayerEndpoint", json!({"uri": "ftp://example.com/a.webm"}), "scheme"),
            ("PlayerEndpoint", json!({"uri": "no uri"}), "not a URI"),
            ("PlayerEndpoint", json!({}), "uri"),
            ("RecorderEndpoint", json!({"uri": format!("file://{}", output.display()), "mediaProfile": "FLV"}), "FLV"),
            ("RecorderEndpoint", json!({"uri": "file:///no/such/dir/x.webm"}), "existing directory"),
            ("RecorderEndpoint", json!({"uri": "http://example.com/x.webm"}), "scheme"),
            ("GStreamerFilter", json!({"command": "filesrc location=/etc/passwd"}), "not allowed"),
            ("GStreamerFilter", json!({"command": "videoflip", "filterType": "AUDIO"}), "filterType"),
            ("HubPort", json!({"hub": "nope"}), ""),
        ] {
            let (code, message) = c.err("create", create(ty, params.clone())).await;
            assert!(code != 0 && message.contains(word), "{ty} {params}: {code} {message}");
        }
        let missing = c
            .ok("create", create("PlayerEndpoint", json!({"uri": format!("file://{}/none.webm", dir.path().display())})))
            .await["value"]
            .as_str()
            .unwrap()
            .to_string();
        let (_, message) = c.err("invoke", invoke(&missing, "play", json!({}))).await;
        assert!(message.contains("cannot play"), "{message}");

        // Player → Recorder (MP4, stopped by the end of the stream), events on the way.
        let player = c
            .ok("create", create("PlayerEndpoint", json!({"uri": format!("file://{}", input.display())})))
            .await["value"]
            .as_str()
            .unwrap()
            .to_string();
        let recorder = c
            .ok(
                "create",
                create(
                    "RecorderEndpoint",
                    json!({"uri": format!("file://{}", output.display()), "mediaProfile": "MP4", "stopOnEndOfStream": true}),
                ),
            )
            .await["value"]
            .as_str()
            .unwrap()
            .to_string();
        for (object, event) in [(&player, "EndOfStream"), (&recorder, "Recording"), (&recorder, "Stopped")] {
            c.ok("subscribe", json!({"object": object, "type": event})).await;
        }
        c.ok("invoke", invoke(&player, "connect", json!({"sink": recorder}))).await;
        c.ok("invoke", invoke(&recorder, "record", json!({}))).await;
        assert_eq!(c.event("Recording", Duration::from_secs(5)).await["object"], recorder.as_str());
        c.ok("invoke", invoke(&player, "play", json!({}))).await;
        let info = c.ok("invoke", invoke(&player, "getVideoInfo", json!({}))).await["value"].clone();
        assert_eq!(info["__type__"], "VideoInfo");
        assert_eq!(info["isSeekable"], true);
        assert!((900..=1100).contains(&info["duration"].as_i64().unwrap()), "{info}");
        assert_eq!(c.ok("invoke", invoke(&player, "getState", json!({}))).await["value"], "START");
        c.event("EndOfStream", Duration::from_secs(10)).await;
        c.event("Stopped", Duration::from_secs(10)).await;
        let stats = c.ok("invoke", invoke(&recorder, "getStats", json!({}))).await["value"].clone();
        assert_eq!(tracks(&output), vec!["audio/x-opus", "video/x-h264"], "{stats}");
        let (_, message) = c.err("invoke", invoke(&recorder, "record", json!({}))).await;
        assert!(message.contains("stopped"), "{message}");
        let (_, message) = c
            .err("invoke", invoke(&player, "setPosition", json!({"position": 60_000})))
            .await;
        assert!(message.contains("outside"), "{message}");

        // Hubs: ports are created from the hub; a Dispatcher's connect routes ports.
        let hub = c.ok("create", create("Dispatcher", json!({}))).await["value"]
            .as_str()
            .unwrap()
            .to_string();
        let port_params = json!({"type": "HubPort", "constructorParams": {"hub": hub}});
        let a = c.ok("create", port_params.clone()).await["value"]
            .as_str()
            .unwrap()
            .to_string();
        let b = c.ok("create", port_params).await["value"]
            .as_str()
            .unwrap()
            .to_string();
        c.ok("invoke", invoke(&hub, "connect", json!({"source": a, "sink": b}))).await;
        let (_, message) = c
            .err("invoke", invoke(&hub, "connect", json!({"source": a, "sink": player})))
            .await;
        assert!(message.contains("not a HubPort"), "{message}");
        let d = c.ok("describe", json!({"object": b})).await;
        assert_eq!(d["type"], "HubPort");
        let d = c.ok("describe", json!({"object": hub})).await;
        assert_eq!(d["hierarchy"][0], "kurento.Hub");

        // RtpEndpoint offer/answer between two endpoints, and a broken SDP.
        let rtp = async |c: &mut Client, params: serde_json::Value| -> String {
            let request = create("RtpEndpoint", params);
            c.ok("create", request).await["value"].as_str().unwrap().to_string()
        };
        let a = rtp(&mut c, json!({})).await;
        let b = rtp(&mut c, json!({})).await;
        let offer = c.ok("invoke", invoke(&a, "generateOffer", json!({}))).await["value"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(offer.contains("m=video") && offer.contains("RTP/AVP"), "{offer}");
        let answer = c
            .ok("invoke", invoke(&b, "processOffer", json!({"offer": offer})))
            .await["value"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(answer.contains("VP8") || answer.contains("H264"), "{answer}");
        c.ok("invoke", invoke(&a, "processAnswer", json!({"answer": answer})))
            .await;
        let remote = c
            .ok("invoke", invoke(&a, "getRemoteSessionDescriptor", json!({})))
            .await;
        assert_eq!(remote["value"], answer.as_str());
        let fresh = rtp(&mut c, json!({})).await;
        let (code, _) = c
            .err("invoke", invoke(&fresh, "processOffer", json!({"offer": "v=0 garbage"})))
            .await;
        assert_eq!(code, 40201);
        let (code, message) = c
            .err(
                "create",
                create("RtpEndpoint", json!({"crypto": {"crypto": "AES_128_CM_HMAC_SHA1_80", "key": "short"}})),
            )
            .await;
        assert!(code != 0 && message.contains("key"), "{message}");
        let srtp = rtp(
            &mut c,
            json!({"crypto": {"crypto": "AES_128_CM_HMAC_SHA1_80", "keyBase64": "MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkw"}}),
        )
        .await;
        let offer = c.ok("invoke", invoke(&srtp, "generateOffer", json!({}))).await["value"].clone();
        assert!(offer.as_str().unwrap().contains("a=crypto:"), "{offer}");

        // FaceOverlayFilter: the host loads the picture; a bad URI is an error naming it.
        let face = c.ok("create", create("FaceOverlayFilter", json!({}))).await["value"]
            .as_str()
            .unwrap()
            .to_string();
        let overlay = |uri: &str| {
            invoke(
                &face,
                "setOverlayedImage",
                json!({"uri": uri, "offsetXPercent": -0.35, "offsetYPercent": -1.2, "widthPercent": 1.6, "heightPercent": 1.6}),
            )
        };
        let (_, message) = c.err("invoke", overlay("file:///no/such/hat.png")).await;
        assert!(message.contains("hat.png"), "{message}");
        let (_, message) = c.err("invoke", overlay(&format!("file://{}", input.display()))).await;
        assert!(message.contains("not a PNG or JPEG"), "{message}");
        let hat = "/usr/share/matplotlib/mpl-data/sample_data/Minduka_Present_Blue_Pack.png";
        c.ok("invoke", overlay(&format!("file://{hat}"))).await;
        c.ok("invoke", invoke(&face, "unsetOverlayedImage", json!({}))).await;
        c.ok("release", json!({"object": p})).await;
    });
}

/// Serves `path` over HTTP/1.1 on 127.0.0.1 (whole file, any path) until the test ends.
fn serve_file(path: &Path) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let body = std::fs::read(path).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let body = body.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(&stream);
                let mut line = String::new();
                // The request line and headers; the body is the same whatever is asked.
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let mut stream = &stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: video/webm\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(&body);
            });
        }
    });
    format!("http://{addr}/clip.webm")
}

#[test]
fn player_plays_http_and_reports_unreachable_servers() {
    let _serial = prism_tests::media_lock();
    let dir = tempfile::tempdir().unwrap();
    let blue = clip(dir.path(), "blue.webm", BLUE, 2, false);
    let rt = tokio();
    let _guard = rt.enter();
    let pipeline = MediaPipeline::new(context(&rt)).unwrap();
    let mut events = pipeline.subscribe();
    let player = pipeline.add_player(&serve_file(&blue), None).unwrap();
    let probe = Probe::attach(player.as_ref());
    player.play().unwrap();
    probe.wait_for("blue over HTTP", |f| near(&pixel(f, 160, 120), [0, 0, 255]));
    wait_event(
        &mut events,
        player.id(),
        &EventKind::EndOfStream,
        Duration::from_secs(10),
    );
    assert!(
        probe.eos.load(Ordering::Acquire),
        "the sink was told the stream ended"
    );
    let frames = probe.frames.load(Ordering::Relaxed);
    assert!((40..=60).contains(&frames), "{frames} frames of 60");

    // Nothing listens on port 9 of 127.0.0.1: play fails with the server's words, and the
    // element stays usable (stopped).
    let nowhere = pipeline
        .add_player("http://127.0.0.1:9/none.webm", None)
        .unwrap();
    let err = nowhere.play().unwrap_err().to_string();
    assert!(err.contains("cannot play"), "{err}");
    assert_eq!(nowhere.state().name(), "STOP");
    pipeline.release();
}

#[test]
fn a_loop_through_a_hub_is_cut_and_a_played_file_plays_again() {
    let _serial = prism_tests::media_lock();
    let dir = tempfile::tempdir().unwrap();
    let red = clip(dir.path(), "red.webm", RED, 1, true);
    let rt = tokio();
    let _guard = rt.enter();
    let pipeline = MediaPipeline::new(context(&rt)).unwrap();
    let mut events = pipeline.subscribe();
    let hub = pipeline.add_hub(HubKind::Dispatcher).unwrap();
    let a = pipeline.add_hub_port(hub.id()).unwrap();
    let b = pipeline.add_hub_port(hub.id()).unwrap();
    // a → b inside the hub, b's output back into a: media would go round for ever.
    hub.route(a.id(), b.id()).unwrap();
    pipeline.connect(b.id(), a.id(), None).unwrap();
    let probe = Probe::attach(b.as_ref());
    let player = pipeline.add_player(&file_uri(&red), None).unwrap();
    let feed = pipeline.add_passthrough().unwrap();
    pipeline.connect(player.id(), feed.id(), None).unwrap();
    feed.outputs()
        .unwrap()
        .add_video(a.id().clone(), a.video_sink().unwrap());
    feed.outputs()
        .unwrap()
        .add_audio(a.id().clone(), a.audio_sink().unwrap());
    player.play().unwrap();
    probe.wait_for("red through the looped hub", |f| {
        near(&pixel(f, 160, 120), [255, 0, 0])
    });
    wait_event(
        &mut events,
        player.id(),
        &EventKind::EndOfStream,
        Duration::from_secs(10),
    );
    // Played to the end: play starts it over.
    let before = probe.frames.load(Ordering::Relaxed);
    player.play().unwrap();
    wait_event(
        &mut events,
        player.id(),
        &EventKind::EndOfStream,
        Duration::from_secs(10),
    );
    let again = probe.frames.load(Ordering::Relaxed) - before;
    assert!(again >= 20, "{again} frames on the second play");
    // Stop rewinds; play again from the start.
    player.stop();
    assert_eq!(player.state().name(), "STOP");
    player.play().unwrap();
    probe.wait_for("frames after stop and play", |_| {
        probe.frames.load(Ordering::Relaxed) > before + again + 10
    });
    pipeline.release();
}

/// A WebRTC peer's video recorded as it arrived: no decode and re-encode when the container
/// fits the codec (VP8 in WebM, H.264 in MP4); Opus too.
#[test]
fn webrtc_to_recorder_keeps_the_received_codec() {
    use prism::media::rtp::VideoCodec;
    use prism::webrtc::client::{ClientOptions, LoopbackClient};
    let _serial = prism_tests::media_lock();
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio();
    for (codec, profile, file, track) in [
        (
            VideoCodec::Vp8,
            MediaProfile::Webm,
            "vp8.webm",
            "video/x-vp8",
        ),
        (
            VideoCodec::H264,
            MediaProfile::Mp4,
            "h264.mp4",
            "video/x-h264",
        ),
    ] {
        let output = dir.path().join(file);
        rt.block_on(async {
            let pipeline = MediaPipeline::new(context(&rt)).unwrap();
            let mut events = pipeline.subscribe();
            let endpoint = pipeline.add_webrtc_endpoint().await.unwrap();
            let recorder = pipeline
                .add_recorder(&file_uri(&output), profile, false)
                .unwrap();
            pipeline
                .connect(endpoint.id(), recorder.id(), None)
                .unwrap();
            recorder.record().unwrap();
            let client = LoopbackClient::new(ClientOptions {
                codec,
                audio: true,
                ..ClientOptions::default()
            })
            .await
            .unwrap();
            prism_tests::loopback::connect(&pipeline, &endpoint, &client)
                .await
                .unwrap();
            client.start_sending().unwrap();
            tokio::time::sleep(Duration::from_secs(3)).await;
            client.stop_sending();
            let r = recorder.clone();
            tokio::task::spawn_blocking(move || r.stop_and_wait())
                .await
                .unwrap()
                .unwrap();
            let stats = recorder.stats();
            eprintln!("{codec}: {stats}");
            assert_eq!(stats["framesWritten"], 0, "nothing re-encoded: {stats}");
            assert!(
                stats["videoPacketsWritten"].as_u64().unwrap() > 50,
                "{stats}"
            );
            let stopped = loop {
                match events.try_recv() {
                    Ok(e) if &e.element == recorder.id() && e.kind == EventKind::Stopped => {
                        break true;
                    }
                    Ok(_) => {}
                    Err(_) => break false,
                }
            };
            assert!(stopped, "Stopped came before stopAndWait returned");
            client.close().await;
            pipeline.release();
        });
        assert_eq!(tracks(&output), vec!["audio/x-opus", track], "{file}");
        let mut decoder = Decoder::open(&output, PixelFormat::Rgba).unwrap();
        let mut frames = 0;
        let mut coloured = 0;
        while let Some(frame) = decoder.next_frame().unwrap() {
            frames += 1;
            // The client's SMPTE bars: some pixel of the top row is strongly coloured.
            let f = &frame.buf;
            if (0..f.width()).step_by(8).any(|x| {
                let [r, g, b] = pixel(f, x, 10);
                r.max(g).max(b) - r.min(g).min(b) > 100
            }) {
                coloured += 1;
            }
        }
        assert!(frames >= 60, "{file}: {frames} frames in 3 s");
        assert_eq!(coloured, frames, "{file}: every frame shows the bars");
    }
}

/// An audio sink that decodes what it gets and measures its loudness.
struct AudioProbe {
    decoder: prism::pipeline::mixer::PcmIn,
}

impl prism::pipeline::AudioSink for AudioProbe {
    fn push_audio(&self, packet: &rtc::rtp::Packet) {
        self.decoder.push(packet);
    }
}

impl AudioProbe {
    fn attach(element: &dyn MediaElement, name: &str) -> Arc<AudioProbe> {
        let probe = Arc::new(AudioProbe {
            decoder: prism::pipeline::mixer::PcmIn::new(name).unwrap(),
        });
        element
            .outputs()
            .unwrap()
            .add_audio(ElementId::from(name), probe.clone());
        probe
    }

    /// Sum of squares, samples and 20 ms chunks decoded since the last call.
    fn drain(&self) -> (f64, usize, usize) {
        let (mut sum, mut n, mut chunks) = (0.0, 0, 0);
        while let Some(chunk) = self.decoder.take_chunk() {
            chunks += 1;
            n += chunk.len();
            sum += chunk.iter().map(|&s| (s as f64) * (s as f64)).sum::<f64>();
        }
        (sum, n, chunks)
    }
}

/// Writes a WebM clip with video and an Opus `wave` (`sine` or `silence`).
fn clip_with_sound(dir: &Path, name: &str, wave: &str, seconds: u32) -> PathBuf {
    let path = dir.join(name);
    let desc = format!(
        "webmmux name=m ! filesink location={} \
         videotestsrc num-buffers={} ! video/x-raw,width=160,height=120,framerate={FPS}/1 \
         ! vp8enc deadline=1 ! m. \
         audiotestsrc wave={wave} num-buffers={} samplesperbuffer=960 \
         ! audio/x-raw,rate=48000,channels=2 ! opusenc ! m.",
        path.display(),
        seconds * FPS,
        seconds * 50
    );
    let status = std::process::Command::new("gst-launch-1.0")
        .arg("-q")
        .args(desc.split_whitespace())
        .status()
        .unwrap();
    assert!(status.success(), "making {name} failed");
    path
}

#[test]
fn composite_mixes_audio_and_nobody_hears_themselves() {
    let _serial = prism_tests::media_lock();
    let dir = tempfile::tempdir().unwrap();
    let tone = clip_with_sound(dir.path(), "tone.webm", "sine", 4);
    let quiet = clip_with_sound(dir.path(), "quiet.webm", "silence", 4);
    let rt = tokio();
    let _guard = rt.enter();
    let pipeline = MediaPipeline::new(context(&rt)).unwrap();
    let hub = pipeline
        .add_hub(HubKind::composite(320, 240, 15).unwrap())
        .unwrap();
    let mut players = Vec::new();
    let mut ports = Vec::new();
    for path in [&tone, &quiet] {
        let player = pipeline.add_player(&file_uri(path), None).unwrap();
        let port = pipeline.add_hub_port(hub.id()).unwrap();
        pipeline.connect(player.id(), port.id(), None).unwrap();
        players.push(player);
        ports.push(port);
    }
    let listener = pipeline.add_hub_port(hub.id()).unwrap();
    let hears: Vec<_> = ports
        .iter()
        .chain([&listener])
        .enumerate()
        .map(|(i, p)| AudioProbe::attach(p.as_ref(), &format!("probe{i}")))
        .collect();
    for p in &players {
        p.play().unwrap();
    }
    std::thread::sleep(Duration::from_millis(1500));
    for h in &hears {
        h.drain();
    }
    // 1.5 s of listening, drained faster than the decoders' 200 ms buffers fill.
    let mut heard = [(0.0, 0, 0); 3];
    for _ in 0..15 {
        std::thread::sleep(Duration::from_millis(100));
        for (h, acc) in hears.iter().zip(heard.iter_mut()) {
            let (sum, n, chunks) = h.drain();
            *acc = (acc.0 + sum, acc.1 + n, acc.2 + chunks);
        }
    }
    let [tone_port, quiet_port, listening] =
        heard.map(|(sum, n, chunks)| ((sum / n.max(1) as f64).sqrt(), chunks));
    eprintln!("tone port hears {tone_port:?}, quiet port {quiet_port:?}, listener {listening:?}");
    // audiotestsrc's sine at volume 0.8: RMS ≈ 0.8 × 32767 / √2 ≈ 18500.
    for (who, (rms, chunks)) in [("the quiet port", quiet_port), ("the listener", listening)] {
        assert!(chunks >= 60, "{who} got {chunks} chunks of 75 in 1.5 s");
        assert!(rms > 8000.0, "{who} does not hear the tone: RMS {rms}");
    }
    // The tone's own port hears only the silent one.
    assert!(
        tone_port.0 < 500.0,
        "the tone's port hears itself: {tone_port:?}"
    );
    pipeline.release();
}

/// Serves `launch` (a bin whose payloader is `pay0`) at `rtsp://127.0.0.1:PORT/test` from a
/// GStreamer RTSP server running on its own thread; returns the URI.
fn rtsp_server(launch: &str) -> String {
    use gstreamer_rtsp_server::prelude::*;
    gst::init().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let launch = launch.to_string();
    std::thread::spawn(move || {
        let context = gst::glib::MainContext::new();
        let _guard = context.acquire().unwrap();
        let server = gstreamer_rtsp_server::RTSPServer::new();
        server.set_address("127.0.0.1");
        server.set_service("0");
        let factory = gstreamer_rtsp_server::RTSPMediaFactory::new();
        factory.set_launch(&launch);
        factory.set_shared(true);
        server.mount_points().unwrap().add_factory("/test", factory);
        let _source = server.attach(Some(&context)).unwrap();
        tx.send(server.bound_port()).unwrap();
        gst::glib::MainLoop::new(Some(&context), false).run();
    });
    let port = rx.recv().unwrap();
    format!("rtsp://127.0.0.1:{port}/test")
}

#[test]
fn player_plays_an_rtsp_stream() {
    let _serial = prism_tests::media_lock();
    let uri = rtsp_server(&format!(
        "( videotestsrc is-live=true pattern=solid-color foreground-color={BLUE} \
         ! video/x-raw,width=320,height=240,framerate=30/1 ! vp8enc deadline=1 \
         ! rtpvp8pay name=pay0 pt=96 )"
    ));
    let rt = tokio();
    let _guard = rt.enter();
    let pipeline = MediaPipeline::new(context(&rt)).unwrap();
    let player = pipeline.add_player(&uri, Some(200)).unwrap();
    let probe = Probe::attach(player.as_ref());
    player.play().unwrap();
    let frame = probe.wait_for("blue over RTSP", |f| near(&pixel(f, 160, 120), [0, 0, 255]));
    assert_eq!((frame.width(), frame.height()), (320, 240));
    // A live stream: not seekable.
    assert!(!player.video_info().is_seekable);
    assert!(player.set_position(1000).is_err());
    pipeline.release();
}
