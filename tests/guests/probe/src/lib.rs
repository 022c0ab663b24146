//! `probe`: reports what the host hands it (format, size, plane layout, pts) as a `Frame`
//! event, and stamps a white 2x2 box at (0, 0). Asks for I420. With `{"ocr": true}` it also
//! reads the frame's text through the host's `vision.ocr` import and emits it as `Text`. At
//! the end of a stream it emits `EndOfStream` with the stream's frame count and last pts.

use prism_filter_sdk::vision::{self, OcrOptions};
use prism_filter_sdk::{
    Color, Filter, FilterInfo, Frame, PixelFormat, Rect, Result, emit, export_filter, parse_config,
};
use serde_json::json;

#[derive(Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    ocr: bool,
}

/// Its configuration, and what it saw of the stream.
#[derive(Default)]
pub struct Probe {
    config: Config,
    frames: u64,
    last_pts_us: Option<u64>,
}

impl Filter for Probe {
    fn describe() -> FilterInfo {
        FilterInfo::new("probe", "0.1.0", PixelFormat::I420)
            .description("Reports the frames it gets (tests only).")
    }

    fn configure(&mut self, config_json: &str) -> Result<()> {
        self.config = parse_config(config_json)?;
        Ok(())
    }

    fn process(&mut self, frame: &mut Frame<'_>) -> Result<()> {
        self.frames += 1;
        self.last_pts_us = Some(frame.pts_us());
        if self.config.ocr {
            let read = vision::ocr(frame, &OcrOptions::default())?;
            emit(
                "Text",
                &json!({"text": read.text, "confidence": read.confidence, "words": read.words.len()}),
            )?;
        }
        let planes: Vec<_> = frame
            .planes()
            .iter()
            .map(|p| json!({"offset": p.offset, "stride": p.stride, "width": p.width, "height": p.height}))
            .collect();
        emit(
            "Frame",
            &json!({
                "format": frame.format().name(),
                "width": frame.width(),
                "height": frame.height(),
                "pts_us": frame.pts_us(),
                "bytes": frame.read().len(),
                "planes": planes,
            }),
        )?;
        frame.fill_rect(Rect::new(0, 0, 2, 2), Color::rgb(255, 255, 255));
        Ok(())
    }

    fn end_of_stream(&mut self) -> Result<()> {
        emit(
            "EndOfStream",
            &json!({"frames": self.frames, "last_pts_us": self.last_pts_us}),
        )?;
        (self.frames, self.last_pts_us) = (0, None);
        Ok(())
    }
}

export_filter!(Probe);
