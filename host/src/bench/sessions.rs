//! `prism bench sessions`: N concurrent 640x480@30 WebRTC loopback sessions through a
//! pass-through WASM filter, with the peers in a separate process (`prism bench peers`).
//!
//! Figures: frames delivered, server CPU per session, the CPU of a bare GStreamer
//! decode+encode of the same stream measured in the same run (the codec floor) and the ratio,
//! added latency (RTP in → RTP out, and decoded frame → encoder input) and RSS per session.

use std::io::Write as _;
use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use prism_frame::PixelFormat;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::config::RuntimeConfig;
use crate::media::rtp::{EncoderSettings, RtpEgress, RtpIngest, VideoCodec};
use crate::pipeline::{EventKind, MediaElement, MediaPipeline, PipelineContext};
use crate::runtime::FilterRuntime;
use crate::webrtc::client::{ClientOptions, LoopbackClient};
use crate::webrtc::{WebRtcConfig, WebRtcEndpoint};

const WIDTH: u32 = 640;
const HEIGHT: u32 = 480;
const FPS: u32 = 30;
/// A moving pattern, so the encoders have real work.
const PATTERN: &str = "smpte horizontal-speed=4";
const PEER_BITRATE: u32 = 1_000_000;
/// Sending before the measurement window starts.
const WARMUP: Duration = Duration::from_secs(2);

/// The figures.
#[derive(Debug, Serialize)]
pub struct SessionsBench {
    /// Concurrent sessions.
    pub sessions: usize,
    /// Codec of the streams.
    pub codec: VideoCodec,
    /// Seconds measured.
    pub seconds: u64,
    /// Frames the peers got back, percent of the frames they sent.
    pub delivered_pct: f64,
    /// Server CPU per session, percent of one core.
    pub cpu_per_session_pct: f64,
    /// Bare decode+encode of the same stream, percent of one core per stream.
    pub codec_floor_cpu_pct: f64,
    /// `cpu_per_session_pct / codec_floor_cpu_pct`.
    pub cpu_ratio_vs_codec_floor: f64,
    /// Added latency RTP in → RTP out inside the server, p50, ms.
    pub latency_ms_p50: f64,
    /// Same, p99.
    pub latency_ms_p99: f64,
    /// RTP arrival → decoded picture (jitter buffer, depay, decode), p50, ms.
    pub decode_latency_ms_p50: f64,
    /// Same, p99.
    pub decode_latency_ms_p99: f64,
    /// Decoded frame (ingest appsink) → encoder input (egress appsrc), p50, ms.
    pub frame_latency_ms_p50: f64,
    /// Same, p99.
    pub frame_latency_ms_p99: f64,
    /// Resident memory added per session, MB.
    pub rss_mb_per_session: f64,
}

/// One line from the peers process.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum PeerLine {
    Offer {
        session: usize,
        sdp: String,
    },
    Connected,
    Result {
        session: usize,
        sent: u64,
        received: u64,
    },
    Done,
}

/// One line to the peers process.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum ServerLine {
    Answer { session: usize, sdp: String },
    Start,
}

/// Resident memory, MB.
fn rss_mb() -> f64 {
    crate::sys::resident_bytes() as f64 / (1024.0 * 1024.0)
}

