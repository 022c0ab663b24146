//! Gray images the vision core reads, borrowed from frames without a copy, and the crop every
//! character goes through before the classifier sees it.

use opencv::core::{CV_8UC1, Mat};
use prism_frame::{FrameBuf, PixelFormat};

use super::Rect;

/// A borrowed 8-bit gray image (a `gray8` frame, or the luma plane of an `i420` frame).
#[derive(Debug, Clone, Copy)]
pub struct GrayImage<'a> {
    data: &'a [u8],
    width: usize,
    height: usize,
    stride: usize,
    /// The U and V planes (2x2 subsampled, row length `(width + 1) / 2`) when the frame has
    /// colour: lets the reader tell a coloured band from a glyph.
    chroma: Option<(&'a [u8], &'a [u8])>,
}

impl<'a> GrayImage<'a> {
    /// Wraps `data`; `None` if it is too short for the size.
    pub fn new(data: &'a [u8], width: usize, height: usize, stride: usize) -> Option<Self> {
        let needed = if height == 0 {
            0
        } else {
            stride * (height - 1) + width
        };
        (stride >= width && data.len() >= needed).then_some(GrayImage {
            data,
            width,
            height,
            stride,
            chroma: None,
        })
    }

    /// The luma of a `gray8` or `i420` frame (with the chroma of `i420`); `None` for `rgba`
    /// (see [`luma_of`]).
    pub fn of_frame(frame: &'a FrameBuf) -> Option<Self> {
        let w = frame.width() as usize;
        let h = frame.height() as usize;
        match frame.format() {
            PixelFormat::Gray8 => GrayImage::new(frame.plane(0), w, h, w),
            PixelFormat::I420 => {
                let mut g = GrayImage::new(frame.plane(0), w, h, w)?;
                let (u, v) = (frame.plane(1), frame.plane(2));
                let need = w.div_ceil(2) * h.div_ceil(2);
                if u.len() >= need && v.len() >= need {
                    g.chroma = Some((u, v));
                }
                Some(g)
            }
            PixelFormat::Rgba => None,
        }
    }

    /// Mean colourfulness (|U - 128| + |V - 128|) inside `r`, if the image has colour.
    pub fn colourfulness(&self, r: Rect) -> Option<f32> {
        let (u, v) = self.chroma?;
        if self.stride != self.width {
            return None;
        }
        let cw = self.width.div_ceil(2);
        let (x0, y0) = (r.x as usize / 2, r.y as usize / 2);
        let x1 = ((r.x + r.width) as usize).div_ceil(2).min(cw);
        let y1 = ((r.y + r.height) as usize)
            .div_ceil(2)
            .min(self.height.div_ceil(2));
        let mut sum = 0u64;
        let mut n = 0u64;
        for y in y0..y1 {
            for x in x0..x1 {
                let i = y * cw + x;
                sum += (u[i] as i32 - 128).unsigned_abs() as u64
                    + (v[i] as i32 - 128).unsigned_abs() as u64;
                n += 1;
            }
        }
        (n > 0).then(|| sum as f32 / n as f32)
    }

    /// The part of the image inside `r` (which must lie inside it), still borrowed.
    pub fn sub(&self, r: Rect) -> Option<GrayImage<'a>> {
        if !r.fits(self.width as u32, self.height as u32) || r.width == 0 || r.height == 0 {
            return None;
        }
        let start = r.y as usize * self.stride + r.x as usize;
        GrayImage::new(
            &self.data[start..],
            r.width as usize,
            r.height as usize,
            self.stride,
        )
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// The pixel at (x, y); the caller keeps inside the image.
    #[inline]
    pub fn at(&self, x: usize, y: usize) -> u8 {
        self.data[y * self.stride + x]
    }

    /// One row.
    pub fn row(&self, y: usize) -> &'a [u8] {
        &self.data[y * self.stride..y * self.stride + self.width]
    }

    /// An OpenCV header over the same bytes (no copy). The `Mat` must not outlive `self` and
    /// is only read.
    pub(crate) fn mat(&self) -> opencv::Result<Mat> {
        // SAFETY: the header points into `self.data`, which `new` checked covers `height`
        // rows of `stride` bytes; callers only read through it while `self` is borrowed.
        unsafe {
            Mat::new_rows_cols_with_data_unsafe(
                self.height as i32,
                self.width as i32,
                CV_8UC1,
                self.data.as_ptr() as *mut std::ffi::c_void,
                self.stride,
            )
        }
    }
}

/// Luma (BT.601) of any frame: borrowed for `gray8`/`i420`, computed for `rgba`.
pub fn luma_of(frame: &FrameBuf) -> std::borrow::Cow<'_, [u8]> {
    match frame.format() {
        PixelFormat::Gray8 | PixelFormat::I420 => std::borrow::Cow::Borrowed(frame.plane(0)),
        PixelFormat::Rgba => std::borrow::Cow::Owned(
            frame
                .data()
                .chunks_exact(4)
                .map(|p| prism_frame::kernels::luma(p[0], p[1], p[2]))
                .collect(),
        ),
    }
}

