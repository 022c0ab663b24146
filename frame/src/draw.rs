//! Drawing on frames: filled boxes, rectangle outlines and 8x8 bitmap text.
//!
//! Colours are sRGB with opacity; on `i420` and `gray8` frames they are converted to luma and
//! chroma (BT.601, limited range for `i420` as decoders produce it, full range for `gray8`).

use font8x8::legacy::BASIC_LEGACY;

use crate::{FrameBuf, PixelFormat, Rect};

/// An sRGB colour with opacity (`a` = 255 is opaque).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Color {
    /// Red.
    pub r: u8,
    /// Green.
    pub g: u8,
    /// Blue.
    pub b: u8,
    /// Opacity.
    pub a: u8,
}

impl Color {
    /// An opaque colour.
    pub const fn rgb(r: u8, g: u8, b: u8) -> Self {
        Self { r, g, b, a: 255 }
    }

    /// The same colour, opaque.
    pub const fn opaque(self) -> Self {
        Self { a: 255, ..self }
    }

    /// Full-range luma (the value [`crate::kernels::gray_rgba_in_place`] computes).
    pub fn luma(self) -> u8 {
        crate::kernels::luma(self.r, self.g, self.b)
    }

    /// BT.601 limited-range Y, U, V.
    pub fn yuv(self) -> (u8, u8, u8) {
        let (r, g, b) = (self.r as i32, self.g as i32, self.b as i32);
        let y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16;
        let u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128;
        let v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128;
        (y as u8, u as u8, v as u8)
    }
}

/// `dst` blended towards `src` by `alpha`/255.
fn blend(dst: u8, src: u8, alpha: u8) -> u8 {
    if alpha == 255 {
        return src;
    }
    let a = alpha as u32;
    ((src as u32 * a + dst as u32 * (255 - a) + 127) / 255) as u8
}

impl FrameBuf {
    /// Fills a rectangle (clipped to the frame), blending by the colour's opacity.
    pub fn fill_rect(&mut self, area: Rect, colour: Color) {
        let Some(area) = area.clip(self.width, self.height) else {
            return;
        };
        if colour.a == 0 {
            return;
        }
        let planes = self.planes();
        let a = colour.a;
        match self.format {
            PixelFormat::Rgba => {
                let p = planes[0];
                for row in area.y..area.y + area.height {
                    let start = (row * p.stride + area.x * 4) as usize;
                    let line = &mut self.data[start..start + area.width as usize * 4];
                    for px in line.chunks_exact_mut(4) {
                        px[0] = blend(px[0], colour.r, a);
                        px[1] = blend(px[1], colour.g, a);
                        px[2] = blend(px[2], colour.b, a);
                        px[3] = blend(px[3], 255, a);
                    }
                }
            }
            PixelFormat::Gray8 => self.fill_plane(planes[0], area, colour.luma(), a),
            PixelFormat::I420 => {
                let (y, u, v) = colour.yuv();
                self.fill_plane(planes[0], area, y, a);
                let x0 = area.x / 2;
                let y0 = area.y / 2;
                let chroma = Rect::new(
                    x0,
                    y0,
                    (area.x + area.width - 1) / 2 - x0 + 1,
                    (area.y + area.height - 1) / 2 - y0 + 1,
                );
                self.fill_plane(planes[1], chroma, u, a);
                self.fill_plane(planes[2], chroma, v, a);
            }
        }
    }

    fn fill_plane(&mut self, plane: crate::PlaneLayout, area: Rect, value: u8, alpha: u8) {
        for row in area.y..area.y + area.height {
            let start = (plane.offset + row * plane.stride + area.x) as usize;
            let line = &mut self.data[start..start + area.width as usize];
            if alpha == 255 {
                line.fill(value);
            } else {
                line.iter_mut().for_each(|s| *s = blend(*s, value, alpha));
            }
        }
    }

    /// Draws a rectangle outline `thickness` pixels wide inside `area` (clipped to the frame).
    pub fn draw_rect(&mut self, area: Rect, colour: Color, thickness: u32) {
        let t = thickness
            .max(1)
            .min(area.width.div_ceil(2))
            .min(area.height.div_ceil(2));
        if t == 0 {
            return;
        }
        // `t` is at most half the width and height, rounded up: the edges fit inside the box,
        // and a box too thin for an inside is the top and bottom edges alone.
        let (x, y, w, h) = (area.x, area.y, area.width, area.height);
        let side = h.saturating_sub(2 * t);
        self.fill_rect(Rect::new(x, y, w, t), colour);
        self.fill_rect(Rect::new(x, y.saturating_add(h - t), w, t), colour);
        if side > 0 {
            let y = y.saturating_add(t);
            self.fill_rect(Rect::new(x, y, t, side), colour);
            self.fill_rect(Rect::new(x.saturating_add(w - t), y, t, side), colour);
        }
    }

