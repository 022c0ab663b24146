//! Plate candidates: rows of character-like blobs.
//!
//! A plate is, whatever the country, a short horizontal row of similar-height glyphs with a
//! strong, even contrast to their background. The image is binarised with a local (adaptive)
//! threshold at two neighbourhood sizes and both polarities (dark ink on a light plate and the
//! reverse), ink measured against its neighbourhood's spread of gray levels so a dim plate
//! binarises as a lit one does ([`ink_contrast`]); connected components of the right shape
//! become character candidates, and neighbours of similar height on a common baseline are
//! chained into rows. Each row of 4+ glyphs is a candidate; the reader later decides whether
//! it says anything.
//!
//! Glyphs that touch a plate frame's border or lettering never pass as components: where the
//! components found no text, `banded_rows` finds lines of text from their upright strokes
//! and cuts the glyphs out of each line's band.

use opencv::core::{BORDER_REPLICATE, CV_8U, CV_32F, CV_32S, Mat, Size, ToInputArray};
use opencv::imgproc;
use opencv::prelude::*;

use super::{GrayImage, Rect};

/// One connected component.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Blob {
    pub x: i32,
    pub y: i32,
    pub w: i32,
    pub h: i32,
    pub area: i32,
}

impl Blob {
    fn x1(&self) -> i32 {
        self.x + self.w
    }
    fn y1(&self) -> i32 {
        self.y + self.h
    }
    fn cy(&self) -> f32 {
        self.y as f32 + self.h as f32 / 2.0
    }
    pub fn rect(&self) -> Rect {
        Rect::new(self.x as u32, self.y as u32, self.w as u32, self.h as u32)
    }
}

/// A row of glyph candidates, left to right.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub blobs: Vec<Blob>,
    /// Dark ink on a light background.
    pub dark: bool,
}

impl Row {
    /// Median glyph height.
    pub fn glyph_height(&self) -> f32 {
        let mut h: Vec<i32> = self.blobs.iter().map(|b| b.h).collect();
        h.sort_unstable();
        h[h.len() / 2] as f32
    }

    /// Union of the glyph boxes.
    pub fn bounds(&self) -> (i32, i32, i32, i32) {
        let x0 = self.blobs.iter().map(|b| b.x).min().unwrap_or(0);
        let y0 = self.blobs.iter().map(|b| b.y).min().unwrap_or(0);
        let x1 = self.blobs.iter().map(Blob::x1).max().unwrap_or(0);
        let y1 = self.blobs.iter().map(Blob::y1).max().unwrap_or(0);
        (x0, y0, x1, y1)
    }

    /// Union of the glyph boxes as a `Rect`.
    fn rect(&self) -> Rect {
        let (x0, y0, x1, y1) = self.bounds();
        Rect::new(x0 as u32, y0 as u32, (x1 - x0) as u32, (y1 - y0) as u32)
    }
}

/// Glyph heights to look for, pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeightRange {
    pub min: i32,
    pub max: i32,
}

/// Fewest glyphs a row needs.
pub const MIN_GLYPHS: usize = 4;
/// Most glyphs a row keeps (longer rows are text, not plates).
pub const MAX_GLYPHS: usize = 12;

/// Gray levels by which ink must differ from its neighbourhood's mean where the picture is
/// lit ([`ink_contrast`]).
pub const CONTRAST: f64 = 8.0;
/// The same for plates in shade, at dusk or behind a dirty lens, whose strokes break apart at
/// [`CONTRAST`]; it finds more clutter too, so it is for a second search (dark ink only, see
/// [`find_rows`]).
pub const FAINT: f64 = 4.0;

/// A neighbourhood whose gray levels spread this much (standard deviation) or more is lit
/// well enough for the search's full contrast: all but the dimmest tenth of the labelled
/// plates in `../shared/data/alpr` spread more over a window about them (the middle half
/// 31-65). Dimmer ones (an underexposed camera, a plate in shade) need less.
const LIT_SPREAD: f32 = 20.0;
/// The least share of the search's contrast ink needs, where its neighbourhood hardly spreads.
const LEAST_SHARE: f32 = 0.4;

/// The gray levels by which ink must differ from its neighbourhood's mean at each pixel of
/// `src`: `contrast` where the `window`-wide neighbourhood spreads like a lit plate's
/// ([`LIT_SPREAD`]), in proportion less where it spreads less (a plate in shade, at dusk, an
/// underexposed camera: the strokes of a dim plate break apart at a daylight plate's
/// contrast), down to [`LEAST_SHARE`] of it.
pub fn ink_contrast(src: &Mat, window: i32, contrast: f64) -> opencv::Result<Mat> {
    let size = Size::new(window | 1, window | 1);
    let anchor = opencv::core::Point::new(-1, -1);
    let (mut mean, mut square) = (Mat::default(), Mat::default());
    imgproc::box_filter(src, &mut mean, CV_32F, size, anchor, true, BORDER_REPLICATE)?;
    imgproc::sqr_box_filter(
        src,
        &mut square,
        CV_32F,
        size,
        anchor,
        true,
        BORDER_REPLICATE,
    )?;
    let (m, q) = (mean.data_typed::<f32>()?, square.data_typed::<f32>()?);
    let c = contrast as f32;
    let mut levels = Mat::new_rows_cols_with_default(src.rows(), src.cols(), CV_8U, 0.into())?;
    for ((l, &m), &q) in levels.data_bytes_mut()?.iter_mut().zip(m).zip(q) {
        let spread = (q - m * m).max(0.0).sqrt();
        // Rounded by adding a half (`f32::round` is a call, and the loop would not vectorise).
        *l = (c * (spread / LIT_SPREAD).clamp(LEAST_SHARE, 1.0) + 0.5) as u8;
    }
    Ok(levels)
}

