//! `prism bench plates --data DIR`: licence-plate detection and reading accuracy and speed of
//! a plate filter (default `platedetector.wasm`), scored by the OpenALPR benchmark's rule.
//!
//! `DIR` holds sets as subfolders (or is one set itself) of `NAME.jpg` + `NAME.txt`, the text
//! holding `NAME.jpg X Y W H PLATE`. Each image is decoded (optionally shrunk to fit
//! `--max-size`, the ground-truth box with it), given to a fresh filter instance configured
//! with the set's region (`eu`, `us`, `br`, else `auto`; `--config` replaces that), and fed as [`FRAMES_PER_IMAGE`]
//! frames so a filter that confirms plates across frames can report; the time of the first
//! frame (where detection runs) is the time per image. `PlateDetected` events
//! (`{plate, confidence, box: {x, y, width, height}}`) are the detections.
//!
//! Scoring: detected = a box with IoU > 0.4 against the truth; read (strict) = the most
//! confident detected box's text equals the plate (upper case, spaces and dashes removed);
//! lenient = the same with the letter O and the digit 0 as one; every other box is a false
//! detection.
//!
//! `--approach` also runs each photo as a clip closing in on its plate (see [`approach`]),
//! each clip a stream of its own, or with `--street` a set's clips one after another in one
//! stream, as a camera at a barrier sees car after car stop at the same spot.
//!
//! `--variants` also reads every photo changed as other cameras would take it (see
//! [`Variant`]).
//!
//! [`approach`]: super::approach

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::Value;

use super::approach::{self, ApproachReport};
use super::stats::percentile;
use super::variants::Variant;
use crate::config::RuntimeConfig;
use crate::media::{Decoder, scale_frame};
use crate::runtime::{EventSink, FilterEvent, FilterRuntime};
use crate::vision;
use prism_frame::{FrameBuf, PixelFormat};

/// Identical frames each image is fed as.
pub const FRAMES_PER_IMAGE: u64 = 3;
/// IoU a detection needs to count.
pub const IOU_MATCH: f64 = 0.4;

/// An axis-aligned box, pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BBox {
    /// Left.
    pub x: f64,
    /// Top.
    pub y: f64,
    /// Width.
    pub w: f64,
    /// Height.
    pub h: f64,
}

impl BBox {
    /// Intersection over union.
    pub fn iou(&self, o: &BBox) -> f64 {
        let ix = (self.x + self.w).min(o.x + o.w) - self.x.max(o.x);
        let iy = (self.y + self.h).min(o.y + o.h) - self.y.max(o.y);
        if ix <= 0.0 || iy <= 0.0 {
            return 0.0;
        }
        let inter = ix * iy;
        inter / (self.w * self.h + o.w * o.h - inter)
    }

    pub(crate) fn scaled(&self, f: f64) -> BBox {
        BBox {
            x: self.x * f,
            y: self.y * f,
            w: self.w * f,
            h: self.h * f,
        }
    }
}

/// One labelled image.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The photograph.
    pub image: PathBuf,
    /// The plate's box.
    pub truth: BBox,
    /// The plate's text.
    pub plate: String,
}

/// One plate the filter reported.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Its text.
    pub plate: String,
    /// Its confidence, 0..1.
    pub confidence: f64,
    /// Its box.
    pub bbox: BBox,
}

/// Upper case, no spaces or dashes.
pub fn normalise(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_uppercase)
        .collect()
}

/// [`normalise`], with the letter O read as the digit 0.
pub fn lenient(s: &str) -> String {
    normalise(s).replace('O', "0")
}

/// How one image scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImageScore {
    /// A box matched the truth.
    pub detected: bool,
    /// The best matching box read the plate exactly.
    pub strict: bool,
    /// ... with O and 0 as one.
    pub lenient: bool,
    /// Boxes that matched nothing.
    pub false_detections: usize,
}

/// Scores the detections of one image.
pub fn score(sample: &Sample, detections: &[Detection]) -> ImageScore {
    let (matching, other): (Vec<&Detection>, Vec<&Detection>) = detections
        .iter()
        .partition(|d| d.bbox.iou(&sample.truth) > IOU_MATCH);
    let best = matching
        .iter()
        .max_by(|a, b| a.confidence.total_cmp(&b.confidence));
    ImageScore {
        detected: best.is_some(),
        strict: best.is_some_and(|d| normalise(&d.plate) == normalise(&sample.plate)),
        lenient: best.is_some_and(|d| lenient(&d.plate) == lenient(&sample.plate)),
        false_detections: other.len(),
    }
}

/// A `PlateDetected` payload as a detection.
pub fn detection(payload: &Value) -> Option<Detection> {
    let b = payload.get("box")?;
    let num = |v: &Value, keys: &[&str]| keys.iter().find_map(|k| v.get(*k)?.as_f64());
    Some(Detection {
        plate: payload.get("plate")?.as_str()?.to_string(),
        confidence: payload
            .get("confidence")
            .and_then(Value::as_f64)
            .unwrap_or(0.0),
        bbox: BBox {
            x: num(b, &["x"])?,
            y: num(b, &["y"])?,
            w: num(b, &["width", "w"])?,
            h: num(b, &["height", "h"])?,
        },
    })
}

/// The picture formats a label's image may be in, when its line names no picture that exists.
const PICTURE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "bmp", "JPG", "JPEG", "PNG", "BMP"];

