//! Builds the examples the plate reader's character classifier learns from; the classifier
//! itself is trained by `train_plate_cnn.py` (`host/models/plate-glyphs.bin`):
//!
//! ```text
//! cargo run --release -p prism --example plate_glyphs -- \
//!     --ocr-us ../shared/data/alpr/ocr-us --out /tmp/glyphs.bin
//! python3 host/examples/train_plate_cnn.py /tmp/glyphs.bin host/models/plate-glyphs.bin
//! ```
//!
//! Data recipe (see `host/models/README.md`):
//! * synthetic glyphs `0-9A-Z` rendered from condensed and DIN-like fonts in Debian packages
//!   (fonts-opendin, fonts-dejavu, fonts-liberation, fonts-urw-base35, fonts-roboto-unhinted,
//!   fonts-bebas-neue), between neighbouring glyphs, rotated, sheared, thinned or thickened,
//!   blurred, shrunk to 9-40 px and noised, in both polarities;
//! * real glyphs from labelled US plate crops (`--ocr-us`, `groundtruth.csv` with
//!   `FILE,STATE,PLATE`): a crop whose best glyph row has as many glyphs as its plate has
//!   characters gives one labelled glyph per blob (one crop in five is held out to measure);
//!   a row with up to three blobs more is labelled by its likeliest alignment to the plate
//!   under the shipped classifier, its other blobs becoming "not a character";
//! * "not a character" examples: stickers (discs, rings), glyph fragments and blots.
//!
//! Every example goes through the run-time path: binarised and cut by the same segmenter,
//! normalised by the same `char_patch`.

use std::path::{Path, PathBuf};

use ab_glyph::{Font, FontVec, PxScale, ScaleFont, point};
use anyhow::{Context, bail};
use opencv::core::{Mat, Point2f, Scalar, Size};
use opencv::imgproc;
use opencv::prelude::*;
use prism::media::Decoder;
use prism::vision::classifier::{self, CLASSES, NOISE, Rng, SYMBOLS, class_of};
use prism::vision::image::PATCH_LEN;
use prism::vision::segment::{self, HeightRange};
use prism::vision::{GrayImage, Rect, char_patch};
use prism_frame::PixelFormat;

const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/opendin/OSP-DIN.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSansNarrow-Bold.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSansNarrow-Regular.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
    "/usr/share/fonts/opentype/urw-base35/NimbusSansNarrow-Bold.otf",
    "/usr/share/fonts/opentype/urw-base35/NimbusSansNarrow-Regular.otf",
    "/usr/share/fonts/truetype/roboto/unhinted/RobotoCondensed-Bold.ttf",
    "/usr/share/fonts/truetype/roboto/unhinted/RobotoCondensed-Regular.ttf",
    "/usr/share/fonts/truetype/roboto/unhinted/RobotoCondensed-Medium.ttf",
    "/usr/share/fonts/opentype/bebas-neue/BebasNeue-Regular.otf",
    "/usr/share/fonts/opentype/bebas-neue/BebasNeue-Bold.otf",
];

type Sample = ([f32; PATCH_LEN], u8);

/// Re-photographed variants of each real training glyph.
const REAL_VARIANTS: usize = 4;

