//! Drawing a picture on a frame: an RGBA image scaled into a [`Placement`] (bilinear, on
//! premultiplied colour so transparent edges do not bleed), alpha-blended and clipped to the
//! frame. On `i420` and `gray8` frames the picture's colours are converted like
//! [`crate::Color`]'s (BT.601).
//!
//! Not a resampling library: bilinear is right for the overlays it serves (a hat or a logo a
//! few hundred pixels wide, scaled up or down by a small factor); a picture shrunk by more than
//! two aliases a little.

use crate::{Color, FrameBuf, FrameError, PixelFormat, Rect};

/// Where a picture goes on a frame: like [`Rect`], but it may start left of or above the frame
/// (an overlay above a face near the top edge).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Placement {
    /// Left edge (may be negative).
    pub x: i32,
    /// Top edge (may be negative).
    pub y: i32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

impl Placement {
    /// A placement from its corner and size.
    pub const fn new(x: i32, y: i32, width: u32, height: u32) -> Self {
        Self {
            x,
            y,
            width,
            height,
        }
    }

    /// The part of the placement inside a `width` x `height` frame, if any.
    pub fn clip(self, width: u32, height: u32) -> Option<Rect> {
        let x0 = (self.x as i64).max(0);
        let y0 = (self.y as i64).max(0);
        let x1 = (self.x as i64 + self.width as i64).min(width as i64);
        let y1 = (self.y as i64 + self.height as i64).min(height as i64);
        (x0 < x1 && y0 < y1)
            .then(|| Rect::new(x0 as u32, y0 as u32, (x1 - x0) as u32, (y1 - y0) as u32))
    }
}

impl From<Rect> for Placement {
    fn from(r: Rect) -> Self {
        Placement {
            x: r.x.min(i32::MAX as u32) as i32,
            y: r.y.min(i32::MAX as u32) as i32,
            width: r.width,
            height: r.height,
        }
    }
}

/// A premultiplied sample: colour times opacity (0..255) and opacity (0..1).
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    r: f32,
    g: f32,
    b: f32,
    a: f32,
}

impl Sample {
    fn add(&mut self, o: Sample, w: f32) {
        self.r += o.r * w;
        self.g += o.g * w;
        self.b += o.b * w;
        self.a += o.a * w;
    }

    /// The straight colour and the opacity as 0..255.
    fn colour(self) -> (Color, u8) {
        if self.a <= 0.0 {
            return (Color::rgb(0, 0, 0), 0);
        }
        let c = |v: f32| (v / self.a).round().clamp(0.0, 255.0) as u8;
        let alpha = (self.a * 255.0).round().clamp(0.0, 255.0) as u8;
        (Color::rgb(c(self.r), c(self.g), c(self.b)), alpha)
    }
}

/// Bilinear sampling of an RGBA picture mapped onto a placement.
struct Sampler<'a> {
    data: &'a [u8],
    w: usize,
    h: usize,
    at: Placement,
    /// Picture pixels per frame pixel.
    sx: f32,
    sy: f32,
}

impl Sampler<'_> {
    fn texel(&self, x: usize, y: usize) -> Sample {
        let i = (y * self.w + x) * 4;
        let p = &self.data[i..i + 4];
        let a = p[3] as f32 / 255.0;
        Sample {
            r: p[0] as f32 * a,
            g: p[1] as f32 * a,
            b: p[2] as f32 * a,
            a,
        }
    }

    /// The picture at the centre of frame pixel (fx, fy); transparent outside the placement.
    fn at(&self, fx: u32, fy: u32) -> Sample {
        let px = fx as i64 - self.at.x as i64;
        let py = fy as i64 - self.at.y as i64;
        if px < 0 || py < 0 || px >= self.at.width as i64 || py >= self.at.height as i64 {
            return Sample::default();
        }
        let u = ((px as f32 + 0.5) * self.sx - 0.5).clamp(0.0, (self.w - 1) as f32);
        let v = ((py as f32 + 0.5) * self.sy - 0.5).clamp(0.0, (self.h - 1) as f32);
        let (x0, y0) = (u as usize, v as usize);
        let (x1, y1) = ((x0 + 1).min(self.w - 1), (y0 + 1).min(self.h - 1));
        let (fu, fv) = (u - x0 as f32, v - y0 as f32);
        let mut s = Sample::default();
        s.add(self.texel(x0, y0), (1.0 - fu) * (1.0 - fv));
        s.add(self.texel(x1, y0), fu * (1.0 - fv));
        s.add(self.texel(x0, y1), (1.0 - fu) * fv);
        s.add(self.texel(x1, y1), fu * fv);
        s
    }
}