/// Reads a label: `NAME X Y W H PLATE` on its first line that holds anything. The name may
/// hold spaces (the box is the first four numbers after it) and the plate spaces or dashes.
/// `None` when the file is not a label (no picture beside it: notes, a README).
fn parse_label(txt: &Path, dir: &Path) -> anyhow::Result<Option<Sample>> {
    let text = std::fs::read_to_string(txt)?;
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let fields: Vec<&str> = line.split_whitespace().collect();
    let number = |f: &str| f.parse::<f64>().ok().filter(|v| v.is_finite());
    let at = (1..=fields.len().saturating_sub(4))
        .find(|&i| fields[i..i + 4].iter().all(|f| number(f).is_some()));
    let image = at
        .map(|i| dir.join(fields[..i].join(" ")))
        .filter(|p| p.is_file())
        .or_else(|| {
            // A line naming its picture otherwise (another folder, a typo): the picture beside
            // the label, of the same name.
            let stem = txt.file_stem()?;
            PICTURE_EXTENSIONS
                .iter()
                .map(|e| {
                    let mut name = stem.to_os_string();
                    name.push(".");
                    name.push(e);
                    dir.join(name)
                })
                .find(|p| p.is_file())
        });
    let Some(image) = image else {
        if at.is_some() {
            bail!("{}: no picture named by it or beside it", txt.display());
        }
        return Ok(None);
    };
    let Some(i) = at else {
        bail!("{}: expected 'NAME X Y W H PLATE'", txt.display());
    };
    let n = |k: usize| number(fields[i + k]).unwrap_or_default();
    let plate = fields[i + 4..].concat();
    if plate.is_empty() {
        bail!("{}: no plate text after the box", txt.display());
    }
    Ok(Some(Sample {
        image,
        truth: BBox {
            x: n(0),
            y: n(1),
            w: n(2),
            h: n(3),
        },
        plate,
    }))
}

fn samples_in(dir: &Path) -> anyhow::Result<Vec<Sample>> {
    let mut txts: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("txt")))
        .collect();
    txts.sort();
    let mut samples = Vec::new();
    for t in &txts {
        match parse_label(t, dir)? {
            Some(s) => samples.push(s),
            None => eprintln!(
                "{}: not a label (no picture beside it), skipped",
                t.display()
            ),
        }
    }
    Ok(samples)
}

/// The sets under `dir`: each subfolder with labels, or `dir` itself.
pub fn load_sets(dir: &Path) -> anyhow::Result<BTreeMap<String, Vec<Sample>>> {
    let mut sets = BTreeMap::new();
    let mut subdirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    subdirs.sort();
    for sub in subdirs {
        let samples = samples_in(&sub)?;
        if !samples.is_empty() {
            let name = sub.file_name().and_then(|n| n.to_str()).unwrap_or("set");
            sets.insert(name.to_string(), samples);
        }
    }
    if sets.is_empty() {
        let samples = samples_in(dir)?;
        if !samples.is_empty() {
            let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("set");
            sets.insert(name.to_string(), samples);
        }
    }
    if sets.is_empty() {
        bail!(
            "no labelled images (NAME.jpg + NAME.txt) in {}",
            dir.display()
        );
    }
    Ok(sets)
}

/// Figures of one set.
#[derive(Debug, Clone, Serialize)]
pub struct SetReport {
    /// Images scored.
    pub images: usize,
    /// Detection rate, percent.
    pub detected_pct: f64,
    /// Strict top-1 read rate, percent.
    pub strict_pct: f64,
    /// Lenient (O = 0) read rate, percent.
    pub lenient_pct: f64,
    /// False detections per image.
    pub fp_per_image: f64,
    /// Time per image, median, ms.
    pub ms_p50: f64,
    /// Time per image, 99th percentile, ms.
    pub ms_p99: f64,
}

/// Aggregates image scores and times.
pub fn report(scores: &[ImageScore], ms: &[f64]) -> SetReport {
    let n = scores.len().max(1) as f64;
    let pct =
        |f: fn(&ImageScore) -> bool| scores.iter().filter(|s| f(s)).count() as f64 * 100.0 / n;
    let mut sorted = ms.to_vec();
    sorted.sort_by(f64::total_cmp);
    let (p50, p99) = if sorted.is_empty() {
        (0.0, 0.0)
    } else {
        (percentile(&sorted, 0.5), percentile(&sorted, 0.99))
    };
    SetReport {
        images: scores.len(),
        detected_pct: pct(|s| s.detected),
        strict_pct: pct(|s| s.strict),
        lenient_pct: pct(|s| s.lenient),
        fp_per_image: scores.iter().map(|s| s.false_detections).sum::<usize>() as f64 / n,
        ms_p50: p50,
        ms_p99: p99,
    }
}

/// The figures of every set.
#[derive(Debug, Serialize)]
pub struct PlatesBench {
    /// Filter measured (`name@version`).
    pub filter: String,
    /// Frames shrunk to fit this, if asked.
    pub max_size: Option<(u32, u32)>,
    /// Per set.
    pub sets: BTreeMap<String, SetReport>,
    /// A live-video case: a 640x480 camera panning across the first photo.
    pub video: Option<VideoReport>,
    /// The same pan with the plate painted over: what most frames of a street camera hold,
    /// and where the reader searches hardest (nothing reads well enough to stop at the first
    /// search).
    pub video_no_plate: Option<VideoReport>,
    /// The glyph classifier alone: microseconds per glyph, over the glyphs the reader cuts
    /// from the first photo (one core).
    pub classifier_us_per_glyph: Option<f64>,
    /// Per set, with `--approach`: each photo as a clip closing in on its plate.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub approach: BTreeMap<String, ApproachReport>,
    /// How the clips ran, if they did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clips: Option<Clips>,
    /// With `--variants`: per variant of the photos ([`Variant`]), per set.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub variants: BTreeMap<String, BTreeMap<String, SetReport>>,
}