/// Binary image of `src`: ink = 255. `block` is the odd neighbourhood size; ink differs from
/// its neighbourhood's mean by at least `contrast` gray levels (one value per pixel, see
/// [`ink_contrast`]), darker than it for `dark` ink, lighter otherwise.
pub fn binarise(src: &Mat, block: i32, dark: bool, contrast: &Mat) -> opencv::Result<Mat> {
    threshold(src, &local_mean(src, block)?, dark, contrast)
}

/// The mean of the `block`-wide (odd) neighbourhood of each pixel of `src`.
fn local_mean(src: &Mat, block: i32) -> opencv::Result<Mat> {
    let mut mean = Mat::default();
    let size = Size::new(block | 1, block | 1);
    let anchor = opencv::core::Point::new(-1, -1);
    imgproc::box_filter(src, &mut mean, -1, size, anchor, true, BORDER_REPLICATE)?;
    Ok(mean)
}

/// [`binarise`] with the neighbourhood's mean given (one [`local_mean`] serves both
/// polarities).
fn threshold(src: &Mat, mean: &Mat, dark: bool, contrast: &Mat) -> opencv::Result<Mat> {
    let (w, h) = (src.cols() as usize, src.rows() as usize);
    if contrast.size()? != src.size()? || mean.size()? != src.size()? {
        return Err(opencv::Error::new(
            opencv::core::StsBadSize,
            "one mean and one contrast per pixel of the picture",
        ));
    }
    let mut bin = Mat::new_rows_cols_with_default(h as i32, w as i32, CV_8U, 0.into())?;
    let means = mean.data_bytes()?;
    let contrast = contrast.data_bytes()?;
    let out = bin.data_bytes_mut()?;
    for y in 0..h {
        let row = src.at_row::<u8>(y as i32)?;
        let at = y * w..(y + 1) * w;
        let (m, c, o) = (&means[at.clone()], &contrast[at.clone()], &mut out[at]);
        // Branch-free, so the loop vectorises.
        if dark {
            for (((o, &v), &m), &c) in o.iter_mut().zip(row).zip(m).zip(c) {
                *o = 255 * u8::from(u16::from(v) + u16::from(c) <= u16::from(m));
            }
        } else {
            for (((o, &v), &m), &c) in o.iter_mut().zip(row).zip(m).zip(c) {
                *o = 255 * u8::from(u16::from(v) > u16::from(m) + u16::from(c));
            }
        }
    }
    Ok(bin)
}

/// Components of `bin` shaped like glyphs.
pub fn glyph_blobs(bin: &Mat, heights: HeightRange) -> opencv::Result<Vec<Blob>> {
    let mut blobs = components(bin)?;
    blobs.retain(|b| is_glyph(b, heights));
    Ok(blobs)
}

/// The 8-connected components of `bin`. OpenCV labels them and their boxes and areas are
/// summed here, a run of one label at a time: OpenCV's own statistics (with centroids, in
/// doubles) took three times as long as its labelling on a busy picture's thousands of
/// specks, a third of a 640x480 frame's search.
fn components(bin: &impl ToInputArray) -> opencv::Result<Vec<Blob>> {
    let mut labels = Mat::default();
    let n = imgproc::connected_components(bin, &mut labels, 8, CV_32S)?.max(1) as usize;
    let cols = labels.cols().max(0) as usize;
    if cols == 0 {
        return Ok(Vec::new());
    }
    // Per label: left, top, right, bottom (inclusive), area.
    let mut boxes = vec![[i32::MAX, i32::MAX, i32::MIN, i32::MIN, 0]; n];
    for (y, row) in labels.data_typed::<i32>()?.chunks_exact(cols).enumerate() {
        let y = y as i32;
        let mut x = 0;
        while x < row.len() {
            let (label, start) = (row[x], x);
            while x < row.len() && row[x] == label {
                x += 1;
            }
            if label == 0 {
                continue;
            }
            if let Some(b) = boxes.get_mut(label as usize) {
                b[0] = b[0].min(start as i32);
                b[1] = b[1].min(y);
                b[2] = b[2].max(x as i32 - 1);
                b[3] = b[3].max(y);
                b[4] += (x - start) as i32;
            }
        }
    }
    Ok(boxes
        .iter()
        .skip(1)
        .filter(|b| b[4] > 0)
        .map(|&[left, top, right, bottom, area]| Blob {
            x: left,
            y: top,
            w: right - left + 1,
            h: bottom - top + 1,
            area,
        })
        .collect())
}

