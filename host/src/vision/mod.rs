//! Native vision the host offers filters through the `prism:filter/vision` imports: a
//! licence-plate reader, generic OCR (Tesseract), frontal face detection ([`faces`], OpenCV's
//! cascade classifier) and the pictures the host holds for filters to draw ([`picture`]).
//!
//! The plate reader: [`segment`] finds rows of glyph-like blobs in the luma plane (OpenCV
//! adaptive threshold + connected components, both polarities), [`classifier`] (a small
//! convolutional network the project trains itself, `host/models/plate-glyphs.bin`) reads each
//! glyph, and [`decode`] turns the glyph probabilities into text against the region's plate
//! formats.
//! Everything reads the frame's own bytes: no copy of the picture is made.

pub mod classifier;
pub mod decode;
pub mod faces;
pub mod image;
pub mod ocr;
pub mod picture;
pub mod segment;

use std::fmt;
use std::str::FromStr;

use opencv::core::{BORDER_REPLICATE, Mat, Point2f, Scalar, Size};
use opencv::imgproc;
use opencv::prelude::*;
use serde::{Deserialize, Serialize};

use self::classifier::Cnn;
pub use self::image::{GrayImage, char_patch};
pub use self::picture::{ImageError, RgbaImage, decode_image, load_image};
use self::segment::{HeightRange, Row};
pub use prism_frame::Rect;

/// Plate formats to read against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    /// Any format (Brazil's are recognised).
    #[default]
    Auto,
    /// European single-line plates.
    Eu,
    /// United States plates.
    Us,
    /// Brazilian plates (national and Mercosur).
    Br,
}

impl Region {
    /// The lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Region::Auto => "auto",
            Region::Eu => "eu",
            Region::Us => "us",
            Region::Br => "br",
        }
    }

    /// Where the plate's edges lie around its row of glyphs, in glyph heights (left, top,
    /// right, bottom), from each region's plate standard: EU plates (520x110 mm, 75 mm glyphs)
    /// carry the blue band on the left; US plates (305x152 mm, ~70 mm glyphs) a state name
    /// above and a slogan below; Brazilian ones (400x130 mm, 63 mm glyphs) a band on top.
    fn margins(self) -> [f32; 4] {
        match self {
            Region::Eu => [0.75, 0.25, 0.3, 0.25],
            Region::Us => [0.55, 0.55, 0.55, 0.55],
            Region::Br => [0.45, 0.6, 0.45, 0.3],
            Region::Auto => [0.55, 0.4, 0.45, 0.35],
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Region {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(Region::Auto),
            "eu" => Ok(Region::Eu),
            "us" => Ok(Region::Us),
            "br" => Ok(Region::Br),
            other => Err(format!("unknown plate region {other:?} (auto, eu, us, br)")),
        }
    }
}

/// What to look for.
#[derive(Debug, Clone, PartialEq)]
pub struct PlateOptions {
    /// Plate formats.
    pub region: Region,
    /// Expected plate width as a percentage of the frame width (Kurento's hint); 0 = any.
    pub plate_width_pct: f32,
    /// Only look inside this rectangle.
    pub area: Option<Rect>,
    /// At most this many results.
    pub max_results: usize,
    /// How hard [`detect_plates`] looks.
    pub search: Search,
}

impl Default for PlateOptions {
    fn default() -> Self {
        PlateOptions {
            region: Region::Auto,
            plate_width_pct: 0.0,
            area: None,
            max_results: 4,
            search: Search::Thorough,
        }
    }
}

/// How hard [`detect_plates`] looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Search {
    /// Where nothing reads well, search again for fainter ink: the surest, but a
    /// picture with no plate takes about twice as long.
    #[default]
    Thorough,
    /// The first search only, and where nothing reads well no reading at all: what a
    /// thorough search gives, or nothing. For a frame of a stream whose neighbours are
    /// searched thoroughly (a plate stays in view for many frames).
    Quick,
}

/// A row of glyphs that may be a plate.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The plate's estimated outline.
    pub bounds: Rect,
    /// Glyph boxes, left to right.
    pub chars: Vec<Rect>,
    /// Light glyphs on a dark plate.
    pub inverted: bool,
    /// How regular the row is, 0..1.
    pub score: f32,
}

/// One glyph as read.
#[derive(Debug, Clone, PartialEq)]
pub struct CharRead {
    /// Its box.
    pub bounds: Rect,
    /// Ranked symbols with probabilities, best first.
    pub guesses: Vec<(char, f32)>,
}

/// A plate as read.
#[derive(Debug, Clone, PartialEq)]
pub struct PlateRead {
    /// The text (upper-case letters and digits).
    pub text: String,
    /// 0..1.
    pub confidence: f32,
    /// The region whose format the text follows (`Auto` if none in particular).
    pub region: Region,
    /// The format the text follows (`L` a letter, `N` a digit), empty for free text.
    pub format: String,
    /// The classifier's likeliest symbol of each glyph used, before the format made a
    /// look-alike the kind it wants (`5` where the text has an `S`).
    pub unformatted: String,
    /// The plate's outline.
    pub bounds: Rect,
    /// The glyphs used, left to right.
    pub chars: Vec<CharRead>,
    /// Next-best texts.
    pub alternatives: Vec<(String, f32)>,
}

/// Images wider or taller than this are searched at a reduced size.
const MAX_SEARCH_SIDE: usize = 1920;
/// Smallest glyph height searched, pixels.
const MIN_GLYPH: i32 = 8;
/// The confidence a plate reading needs before the `platedetector` filter reports it.
pub const DEFAULT_MIN_CONFIDENCE: f32 = 0.5;
/// A picture where nothing reads at least this surely is searched again for fainter ink
/// ([`detect_plates`]): clutter a format took in reads about as well as the filter's
/// threshold ([`DEFAULT_MIN_CONFIDENCE`]), which then hid a plate only the second search
/// finds (Brazil's `JSP7678` behind `KII7006` at 0.51).
const READ_WELL: f32 = 0.7;
/// Reads below this confidence are not reported.
const MIN_REPORTED: f32 = 0.2;

/// A working copy of an image when it has to shrink, else the image itself.
enum Work<'a> {
    Borrowed(GrayImage<'a>),
    Owned(Mat),
}

fn work_image<'a>(img: &GrayImage<'a>) -> opencv::Result<(Work<'a>, f32)> {
    let side = img.width().max(img.height());
    if side <= MAX_SEARCH_SIDE {
        return Ok((Work::Borrowed(*img), 1.0));
    }
    let f = MAX_SEARCH_SIDE as f32 / side as f32;
    let mut small = Mat::default();
    imgproc::resize(
        &img.mat()?,
        &mut small,
        // A sliver of a picture (8000x3) keeps a pixel across.
        Size::new(
            ((img.width() as f32 * f) as i32).max(1),
            ((img.height() as f32 * f) as i32).max(1),
        ),
        0.0,
        0.0,
        imgproc::INTER_AREA,
    )?;
    Ok((Work::Owned(small), f))
}

impl Work<'_> {
    fn view(&self) -> GrayImage<'_> {
        match self {
            Work::Borrowed(g) => *g,
            Work::Owned(m) => {
                let (w, h) = (m.cols() as usize, m.rows() as usize);
                GrayImage::new(m.data_bytes().unwrap_or(&[]), w, h, w)
                    .expect("a continuous Mat covers its rows")
            }
        }
    }
}

fn sub_image<'a>(img: &GrayImage<'a>, area: Option<Rect>) -> Option<(GrayImage<'a>, u32, u32)> {
    match area {
        None => Some((*img, 0, 0)),
        Some(a) => {
            let a = a.clip(img.width() as u32, img.height() as u32)?;
            Some((img.sub(a)?, a.x, a.y))
        }
    }
}

/// The glyph heights to look for in `img`, part of a frame `frame_w` of its pixels wide (the
/// plate width hint is a share of the whole frame, not of the area searched).
fn heights(img: &GrayImage<'_>, frame_w: f32, opts: &PlateOptions) -> Option<HeightRange> {
    let h = img.height() as i32;
    // Glyphs are 14-25% of a plate's width tall, depending on the region, and a hint is a
    // rough average (plates nearer or farther are up to twice as wide or narrow); a hint too
    // small to find any glyph is ignored.
    let plate_w = opts.plate_width_pct.min(100.0) / 100.0 * frame_w;
    let (min, max) = if plate_w * 0.5 >= MIN_GLYPH as f32 {
        ((plate_w * 0.06) as i32, (plate_w * 0.5) as i32)
    } else {
        (MIN_GLYPH, (h as f32 * 0.7) as i32)
    };
    let min = min.max(MIN_GLYPH);
    let max = max.min((h as f32 * 0.9) as i32);
    (max >= min).then_some(HeightRange { min, max })
}

fn scale_rect(r: Rect, f: f32) -> Rect {
    Rect::new(
        (r.x as f32 / f) as u32,
        (r.y as f32 / f) as u32,
        (r.width as f32 / f).round() as u32,
        (r.height as f32 / f).round() as u32,
    )
}

fn row_score(row: &Row) -> f32 {
    let h = row.glyph_height();
    let spread = row
        .blobs
        .iter()
        .map(|b| (b.h as f32 - h).abs() / h)
        .sum::<f32>()
        / row.blobs.len() as f32;
    let count = match row.blobs.len() {
        5..=8 => 1.0,
        4 | 9 => 0.8,
        _ => 0.6,
    };
    (count * (1.0 - spread * 2.0)).clamp(0.0, 1.0)
}

fn plate_bounds(chars: &[Rect], region: Region, w: u32, h: u32) -> Rect {
    let row = union(chars);
    let (x0, y0) = (row.x as f32, row.y as f32);
    let (x1, y1) = ((row.x + row.width) as f32, (row.y + row.height) as f32);
    let gh = median_height(chars);
    let [l, t, r, b] = region.margins();
    let x = (x0 - l * gh).max(0.0);
    let y = (y0 - t * gh).max(0.0);
    let right = (x1 + r * gh).min(w as f32);
    let bottom = (y1 + b * gh).min(h as f32);
    Rect::new(
        x as u32,
        y as u32,
        (right - x).max(1.0) as u32,
        (bottom - y).max(1.0) as u32,
    )
}

/// Rows of glyphs that may be plates, most regular first.
pub fn find_candidates(img: &GrayImage<'_>, opts: &PlateOptions) -> opencv::Result<Vec<Candidate>> {
    candidates_at(img, opts, segment::CONTRAST)
}

/// [`find_candidates`] with ink `contrast` gray levels from its surroundings.
fn candidates_at(
    img: &GrayImage<'_>,
    opts: &PlateOptions,
    contrast: f64,
) -> opencv::Result<Vec<Candidate>> {
    let frame_w = img.width() as f32;
    let Some((img, dx, dy)) = sub_image(img, opts.area) else {
        return Ok(Vec::new());
    };
    let (work, f) = work_image(&img)?;
    let view = work.view();
    let Some(range) = heights(&view, frame_w * f, opts) else {
        return Ok(Vec::new());
    };
    let size = (img.width() as u32, img.height() as u32);
    candidates_in(&view, range, opts.region, f, (dx, dy), size, contrast)
}

/// The rows of glyphs `range` tall in `view`, a copy of a picture of `(fw, fh)` pixels scaled
/// by `f` and cut at `(dx, dy)`, in the picture's pixels.
fn candidates_in(
    view: &GrayImage<'_>,
    range: HeightRange,
    region: Region,
    f: f32,
    (dx, dy): (u32, u32),
    (fw, fh): (u32, u32),
    contrast: f64,
) -> opencv::Result<Vec<Candidate>> {
    let mut out: Vec<Candidate> = segment::find_rows(view, range, contrast)?
        .iter()
        .map(|row| {
            let local: Vec<Rect> = row.blobs.iter().map(|b| scale_rect(b.rect(), f)).collect();
            let shift = |r: Rect| Rect::new(r.x + dx, r.y + dy, r.width, r.height);
            let bounds = shift(plate_bounds(&local, region, fw, fh));
            let chars = local.into_iter().map(shift).collect();
            Candidate {
                bounds,
                chars,
                inverted: !row.dark,
                score: row_score(row),
            }
        })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    Ok(out)
}

