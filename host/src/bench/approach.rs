//! `prism bench plates --approach`: the plate filter on live video, where a plate comes closer
//! frame by frame. Each labelled photo becomes a 640x480 clip whose view closes in on its
//! plate in two seconds, from a fifth of the photo's scale to the full one, then stands still
//! for one (a car driving up to a barrier), and the clip runs through one filter instance, as
//! a stream would. Scored per clip from the `PlateDetected` events on the plate (a box with
//! IoU > 0.4 against the plate in that frame): whether the first one read the plate, whether
//! the last one did (a filter may correct a plate it first read from afar), how many there
//! were, how many events fell elsewhere, and how wide the plate was when it was first
//! reported right.

use serde::Serialize;

use super::plates::{BBox, IOU_MATCH, detection, lenient, normalise};
use super::stats::percentile;
use crate::media::scale_frame;
use prism_frame::FrameBuf;

/// Frames of a clip closing in (two seconds at 30 frames/s).
pub const FRAMES: u32 = 60;
/// Frames the clip then stands still (a car stopped at a barrier: one second).
pub const STILL: u32 = 30;
/// Time between frames, µs.
pub const FRAME_US: u64 = 33_333;
/// The clip's first and last scale: picture pixels per photo pixel.
const ZOOM: (f64, f64) = (0.2, 1.0);
/// The clip's picture size.
const SIZE: (u32, u32) = (640, 480);

/// The frames of a clip of `photo` closing in on the plate at `truth`, each with the plate's
/// box in it.
pub fn clip(photo: &FrameBuf, truth: BBox) -> anyhow::Result<Vec<(FrameBuf, BBox)>> {
    let (cx, cy) = (truth.x + truth.w / 2.0, truth.y + truth.h / 2.0);
    (0..FRAMES + STILL)
        .map(|k| {
            // Scale grows geometrically: the plate comes closer at an even pace.
            let t = f64::from(k.min(FRAMES - 1)) / f64::from(FRAMES - 1);
            let z = ZOOM.0 * (ZOOM.1 / ZOOM.0).powf(t);
            let w = ((f64::from(photo.width()) * z).round() as u32).max(2) & !1;
            let h = ((f64::from(photo.height()) * z).round() as u32).max(2) & !1;
            let scaled = scale_frame(photo, w, h).map_err(anyhow::Error::msg)?;
            let (zx, zy) = (
                f64::from(w) / f64::from(photo.width()),
                f64::from(h) / f64::from(photo.height()),
            );
            // The plate in the middle; even offsets keep the chroma planes aligned.
            let x0 = (cx * zx - f64::from(SIZE.0) / 2.0).round() as i64 & !1;
            let y0 = (cy * zy - f64::from(SIZE.1) / 2.0).round() as i64 & !1;
            let frame = window(&scaled, (x0, y0), SIZE);
            let plate = BBox {
                x: truth.x * zx - x0 as f64,
                y: truth.y * zy - y0 as f64,
                w: truth.w * zx,
                h: truth.h * zy,
            };
            Ok((frame, plate))
        })
        .collect()
}

/// The `size` window of `src` at `(x0, y0)`, which may reach past its edges (the edge pixels
/// repeat there, as a camera's view of the street goes on).
pub fn window(src: &FrameBuf, (x0, y0): (i64, i64), (w, h): (u32, u32)) -> FrameBuf {
    let mut out = FrameBuf::zeroed(src.format(), w, h);
    let from = src.planes();
    for (i, to) in out.planes().into_iter().enumerate() {
        let p = from[i];
        // Chroma planes are subsampled: their offsets shrink with them.
        let (sx, sy) = (
            i64::from(src.width().div_ceil(p.width.max(1))),
            i64::from(src.height().div_ceil(p.height.max(1))),
        );
        let bps = p.bytes_per_sample as usize;
        let src_plane = src.plane(i);
        let dst = out.plane_mut(i);
        for y in 0..to.height as usize {
            let row = (y0 / sy + y as i64).clamp(0, i64::from(p.height) - 1) as usize;
            let src_row = &src_plane[row * p.stride as usize..][..p.width as usize * bps];
            let dst_row = &mut dst[y * to.stride as usize..][..to.width as usize * bps];
            for (x, px) in dst_row.chunks_exact_mut(bps).enumerate() {
                let col = (x0 / sx + x as i64).clamp(0, i64::from(p.width) - 1) as usize;
                px.copy_from_slice(&src_row[col * bps..][..bps]);
            }
        }
    }
    out
}

