//! `platedetector`: finds and reads licence plates with the host's native plate reader (the
//! `vision` imports), follows each plate across frames, votes per character, and emits one
//! `PlateDetected` event per plate appearance:
//!
//! `{"plate": "M5XSX", "confidence": 0.93, "box": {"x", "y", "width", "height"}, "region": "eu",
//!   "frames": 3}`
//!
//! A plate that may be coming closer (growing, or seen under 0.2 s) whose glyphs are still
//! too small to read well, or that reads only as free text (in none of the region's plate
//! formats: often a glyph lost from afar), waits up to a second to be read larger (reported
//! as it leaves if it goes sooner, or when the stream ends); one reported from afar that lost
//! a glyph (`627WW` for `627WWI`) is corrected when more readings of it, closer, clearly
//! favour another text: one more event gives that text with `"corrects": "627WW"`, at most
//! once per text an appearance was reported as.
//!
//! It draws the plate's box and text on the picture (`overlay`). A reading joins the nearest
//! track, in place and time, less than a box away, one reading per track; a confident reading
//! of a far different text where a reported plate was starts a new track (a part of the
//! plate's text, or the text with look-alikes, is not far different: [`part_distance`]), and
//! so does any reading of another size or text where a plate was last seen half a second ago
//! or more (the next car of a queue); a text is not reported again until [`REPEAT_US`] after
//! it was last seen.
//!
//! Configuration (every key optional):
//! `{"region": "auto|eu|us|br", "plate_width_pct": 0, "min_confidence": 0.5, "overlay": true,
//!   "detect_every": 1, "thorough_every": 2, "confirm_frames": 2, "corrections": true}`
//! * `plate_width_pct`: expected plate width as a percentage of the frame width (Kurento's
//!   `setPlateWidthPercentage`), 0 = any size;
//! * `detect_every`: run detection on one frame in N (tracks carry the boxes in between);
//! * `thorough_every`: of the detections, one in N is thorough (where nothing reads well the
//!   host searches again for fainter ink, which doubles the time of a frame with no plate),
//!   the others quick; a plate found only by the thorough search is read every Nth
//!   detection, which is enough to follow and vote on it, and 1 makes every search thorough;
//! * `confirm_frames`: readings of a plate needed before it is reported;
//! * `corrections`: whether a reported plate may be corrected (`false`: strictly one event per
//!   appearance, the first reading);
//! * `min_confidence`: how sure a plate must be to be reported (its readings' mean confidence
//!   times how far they agree); readings under 0.25 never vote, so a threshold under 0.25
//!   acts as 0.25.

use std::collections::BTreeMap;

use prism_filter_sdk::vision::{self, PlateOptions, PlateRead, Region, Search};
use prism_filter_sdk::{
    Color, Filter, FilterInfo, Frame, PixelFormat, Rect, Result, emit, export_filter, parse_config,
    text_size,
};
use serde::{Deserialize, Serialize};

/// A track not seen for this long (stream time) has left the picture.
const TRACK_TIMEOUT_US: u64 = 1_500_000;
/// The same text reported again within this time is the same appearance.
const REPEAT_US: u64 = 5_000_000;
/// Tracks followed at once.
const MAX_TRACKS: usize = 16;
/// Readings below this confidence do not vote.
const VOTE_FLOOR: f32 = 0.25;
/// A reading this confident of a text far from a reported plate's, where that plate was, is
/// another plate.
const DIFFERENT_PLATE: f32 = 0.5;
/// Glyphs this tall (pixels) are read about as well as they can be.
const LEGIBLE_GLYPH: u32 = 12;
/// How long a plate whose glyphs are smaller, or that reads as free text, waits while it may
/// be coming closer before it is reported.
const SMALL_WAIT_US: u64 = 1_000_000;
/// A plate whose box is this many times as wide as when it was first seen is growing.
const GROWING: f32 = 1.03;
/// How long a new plate is taken for one that may be coming closer, before its growth tells
/// (a box's width varies by a few percent from frame to frame).
const SETTLE_US: u64 = 200_000;
/// How many times more the readings must favour a text over the one reported to correct it.
const CORRECTION_MARGIN: f32 = 2.0;
/// A track not seen for this long (stream time), and for two detections at least, may have
/// left: a reading where it was is its plate only if about as large and, once reported, read
/// much as reported ([`Track::distance_to`]).
const STALE_US: u64 = 500_000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    region: Region,
    plate_width_pct: f32,
    min_confidence: f32,
    overlay: bool,
    detect_every: u32,
    thorough_every: u32,
    confirm_frames: u32,
    corrections: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            region: Region::Auto,
            plate_width_pct: 0.0,
            min_confidence: 0.5,
            overlay: true,
            detect_every: 1,
            thorough_every: 2,
            confirm_frames: 2,
            corrections: true,
        }
    }
}

impl Config {
    fn check(&self) -> Result<()> {
        let bad = |m: String| {
            Err(prism_filter_sdk::Error(format!(
                "invalid configuration: {m}"
            )))
        };
        if !(0.0..=100.0).contains(&self.plate_width_pct) {
            return bad(format!(
                "plate_width_pct {} is not 0..100",
                self.plate_width_pct
            ));
        }
        if !(0.0..=1.0).contains(&self.min_confidence) {
            return bad(format!(
                "min_confidence {} is not 0..1",
                self.min_confidence
            ));
        }
        if self.detect_every == 0 || self.detect_every > 30 {
            return bad(format!("detect_every {} is not 1..30", self.detect_every));
        }
        if self.thorough_every == 0 || self.thorough_every > 30 {
            return bad(format!(
                "thorough_every {} is not 1..30",
                self.thorough_every
            ));
        }
        if self.confirm_frames == 0 || self.confirm_frames > 30 {
            return bad(format!(
                "confirm_frames {} is not 1..30",
                self.confirm_frames
            ));
        }
        Ok(())
    }
}