fn is_glyph(b: &Blob, heights: HeightRange) -> bool {
    if b.h < heights.min || b.h > heights.max {
        return false;
    }
    let aspect = b.w as f32 / b.h as f32;
    let fill = b.area as f32 / (b.w * b.h) as f32;
    // A wide blob that is nearly solid is a block (the EU country band, a bracket), not a
    // glyph: only thin strokes (`1`, `I`) fill their box.
    let solid_block = fill > 0.8 && aspect > 0.35;
    // Thin strokes (`1`, `I`) fill their box completely.
    let max_fill = if aspect < 0.35 { 1.0 } else { 0.92 };
    (0.08..=1.05).contains(&aspect) && (0.12..=max_fill).contains(&fill) && !solid_block
}

/// Rows the components found with this many glyphs or fewer do not keep the band search
/// away (see [`find_rows`]): most plates have more.
const SHORT_ROW: usize = 4;

/// Glyphs taller than this (pixels) are left to the plain components: the lettering of a
/// plate frame touches small glyphs, not large ones.
const MAX_BANDED: f32 = 40.0;

/// One glyph scale the band search looks at: strokes `min..=max` pixels long, searched on a
/// grid of `cell`-pixel cells.
#[derive(Debug, Clone, Copy)]
struct Scale {
    s: f32,
    min: u16,
    max: u16,
    cell: usize,
}

/// Rows whose glyphs touch other ink above or below them (the border or the lettering of a
/// plate frame, a sticker). Each such glyph is one component with what it touches and never
/// passes as a glyph, but its strokes still show: vertical strokes about a glyph tall, side by
/// side, mark a band of text. The band's rows are cut out of the binary image, which parts the
/// glyphs from what touched them, and the pieces are chained as usual.
fn banded_rows(
    bin: &Mat,
    heights: HeightRange,
    dark: bool,
    found: &[Rect],
) -> opencv::Result<Vec<Row>> {
    let (w, h) = (bin.cols() as usize, bin.rows() as usize);
    let ink = bin.data_bytes()?;
    let mut scales = Vec::new();
    let mut s = heights.min as f32;
    while s <= (heights.max as f32).min(MAX_BANDED) {
        scales.push(Scale {
            s,
            min: (0.5 * s) as u16,
            max: (2.3 * s) as u16,
            // A cell of about half a glyph keeps lines of text apart.
            cell: ((s / 2.0) as usize).max(1).next_power_of_two(),
        });
        s *= 2.0;
    }
    if scales.is_empty() {
        return Ok(Vec::new());
    }
    let runs = vertical_runs(ink, w, h);
    let mut grids: Vec<Grid> = scales.iter().map(|sc| Grid::new(w, h, sc.cell)).collect();
    // Which scales a stroke of each length belongs to, one bit per scale.
    let lengths: Vec<u8> = (0..=u8::MAX as u16)
        .map(|r| {
            scales
                .iter()
                .enumerate()
                .filter(|(_, sc)| (sc.min..=sc.max).contains(&r))
                .fold(0, |bits, (i, _)| bits | 1 << i)
        })
        .collect();
    for (y, row) in runs.chunks_exact(w).enumerate() {
        for (x, &r) in row.iter().enumerate() {
            let mut bits = lengths[usize::from(r.min(u8::MAX as u16))];
            while bits != 0 {
                grids[bits.trailing_zeros() as usize].mark(x, y);
                bits &= bits - 1;
            }
        }
    }
    let mut rows = Vec::new();
    for (sc, mut grid) in scales.into_iter().zip(grids) {
        let s = sc.s;
        grid.close((2.0 * s) as usize / sc.cell);
        let mat = Mat::new_rows_cols_with_data(grid.h as i32, grid.w as i32, &grid.cells)?;
        for b in components(&mat)? {
            let (x0, y0) = (b.x as usize * sc.cell, b.y as usize * sc.cell);
            let (x1, y1) = (
                (b.x1() as usize * sc.cell).min(w),
                (b.y1() as usize * sc.cell).min(h),
            );
            if ((y1 - y0) as f32) < 0.6 * s || ((x1 - x0) as f32) < 2.0 * s {
                continue;
            }
            for (top, bottom) in bands(&runs, w, (x0, x1), (y0, y1), sc) {
                let band_h = (bottom - top) as f32;
                let place = Rect::new(
                    x0 as u32,
                    top as u32,
                    (x1 - x0) as u32,
                    (bottom - top) as u32,
                );
                // Text the components found is not searched again.
                if !(0.8 * s..=2.3 * s).contains(&band_h)
                    || found.iter().any(|f| super::overlap(f, &place) > 0.2)
                {
                    continue;
                }
                // The band's ends may hold a glyph with no upright stroke (`7`, `V`).
                let margin = s as usize;
                let cols = (x0.saturating_sub(margin), (x1 + margin).min(w));
                let glyphs = band_glyphs(ink, &runs, w, cols, (top, bottom))?;
                rows.extend(rows_of(glyphs, dark));
            }
        }
    }
    Ok(rows)
}