/// How `prism bench plates --approach` runs the clips closing in on each plate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Clips {
    /// Each through a fresh filter instance, a stream of its own.
    Apart,
    /// A set's clips one after another through one instance, one stream (`--street`): a
    /// camera at one spot seeing car after car, each stopping where the last one stood.
    Street,
}

/// Frames per second on a 640x480 stream, one core.
#[derive(Debug, Clone, Serialize)]
pub struct VideoReport {
    /// Frames processed.
    pub frames: usize,
    /// Frames per second (1000 / mean ms per frame).
    pub fps: f64,
    /// Time per frame, median, ms.
    pub ms_p50: f64,
    /// Time per frame, 99th percentile, ms.
    pub ms_p99: f64,
}

/// Frames of the video case.
const VIDEO_FRAMES: u32 = 90;

/// A 640x480 window panning across `photo` (scaled to 800x600), `VIDEO_FRAMES` frames.
fn pan(photo: &FrameBuf) -> anyhow::Result<Vec<FrameBuf>> {
    let big = scale_frame(photo, 800, 600).map_err(anyhow::Error::msg)?;
    (0..VIDEO_FRAMES)
        .map(|k| {
            let area = prism_frame::Rect::new(
                (k * 160 / VIDEO_FRAMES) & !1,
                (k * 120 / VIDEO_FRAMES) & !1,
                640,
                480,
            );
            let data = big.read_region(area).map_err(|e| anyhow::anyhow!("{e}"))?;
            FrameBuf::new(big.format(), 640, 480, data).map_err(|e| anyhow::anyhow!("{e}"))
        })
        .collect()
}

/// `buf` shrunk to fit `(max_w, max_h)` (even sizes, as a video's), and the factor its width
/// was scaled by; a picture that fits is returned as it is.
pub fn fit(buf: FrameBuf, (max_w, max_h): (u32, u32)) -> anyhow::Result<(FrameBuf, f64)> {
    let f = (max_w as f64 / buf.width() as f64).min(max_h as f64 / buf.height() as f64);
    if f >= 1.0 {
        return Ok((buf, 1.0));
    }
    let w = ((buf.width() as f64 * f).round() as u32).max(2) & !1;
    let h = ((buf.height() as f64 * f).round() as u32).max(2) & !1;
    let fx = w as f64 / buf.width() as f64;
    Ok((scale_frame(&buf, w, h).map_err(anyhow::Error::msg)?, fx))
}

/// Parses `640x480`.
pub fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("{s:?} is not WIDTHxHEIGHT"))?;
    let parse = |v: &str| {
        v.parse::<u32>()
            .map_err(|_| format!("{s:?} is not WIDTHxHEIGHT"))
    };
    Ok((parse(w)?, parse(h)?))
}

/// What reads the plates of one image.
enum Reader {
    /// The WASM filter, a fresh instance per image fed [`FRAMES_PER_IMAGE`] frames.
    Wasm {
        runtime: std::sync::Arc<FilterRuntime>,
        loaded: std::sync::Arc<crate::runtime::LoadedFilter>,
    },
    /// The native core directly, once per image.
    Native,
}

/// The configuration given, else `{"region": SET}` for a set named `eu`, `us` or `br` (any
/// case), else `{"region": "auto"}`.
fn config_for(config: Option<&str>, set: &str) -> String {
    let region = set
        .parse::<vision::Region>()
        .unwrap_or(vision::Region::Auto)
        .name();
    config
        .map(str::to_string)
        .unwrap_or_else(|| serde_json::json!({ "region": region }).to_string())
}

impl Reader {
    /// Times per frame (ms) of a stream through one instance.
    fn stream(&self, frames: &[FrameBuf], config: &str) -> anyhow::Result<Vec<f64>> {
        let mut ms = Vec::with_capacity(frames.len());
        match self {
            Reader::Wasm { runtime, loaded } => {
                let mut instance = runtime.instantiate(loaded, None)?;
                instance.configure(config)?;
                for (i, f) in frames.iter().enumerate() {
                    let mut frame = f.clone();
                    let t = Instant::now();
                    instance.process(&mut frame, i as u64 * 33_333);
                    ms.push(t.elapsed().as_secs_f64() * 1000.0);
                }
            }
            Reader::Native => {
                // The filter's cadence of thorough and quick searches (`thorough_every`, 2 by
                // default), so that the WASM / native ratio is the filter's overhead.
                let every = serde_json::from_str::<Value>(config)?["thorough_every"]
                    .as_u64()
                    .unwrap_or(2)
                    .max(1);
                for (i, f) in frames.iter().enumerate() {
                    let search = if (i as u64).is_multiple_of(every) {
                        vision::Search::Thorough
                    } else {
                        vision::Search::Quick
                    };
                    ms.push(read_natively(f, config, search)?.1);
                }
            }
        }
        Ok(ms)
    }