/// A plate followed across frames.
#[derive(Debug, Clone)]
struct Track {
    bounds: Rect,
    region: Region,
    /// Per text length, per position: symbol -> summed confidence of every ranked guess.
    votes: BTreeMap<usize, Vec<BTreeMap<char, f32>>>,
    /// Per text length, per position: symbol -> summed confidence of the readings that read
    /// it (how far the frames agree).
    tops: BTreeMap<usize, Vec<BTreeMap<char, f32>>>,
    /// Per text length: (summed reading confidence, readings).
    lengths: BTreeMap<usize, (f32, u32)>,
    /// Per text length: readings that followed one of the region's plate formats.
    formatted: BTreeMap<usize, u32>,
    /// Readings that voted.
    hits: u32,
    confidence_sum: f32,
    last_seen_us: u64,
    /// When the track began, and its first box's width.
    since_us: u64,
    first_width: u32,
    /// The last reading's median glyph height, pixels, and whether any reading's glyphs were
    /// [`LEGIBLE_GLYPH`].
    glyph_height: u32,
    legible: bool,
    /// The text last reported for this plate.
    reported: Option<String>,
    /// Every text reported for this plate, and how sure the last one was.
    said: Vec<String>,
    sureness: f32,
}

impl Track {
    fn new(read: &PlateRead, now: u64) -> Track {
        let mut t = Track {
            bounds: read.bounds,
            region: read.region,
            votes: BTreeMap::new(),
            tops: BTreeMap::new(),
            lengths: BTreeMap::new(),
            formatted: BTreeMap::new(),
            hits: 0,
            confidence_sum: 0.0,
            last_seen_us: now,
            since_us: now,
            first_width: read.bounds.width,
            glyph_height: 0,
            legible: false,
            reported: None,
            said: Vec::new(),
            sureness: 0.0,
        };
        t.vote(read, now);
        t
    }

    /// Whether the plate is growing (coming closer): its box wider than when first seen.
    fn growing(&self) -> bool {
        self.bounds.width as f32 > GROWING * self.first_width as f32
    }

    /// Whether the plate may be coming closer: growing, or seen too briefly to tell.
    fn may_grow(&self, now: u64) -> bool {
        self.growing() || now.saturating_sub(self.since_us) < SETTLE_US
    }

    fn vote(&mut self, read: &PlateRead, now: u64) {
        self.bounds = read.bounds;
        self.last_seen_us = now;
        let mut heights: Vec<u32> = read.chars.iter().map(|c| c.bounds.height).collect();
        heights.sort_unstable();
        self.glyph_height = heights
            .get(heights.len() / 2)
            .copied()
            .unwrap_or(LEGIBLE_GLYPH);
        if read.confidence < VOTE_FLOOR {
            return;
        }
        // A plate coming closer that waited unreported for its glyphs to grow legible is
        // read afresh from then on: its small glyphs were often misread.
        let legible = self.glyph_height >= LEGIBLE_GLYPH;
        if legible && !self.legible && self.reported.is_none() && self.growing() {
            self.votes.clear();
            self.tops.clear();
            self.lengths.clear();
            self.formatted.clear();
            (self.hits, self.confidence_sum) = (0, 0.0);
        }
        self.legible |= legible;
        self.hits += 1;
        self.confidence_sum += read.confidence;
        self.region = read.region;
        let n = read.text.chars().count();
        let length = self.lengths.entry(n).or_insert((0.0, 0));
        length.0 += read.confidence;
        length.1 += 1;
        if !read.format.is_empty() {
            *self.formatted.entry(n).or_insert(0) += 1;
        }
        let slots = self
            .votes
            .entry(n)
            .or_insert_with(|| vec![BTreeMap::new(); n]);
        for (slot, c) in slots.iter_mut().zip(&read.chars) {
            // Every ranked guess votes with its own confidence, weighted by the reading's.
            for &(symbol, p) in &c.guesses {
                *slot.entry(symbol).or_insert(0.0) += p * read.confidence;
            }
        }
        // Readings without per-glyph guesses vote with their text.
        if read.chars.len() != n {
            for (slot, symbol) in slots.iter_mut().zip(read.text.chars()) {
                *slot.entry(symbol).or_insert(0.0) += read.confidence;
            }
        }
        let tops = self
            .tops
            .entry(n)
            .or_insert_with(|| vec![BTreeMap::new(); n]);
        for (slot, symbol) in tops.iter_mut().zip(read.text.chars()) {
            *slot.entry(symbol).or_insert(0.0) += read.confidence;
        }
    }

    /// The text the votes agree on, how sure it is (0..1: the readings' mean confidence times
    /// the share of them that read each of its symbols), and how many readings had its length.
    /// The length is chosen by the readings' summed confidence (a longer misreading, with a
    /// stray glyph, does not outweigh shorter ones for having more glyphs), then each position
    /// by its votes.
    fn consensus(&self) -> Option<(String, f32, u32)> {
        let (n, readings) = self.agreed_length()?;
        let slots = self.votes.get(&n)?;
        let tops = self.tops.get(&n)?;
        let mut text = String::new();
        let mut agreement = 0.0;
        for (slot, top) in slots.iter().zip(tops) {
            let (&c, _) = slot.iter().max_by(|a, b| a.1.total_cmp(b.1))?;
            text.push(c);
            let total: f32 = top.values().sum();
            agreement += top.get(&c).copied().unwrap_or(0.0) / total.max(1e-6);
        }
        let agreement = agreement / slots.len().max(1) as f32;
        let mean = self.confidence_sum / self.hits.max(1) as f32;
        Some((text, (agreement * mean).clamp(0.0, 1.0), readings))
    }