fn tokio_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Runs the benchmark and prints it.
pub fn run(
    filters_dir: &Path,
    sessions: usize,
    seconds: u64,
    codec: VideoCodec,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let sessions = sessions.max(1);
    let seconds = seconds.max(2);
    crate::media::init()?;
    let rt = tokio_runtime()?;
    let (delivered, cpu_pct, latency, frame_latency, decode_latency, rss_per) =
        rt.block_on(measure_sessions(filters_dir, sessions, seconds, codec))?;
    drop(rt);
    let floor = codec_floor(sessions, seconds, codec)?;
    let b = SessionsBench {
        sessions,
        codec,
        seconds,
        delivered_pct: delivered,
        cpu_per_session_pct: cpu_pct / sessions as f64,
        codec_floor_cpu_pct: floor,
        cpu_ratio_vs_codec_floor: cpu_pct / sessions as f64 / floor.max(1e-9),
        latency_ms_p50: latency.0,
        latency_ms_p99: latency.1,
        decode_latency_ms_p50: decode_latency.0,
        decode_latency_ms_p99: decode_latency.1,
        frame_latency_ms_p50: frame_latency.0,
        frame_latency_ms_p99: frame_latency.1,
        rss_mb_per_session: rss_per,
    };
    if json {
        println!("{}", serde_json::to_string(&b)?);
    } else {
        println!(
            "{} sessions, {WIDTH}x{HEIGHT}@{FPS} {codec}, pass-through WASM filter, {seconds} s",
            b.sessions
        );
        println!(
            "  frames delivered        {:>8.1} %   (target >= 95)",
            b.delivered_pct
        );
        println!(
            "  server CPU per session  {:>8.1} %   of one core",
            b.cpu_per_session_pct
        );
        println!(
            "  codec floor per stream  {:>8.1} %   (bare decode+encode, same run)",
            b.codec_floor_cpu_pct
        );
        println!(
            "  ratio vs codec floor    {:>8.2} x   (target <= 1.15)",
            b.cpu_ratio_vs_codec_floor
        );
        println!(
            "  latency RTP in->out     {:>8.1} ms p50, {:.1} ms p99 (target <= 10 / 30)",
            b.latency_ms_p50, b.latency_ms_p99
        );
        println!(
            "  of which RTP->decoded   {:>8.1} ms p50, {:.1} ms p99",
            b.decode_latency_ms_p50, b.decode_latency_ms_p99
        );
        println!(
            "  latency frame->encoder  {:>8.2} ms p50, {:.2} ms p99",
            b.frame_latency_ms_p50, b.frame_latency_ms_p99
        );
        println!(
            "  RSS per session         {:>8.1} MB  (target <= 40)",
            b.rss_mb_per_session
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Delivered %, CPU %, and p50/p99 of RTP in→out, frame→encoder and decode latency, RSS/session.
type SessionFigures = (f64, f64, (f64, f64), (f64, f64), (f64, f64), f64);

async fn measure_sessions(
    filters_dir: &Path,
    sessions: usize,
    seconds: u64,
    codec: VideoCodec,
) -> anyhow::Result<SessionFigures> {
    let filters = FilterRuntime::new(RuntimeConfig::default())?;
    let passthrough = filters
        .load_file(&filters_dir.join("passthrough.wasm"))
        .with_context(|| format!("loading passthrough.wasm from {}", filters_dir.display()))?;
    let ctx = PipelineContext {
        filters,
        tokio: tokio::runtime::Handle::current(),
        webrtc: WebRtcConfig {
            bind_addrs: vec!["127.0.0.1:0".into()],
            ..WebRtcConfig::default()
        },
        media: Default::default(),
    };
    let rss_before = rss_mb();
    let exe = std::env::current_exe()?;
    let mut child = tokio::process::Command::new(exe)
        .args([
            "bench",
            "peers",
            "--sessions",
            &sessions.to_string(),
            "--seconds",
            &(seconds + WARMUP.as_secs() + 1).to_string(),
            "--codec",
            &codec.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting the peers process")?;
    let mut to_peers = child.stdin.take().context("peers stdin")?;
    let mut from_peers = BufReader::new(child.stdout.take().context("peers stdout")?).lines();
    let mut pipelines = Vec::new();
    let mut endpoints: Vec<Arc<WebRtcEndpoint>> = Vec::new();
    let mut results = Vec::new();
    let mut cpu_pct = 0.0;
    let mut rss_during = rss_before;
    while let Some(line) = from_peers.next_line().await? {
        let Ok(msg) = serde_json::from_str::<PeerLine>(&line) else {
            continue;
        };
        match msg {
            PeerLine::Offer { session, sdp } => {
                let pipeline = MediaPipeline::new(ctx.clone())?;
                let endpoint = pipeline.add_webrtc_endpoint().await?;
                let filter = pipeline.add_filter(&passthrough, None, "prism", "WasmFilter")?;
                pipeline.connect(endpoint.id(), filter.id(), None)?;
                pipeline.connect(filter.id(), endpoint.id(), None)?;
                let mut events = pipeline.subscribe();
                endpoint.process_offer(&sdp).await?;
                endpoint.gather_candidates();
                let deadline = tokio::time::sleep(Duration::from_secs(5));
                tokio::pin!(deadline);
                loop {
                    tokio::select! {
                        ev = events.recv() => match ev {
                            Ok(ev) if ev.kind == EventKind::IceGatheringDone => break,
                            Ok(_) => {}
                            Err(_) => break,
                        },
                        _ = &mut deadline => break,
                    }
                }
                let sdp = endpoint.local_sdp().await.context("no answer")?;
                let line = serde_json::to_string(&ServerLine::Answer { session, sdp })?;
                to_peers.write_all(format!("{line}\n").as_bytes()).await?;
                to_peers.flush().await?;
                pipelines.push(pipeline);
                endpoints.push(endpoint);
            }
            PeerLine::Connected => {
                let line = serde_json::to_string(&ServerLine::Start)?;
                to_peers.write_all(format!("{line}\n").as_bytes()).await?;
                to_peers.flush().await?;
                tokio::time::sleep(WARMUP).await;
                for e in &endpoints {
                    e.latency_rtp().clear();
                    e.latency_frames().clear();
                    e.latency_decode().clear();
                }
                let (cpu0, t0) = (crate::sys::process_cpu_time(), Instant::now());
                tokio::time::sleep(Duration::from_secs(seconds)).await;
                let (cpu1, t1) = (crate::sys::process_cpu_time(), Instant::now());
                cpu_pct = (cpu1 - cpu0).as_secs_f64() / (t1 - t0).as_secs_f64() * 100.0;
                rss_during = rss_mb();
            }
            PeerLine::Result {
                session,
                sent,
                received,
            } => results.push((session, sent, received)),
            PeerLine::Done => break,
        }
    }
    let _ = child.wait().await;
    if results.len() != sessions {
        bail!(
            "the peers process reported {} of {sessions} sessions",
            results.len()
        );
    }
    let sent: u64 = results.iter().map(|r| r.1).sum();
    let received: u64 = results.iter().map(|r| r.2).sum();
    let mut rtp = Vec::new();
    let mut frames = Vec::new();
    let mut decode = Vec::new();
    for e in &endpoints {
        rtp.extend(e.latency_rtp().samples_ms());
        frames.extend(e.latency_frames().samples_ms());
        decode.extend(e.latency_decode().samples_ms());
    }
    for p in &pipelines {
        p.release();
    }
    let pct = |v: &mut Vec<f64>| {
        if v.is_empty() {
            return (0.0, 0.0);
        }
        v.sort_by(f64::total_cmp);
        (
            super::stats::percentile(v, 0.5),
            super::stats::percentile(v, 0.99),
        )
    };
    Ok((
        received as f64 * 100.0 / sent.max(1) as f64,
        cpu_pct,
        pct(&mut rtp),
        pct(&mut frames),
        pct(&mut decode),
        (rss_during - rss_before) / sessions as f64,
    ))
}

/// `prism bench peers`: the client side, driven over stdin/stdout by `bench sessions`.
pub fn peers(sessions: usize, seconds: u64, codec: VideoCodec) -> anyhow::Result<ExitCode> {
    crate::media::init()?;
    let stream = record_stream(codec, seconds * FPS as u64)?;
    let rt = tokio_runtime()?;
    rt.block_on(async move {
        let say = |line: PeerLine| -> anyhow::Result<()> {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", serde_json::to_string(&line)?)?;
            out.flush()?;
            Ok(())
        };
        let mut clients = Vec::new();
        for session in 0..sessions {
            let client = LoopbackClient::new(ClientOptions {
                codec,
                width: WIDTH,
                height: HEIGHT,
                fps: FPS,
                pattern: PATTERN.into(),
                picture: None,
                bind: "127.0.0.1:0".into(),
                bitrate_bps: PEER_BITRATE,
                decode: false,
                audio: false,
            })
            .await?;
            let sdp = client.create_offer(true).await?;
            say(PeerLine::Offer { session, sdp })?;
            clients.push(client);
        }
        let mut input = BufReader::new(tokio::io::stdin()).lines();
        let mut answered = 0;
        while answered < sessions {
            let line = input.next_line().await?.context("server went away")?;
            if let Ok(ServerLine::Answer { session, sdp }) = serde_json::from_str(&line) {
                clients
                    .get(session)
                    .context("answer for an unknown session")?
                    .set_answer(&sdp)
                    .await?;
                answered += 1;
            }
        }
        for c in &clients {
            c.wait_connected(Duration::from_secs(20)).await?;
        }
        say(PeerLine::Connected)?;
        loop {
            let line = input.next_line().await?.context("server went away")?;
            if matches!(serde_json::from_str(&line), Ok(ServerLine::Start)) {
                break;
            }
        }
        // Pre-encoded once, paced in real time: the peers cost next to nothing, so the
        // server has the cores.
        let frame_time = Duration::from_secs(1) / FPS;
        let start = tokio::time::Instant::now();
        for (k, frame) in stream.iter().enumerate() {
            tokio::time::sleep_until(start + frame_time * k as u32).await;
            for c in &clients {
                c.send_encoded_frame(frame).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
        for (session, c) in clients.iter().enumerate() {
            say(PeerLine::Result {
                session,
                sent: c.frames_sent(),
                received: c.received().frames,
            })?;
        }
        say(PeerLine::Done)?;
        for c in &clients {
            c.close().await;
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// The payload type the peers use (Prism's offer numbers).
fn payload_type(codec: VideoCodec) -> u8 {
    match codec {
        VideoCodec::Vp8 => crate::webrtc::engine::VP8_PAYLOAD_TYPE,
        VideoCodec::H264 => crate::webrtc::engine::H264_PAYLOAD_TYPE,
    }
}

/// Encodes `frames` frames of the peers' stream once, as RTP packets per frame.
fn record_stream(codec: VideoCodec, frames: u64) -> anyhow::Result<Vec<Vec<Vec<u8>>>> {
    let encoder = match codec {
        VideoCodec::Vp8 => format!(
            "vp8enc deadline=1 cpu-used=8 end-usage=cbr lag-in-frames=0 threads=1 \
             keyframe-max-dist=60 target-bitrate={PEER_BITRATE} ! rtpvp8pay pt=96 mtu=1200 \
             picture-id-mode=15-bit"
        ),
        VideoCodec::H264 => format!(
            "x264enc tune=zerolatency speed-preset=ultrafast threads=1 key-int-max=60 bitrate={} \
             ! video/x-h264,profile=constrained-baseline ! rtph264pay pt=102 mtu=1200 \
             config-interval=-1 aggregate-mode=zero-latency",
            PEER_BITRATE / 1000
        ),
    };
    let desc = format!(
        "videotestsrc num-buffers={frames} pattern={PATTERN} \
         ! video/x-raw,format=I420,width={WIDTH},height={HEIGHT},framerate={FPS}/1 \
         ! {encoder} ! appsink name=rtp sync=false"
    );
    let pipeline = gst::parse::launch(&desc)?
        .downcast::<gst::Pipeline>()
        .map_err(|_| anyhow::anyhow!("not a pipeline"))?;
    let sink = pipeline
        .by_name("rtp")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .context("no appsink")?;
    pipeline.set_state(gst::State::Playing)?;
    let mut out: Vec<Vec<Vec<u8>>> = vec![Vec::new()];
    while let Ok(sample) = sink.pull_sample() {
        let Some(buffer) = sample.buffer() else {
            continue;
        };
        let map = buffer.map_readable()?;
        out.last_mut()
            .expect("invariant: never empty")
            .push(map.to_vec());
        // The marker bit ends a frame.
        if map.get(1).is_some_and(|b| b & 0x80 != 0) {
            out.push(Vec::new());
        }
    }
    pipeline.set_state(gst::State::Null)?;
    out.retain(|f| !f.is_empty());
    Ok(out)
}

/// CPU percent of one core per stream for a bare `RTP → decode → encode → RTP` of the
/// peers' stream, the same branches the server uses, without WebRTC or filters.
fn codec_floor(sessions: usize, seconds: u64, codec: VideoCodec) -> anyhow::Result<f64> {
    let total = (seconds + WARMUP.as_secs()) * FPS as u64;
    let stream = record_stream(codec, total)?;
    let pipeline = gst::Pipeline::with_name("codec-floor");
    pipeline.set_state(gst::State::Playing)?;
    let out_packets = Arc::new(AtomicU64::new(0));
    let mut ingests = Vec::new();
    let mut egresses = Vec::new();
    for i in 0..sessions {
        let counter = out_packets.clone();
        let egress = Arc::new(RtpEgress::new(
            &pipeline,
            &format!("floor-out-{i}"),
            codec,
            payload_type(codec),
            EncoderSettings {
                bitrate_bps: WebRtcConfig::default().start_bitrate_bps,
                ..EncoderSettings::default()
            },
            move |_, _| {
                counter.fetch_add(1, Ordering::Relaxed);
            },
        )?);
        let to_encoder = egress.clone();
        let ingest = RtpIngest::new(
            &pipeline,
            &format!("floor-in-{i}"),
            codec,
            payload_type(codec),
            PixelFormat::I420,
            move |frame| {
                let _ = to_encoder.push_frame(frame);
            },
        )?;
        ingests.push(ingest);
        egresses.push(egress);
    }
    let start = Instant::now();
    let frame_time = Duration::from_secs(1) / FPS;
    let mut window = None;
    for (k, packets) in stream.iter().enumerate() {
        if let Some(wait) = (start + frame_time * k as u32).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        if k as u64 == WARMUP.as_secs() * FPS as u64 {
            window = Some((crate::sys::process_cpu_time(), Instant::now()));
        }
        for ingest in &ingests {
            for p in packets {
                ingest.push_rtp(p.clone());
            }
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    let (cpu0, t0) = window.context("the recorded stream is too short")?;
    let pct =
        (crate::sys::process_cpu_time() - cpu0).as_secs_f64() / t0.elapsed().as_secs_f64() * 100.0;
    pipeline.set_state(gst::State::Null)?;
    drop(ingests);
    drop(egresses);
    if out_packets.load(Ordering::Relaxed) == 0 {
        bail!("the codec floor produced nothing");
    }
    Ok(pct / sessions as f64)
}