/// Width of the classifier's input patch.
pub const PATCH_W: usize = 20;
/// Height of the classifier's input patch.
pub const PATCH_H: usize = 28;
/// Inputs of the classifier.
pub const PATCH_LEN: usize = PATCH_W * PATCH_H;
const INNER_W: f32 = 16.0;
const INNER_H: f32 = 24.0;

/// The classifier's view of one character: the box cut from the image, contrast stretched so
/// ink is 1 and background 0 (`dark` = dark ink on a light plate), scaled to fit 16x24 with
/// its aspect ratio kept, centred in a 20x28 patch.
pub fn char_patch(img: &GrayImage<'_>, r: Rect, dark: bool) -> [f32; PATCH_LEN] {
    let mut out = [0f32; PATCH_LEN];
    let x0 = r.x.saturating_sub(1) as usize;
    let y0 = r.y.saturating_sub(1) as usize;
    let x1 = ((r.x + r.width + 1) as usize).min(img.width());
    let y1 = ((r.y + r.height + 1) as usize).min(img.height());
    if x1 <= x0 || y1 <= y0 {
        return out;
    }
    let (cw, ch) = (x1 - x0, y1 - y0);
    let mut hist = [0u32; 256];
    for y in y0..y1 {
        for &v in &img.row(y)[x0..x1] {
            hist[v as usize] += 1;
        }
    }
    let total = (cw * ch) as u32;
    let pct = |p: f32| {
        let target = (total as f32 * p) as u32;
        let mut acc = 0;
        for (v, &n) in hist.iter().enumerate() {
            acc += n;
            if acc > target {
                return v as f32;
            }
        }
        255.0
    };
    let (lo, hi) = (pct(0.04), pct(0.96));
    let span = (hi - lo).max(16.0);
    let ink = |v: u8| {
        let t = ((v as f32 - lo) / span).clamp(0.0, 1.0);
        if dark { 1.0 - t } else { t }
    };
    let s = (INNER_W / cw as f32).min(INNER_H / ch as f32);
    let tw = ((cw as f32 * s).round() as usize).clamp(1, INNER_W as usize);
    let th = ((ch as f32 * s).round() as usize).clamp(1, INNER_H as usize);
    let ox = (PATCH_W - tw) / 2;
    let oy = (PATCH_H - th) / 2;
    // Area average of the source pixels under each patch pixel (box filter), sampled on a
    // small grid so both shrinking and enlarging work.
    let fx = cw as f32 / tw as f32;
    let fy = ch as f32 / th as f32;
    let nx = (fx.ceil() as usize).clamp(1, 4);
    let ny = (fy.ceil() as usize).clamp(1, 4);
    for ty in 0..th {
        for tx in 0..tw {
            let mut acc = 0.0;
            for sy in 0..ny {
                let yy = ((ty as f32 + (sy as f32 + 0.5) / ny as f32) * fy) as usize;
                let yy = y0 + yy.min(ch - 1);
                for sx in 0..nx {
                    let xx = ((tx as f32 + (sx as f32 + 0.5) / nx as f32) * fx) as usize;
                    acc += ink(img.at(x0 + xx.min(cw - 1), yy));
                }
            }
            out[(oy + ty) * PATCH_W + ox + tx] = acc / (nx * ny) as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_centres_ink_and_keeps_aspect() {
        // A 4x12 dark bar on a light 20x20 image.
        let mut data = vec![220u8; 400];
        for y in 4..16 {
            for x in 8..12 {
                data[y * 20 + x] = 20;
            }
        }
        let img = GrayImage::new(&data, 20, 20, 20).unwrap();
        let p = char_patch(&img, Rect::new(8, 4, 4, 12), true);
        // Centre column is ink, corners are background.
        assert!(p[14 * PATCH_W + 10] > 0.9, "{}", p[14 * PATCH_W + 10]);
        assert_eq!(p[0], 0.0);
        assert!(p[14 * PATCH_W + 2] < 0.1);
        // Inverted polarity reads the plate's background as ink.
        let q = char_patch(&img, Rect::new(8, 4, 4, 12), false);
        assert!(q[14 * PATCH_W + 10] < 0.1);
    }

    #[test]
    fn short_buffers_are_refused() {
        assert!(GrayImage::new(&[0; 10], 4, 4, 4).is_none());
        assert!(GrayImage::new(&[0; 16], 4, 4, 4).is_some());
        assert!(GrayImage::new(&[0; 16], 5, 3, 4).is_none());
    }
}