    /// A stream through a fresh instance of the filter, configured with `config`.
    fn stream_of_clips(&self, config: &str) -> anyhow::Result<ClipStream> {
        let Reader::Wasm { runtime, loaded } = self else {
            bail!("clips need the filter (it follows plates across frames), not the native core");
        };
        let (sink, events) = EventSink::channel(1024);
        let mut instance = runtime.instantiate(loaded, Some(sink))?;
        instance.configure(config)?;
        Ok(ClipStream {
            instance,
            events,
            next_pts_us: 0,
        })
    }

    fn format(&self) -> PixelFormat {
        match self {
            Reader::Wasm { loaded, .. } => loaded.info.format,
            Reader::Native => PixelFormat::I420,
        }
    }

    fn name(&self) -> String {
        match self {
            Reader::Wasm { loaded, .. } => format!("{}@{}", loaded.info.name, loaded.info.version),
            Reader::Native => "native plate reader".into(),
        }
    }

    /// The detections of `buf` and the time of the frame that detects, ms.
    fn read(&self, buf: &FrameBuf, config: &str) -> anyhow::Result<(Vec<Detection>, f64)> {
        match self {
            Reader::Wasm { runtime, loaded } => {
                let (sink, events) = EventSink::channel(1024);
                let mut instance = runtime.instantiate(loaded, Some(sink))?;
                instance.configure(config)?;
                let mut ms = 0.0;
                for i in 0..FRAMES_PER_IMAGE {
                    let mut frame = buf.clone();
                    let t = Instant::now();
                    instance.process(&mut frame, i * 33_333);
                    if i == 0 {
                        ms = t.elapsed().as_secs_f64() * 1000.0;
                    }
                }
                instance.end_of_stream();
                let detections = plate_events(&events)
                    .iter()
                    .filter_map(|(payload, _)| detection(payload))
                    .collect();
                Ok((detections, ms))
            }
            Reader::Native => read_natively(buf, config, vision::Search::Thorough),
        }
    }
}

/// The native reader's detections of `buf` and its time, ms.
fn read_natively(
    buf: &FrameBuf,
    config: &str,
    search: vision::Search,
) -> anyhow::Result<(Vec<Detection>, f64)> {
    let cfg: Value = serde_json::from_str(config)?;
    let opts = vision::PlateOptions {
        region: cfg["region"]
            .as_str()
            .unwrap_or("auto")
            .parse()
            .map_err(anyhow::Error::msg)?,
        plate_width_pct: cfg["plate_width_pct"].as_f64().unwrap_or(0.0) as f32,
        search,
        ..vision::PlateOptions::default()
    };
    let min = cfg["min_confidence"]
        .as_f64()
        .unwrap_or(vision::DEFAULT_MIN_CONFIDENCE as f64);
    let img = vision::GrayImage::of_frame(buf).context("an i420 frame")?;
    let t = Instant::now();
    let reads = vision::detect_plates(&img, &opts)?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    let detections = reads
        .into_iter()
        .filter(|r| r.confidence as f64 >= min)
        .map(|r| Detection {
            plate: r.text,
            confidence: r.confidence as f64,
            bbox: BBox {
                x: r.bounds.x as f64,
                y: r.bounds.y as f64,
                w: r.bounds.width as f64,
                h: r.bounds.height as f64,
            },
        })
        .collect();
    Ok((detections, ms))
}

/// Clips one after another through one filter instance, as a camera sees car after car.
struct ClipStream {
    instance: crate::runtime::FilterInstance,
    events: std::sync::mpsc::Receiver<FilterEvent>,
    next_pts_us: u64,
}

impl ClipStream {
    /// Runs `frames` on from where the stream is, ending the stream after them if `last`;
    /// the `PlateDetected` events meanwhile, with their times from the clip's start.
    fn clip(&mut self, frames: &[FrameBuf], last: bool) -> Vec<(Value, u64)> {
        let start = self.next_pts_us;
        for f in frames {
            self.instance.process(&mut f.clone(), self.next_pts_us);
            self.next_pts_us += approach::FRAME_US;
        }
        if last {
            self.instance.end_of_stream();
        }
        plate_events(&self.events)
            .into_iter()
            .map(|(payload, pts)| (payload, pts.saturating_sub(start)))
            .collect()
    }
}

/// The `PlateDetected` payloads waiting in `events`, with their frames' times.
fn plate_events(events: &std::sync::mpsc::Receiver<FilterEvent>) -> Vec<(Value, u64)> {
    let mut out = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let FilterEvent::Event {
            name,
            payload,
            pts_us,
            ..
        } = event
            && name == "PlateDetected"
        {
            out.push((payload, pts_us.unwrap_or(0)));
        }
    }
    out
}

