//! [`Frame`]: safe access to the frame being processed.

use crate::{Color, FrameBuf, FrameError, PixelFormat, PlaneLayout, Rect, Result};

#[cfg(target_arch = "wasm32")]
use crate::__bindings::prism::filter::types as wit;

enum Inner<'a> {
    #[cfg(target_arch = "wasm32")]
    Host(&'a wit::Frame),
    Local(&'a mut FrameBuf, u64),
}

/// The frame a filter is processing. In the server it lives in the host; in native tests it
/// is an in-memory [`FrameBuf`].
pub struct Frame<'a> {
    inner: Inner<'a>,
}

impl<'a> Frame<'a> {
    #[doc(hidden)]
    #[cfg(target_arch = "wasm32")]
    pub fn from_host(frame: &'a wit::Frame) -> Self {
        Self {
            inner: Inner::Host(frame),
        }
    }

    /// The host's frame handle, when the frame lives in the host.
    #[cfg(target_arch = "wasm32")]
    pub(crate) fn host_handle(&self) -> Option<&wit::Frame> {
        match &self.inner {
            Inner::Host(f) => Some(f),
            Inner::Local(..) => None,
        }
    }

    /// A frame over an in-memory buffer (what [`crate::testing::Harness`] uses).
    pub fn local(buf: &'a mut FrameBuf, pts_us: u64) -> Self {
        Self {
            inner: Inner::Local(buf, pts_us),
        }
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        match &self.inner {
            #[cfg(target_arch = "wasm32")]
            Inner::Host(f) => f.width(),
            Inner::Local(b, _) => b.width(),
        }
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        match &self.inner {
            #[cfg(target_arch = "wasm32")]
            Inner::Host(f) => f.height(),
            Inner::Local(b, _) => b.height(),
        }
    }

    /// The whole frame as a rectangle.
    pub fn bounds(&self) -> Rect {
        Rect::new(0, 0, self.width(), self.height())
    }

    /// Pixel format (the one the filter asked for).
    pub fn format(&self) -> PixelFormat {
        match &self.inner {
            #[cfg(target_arch = "wasm32")]
            Inner::Host(f) => match f.format() {
                wit::PixelFormat::Rgba => PixelFormat::Rgba,
                wit::PixelFormat::I420 => PixelFormat::I420,
                wit::PixelFormat::Gray8 => PixelFormat::Gray8,
            },
            Inner::Local(b, _) => b.format(),
        }
    }

    /// Presentation timestamp, microseconds since the start of the stream.
    pub fn pts_us(&self) -> u64 {
        match &self.inner {
            #[cfg(target_arch = "wasm32")]
            Inner::Host(f) => f.pts_us(),
            Inner::Local(_, pts) => *pts,
        }
    }

    /// Plane layout of what [`Frame::read`] returns.
    pub fn planes(&self) -> Vec<PlaneLayout> {
        prism_frame::layout(self.format(), self.width(), self.height())
    }

    /// All pixels, copied into the filter, planes one after the other.
    pub fn read(&self) -> Vec<u8> {
        match &self.inner {
            #[cfg(target_arch = "wasm32")]
            Inner::Host(f) => f.read(),
            Inner::Local(b, _) => b.data().to_vec(),
        }
    }

    /// Replaces all pixels. `data` must have exactly the frame's byte length.
    pub fn write(&mut self, data: &[u8]) -> Result<(), FrameError> {
        match &mut self.inner {
            #[cfg(target_arch = "wasm32")]
            Inner::Host(f) => f.write(data).map_err(from_wit),
            Inner::Local(b, _) => b.replace_data(data.to_vec()).map(drop),
        }
    }

    /// The pixels of a rectangle, packed (for `i420`: Y rows, then U, then V; x and y even).
    pub fn read_region(&self, area: Rect) -> Result<Vec<u8>, FrameError> {
        match &self.inner {
            #[cfg(target_arch = "wasm32")]
            Inner::Host(f) => f.read_region(to_wit_rect(area)).map_err(from_wit),
            Inner::Local(b, _) => b.read_region(area),
        }
    }

    /// Replaces the pixels of a rectangle with data laid out as [`Frame::read_region`] returns.
    pub fn write_region(&mut self, area: Rect, data: &[u8]) -> Result<(), FrameError> {
        match &mut self.inner {
            #[cfg(target_arch = "wasm32")]
            Inner::Host(f) => f.write_region(to_wit_rect(area), data).map_err(from_wit),
            Inner::Local(b, _) => b.write_region(area, data),
        }
    }

