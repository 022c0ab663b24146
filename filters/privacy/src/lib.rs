//! `privacy`: pixelates chosen areas of the picture (faces at a desk, a neighbour's window,
//! a screen) and stamps the stream time in a corner, as a camera recorder would.
//!
//! Configuration:
//! `{"regions": [{"x": 10, "y": 20, "width": 100, "height": 80}], "block": 16, "timestamp": true}`

use prism_filter_sdk::{
    Color, Filter, FilterInfo, Frame, FrameBuf, PixelFormat, Rect, Result, export_filter,
    parse_config, text_size,
};
use serde::Deserialize;

/// Largest number of regions (each costs a read and a write per frame).
const MAX_REGIONS: usize = 32;

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
struct Region {
    x: u32,
    y: u32,
    width: u32,
    height: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    regions: Vec<Region>,
    block: u32,
    timestamp: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            regions: Vec::new(),
            block: 16,
            timestamp: true,
        }
    }
}

/// The filter and its configuration.
#[derive(Default)]
pub struct Privacy {
    config: Config,
}

/// `HH:MM:SS.mmm` of a timestamp in microseconds.
fn clock(pts_us: u64) -> String {
    let ms = pts_us / 1000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// Replaces each `block` x `block` square of an RGBA buffer by its average colour.
fn pixelate(pixels: &mut FrameBuf, block: u32) {
    let (w, h) = (pixels.width(), pixels.height());
    for by in (0..h).step_by(block as usize) {
        for bx in (0..w).step_by(block as usize) {
            let cell = Rect::new(bx, by, block.min(w - bx), block.min(h - by));
            let mut sum = [0u64; 3];
            let bytes = pixels
                .read_region(cell)
                .expect("cell lies inside the region");
            for px in bytes.chunks_exact(4) {
                sum[0] += px[0] as u64;
                sum[1] += px[1] as u64;
                sum[2] += px[2] as u64;
            }
            let n = cell.area().max(1);
            let avg = Color::rgb((sum[0] / n) as u8, (sum[1] / n) as u8, (sum[2] / n) as u8);
            pixels.fill_rect(cell, avg);
        }
    }
}

impl Filter for Privacy {
    fn describe() -> FilterInfo {
        FilterInfo::new("privacy", env!("CARGO_PKG_VERSION"), PixelFormat::Rgba)
            .description("Pixelates chosen areas and stamps the stream time.")
            .parameters_schema(
                r#"{"type":"object","additionalProperties":false,"properties":{
                "regions":{"type":"array","maxItems":32,"items":{"type":"object","required":["x","y","width","height"],
                  "properties":{"x":{"type":"integer","minimum":0},"y":{"type":"integer","minimum":0},
                  "width":{"type":"integer","minimum":1},"height":{"type":"integer","minimum":1}}}},
                "block":{"type":"integer","minimum":2,"maximum":128,"default":16},
                "timestamp":{"type":"boolean","default":true}}}"#,
            )
    }

    fn configure(&mut self, config_json: &str) -> Result<()> {
        let config: Config = parse_config(config_json)?;
        if !(2..=128).contains(&config.block) {
            return Err(format!("block must be 2 to 128 pixels, got {}", config.block).into());
        }
        if config.regions.len() > MAX_REGIONS {
            return Err(format!("at most {MAX_REGIONS} regions").into());
        }
        self.config = config;
        Ok(())
    }

    fn process(&mut self, frame: &mut Frame<'_>) -> Result<()> {
        for r in &self.config.regions {
            let Some(area) =
                Rect::new(r.x, r.y, r.width, r.height).clip(frame.width(), frame.height())
            else {
                continue;
            };
            let mut pixels = frame.region(area)?;
            pixelate(&mut pixels, self.config.block);
            frame.put_region(area.x, area.y, &pixels)?;
        }
        if self.config.timestamp {
            let text = clock(frame.pts_us());
            let scale = (frame.height() / 240).max(1);
            let (w, h) = text_size(&text, scale);
            frame.fill_rect(
                Rect::new(4, 4, w + 8, h + 8),
                Color {
                    r: 0,
                    g: 0,
                    b: 0,
                    a: 160,
                },
            );
            frame.draw_text(&text, 8, 8, scale, Color::rgb(255, 255, 255));
        }
        Ok(())
    }
}

export_filter!(Privacy);

#[cfg(test)]
mod tests {
    use prism_filter_sdk::testing::Harness;

    use super::*;

    #[test]
    fn pixelates_only_the_region() {
        let mut harness = Harness::<Privacy>::new();
        harness
            .configure(
                r#"{"regions":[{"x":0,"y":0,"width":4,"height":4}],"block":4,"timestamp":false}"#,
            )
            .unwrap();
        let mut frame = FrameBuf::zeroed(PixelFormat::Rgba, 8, 8);
        frame.fill_rect(Rect::new(0, 0, 2, 4), Color::rgb(200, 100, 0));
        frame.fill_rect(Rect::new(4, 0, 4, 4), Color::rgb(10, 20, 30));
        harness.process(&mut frame, 0).unwrap();
        // Half the 4x4 block was (200,100,0), half (0,0,0): the average, with alpha from fill.
        assert_eq!(frame.pixel(3, 3), Some(&[100, 50, 0, 255][..]));
        assert_eq!(frame.pixel(5, 1), Some(&[10, 20, 30, 255][..]));
    }

    #[test]
    fn stamps_time_and_rejects_bad_config() {
        assert_eq!(clock(3_723_004_000), "01:02:03.004");
        let mut harness = Harness::<Privacy>::new();
        assert!(harness.configure(r#"{"block": 1}"#).is_err());
        assert!(
            harness
                .configure(r#"{"colour": 1}"#)
                .unwrap_err()
                .0
                .contains("unknown field")
        );
        let mut frame = FrameBuf::zeroed(PixelFormat::Rgba, 160, 40);
        harness.process(&mut frame, 1_000).unwrap();
        let white = frame
            .data()
            .chunks_exact(4)
            .filter(|p| p[..3] == [255, 255, 255])
            .count();
        assert!(white > 50, "timestamp text drawn ({white} white pixels)");
    }
}