/// Runs `filter` (or, with `native`, the native core) over the sets in `data`, and with
/// `clips` over each photo as a clip closing in on its plate.
pub fn measure(
    filter: &Path,
    data: &Path,
    max_size: Option<(u32, u32)>,
    config: Option<&str>,
    native: bool,
    clips: Option<Clips>,
    variants: bool,
) -> anyhow::Result<PlatesBench> {
    let sets = load_sets(data)?;
    let reader = if native {
        Reader::Native
    } else {
        let runtime = FilterRuntime::new(RuntimeConfig::default())?;
        let loaded = runtime
            .load_file(filter)
            .with_context(|| format!("loading {}", filter.display()))?;
        Reader::Wasm { runtime, loaded }
    };
    let shrink = |buf: FrameBuf, truth: BBox| match max_size {
        Some(max) => fit(buf, max).map(|(buf, f)| (buf, truth.scaled(f))),
        None => Ok((buf, truth)),
    };
    let reports = score_sets(&reader, &sets, config, "", &|buf, truth, _| {
        shrink(buf, truth)
    })?;
    let mut variant_reports = BTreeMap::new();
    if variants {
        for v in Variant::ALL {
            let change = |buf, truth, i| {
                let (buf, truth) = v.apply(buf, truth, i)?;
                shrink(buf, truth)
            };
            let label = format!("{} ", v.name());
            variant_reports.insert(
                v.name().to_string(),
                score_sets(&reader, &sets, config, &label, &change)?,
            );
        }
    }
    let (mut video, mut video_no_plate, mut classifier_us_per_glyph) = (None, None, None);
    if let Some((set, samples)) = sets.iter().next() {
        let mut decoder = Decoder::open(&samples[0].image, reader.format())?;
        let mut photo = decoder.next_frame()?.context("a picture")?.buf;
        let config = config_for(config, set);
        video = Some(video_case(&reader, &photo, &config)?);
        classifier_us_per_glyph = glyph_time(&photo)?;
        // The plate and half its size around it painted over in mid gray.
        let t = samples[0].truth;
        let around = prism_frame::Rect::new(
            (t.x - t.w / 2.0).max(0.0) as u32,
            (t.y - t.h / 2.0).max(0.0) as u32,
            (2.0 * t.w) as u32,
            (2.0 * t.h) as u32,
        );
        if let Some(area) = around.clip(photo.width(), photo.height()) {
            photo.fill_rect(area, prism_frame::Color::rgb(128, 128, 128));
            video_no_plate = Some(video_case(&reader, &photo, &config)?);
        }
    }
    let mut approach = BTreeMap::new();
    if let Some(how) = clips {
        for (set, samples) in &sets {
            let config = config_for(config, set);
            let mut scores = Vec::new();
            let mut stream = reader.stream_of_clips(&config)?;
            for (i, sample) in samples.iter().enumerate() {
                let mut decoder = Decoder::open(&sample.image, reader.format())?;
                let photo = decoder.next_frame()?.context("a picture")?.buf;
                let (frames, truth): (Vec<FrameBuf>, Vec<BBox>) =
                    approach::clip(&photo, sample.truth)?.into_iter().unzip();
                if how == Clips::Apart && i > 0 {
                    stream = reader.stream_of_clips(&config)?;
                }
                let last = how == Clips::Apart || i + 1 == samples.len();
                let events = stream.clip(&frames, last);
                let s = approach::score(&events, &truth, &sample.plate);
                if std::env::var_os("PRISM_BENCH_VERBOSE").is_some() {
                    eprintln!(
                        "{set} {} truth={} clip={:?} elsewhere={:?}",
                        sample.image.display(),
                        sample.plate,
                        s.on_plate,
                        s.elsewhere
                    );
                }
                scores.push((s, sample.plate.clone()));
            }
            approach.insert(set.clone(), approach::report(&scores));
        }
    }
    Ok(PlatesBench {
        filter: reader.name(),
        max_size,
        sets: reports,
        video,
        video_no_plate,
        classifier_us_per_glyph,
        approach,
        clips,
        variants: variant_reports,
    })
}

/// What [`score_sets`] does to each photo of a set (its index given) and its plate's box first.
type Prepare<'a> = dyn Fn(FrameBuf, BBox, usize) -> anyhow::Result<(FrameBuf, BBox)> + 'a;

/// Every set's photos, each `prepare`d, read by `reader` and scored. Verbose lines start
/// with `label`.
fn score_sets(
    reader: &Reader,
    sets: &BTreeMap<String, Vec<Sample>>,
    config: Option<&str>,
    label: &str,
    prepare: &Prepare<'_>,
) -> anyhow::Result<BTreeMap<String, SetReport>> {
    let mut reports = BTreeMap::new();
    for (set, samples) in sets {
        let config = config_for(config, set);
        let mut scores = Vec::new();
        let mut times = Vec::new();
        for (i, sample) in samples.iter().enumerate() {
            let mut decoder = Decoder::open(&sample.image, reader.format())?;
            let Some(first) = decoder.next_frame()? else {
                bail!("{} has no picture", sample.image.display());
            };
            let (buf, truth) = prepare(first.buf, sample.truth, i)?;
            let (detections, ms) = reader.read(&buf, &config)?;
            times.push(ms);
            let labelled = Sample {
                truth,
                ..sample.clone()
            };
            let s = score(&labelled, &detections);
            if std::env::var_os("PRISM_BENCH_VERBOSE").is_some() {
                let by_conf =
                    |a: &&Detection, b: &&Detection| a.confidence.total_cmp(&b.confidence);
                let best = detections
                    .iter()
                    .filter(|d| d.bbox.iou(&labelled.truth) > IOU_MATCH)
                    .max_by(by_conf)
                    .or_else(|| detections.iter().max_by(by_conf));
                eprintln!(
                    "{label}{set} {} truth={} read={:?} conf={:.2} iou={:.2} {}",
                    sample
                        .image
                        .file_name()
                        .and_then(|n| n.to_str())
                        .unwrap_or(""),
                    sample.plate,
                    best.map(|d| d.plate.as_str()),
                    best.map_or(0.0, |d| d.confidence),
                    best.map_or(0.0, |d| d.bbox.iou(&labelled.truth)),
                    if s.strict { "OK" } else { "" }
                );
                // The false detections, on lines of their own.
                for d in detections
                    .iter()
                    .filter(|d| d.bbox.iou(&labelled.truth) <= IOU_MATCH)
                {
                    eprintln!(
                        "  false {:?} conf={:.2} at {:.0},{:.0} {:.0}x{:.0}",
                        d.plate, d.confidence, d.bbox.x, d.bbox.y, d.bbox.w, d.bbox.h
                    );
                }
            }
            scores.push(s);
        }
        reports.insert(set.clone(), report(&scores, &times));
    }
    Ok(reports)
}