/// The glyphs of a band of rows of a binary image (`w` wide, `runs` its [`vertical_runs`]).
fn band_glyphs(
    ink: &[u8],
    runs: &[u16],
    w: usize,
    cols: (usize, usize),
    (top, bottom): (usize, usize),
) -> opencv::Result<Vec<Blob>> {
    let band_h = (bottom - top) as f32;
    let mut glyphs = Cut::of(ink, w, cols, (top, bottom)).glyphs()?;
    // A thin upright whose stroke runs on far above and below the band is the side of a frame
    // or a pole, not a `1`; a hairline is the edge of something.
    glyphs.retain(|g| {
        let y = (g.y + g.h / 2) as usize * w;
        let long = (g.x..g.x1()).any(|x| f32::from(runs[y + x as usize]) > 1.7 * band_h);
        !(long && 3 * g.w < g.h) && 7 * g.w >= g.h
    });
    Ok(glyphs)
}

/// For every ink pixel of a binary image, the length of the vertical run of ink it is in.
fn vertical_runs(ink: &[u8], w: usize, h: usize) -> Vec<u16> {
    let mut runs: Vec<u16> = ink[..w * h].iter().map(|&i| u16::from(i != 0)).collect();
    for y in 1..h {
        let (done, rest) = runs.split_at_mut(y * w);
        let above = &done[(y - 1) * w..];
        for (r, &a) in rest[..w].iter_mut().zip(above) {
            // Branch-free (`r` is 0 or 1 here), so the loop vectorises; runs are shorter
            // than the image is tall.
            *r *= a + 1;
        }
    }
    // Each run's last pixel holds its length: hand it up the run.
    for y in (0..h.saturating_sub(1)).rev() {
        let (upper, lower) = runs.split_at_mut((y + 1) * w);
        let row = &mut upper[y * w..];
        for (r, &b) in row.iter_mut().zip(&lower[..w]) {
            *r = if *r != 0 && b != 0 { b } else { *r };
        }
    }
    runs
}

/// The bands of a box where strokes of the scale's length are as dense as at a line of
/// glyphs: around the densest row, while at least 40% of its strokes are there; then around the
/// densest row left, for a box that holds several lines of text. Each band is given as found
/// and, when they differ, between the rows where its long strokes start and end.
fn bands(
    runs: &[u16],
    w: usize,
    (x0, x1): (usize, usize),
    (y0, y1): (usize, usize),
    sc: Scale,
) -> Vec<(usize, usize)> {
    let stroke = |r: &u16| (sc.min..=sc.max).contains(r);
    let mut counts: Vec<usize> = (y0..y1)
        .map(|y| {
            runs[y * w + x0..y * w + x1]
                .iter()
                .filter(|r| stroke(r))
                .count()
        })
        .collect();
    let mut out = Vec::new();
    for _ in 0..3 {
        let Some((peak_at, &peak)) = counts.iter().enumerate().max_by_key(|&(_, c)| *c) else {
            break;
        };
        // A row of glyphs crosses a stroke for every glyph or more.
        let y = y0 + peak_at;
        let strokes = runs[y * w + x0..y * w + x1]
            .iter()
            .map(stroke)
            .fold((0, false), |(n, was), is| (n + usize::from(is && !was), is))
            .0;
        if strokes < MIN_GLYPHS {
            break;
        }
        let dense = |c: usize| c * 5 >= peak * 2;
        let top = (0..peak_at)
            .rev()
            .take_while(|&i| dense(counts[i]))
            .last()
            .unwrap_or(peak_at);
        let bottom = (peak_at..counts.len())
            .take_while(|&i| dense(counts[i]))
            .last()
            .unwrap_or(peak_at)
            + 1;
        counts[top..bottom].fill(0);
        let coarse = (y0 + top, y0 + bottom);
        out.push(coarse);
        if let Some(fine) = stroke_ends(runs, w, (x0, x1), coarse, sc)
            && fine != coarse
        {
            out.push(fine);
        }
    }
    out
}