    /// Whether the length the readings agree on was read mostly as free text, in none of the
    /// region's plate formats: often a plate read in part from afar (`M633BD` for `LM633BD`).
    fn free_text(&self) -> bool {
        self.agreed_length().is_some_and(|(n, readings)| {
            2 * self.formatted.get(&n).copied().unwrap_or(0) <= readings
        })
    }

    /// The text length of the most summed reading confidence, and how many readings had it.
    fn agreed_length(&self) -> Option<(usize, u32)> {
        let (&n, &(_, readings)) = self.lengths.iter().max_by(|a, b| a.1.0.total_cmp(&b.1.0))?;
        Some((n, readings))
    }

    /// Whether the readings favour `new` over `old` by [`CORRECTION_MARGIN`]: readings of its
    /// length over readings of the other's, or, as long, readings of each symbol where they
    /// differ (a glyph the frames read either way, an `8` or a `0`, corrects nothing).
    fn outvotes(&self, new: &str, old: &str) -> bool {
        let (n, o) = (new.chars().count(), old.chars().count());
        if n != o {
            let sum = |len| self.lengths.get(&len).map_or(0.0, |l| l.0);
            return sum(n) >= CORRECTION_MARGIN * sum(o);
        }
        let Some(tops) = self.tops.get(&n) else {
            return false;
        };
        let read = |top: &BTreeMap<char, f32>, c| top.get(&c).copied().unwrap_or(0.0);
        new.chars()
            .zip(old.chars())
            .zip(tops)
            .filter(|((a, b), _)| a != b)
            .all(|((a, b), top)| read(top, a) >= CORRECTION_MARGIN * read(top, b))
    }
}

#[derive(Serialize)]
struct BoxJson {
    x: u32,
    y: u32,
    width: u32,
    height: u32,
}

#[derive(Serialize)]
struct PlateDetected<'a> {
    plate: &'a str,
    confidence: f32,
    #[serde(rename = "box")]
    bounds: BoxJson,
    region: &'a str,
    frames: u32,
    /// The text this plate was reported as before, when this event corrects it.
    #[serde(skip_serializing_if = "Option::is_none")]
    corrects: Option<&'a str>,
}

/// The filter and its state.
#[derive(Default)]
pub struct PlateDetector {
    config: Config,
    tracks: Vec<Track>,
    /// Tracks that ended unreported since the last report.
    leaving: Vec<Track>,
    /// Texts reported recently, with when.
    recent: Vec<(String, u64)>,
    frames: u64,
    /// The last frame's time.
    last_us: u64,
    /// The last detection's time.
    last_detection_us: Option<u64>,
}

fn overlap(a: &Rect, b: &Rect) -> f32 {
    let ix = (a.x + a.width)
        .min(b.x + b.width)
        .saturating_sub(a.x.max(b.x));
    let iy = (a.y + a.height)
        .min(b.y + b.height)
        .saturating_sub(a.y.max(b.y));
    let inter = (ix as u64 * iy as u64) as f32;
    let union = (a.area() + b.area()) as f32 - inter;
    inter / union.max(1.0)
}

fn centre(r: &Rect) -> (f32, f32) {
    (
        r.x as f32 + r.width as f32 / 2.0,
        r.y as f32 + r.height as f32 / 2.0,
    )
}

/// Symbols a small or blurred glyph is read as for one another.
const LOOK_ALIKES: [&str; 6] = ["0ODQ", "1IJLT", "8B", "5S", "2Z", "6G"];

fn look_alike(a: char, b: char) -> bool {
    a == b || LOOK_ALIKES.iter().any(|g| g.contains(a) && g.contains(b))
}

/// Edits (insertions, deletions, substitutions of other than a look-alike) from the shorter
/// of `a` and `b` to the part of the longer it matches best: a plate read in part (a glyph
/// lost at either end, a stray one added) or from afar (`WO53QII` for `WQ53011`) is a few
/// edits from the whole plate, another plate about as many as its glyphs.
fn part_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    // Row `i`: the edits from `short[..i]` to the best part of `long` ending at each place;
    // a part may start anywhere (row 0 all zeros) and end anywhere (the last row's least).
    let mut row = vec![0; long.len() + 1];
    for (i, &cs) in short.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cl) in long.iter().enumerate() {
            let substituted = diagonal + usize::from(!look_alike(cs, cl));
            diagonal = row[j + 1];
            row[j + 1] = substituted.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row.into_iter().min().unwrap_or(0)
}

impl Track {
    /// How long ago the track was last seen, as a share of [`TRACK_TIMEOUT_US`]: of two
    /// tracks where a reading is, the one seen more recently takes it.
    fn staleness(&self, now: u64) -> f32 {
        now.saturating_sub(self.last_seen_us) as f32 / TRACK_TIMEOUT_US as f32
    }

    /// How far `read` is from where the track was last seen, in box sizes, if it can be the
    /// same plate: boxes that overlap, or of about the same size less than a box apart (a car
    /// moves between detections, more so with `detect_every`), and not a confident reading of
    /// another text where a reported plate was. A track last seen before `stale_before` (see
    /// [`STALE_US`]) takes only a reading of about its size and, if reported, of its text
    /// but for a glyph: the next car of a queue, stopping where the last one did, shows a
    /// smaller plate first and one often of the same town, a few glyphs apart.
    fn distance_to(&self, read: &PlateRead, stale_before: u64) -> Option<f32> {
        let (a, b) = (&self.bounds, &read.bounds);
        let (w, h) = (
            a.width.max(b.width).max(1) as f32,
            a.height.max(b.height).max(1) as f32,
        );
        let similar = a.width.min(b.width) as f32 * 2.0 >= w;
        let ((ax, ay), (bx, by)) = (centre(a), centre(b));
        let (dx, dy) = ((ax - bx).abs() / w, (ay - by).abs() / h);
        let near = overlap(a, b) > 0.2 || similar && dx <= 1.0 && dy <= 1.0;
        let other = self.reported.as_ref().is_some_and(|r| {
            let shorter = r.chars().count().min(read.text.chars().count());
            read.confidence >= DIFFERENT_PLATE && 2 * part_distance(r, &read.text) > shorter
        });
        let gone = self.last_seen_us < stale_before
            && (!similar
                || self
                    .reported
                    .as_ref()
                    .is_some_and(|r| part_distance(r, &read.text) > 1));
        (near && !other && !gone).then_some(dx + dy)
    }
}