/// Microseconds the glyph classifier takes per glyph, over every glyph the reader's
/// candidates cut from `photo` (each classified 20 times), if it has any.
fn glyph_time(photo: &FrameBuf) -> anyhow::Result<Option<f64>> {
    let img = vision::GrayImage::of_frame(photo).context("a frame with a luma plane")?;
    let patches: Vec<_> = vision::find_candidates(&img, &vision::PlateOptions::default())?
        .iter()
        .flat_map(|c| {
            c.chars
                .iter()
                .map(|r| vision::char_patch(&img, *r, !c.inverted))
        })
        .collect();
    if patches.is_empty() {
        return Ok(None);
    }
    let model = vision::classifier::Cnn::builtin();
    let t = Instant::now();
    let mut sink = 0.0;
    for _ in 0..20 {
        for p in &patches {
            sink += model.classify(p)[0];
        }
    }
    std::hint::black_box(sink);
    Ok(Some(
        t.elapsed().as_secs_f64() * 1e6 / (20 * patches.len()) as f64,
    ))
}

/// Frames per second of a 640x480 camera panning across `photo`, on one core.
fn video_case(reader: &Reader, photo: &FrameBuf, config: &str) -> anyhow::Result<VideoReport> {
    let mut ms = on_one_core(|| reader.stream(&pan(photo)?, config))?;
    let mean = ms.iter().sum::<f64>() / ms.len().max(1) as f64;
    ms.sort_by(f64::total_cmp);
    Ok(VideoReport {
        frames: ms.len(),
        fps: 1000.0 / mean.max(1e-6),
        ms_p50: percentile(&ms, 0.5),
        ms_p99: percentile(&ms, 0.99),
    })
}

/// Runs `f` with OpenCV's own worker threads off, so that a figure "on one core" is one.
fn on_one_core<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    let threads = opencv::core::get_num_threads()?;
    opencv::core::set_num_threads(1)?;
    let out = f();
    opencv::core::set_num_threads(threads)?;
    out
}

fn print_table(b: &PlatesBench) {
    let size = b
        .max_size
        .map(|(w, h)| format!(", shrunk to fit {w}x{h}"))
        .unwrap_or_default();
    println!("{}{size}", b.filter);
    println!(
        "  {:<8} {:>6} {:>9} {:>8} {:>9} {:>8} {:>8} {:>8}",
        "set", "images", "detected", "strict", "lenient", "fp/img", "ms p50", "ms p99"
    );
    for (set, r) in &b.sets {
        println!(
            "  {set:<8} {:>6} {:>8.1}% {:>7.1}% {:>8.1}% {:>8.2} {:>8.1} {:>8.1}",
            r.images,
            r.detected_pct,
            r.strict_pct,
            r.lenient_pct,
            r.fp_per_image,
            r.ms_p50,
            r.ms_p99
        );
    }
    if let Some(us) = b.classifier_us_per_glyph {
        println!("  glyph classifier (one core): {us:.0} µs per glyph");
    }
    for (case, v) in [("", &b.video), (", no plate", &b.video_no_plate)] {
        if let Some(v) = v {
            println!(
                "  video 640x480{case} (one core): {:.0} frames/s, {:.1} ms p50, {:.1} ms p99 per frame",
                v.fps, v.ms_p50, v.ms_p99
            );
        }
    }
    print_variants(b);
    if b.approach.is_empty() {
        return;
    }
    println!(
        "  clips closing in on each plate (640x480, 0.2x to 1x of the photo in 2 s, then 1 s still){}:",
        if b.clips == Some(Clips::Street) {
            ", a set's one after another in one stream"
        } else {
            ""
        }
    );
    println!(
        "  {:<8} {:>6} {:>7} {:>7} {:>7} {:>9} {:>11} {:>10} {:>12}",
        "set",
        "clips",
        "found",
        "first",
        "last",
        "last O=0",
        "events/pl.",
        "elsewhere",
        "right at px"
    );
    for (set, a) in &b.approach {
        println!(
            "  {set:<8} {:>6} {:>6.1}% {:>6.1}% {:>6.1}% {:>8.1}% {:>11.2} {:>10.2} {:>12}",
            a.clips,
            a.found_pct,
            a.first_pct,
            a.last_pct,
            a.last_lenient_pct,
            a.events_per_plate,
            a.elsewhere_per_clip,
            a.right_at_px_p50
                .map_or_else(|| "-".into(), |w| format!("{w:.0}"))
        );
    }
}