/// How one clip went.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClipScore {
    /// Texts reported on the plate, in order.
    pub on_plate: Vec<String>,
    /// Texts reported elsewhere, in order.
    pub elsewhere: Vec<String>,
    /// The plate's width (pixels) in the frame where its text was first reported right.
    pub right_at_px: Option<f64>,
}

/// Scores a clip's `PlateDetected` events (payload and time) against `truth` (the plate's box
/// per frame) and its text.
pub fn score(events: &[(serde_json::Value, u64)], truth: &[BBox], plate: &str) -> ClipScore {
    let mut s = ClipScore::default();
    for (payload, pts) in events {
        let Some(d) = detection(payload) else {
            continue;
        };
        let k = ((pts + FRAME_US / 2) / FRAME_US) as usize;
        let Some(t) = truth.get(k.min(truth.len().saturating_sub(1))) else {
            continue;
        };
        if d.bbox.iou(t) <= IOU_MATCH {
            s.elsewhere.push(d.plate);
            continue;
        }
        if s.right_at_px.is_none() && normalise(&d.plate) == normalise(plate) {
            s.right_at_px = Some(t.w);
        }
        s.on_plate.push(d.plate);
    }
    s
}

/// Figures of one set's clips.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ApproachReport {
    /// Clips.
    pub clips: usize,
    /// Clips with an event on the plate, percent.
    pub found_pct: f64,
    /// Clips whose first event on the plate read it exactly, percent.
    pub first_pct: f64,
    /// Clips whose last event on the plate read it exactly, percent.
    pub last_pct: f64,
    /// ... with O and 0 as one.
    pub last_lenient_pct: f64,
    /// Events on the plate per clip that had one.
    pub events_per_plate: f64,
    /// Events elsewhere per clip.
    pub elsewhere_per_clip: f64,
    /// The plate's median width (pixels) when first reported right.
    pub right_at_px_p50: Option<f64>,
}