    /// Draws `text` with an 8x8 bitmap font, each font pixel `scale` x `scale` pixels, top-left
    /// corner at (x, y). Characters outside printable ASCII draw as `?`; `\n` starts a new line.
    pub fn draw_text(&mut self, text: &str, x: u32, y: u32, scale: u32, colour: Color) {
        let scale = scale.clamp(1, 64);
        let cell = 8 * scale;
        let (mut cx, mut cy) = (x, y);
        for ch in text.chars() {
            if ch == '\n' {
                cx = x;
                cy = cy.saturating_add(cell);
                continue;
            }
            if cx >= self.width || cy >= self.height {
                if cy >= self.height {
                    return;
                }
                continue;
            }
            let code = if (' '..='~').contains(&ch) {
                ch as usize
            } else {
                '?' as usize
            };
            for (row, bits) in BASIC_LEGACY[code].iter().enumerate() {
                for col in 0..8u32 {
                    if bits & (1 << col) != 0 {
                        let px = cx.saturating_add(col * scale);
                        let py = cy.saturating_add(row as u32 * scale);
                        self.fill_rect(Rect::new(px, py, scale, scale), colour);
                    }
                }
            }
            cx = cx.saturating_add(cell);
        }
    }
}

/// Width and height in pixels that [`FrameBuf::draw_text`] covers for `text` at `scale`.
pub fn text_size(text: &str, scale: u32) -> (u32, u32) {
    let scale = scale.clamp(1, 64);
    let lines = text.split('\n');
    let (mut w, mut h) = (0u32, 0u32);
    for line in lines {
        w = w.max(line.chars().count() as u32 * 8 * scale);
        h += 8 * scale;
    }
    (w, h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_rgba_blends_and_clips() {
        let mut frame = FrameBuf::zeroed(PixelFormat::Rgba, 4, 4);
        frame.fill_rect(Rect::new(2, 2, 10, 10), Color::rgb(255, 0, 0));
        assert_eq!(frame.pixel(3, 3), Some(&[255, 0, 0, 255][..]));
        assert_eq!(frame.pixel(1, 1), Some(&[0, 0, 0, 0][..]));
        frame.fill_rect(
            Rect::new(0, 0, 1, 1),
            Color {
                r: 200,
                g: 100,
                b: 0,
                a: 128,
            },
        );
        assert_eq!(frame.pixel(0, 0), Some(&[100, 50, 0, 128][..]));
    }

    #[test]
    fn fill_i420_sets_luma_and_chroma() {
        let mut frame = FrameBuf::zeroed(PixelFormat::I420, 4, 4);
        frame.fill_rect(Rect::new(0, 0, 2, 2), Color::rgb(255, 255, 255));
        assert_eq!(frame.pixel(0, 0), Some(&[235][..]));
        assert_eq!(frame.pixel(2, 2), Some(&[0][..]));
        let planes = frame.planes();
        assert_eq!(frame.data()[planes[1].offset as usize], 128);
        assert_eq!(frame.data()[planes[1].offset as usize + 1], 0);
    }

    #[test]
    fn rect_outline_leaves_inside() {
        let mut frame = FrameBuf::zeroed(PixelFormat::Gray8, 10, 10);
        frame.draw_rect(Rect::new(1, 1, 8, 8), Color::rgb(255, 255, 255), 2);
        assert_eq!(frame.pixel(1, 1), Some(&[255][..]));
        assert_eq!(frame.pixel(2, 5), Some(&[255][..]));
        assert_eq!(frame.pixel(3, 3), Some(&[0][..]));
        assert_eq!(frame.pixel(0, 0), Some(&[0][..]));
    }

    #[test]
    fn thin_and_far_off_outlines_draw_what_fits() {
        // One pixel tall, three thick: a line, not a wrapped-around bar down the frame.
        let mut frame = FrameBuf::zeroed(PixelFormat::Gray8, 10, 10);
        frame.draw_rect(Rect::new(2, 4, 5, 1), Color::rgb(255, 255, 255), 3);
        let lit: Vec<(u32, u32)> = (0..10)
            .flat_map(|y| (0..10).map(move |x| (x, y)))
            .filter(|&(x, y)| frame.pixel(x, y) == Some(&[255][..]))
            .collect();
        assert_eq!(lit, (2..7).map(|x| (x, 4)).collect::<Vec<_>>());
        // A box beyond u32's end draws nothing and does not overflow.
        frame.draw_rect(
            Rect::new(u32::MAX - 2, u32::MAX - 2, 9, 9),
            Color::rgb(9, 9, 9),
            2,
        );
        assert!(frame.data().iter().all(|&v| v == 0 || v == 255));
    }

    #[test]
    fn text_draws_glyph_pixels() {
        let mut frame = FrameBuf::zeroed(PixelFormat::Gray8, 32, 16);
        frame.draw_text("I", 0, 0, 2, Color::rgb(255, 255, 255));
        let lit = frame.data().iter().filter(|&&v| v == 255).count();
        let glyph: u32 = BASIC_LEGACY['I' as usize]
            .iter()
            .map(|b| b.count_ones())
            .sum();
        assert_eq!(lit as u32, glyph * 4);
        assert_eq!(text_size("ab\nc", 2), (32, 32));
    }
}