/// Reads one candidate.
pub fn read_plate(img: &GrayImage<'_>, cand: &Candidate, opts: &PlateOptions) -> Option<PlateRead> {
    read_with(Cnn::builtin(), img, cand, opts.region)
}

fn read_with(
    model: &Cnn,
    img: &GrayImage<'_>,
    cand: &Candidate,
    region: Region,
) -> Option<PlateRead> {
    if cand.chars.is_empty() || !cand.chars.iter().all(|r| inside(img, r)) {
        return None;
    }
    let probs: Vec<decode::Probs> = cand
        .chars
        .iter()
        .map(|r| model.classify(&char_patch(img, *r, !cand.inverted)))
        .collect();
    read_glyphs(img, &cand.chars, &probs, cand.score, region, cand.inverted)
}

fn read_glyphs(
    img: &GrayImage<'_>,
    chars: &[Rect],
    probs: &[decode::Probs],
    score: f32,
    region: Region,
    inverted: bool,
) -> Option<PlateRead> {
    let marks = marks_between(img, chars, inverted);
    let d = decode::decode_marked(probs, &marks, region)?;
    let used: Vec<Rect> = d.glyphs.iter().map(|&i| chars[i]).collect();
    let shape = if d.region == Region::Auto {
        region
    } else {
        d.region
    };
    let bounds = plate_bounds(&used, shape, img.width() as u32, img.height() as u32);
    Some(PlateRead {
        chars: used
            .iter()
            .zip(d.guesses)
            .map(|(r, g)| CharRead {
                bounds: *r,
                guesses: g,
            })
            .collect(),
        confidence: d.confidence * (0.5 + 0.5 * score) * stripe_penalty(&used, &d.text),
        text: d.text,
        region: d.region,
        format: d.format,
        unformatted: d
            .glyphs
            .iter()
            .map(|&i| classifier::SYMBOLS[decode::likeliest(&probs[i])] as char)
            .collect(),
        bounds,
        alternatives: d.alternatives,
    })
}

/// The union box of some glyphs.
fn union(rects: &[Rect]) -> Rect {
    let x0 = rects.iter().map(|r| r.x).min().unwrap_or(0);
    let y0 = rects.iter().map(|r| r.y).min().unwrap_or(0);
    let x1 = rects.iter().map(|r| r.x + r.width).max().unwrap_or(0);
    let y1 = rects.iter().map(|r| r.y + r.height).max().unwrap_or(0);
    Rect::new(x0, y0, x1 - x0, y1 - y0)
}

fn median_height(rects: &[Rect]) -> f32 {
    median(rects.iter().map(|r| r.height))
}

fn median_width(rects: &[Rect]) -> f32 {
    median(rects.iter().map(|r| r.width))
}

/// The median gap between neighbouring boxes of a row (left to right; overlaps count as 0).
fn median_gap(rects: &[Rect]) -> f32 {
    median(
        rects
            .windows(2)
            .map(|w| w[1].x.saturating_sub(w[0].x + w[0].width)),
    )
}

fn median(values: impl Iterator<Item = u32>) -> f32 {
    let mut v: Vec<u32> = values.collect();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(1).max(1) as f32
}

/// The probability of a glyph's likeliest symbol.
fn best_symbol(p: &decode::Probs) -> f32 {
    p[..classifier::NOISE].iter().copied().fold(0.0, f32::max)
}

/// A row with fewer glyphs than this that the first network reads as a symbol at least
/// [`LEGIBLE`] likely is clutter, and is not read. Its unsure glyphs would each be shown to
/// the peer networks as well: on a busy picture with no plate, a third of the search's time
/// (the busiest dev pan, every frame searched thoroughly: 26 frames/s without this, 34 with
/// it); no dev photo, scene or variant read differently.
const LEGIBLE_GLYPHS: usize = 2;
const LEGIBLE: f32 = 0.5;

/// Reads a group of rows that are the same plate seen at different thresholds: each glyph is
/// taken from the row that cut it best (height closest to the plate's glyph height, then the
/// most confident symbol), so a glyph broken or merged at one threshold is read whole from
/// another. Each threshold's own cut is read as well, and wins when it reads better without
/// losing a glyph the glyph-by-glyph choice was sure of.
fn read_group(
    model: &Cnn,
    img: &GrayImage<'_>,
    group: &[&Candidate],
    region: Region,
) -> Option<PlateRead> {
    let inverted = group[0].inverted;
    let all: Vec<Rect> = group.iter().flat_map(|c| c.chars.iter().copied()).collect();
    let gh = median_height(&all);
    // The same glyph cut identically by several thresholds is read once; cuts that differ
    // are all read and the best is kept below.
    let mut unique: Vec<Rect> = Vec::new();
    for r in &all {
        if !unique.contains(r) {
            unique.push(*r);
        }
    }
    // Clutter is told by the first network alone, before the peers are asked about its unsure
    // glyphs ([`Cnn::classify`]).
    let patches: Vec<_> = unique
        .iter()
        .map(|r| char_patch(img, *r, !inverted))
        .collect();
    let firsts: Vec<decode::Probs> = patches.iter().map(|p| model.first(p)).collect();
    if firsts.iter().filter(|p| best_symbol(p) >= LEGIBLE).count() < LEGIBLE_GLYPHS {
        return None;
    }
    let mut scored: Vec<(Rect, decode::Probs, f32)> = unique
        .into_iter()
        .zip(patches.iter().zip(firsts))
        .map(|(r, (patch, first))| {
            let p = model.classify_from(patch, first);
            let best = best_symbol(&p);
            let fit = 1.0 - ((r.height as f32 - gh).abs() / gh).min(1.0);
            (r, p, fit * 2.0 + best)
        })
        .collect();
    // A thin box inside a glyph-sized box that reads as a glyph is a piece of it (the stroke
    // of a `W` or an `N` cut off at one threshold reads as a sure `I`): it ranks below.
    let gw = median_width(&scored.iter().map(|s| s.0).collect::<Vec<_>>());
    let pieces: Vec<bool> = scored
        .iter()
        .map(|(r, _, _)| {
            (r.width as f32) < 0.55 * gw
                && scored.iter().any(|(c, p, _)| {
                    c.x <= r.x
                        && c.x + c.width >= r.x + r.width
                        && c.width as f32 >= 1.5 * r.width as f32
                        && c.width as f32 <= 1.3 * gw
                        && c.y <= r.y + r.height / 2
                        && c.y + c.height >= r.y + r.height / 2
                        && best_symbol(p) >= 0.5
                })
        })
        .collect();
    for (s, piece) in scored.iter_mut().zip(pieces) {
        if piece {
            s.2 -= 1.0;
        }
    }
    let score = group.iter().map(|c| c.score).fold(0.0, f32::max);
    let repaired = |mut chosen: Vec<(Rect, decode::Probs)>| {
        chosen.sort_by_key(|(r, _)| r.x);
        if coloured_band_first(img, &chosen.iter().map(|(r, _)| *r).collect::<Vec<_>>()) {
            chosen.remove(0);
        }
        drop_strays(&mut chosen);
        split_merged(model, img, &mut chosen, inverted);
        drop_emblems(&mut chosen);
        fill_gaps(model, img, &mut chosen, inverted);
        let chars: Vec<Rect> = chosen.iter().map(|(r, _)| *r).collect();
        let probs: Vec<decode::Probs> = chosen.iter().map(|(_, p)| *p).collect();
        read_glyphs(img, &chars, &probs, score, region, inverted)
    };
    // Each threshold's own cut of the row is read too: a glyph broken into confident pieces
    // (a `W` into `V` and `I`) wins the glyph-by-glyph choice, but the row it came from
    // reads worse than the row that kept the glyph whole.
    let probs_of = |r: &Rect| scored.iter().find(|s| s.0 == *r).map(|s| s.1);
    let mut reads: Vec<PlateRead> = Vec::new();
    if group.len() > 1 {
        for c in group {
            let own: Option<Vec<_>> = c.chars.iter().map(|r| Some((*r, probs_of(r)?))).collect();
            reads.extend(own.and_then(&repaired));
        }
    }
    scored.sort_by(|a, b| b.2.total_cmp(&a.2));
    let mut chosen: Vec<(Rect, decode::Probs)> = Vec::new();
    for (r, p, _) in scored {
        let clash = chosen
            .iter()
            .any(|(c, _)| x_overlap(c, &r) as f32 > 0.4 * c.width.min(r.width) as f32);
        if !clash {
            chosen.push((r, p));
        }
    }
    let Some(greedy) = repaired(chosen) else {
        return reads
            .into_iter()
            .max_by(|a, b| a.confidence.total_cmp(&b.confidence));
    };
    // A row's own cut wins only when it reads better and agrees with the glyph-by-glyph
    // choice.
    let best = reads
        .into_iter()
        .filter(|r| r.confidence > greedy.confidence && agrees(&greedy, r))
        .max_by(|a, b| a.confidence.total_cmp(&b.confidence));
    Some(best.unwrap_or(greedy))
}

/// Whether reading `other` of the same place may replace `base`: it keeps every glyph `base`
/// was fairly sure of (dropping a glyph raises a row's mean confidence) and reads no narrower
/// part of one of them as another symbol (a `D` cut short is a sure `U`).
fn agrees(base: &PlateRead, other: &PlateRead) -> bool {
    let top = |c: &CharRead| c.guesses.first().copied().unwrap_or((' ', 0.0));
    base.chars.iter().all(|g| {
        let mut near = other.chars.iter().filter(|c| {
            x_overlap(&c.bounds, &g.bounds) as f32 > 0.4 * c.bounds.width.min(g.bounds.width) as f32
        });
        // A pixel's slack for boxes mapped back from a scaled picture.
        let around = grown(g.bounds, 1);
        let part = |c: &CharRead| {
            c.bounds.width < g.bounds.width && within(&c.bounds, &around) && top(c).0 != top(g).0
        };
        let kept = top(g).1 < 0.7 || near.clone().next().is_some();
        kept && !near.any(part)
    })
}

/// Frame edges, bolts and screws pass for an `I` or a `1` at a row's end, and a state's
/// emblem between a plate's groups for some glyph. A glyph at an end that is thin or that the
/// classifier is unsure of is dropped when it does not line up with its neighbour (its top or
/// bottom off by more than a seventh of a glyph's height) or stands apart from the rest (a gap
/// of more than twice their usual gap plus half a glyph height; without the half height for a
/// glyph both thin and unsure, the edge of a frame a little way off that a format with a glyph
/// more would take in: `2858GAB` for Indiana's `858GAB` read without a region); inside the
/// row, an unsure glyph that does not line up with its two neighbours is dropped.
fn drop_strays(chosen: &mut Vec<(Rect, decode::Probs)>) {
    if chosen.len() <= segment::MIN_GLYPHS {
        return;
    }
    let rects: Vec<Rect> = chosen.iter().map(|(r, _)| *r).collect();
    let last = rects.len() - 1;
    let usual = median_gap(&rects);
    let stray = |i: usize| {
        let rest: Vec<Rect> = (0..rects.len())
            .filter(|&j| j != i)
            .map(|j| rects[j])
            .collect();
        let r = rects[i];
        let gh = median_height(&rest);
        let unsure = best_symbol(&chosen[i].1) < 0.4;
        let thin = (r.width as f32) < 0.55 * median_width(&rest);
        let end = i == 0 || i == last;
        if !(unsure || end && thin) {
            return false;
        }
        // Lined up with its neighbours (a tilted plate's glyphs climb or fall along it).
        let near: Vec<Rect> = [i.checked_sub(1), (i < last).then_some(i + 1)]
            .into_iter()
            .flatten()
            .map(|j| rects[j])
            .collect();
        let top = near.iter().map(|n| n.y as f32).sum::<f32>() / near.len() as f32;
        let bottom = near.iter().map(|n| (n.y + n.height) as f32).sum::<f32>() / near.len() as f32;
        let off = (r.y as f32 - top)
            .abs()
            .max(((r.y + r.height) as f32 - bottom).abs());
        if off > gh / 7.0 {
            return true;
        }
        let gap = |a: &Rect, b: &Rect| (b.x as f32 - (a.x + a.width) as f32).max(0.0);
        let apart = match i {
            0 => gap(&r, &rects[1]),
            _ if i == last => gap(&rects[i - 1], &r),
            _ => return false,
        };
        // A thin end glyph the classifier cannot read either is held to the gap alone.
        let slack = if unsure && thin { 0.0 } else { 0.5 * gh };
        apart > 2.0 * usual + slack
    };
    let keep: Vec<bool> = (0..rects.len()).map(|i| !stray(i)).collect();
    let mut k = keep.into_iter();
    chosen.retain(|_| k.next().unwrap_or(true));
}

