//! Rectangles and region reads/writes.
//!
//! A region's bytes are packed row by row, plane after plane: for `i420` the Y rows of the
//! rectangle, then the U rows and V rows of the chroma rectangle (the luma one halved, rounded
//! up). Reads and writes visit the row segments in that order.

use crate::{FrameBuf, FrameError, PixelFormat, PlaneLayout};

/// A rectangle in pixels (luma pixels for `i420`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Rect {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

impl Rect {
    /// A rectangle from its corner and size.
    pub const fn new(x: u32, y: u32, width: u32, height: u32) -> Self {
        Self {
            x,
            y,
            width,
            height,
        }
    }

    /// The part of the rectangle inside a `width` x `height` frame, if any.
    pub fn clip(self, width: u32, height: u32) -> Option<Rect> {
        let x1 = self.x.saturating_add(self.width).min(width);
        let y1 = self.y.saturating_add(self.height).min(height);
        (self.x < x1 && self.y < y1).then(|| Rect::new(self.x, self.y, x1 - self.x, y1 - self.y))
    }

    /// Whether the rectangle lies entirely inside a `width` x `height` frame.
    pub fn fits(self, width: u32, height: u32) -> bool {
        self.x as u64 + self.width as u64 <= width as u64
            && self.y as u64 + self.height as u64 <= height as u64
    }

    /// Number of pixels.
    pub fn area(self) -> u64 {
        self.width as u64 * self.height as u64
    }
}

impl FrameBuf {
    /// Checks a region and returns how many bytes it has.
    pub fn region_len(&self, area: Rect) -> Result<usize, FrameError> {
        if !area.fits(self.width, self.height) {
            return Err(FrameError::OutOfBounds(format!(
                "rectangle {}x{} at ({}, {}) does not fit in the {}x{} frame",
                area.width, area.height, area.x, area.y, self.width, self.height
            )));
        }
        if self.format == PixelFormat::I420
            && (!area.x.is_multiple_of(2) || !area.y.is_multiple_of(2))
        {
            return Err(FrameError::OutOfBounds(format!(
                "i420 regions start at even coordinates, got ({}, {})",
                area.x, area.y
            )));
        }
        // A packed region is laid out like a frame of its size.
        Ok(self.format.byte_len(area.width, area.height))
    }

    /// Calls `f(offset, len)` for each row segment of the region in packed order. The region
    /// must have been checked with [`FrameBuf::region_len`].
    fn for_each_span(&self, area: Rect, f: impl FnMut(usize, usize)) {
        visit_spans(&self.planes(), area, f);
    }
}

fn visit_spans(planes: &[PlaneLayout], area: Rect, mut f: impl FnMut(usize, usize)) {
    for (i, plane) in planes.iter().enumerate() {
        let (x, y, w, h) = if i == 0 {
            (area.x, area.y, area.width, area.height)
        } else {
            (
                area.x / 2,
                area.y / 2,
                area.width.div_ceil(2),
                area.height.div_ceil(2),
            )
        };
        let bps = plane.bytes_per_sample as usize;
        let row_len = w as usize * bps;
        if row_len == 0 {
            continue;
        }
        for row in y..y + h {
            let at =
                plane.offset as usize + row as usize * plane.stride as usize + x as usize * bps;
            f(at, row_len);
        }
    }
}

impl FrameBuf {
    /// Copies a region out, packed.
    pub fn read_region(&self, area: Rect) -> Result<Vec<u8>, FrameError> {
        let len = self.region_len(area)?;
        let mut out = Vec::with_capacity(len);
        self.for_each_span(area, |at, n| out.extend_from_slice(&self.data[at..at + n]));
        Ok(out)
    }

    /// Overwrites a region with packed `data`.
    pub fn write_region(&mut self, area: Rect, data: &[u8]) -> Result<(), FrameError> {
        let len = self.region_len(area)?;
        if data.len() != len {
            return Err(FrameError::WrongSize(format!(
                "region {}x{} at ({}, {}) of a {} frame takes {len} bytes, got {}",
                area.width,
                area.height,
                area.x,
                area.y,
                self.format,
                data.len()
            )));
        }
        let mut from = 0;
        let planes = self.planes();
        let target = &mut self.data;
        visit_spans(&planes, area, |at, n| {
            target[at..at + n].copy_from_slice(&data[from..from + n]);
            from += n;
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counting(format: PixelFormat, w: u32, h: u32) -> FrameBuf {
        let len = format.byte_len(w, h);
        FrameBuf::new(format, w, h, (0..len).map(|i| i as u8).collect()).unwrap()
    }

    #[test]
    fn clip() {
        assert_eq!(
            Rect::new(5, 5, 10, 10).clip(8, 12),
            Some(Rect::new(5, 5, 3, 7))
        );
        assert_eq!(Rect::new(9, 0, 1, 1).clip(8, 8), None);
        assert_eq!(Rect::new(u32::MAX, 0, 9, 9).clip(8, 8), None);
    }

    #[test]
    fn rgba_region_round_trip() {
        let mut frame = counting(PixelFormat::Rgba, 4, 3);
        let area = Rect::new(1, 1, 2, 2);
        let bytes = frame.read_region(area).unwrap();
        assert_eq!(
            bytes,
            [
                20, 21, 22, 23, 24, 25, 26, 27, 36, 37, 38, 39, 40, 41, 42, 43
            ]
        );
        frame.write_region(area, &[9; 16]).unwrap();
        assert_eq!(frame.pixel(1, 1), Some(&[9, 9, 9, 9][..]));
        assert_eq!(frame.pixel(0, 1), Some(&[16, 17, 18, 19][..]));
    }

    #[test]
    fn i420_region_includes_chroma() {
        let frame = counting(PixelFormat::I420, 4, 4);
        // Y 16 bytes, U 4 bytes at 16, V 4 bytes at 20.
        let bytes = frame.read_region(Rect::new(2, 2, 2, 2)).unwrap();
        assert_eq!(bytes, [10, 11, 14, 15, 19, 23]);
        assert!(matches!(
            frame.read_region(Rect::new(1, 0, 2, 2)),
            Err(FrameError::OutOfBounds(_))
        ));
    }

    #[test]
    fn rejects_bad_regions() {
        let mut frame = counting(PixelFormat::Gray8, 4, 4);
        assert!(matches!(
            frame.read_region(Rect::new(3, 0, 2, 1)),
            Err(FrameError::OutOfBounds(_))
        ));
        assert!(matches!(
            frame.write_region(Rect::new(0, 0, 2, 2), &[0; 3]),
            Err(FrameError::WrongSize(_))
        ));
        assert_eq!(
            frame.read_region(Rect::new(0, 0, 0, 0)).unwrap(),
            Vec::<u8>::new()
        );
    }
}