/// With `--variants`: the strict read rate per set of each variant of the photos, beside the
/// photos as they are, and how many photos each reads.
fn print_variants(b: &PlatesBench) {
    if b.variants.is_empty() {
        return;
    }
    let row = |name: &str, sets: &BTreeMap<String, SetReport>| {
        let read: f64 = sets
            .values()
            .map(|r| r.strict_pct / 100.0 * r.images as f64)
            .sum();
        let images: usize = sets.values().map(|r| r.images).sum();
        let cells: String = sets
            .iter()
            .map(|(set, r)| format!(" {set} {:>5.1}%", r.strict_pct))
            .collect();
        println!(
            "  {name:<16}{cells}   {:>5.0} of {images} read",
            read.round()
        );
    };
    println!("  the photos changed (strict reads):");
    row("as they are", &b.sets);
    for (name, sets) in &b.variants {
        row(name, sets);
    }
}

/// Time through the WASM filter over time through the native core, per set (ms p50) and for
/// the video case (ms per frame, from fps).
fn overhead(wasm: &PlatesBench, native: &PlatesBench) -> BTreeMap<String, f64> {
    let mut out: BTreeMap<String, f64> = wasm
        .sets
        .iter()
        .filter_map(|(set, w)| {
            let n = native.sets.get(set)?;
            Some((set.clone(), w.ms_p50 / n.ms_p50.max(1e-6)))
        })
        .collect();
    for (case, w, n) in [
        ("video", &wasm.video, &native.video),
        (
            "video_no_plate",
            &wasm.video_no_plate,
            &native.video_no_plate,
        ),
    ] {
        if let (Some(w), Some(n)) = (w, n) {
            out.insert(case.into(), n.fps / w.fps.max(1e-6));
        }
    }
    out
}

/// What `prism bench plates` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measured {
    /// The WASM filter.
    Filter,
    /// The native core directly.
    Native,
    /// Both, with the WASM filter's time over the native core's (`wasm_over_native` in JSON).
    Both,
}

/// What `prism bench plates` is asked to do.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The plate filter.
    pub filter: &'a Path,
    /// The folder of sets.
    pub data: &'a Path,
    /// Shrink photos to fit this first.
    pub max_size: Option<(u32, u32)>,
    /// The filter configuration for every set (default: per set's region).
    pub config: Option<&'a str>,
    /// The filter, the native core, or both.
    pub measured: Measured,
    /// Also each photo as a clip closing in on its plate.
    pub clips: Option<Clips>,
    /// Also the photos changed as other cameras would take them.
    pub variants: bool,
    /// One JSON object rather than tables.
    pub json: bool,
}