/// A state's emblem between a plate's groups (New Mexico's Zia, Mississippi's lighthouse)
/// lines up with the glyphs and may read as some glyph, which a format with one glyph more
/// then takes in. Inside the row, a blob the classifier is unsure of that is much wider than
/// the glyphs (and did not split into two, see [`split_merged`]), or one not read surely that
/// stands apart from both neighbours (a glyph has its group's usual gap on at least one side),
/// is dropped.
fn drop_emblems(chosen: &mut Vec<(Rect, decode::Probs)>) {
    if chosen.len() <= segment::MIN_GLYPHS {
        return;
    }
    let rects: Vec<Rect> = chosen.iter().map(|(r, _)| *r).collect();
    let (usual, width) = (median_gap(&rects), median_width(&rects));
    let gap = |a: &Rect, b: &Rect| b.x as f32 - (a.x + a.width) as f32;
    let emblem = |i: usize| {
        let (r, best) = (rects[i], best_symbol(&chosen[i].1));
        let wide = r.width as f32 > EMBLEM_WIDE * width && best < EMBLEM_WIDE_UNSURE;
        let apart = [gap(&rects[i - 1], &r), gap(&r, &rects[i + 1])]
            .iter()
            .all(|&g| g > usual + EMBLEM_APART * width);
        wide || apart && best < EMBLEM_APART_UNSURE
    };
    let keep: Vec<bool> = (0..rects.len())
        .map(|i| i == 0 || i == rects.len() - 1 || !emblem(i))
        .collect();
    let mut k = keep.into_iter();
    chosen.retain(|_| k.next().unwrap_or(true));
}

/// An emblem wider than this many glyph widths ...
const EMBLEM_WIDE: f32 = 1.6;
/// ... that reads less surely than this is dropped ([`drop_emblems`]).
const EMBLEM_WIDE_UNSURE: f32 = 0.5;
/// An emblem with gaps wider than the usual gap and this many glyph widths on both sides ...
const EMBLEM_APART: f32 = 0.5;
/// ... that reads less surely than this is dropped.
const EMBLEM_APART_UNSURE: f32 = 0.9;

/// A glyph the segmenter missed (touching a bolt or the frame, or broken into pieces too small
/// to count) leaves a gap of a whole glyph pitch in the row, or a glyph's place empty beyond
/// an end: the box there, as tall as its neighbours and trimmed to its ink, is read and kept
/// when the classifier is sure it holds a character.
fn fill_gaps(
    model: &Cnn,
    img: &GrayImage<'_>,
    chosen: &mut Vec<(Rect, decode::Probs)>,
    inverted: bool,
) {
    if chosen.len() < 3 {
        return;
    }
    let centre = |r: &Rect| r.x as f32 + r.width as f32 / 2.0;
    let rects: Vec<Rect> = chosen.iter().map(|(r, _)| *r).collect();
    let mut pitches: Vec<f32> = rects
        .windows(2)
        .map(|w| centre(&w[1]) - centre(&w[0]))
        .collect();
    pitches.sort_by(f32::total_cmp);
    // The lower median: where glyphs are missing or a space parts the groups, as many pitches
    // may span two glyphs as one.
    let pitch = pitches[(pitches.len() - 1) / 2];
    if pitch < 2.0 {
        return;
    }
    let width = median_width(&rects);
    // The box about `c`, trimmed to its ink, with its reading when the classifier is sure.
    let read_box = |c: f32, free_left: f32, free_right: f32, y: u32, h: u32, end: bool| {
        let x0 = (c - 0.6 * width).max(free_left).round().max(0.0) as u32;
        let x1 = (c + 0.6 * width).min(free_right).round().max(0.0) as u32;
        let window = Rect::new(x0, y, x1.saturating_sub(x0), h);
        let ink = Ink::within(img, window, inverted)?;
        let r = trim_with(img, window, &ink)?;
        // A window that cuts through a glyph holds part of it (an `I` out of an `L`): it
        // gives way to a window that holds the whole glyph.
        let part = runs_past(img, window, r, &ink, (free_left as u32, free_right as u32));
        // Beyond an end, a glyph that touches ink above or below it (a sticker, a state's
        // graphic, lettering) must be whole, glyph-wide and legible: frame edges, bolts
        // and the plate's own border pass for thin, partial or small glyphs there. A thin
        // stroke whose ink runs on sideways is the edge of something dark beside the row.
        let alone = end && stands_alone(img, r, inverted);
        let legible = r.height as f32 >= LEGIBLE_GLYPH;
        let thin = (r.width as f32) < 0.55 * width;
        if end && (thin && part || !alone && (thin || part || !legible)) {
            return None;
        }
        let p = model.classify(&char_patch(img, r, !inverted));
        let best = best_symbol(&p);
        // What touches a glyph's place there passes for a bar-like symbol (a frame's edge
        // or corner, a bolt, a post of a graphic), seldom for a shaped one (the `A` of
        // `AGB7548` standing on Arizona's mountains).
        if end && !alone && is_bar(&p) && best <= END_TOUCHING {
            return None;
        }
        // Ranked by confidence, whole glyphs first.
        (best > 0.8).then_some((r, p, best - f32::from(u8::from(part))))
    };
    let mut added: Vec<(Rect, decode::Probs)> = Vec::new();
    for pair in rects.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let (free_left, free_right) = ((a.x + a.width) as f32, b.x as f32);
        if free_right - free_left < 0.8 * width {
            continue;
        }
        // Glyph places a pitch on from either neighbour: where a space parts the plate's
        // groups, the places counted from one side are the right ones.
        let mut places = Vec::new();
        let mut c = centre(&a) + pitch;
        while c + 0.4 * width <= free_right {
            places.push(c);
            c += pitch;
        }
        let mut c = centre(&b) - pitch;
        while c - 0.4 * width >= free_left {
            places.push(c);
            c -= pitch;
        }
        let (y, h) = ((a.y + b.y) / 2, (a.height + b.height) / 2);
        let mut found: Vec<_> = places
            .into_iter()
            .filter_map(|c| read_box(c, free_left, free_right, y, h, false))
            .collect();
        found.sort_by(|p, q| q.2.total_cmp(&p.2));
        let start = added.len();
        for (r, p, _) in found {
            let clash = added[start..]
                .iter()
                .any(|(o, _)| x_overlap(o, &r) as f32 > 0.4 * o.width.min(r.width) as f32);
            if !clash {
                added.push((r, p));
            }
        }
    }
    // Beyond each end, a pitch on (see `read_box` for a glyph that touches other ink). An end
    // glyph joined to clutter beside it (a state's graphic, the frame) runs on past any
    // window about its place: a glyph's width of it next to the row, a usual gap away, may
    // still read clearly.
    let gap = median_gap(&rects);
    let joined = |end: Rect, before: bool| {
        if (end.height as f32) < LEGIBLE_GLYPH {
            return None;
        }
        let windows = [1.0, 1.15].into_iter().filter_map(|k| {
            let w = (k * width).round();
            let x = if before {
                end.x as f32 - gap - w
            } else {
                (end.x + end.width) as f32 + gap
            };
            (x >= 0.0).then(|| Rect::new(x.round() as u32, end.y, w as u32, end.height))
        });
        let fits = |r: Rect| (r.width as f32) >= 0.55 * width && !stands_alone(img, r, inverted);
        clearest(model, img, inverted, windows, fits, END_JOINED)
            .filter(|(_, p)| !is_bar(p) || best_symbol(p) > END_JOINED_BAR)
    };
    let beyond = |end: Rect, before: bool| {
        let (c, free_left, free_right) = if before {
            (centre(&end) - pitch, 0.0, end.x as f32)
        } else {
            let free_left = (end.x + end.width) as f32;
            (centre(&end) + pitch, free_left, img.width() as f32)
        };
        read_box(c, free_left, free_right, end.y, end.height, true)
            .map(|(r, p, _)| (r, p))
            .or_else(|| joined(end, before))
    };
    // A glyph found beyond an end may have another beyond it.
    for (mut end, before) in [(rects[0], true), (rects[rects.len() - 1], false)] {
        for _ in 0..END_GLYPHS {
            let Some((r, p)) = beyond(end, before) else {
                break;
            };
            added.push((r, p));
            end = r;
        }
    }
    chosen.extend(added);
    chosen.sort_by_key(|(r, _)| r.x);
}

/// Glyphs shorter than this are too few pixels to tell a glyph touching clutter beyond a
/// row's end from a bit of the clutter (a frame's corner reads as an `L`, a bolt as a `1`).
const LEGIBLE_GLYPH: f32 = 16.0;
/// Most glyphs found beyond each end of a row.
const END_GLYPHS: usize = 2;
/// How sure a glyph found beyond a row's end that touches other ink must be when it reads as
/// a bar-like symbol ([`is_bar`]).
const END_TOUCHING: f32 = 0.9;
/// How sure a glyph cut from clutter beyond a row's end must be.
const END_JOINED: f32 = 0.9;
/// ... when it reads as a bar-like symbol ([`is_bar`]): a frame's edge or corner, a bolt or a
/// post of the clutter itself reads as one.
const END_JOINED_BAR: f32 = 0.95;

/// Whether a glyph's likeliest symbol is one a straight stroke passes for (`1 I J L T 7`).
fn is_bar(p: &decode::Probs) -> bool {
    b"1IJLT7".contains(&classifier::SYMBOLS[decode::likeliest(p)])
}

/// Two glyphs touching each other (blur, a low-resolution camera) are one blob about twice as
/// wide as the row's glyphs: such a blob that the classifier is not sure of is cut at its
/// faintest column near the middle, and the halves replace it when both are clearly glyphs.
/// A blob only somewhat wider that the classifier is unsure of is a glyph joined to clutter:
/// a glyph's width at either side replaces it when it reads clearly.
fn split_merged(
    model: &Cnn,
    img: &GrayImage<'_>,
    chosen: &mut Vec<(Rect, decode::Probs)>,
    inverted: bool,
) {
    if chosen.len() < 3 {
        return;
    }
    let width = median_width(&chosen.iter().map(|(r, _)| *r).collect::<Vec<_>>());
    let mut out = Vec::with_capacity(chosen.len() + 2);
    for (r, p) in chosen.drain(..) {
        let split = (r.width as f32 > 1.6 * width && best_symbol(&p) < 0.9)
            .then(|| faintest_column(img, r, inverted))
            .flatten()
            .and_then(|cut| {
                let left = trim_to_ink(img, Rect::new(r.x, r.y, cut - r.x, r.height), inverted)?;
                let right = trim_to_ink(
                    img,
                    Rect::new(cut + 1, r.y, r.x + r.width - cut - 1, r.height),
                    inverted,
                )?;
                let pl = model.classify(&char_patch(img, left, !inverted));
                let pr = model.classify(&char_patch(img, right, !inverted));
                (best_symbol(&pl) > 0.75 && best_symbol(&pr) > 0.75)
                    .then_some([(left, pl), (right, pr)])
            });
        // A glyph joined to clutter at one side (an emblem, a sticker, a bolt) is a wide blob
        // the classifier is unsure of: a glyph's width of it at either side may read clearly.
        // Its ink must be about a glyph wide: half an `8` cut off by a window reads as a sure
        // `3`.
        let trimmed = || {
            if split.is_some() || r.width as f32 <= 1.3 * width || best_symbol(&p) >= 0.6 {
                return None;
            }
            let windows = [1.0, 1.15]
                .into_iter()
                .map(|k| (k * width).round() as u32)
                .flat_map(|w| [(r.x, w), (r.x + r.width - w, w)])
                .map(|(x, w)| Rect::new(x, r.y, w, r.height));
            let whole = |r: Rect| r.width as f32 >= 0.55 * width;
            clearest(model, img, inverted, windows, whole, 0.7)
        };
        match (split, trimmed()) {
            (Some(halves), _) => out.extend(halves),
            (None, Some(one)) => out.push(one),
            (None, None) => out.push((r, p)),
        }
    }
    *chosen = out;
}