/// The rows where a band's long upright strokes most often start and end: a line of glyphs
/// shares its top and bottom, even where some glyphs run on into the ink around them.
fn stroke_ends(
    runs: &[u16],
    w: usize,
    (x0, x1): (usize, usize),
    (top, bottom): (usize, usize),
    sc: Scale,
) -> Option<(usize, usize)> {
    let h = runs.len() / w;
    let reach = (sc.s / 2.0) as usize;
    let (from, to) = (top.saturating_sub(reach), (bottom + reach).min(h));
    let long = (0.6 * sc.s) as u16;
    let mut starts = vec![0usize; h + 1];
    let mut ends = vec![0usize; h + 1];
    for y in from..to {
        for x in x0..x1 {
            let r = runs[y * w + x];
            // A run starts here when the row above has no ink in this column.
            if (long..=sc.max).contains(&r) && (y == 0 || runs[(y - 1) * w + x] == 0) {
                starts[y] += 1;
                ends[(y + usize::from(r)).min(h)] += 1;
            }
        }
    }
    // Columns of one stroke share its start: count each row with its neighbours.
    let near = |v: &[usize], y: usize| v[y.saturating_sub(1)] + v[y] + v[(y + 1).min(h)];
    let (t, support) = (from..to)
        .map(|y| (y, near(&starts, y)))
        .max_by_key(|&(y, n)| (n, usize::MAX - y))?;
    if support < 2 * MIN_GLYPHS {
        return None;
    }
    let lo = t + (0.8 * sc.s) as usize;
    let hi = (t + (2.3 * sc.s) as usize).min(h);
    let (b, _) = (lo..=hi)
        .map(|y| (y, near(&ends, y)))
        .max_by_key(|&(y, n)| (n, usize::MAX - y))?;
    Some((t, b))
}

/// Stroke pixels on a coarse grid.
struct Grid {
    cells: Vec<u8>,
    w: usize,
    h: usize,
    shift: u32,
}

impl Grid {
    fn new(w: usize, h: usize, cell: usize) -> Grid {
        let (w, h) = (w.div_ceil(cell), h.div_ceil(cell));
        Grid {
            cells: vec![0; w * h],
            w,
            h,
            shift: cell.trailing_zeros(),
        }
    }

    fn mark(&mut self, x: usize, y: usize) {
        // Cells are powers of two: shifts, not divisions, in this per-pixel call.
        self.cells[(y >> self.shift) * self.w + (x >> self.shift)] = 255;
    }

    /// Fills horizontal gaps up to `gap` cells: a line of text becomes one component.
    fn close(&mut self, gap: usize) {
        for row in self.cells.chunks_exact_mut(self.w) {
            let mut last: Option<usize> = None;
            for x in 0..row.len() {
                if row[x] == 0 {
                    continue;
                }
                if let Some(l) = last
                    && x - l > 1
                    && x - l <= gap + 1
                {
                    row[l + 1..x].fill(255);
                }
                last = Some(x);
            }
        }
    }
}

/// A copy of part of a binary image: the rows of a band of glyphs.
struct Cut {
    ink: Vec<u8>,
    w: usize,
    h: usize,
    x0: usize,
    y0: usize,
}

impl Cut {
    fn of(ink: &[u8], stride: usize, (x0, x1): (usize, usize), (y0, y1): (usize, usize)) -> Cut {
        let w = x1 - x0;
        let mut out = vec![0u8; w * (y1 - y0)];
        for (y, row) in (y0..y1).zip(out.chunks_exact_mut(w)) {
            row.copy_from_slice(&ink[y * stride + x0..y * stride + x1]);
        }
        Cut {
            ink: out,
            w,
            h: y1 - y0,
            x0,
            y0,
        }
    }

    /// The glyphs in the band, in image coordinates. Lines longer than a glyph is wide (a
    /// frame's edge, ink left where the band was cut off what touched it) are erased first;
    /// then, in a piece wider than tall, columns holding a single pixel of ink (threads of
    /// noise between neighbours) are cleared.
    fn glyphs(mut self) -> opencv::Result<Vec<Blob>> {
        let band_h = self.h as f32;
        let long = (0.8 * band_h) as usize;
        for row in self.ink.chunks_exact_mut(self.w) {
            let mut start = 0;
            for x in 0..=row.len() {
                if x < row.len() && row[x] != 0 {
                    continue;
                }
                if x - start > long {
                    row[start..x].fill(0);
                }
                start = x + 1;
            }
        }
        let fit = HeightRange {
            min: (0.75 * band_h) as i32,
            max: band_h as i32 + 2,
        };
        let mut blobs = self.blobs()?;
        let wide: Vec<Blob> = blobs
            .iter()
            .filter(|g| g.w > g.h && g.h >= fit.min)
            .copied()
            .collect();
        if !wide.is_empty() {
            for g in wide {
                for x in g.x as usize..g.x1() as usize {
                    if (0..self.h)
                        .filter(|y| self.ink[y * self.w + x] != 0)
                        .count()
                        <= 1
                    {
                        for y in 0..self.h {
                            self.ink[y * self.w + x] = 0;
                        }
                    }
                }
            }
            blobs = self.blobs()?;
        }
        Ok(blobs
            .into_iter()
            .filter(|g| is_glyph(g, fit))
            .map(|g| Blob {
                x: g.x + self.x0 as i32,
                y: g.y + self.y0 as i32,
                ..g
            })
            .collect())
    }

    fn blobs(&self) -> opencv::Result<Vec<Blob>> {
        components(&Mat::new_rows_cols_with_data(
            self.h as i32,
            self.w as i32,
            &self.ink,
        )?)
    }
}