    /// A rectangle of the frame as its own [`FrameBuf`] (a packed frame of the region's size),
    /// to work on with rows, planes and drawing, then put back with [`Frame::put_region`].
    pub fn region(&self, area: Rect) -> Result<FrameBuf, FrameError> {
        let data = self.read_region(area)?;
        FrameBuf::new(self.format(), area.width, area.height, data)
    }

    /// Writes a [`FrameBuf`] back at (x, y).
    pub fn put_region(&mut self, x: u32, y: u32, pixels: &FrameBuf) -> Result<(), FrameError> {
        self.write_region(
            Rect::new(x, y, pixels.width(), pixels.height()),
            pixels.data(),
        )
    }

    /// Runs `f` over the frame in horizontal bands of `rows` rows (rounded up to even), each
    /// read into the filter, changed by `f`, and written back.
    ///
    /// Bands of ~64 KiB stay in the CPU cache between the copy in, the work and the copy out,
    /// which makes this the fastest way to touch every pixel.
    ///
    /// ```
    /// use prism_filter_sdk::{Frame, FrameBuf, PixelFormat, kernels};
    ///
    /// let mut buf = FrameBuf::zeroed(PixelFormat::Rgba, 64, 48);
    /// let mut frame = Frame::local(&mut buf, 0);
    /// frame.update_bands(16, |band, _area| {
    ///     kernels::gray_rgba_in_place(band.data_mut());
    ///     Ok(())
    /// })?;
    /// # Ok::<(), prism_filter_sdk::Error>(())
    /// ```
    pub fn update_bands(
        &mut self,
        rows: u32,
        mut f: impl FnMut(&mut FrameBuf, Rect) -> Result<()>,
    ) -> Result<()> {
        let rows = rows.max(2).next_multiple_of(2);
        let (width, height) = (self.width(), self.height());
        let mut y = 0;
        while y < height {
            let area = Rect::new(0, y, width, rows.min(height - y));
            let mut band = self.region(area)?;
            f(&mut band, area)?;
            self.put_region(0, y, &band)?;
            y += area.height;
        }
        Ok(())
    }

    /// Rows per band for [`Frame::update_bands`] so that a band is about 64 KiB.
    pub fn band_rows(&self) -> u32 {
        let row_bytes = (self.format().byte_len(self.width(), 2) / 2).max(1);
        ((64 * 1024 / row_bytes) as u32).clamp(2, 256)
    }

    /// Draws a rectangle outline `thickness` pixels wide inside `area` (in the host, no copy).
    pub fn draw_rect(&mut self, area: Rect, colour: Color, thickness: u32) {
        match &mut self.inner {
            #[cfg(target_arch = "wasm32")]
            Inner::Host(f) => f.draw_rect(to_wit_rect(area), to_wit_color(colour), thickness),
            Inner::Local(b, _) => b.draw_rect(area, colour, thickness),
        }
    }

    /// Fills a rectangle, blended by `colour.a` (in the host, no copy).
    pub fn fill_rect(&mut self, area: Rect, colour: Color) {
        match &mut self.inner {
            #[cfg(target_arch = "wasm32")]
            Inner::Host(f) => f.fill_rect(to_wit_rect(area), to_wit_color(colour)),
            Inner::Local(b, _) => b.fill_rect(area, colour),
        }
    }

    /// Draws text with the host's 8x8 font, `scale` pixels per font pixel, top-left at (x, y).
    pub fn draw_text(&mut self, text: &str, x: u32, y: u32, scale: u32, colour: Color) {
        match &mut self.inner {
            #[cfg(target_arch = "wasm32")]
            Inner::Host(f) => f.draw_text(text, x, y, scale, to_wit_color(colour)),
            Inner::Local(b, _) => b.draw_text(text, x, y, scale, colour),
        }
    }
}

#[cfg(target_arch = "wasm32")]
fn to_wit_rect(r: Rect) -> wit::Rect {
    wit::Rect {
        x: r.x,
        y: r.y,
        width: r.width,
        height: r.height,
    }
}

#[cfg(target_arch = "wasm32")]
fn to_wit_color(c: Color) -> wit::Color {
    wit::Color {
        r: c.r,
        g: c.g,
        b: c.b,
        a: c.a,
    }
}

#[cfg(target_arch = "wasm32")]
fn from_wit(e: wit::FrameError) -> FrameError {
    match e {
        wit::FrameError::OutOfBounds(m) => FrameError::OutOfBounds(m),
        wit::FrameError::WrongSize(m) => FrameError::WrongSize(m),
        wit::FrameError::Unsupported(m) => FrameError::Unsupported(m),
    }
}
