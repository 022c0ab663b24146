// Shared source of the `tint` test guests (`tint-v1`, `tint-v2`): one filter name, two
// versions that paint the whole frame a different gray, so a hot swap shows in the pixels.
// Each crate defines VERSION and LEVEL and includes this file.

use prism_filter_sdk::{Color, Filter, FilterInfo, Frame, PixelFormat, Rect, Result, export_filter};

/// No state.
#[derive(Default)]
pub struct Tint;

impl Filter for Tint {
    fn describe() -> FilterInfo {
        FilterInfo::new("tint", VERSION, PixelFormat::Rgba)
            .description("Paints the frame one gray level per version (tests only).")
    }

    fn process(&mut self, frame: &mut Frame<'_>) -> Result<()> {
        let (w, h) = (frame.width(), frame.height());
        frame.fill_rect(Rect::new(0, 0, w, h), Color::rgb(LEVEL, LEVEL, LEVEL));
        Ok(())
    }
}

export_filter!(Tint);