/// Reports `t` (or corrects it, see [`PlateDetector::report`]) if its readings agree well
/// enough, unless its text was reported recently.
fn announce(
    t: &mut Track,
    config: &Config,
    recent: &mut Vec<(String, u64)>,
    now: u64,
) -> Result<()> {
    let confirm = config.confirm_frames;
    if t.hits < confirm {
        return Ok(());
    }
    let Some((text, confidence, readings)) = t.consensus() else {
        return Ok(());
    };
    if confidence < config.min_confidence || readings < confirm {
        return Ok(());
    }
    let corrects = match &t.reported {
        None => None,
        Some(before)
            if !config.corrections
                || t.said.contains(&text)
                || text.len() < before.len()
                || confidence < t.sureness
                || !t.outvotes(&text, before) =>
        {
            return Ok(());
        }
        Some(before) => Some(before.clone()),
    };
    if !recent.iter().any(|(r, _)| *r == text) {
        // Marked reported once the event is out: a refused event is tried again.
        emit(
            "PlateDetected",
            &PlateDetected {
                plate: &text,
                confidence,
                bounds: BoxJson {
                    x: t.bounds.x,
                    y: t.bounds.y,
                    width: t.bounds.width,
                    height: t.bounds.height,
                },
                region: t.region.name(),
                frames: t.hits,
                corrects: corrects.as_deref(),
            },
        )?;
        recent.push((text.clone(), now));
    }
    t.said.push(text.clone());
    t.reported = Some(text);
    t.sureness = confidence;
    Ok(())
}

impl PlateDetector {
    /// Gives each reading to the nearest track, in place and time ([`Track::staleness`]), that
    /// can be its plate (one reading per track, the most confident readings choosing first),
    /// or to a new track; a new track beyond [`MAX_TRACKS`] replaces the one seen least
    /// recently.
    fn update(&mut self, reads: &[PlateRead], now: u64) {
        let interval = self
            .last_detection_us
            .map_or(0, |before| now.saturating_sub(before));
        self.last_detection_us = Some(now);
        let stale_before = now.saturating_sub(STALE_US.max(2 * interval));
        // Plates that left before they were reported (a small plate waiting to come closer)
        // are reported as they go.
        let (gone, kept): (Vec<Track>, Vec<Track>) = std::mem::take(&mut self.tracks)
            .into_iter()
            .partition(|t| now.saturating_sub(t.last_seen_us) > TRACK_TIMEOUT_US);
        self.tracks = kept;
        self.leaving
            .extend(gone.into_iter().filter(|t| t.reported.is_none()));
        let mut order: Vec<&PlateRead> = reads.iter().collect();
        order.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
        let mut taken = vec![false; self.tracks.len()];
        let mut fresh = Vec::new();
        for read in order {
            let nearest = self
                .tracks
                .iter()
                .enumerate()
                .filter(|(i, _)| !taken[*i])
                .filter_map(|(i, t)| {
                    Some((t.distance_to(read, stale_before)? + t.staleness(now), i))
                })
                .min_by(|a, b| a.0.total_cmp(&b.0));
            match nearest {
                Some((_, i)) => {
                    taken[i] = true;
                    self.tracks[i].vote(read, now);
                }
                None => fresh.push(Track::new(read, now)),
            }
        }
        for track in fresh {
            if self.tracks.len() >= MAX_TRACKS
                && let Some(oldest) =
                    (0..self.tracks.len()).min_by_key(|&i| self.tracks[i].last_seen_us)
            {
                let stale = self.tracks.remove(oldest);
                if stale.reported.is_none() {
                    self.leaving.push(stale);
                }
            }
            self.tracks.push(track);
        }
        // A reported plate still in view is the same appearance for as long as it stays.
        for t in self.tracks.iter().filter(|t| t.last_seen_us == now) {
            if let Some(text) = &t.reported
                && let Some(seen) = self.recent.iter_mut().find(|(r, _)| r == text)
            {
                seen.1 = now;
            }
        }
        self.recent
            .retain(|(_, at)| now.saturating_sub(*at) <= REPEAT_US);
    }

    /// Reports each plate whose readings agree well enough (a plate whose glyphs are under
    /// [`LEGIBLE_GLYPH`] or that reads as free text ([`Track::free_text`]), and that may be
    /// coming closer ([`Track::may_grow`]), first waits up to [`SMALL_WAIT_US`] to be read
    /// larger; one that leaves meanwhile is reported as it goes), and corrects a
    /// reported plate whose readings have come to agree on another text, no shorter, surer
    /// and clearly favoured ([`Track::outvotes`]): a glyph lost or misread while the plate was
    /// small, read once it came closer (a shorter text is a plate read in part, as it leaves
    /// or in poor light).
    fn report(&mut self, now: u64) -> Result<()> {
        for t in &mut self.tracks {
            let waiting = t.reported.is_none()
                && (t.glyph_height < LEGIBLE_GLYPH || t.free_text())
                && t.may_grow(now)
                && now.saturating_sub(t.since_us) < SMALL_WAIT_US;
            if !waiting {
                announce(t, &self.config, &mut self.recent, now)?;
            }
        }
        for mut t in std::mem::take(&mut self.leaving) {
            announce(&mut t, &self.config, &mut self.recent, now)?;
        }
        Ok(())
    }