/// Chains blobs into rows: each blob links to its nearest right neighbour of similar height
/// on the same line, and linked blobs form a row.
pub fn rows_of(mut blobs: Vec<Blob>, dark: bool) -> Vec<Row> {
    blobs.sort_by_key(|b| (b.x, b.y));
    let n = blobs.len();
    let mut next: Vec<Option<usize>> = vec![None; n];
    let mut has_prev = vec![false; n];
    for i in 0..n {
        let a = blobs[i];
        let mut best: Option<(usize, i32)> = None;
        for (j, b) in blobs.iter().enumerate().skip(i + 1) {
            let h = a.h.max(b.h) as f32;
            if b.x as f32 > a.x1() as f32 + 1.3 * h {
                break;
            }
            let ratio = a.h.max(b.h) as f32 / a.h.min(b.h) as f32;
            let gap = b.x - a.x1();
            if ratio > 1.3
                || (a.cy() - b.cy()).abs() > 0.3 * h
                || (gap as f32) < -0.15 * h
                || b.x <= a.x
            {
                continue;
            }
            if best.is_none_or(|(_, g)| gap < g) {
                best = Some((j, gap));
            }
        }
        if let Some((j, _)) = best
            && !has_prev[j]
        {
            next[i] = Some(j);
            has_prev[j] = true;
        }
    }
    let mut rows = Vec::new();
    for start in 0..n {
        if has_prev[start] {
            continue;
        }
        let mut chain = vec![blobs[start]];
        let mut at = start;
        while let Some(j) = next[at] {
            chain.push(blobs[j]);
            at = j;
        }
        if chain.len() >= MIN_GLYPHS {
            for part in split_long(chain) {
                rows.push(Row { blobs: part, dark });
            }
        }
    }
    rows
}

/// A chain longer than a plate is cut at its widest gaps until every piece fits.
fn split_long(chain: Vec<Blob>) -> Vec<Vec<Blob>> {
    if chain.len() <= MAX_GLYPHS {
        return vec![chain];
    }
    let (cut, _) = chain
        .windows(2)
        .enumerate()
        .map(|(i, w)| (i + 1, w[1].x - w[0].x1()))
        .max_by_key(|&(_, gap)| gap)
        .unwrap_or((chain.len() / 2, 0));
    let mut left = chain;
    let right = left.split_off(cut);
    [left, right]
        .into_iter()
        .filter(|p| p.len() >= MIN_GLYPHS)
        .flat_map(split_long)
        .collect()
}

/// The neighbourhood sizes [`find_rows`] binarises in for glyphs of `heights`: about one and
/// several glyph heights wide (the larger one also measures the spread, [`ink_contrast`]).
pub fn neighbourhoods(heights: HeightRange) -> (i32, i32) {
    let small = ((heights.min as f32 * 1.2) as i32).max(9);
    (small, heights.max.min(heights.min * 6).max(small + 10))
}

