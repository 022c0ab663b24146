//! Plate candidates: rows of character-like blobs.
//!
//! A plate is, whatever the country, a short horizontal row of similar-height glyphs with a
//! strong, even contrast to their background. The image is binarised with a local (adaptive)
//! threshold at two neighbourhood sizes and both polarities (dark ink on a light plate and the
//! reverse); connected components of the right shape become character candidates, and
//! neighbours of similar height on a common baseline are chained into rows. Each row of 4+
//! glyphs is a candidate; the reader later decides whether it says anything.

use opencv::core::{CV_32S, Mat};
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
}

/// Glyph heights to look for, pixels.
#[derive(Debug, Clone, Copy)]
pub struct HeightRange {
    pub min: i32,
    pub max: i32,
}

/// Fewest glyphs a row needs.
pub const MIN_GLYPHS: usize = 4;
/// Most glyphs a row keeps (longer rows are text, not plates).
pub const MAX_GLYPHS: usize = 12;

/// Binary image of `img`: ink = 255. `block` is the odd neighbourhood size.
pub fn binarise(src: &Mat, block: i32, dark: bool) -> opencv::Result<Mat> {
    let mut bin = Mat::default();
    // Ink must differ from the neighbourhood mean by this many gray levels.
    const CONTRAST: f64 = 8.0;
    let (kind, c) = if dark {
        (imgproc::THRESH_BINARY_INV, CONTRAST)
    } else {
        (imgproc::THRESH_BINARY, -CONTRAST)
    };
    imgproc::adaptive_threshold(
        src,
        &mut bin,
        255.0,
        imgproc::ADAPTIVE_THRESH_MEAN_C,
        kind,
        block | 1,
        c,
    )?;
    Ok(bin)
}

/// Components of `bin` shaped like glyphs.
pub fn glyph_blobs(bin: &Mat, heights: HeightRange) -> opencv::Result<Vec<Blob>> {
    let mut labels = Mat::default();
    let mut stats = Mat::default();
    let mut centroids = Mat::default();
    let n = imgproc::connected_components_with_stats(
        bin,
        &mut labels,
        &mut stats,
        &mut centroids,
        8,
        CV_32S,
    )?;
    let mut out = Vec::new();
    for i in 1..n {
        let s = |k| stats.at_2d::<i32>(i, k).copied();
        let b = Blob {
            x: s(imgproc::CC_STAT_LEFT)?,
            y: s(imgproc::CC_STAT_TOP)?,
            w: s(imgproc::CC_STAT_WIDTH)?,
            h: s(imgproc::CC_STAT_HEIGHT)?,
            area: s(imgproc::CC_STAT_AREA)?,
        };
        if is_glyph(&b, heights) {
            out.push(b);
        }
    }
    Ok(out)
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

/// Candidate rows of `img` over the given glyph heights.
pub fn find_rows(img: &GrayImage<'_>, heights: HeightRange) -> opencv::Result<Vec<Row>> {
    let src = img.mat()?;
    let mut rows = Vec::new();
    // Neighbourhoods about one and several glyph heights wide: the first separates glyphs
    // that sit close to the plate's border, the others keep thick strokes whole.
    let small = ((heights.min as f32 * 1.2) as i32).max(9);
    let large = heights.max.min(heights.min * 6).max(small + 10);
    let mut blocks = vec![small, large];
    // Large pictures hold large plates: a third neighbourhood for glyphs of 60 px and more.
    if heights.max >= 4 * large && src.rows() >= 720 {
        blocks.push(large * 2);
    }
    for block in blocks {
        for dark in [true, false] {
            let bin = binarise(&src, block, dark)?;
            let blobs = glyph_blobs(&bin, heights)?;
            rows.extend(rows_of(blobs, dark));
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

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