    fn draw(&self, frame: &mut Frame<'_>) {
        const GREEN: Color = Color::rgb(40, 230, 90);
        const AMBER: Color = Color::rgb(255, 190, 40);
        for t in &self.tracks {
            let (text, colour) = match &t.reported {
                Some(text) => (text.clone(), GREEN),
                None => (String::new(), AMBER),
            };
            let thickness = (t.bounds.height / 12).clamp(2, 6);
            frame.draw_rect(t.bounds, colour, thickness);
            if text.is_empty() {
                continue;
            }
            let scale = (t.bounds.height / 16).clamp(2, 6);
            let (tw, th) = text_size(&text, scale);
            let y = t.bounds.y.saturating_sub(th + 6);
            let label = Rect::new(t.bounds.x, y, tw + 6, th + 6);
            frame.fill_rect(
                label,
                Color {
                    a: 200,
                    ..Color::rgb(0, 0, 0)
                },
            );
            frame.draw_text(&text, t.bounds.x + 3, y + 3, scale, colour);
        }
    }
}

impl Filter for PlateDetector {
    fn describe() -> FilterInfo {
        FilterInfo::new("platedetector", "1.0.0", PixelFormat::I420)
            .description("Reads licence plates (native plate reader), emits PlateDetected once per plate and draws them.")
            .parameters_schema(
                r#"{"type":"object","additionalProperties":false,"properties":{
"region":{"enum":["auto","eu","us","br"]},
"plate_width_pct":{"type":"number","minimum":0,"maximum":100},
"min_confidence":{"type":"number","minimum":0,"maximum":1},
"overlay":{"type":"boolean"},
"detect_every":{"type":"integer","minimum":1,"maximum":30},
"thorough_every":{"type":"integer","minimum":1,"maximum":30},
"confirm_frames":{"type":"integer","minimum":1,"maximum":30},
"corrections":{"type":"boolean"}}}"#,
            )
    }

    fn configure(&mut self, config_json: &str) -> Result<()> {
        let config: Config = parse_config(config_json)?;
        config.check()?;
        self.config = config;
        Ok(())
    }

    fn process(&mut self, frame: &mut Frame<'_>) -> Result<()> {
        let now = frame.pts_us();
        // Time going back is a new stream (a looped or restarted source): what was in view
        // and what was reported belong to the old one.
        if now < self.last_us {
            self.tracks.clear();
            self.leaving.clear();
            self.recent.clear();
            self.last_detection_us = None;
        }
        self.last_us = now;
        let every = u64::from(self.config.detect_every);
        if self.frames.is_multiple_of(every) {
            let thorough =
                (self.frames / every).is_multiple_of(u64::from(self.config.thorough_every));
            let opts = PlateOptions {
                region: self.config.region,
                plate_width_pct: self.config.plate_width_pct,
                area: None,
                max_results: 4,
                search: if thorough {
                    Search::Thorough
                } else {
                    Search::Quick
                },
            };
            let reads = vision::detect_plates(frame, &opts);
            self.update(&reads, now);
            self.report(now)?;
        }
        self.frames += 1;
        if self.config.overlay {
            self.draw(frame);
        }
        Ok(())
    }

    /// Nothing more will come: a plate still waiting to be read larger is reported as it is
    /// (and a reported one corrected if its readings say so), then everything is forgotten:
    /// the next stream's plates are new appearances.
    fn end_of_stream(&mut self) -> Result<()> {
        let now = self.last_us;
        let mut result = Ok(());
        for t in self.tracks.iter_mut().chain(&mut self.leaving) {
            let announced = announce(t, &self.config, &mut self.recent, now);
            result = result.and(announced);
        }
        *self = PlateDetector {
            config: std::mem::take(&mut self.config),
            ..PlateDetector::default()
        };
        result
    }
}

export_filter!(PlateDetector);

#[cfg(test)]
mod tests {
    use super::*;
    use prism_filter_sdk::vision::CharRead;

    /// A reading of `text` in the plate format of its shape.
    fn read(text: &str, confidence: f32, x: u32) -> PlateRead {
        PlateRead {
            text: text.into(),
            confidence,
            region: Region::Eu,
            format: text
                .chars()
                .map(|c| if c.is_ascii_digit() { 'N' } else { 'L' })
                .collect(),
            bounds: Rect::new(x, 100, 120, 30),
            chars: text
                .chars()
                .map(|c| CharRead {
                    bounds: Rect::new(x, 100, 10, 20),
                    guesses: vec![(c, confidence)],
                })
                .collect(),
            alternatives: Vec::new(),
        }
    }

    #[test]
    fn votes_settle_a_misread_glyph() {
        let mut t = Track::new(&read("AB123", 0.9, 10), 0);
        t.vote(&read("A8123", 0.6, 12), 33_000);
        t.vote(&read("AB123", 0.8, 14), 66_000);
        let (text, conf, readings) = t.consensus().unwrap();
        assert_eq!(text, "AB123");
        assert_eq!(readings, 3);
        assert!(conf > 0.5 && conf < 0.9, "{conf}");
        assert_eq!(t.hits, 3);
        assert_eq!(t.bounds.x, 14);
    }