/// Candidate rows of `img` over the given glyph heights, binarised at `contrast` (see
/// [`binarise`]).
pub fn find_rows(
    img: &GrayImage<'_>,
    heights: HeightRange,
    contrast: f64,
) -> opencv::Result<Vec<Row>> {
    let src = img.mat()?;
    let mut rows = Vec::new();
    // Neighbourhoods about one and several glyph heights wide: the first separates glyphs
    // that sit close to the plate's border, the others keep thick strokes whole.
    let (small, large) = neighbourhoods(heights);
    let mut blocks = vec![small, large];
    // Large pictures hold large plates: a third neighbourhood for glyphs of 60 px and more.
    if heights.max >= 4 * large && src.rows() >= 720 {
        blocks.push(large * 2);
    }
    // A search for faint ink looks for dark glyphs only (most plates; light glyphs on dark
    // plates gained nothing there, for as much time again), in the smallest neighbourhood
    // only (the larger ones gained nothing either, for a tenth of a no-plate frame's time).
    let faint = contrast < CONTRAST;
    if faint {
        blocks.truncate(1);
    }
    let polarities: &[bool] = if faint { &[true] } else { &[true, false] };
    let mut fine_dark = None;
    let ink = ink_contrast(&src, large, contrast)?;
    for block in blocks {
        let mean = local_mean(&src, block)?;
        for &dark in polarities {
            let bin = threshold(&src, &mean, dark, &ink)?;
            let blobs = glyph_blobs(&bin, heights)?;
            rows.extend(rows_of(blobs, dark));
            if block == small && dark {
                fine_dark = Some(bin);
            }
        }
    }
    // Glyphs that touch their surroundings, where the components found no text (or only a
    // few glyphs, below). Only dark ink is searched: glyphs run into the frame on light
    // plates (light glyphs on dark plates gained nothing on the dev sets, for as much time
    // again).
    if let Some(bin) = fine_dark {
        // A row of a few glyphs may be the part of a plate whose other glyphs stand on its
        // border or a graphic, so its band is searched too; so is every row's in the search
        // for faint ink, which runs where nothing read.
        let found: Vec<Rect> = if faint {
            Vec::new()
        } else {
            rows.iter()
                .filter(|r| r.blobs.len() > SHORT_ROW)
                .map(Row::rect)
                .collect()
        };
        rows.extend(banded_rows(&bin, heights, true, &found)?);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ink_needs_less_contrast_where_the_picture_is_dim() {
        // Three bands of light vertical stripes 4 px wide on gray 100: 60 gray levels lighter
        // (lit, a spread of 30), 12 (dim, 6) and 4 (nearly flat, 2).
        let (w, h) = (60usize, 120usize);
        let px: Vec<u8> = (0..w * h)
            .map(|i| {
                let (x, y) = (i % w, i / w);
                100 + [60, 12, 4][y / 40] * u8::from(x / 4 % 2 == 0)
            })
            .collect();
        let src = Mat::new_rows_cols_with_data(h as i32, w as i32, &px)
            .unwrap()
            .try_clone()
            .unwrap();
        let levels = ink_contrast(&src, 15, CONTRAST).unwrap();
        let level = |y: usize| levels.data_bytes().unwrap()[y * w + w / 2];
        // Lit: the full 8; dim: 8 x 6 / 20, raised to the least share (0.4 x 8 = 3.2), and the
        // same for the flat band.
        assert_eq!((level(20), level(60), level(100)), (8, 3, 3));
        // The dim band's stripes are ink (6 above their neighbourhood's mean, where a lit
        // plate's contrast would have lost them), the flat band's are not.
        let bin = binarise(&src, 9, false, &levels).unwrap();
        let ink = |y: usize| bin.data_bytes().unwrap()[y * w..(y + 1) * w].to_vec();
        let stripes: Vec<u8> = (0..w).map(|x| 255 * u8::from(x / 4 % 2 == 0)).collect();
        // (away from the sides, where the neighbourhood is the border repeated).
        let inner = 4..w - 4;
        assert_eq!(ink(20)[inner.clone()], stripes[inner.clone()]);
        assert_eq!(ink(60)[inner.clone()], stripes[inner]);
        assert!(ink(100).iter().all(|&v| v == 0));
        // Middling: 20 lighter, a spread of 10: 8 x 10 / 20 = 4.
        let px: Vec<u8> = px.iter().map(|&v| if v > 104 { 120 } else { v }).collect();
        let src = Mat::new_rows_cols_with_data(h as i32, w as i32, &px)
            .unwrap()
            .try_clone()
            .unwrap();
        let levels = ink_contrast(&src, 15, CONTRAST).unwrap();
        assert_eq!(levels.data_bytes().unwrap()[60 * w + w / 2], 4);
    }

    #[test]
    fn components_are_opencvs_with_their_boxes_and_areas() {
        // Specks, runs, rings and diagonals (8-connected) of a seeded noise, against OpenCV's
        // own statistics.
        let (w, h) = (97usize, 53usize);
        let mut rng = crate::vision::classifier::Rng::new(5);
        let px: Vec<u8> = (0..w * h)
            .map(|i| {
                let (x, y) = (i % w, i / w);
                let ring = (x as i32 - 70).pow(2) + (y as i32 - 25).pow(2);
                let on = rng.unit() < 0.3 || x == y || (100..150).contains(&ring);
                255 * u8::from(on)
            })
            .collect();
        let bin = Mat::new_rows_cols_with_data(h as i32, w as i32, &px)
            .unwrap()
            .try_clone()
            .unwrap();
        let (mut labels, mut stats, mut centroids) =
            (Mat::default(), Mat::default(), Mat::default());
        let n = imgproc::connected_components_with_stats(
            &bin,
            &mut labels,
            &mut stats,
            &mut centroids,
            8,
            CV_32S,
        )
        .unwrap();
        let cols = imgproc::CC_STAT_MAX as usize;
        let expected: Vec<Blob> = stats.data_typed::<i32>().unwrap()[cols..n as usize * cols]
            .chunks_exact(cols)
            .map(|r| Blob {
                x: r[imgproc::CC_STAT_LEFT as usize],
                y: r[imgproc::CC_STAT_TOP as usize],
                w: r[imgproc::CC_STAT_WIDTH as usize],
                h: r[imgproc::CC_STAT_HEIGHT as usize],
                area: r[imgproc::CC_STAT_AREA as usize],
            })
            .collect();
        assert!(expected.len() > 50, "{}", expected.len());
        assert_eq!(components(&bin).unwrap(), expected);
        // Nothing and no picture.
        let blank = Mat::new_rows_cols_with_default(4, 4, opencv::core::CV_8U, 0.into()).unwrap();
        assert!(components(&blank).unwrap().is_empty());
    }

    fn blob(x: i32, y: i32, w: i32, h: i32) -> Blob {
        Blob {
            x,
            y,
            w,
            h,
            area: w * h / 2,
        }
    }

    #[test]
    fn chains_a_row_and_ignores_strays() {
        let mut blobs: Vec<Blob> = (0..6).map(|i| blob(10 + i * 14, 20, 10, 20)).collect();
        blobs.push(blob(40, 80, 10, 20)); // another line
        blobs.push(blob(120, 20, 10, 40)); // too tall
        let rows = rows_of(blobs, true);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].blobs.len(), 6);
        assert_eq!(rows[0].bounds(), (10, 20, 90, 40));
    }

    /// A binary picture of six `H`s, 30 px tall, standing between two frame lines that
    /// touch their tops and bottoms, and joined to each other by a thread of noise.
    fn glyphs_in_a_frame() -> Mat {
        let (w, h) = (200usize, 60usize);
        let mut px = vec![0u8; w * h];
        let mut ink = |x: usize, y: usize| px[y * w + x] = 255;
        for x in 5..195 {
            ink(x, 10);
            ink(x, 41);
        }
        for i in 0..6 {
            let x0 = 20 + i * 26;
            for y in 11..41 {
                for dx in [0, 1, 10, 11] {
                    ink(x0 + dx, y);
                }
            }
            for dx in 2..10 {
                ink(x0 + dx, 25);
                ink(x0 + dx, 26);
            }
            // A one-pixel thread to the next glyph.
            for dx in 12..26 {
                ink(x0 + dx, 33);
            }
        }
        Mat::new_rows_cols_with_data(h as i32, w as i32, &px)
            .unwrap()
            .try_clone()
            .unwrap()
    }

    #[test]
    fn glyphs_touching_a_frame_are_cut_out_of_their_band() {
        let bin = glyphs_in_a_frame();
        let heights = HeightRange { min: 8, max: 50 };
        // As components, the glyphs and the frame are one piece: no glyph at all.
        assert!(glyph_blobs(&bin, heights).unwrap().is_empty());
        let rows = banded_rows(&bin, heights, true, &[]).unwrap();
        let row = rows
            .iter()
            .max_by_key(|r| r.blobs.len())
            .expect("a row in the band");
        assert_eq!(row.blobs.len(), 6, "{rows:?}");
        for (i, b) in row.blobs.iter().enumerate() {
            assert_eq!((b.x, b.w), (20 + 26 * i as i32, 12), "{b:?}");
            assert!(
                (29..=31).contains(&b.h) && (10..=11).contains(&b.y),
                "{b:?}"
            );
        }
        // Where the components already found a row, the band is not searched again.
        let found = [Rect::new(15, 5, 165, 40)];
        assert!(banded_rows(&bin, heights, true, &found).unwrap().is_empty());
    }

    /// Dark `H`s 24 px tall on a light plate, `touching` of them first standing on its dark
    /// lower border (one piece with it), then `free` ones, components of their own.
    fn plate_partly_on_its_border(touching: usize, free: usize) -> Vec<u8> {
        let (w, h) = (300usize, 70usize);
        let mut px = vec![200u8; w * h];
        let mut ink = |x: usize, y: usize| px[y * w + x] = 40;
        for x in 10..20 + 28 * touching - 14 {
            for y in 43..46 {
                ink(x, y);
            }
        }
        for i in 0..touching + free {
            let x0 = 20 + i * 28;
            for y in 20..44 {
                for dx in [0, 1, 2, 11, 12, 13] {
                    ink(x0 + dx, y);
                }
            }
            for dx in 3..11 {
                ink(x0 + dx, 31);
                ink(x0 + dx, 32);
            }
        }
        px
    }

    #[test]
    fn the_band_of_a_row_partly_found_is_searched_when_the_row_is_short_or_ink_faint() {
        let heights = HeightRange { min: 12, max: 40 };
        let most = |px: &[u8], contrast| {
            let img = GrayImage::new(px, 300, 70, 300).unwrap();
            find_rows(&img, heights, contrast)
                .unwrap()
                .into_iter()
                .map(|r| r.blobs.len())
                .max()
        };
        // Five found glyphs are taken for the text: their band is not searched again...
        let five = plate_partly_on_its_border(3, 5);
        assert_eq!(most(&five, CONTRAST), Some(5));
        // ...but by the search for faint ink (which runs where nothing read), which cuts the
        // band and finds all eight.
        assert_eq!(most(&five, FAINT), Some(8));
        // Four found glyphs are too few for most plates: the band is searched at once.
        let four = plate_partly_on_its_border(3, 4);
        assert_eq!(most(&four, CONTRAST), Some(7));
    }

    #[test]
    fn long_rows_are_cut_at_the_widest_gap() {
        let mut blobs: Vec<Blob> = (0..7).map(|i| blob(i * 14, 0, 10, 20)).collect();
        blobs.extend((0..7).map(|i| blob(120 + i * 14, 0, 10, 20)));
        // 14 glyphs with a 24 px gap in the middle are still chained (gap < 1.3 h) but cut.
        let rows = rows_of(blobs, true);
        assert_eq!(
            rows.iter().map(|r| r.blobs.len()).collect::<Vec<_>>(),
            [7, 7]
        );
    }
}