/// Runs and prints.
pub fn run(request: &Request<'_>) -> anyhow::Result<ExitCode> {
    let &Request {
        filter,
        data,
        max_size,
        config,
        measured,
        clips,
        variants,
        json,
    } = request;
    crate::media::init()?;
    if clips.is_some() && measured == Measured::Native {
        bail!("--approach runs the filter (it follows plates across frames): drop --native");
    }
    let native = measured == Measured::Native;
    let b = measure(filter, data, max_size, config, native, clips, variants)?;
    let baseline = if measured == Measured::Both {
        Some(measure(filter, data, max_size, config, true, None, false)?)
    } else {
        None
    };
    if json {
        let mut v = serde_json::to_value(&b)?;
        if let Some(n) = &baseline {
            v["native"] = serde_json::to_value(n)?;
            v["wasm_over_native"] = serde_json::to_value(overhead(&b, n))?;
        }
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    print_table(&b);
    if let Some(n) = &baseline {
        print_table(n);
        let ratios = overhead(&b, n)
            .iter()
            .map(|(k, r)| format!("{k} {r:.2}"))
            .collect::<Vec<_>>()
            .join(", ");
        println!("WASM / native time: {ratios}");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(plate: &str) -> Sample {
        Sample {
            image: PathBuf::from("x.jpg"),
            truth: BBox {
                x: 100.0,
                y: 50.0,
                w: 100.0,
                h: 20.0,
            },
            plate: plate.into(),
        }
    }

    fn det(plate: &str, confidence: f64, x: f64) -> Detection {
        Detection {
            plate: plate.into(),
            confidence,
            bbox: BBox {
                x,
                y: 50.0,
                w: 100.0,
                h: 20.0,
            },
        }
    }

    #[test]
    fn labels_name_their_pictures_loosely() {
        let dir = tempfile::tempdir().unwrap();
        let set = dir.path().join("EU");
        std::fs::create_dir(&set).unwrap();
        let write = |name: &str, text: &str| std::fs::write(set.join(name), text).unwrap();
        // A line naming a picture that is not there: the one beside the label, of its name.
        write("b.v2.png", "");
        write("b.v2.txt", "elsewhere/b.jpg\t1\t2\t3\t4\tAB123\n");
        // A name with spaces, a plate with a dash.
        write("car one.jpg", "");
        write("car one.txt", "car one.jpg  10 20.5 30 40  rk-262ah\n");
        // Notes beside the labels are no label.
        write("notes.txt", "taken on 2024-05-01 by camera 3\n");
        let sets = load_sets(dir.path()).unwrap();
        let samples = &sets["EU"];
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].image, set.join("b.v2.png"));
        assert_eq!(samples[0].plate, "AB123");
        let s = &samples[1];
        assert_eq!(
            (s.image.clone(), s.plate.as_str()),
            (set.join("car one.jpg"), "rk-262ah")
        );
        assert_eq!(
            (s.truth.x, s.truth.y, s.truth.w, s.truth.h),
            (10.0, 20.5, 30.0, 40.0)
        );
        // A set named after a region is read for it, whatever its case.
        assert_eq!(config_for(None, "EU"), r#"{"region":"eu"}"#);
        assert_eq!(config_for(None, "parking"), r#"{"region":"auto"}"#);
    }

    #[test]
    fn iou_of_boxes() {
        let a = BBox {
            x: 0.0,
            y: 0.0,
            w: 10.0,
            h: 10.0,
        };
        assert_eq!(a.iou(&a), 1.0);
        let half = BBox { x: 5.0, ..a };
        assert!((a.iou(&half) - 50.0 / 150.0).abs() < 1e-9);
        assert_eq!(a.iou(&BBox { x: 20.0, ..a }), 0.0);
    }

    #[test]
    fn scoring_follows_the_benchmark_rule() {
        let s = sample("RKO26AJ");
        // The most confident matching box decides; O and 0 differ strictly only.
        let r = score(
            &s,
            &[det("RK026AJ", 0.9, 100.0), det("RKO26AJ", 0.5, 105.0)],
        );
        assert_eq!(
            r,
            ImageScore {
                detected: true,
                strict: false,
                lenient: true,
                false_detections: 0
            }
        );
        // A box beside the plate is a false detection, not a read.
        let r = score(&s, &[det("RKO26AJ", 0.9, 400.0)]);
        assert_eq!(
            (r.detected, r.strict, r.false_detections),
            (false, false, 1)
        );
        // Case, spaces and dashes do not count.
        let r = score(&sample("ab-12 cd"), &[det("AB12CD", 0.1, 101.0)]);
        assert!(r.strict);
        assert_eq!(score(&s, &[]), ImageScore::default());
    }

    #[test]
    fn reports_percentages_and_times() {
        let scores = [
            ImageScore {
                detected: true,
                strict: true,
                lenient: true,
                false_detections: 1,
            },
            ImageScore::default(),
        ];
        let r = report(&scores, &[10.0, 20.0, 30.0]);
        assert_eq!((r.images, r.detected_pct, r.strict_pct), (2, 50.0, 50.0));
        assert_eq!(r.fp_per_image, 0.5);
        assert_eq!(r.ms_p50, 20.0);
    }

    #[test]
    fn detections_from_event_payloads() {
        let p = serde_json::json!({"plate": "M5XSX", "confidence": 0.8,
            "box": {"x": 1, "y": 2, "width": 30, "height": 8}, "region": "eu"});
        let d = detection(&p).unwrap();
        assert_eq!(d.plate, "M5XSX");
        assert_eq!(d.bbox.w, 30.0);
        assert!(detection(&serde_json::json!({"plate": "X"})).is_none());
        assert_eq!(parse_size("640x480").unwrap(), (640, 480));
        assert!(parse_size("640").is_err());
    }

    #[test]
    fn loads_labelled_sets() {
        let dir = tempfile::tempdir().unwrap();
        let eu = dir.path().join("eu");
        std::fs::create_dir(&eu).unwrap();
        std::fs::write(eu.join("a.jpg"), "").unwrap();
        std::fs::write(eu.join("a.txt"), "a.jpg\t396\t340\t203\t46\tM5XSX\n").unwrap();
        std::fs::create_dir(dir.path().join("empty")).unwrap();
        let sets = load_sets(dir.path()).unwrap();
        assert_eq!(sets.keys().collect::<Vec<_>>(), ["eu"]);
        let s = &sets["eu"][0];
        assert_eq!(s.plate, "M5XSX");
        assert_eq!(s.truth.w, 203.0);
        assert_eq!(s.image, eu.join("a.jpg"));
        // Windows line ends, a blank line first and a second line: the first label counts.
        std::fs::write(eu.join("c.jpg"), "").unwrap();
        std::fs::write(
            eu.join("c.txt"),
            "\r\nc.jpg 1 2 3 4 AB 12\r\nc.jpg 5 6 7 8 ZZ9\r\n",
        )
        .unwrap();
        let c = &load_sets(dir.path()).unwrap()["eu"][1];
        assert_eq!((c.plate.as_str(), c.truth.x), ("AB12", 1.0));
        // A box that is not four numbers, or no plate after it, is an error that names the
        // label, not an image skipped.
        std::fs::write(eu.join("bad.jpg"), "").unwrap();
        std::fs::write(eu.join("bad.txt"), "bad.jpg 1 2 x 4 P\n").unwrap();
        let err = load_sets(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("bad.txt") && err.contains("NAME X Y W H PLATE"),
            "{err}"
        );
        std::fs::write(eu.join("bad.txt"), "bad.jpg 1 2 3 4\n").unwrap();
        let err = load_sets(dir.path()).unwrap_err().to_string();
        assert!(err.contains("bad.txt") && err.contains("no plate"), "{err}");
        // A label whose picture is nowhere.
        std::fs::remove_file(eu.join("bad.jpg")).unwrap();
        std::fs::write(eu.join("bad.txt"), "gone.jpg 1 2 3 4 P\n").unwrap();
        let err = load_sets(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("bad.txt") && err.contains("no picture"),
            "{err}"
        );
    }
}
