//! `prism filter run FILE --input IMAGE|VIDEO [--output PATH] [--config JSON]
//! [--image NAME=URI]... [--json]`: decode the input in the filter's pixel format, attach the
//! pictures the filter draws, run every frame through the filter, write the result, print the
//! filter's events as JSON lines and a timing summary.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::Instant;

use anyhow::Context;
use serde_json::json;

use crate::bench::stats::Summary;
use crate::config::RuntimeConfig;
use crate::media::{Decoder, Encoder};
use crate::runtime::{EventSink, FilterEvent, FilterRuntime, Verdict};

/// Events buffered between frames before the oldest are dropped.
const EVENT_BUFFER: usize = 4096;

/// Parsed options.
#[derive(Debug)]
pub struct Options {
    pub file: PathBuf,
    pub input: PathBuf,
    pub output: Option<PathBuf>,
    pub config: Option<String>,
    /// Pictures to attach, (name, URI).
    pub images: Vec<(String, String)>,
    pub json: bool,
}

/// Parses `--image NAME=URI`.
pub fn parse_image_arg(arg: &str) -> Result<(String, String), String> {
    match arg.split_once('=') {
        Some((name, uri)) if !name.is_empty() && !uri.is_empty() => {
            Ok((name.to_string(), uri.to_string()))
        }
        _ => Err(format!(
            "expected NAME=URI (e.g. hat=img/hat.png), got {arg:?}"
        )),
    }
}

/// A still picture (any input that decodes to one frame, whatever its file is called) is shown
/// to the filter as this many identical frames (30 fps), so filters that confirm what they see
/// across frames (the plate detector) report on photos too.
pub const STILL_FRAMES: u64 = 3;

fn print_events(
    rx: &Receiver<FilterEvent>,
    out: &mut impl Write,
    json: bool,
) -> std::io::Result<()> {
    while let Ok(event) = rx.try_recv() {
        // A plate is printed as a line of its own for people; everything is a JSON line.
        if !json
            && let FilterEvent::Event { name, payload, .. } = &event
            && name == "PlateDetected"
            && let Some(plate) = payload.get("plate").and_then(|p| p.as_str())
        {
            let conf = payload
                .get("confidence")
                .and_then(|c| c.as_f64())
                .unwrap_or(0.0);
            writeln!(out, "plate {plate} ({:.0}%)", conf * 100.0)?;
        }
        writeln!(
            out,
            "{}",
            serde_json::to_string(&event).expect("events serialise")
        )?;
    }
    Ok(())
}

/// A one-line progress bar on stderr.
fn progress(done_us: u64, total_us: u64, frames: u64) {
    let frac = (done_us as f64 / total_us.max(1) as f64).clamp(0.0, 1.0);
    let width = 30;
    let filled = (frac * width as f64) as usize;
    eprint!(
        "\r[{}{}] {:5.1}% {frames} frames",
        "#".repeat(filled),
        "-".repeat(width - filled),
        frac * 100.0
    );
}

pub fn run(opts: &Options) -> anyhow::Result<ExitCode> {
    let runtime = FilterRuntime::new(RuntimeConfig::default())?;
    let filter = runtime.load_file(&opts.file)?;
    let (sink, rx) = EventSink::channel(EVENT_BUFFER);
    let mut instance = runtime.instantiate(&filter, Some(sink.clone()))?;
    for (name, uri) in &opts.images {
        let image =
            crate::vision::load_image(uri).with_context(|| format!("loading picture {name:?}"))?;
        instance.images().set(name, Some(Arc::new(image)))?;
    }
    if let Some(config) = &opts.config {
        instance.configure(config)?;
    }
    let format = filter.info.format;
    let mut decoder = Decoder::open(&opts.input, format)?;
    let mut encoder: Option<Encoder> = None;
    let show_progress = !opts.json && std::io::stderr().is_terminal();
    let mut stdout = std::io::stdout().lock();
    let mut times_us = Vec::new();
    let mut dropped = 0u64;
    let started = Instant::now();

    // One frame is decoded ahead: an input that ends after its first frame is a still.
    let mut next = decoder.next_frame()?;
    let mut first = true;
    while let Some(mut frame) = next.take() {
        next = decoder.next_frame()?;
        let still = std::mem::take(&mut first) && next.is_none();
        if still {
            // The earlier showings of a still picture: same pixels, earlier times (not
            // counted as frames of the input).
            for i in 0..STILL_FRAMES - 1 {
                let mut copy = frame.buf.clone();
                instance.process(&mut copy, frame.pts_us + i * 33_333);
            }
            frame.pts_us += (STILL_FRAMES - 1) * 33_333;
        }
        let t = Instant::now();
        let verdict = instance.process(&mut frame.buf, frame.pts_us);
        times_us.push(t.elapsed().as_secs_f64() * 1e6);
        print_events(&rx, &mut stdout, opts.json)?;
        if verdict == Verdict::Drop {
            dropped += 1;
            continue;
        }
        if let Some(path) = &opts.output {
            if encoder.is_none() {
                let fps = decoder.framerate().unwrap_or((30, 1));
                encoder = Some(Encoder::create(
                    path,
                    format,
                    frame.buf.width(),
                    frame.buf.height(),
                    fps,
                )?);
            }
            if let Some(enc) = encoder.as_mut() {
                enc.push(&frame.buf, frame.pts_us)?;
            }
        }
        if show_progress && let Some(total) = decoder.duration() {
            progress(
                frame.pts_us,
                total.as_micros() as u64,
                times_us.len() as u64,
            );
        }
    }
    if show_progress {
        eprintln!();
    }
    instance.end_of_stream();
    print_events(&rx, &mut stdout, opts.json)?;
    if times_us.is_empty() {
        anyhow::bail!("{}: no video frames decoded", opts.input.display());
    }
    let written = match encoder {
        Some(enc) => Some(enc.finish().context("finishing the output")?),
        None => None,
    };
    let stats = instance.stats();
    let summary = Summary::of(&mut times_us);
    let report = json!({
        "kind": "summary",
        "filter": filter.info.name,
        "frames": times_us.len(),
        "dropped": dropped,
        "failures": stats.failures,
        "restarts": stats.restarts,
        "disabled": instance.is_disabled(),
        "events_dropped": sink.dropped(),
        "ms_per_frame_p50": summary.p50 / 1000.0,
        "ms_per_frame_p99": summary.p99 / 1000.0,
        "wall_s": started.elapsed().as_secs_f64(),
        "output": opts.output.as_ref().map(|p| p.display().to_string()),
        "frames_written": written,
    });
    if opts.json {
        writeln!(stdout, "{report}")?;
    } else {
        eprintln!(
            "{}: {} frames ({} dropped, {} failures), {:.3} ms/frame p50, {:.3} ms/frame p99{}",
            filter.info.name,
            times_us.len(),
            dropped,
            stats.failures,
            summary.p50 / 1000.0,
            summary.p99 / 1000.0,
            opts.output
                .as_ref()
                .map(|p| format!(", wrote {}", p.display()))
                .unwrap_or_default()
        );
    }
    Ok(if stats.failures > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}