/// Aggregates the clips of a set, each with its plate's text.
pub fn report(clips: &[(ClipScore, String)]) -> ApproachReport {
    let n = clips.len().max(1) as f64;
    let pct = |f: &dyn Fn(&ClipScore, &str) -> bool| {
        clips.iter().filter(|(c, p)| f(c, p)).count() as f64 * 100.0 / n
    };
    let found = clips.iter().filter(|(c, _)| !c.on_plate.is_empty()).count();
    let mut widths: Vec<f64> = clips.iter().filter_map(|(c, _)| c.right_at_px).collect();
    widths.sort_by(f64::total_cmp);
    ApproachReport {
        clips: clips.len(),
        found_pct: found as f64 * 100.0 / n,
        first_pct: pct(&|c, p| {
            c.on_plate
                .first()
                .is_some_and(|t| normalise(t) == normalise(p))
        }),
        last_pct: pct(&|c, p| {
            c.on_plate
                .last()
                .is_some_and(|t| normalise(t) == normalise(p))
        }),
        last_lenient_pct: pct(&|c, p| c.on_plate.last().is_some_and(|t| lenient(t) == lenient(p))),
        events_per_plate: clips.iter().map(|(c, _)| c.on_plate.len()).sum::<usize>() as f64
            / found.max(1) as f64,
        elsewhere_per_clip: clips.iter().map(|(c, _)| c.elsewhere.len()).sum::<usize>() as f64 / n,
        right_at_px_p50: (!widths.is_empty()).then(|| percentile(&widths, 0.5)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prism_frame::{Color, PixelFormat, Rect};

    #[test]
    fn a_window_past_the_edges_repeats_them() {
        let mut src = FrameBuf::filled(PixelFormat::I420, 8, 4, Color::rgb(0, 0, 0));
        src.fill_rect(Rect::new(6, 0, 2, 4), Color::rgb(255, 255, 255));
        let w = window(&src, (4, -2), (8, 4));
        let y = w.plane(0);
        // Columns 0-1 are the source's 4-5 (black), 2-3 its white 6-7, 4-7 past the right
        // edge repeat its last (white) column; rows above the top repeat the first row.
        let white = Color::rgb(255, 255, 255).yuv().0;
        let black = Color::rgb(0, 0, 0).yuv().0;
        for row in y.chunks(8) {
            assert_eq!(row[..2], [black; 2]);
            assert_eq!(row[2..], [white; 6]);
        }
        // Chroma follows at half the offsets.
        let (_, u, _) = Color::rgb(255, 255, 255).yuv();
        assert_eq!(w.plane(1)[1], u);
    }

    #[test]
    fn a_clip_closes_in_on_the_plate() {
        crate::media::init().unwrap();
        let mut photo = FrameBuf::filled(PixelFormat::I420, 1280, 720, Color::rgb(90, 90, 90));
        photo.fill_rect(Rect::new(600, 400, 100, 50), Color::rgb(250, 250, 250));
        let truth = BBox {
            x: 600.0,
            y: 400.0,
            w: 100.0,
            h: 50.0,
        };
        let frames = clip(&photo, truth).unwrap();
        assert_eq!(frames.len(), (FRAMES + STILL) as usize);
        let (first, last) = (&frames[0], &frames[FRAMES as usize - 1]);
        assert_eq!(frames.last().unwrap().1, last.1);
        assert!((first.1.w - 20.0).abs() < 0.5, "{:?}", first.1);
        assert!((last.1.w - 100.0).abs() < 0.5, "{:?}", last.1);
        for (f, b) in [first, last] {
            assert_eq!((f.width(), f.height()), SIZE);
            // The plate is in the middle, white where its box says.
            assert!((b.x + b.w / 2.0 - 320.0).abs() <= 2.0, "{b:?}");
            let (cx, cy) = ((b.x + b.w / 2.0) as u32, (b.y + b.h / 2.0) as u32);
            assert!(f.pixel(cx, cy).unwrap()[0] > 200);
            assert!(f.pixel(cx, (b.y + b.h) as u32 + 4).unwrap()[0] < 120);
        }
    }

    #[test]
    fn clips_score_by_the_events_on_the_plate() {
        let plate = BBox {
            x: 100.0,
            y: 100.0,
            w: 60.0,
            h: 20.0,
        };
        let truth = vec![plate; 10];
        let event = |text: &str, x: f64, k: u64| {
            let payload = serde_json::json!({
                "plate": text, "confidence": 0.9,
                "box": {"x": x, "y": 100, "width": 60, "height": 20}
            });
            (payload, k * FRAME_US)
        };
        let s = score(
            &[
                event("627WW", 100.0, 2),
                event("CAM2", 400.0, 3),
                event("627WWI", 102.0, 6),
            ],
            &truth,
            "627WWI",
        );
        assert_eq!(s.on_plate, ["627WW", "627WWI"]);
        assert_eq!(s.elsewhere.len(), 1);
        assert_eq!(s.right_at_px, Some(60.0));
        let r = report(&[(s, "627WWI".into()), (ClipScore::default(), "AB123".into())]);
        assert_eq!(r.clips, 2);
        assert_eq!((r.found_pct, r.first_pct, r.last_pct), (50.0, 0.0, 50.0));
        assert_eq!(r.events_per_plate, 2.0);
        assert_eq!(r.elsewhere_per_clip, 0.5);
        assert_eq!(r.right_at_px_p50, Some(60.0));
    }
}
