//! `grayscale`: turns the picture gray, with the pixel work done in WebAssembly.
//!
//! Asks for RGBA and walks the frame in cache-sized bands ([`Frame::update_bands`]), replacing
//! R, G and B by the BT.601 luma ([`kernels::gray_rgba_in_place`], vectorised with SIMD128).

use prism_filter_sdk::{Filter, FilterInfo, Frame, PixelFormat, Result, export_filter, kernels};

/// The filter: no state.
#[derive(Default)]
pub struct Grayscale;

impl Filter for Grayscale {
    fn describe() -> FilterInfo {
        FilterInfo::new("grayscale", env!("CARGO_PKG_VERSION"), PixelFormat::Rgba)
            .description("Turns the picture gray (BT.601 luma), computed in the filter.")
    }

    fn process(&mut self, frame: &mut Frame<'_>) -> Result<()> {
        let rows = frame.band_rows();
        frame.update_bands(rows, |band, _| {
            kernels::gray_rgba_in_place(band.data_mut());
            Ok(())
        })
    }
}

export_filter!(Grayscale);

#[cfg(test)]
mod tests {
    use prism_filter_sdk::testing::Harness;
    use prism_filter_sdk::{Color, FrameBuf, PixelFormat, Rect};

    use super::*;

    #[test]
    fn known_pixels() {
        let mut harness = Harness::<Grayscale>::new();
        let mut frame = FrameBuf::zeroed(PixelFormat::Rgba, 40, 30);
        frame.fill_rect(Rect::new(0, 0, 20, 30), Color::rgb(255, 0, 0));
        frame.fill_rect(Rect::new(20, 0, 20, 30), Color::rgb(0, 0, 255));
        harness.process(&mut frame, 0).unwrap();
        assert_eq!(frame.pixel(3, 3), Some(&[77, 77, 77, 255][..]));
        assert_eq!(frame.pixel(30, 29), Some(&[29, 29, 29, 255][..]));
    }
}