    #[test]
    fn readings_that_agree_keep_their_confidence() {
        // Every reading at 0.55 with one glyph nearly a tie (0 or O): the frames agree, so the
        // plate is as sure as its readings and passes a 0.5 threshold.
        let mut r = read("AB10CDE", 0.55, 10);
        r.chars[3].guesses = vec![('0', 0.5), ('O', 0.45)];
        let mut f = PlateDetector::default();
        run(&mut f, 0, &[vec![r.clone()], vec![r]]);
        let (text, conf, _) = f.tracks[0].consensus().unwrap();
        assert_eq!(text, "AB10CDE");
        assert!((conf - 0.55).abs() < 1e-6, "{conf}");
        assert_eq!(f.tracks[0].reported.as_deref(), Some("AB10CDE"));
    }

    #[test]
    fn a_longer_misreading_does_not_outweigh_the_plate() {
        let mut t = Track::new(&read("M5XSX", 0.8, 10), 0);
        t.vote(&read("BM5DXSX", 0.7, 10), 33_000);
        t.vote(&read("M5XSX", 0.8, 10), 66_000);
        assert_eq!(t.consensus().unwrap().0, "M5XSX");
    }

    #[test]
    fn one_event_per_appearance() {
        let mut f = PlateDetector::default();
        for i in 0..10u64 {
            f.update(&[read("M5XSX", 0.9, 10 + i as u32)], i * 33_000);
            f.report(i * 33_000).unwrap();
        }
        assert_eq!(f.tracks.len(), 1);
        assert_eq!(f.tracks[0].reported.as_deref(), Some("M5XSX"));
        // Leaves for longer than the timeout, comes back: a new appearance, but the same
        // text within the repeat window is not announced twice.
        f.update(&[], 3_000_000);
        assert!(f.tracks.is_empty());
        f.update(&[read("M5XSX", 0.9, 300)], 3_100_000);
        f.update(&[read("M5XSX", 0.9, 300)], 3_133_000);
        f.report(3_133_000).unwrap();
        assert_eq!(f.recent.len(), 1);
    }