/// `dst` blended towards `src` by `alpha`/255.
fn blend(dst: u8, src: u8, alpha: u8) -> u8 {
    let a = alpha as u32;
    ((src as u32 * a + dst as u32 * (255 - a) + 127) / 255) as u8
}

impl FrameBuf {
    /// Draws `picture` (an `rgba` frame buffer) scaled to `at`, blended by its alpha and
    /// clipped to the frame. Returns the rectangle of the frame it may have changed (`None`
    /// when the placement misses the frame or the picture is empty).
    pub fn draw_picture(
        &mut self,
        picture: &FrameBuf,
        at: Placement,
    ) -> Result<Option<Rect>, FrameError> {
        if picture.format() != PixelFormat::Rgba {
            return Err(FrameError::Unsupported(format!(
                "pictures are drawn from rgba buffers, got {}",
                picture.format()
            )));
        }
        let Some(area) = at.clip(self.width(), self.height()) else {
            return Ok(None);
        };
        if picture.width() == 0 || picture.height() == 0 {
            return Ok(None);
        }
        let sampler = Sampler {
            data: picture.data(),
            w: picture.width() as usize,
            h: picture.height() as usize,
            at,
            sx: picture.width() as f32 / at.width as f32,
            sy: picture.height() as f32 / at.height as f32,
        };
        let planes = self.planes();
        let (x_end, y_end) = (area.x + area.width, area.y + area.height);
        match self.format() {
            PixelFormat::Rgba => {
                let stride = planes[0].stride as usize;
                let data = self.data_mut();
                for fy in area.y..y_end {
                    for fx in area.x..x_end {
                        let (c, a) = sampler.at(fx, fy).colour();
                        if a == 0 {
                            continue;
                        }
                        let i = fy as usize * stride + fx as usize * 4;
                        let px = &mut data[i..i + 4];
                        px[0] = blend(px[0], c.r, a);
                        px[1] = blend(px[1], c.g, a);
                        px[2] = blend(px[2], c.b, a);
                        px[3] = blend(px[3], 255, a);
                    }
                }
            }
            PixelFormat::Gray8 | PixelFormat::I420 => {
                let i420 = self.format() == PixelFormat::I420;
                let luma = planes[0];
                let data = self.data_mut();
                for fy in area.y..y_end {
                    for fx in area.x..x_end {
                        let (c, a) = sampler.at(fx, fy).colour();
                        if a == 0 {
                            continue;
                        }
                        let value = if i420 { c.yuv().0 } else { c.luma() };
                        let i = (luma.offset + fy * luma.stride + fx) as usize;
                        data[i] = blend(data[i], value, a);
                    }
                }
                if i420 {
                    // Each chroma sample gets the mean of the four luma pixels it covers
                    // (pixels outside the placement count as transparent).
                    let (u_plane, v_plane) = (planes[1], planes[2]);
                    for cy in area.y / 2..=(y_end - 1) / 2 {
                        for cx in area.x / 2..=(x_end - 1) / 2 {
                            let mut s = Sample::default();
                            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                                let (fx, fy) = (cx * 2 + dx, cy * 2 + dy);
                                if fx < self.width() && fy < self.height() {
                                    s.add(sampler.at(fx, fy), 0.25);
                                }
                            }
                            let (c, a) = s.colour();
                            if a == 0 {
                                continue;
                            }
                            let (_, u, v) = c.yuv();
                            let data = self.data_mut();
                            let iu = (u_plane.offset + cy * u_plane.stride + cx) as usize;
                            let iv = (v_plane.offset + cy * v_plane.stride + cx) as usize;
                            data[iu] = blend(data[iu], u, a);
                            data[iv] = blend(data[iv], v, a);
                        }
                    }
                }
            }
        }
        Ok(Some(area))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2x2 picture: opaque red, opaque green / transparent, half-transparent blue.
    fn picture() -> FrameBuf {
        FrameBuf::new(
            PixelFormat::Rgba,
            2,
            2,
            vec![255, 0, 0, 255, 0, 255, 0, 255, 9, 9, 9, 0, 0, 0, 255, 128],
        )
        .unwrap()
    }