/// Of some windows, each trimmed to its ink and kept when `fits` it, the one whose glyph the
/// classifier reads most surely, if more surely than `above`.
fn clearest(
    model: &Cnn,
    img: &GrayImage<'_>,
    inverted: bool,
    windows: impl Iterator<Item = Rect>,
    fits: impl Fn(Rect) -> bool,
    above: f32,
) -> Option<(Rect, decode::Probs)> {
    windows
        .filter_map(|w| trim_to_ink(img, w, inverted))
        .filter(|&r| fits(r))
        .map(|r| (r, model.classify(&char_patch(img, r, !inverted))))
        .filter(|(_, p)| best_symbol(p) > above)
        .max_by(|a, b| best_symbol(&a.1).total_cmp(&best_symbol(&b.1)))
}

/// The least gray range of a box in which ink is told from its background ([`Ink::contrast`]):
/// below it a box holds no stroke to trim to or mark to find.
const LEAST_INK_CONTRAST: u8 = 40;

/// Tells ink from background around a glyph: darker (lighter when `inverted`) than the middle
/// of the gray range of its box.
#[derive(Debug, Clone, Copy)]
struct Ink {
    mid: u16,
    inverted: bool,
    /// The box's gray range.
    contrast: u8,
}

impl Ink {
    fn of(img: &GrayImage<'_>, r: Rect, inverted: bool) -> Ink {
        let (mut lo, mut hi) = (255u8, 0u8);
        for y in r.y as usize..(r.y + r.height) as usize {
            for &v in &img.row(y)[r.x as usize..(r.x + r.width) as usize] {
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
        Ink {
            mid: (lo as u16 + hi as u16) / 2,
            inverted,
            contrast: hi.saturating_sub(lo),
        }
    }

    /// [`Ink::of`] a box of at least 2x2 pixels inside the image.
    fn within(img: &GrayImage<'_>, r: Rect, inverted: bool) -> Option<Ink> {
        (r.width >= 2 && r.height >= 2 && inside(img, &r)).then(|| Ink::of(img, r, inverted))
    }

    fn is(&self, v: u8) -> bool {
        if self.inverted {
            v as u16 > self.mid
        } else {
            (v as u16) < self.mid
        }
    }

    /// Ink pixels of column `x` over `rows`.
    fn in_column(&self, img: &GrayImage<'_>, x: u32, rows: std::ops::Range<u32>) -> usize {
        rows.filter(|&y| self.is(img.row(y as usize)[x as usize]))
            .count()
    }

    /// Whether column `x` holds ink over `rows`: a tenth of it does, enough for the bar of a
    /// T or the foot of an L.
    fn inked(&self, img: &GrayImage<'_>, x: u32, rows: std::ops::Range<u32>) -> bool {
        let min = (rows.len() / 10).max(1);
        self.in_column(img, x, rows) >= min
    }
}

/// Whether a mark stands between each pair of neighbouring glyphs of a row (left to right),
/// for [`decode::decode_marked`].
fn marks_between(img: &GrayImage<'_>, chars: &[Rect], inverted: bool) -> Vec<bool> {
    chars
        .windows(2)
        .map(|p| mark_between(img, p[0], p[1], inverted))
        .collect()
}

/// Whether a dot or a dash stands between glyphs `a` and `b` (`a` left of `b`): ink in the
/// gap, clear of both glyphs, centred within a fifth of their height of the middle of their
/// line and no taller than three tenths of it (a bolt, a frame's edge or a sticker runs
/// taller; the bar of an `H` cut in two touches both halves), that fills at least 40 % of its
/// box.
fn mark_between(img: &GrayImage<'_>, a: Rect, b: Rect, inverted: bool) -> bool {
    let (x0, x1) = (a.x + a.width, b.x);
    if x1 < x0 + 3 {
        return false;
    }
    let (y0, h) = ((a.y + b.y) / 2, (a.height + b.height) / 2);
    let Some(ink) = Ink::within(img, union(&[a, b]), inverted) else {
        return false;
    };
    if ink.contrast < LEAST_INK_CONTRAST || !inside(img, &Rect::new(x0, y0, x1 - x0, h)) {
        return false;
    }
    let (mut n, mut left, mut right, mut top, mut bottom) = (0u32, u32::MAX, 0, u32::MAX, 0);
    for y in y0..y0 + h {
        let row = img.row(y as usize);
        for x in x0..x1 {
            if ink.is(row[x as usize]) {
                n += 1;
                (left, right) = (left.min(x), right.max(x));
                (top, bottom) = (top.min(y), bottom.max(y));
            }
        }
    }
    if n < 2 {
        return false;
    }
    let (w, ht) = (right - left + 1, bottom - top + 1);
    let centre = (top + bottom) as f32 / 2.0 - y0 as f32;
    left > x0
        && right + 1 < x1
        && (ht as f32) <= 0.3 * h as f32
        && (0.3 * h as f32..=0.7 * h as f32).contains(&centre)
        && n as f32 >= 0.4 * (w * ht) as f32
}

/// The column of the middle 40 % of `r` with the least ink (the nearest the centre of those).
fn faintest_column(img: &GrayImage<'_>, r: Rect, inverted: bool) -> Option<u32> {
    if r.width < 6 || !inside(img, &r) {
        return None;
    }
    let ink = Ink::of(img, r, inverted);
    let (from, to) = (r.x + r.width * 3 / 10, r.x + r.width * 7 / 10);
    let centre = r.x + r.width / 2;
    (from..=to).min_by_key(|&x| {
        (
            ink.in_column(img, x, r.y..r.y + r.height),
            x.abs_diff(centre),
        )
    })
}

/// Whether the glyph in `r` has clear background right above and below it (a sixth of its
/// height): a frame edge, a bolt or a sticker beside a plate runs on past its glyphs' line.
fn stands_alone(img: &GrayImage<'_>, r: Rect, inverted: bool) -> bool {
    let strip = (r.height / 6).max(1);
    let Some(top) = r.y.checked_sub(strip + 1) else {
        return false;
    };
    let bottom = r.y + r.height + 1;
    if bottom + strip > img.height() as u32 || !inside(img, &r) {
        return false;
    }
    let ink = Ink::of(img, r, inverted);
    let share = |y0: u32| {
        let n: usize = (r.x..r.x + r.width)
            .map(|x| ink.in_column(img, x, y0..y0 + strip))
            .sum();
        n as f32 / (strip * r.width).max(1) as f32
    };
    share(top) < 0.35 && share(bottom) < 0.35
}

/// The columns of `r` that hold ink (darker, or lighter when `inverted`, than the middle of the
/// box's range), if there are any.
fn trim_to_ink(img: &GrayImage<'_>, r: Rect, inverted: bool) -> Option<Rect> {
    trim_with(img, r, &Ink::within(img, r, inverted)?)
}

/// [`trim_to_ink`] with the ink told by `ink` (of a box inside the image holding `r`).
fn trim_with(img: &GrayImage<'_>, r: Rect, ink: &Ink) -> Option<Rect> {
    if ink.contrast < LEAST_INK_CONTRAST {
        return None;
    }
    let inked: Vec<bool> = (r.x..r.x + r.width)
        .map(|x| ink.inked(img, x, r.y..r.y + r.height))
        .collect();
    let first = inked.iter().position(|&b| b)?;
    let last = inked.iter().rposition(|&b| b)?;
    Some(Rect::new(
        r.x + first as u32,
        r.y,
        (last - first + 1) as u32,
        r.height,
    ))
}

/// Whether ink runs on past a side of `r` where the search `window` cut it off (inside the
/// free columns `lo..hi`): `r` then holds only part of a glyph.
fn runs_past(img: &GrayImage<'_>, window: Rect, r: Rect, ink: &Ink, (lo, hi): (u32, u32)) -> bool {
    let rows = window.y..window.y + window.height;
    let right = r.x + r.width;
    let inked = |x: u32| ink.inked(img, x, rows.clone());
    (right == window.x + window.width && right < hi && inked(right))
        || (r.x == window.x && r.x > lo && inked(r.x - 1))
}

/// Whether the row's first glyph is a coloured mark rather than a glyph: the blue country band
/// of European plates (its letter and stars can pass for a glyph in luma). It must be far more
/// colourful than the row's glyphs (plates with coloured glyphs keep theirs).
fn coloured_band_first(img: &GrayImage<'_>, row: &[Rect]) -> bool {
    if row.len() <= segment::MIN_GLYPHS {
        return false;
    }
    let Some(first) = img.colourfulness(row[0]) else {
        return false;
    };
    let mut rest: Vec<f32> = row[1..]
        .iter()
        .filter_map(|r| img.colourfulness(*r))
        .collect();
    rest.sort_by(f32::total_cmp);
    let median = rest.get(rest.len() / 2).copied().unwrap_or(0.0);
    first > 24.0 && first > 2.5 * median + 8.0
}

/// Groups candidates that are the same row of glyphs (same polarity, similar glyph height,
/// overlapping glyph boxes).
fn group_rows(cands: &[Candidate]) -> Vec<Vec<&Candidate>> {
    let mut groups: Vec<(Rect, f32, bool, Vec<&Candidate>)> = Vec::new();
    for c in cands {
        let row = union(&c.chars);
        let h = median_height(&c.chars);
        let found = groups.iter_mut().find(|(g, gh, inv, _)| {
            *inv == c.inverted && (gh.max(h) / gh.min(h)) < 1.3 && overlap(g, &row) > 0.5
        });
        match found {
            Some((g, _, _, members)) => {
                *g = union(&[*g, row]);
                members.push(c);
            }
            None => groups.push((row, h, c.inverted, vec![c])),
        }
    }
    groups.into_iter().map(|(_, _, _, m)| m).collect()
}

/// Rows made mostly of thin strokes are railings, grilles and window edges far more often than
/// plates (a plate of mostly `1`s and `I`s is rare): they keep a fraction of their confidence.
/// So do rows read two thirds or more as bars (`1`, `I`, `T`, `7`: posts, window frames and
/// railings whose strokes are not thin); one of the 973 labelled plates in `../shared/data/alpr`
/// reads so.
fn stripe_penalty(glyphs: &[Rect], text: &str) -> f32 {
    let thin = glyphs
        .iter()
        .filter(|r| (r.width as f32) < 0.3 * r.height as f32)
        .count();
    let bars = text.chars().filter(|c| "1IT7".contains(*c)).count();
    let shape = if thin * 2 > glyphs.len() { 0.4 } else { 1.0 };
    let reading = if bars * 3 >= text.len() * 2 { 0.6 } else { 1.0 };
    shape * reading
}

/// Finds and reads plates: the most confident reading of each place, best first (rows that
/// stand alone before the lines of a paragraph). Where nothing reads well ([`READ_WELL`]),
/// the picture is searched again for fainter ink (a plate in shade, at dusk, behind a dirty
/// lens), and the better readings of both searches are kept.
pub fn detect_plates(img: &GrayImage<'_>, opts: &PlateOptions) -> opencv::Result<Vec<PlateRead>> {
    classifier::remembering(|| search_plates(img, opts))
}

fn search_plates(img: &GrayImage<'_>, opts: &PlateOptions) -> opencv::Result<Vec<PlateRead>> {
    let found = plates_at(img, opts, segment::CONTRAST)?;
    if found.iter().any(|r| r.confidence >= READ_WELL) {
        return Ok(found);
    }
    // A quick search gives what a thorough one would, or nothing: no reading that a fainter
    // plate in the same place would have replaced.
    if opts.search == Search::Quick {
        return Ok(Vec::new());
    }
    let mut all = found;
    all.extend(plates_at(img, opts, segment::FAINT)?);
    all.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    Ok(apart(all, opts.max_results))
}

/// The first `max` (at least one) of `ranked` that do not overlap one ranked before them.
fn apart(ranked: impl IntoIterator<Item = PlateRead>, max: usize) -> Vec<PlateRead> {
    let mut kept: Vec<PlateRead> = Vec::new();
    for r in ranked {
        if kept.iter().all(|k| overlap(&k.bounds, &r.bounds) < 0.3) {
            kept.push(r);
        }
        if kept.len() >= max.max(1) {
            break;
        }
    }
    kept
}

/// [`detect_plates`] with one search, for ink `contrast` gray levels from its surroundings.
fn plates_at(
    img: &GrayImage<'_>,
    opts: &PlateOptions,
    contrast: f64,
) -> opencv::Result<Vec<PlateRead>> {
    let model = Cnn::builtin();
    let cands = candidates_at(img, opts, contrast)?;
    let reads: Vec<PlateRead> = group_rows(&cands)
        .iter()
        .filter(|g| g.iter().all(|c| c.chars.iter().all(|r| inside(img, r))))
        .filter_map(|g| read_group(model, img, g, opts.region))
        .filter(|r| r.confidence >= MIN_REPORTED)
        .map(|r| match read_level(model, img, &r, opts.region) {
            Ok(Some(level)) => level,
            _ => r,
        })
        .map(|r| match read_closer(model, img, &r, opts.region) {
            Ok(Some(closer)) => closer,
            _ => r,
        })
        .collect();
    // A plate's registration is its largest text: smaller rows stacked right above or below
    // a row of larger glyphs (state names, slogans, dealer frames) are not plates.
    let rows: Vec<(Rect, f32)> = reads
        .iter()
        .map(|r| {
            let glyphs: Vec<Rect> = r.chars.iter().map(|c| c.bounds).collect();
            (union(&glyphs), median_height(&glyphs))
        })
        .collect();
    // The larger row must read about as well: a row of noise spanning half the picture does
    // not hide the plate inside it, and a sign above a plate does not hide the plate.
    let stacked_under_larger = |i: usize| {
        let (a, ha) = rows[i];
        rows.iter().zip(&reads).any(|(&(b, hb), larger)| {
            let ix = x_overlap(&a, &b);
            let gap = y_gap(&a, &b).max(0);
            // Much larger glyphs (a plate's, over its state name or dealer's lettering) win
            // unless they read far worse; glyphs only a little larger must read better.
            let wins = if hb > 1.6 * ha {
                larger.confidence > 0.75 * reads[i].confidence
            } else {
                larger.confidence > reads[i].confidence
            };
            hb > 1.25 * ha
                && ix as f32 > 0.5 * a.width.min(b.width) as f32
                && (gap as f32) < 2.5 * hb
                && wins
        })
    };
    let frame = (img.width() as f32, img.height() as f32);
    // A format may have made a date's digits letters (`OSZ0600` of `2014-05-02 08:00:57`):
    // the symbols as the classifier saw them tell a caption too.
    let at_frame_edge = |i: usize| {
        let r = &reads[i];
        is_caption(rows[i].0, rows[i].1, &r.text, frame)
            || is_caption(rows[i].0, rows[i].1, &r.unformatted, frame)
    };
    // A row with a row of glyphs of about its size right above or below it is a line of a
    // paragraph (a shop sign, a poster, a truck's lettering), not a single-line plate: it
    // ranks after the rows that stand alone.
    let in_paragraph = |i: usize| {
        let (a, ha) = rows[i];
        rows.iter().enumerate().any(|(j, &(b, hb))| {
            let gap = y_gap(&a, &b);
            j != i
                && (0.75..=1.33).contains(&(hb / ha))
                && x_overlap(&a, &b) as f32 > 0.5 * a.width.min(b.width) as f32
                && gap >= 0
                && (gap as f32) < ha.max(hb)
        })
    };
    let keep: Vec<bool> = (0..reads.len())
        .map(|i| !stacked_under_larger(i) && !at_frame_edge(i))
        .collect();
    // Rows of glyphs that rank after the others: lines of a paragraph, and a plate's own
    // printed words (a state's name, a slogan) that are not its registration.
    let paragraph: Vec<bool> = (0..reads.len())
        .map(|i| in_paragraph(i) || is_plate_word(&reads[i].text))
        .collect();
    let mut reads: Vec<(bool, PlateRead)> = reads
        .into_iter()
        .zip(keep)
        .zip(paragraph)
        .filter_map(|((r, k), p)| k.then_some((p, r)))
        .collect();
    reads.sort_by(|(pa, a), (pb, b)| pa.cmp(pb).then(b.confidence.total_cmp(&a.confidence)));
    // Where a row that stands alone reads well (a plate), those rows are not reported at all:
    // ranking after it, they only took the places that clutter left (a sign's `PRIVATE` over
    // its `PROPERTY` beside a car's plate).
    if reads.iter().any(|(p, r)| !p && r.confidence >= READ_WELL) {
        reads.retain(|(p, _)| !p);
    }
    Ok(apart(reads.into_iter().map(|(_, r)| r), opts.max_results))
}

/// Whether a row of glyphs `h` tall at `row`, read as `text`, in a frame of `(w, ht)` pixels
/// is a camera's on-screen caption (date, time, camera name) rather than a plate: text tucked
/// into a corner of the frame (less than a glyph's height from a side, and from the top or
/// bottom), which may also be a plate cut by two sides of the frame, and digits with at most
/// two letters among them (a date, a time) anywhere along the top or bottom.
fn is_caption(row: Rect, h: f32, text: &str, (w, ht): (f32, f32)) -> bool {
    let vertical = (row.y as f32) < 0.75 * h || (row.y + row.height) as f32 + 0.75 * h > ht;
    let horizontal = (row.x as f32) < h || (row.x + row.width) as f32 + h > w;
    // A format may have made a digit or two of a date or a time letters (`4O51405`, and
    // `28 11:08:05` read as `BT10805` where European plates have letters).
    let letters = text.bytes().filter(|b| !b.is_ascii_digit()).count();
    let digits = letters <= 2 && 2 * letters < text.len();
    vertical && (horizontal || digits)
}

/// Words printed on plates besides the registration, run together (US states, types of
/// plate, Brazil's Mercosur header, common state slogans).
const PLATE_WORDS: &[&str] = &[
    "ALABAMA",
    "ALASKA",
    "ARIZONA",
    "ARKANSAS",
    "CALIFORNIA",
    "COLORADO",
    "CONNECTICUT",
    "DELAWARE",
    "FLORIDA",
    "GEORGIA",
    "HAWAII",
    "IDAHO",
    "ILLINOIS",
    "INDIANA",
    "IOWA",
    "KANSAS",
    "KENTUCKY",
    "LOUISIANA",
    "MAINE",
    "MARYLAND",
    "MASSACHUSETTS",
    "MICHIGAN",
    "MINNESOTA",
    "MISSISSIPPI",
    "MISSOURI",
    "MONTANA",
    "NEBRASKA",
    "NEVADA",
    "NEWHAMPSHIRE",
    "NEWJERSEY",
    "NEWMEXICO",
    "NEWYORK",
    "NORTHCAROLINA",
    "NORTHDAKOTA",
    "OHIO",
    "OKLAHOMA",
    "OREGON",
    "PENNSYLVANIA",
    "RHODEISLAND",
    "SOUTHCAROLINA",
    "SOUTHDAKOTA",
    "TENNESSEE",
    "TEXAS",
    "UTAH",
    "VERMONT",
    "VIRGINIA",
    "WASHINGTON",
    "WESTVIRGINIA",
    "WISCONSIN",
    "WYOMING",
    "DISTRICTOFCOLUMBIA",
    "PUERTORICO",
    "TRUCK",
    "TRAILER",
    "DEALER",
    "COMMERCIAL",
    "MOTORCYCLE",
    "PASSENGER",
    "FIREFIGHTER",
    "VETERAN",
    "EXEMPT",
    "GOVERNMENT",
    "OFFICIAL",
    "APPORTIONED",
    "TEMPORARY",
    "BRASIL",
    "MERCOSUL",
    "SUNSHINESTATE",
    "EMPIRESTATE",
    "LANDOFLINCOLN",
    "LONESTARSTATE",
    "GARDENSTATE",
    "LIVEFREEORDIE",
    "GRANDCANYONSTATE",
    "PEACHSTATE",
    "VACATIONLAND",
    "FAMOUSPOTATOES",
    "THEFIRSTSTATE",
    "GREATLAKESSTATE",
];

/// Whether `text` (four symbols or more) is one of [`PLATE_WORDS`] or a piece of one, read
/// with a letter's usual digit look-alikes.
fn is_plate_word(text: &str) -> bool {
    let letters: String = text
        .chars()
        .map(|c| match c {
            '0' => 'O',
            '1' => 'I',
            '2' => 'Z',
            '5' => 'S',
            '6' => 'G',
            '8' => 'B',
            c => c,
        })
        .collect();
    letters.len() >= 4 && PLATE_WORDS.iter().any(|w| w.contains(&letters))
}

/// Glyphs shorter than this are read a second time from their plate's area scaled up.
const SMALL_GLYPH: f32 = 20.0;
/// The glyph height a second look scales small glyphs to.
const CLOSER_GLYPH: f32 = 32.0;
/// The share of the first reading's confidence a closer one with more glyphs needs.
const MORE_GLYPHS_READ: f32 = 0.8;
/// A closer reading with fewer glyphs replaces only a reading less sure than this (a sure
/// reading's glyphs are glyphs: `TG399` read closer lost the `V` of `TVG399`).
const SURE_READ: f32 = 0.9;

/// Small glyphs touch each other and their strokes break at one pixel's difference: the plate's
/// area, scaled up (bicubic) until its glyphs are [`CLOSER_GLYPH`] tall, is searched and read
/// again, where thin gaps and strokes are several pixels wide. Only readings from the filter's
/// default reporting threshold up get the second look (a weaker one is mostly other text).
/// The closer reading replaces `read` when it [`agrees`] with it and reads better, or finds
/// glyphs the first one lost (blurred into a neighbour or the frame: `YF268` of `YF2U68`) and
/// reads nearly as well ([`MORE_GLYPHS_READ`]): even a sure reading may miss a glyph.
fn read_closer(
    model: &Cnn,
    img: &GrayImage<'_>,
    read: &PlateRead,
    region: Region,
) -> opencv::Result<Option<PlateRead>> {
    let glyphs: Vec<Rect> = read.chars.iter().map(|c| c.bounds).collect();
    let gh = median_height(&glyphs);
    if gh >= SMALL_GLYPH || read.confidence < DEFAULT_MIN_CONFIDENCE {
        return Ok(None);
    }
    let row = union(&glyphs);
    let Some((sub, x, y)) = sub_image(img, Some(grown(row, gh as u32))) else {
        return Ok(None);
    };
    let k = CLOSER_GLYPH / gh;
    let mut big = Mat::default();
    imgproc::resize(
        &sub.mat()?,
        &mut big,
        Size::new(
            (sub.width() as f32 * k).round() as i32,
            (sub.height() as f32 * k).round() as i32,
        ),
        0.0,
        0.0,
        imgproc::INTER_CUBIC,
    )?;
    let big = Work::Owned(big);
    let view = big.view();
    let range = HeightRange {
        min: (0.6 * CLOSER_GLYPH) as i32,
        max: (1.6 * CLOSER_GLYPH) as i32,
    };
    let size = (view.width() as u32, view.height() as u32);
    let cands = candidates_in(&view, range, region, 1.0, (0, 0), size, segment::CONTRAST)?;
    let (w, h) = (img.width() as u32, img.height() as u32);
    let back = |r: Rect| {
        let s = scale_rect(r, k);
        Rect::new(s.x + x, s.y + y, s.width.max(1), s.height.max(1))
    };
    let best = group_rows(&cands)
        .iter()
        .filter_map(|g| read_group(model, &view, g, region))
        .filter_map(|mut r| {
            for c in &mut r.chars {
                c.bounds = back(c.bounds);
            }
            let glyphs: Vec<Rect> = r.chars.iter().map(|c| c.bounds).collect();
            r.bounds = plate_bounds(&glyphs, r.region, w, h);
            let more = r.chars.len() > read.chars.len()
                && r.confidence > MORE_GLYPHS_READ * read.confidence;
            let fewer = r.chars.len() < read.chars.len() && read.confidence >= SURE_READ;
            ((r.confidence > read.confidence && !fewer || more)
                && overlap(&union(&glyphs), &row) > 0.5
                && agrees(read, &r))
            .then_some(r)
        })
        .max_by(|a, b| a.confidence.total_cmp(&b.confidence));
    Ok(best)
}

/// Plates tilted more than this many degrees are read a second time levelled. The classifier
/// learnt glyphs rotated up to 6 degrees: below 4 a level reading gains little and may trade
/// one look-alike for another (of three dev photos tilted 2.5-3 degrees, one read level took
/// an `A` and a `1` for a `4` and an `I`).
const LEVEL_ABOVE: f32 = 4.0;
/// Readings less confident than this are not read again level: they are mostly other text
/// (a tilted row of a frame's clutter each video frame), and the tilted dev photos read no
/// better for them.
const LEVEL_READ: f32 = 0.4;

/// A tilted plate's glyphs, cut upright, take in their neighbours' corners and reach the
/// classifier rotated. The row's slope (least squares through the glyph centres) gives its
/// tilt: past [`LEVEL_ABOVE`] degrees (for a reading of [`LEVEL_READ`] or more), the area about
/// the row is rotated level, searched and read again, and the level reading (its glyphs'
/// boxes turned back into the picture) replaces `read` when it reads better with no fewer
/// glyphs.
fn read_level(
    model: &Cnn,
    img: &GrayImage<'_>,
    read: &PlateRead,
    region: Region,
) -> opencv::Result<Option<PlateRead>> {
    if read.confidence < LEVEL_READ {
        return Ok(None);
    }
    let glyphs: Vec<Rect> = read.chars.iter().map(|c| c.bounds).collect();
    let Some(angle) = tilt(&glyphs).filter(|a| a.abs() > LEVEL_ABOVE) else {
        return Ok(None);
    };
    let gh = median_height(&glyphs);
    let row = union(&glyphs);
    let Some((sub, x, y)) = sub_image(img, Some(grown(row, gh as u32))) else {
        return Ok(None);
    };
    let (w, h) = (sub.width() as f32, sub.height() as f32);
    let centre = Point2f::new(w / 2.0, h / 2.0);
    // Counter-clockwise by the tilt: a row falling to the right comes level.
    let turn = imgproc::get_rotation_matrix_2d(centre, f64::from(angle), 1.0)?;
    let mut level = Mat::default();
    imgproc::warp_affine(
        &sub.mat()?,
        &mut level,
        &turn,
        Size::new(w as i32, h as i32),
        imgproc::INTER_LINEAR,
        BORDER_REPLICATE,
        Scalar::default(),
    )?;
    let level = Work::Owned(level);
    let view = level.view();
    let range = HeightRange {
        min: ((0.7 * gh) as i32).max(MIN_GLYPH),
        max: (1.4 * gh) as i32 + 1,
    };
    let size = (view.width() as u32, view.height() as u32);
    let cands = candidates_in(&view, range, region, 1.0, (0, 0), size, segment::CONTRAST)?;
    // The level picture's boxes back in the picture (offset by the area's corner).
    let back = Turn::new((x as f32 + centre.x, y as f32 + centre.y), -angle);
    let shifted = |r: Rect| {
        [
            (r.x + x) as f32,
            (r.y + y) as f32,
            r.width as f32,
            r.height as f32,
        ]
    };
    // A glyph's box: its centre turned back, its size kept.
    let glyph_back = |r: Rect| {
        let [gx, gy, gw, gh] = shifted(r);
        let (cx, cy) = back.point(gx + gw / 2.0, gy + gh / 2.0);
        let left = (cx - gw / 2.0).round().max(0.0) as u32;
        let top = (cy - gh / 2.0).round().max(0.0) as u32;
        Rect::new(left, top, r.width, r.height)
    };
    // The plate's box: the upright box about its corners turned back.
    let size = (img.width() as f32, img.height() as f32);
    let plate_back = |r: Rect| {
        let [left, top, w, h] = back.bounds(shifted(r), size);
        Rect::new(
            left as u32,
            top as u32,
            w.max(1.0) as u32,
            h.max(1.0) as u32,
        )
    };
    let best = group_rows(&cands)
        .iter()
        .filter_map(|g| read_group(model, &view, g, region))
        .filter_map(|mut r| {
            r.bounds = plate_back(r.bounds);
            for c in &mut r.chars {
                c.bounds = glyph_back(c.bounds);
            }
            let glyphs: Vec<Rect> = r.chars.iter().map(|c| c.bounds).collect();
            (r.confidence > read.confidence
                && r.chars.len() >= read.chars.len()
                && overlap(&union(&glyphs), &row) > 0.5)
                .then_some(r)
        })
        .max_by(|a, b| a.confidence.total_cmp(&b.confidence));
    Ok(best)
}

/// A turn of the plane by some degrees about a point, counter-clockwise on a picture (as
/// OpenCV's `get_rotation_matrix_2d` turns one for a positive angle).
#[derive(Debug, Clone, Copy)]
pub struct Turn {
    centre: (f32, f32),
    cos: f32,
    sin: f32,
}

impl Turn {
    /// A turn by `degrees` about `centre`.
    pub fn new(centre: (f32, f32), degrees: f32) -> Turn {
        let (sin, cos) = degrees.to_radians().sin_cos();
        Turn { centre, cos, sin }
    }

    /// Where the point `(x, y)` goes.
    pub fn point(&self, x: f32, y: f32) -> (f32, f32) {
        let (dx, dy) = (x - self.centre.0, y - self.centre.1);
        (
            self.centre.0 + self.cos * dx + self.sin * dy,
            self.centre.1 - self.sin * dx + self.cos * dy,
        )
    }

    /// The upright box `[x, y, width, height]` about the corners of `r` (the same) turned,
    /// cut to a picture of `(width, height)`.
    pub fn bounds(&self, [x, y, w, h]: [f32; 4], (width, height): (f32, f32)) -> [f32; 4] {
        let corners =
            [(x, y), (x + w, y), (x, y + h), (x + w, y + h)].map(|(px, py)| self.point(px, py));
        let left = corners
            .iter()
            .map(|c| c.0)
            .fold(f32::MAX, f32::min)
            .max(0.0);
        let top = corners
            .iter()
            .map(|c| c.1)
            .fold(f32::MAX, f32::min)
            .max(0.0);
        let right = corners.iter().map(|c| c.0).fold(0.0, f32::max).min(width);
        let bottom = corners.iter().map(|c| c.1).fold(0.0, f32::max).min(height);
        [left, top, right - left, bottom - top]
    }
}

/// The tilt of a row of glyphs in degrees (positive when it falls to the right), from the
/// least-squares line through their centres; none for fewer than three glyphs.
fn tilt(glyphs: &[Rect]) -> Option<f32> {
    if glyphs.len() < 3 {
        return None;
    }
    let centres: Vec<(f32, f32)> = glyphs
        .iter()
        .map(|r| {
            (
                r.x as f32 + r.width as f32 / 2.0,
                r.y as f32 + r.height as f32 / 2.0,
            )
        })
        .collect();
    let n = centres.len() as f32;
    let mx = centres.iter().map(|c| c.0).sum::<f32>() / n;
    let my = centres.iter().map(|c| c.1).sum::<f32>() / n;
    let sxx: f32 = centres.iter().map(|c| (c.0 - mx).powi(2)).sum();
    let sxy: f32 = centres.iter().map(|c| (c.0 - mx) * (c.1 - my)).sum();
    (sxx > 0.0).then(|| (sxy / sxx).atan().to_degrees())
}

/// `r` grown by `margin` on every side (short of the picture's top and left).
fn grown(r: Rect, margin: u32) -> Rect {
    Rect::new(
        r.x.saturating_sub(margin),
        r.y.saturating_sub(margin),
        r.width + 2 * margin,
        r.height + 2 * margin,
    )
}

/// A non-empty rectangle inside the image.
fn inside(img: &GrayImage<'_>, r: &Rect) -> bool {
    r.fits(img.width() as u32, img.height() as u32) && r.width > 0
}

/// Whether `a` lies inside `b`.
fn within(a: &Rect, b: &Rect) -> bool {
    a.x >= b.x && a.y >= b.y && a.x + a.width <= b.x + b.width && a.y + a.height <= b.y + b.height
}

/// The rows between two boxes, one above the other (negative when they overlap).
fn y_gap(a: &Rect, b: &Rect) -> i64 {
    if a.y > b.y {
        a.y as i64 - (b.y + b.height) as i64
    } else {
        b.y as i64 - (a.y + a.height) as i64
    }
}

/// How many columns two boxes share.
fn x_overlap(a: &Rect, b: &Rect) -> u32 {
    (a.x + a.width)
        .min(b.x + b.width)
        .saturating_sub(a.x.max(b.x))
}

/// Intersection over the smaller box.
fn overlap(a: &Rect, b: &Rect) -> f32 {
    let ix = x_overlap(a, b);
    let iy = (a.y + a.height)
        .min(b.y + b.height)
        .saturating_sub(a.y.max(b.y));
    let inter = (ix * iy) as f32;
    let small = (a.area().min(b.area())).max(1) as f32;
    inter / small
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captions_are_told_from_plates_by_place_and_text() {
        let frame = (1280.0, 720.0);
        let top = Rect::new(400, 2, 120, 18);
        let cases = [
            // A date along the top, anywhere along it (or the bottom); a name only in a corner.
            (top, 18.0, "20240514", true),
            (Rect::new(400, 700, 120, 18), 18.0, "1230", true),
            // A date a European format read with a letter `O` for a `0`.
            (top, 18.0, "4O51405", true),
            // A date and time read with letters where European plates have them.
            (Rect::new(55, 2, 66, 15), 15.0, "BT10805", true),
            (top, 18.0, "CAM2", false),
            (Rect::new(4, 2, 120, 18), 18.0, "CAM2", true),
            // As many letters as digits, or more than two, are a plate cut by the frame's top.
            (top, 18.0, "BOB12", false),
            (top, 18.0, "ABC1234", false),
            (top, 18.0, "4O5B40A", false),
            // Plates away from the edges, digits or not.
            (Rect::new(400, 300, 120, 30), 30.0, "1049338", false),
            (Rect::new(4, 300, 120, 30), 30.0, "ABC123", false),
        ];
        for (row, h, text, caption) in cases {
            assert_eq!(
                is_caption(row, h, text, frame),
                caption,
                "{text} at {row:?}"
            );
        }
    }

    #[test]
    fn a_plates_printed_words_are_told_from_registrations() {
        // Letters only: a reading is mapped to letters to be looked up.
        assert!(
            PLATE_WORDS
                .iter()
                .all(|w| w.bytes().all(|b| b.is_ascii_uppercase()))
        );
        for word in [
            "ALASKA", "SHINGTO", "REFIGHT", "5UNSH1NE", "TEXA5", "BRASIL",
        ] {
            assert!(is_plate_word(word), "{word}");
        }
        for plate in ["AKS4329", "FHG521", "OHI", "TEXAS1", "ABC1D23"] {
            assert!(!is_plate_word(plate), "{plate}");
        }
    }

    #[test]
    fn regions_parse_and_print() {
        for r in [Region::Auto, Region::Eu, Region::Us, Region::Br] {
            assert_eq!(r.name().parse::<Region>(), Ok(r));
        }
        assert_eq!("BR".parse::<Region>(), Ok(Region::Br));
        assert!(
            "mars"
                .parse::<Region>()
                .unwrap_err()
                .contains("unknown plate region")
        );
    }

    #[test]
    fn blank_and_tiny_images_have_no_plates() {
        // Slivers too: shrunk to fit the search, one side stays a pixel.
        for (w, h) in [(1, 1), (2, 2), (64, 48), (640, 480), (8000, 3), (3, 4000)] {
            for v in [0u8, 128, 255] {
                let data = vec![v; w * h];
                let img = GrayImage::new(&data, w, h, w).unwrap();
                assert!(
                    detect_plates(&img, &PlateOptions::default())
                        .unwrap()
                        .is_empty()
                );
            }
        }
    }

    #[test]
    fn a_blue_band_before_the_glyphs_is_not_a_glyph() {
        use prism_frame::{Color, FrameBuf, PixelFormat};
        let mut f = FrameBuf::filled(PixelFormat::I420, 200, 60, Color::rgb(240, 240, 240));
        let mut row = Vec::new();
        for i in 0..6 {
            let r = Rect::new(40 + i * 24, 16, 14, 28);
            f.fill_rect(r, Color::rgb(20, 20, 20));
            row.push(r);
        }
        let band = Rect::new(10, 14, 16, 30);
        f.fill_rect(band, Color::rgb(20, 40, 200));
        let img = GrayImage::of_frame(&f).unwrap();
        assert!(img.colourfulness(band).unwrap() > 60.0);
        assert!(img.colourfulness(row[0]).unwrap() < 4.0);
        let mut with_band = vec![band];
        with_band.extend(&row);
        assert!(coloured_band_first(&img, &with_band));
        assert!(!coloured_band_first(&img, &row));
        // Without colour (gray8) nothing is dropped.
        let gray = FrameBuf::zeroed(PixelFormat::Gray8, 200, 60);
        assert!(!coloured_band_first(
            &GrayImage::of_frame(&gray).unwrap(),
            &with_band
        ));
    }

    #[test]
    fn dots_and_dashes_between_glyphs_are_marks() {
        use prism_frame::{Color, FrameBuf, PixelFormat};
        // Two glyph boxes 30 px tall with a 16 px gap; ink (20) on a light plate (230).
        let (a, b) = (Rect::new(20, 15, 16, 30), Rect::new(52, 15, 16, 30));
        let with = |marks: &[Rect], inverted: bool| {
            let (ink, plate) = if inverted { (230, 20) } else { (20, 230) };
            let mut f =
                FrameBuf::filled(PixelFormat::Gray8, 100, 60, Color::rgb(plate, plate, plate));
            for &r in [a, b].iter().chain(marks) {
                f.fill_rect(r, Color::rgb(ink, ink, ink));
            }
            let img = GrayImage::of_frame(&f).unwrap();
            mark_between(&img, a, b, inverted)
        };
        // Brazil's dot and a dash, at mid-height, apart from both glyphs; light ink too.
        assert!(with(&[Rect::new(41, 28, 5, 4)], false));
        assert!(with(&[Rect::new(39, 29, 10, 3)], false));
        assert!(with(&[Rect::new(41, 28, 5, 4)], true));
        // Nothing, a bolt's height of ink, a dot low in the line, and a bar that joins the
        // two glyphs (an `H` cut in two) are not.
        assert!(!with(&[], false));
        assert!(!with(&[Rect::new(41, 20, 5, 14)], false));
        assert!(!with(&[Rect::new(41, 38, 5, 4)], false));
        assert!(!with(&[Rect::new(36, 28, 16, 4)], false));
        // Glyphs that nearly touch have no room for a mark.
        let f = FrameBuf::filled(PixelFormat::Gray8, 100, 60, Color::rgb(230, 230, 230));
        let img = GrayImage::of_frame(&f).unwrap();
        assert!(!mark_between(&img, a, Rect::new(37, 15, 16, 30), false));
    }

    #[test]
    fn a_glyph_the_segmenter_missed_is_read_from_its_gap() {
        // Six Ls; the third (or the last) was not cut as a blob.
        let ls: Vec<Rect> = (0..6).map(|i| Rect::new(40 + i * 24, 16, 15, 28)).collect();
        for missed in [2, 5] {
            let cut: Vec<Rect> = (0..6).filter(|&i| i != missed).map(|i| ls[i]).collect();
            let f = row_of_ls(&ls, |_| true);
            assert_eq!(refill(&GrayImage::of_frame(&f).unwrap(), &cut), ls);
            // Nothing is added where the place is empty.
            let f = row_of_ls(&ls, |i| i != missed);
            assert_eq!(refill(&GrayImage::of_frame(&f).unwrap(), &cut), cut);
        }
        // Two glyphs missed at an end are both read.
        let f = row_of_ls(&ls, |_| true);
        assert_eq!(refill(&GrayImage::of_frame(&f).unwrap(), &ls[..4]), ls);
        // A frame edge beyond the last glyph runs on above and below the row: not a glyph.
        let mut f = row_of_ls(&ls, |i| i != 5);
        f.fill_rect(
            Rect::new(160, 2, 5, 56),
            prism_frame::Color::rgb(25, 25, 25),
        );
        assert_eq!(
            refill(&GrayImage::of_frame(&f).unwrap(), &ls[..5]),
            &ls[..5]
        );
        // Nor is the edge of something dark beside the row (a bumper, the car body behind a
        // light plate): its ink runs on past the glyph's place.
        let mut f = row_of_ls(&ls, |i| i != 5);
        f.fill_rect(
            Rect::new(172, 16, 68, 28),
            prism_frame::Color::rgb(25, 25, 25),
        );
        assert_eq!(
            refill(&GrayImage::of_frame(&f).unwrap(), &ls[..5]),
            &ls[..5]
        );
        // A last glyph whose top touches a sticker is still read: it is whole and sure.
        let mut f = row_of_ls(&ls, |_| true);
        f.fill_rect(
            Rect::new(ls[5].x + 8, 2, 7, 13),
            prism_frame::Color::rgb(25, 25, 25),
        );
        assert_eq!(refill(&GrayImage::of_frame(&f).unwrap(), &ls[..5]), ls);
    }

    #[test]
    fn a_glyph_missed_beside_a_space_is_read() {
        // Two groups of three Ls with a space of half a pitch between them; the first L after
        // the space was not cut. Counted from its left neighbour its place is off by half a
        // pitch, counted from its right neighbour it is right.
        let ls: Vec<Rect> = [40, 64, 88, 124, 148, 172]
            .into_iter()
            .map(|x| Rect::new(x, 16, 15, 28))
            .collect();
        let cut: Vec<Rect> = [0, 1, 2, 4, 5].into_iter().map(|i| ls[i]).collect();
        let f = row_of_ls(&ls, |_| true);
        assert_eq!(refill(&GrayImage::of_frame(&f).unwrap(), &cut), ls);
        let f = row_of_ls(&ls, |i| i != 3);
        assert_eq!(refill(&GrayImage::of_frame(&f).unwrap(), &cut), cut);
    }

    #[test]
    fn rows_of_bars_keep_a_fraction_of_their_confidence() {
        let wide: Vec<Rect> = (0..6).map(|i| Rect::new(i * 20, 0, 12, 24)).collect();
        let thin: Vec<Rect> = (0..6).map(|i| Rect::new(i * 20, 0, 5, 24)).collect();
        assert_eq!(stripe_penalty(&wide, "AB123C"), 1.0);
        // Window posts read as 1s and Is, a railing as 7s and Ts.
        assert_eq!(stripe_penalty(&wide, "11UJ11"), 0.6);
        assert_eq!(stripe_penalty(&wide[..5], "T17IT"), 0.6);
        assert_eq!(stripe_penalty(&wide[..5], "MX117"), 1.0);
        assert!((stripe_penalty(&thin, "1I1I1I") - 0.24).abs() < 1e-6);
    }

    #[test]
    fn a_glyph_missed_in_a_row_with_a_wide_space_is_read() {
        // Missouri's "AB1 CD2": three glyphs, an emblem's width of space, three glyphs; the
        // second was not cut. Half the pitches left are two glyphs wide, yet the place is a
        // glyph's pitch on from its neighbours.
        let ls: Vec<Rect> = [40, 64, 88, 136, 160, 184]
            .into_iter()
            .map(|x| Rect::new(x, 16, 15, 28))
            .collect();
        let cut: Vec<Rect> = [0, 2, 3, 4, 5].into_iter().map(|i| ls[i]).collect();
        let f = row_of_ls(&ls, |_| true);
        assert_eq!(refill(&GrayImage::of_frame(&f).unwrap(), &cut), ls);
    }

    /// Probabilities of a glyph read as class `c` with probability `p`.
    fn read_as(c: usize, p: f32) -> decode::Probs {
        let mut probs = [0.0f32; classifier::CLASSES];
        probs[c] = p;
        probs
    }

    #[test]
    fn strays_that_do_not_line_up_are_dropped() {
        let sure = |c: usize| read_as(c, 0.95);
        let unsure = [1.0 / classifier::CLASSES as f32; classifier::CLASSES];
        // Two groups of three glyphs on a row climbing a pixel per glyph (a tilted plate).
        let row: Vec<(Rect, decode::Probs)> = [40, 64, 88, 130, 154, 178]
            .into_iter()
            .enumerate()
            .map(|(i, x)| (Rect::new(x, 20 - i as u32, 15, 28), sure(i)))
            .collect();
        let with = |extra: Vec<(Rect, decode::Probs)>| {
            let mut chosen = row.clone();
            chosen.extend(extra);
            chosen.sort_by_key(|(r, _)| r.x);
            drop_strays(&mut chosen);
            chosen.iter().map(|(r, _)| r.x).collect::<Vec<_>>()
        };
        let kept: Vec<u32> = row.iter().map(|(r, _)| r.x).collect();
        // The tilted row stays whole.
        assert_eq!(with(vec![]), kept);
        // An emblem between the groups, lower and shorter than the glyphs, that the classifier
        // is unsure of: dropped. Were it sure of it, it would stay.
        let emblem = Rect::new(108, 24, 14, 18);
        assert_eq!(with(vec![(emblem, unsure)]), kept);
        assert_eq!(with(vec![(emblem, sure(3))]).len(), 7);
        // A thin upright after the last glyph that runs on below the row: a frame edge.
        let edge = (Rect::new(197, 12, 4, 40), sure(1));
        assert_eq!(with(vec![edge]), kept);
        // A sure `1` there that lines up with its neighbour stays.
        let one = (Rect::new(197, 14, 5, 28), sure(1));
        assert_eq!(with(vec![one]).len(), 7);
        // A thin blob in line before the first glyph, 24 px off where the glyphs stand 9 apart:
        // unreadable, it is a frame's edge; read surely, it stays (a `1` spaced off), and so
        // does an unreadable one 12 px off.
        let off = |x: u32, p: decode::Probs| (Rect::new(x, 20, 5, 28), p);
        assert_eq!(with(vec![off(11, unsure)]), kept);
        assert_eq!(with(vec![off(11, sure(1))]).len(), 7);
        assert_eq!(with(vec![off(23, unsure)]).len(), 7);
    }

    #[test]
    fn a_turn_is_counter_clockwise_on_the_picture() {
        let close = |(a, b): (f32, f32), (c, d): (f32, f32)| (a - c).abs() + (b - d).abs() < 1e-3;
        // A point right of the centre goes up (y grows downwards), and back again.
        let t = Turn::new((5.0, 5.0), 90.0);
        assert!(close(t.point(15.0, 5.0), (5.0, -5.0)));
        assert!(close(
            Turn::new((5.0, 5.0), -90.0).point(5.0, -5.0),
            (15.0, 5.0)
        ));
        // A 10 px square turned 45 degrees about its centre spans its diagonal, cut to the
        // picture.
        let [x, y, w, h] =
            Turn::new((20.0, 20.0), 45.0).bounds([15.0, 15.0, 10.0, 10.0], (100.0, 22.0));
        let d = 10.0 * std::f32::consts::SQRT_2;
        assert!(
            (x - (20.0 - d / 2.0)).abs() < 1e-3 && (w - d).abs() < 1e-3,
            "{x} {w}"
        );
        assert!(
            (y - (20.0 - d / 2.0)).abs() < 1e-3 && (h - (22.0 - y)).abs() < 1e-3,
            "{y} {h}"
        );
    }

    #[test]
    fn a_rows_tilt_is_the_slope_through_its_glyph_centres() {
        // Glyphs 20 px apart, each 3.5 px lower than the last (10 degrees), of two heights.
        let row: Vec<Rect> = (0..6)
            .map(|i| {
                let h = if i % 2 == 0 { 28 } else { 24 };
                let cy = 40.0 + 20.0 * i as f32 * 10f32.to_radians().tan();
                Rect::new(20 + 20 * i, (cy - h as f32 / 2.0).round() as u32, 14, h)
            })
            .collect();
        let t = tilt(&row).unwrap();
        assert!((t - 10.0).abs() < 0.5, "{t}");
        // Rising to the right: negative.
        let mut rising = row.clone();
        rising.reverse();
        for (r, x) in rising.iter_mut().zip((0..6).map(|i| 20 + 20 * i)) {
            r.x = x;
        }
        assert!((tilt(&rising).unwrap() + 10.0).abs() < 0.5);
        assert_eq!(tilt(&row[..2]), None);
    }

    #[test]
    fn emblems_between_groups_are_dropped() {
        // Three glyphs, a space, three glyphs (15 px wide, 9 px apart).
        let glyph = |x: u32, c: usize, p: f32| (Rect::new(x, 20, 15, 28), read_as(c, p));
        let row: Vec<(Rect, decode::Probs)> = [40, 64, 88, 160, 184, 208]
            .into_iter()
            .enumerate()
            .map(|(i, x)| glyph(x, i, 0.95))
            .collect();
        let with = |extra: (Rect, decode::Probs)| {
            let mut chosen = row.clone();
            chosen.push(extra);
            chosen.sort_by_key(|(r, _)| r.x);
            drop_emblems(&mut chosen);
            chosen.len()
        };
        assert_eq!(with(glyph(232, 6, 0.95)), 7);
        // In the space, well apart from both groups: an emblem unless read surely.
        assert_eq!(with(glyph(124, 3, 0.8)), 6);
        assert_eq!(with(glyph(124, 3, 0.95)), 7);
        // A glyph a usual gap from a group is one of it, however unsure.
        assert_eq!(with(glyph(112, 3, 0.3)), 7);
        // Twice a glyph's width and unsure: an emblem, even close to both groups.
        let wide = (Rect::new(110, 20, 32, 28), read_as(3, 0.3));
        assert_eq!(with(wide), 6);
        assert_eq!(with((wide.0, read_as(3, 0.8))), 7);
        // At an end, [`drop_strays`] decides.
        assert_eq!(with(glyph(16, 3, 0.3)), 7);
    }

    #[test]
    fn two_touching_glyphs_are_split() {
        // The fourth L stands where the third's foot ends: the two are one blob.
        let mut ls: Vec<Rect> = (0..6).map(|i| Rect::new(40 + i * 24, 16, 15, 28)).collect();
        for r in &mut ls[3..] {
            r.x -= 9;
        }
        let f = row_of_ls(&ls, |_| true);
        let img = GrayImage::of_frame(&f).unwrap();
        let model = Cnn::builtin();
        let mut chosen: Vec<_> = [ls[0], ls[1], union(&ls[2..4]), ls[4], ls[5]]
            .iter()
            .map(|r| (*r, model.classify(&char_patch(&img, *r, true))))
            .collect();
        split_merged(model, &img, &mut chosen, false);
        // Cut at the column where the foot meets the stem, each half read as an L.
        let mut third = ls[2];
        third.width -= 1;
        let boxes: Vec<Rect> = chosen.iter().map(|(r, _)| *r).collect();
        assert_eq!(boxes, [ls[0], ls[1], third, ls[3], ls[4], ls[5]]);
        let l = classifier::class_of('L');
        for (r, p) in &chosen {
            let best = (0..classifier::CLASSES).max_by(|&a, &b| p[a].total_cmp(&p[b]));
            assert_eq!(best, l, "{r:?}");
        }
    }

    #[test]
    fn a_glyph_joined_to_clutter_is_read_alone() {
        let ls: Vec<Rect> = (0..6).map(|i| Rect::new(12 + i * 36, 16, 15, 28)).collect();
        let mut f = row_of_ls(&ls, |_| true);
        // A blot (a bolt, a sticker) joined to the end of the fourth L's foot.
        let blot = Rect::new(ls[3].x + 15, ls[3].y + 18, 6, 10);
        f.fill_rect(blot, prism_frame::Color::rgb(25, 25, 25));
        let img = GrayImage::of_frame(&f).unwrap();
        let model = Cnn::builtin();
        let boxes = [ls[0], ls[1], ls[2], union(&[ls[3], blot]), ls[4], ls[5]];
        let mut chosen: Vec<_> = boxes
            .iter()
            .map(|r| (*r, model.classify(&char_patch(&img, *r, true))))
            .collect();
        let l = classifier::class_of('L').unwrap();
        assert!(best_symbol(&chosen[3].1) < 0.6, "{:?}", chosen[3].1);
        split_merged(model, &img, &mut chosen, false);
        let got: Vec<Rect> = chosen.iter().map(|(r, _)| *r).collect();
        assert_eq!(got, ls);
        assert!(chosen[3].1[l] > 0.7, "{:?}", chosen[3].1);
    }

    #[test]
    fn a_row_with_fewer_than_two_legible_glyphs_is_not_read() {
        // Six boxes: an L, then a mirrored L (a sure J) or a plus, then scribbles (a grille,
        // branches) in which the classifier is unsure of any symbol.
        let boxes: Vec<Rect> = (0..6).map(|i| Rect::new(12 + i * 36, 16, 15, 28)).collect();
        let model = Cnn::builtin();
        let cand = Candidate {
            bounds: union(&boxes),
            chars: boxes.clone(),
            inverted: false,
            score: 1.0,
        };
        let ink = prism_frame::Color::rgb(25, 25, 25);
        let row = |second_legible: bool| {
            let mut f = row_of_ls(&boxes, |i| i == 0);
            let mut strokes = |i: usize, parts: &[(u32, u32, u32, u32)]| {
                for &(x, y, w, h) in parts {
                    f.fill_rect(Rect::new(boxes[i].x + x, boxes[i].y + y, w, h), ink);
                }
            };
            if second_legible {
                strokes(1, &[(10, 0, 5, 28), (0, 23, 15, 5)]);
            } else {
                strokes(1, &[(5, 0, 5, 28), (0, 12, 15, 5)]);
            }
            strokes(2, &[(5, 8, 5, 20), (0, 8, 15, 4), (0, 0, 4, 10)]);
            strokes(3, &[(0, 0, 4, 28), (11, 6, 4, 22)]);
            strokes(4, &[(0, 0, 15, 4), (3, 10, 12, 4), (0, 20, 9, 8)]);
            strokes(5, &[(0, 0, 4, 28), (11, 6, 4, 22)]);
            f
        };
        let legible = |f: &prism_frame::FrameBuf| {
            let img = GrayImage::of_frame(f).unwrap();
            let firsts: Vec<f32> = boxes
                .iter()
                .map(|r| best_symbol(&model.classify_alone(&char_patch(&img, *r, true))))
                .collect();
            let read = read_group(model, &img, &[&cand], Region::Auto);
            (firsts, read)
        };
        let (firsts, read) = legible(&row(true));
        assert!(firsts[0] > 0.9 && firsts[1] > 0.9, "{firsts:?}");
        assert!(firsts[2..].iter().all(|&p| p < LEGIBLE), "{firsts:?}");
        let read = read.expect("two legible glyphs: read");
        assert!(read.text.starts_with("LJ"), "{read:?}");
        assert!(read.confidence < DEFAULT_MIN_CONFIDENCE, "{read:?}");
        let (firsts, read) = legible(&row(false));
        assert!(firsts[1..].iter().all(|&p| p < LEGIBLE), "{firsts:?}");
        assert_eq!(read, None);
        let ls = row_of_ls(&boxes, |_| true);
        let img = GrayImage::of_frame(&ls).unwrap();
        let read = read_group(model, &img, &[&cand], Region::Auto).map(|r| r.text);
        assert_eq!(read.as_deref(), Some("LLLLLL"));
    }

    /// A light picture with an L (a 5 px stem, a 15x5 foot) drawn in each box `draw` picks.
    fn row_of_ls(boxes: &[Rect], draw: impl Fn(usize) -> bool) -> prism_frame::FrameBuf {
        use prism_frame::{Color, FrameBuf, PixelFormat};
        let mut f = FrameBuf::filled(PixelFormat::Gray8, 240, 60, Color::rgb(230, 230, 230));
        for (_, r) in boxes.iter().enumerate().filter(|(i, _)| draw(*i)) {
            f.fill_rect(Rect::new(r.x, r.y, 5, r.height), Color::rgb(25, 25, 25));
            f.fill_rect(
                Rect::new(r.x, r.y + r.height - 5, r.width, 5),
                Color::rgb(25, 25, 25),
            );
        }
        f
    }

    /// The boxes after [`fill_gaps`] of a row cut into `cut`.
    fn refill(img: &GrayImage<'_>, cut: &[Rect]) -> Vec<Rect> {
        let model = Cnn::builtin();
        let mut chosen: Vec<_> = cut
            .iter()
            .map(|r| (*r, model.classify(&char_patch(img, *r, true))))
            .collect();
        fill_gaps(model, img, &mut chosen, false);
        chosen.into_iter().map(|(r, _)| r).collect()
    }

    #[test]
    fn areas_outside_the_image_find_nothing() {
        let data = vec![0u8; 100];
        let img = GrayImage::new(&data, 10, 10, 10).unwrap();
        let opts = PlateOptions {
            area: Some(Rect::new(50, 50, 10, 10)),
            ..PlateOptions::default()
        };
        assert!(find_candidates(&img, &opts).unwrap().is_empty());
    }

    #[test]
    fn the_plate_width_hint_is_a_share_of_the_frame_not_of_the_area() {
        let data = vec![0u8; 1920 * 1080];
        let img = GrayImage::new(&data, 1920, 1080, 1920).unwrap();
        let opts = PlateOptions {
            plate_width_pct: 20.0,
            ..PlateOptions::default()
        };
        // A plate a fifth of 1920 px wide has glyphs of 23 px and more, searched in a
        // quarter of the frame or in all of it.
        let area = img.sub(Rect::new(0, 0, 480, 1080)).unwrap();
        let range = heights(&area, 1920.0, &opts).unwrap();
        assert_eq!((range.min, range.max), (23, 192));
        assert_eq!(heights(&img, 1920.0, &opts), Some(range));
    }
}
