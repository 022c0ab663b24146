//! Video frame buffers shared by the Prism host and the filter SDK.
//!
//! This crate is plain Rust with no I/O and no WebAssembly specifics: pixel formats and their
//! packed layouts, rectangular regions (read, write, clip), drawing (rectangles, filled boxes,
//! an 8x8 bitmap font, scaled and blended pictures) and a few pixel kernels. The host uses it
//! for the `frame` resource it lends to filters; the SDK uses the same code for the in-memory
//! frames filter authors test with, so a filter behaves the same in `cargo test` as in the
//! server.
//!
//! It is not a codec or a colour-conversion library: GStreamer does that in the host.

mod draw;
mod format;
pub mod kernels;
mod picture;
mod region;

pub use draw::{Color, text_size};
pub use format::{PixelFormat, PlaneLayout, layout};
pub use picture::Placement;
pub use region::Rect;

/// Why a frame access was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The rectangle does not lie inside the frame or is misaligned for the format.
    OutOfBounds(String),
    /// Data handed to a write has the wrong length.
    WrongSize(String),
    /// The operation does not apply to this pixel format.
    Unsupported(String),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::OutOfBounds(m) => write!(f, "out of bounds: {m}"),
            FrameError::WrongSize(m) => write!(f, "wrong size: {m}"),
            FrameError::Unsupported(m) => write!(f, "unsupported: {m}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// An owned, tightly packed video frame (no row padding).
#[derive(Clone, PartialEq, Eq)]
pub struct FrameBuf {
    format: PixelFormat,
    width: u32,
    height: u32,
    data: Vec<u8>,
}

impl std::fmt::Debug for FrameBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameBuf")
            .field("format", &self.format)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("bytes", &self.data.len())
            .finish()
    }
}

impl FrameBuf {
    /// Wraps `data`, which must be exactly `layout(format, width, height).1` bytes.
    pub fn new(
        format: PixelFormat,
        width: u32,
        height: u32,
        data: Vec<u8>,
    ) -> Result<Self, FrameError> {
        let expected = format.byte_len(width, height);
        if data.len() != expected {
            return Err(FrameError::WrongSize(format!(
                "a {width}x{height} {format} frame has {expected} bytes, got {}",
                data.len()
            )));
        }
        Ok(Self {
            format,
            width,
            height,
            data,
        })
    }

    /// A frame filled with zero bytes (black for rgba and gray8; green-ish for i420).
    pub fn zeroed(format: PixelFormat, width: u32, height: u32) -> Self {
        let data = vec![0; format.byte_len(width, height)];
        Self {
            format,
            width,
            height,
            data,
        }
    }

    /// A frame of one colour.
    pub fn filled(format: PixelFormat, width: u32, height: u32, colour: Color) -> Self {
        let mut frame = Self::zeroed(format, width, height);
        frame.fill_rect(frame.bounds(), colour.opaque());
        frame
    }

    /// Pixel format.
    pub fn format(&self) -> PixelFormat {
        self.format
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The whole frame as a rectangle.
    pub fn bounds(&self) -> Rect {
        Rect::new(0, 0, self.width, self.height)
    }

    /// Plane layout of [`FrameBuf::data`].
    pub fn planes(&self) -> Vec<PlaneLayout> {
        layout(self.format, self.width, self.height)
    }

    /// All bytes, planes one after the other.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// All bytes, mutable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// Takes the bytes out of the frame.
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }

    /// Replaces all bytes, returning the old ones (no copy).
    pub fn replace_data(&mut self, data: Vec<u8>) -> Result<Vec<u8>, FrameError> {
        if data.len() != self.data.len() {
            return Err(FrameError::WrongSize(format!(
                "a {}x{} {} frame has {} bytes, got {}",
                self.width,
                self.height,
                self.format,
                self.data.len(),
                data.len()
            )));
        }
        Ok(std::mem::replace(&mut self.data, data))
    }

    /// The bytes of plane `index` (0 for rgba and gray8; 0, 1, 2 = Y, U, V for i420).
    ///
    /// # Panics
    /// If the format has no such plane.
    pub fn plane(&self, index: usize) -> &[u8] {
        let p = self.planes()[index];
        &self.data[p.offset as usize..p.offset as usize + p.byte_len()]
    }

    /// Mutable bytes of plane `index`.
    ///
    /// # Panics
    /// If the format has no such plane.
    pub fn plane_mut(&mut self, index: usize) -> &mut [u8] {
        let p = self.planes()[index];
        &mut self.data[p.offset as usize..p.offset as usize + p.byte_len()]
    }

    /// The rows of plane `index`, mutable, top to bottom.
    ///
    /// # Panics
    /// If the format has no such plane.
    pub fn rows_mut(&mut self, index: usize) -> impl Iterator<Item = &mut [u8]> {
        let stride = (self.planes()[index].stride as usize).max(1);
        self.plane_mut(index).chunks_exact_mut(stride)
    }

    /// The bytes of one pixel of a single-plane format, or the Y sample of `i420`.
    pub fn pixel(&self, x: u32, y: u32) -> Option<&[u8]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let plane = self.planes()[0];
        let bps = plane.bytes_per_sample as usize;
        let at = plane.offset as usize + y as usize * plane.stride as usize + x as usize * bps;
        Some(&self.data[at..at + bps])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_checks_length() {
        let err = FrameBuf::new(PixelFormat::Rgba, 2, 2, vec![0; 15]).unwrap_err();
        assert_eq!(
            err,
            FrameError::WrongSize("a 2x2 rgba frame has 16 bytes, got 15".into())
        );
        assert!(FrameBuf::new(PixelFormat::I420, 3, 3, vec![0; 9 + 4 + 4]).is_ok());
    }

    #[test]
    fn planes_and_rows() {
        let mut frame = FrameBuf::zeroed(PixelFormat::I420, 4, 2);
        frame.plane_mut(1).fill(5);
        assert_eq!(frame.plane(1), &[5, 5]);
        assert_eq!(frame.plane(2), &[0, 0]);
        for (i, row) in frame.rows_mut(0).enumerate() {
            row.fill(i as u8 + 1);
        }
        assert_eq!(frame.plane(0), &[1, 1, 1, 1, 2, 2, 2, 2]);
    }

    #[test]
    fn replace_data_swaps_without_copy() {
        let mut frame = FrameBuf::zeroed(PixelFormat::Gray8, 2, 1);
        let old = frame.replace_data(vec![7, 8]).unwrap();
        assert_eq!(old, vec![0, 0]);
        assert_eq!(frame.data(), &[7, 8]);
        assert!(frame.replace_data(vec![1]).is_err());
    }
}