    #[test]
    fn placement_clips_negative_corners() {
        assert_eq!(
            Placement::new(-5, -3, 10, 10).clip(100, 100),
            Some(Rect::new(0, 0, 5, 7))
        );
        assert_eq!(Placement::new(-20, 0, 10, 10).clip(100, 100), None);
        assert_eq!(
            Placement::new(95, 98, 10, 10).clip(100, 100),
            Some(Rect::new(95, 98, 5, 2))
        );
        assert_eq!(Placement::new(i32::MAX, 0, u32::MAX, 1).clip(10, 10), None);
    }

    #[test]
    fn rgba_quadrants_scale_and_blend() {
        let mut frame = FrameBuf::filled(PixelFormat::Rgba, 40, 40, Color::rgb(255, 255, 255));
        let drawn = frame
            .draw_picture(&picture(), Placement::new(10, 10, 20, 20))
            .unwrap();
        assert_eq!(drawn, Some(Rect::new(10, 10, 20, 20)));
        // Quadrant centres (away from the bilinear seams).
        assert_eq!(frame.pixel(12, 12), Some(&[255, 0, 0, 255][..]));
        assert_eq!(frame.pixel(27, 12), Some(&[0, 255, 0, 255][..]));
        // Transparent: the frame shows through, no dark fringe from the texel's colour.
        assert_eq!(frame.pixel(12, 27), Some(&[255, 255, 255, 255][..]));
        // Half-transparent blue over white.
        let p = frame.pixel(27, 27).unwrap();
        assert!(p[0].abs_diff(127) <= 2 && p[2] == 255, "{p:?}");
        // Outside the placement nothing changed.
        assert_eq!(frame.pixel(9, 9), Some(&[255, 255, 255, 255][..]));
        assert_eq!(frame.pixel(30, 30), Some(&[255, 255, 255, 255][..]));
        // Near the transparent quadrant, red is blended, not darkened by black texels.
        let edge = frame.pixel(12, 20).unwrap();
        assert_eq!(edge[0], 255, "{edge:?}");
    }

    #[test]
    fn i420_gets_luma_and_chroma_and_clips() {
        let mut frame = FrameBuf::filled(PixelFormat::I420, 16, 16, Color::rgb(0, 0, 0));
        let red = FrameBuf::filled(PixelFormat::Rgba, 3, 3, Color::rgb(255, 0, 0));
        let drawn = frame
            .draw_picture(&red, Placement::new(-4, -4, 12, 12))
            .unwrap();
        assert_eq!(drawn, Some(Rect::new(0, 0, 8, 8)));
        let (y, u, v) = Color::rgb(255, 0, 0).yuv();
        assert_eq!(frame.pixel(0, 0), Some(&[y][..]));
        assert_eq!(frame.pixel(7, 7), Some(&[y][..]));
        assert_eq!(frame.pixel(8, 8), Some(&[16][..]));
        let planes = frame.planes();
        assert_eq!(frame.data()[planes[1].offset as usize], u);
        assert_eq!(frame.data()[planes[2].offset as usize + 3], v);
        assert_eq!(frame.data()[planes[2].offset as usize + 4], 128);
    }

    #[test]
    fn gray_and_misses() {
        let mut frame = FrameBuf::zeroed(PixelFormat::Gray8, 8, 8);
        let white = FrameBuf::filled(PixelFormat::Rgba, 1, 1, Color::rgb(255, 255, 255));
        frame
            .draw_picture(&white, Placement::new(2, 2, 2, 2))
            .unwrap();
        assert_eq!(frame.pixel(2, 2), Some(&[255][..]));
        assert_eq!(frame.pixel(4, 4), Some(&[0][..]));
        let before = frame.clone();
        assert_eq!(
            frame.draw_picture(&white, Placement::new(50, 0, 4, 4)),
            Ok(None)
        );
        assert_eq!(frame, before);
        assert!(
            frame
                .draw_picture(&before, Placement::new(0, 0, 4, 4))
                .is_err()
        );
    }
}