struct Args {
    ocr_us: Option<PathBuf>,
    out: PathBuf,
    per_font: usize,
    /// Train on every real crop (none held out).
    all_real: bool,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        ocr_us: None,
        out: PathBuf::from("glyphs.bin"),
        per_font: 70,
        all_real: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().with_context(|| format!("{k} needs a value"));
        match k.as_str() {
            "--ocr-us" => a.ocr_us = Some(v()?.into()),
            "--out" => a.out = v()?.into(),
            "--per-font" => a.per_font = v()?.parse()?,
            "--all-real" => a.all_real = true,
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(a)
}

/// A rendered canvas (gray, row-major).
struct Canvas {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

impl Canvas {
    fn mat(&self) -> Mat {
        Mat::new_rows_cols_with_data(self.h as i32, self.w as i32, &self.px)
            .expect("canvas size")
            .try_clone()
            .expect("clone")
    }
    fn from_mat(m: &Mat) -> Canvas {
        Canvas {
            w: m.cols() as usize,
            h: m.rows() as usize,
            px: m.data_bytes().expect("continuous").to_vec(),
        }
    }
    fn view(&self) -> GrayImage<'_> {
        GrayImage::new(&self.px, self.w, self.h, self.w).expect("canvas")
    }
}

/// Renders `text` (target glyph in the middle), returning the canvas (ink = 255 coverage on
/// 0) and the target glyph's box.
fn render(font: &FontVec, text: &[char; 3], px: f32, spacing: f32) -> Option<(Canvas, Rect)> {
    let scale = PxScale::from(px);
    let sf = font.as_scaled(scale);
    let (w, h) = ((px * 4.0) as usize, (px * 1.6) as usize);
    let mut canvas = Canvas {
        w,
        h,
        px: vec![0; w * h],
    };
    let baseline = px * 1.15;
    let mut x = px * 0.3;
    let mut target = None;
    for (i, &c) in text.iter().enumerate() {
        let id = font.glyph_id(c);
        let g = id.with_scale_and_position(scale, point(x, baseline));
        if let Some(og) = font.outline_glyph(g) {
            let bb = og.px_bounds();
            og.draw(|gx, gy, cov| {
                let (cx, cy) = (bb.min.x as i32 + gx as i32, bb.min.y as i32 + gy as i32);
                if cx >= 0 && cy >= 0 && (cx as usize) < w && (cy as usize) < h {
                    let p = &mut canvas.px[cy as usize * w + cx as usize];
                    *p = (*p).max((cov * 255.0) as u8);
                }
            });
            if i == 1 {
                target = Some(Rect::new(
                    bb.min.x.max(0.0) as u32,
                    bb.min.y.max(0.0) as u32,
                    bb.width() as u32,
                    bb.height() as u32,
                ));
            }
        }
        x += sf.h_advance(id) + spacing * px;
    }
    Some((canvas, target?))
}

/// Distorts an ink-coverage canvas into a photographed glyph and cuts the glyph at `target`
/// the way the reader would; `None` if the segmenter would not see it as one glyph.
/// Pushes the glyph's curves towards its box (strength 0..1): round fonts become the squared
/// fonts many plates use (Brazil's, several US states'). A point `d` of the result samples the
/// source at `d * lerp(1, |d|inf / |d|2, s)` in coordinates centred on the glyph.
fn squarify(ink: &Canvas, target: Rect, s: f32) -> Canvas {
    let mut out = Canvas {
        w: ink.w,
        h: ink.h,
        px: ink.px.clone(),
    };
    let cx = target.x as f32 + target.width as f32 / 2.0;
    let cy = target.y as f32 + target.height as f32 / 2.0;
    let hx = (target.width as f32 / 2.0).max(1.0);
    let hy = (target.height as f32 / 2.0).max(1.0);
    let x0 = target.x.saturating_sub(2) as usize;
    let y0 = target.y.saturating_sub(2) as usize;
    let x1 = ((target.x + target.width + 2) as usize).min(ink.w);
    let y1 = ((target.y + target.height + 2) as usize).min(ink.h);
    for y in y0..y1 {
        for x in x0..x1 {
            let u = (x as f32 + 0.5 - cx) / hx;
            let v = (y as f32 + 0.5 - cy) / hy;
            let l2 = (u * u + v * v).sqrt();
            if l2 < 1e-4 {
                continue;
            }
            let linf = u.abs().max(v.abs());
            let k = 1.0 + (linf / l2 - 1.0) * s;
            let (sx, sy) = (cx + u * k * hx - 0.5, cy + v * k * hy - 0.5);
            let (fx, fy) = (sx.floor(), sy.floor());
            let (ax, ay) = (sx - fx, sy - fy);
            let at = |xx: f32, yy: f32| {
                if xx < 0.0 || yy < 0.0 || xx as usize >= ink.w || yy as usize >= ink.h {
                    0.0
                } else {
                    ink.px[yy as usize * ink.w + xx as usize] as f32
                }
            };
            let val = at(fx, fy) * (1.0 - ax) * (1.0 - ay)
                + at(fx + 1.0, fy) * ax * (1.0 - ay)
                + at(fx, fy + 1.0) * (1.0 - ax) * ay
                + at(fx + 1.0, fy + 1.0) * ax * ay;
            out.px[y * ink.w + x] = val.round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// `m` blurred by `sigma` (a Gaussian, when above 0.3 px) and scaled by `f` from a
/// `w` x `h` picture (at least 8x8 after scaling).
fn blur_and_scale(
    m: &Mat,
    sigma: f32,
    (w, h): (usize, usize),
    f: f32,
    interpolation: i32,
) -> Option<Mat> {
    let mut blurred = Mat::default();
    let src = if sigma > 0.3 {
        imgproc::gaussian_blur_def(m, &mut blurred, Size::new(0, 0), sigma as f64).ok()?;
        &blurred
    } else {
        m
    };
    let mut small = Mat::default();
    imgproc::resize(
        src,
        &mut small,
        Size::new(
            ((w as f32 * f) as i32).max(8),
            ((h as f32 * f) as i32).max(8),
        ),
        0.0,
        0.0,
        interpolation,
    )
    .ok()?;
    Some(small)
}

/// `m` rotated by `degrees` and sheared horizontally by `shear` about `centre`.
fn rotate_shear(m: &Mat, centre: (f32, f32), degrees: f32, shear: f32, border: i32) -> Option<Mat> {
    let (cx, cy) = centre;
    let mut rot =
        imgproc::get_rotation_matrix_2d(Point2f::new(cx, cy), degrees as f64, 1.0).ok()?;
    *rot.at_2d_mut::<f64>(0, 1).ok()? += shear as f64;
    *rot.at_2d_mut::<f64>(0, 2).ok()? -= shear as f64 * cy as f64;
    let mut warped = Mat::default();
    imgproc::warp_affine(
        m,
        &mut warped,
        &rot,
        m.size().ok()?,
        imgproc::INTER_LINEAR,
        border,
        Scalar::all(0.0),
    )
    .ok()?;
    Some(warped)
}

fn photograph(rng: &mut Rng, ink: &Canvas, target: Rect, final_h: f32) -> Option<[f32; PATCH_LEN]> {
    let squared;
    let ink = if rng.unit() < 0.35 {
        squared = squarify(ink, target, rng.range(0.4, 1.0));
        &squared
    } else {
        ink
    };
    let mut m = ink.mat();
    // Stroke weight.
    let k = imgproc::get_structuring_element(
        imgproc::MORPH_ELLIPSE,
        Size::new(3, 3),
        opencv::core::Point::new(-1, -1),
    )
    .ok()?;
    let r = rng.unit();
    let mut t = Mat::default();
    if r < 0.2 {
        imgproc::erode_def(&m, &mut t, &k).ok()?;
        m = t;
    } else if r < 0.45 {
        imgproc::dilate_def(&m, &mut t, &k).ok()?;
        m = t;
    }
    // Rotation and shear about the target's centre.
    let (cx, cy) = (
        target.x as f32 + target.width as f32 / 2.0,
        target.y as f32 + target.height as f32 / 2.0,
    );
    let degrees = rng.range(-6.0, 6.0);
    let shear = rng.range(-0.18, 0.18);
    let warped = rotate_shear(&m, (cx, cy), degrees, shear, opencv::core::BORDER_CONSTANT)?;
    // Colours: ink and background levels, either polarity.
    let dark = rng.unit() < 0.75;
    let bg = rng.range(110.0, 250.0);
    let contrast = rng.range(45.0, bg.min(220.0));
    let (paper, inkv) = if dark {
        (bg, bg - contrast)
    } else {
        (bg - contrast, bg)
    };
    let mut photo = Mat::default();
    // photo = paper + (ink - paper) * coverage / 255
    warped
        .convert_to(
            &mut photo,
            opencv::core::CV_8U,
            ((inkv - paper) / 255.0) as f64,
            paper as f64,
        )
        .ok()?;
    // Gradual shading across the glyph, then shrunk to the final glyph height.
    let sigma = rng.range(0.0, 1.6);
    let f = final_h / target.height.max(1) as f32;
    let small = blur_and_scale(&photo, sigma, (ink.w, ink.h), f, imgproc::INTER_AREA)?;
    let mut c = Canvas::from_mat(&small);
    let noise = rng.range(0.0, 9.0);
    for p in c.px.iter_mut() {
        *p = (*p as f32 + rng.normal() * noise).clamp(0.0, 255.0) as u8;
    }
    let t = Rect::new(
        (target.x as f32 * f) as u32,
        (target.y as f32 * f) as u32,
        ((target.width as f32 * f) as u32).max(1),
        ((target.height as f32 * f) as u32).max(1),
    );
    cut(&c, t, dark)
}

/// The blob the segmenter finds at `t`, as a patch.
fn cut(c: &Canvas, t: Rect, dark: bool) -> Option<[f32; PATCH_LEN]> {
    let view = c.view();
    let gh = t.height as i32;
    let heights = HeightRange {
        min: (gh * 6 / 10).max(4),
        max: gh * 14 / 10 + 2,
    };
    let src = view_mat(&view)?;
    let block = ((gh as f32 * 1.2) as i32).max(9);
    // The spread is measured over the run-time search's larger neighbourhood.
    let (_, window) = segment::neighbourhoods(heights);
    let ink = segment::ink_contrast(&src, window, segment::CONTRAST).ok()?;
    let bin = segment::binarise(&src, block, dark, &ink).ok()?;
    let blobs = segment::glyph_blobs(&bin, heights).ok()?;
    let (tcx, tcy) = (
        t.x as i32 + t.width as i32 / 2,
        t.y as i32 + t.height as i32 / 2,
    );
    let b = blobs
        .iter()
        .filter(|b| b.x <= tcx && tcx <= b.x + b.w && b.y <= tcy && tcy <= b.y + b.h)
        .max_by_key(|b| b.area)?;
    Some(char_patch(&view, b.rect(), dark))
}

fn view_mat(v: &GrayImage<'_>) -> Option<Mat> {
    let mut rows = Vec::with_capacity(v.width() * v.height());
    for y in 0..v.height() {
        rows.extend_from_slice(v.row(y));
    }
    Mat::new_rows_cols_with_data(v.height() as i32, v.width() as i32, &rows)
        .ok()?
        .try_clone()
        .ok()
}

fn synthetic(rng: &mut Rng, fonts: &[FontVec], per_font: usize) -> Vec<Sample> {
    let mut out = Vec::new();
    let symbols: Vec<char> = SYMBOLS.iter().map(|&b| b as char).collect();
    for font in fonts {
        for (class, &c) in symbols.iter().enumerate() {
            let mut made = 0;
            let mut tries = 0;
            while made < per_font && tries < per_font * 4 {
                tries += 1;
                let text = [
                    symbols[rng.below(symbols.len())],
                    c,
                    symbols[rng.below(symbols.len())],
                ];
                let spacing = rng.range(0.02, 0.35);
                let Some((ink, target)) = render(font, &text, 64.0, spacing) else {
                    break;
                };
                let final_h = rng.range(9.0, 40.0);
                if let Some(p) = photograph(rng, &ink, target, final_h) {
                    out.push((p, class as u8));
                    made += 1;
                }
            }
        }
    }
    out
}

/// "Not a character": discs and rings (stickers, bolts), fragments of glyphs, blots.
fn noise(rng: &mut Rng, fonts: &[FontVec], n: usize) -> Vec<Sample> {
    let mut out = Vec::new();
    let symbols: Vec<char> = SYMBOLS.iter().map(|&b| b as char).collect();
    let mut tries = 0;
    while out.len() < n && tries < n * 6 {
        tries += 1;
        let kind = rng.below(4);
        let (ink, target) = match kind {
            0 | 1 => {
                // A disc or a ring, maybe with a smaller mark inside (a sticker).
                let mut c = Canvas {
                    w: 120,
                    h: 100,
                    px: vec![0; 12000],
                };
                let r = rng.range(18.0, 32.0);
                let ry = r * rng.range(0.85, 1.15);
                let inner = if kind == 1 {
                    r * rng.range(0.5, 0.8)
                } else {
                    0.0
                };
                for y in 0..100 {
                    for x in 0..120 {
                        let dx = (x as f32 - 60.0) / r;
                        let dy = (y as f32 - 50.0) / ry;
                        let d = (dx * dx + dy * dy).sqrt() * r;
                        if d <= r && d >= inner {
                            c.px[y * 120 + x] = 255;
                        }
                    }
                }
                let t = Rect::new(
                    (60.0 - r) as u32,
                    (50.0 - ry) as u32,
                    (2.0 * r) as u32,
                    (2.0 * ry) as u32,
                );
                (c, t)
            }
            2 => {
                // The top or bottom part of a glyph.
                let font = &fonts[rng.below(fonts.len())];
                let c = symbols[rng.below(symbols.len())];
                let Some((mut ink, t)) = render(font, &[' ', c, ' '], 64.0, 0.2) else {
                    continue;
                };
                let keep_top = rng.unit() < 0.5;
                let cut = t.y as usize + (t.height as f32 * rng.range(0.35, 0.55)) as usize;
                for y in 0..ink.h {
                    if (y >= cut) == keep_top {
                        ink.px[y * ink.w..(y + 1) * ink.w].fill(0);
                    }
                }
                let (y0, h) = if keep_top {
                    (t.y, (cut as u32).saturating_sub(t.y))
                } else {
                    (cut as u32, t.y + t.height - cut as u32)
                };
                (ink, Rect::new(t.x, y0, t.width, h.max(1)))
            }
            _ => {
                // A random blot.
                let mut c = Canvas {
                    w: 120,
                    h: 100,
                    px: vec![0; 12000],
                };
                let (mut x, mut y) = (60.0f32, 50.0f32);
                for _ in 0..rng.below(300) + 100 {
                    x = (x + rng.range(-3.0, 3.0)).clamp(35.0, 85.0);
                    y = (y + rng.range(-3.0, 3.0)).clamp(20.0, 80.0);
                    for dy in -3..=3 {
                        for dx in -3..=3 {
                            c.px[(y as i32 + dy) as usize * 120 + (x as i32 + dx) as usize] = 255;
                        }
                    }
                }
                (c, Rect::new(32, 17, 56, 66))
            }
        };
        let final_h = rng.range(9.0, 40.0);
        if let Some(p) = photograph(rng, &ink, target, final_h) {
            out.push((p, NOISE as u8));
        }
    }
    out
}

/// A real glyph re-photographed: the region around it rotated, sheared, blurred, shrunk, its
/// contrast lowered and noised, then cut again by the segmenter.
fn augment_real(
    rng: &mut Rng,
    img: &GrayImage<'_>,
    b: &segment::Blob,
    dark: bool,
) -> Option<[f32; PATCH_LEN]> {
    let (w, h) = (img.width() as i32, img.height() as i32);
    let x0 = (b.x - b.h).max(0);
    let y0 = (b.y - b.h / 2).max(0);
    let x1 = (b.x + b.w + b.h).min(w);
    let y1 = (b.y + b.h + b.h / 2).min(h);
    let mut px = Vec::with_capacity(((x1 - x0) * (y1 - y0)) as usize);
    for y in y0..y1 {
        px.extend_from_slice(&img.row(y as usize)[x0 as usize..x1 as usize]);
    }
    let region = Canvas {
        w: (x1 - x0) as usize,
        h: (y1 - y0) as usize,
        px,
    };
    let m = region.mat();
    let (cx, cy) = (
        (b.x - x0) as f32 + b.w as f32 / 2.0,
        (b.y - y0) as f32 + b.h as f32 / 2.0,
    );
    let degrees = rng.range(-5.0, 5.0);
    let shear = rng.range(-0.12, 0.12);
    let warped = rotate_shear(&m, (cx, cy), degrees, shear, opencv::core::BORDER_REPLICATE)?;
    let sigma = rng.range(0.0, 1.2);
    let final_h = rng.range(9.0, (b.h as f32 * 1.2).clamp(10.0, 40.0));
    let f = final_h / b.h as f32;
    let interpolation = if f < 1.0 {
        imgproc::INTER_AREA
    } else {
        imgproc::INTER_LINEAR
    };
    let small = blur_and_scale(&warped, sigma, (region.w, region.h), f, interpolation)?;
    let mut c = Canvas::from_mat(&small);
    let mean = c.px.iter().map(|&v| v as f32).sum::<f32>() / c.px.len().max(1) as f32;
    let contrast = rng.range(0.5, 1.1);
    let noise = rng.range(0.0, 8.0);
    for p in c.px.iter_mut() {
        let v = mean + (*p as f32 - mean) * contrast + rng.normal() * noise;
        *p = v.clamp(0.0, 255.0) as u8;
    }
    let t = Rect::new(
        ((b.x - x0) as f32 * f) as u32,
        ((b.y - y0) as f32 * f) as u32,
        ((b.w as f32 * f) as u32).max(1),
        ((b.h as f32 * f) as u32).max(1),
    );
    cut(&c, t, dark)
}

/// Labelled glyphs of the real crops, split into (training, held out).
fn real(dir: &Path, rng: &mut Rng, hold_out: bool) -> anyhow::Result<(Vec<Sample>, Vec<Sample>)> {
    let held_out = |i: usize| hold_out && classifier::held_out_crop(i);
    let csv = std::fs::read_to_string(dir.join("groundtruth.csv"))
        .with_context(|| format!("reading {}/groundtruth.csv", dir.display()))?;
    let (mut train, mut held) = (Vec::new(), Vec::new());
    let (mut used, mut total, mut aligned, mut extra_noise) = (0, 0, 0, 0);
    let model = classifier::Cnn::builtin();
    for (i, line) in csv.lines().enumerate() {
        let f: Vec<&str> = line.trim().split(',').collect();
        if f.len() < 3 || f[0] == "FILE" {
            continue;
        }
        total += 1;
        let plate: Vec<usize> = match f[2].chars().map(class_of).collect::<Option<Vec<_>>>() {
            Some(p) if !p.is_empty() => p,
            _ => continue,
        };
        let mut dec = Decoder::open(&dir.join(f[0]), PixelFormat::Gray8)?;
        let Some(frame) = dec.next_frame()? else {
            continue;
        };
        let img = GrayImage::of_frame(&frame.buf).context("gray frame")?;
        let h = img.height() as i32;
        let rows = segment::find_rows(
            &img,
            HeightRange {
                min: (h / 5).max(6),
                max: h * 9 / 10,
            },
            segment::CONTRAST,
        )?;
        // The tallest row with exactly as many glyphs as the plate has characters; failing
        // that (held-out crops excepted), the row with up to three blobs more whose best
        // alignment to the plate the shipped classifier finds likely: its other blobs (frame
        // edges, bolts, stickers) are examples of "not a character".
        let exact = rows
            .iter()
            .filter(|r| r.blobs.len() == plate.len())
            .max_by(|a, b| a.glyph_height().total_cmp(&b.glyph_height()));
        let (row, picked) = match exact {
            Some(row) => (row, (0..plate.len()).collect::<Vec<_>>()),
            None if !held_out(i) => {
                let Some((row, picked)) = rows
                    .iter()
                    .filter(|r| r.blobs.len() > plate.len() && r.blobs.len() <= plate.len() + 3)
                    .filter_map(|r| {
                        let probs: Vec<_> = r
                            .blobs
                            .iter()
                            .map(|b| model.classify(&char_patch(&img, b.rect(), r.dark)))
                            .collect();
                        let (picked, mean) = align(&probs, &plate)?;
                        (mean > 0.5f32.ln()).then_some((r, picked, mean))
                    })
                    .max_by(|a, b| a.2.total_cmp(&b.2))
                    .map(|(r, p, _)| (r, p))
                else {
                    continue;
                };
                for (k, b) in row.blobs.iter().enumerate() {
                    if !picked.contains(&k) {
                        let p = char_patch(&img, b.rect(), row.dark);
                        let sure = model.classify(&p)[..NOISE].iter().any(|&v| v > 0.9);
                        if !sure {
                            train.push((p, NOISE as u8));
                            extra_noise += 1;
                        }
                    }
                }
                aligned += 1;
                (row, picked)
            }
            None => continue,
        };
        used += 1;
        let dest = if held_out(i) { &mut held } else { &mut train };
        for (b, &class) in picked.iter().map(|&k| &row.blobs[k]).zip(&plate) {
            dest.push((char_patch(&img, b.rect(), row.dark), class as u8));
            if !held_out(i) {
                for _ in 0..REAL_VARIANTS {
                    if let Some(p) = augment_real(rng, &img, b, row.dark) {
                        dest.push((p, class as u8));
                    }
                }
                // Boxes a pixel off, as a segmenter at another threshold would cut them.
                for (dx, dy, dw, dh) in [(1, 0, -1, 0), (0, 1, 0, -1), (-1, -1, 2, 2)] {
                    let r = Rect::new(
                        (b.x + dx).max(0) as u32,
                        (b.y + dy).max(0) as u32,
                        (b.w + dw).max(1) as u32,
                        (b.h + dh).max(1) as u32,
                    );
                    dest.push((char_patch(&img, r, row.dark), class as u8));
                }
            }
        }
    }
    println!(
        "real crops: {used} of {total} labelled ({aligned} by alignment, giving {extra_noise} \
         not-a-character blobs)"
    );
    Ok((train, held))
}

/// The blobs (indices, in order) that best spell `plate`, and their mean log-probability.
fn align(probs: &[[f32; CLASSES]], plate: &[usize]) -> Option<(Vec<usize>, f32)> {
    let (n, m) = (probs.len(), plate.len());
    if m == 0 || n < m {
        return None;
    }
    // best[i][j]: best log-probability spelling plate[..j] with blobs[..i].
    let mut best = vec![vec![f32::NEG_INFINITY; m + 1]; n + 1];
    let mut took = vec![vec![false; m + 1]; n + 1];
    best[0][0] = 0.0;
    for i in 1..=n {
        best[i][0] = 0.0;
        for j in 1..=m.min(i) {
            let skip = best[i - 1][j];
            let take = best[i - 1][j - 1] + probs[i - 1][plate[j - 1]].max(1e-6).ln();
            (best[i][j], took[i][j]) = if take >= skip {
                (take, true)
            } else {
                (skip, false)
            };
        }
    }
    let mut picked = Vec::with_capacity(m);
    let (mut i, mut j) = (n, m);
    while j > 0 {
        if took[i][j] {
            picked.push(i - 1);
            j -= 1;
        }
        i -= 1;
    }
    picked.reverse();
    Some((picked, best[n][m] / m as f32))
}

/// Writes the examples for `train_plate_cnn.py`: `PRISMDS1`, the numbers of training and
/// held-out examples (u32 LE), then per example its class and its patch quantised to bytes.
fn dump(path: &Path, train: &[Sample], held: &[Sample]) -> anyhow::Result<()> {
    let mut out = Vec::with_capacity(16 + (train.len() + held.len()) * (PATCH_LEN + 1));
    out.extend_from_slice(b"PRISMDS1");
    out.extend_from_slice(&(train.len() as u32).to_le_bytes());
    out.extend_from_slice(&(held.len() as u32).to_le_bytes());
    for (patch, class) in train.iter().chain(held) {
        out.push(*class);
        out.extend(
            patch
                .iter()
                .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8),
        );
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

fn main() -> anyhow::Result<()> {
    let a = args()?;
    prism::media::init()?;
    let fonts: Vec<FontVec> = FONTS
        .iter()
        .filter_map(|p| match std::fs::read(p) {
            Ok(b) => FontVec::try_from_vec(b).ok(),
            Err(_) => {
                eprintln!("missing font {p} (install its Debian package)");
                None
            }
        })
        .collect();
    if fonts.is_empty() {
        bail!("no fonts found");
    }
    let mut rng = Rng::new(2026);
    let mut samples = synthetic(&mut rng, &fonts, a.per_font);
    println!(
        "synthetic glyphs: {} from {} fonts",
        samples.len(),
        fonts.len()
    );
    let noise = noise(&mut rng, &fonts, samples.len() / 12);
    println!("not-a-character examples: {}", noise.len());
    samples.extend(noise);
    let mut held = Vec::new();
    if let Some(dir) = &a.ocr_us {
        let (train, h) = real(dir, &mut rng, !a.all_real)?;
        println!(
            "real glyphs: {} training, {} held out",
            train.len(),
            h.len()
        );
        samples.extend(train);
        held = h;
    }
    dump(&a.out, &samples, &held)?;
    println!(
        "wrote {} examples to {}",
        samples.len() + held.len(),
        a.out.display()
    );
    Ok(())
}