    #[test]
    fn a_glyph_lost_far_away_is_corrected_once_the_plate_is_near() {
        use prism_filter_sdk::testing::Harness;
        let mut h = Harness::<PlateDetector>::new();
        // Three readings while the plate is small lose its last glyph; closer, it reads whole.
        let mut frames = vec![vec![read("627WW", 0.9, 10)]; 3];
        frames.extend(vec![vec![read("627WWI", 0.95, 10)]; 8]);
        run(h.filter(), 0, &frames);
        let events = h.take_events();
        let plates: Vec<_> = events
            .iter()
            .map(|(_, e)| (e["plate"].as_str(), e["corrects"].as_str()))
            .collect();
        assert_eq!(
            plates,
            [(Some("627WW"), None), (Some("627WWI"), Some("627WW"))]
        );
        assert_eq!(h.filter().tracks[0].reported.as_deref(), Some("627WWI"));
        // Readings of the far text again (the car driving off) do not report it again.
        run(h.filter(), 400_000, &vec![vec![read("627WW", 0.9, 10)]; 8]);
        assert_eq!(h.filter().tracks[0].consensus().unwrap().0, "627WW");
        assert!(h.take_events().is_empty());
        // Without corrections, the first reading stands.
        let mut h = Harness::<PlateDetector>::new();
        h.configure(r#"{"corrections": false}"#).unwrap();
        run(h.filter(), 0, &frames);
        let events = h.take_events();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].1["plate"], "627WW");
    }

    #[test]
    fn a_glyph_read_either_way_corrects_nothing() {
        use prism_filter_sdk::testing::Harness;
        let mut h = Harness::<PlateDetector>::new();
        // An `8` the frames read as a `0` as often as not.
        let frames: Vec<Vec<PlateRead>> = (0..12)
            .map(|i| vec![read(["PUT6858", "PUT6850"][i % 2], 0.85, 10)])
            .collect();
        run(h.filter(), 0, &frames);
        assert_eq!(h.take_events().len(), 1);
        // Read one way from then on, it is corrected.
        run(
            h.filter(),
            400_000,
            &vec![vec![read("PUT6850", 0.9, 10)]; 10],
        );
        let events = h.take_events();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].1["plate"], "PUT6850");
    }

    /// `read` of a plate `width` pixels wide with glyphs `glyph` pixels tall.
    fn sized(text: &str, confidence: f32, width: u32, glyph: u32) -> PlateRead {
        let mut r = read(text, confidence, 10);
        r.bounds.width = width;
        for c in &mut r.chars {
            c.bounds.height = glyph;
        }
        r
    }

    #[test]
    fn a_small_plate_coming_closer_waits_to_be_read_larger() {
        use prism_filter_sdk::testing::Harness;
        let mut h = Harness::<PlateDetector>::new();
        // Growing from 40 px with 8 px glyphs, read without its last glyph, until its glyphs
        // are 12 px tall (frame 8) and read whole.
        let frames: Vec<Vec<PlateRead>> = (0..12u32)
            .map(|i| match 8 + i / 2 {
                g if g < LEGIBLE_GLYPH => vec![sized("627WW", 0.9, 40 + 3 * i, g)],
                g => vec![sized("627WWI", 0.9, 40 + 3 * i, g)],
            })
            .collect();
        run(h.filter(), 0, &frames);
        let events = h.take_events();
        let plates: Vec<_> = events.iter().map(|(_, e)| e["plate"].clone()).collect();
        assert_eq!(plates, ["627WWI"], "{events:?}");
    }

    #[test]
    fn a_plate_read_in_part_while_coming_closer_waits_to_be_read_in_its_format() {
        use prism_filter_sdk::testing::Harness;
        let growing = |i: u32, mut r: PlateRead| {
            r.bounds.width = 60 + 5 * i;
            vec![r]
        };
        let free = |text: &str| PlateRead {
            format: String::new(),
            ..read(text, 0.9, 10)
        };
        // Legible glyphs, a glyph lost for the first frames (free text), then read whole in
        // one of the region's formats.
        let mut h = Harness::<PlateDetector>::new();
        let frames: Vec<Vec<PlateRead>> = (0..12)
            .map(|i| match i {
                0..4 => growing(i, free("M633BD")),
                _ => growing(i, read("LM633BD", 0.9, 10)),
            })
            .collect();
        run(h.filter(), 0, &frames);
        let events = h.take_events();
        let plates: Vec<_> = events.iter().map(|(_, e)| e["plate"].clone()).collect();
        assert_eq!(plates, ["LM633BD"], "{events:?}");
        // Free text for good (a vanity plate): reported once a second has passed.
        let mut h = Harness::<PlateDetector>::new();
        let frames: Vec<Vec<PlateRead>> = (0..34).map(|i| growing(i, free("JOHN1"))).collect();
        run(h.filter(), 0, &frames[..30]);
        assert!(h.take_events().is_empty());
        run(h.filter(), 30 * 33_000, &frames[30..]);
        let events = h.take_events();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].1["plate"], "JOHN1");
    }

    #[test]
    fn a_small_plate_that_stays_leaves_or_ends_is_reported() {
        use prism_filter_sdk::testing::Harness;
        // The same size frame after frame (a parked car): reported once it is clearly not
        // coming closer.
        let mut h = Harness::<PlateDetector>::new();
        let still = vec![vec![sized("AB123", 0.9, 40, 8)]; 8];
        run(h.filter(), 0, &still[..6]);
        assert!(h.take_events().is_empty());
        run(h.filter(), 6 * 33_000, &still[6..]);
        assert_eq!(h.take_events().len(), 1);
        // Growing, then gone before its glyphs grew legible or a second passed: reported
        // when its track ends.
        let mut h = Harness::<PlateDetector>::new();
        let frames: Vec<Vec<PlateRead>> = (0..5)
            .map(|i| vec![sized("XY789", 0.9, 40 + 3 * i, 8)])
            .collect();
        run(h.filter(), 0, &frames);
        assert!(h.take_events().is_empty());
        run(h.filter(), 2_000_000, &[vec![]]);
        let events = h.take_events();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].1["plate"], "XY789");
        // That stream ends with nothing pending: quietly.
        h.end_of_stream().unwrap();
        assert!(h.take_events().is_empty());
        // Growing when the next stream ends: reported at the end.
        run(h.filter(), 0, &frames);
        assert!(h.take_events().is_empty());
        h.end_of_stream().unwrap();
        let events = h.take_events();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].1["plate"], "XY789");
        assert!(h.filter().tracks.is_empty());
        // The stream after is new: the same plate in it is another appearance.
        run(h.filter(), 0, &vec![vec![sized("XY789", 0.9, 40, 8)]; 8]);
        assert_eq!(h.take_events().len(), 1);
    }

    /// Feeds `reads` per detection, 33 ms apart from `start_us`, reporting after each.
    fn run(f: &mut PlateDetector, start_us: u64, frames: &[Vec<PlateRead>]) {
        for (i, reads) in frames.iter().enumerate() {
            let now = start_us + i as u64 * 33_000;
            f.update(reads, now);
            f.report(now).unwrap();
        }
    }

    #[test]
    fn a_plate_moving_fast_between_detections_stays_one_track() {
        // 90 px a detection for a 120 px box: the boxes overlap by less than a fifth.
        let mut f = PlateDetector::default();
        let frames: Vec<Vec<PlateRead>> = (0..6)
            .map(|i| vec![read("M5XSX", 0.9, 10 + 90 * i)])
            .collect();
        run(&mut f, 0, &frames);
        assert_eq!(f.tracks.len(), 1);
        assert_eq!(f.tracks[0].hits, 6);
        assert_eq!(f.recent.len(), 1);
    }

    #[test]
    fn two_plates_side_by_side_keep_their_tracks() {
        let mut f = PlateDetector::default();
        let frames: Vec<Vec<PlateRead>> = (0..4)
            .map(|i| {
                vec![
                    read("AB123", 0.9, 10 + 4 * i),
                    read("XY789", 0.8, 140 + 4 * i),
                ]
            })
            .collect();
        run(&mut f, 0, &frames);
        let mut reported: Vec<_> = f.tracks.iter().filter_map(|t| t.reported.clone()).collect();
        reported.sort();
        assert_eq!(reported, ["AB123", "XY789"]);
    }

    #[test]
    fn another_plate_where_a_reported_one_was_is_reported_too() {
        let mut f = PlateDetector::default();
        run(
            &mut f,
            0,
            &[vec![read("AB123", 0.9, 10)], vec![read("AB123", 0.9, 10)]],
        );
        // The next car of a queue, read where the first one stopped.
        run(
            &mut f,
            100_000,
            &[vec![read("XY789", 0.9, 12)], vec![read("XY789", 0.9, 12)]],
        );
        let texts: Vec<_> = f.recent.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(texts, ["AB123", "XY789"]);
        // A misread glyph of the same plate is the same plate, and so is part of it (a glyph
        // lost at an end, one misread).
        let before = f.tracks.len();
        run(&mut f, 200_000, &[vec![read("XY780", 0.9, 12)]]);
        run(&mut f, 250_000, &[vec![read("Y78", 0.9, 12)]]);
        assert_eq!(f.tracks.len(), before);
        assert_eq!(f.recent.len(), 2);
    }

    #[test]
    fn the_next_car_driving_up_where_the_last_one_stood_is_its_own_plate() {
        use prism_filter_sdk::testing::Harness;
        let mut h = Harness::<PlateDetector>::new();
        let placed = |text: &str, confidence: f32, bounds: Rect| PlateRead {
            bounds,
            ..read(text, confidence, bounds.x)
        };
        // A car stands a second, its plate 120 px wide, and leaves.
        let standing = placed("RK708AI", 0.9, Rect::new(100, 100, 120, 30));
        run(h.filter(), 0, &vec![vec![standing]; 30]);
        // A second later the next car drives up to the same place: its plate, smaller, is
        // misread first, then read as it comes closer; the town's letters are the same and
        // three glyphs differ.
        let mut frames = vec![vec![]; 30];
        frames.push(vec![placed("TTTA", 0.4, Rect::new(130, 105, 50, 16))]);
        frames.extend((0..10).map(|i| {
            let w = 60 + 6 * i;
            vec![placed("RK101AO", 0.9, Rect::new(160 - w / 2, 105, w, 20))]
        }));
        run(h.filter(), 1_000_000, &frames);
        let events = h.take_events();
        let plates: Vec<_> = events.iter().map(|(_, e)| e["plate"].clone()).collect();
        assert_eq!(plates, ["RK708AI", "RK101AO"], "{events:?}");
        // A plate hidden for as long and read again as it was, or but for a glyph, is the
        // same plate, in the same track.
        let back = |text: &str| placed(text, 0.9, Rect::new(102, 101, 120, 30));
        run(
            h.filter(),
            3_000_000,
            &[vec![back("RK101AO")], vec![back("RK101A0")]],
        );
        run(
            h.filter(),
            4_000_000,
            &[vec![back("RK1O1AO")], vec![back("RK101AO")]],
        );
        let tracks: Vec<_> = h
            .filter()
            .tracks
            .iter()
            .map(|t| (t.reported.clone(), t.hits))
            .collect();
        assert_eq!(tracks, [(Some("RK101AO".to_string()), 15)]);
        assert!(h.take_events().is_empty());
    }

    #[test]
    fn a_plate_hidden_for_a_while_during_a_long_stay_is_one_event() {
        let mut f = PlateDetector::default();
        // Seen for 8 s (one detection a second), hidden for 2 s (its track times out), seen
        // again: the stay is one appearance.
        let frames: Vec<Vec<PlateRead>> = (0..9).map(|_| vec![read("M5XSX", 0.9, 10)]).collect();
        for (i, reads) in frames.iter().enumerate() {
            let now = i as u64 * 1_000_000;
            f.update(reads, now);
            f.report(now).unwrap();
        }
        f.update(&[], 10_000_000);
        assert!(f.tracks.is_empty());
        run(
            &mut f,
            10_100_000,
            &[vec![read("M5XSX", 0.9, 10)], vec![read("M5XSX", 0.9, 10)]],
        );
        assert_eq!(f.recent.len(), 1);
        assert_eq!(f.recent[0].1, 8_000_000, "{:?}", f.recent);
    }

    #[test]
    fn a_new_plate_beyond_the_track_limit_replaces_the_stalest_track() {
        let mut f = PlateDetector::default();
        for i in 0..MAX_TRACKS as u32 {
            f.update(&[read("AB123", 0.9, i * 200)], u64::from(i) * 1000);
        }
        assert_eq!(f.tracks.len(), MAX_TRACKS);
        f.update(&[read("XY789", 0.9, 20_000)], 100_000);
        assert_eq!(f.tracks.len(), MAX_TRACKS);
        assert!(f.tracks.iter().any(|t| t.bounds.x == 20_000));
        assert!(!f.tracks.iter().any(|t| t.bounds.x == 0));
    }

    #[test]
    fn time_going_back_starts_afresh() {
        let mut f = PlateDetector::default();
        let mut buf = prism_filter_sdk::FrameBuf::zeroed(PixelFormat::I420, 64, 48);
        f.process(&mut Frame::local(&mut buf, 5_000_000)).unwrap();
        run(
            &mut f,
            5_033_000,
            &[vec![read("M5XSX", 0.9, 10)], vec![read("M5XSX", 0.9, 10)]],
        );
        assert_eq!((f.tracks.len(), f.recent.len()), (1, 1));
        // The source loops: its plates are seen anew.
        f.process(&mut Frame::local(&mut buf, 0)).unwrap();
        assert_eq!((f.tracks.len(), f.recent.len()), (0, 0));
    }

    #[test]
    fn part_distances() {
        assert_eq!(part_distance("M5XSX", "M5XSX"), 0);
        // A glyph added at the front and one misread.
        assert_eq!(part_distance("M5XSX", "BM5DXSX"), 1);
        // The first four glyphs of a plate, one misread, either way round.
        assert_eq!(part_distance("WQ53011", "WX53"), 1);
        assert_eq!(part_distance("WX53", "WQ53011"), 1);
        // Look-alikes cost nothing.
        assert_eq!(part_distance("WQ53011", "W053"), 0);
        assert_eq!(part_distance("WQ53011", "WO53QII"), 0);
        assert_eq!(part_distance("AB123", "XY746"), 5);
        assert_eq!(part_distance("XY78", "AB123"), 3);
        assert_eq!(part_distance("", "AB"), 0);
    }

    #[test]
    fn configuration_is_checked() {
        let mut f = PlateDetector::default();
        assert!(
            f.configure(r#"{"region": "br", "plate_width_pct": 25}"#)
                .is_ok()
        );
        assert_eq!(f.config.region, Region::Br);
        for bad in [
            r#"{"region": "mars"}"#,
            r#"{"plate_width_pct": 150}"#,
            r#"{"min_confidence": 2}"#,
            r#"{"detect_every": 0}"#,
            r#"{"thorough_every": 0}"#,
            r#"{"thorough_every": 31}"#,
            r#"{"colour": "red"}"#,
            r#"{"corrections": "yes"}"#,
        ] {
            assert!(f.configure(bad).is_err(), "{bad}");
        }
    }
}
