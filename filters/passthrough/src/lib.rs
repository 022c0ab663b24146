//! `passthrough`: hands every frame on untouched. Asks for I420, the format decoders produce,
//! so the host converts nothing; it measures the cost of the filter call itself.

use prism_filter_sdk::{Filter, FilterInfo, Frame, PixelFormat, Result, export_filter};

/// The filter: no state.
#[derive(Default)]
pub struct Passthrough;

impl Filter for Passthrough {
    fn describe() -> FilterInfo {
        FilterInfo::new("passthrough", env!("CARGO_PKG_VERSION"), PixelFormat::I420)
            .description("Passes every frame through unchanged.")
    }

    fn process(&mut self, _frame: &mut Frame<'_>) -> Result<()> {
        Ok(())
    }
}

export_filter!(Passthrough);

#[cfg(test)]
mod tests {
    use prism_filter_sdk::testing::Harness;
    use prism_filter_sdk::{Color, FrameBuf, PixelFormat};

    use super::*;

    #[test]
    fn leaves_frames_alone() {
        let mut harness = Harness::<Passthrough>::new();
        let original = FrameBuf::filled(PixelFormat::I420, 6, 4, Color::rgb(1, 2, 3));
        let mut frame = original.clone();
        harness.process(&mut frame, 0).unwrap();
        assert_eq!(frame, original);
        assert!(harness.configure(r#"{"x": 1}"#).is_err());
    }
}
