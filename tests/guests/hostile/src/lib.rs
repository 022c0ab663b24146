//! `hostile`: a filter that misbehaves on request, for the runtime's containment tests.
//!
//! Configuration `{"mode": M, "at": [pts...]}`: on frames whose pts is in `at` (every frame if
//! `at` is absent) it does M; on other frames it marks the frame (first byte set to 200) so a
//! test can see that frames still flow through the filter. Asks for gray8.
//!
//! Modes: `mark` (only mark), `slow` (40 ms of work, then mark), `loop` (spin forever), `oom` (allocate without end), `panic`,
//! `flood` (emit events without end, ignoring refusals, then return), `oversized-write`,
//! `wrong-region-write`, `scribble-then-fail` (draw over the frame, then return an error),
//! `stack-overflow`, `log-flood`, `huge-plate-candidate` (asks the host to read a plate of
//! 10 000 glyph boxes, with a NaN score); at the end of the stream (frames are only marked):
//! `loop-at-end`, `refuse-at-end`.

use prism_filter_sdk::vision;
use prism_filter_sdk::{
    Color, Filter, FilterInfo, Frame, Level, PixelFormat, Rect, Result, emit, export_filter, log,
    now_us, parse_config,
};
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    mode: String,
    #[serde(default)]
    at: Option<Vec<u64>>,
}

/// The filter and its configuration.
#[derive(Default)]
pub struct Hostile {
    config: Config,
}

#[allow(
    unconditional_recursion,
    reason = "the stack-overflow mode recurses until the stack runs out"
)]
fn recurse(depth: u64, buf: &mut [u8; 1024]) -> u64 {
    buf[(depth % 1024) as usize] = depth as u8;
    let mut local = [0u8; 1024];
    local[0] = buf[0];
    recurse(depth + 1, &mut local) + local[depth as usize % 1024] as u64
}

impl Filter for Hostile {
    fn describe() -> FilterInfo {
        FilterInfo::new("hostile", "0.1.0", PixelFormat::Gray8)
            .description("Misbehaves on request (tests only).")
            .parameters_schema(r#"{"type":"object"}"#)
    }

    fn configure(&mut self, config_json: &str) -> Result<()> {
        self.config = parse_config(config_json)?;
        if self.config.mode == "panic-in-configure" {
            panic!("configure blew up");
        }
        Ok(())
    }

    fn process(&mut self, frame: &mut Frame<'_>) -> Result<()> {
        let hit = match &self.config.at {
            Some(at) => at.contains(&frame.pts_us()),
            None => true,
        };
        let mode = self.config.mode.as_str();
        if !hit || mode == "mark" || mode.is_empty() || mode.ends_with("-at-end") {
            return frame
                .write_region(Rect::new(0, 0, 1, 1), &[200])
                .map_err(Into::into);
        }
        match self.config.mode.as_str() {
            "slow" => {
                // Busy for 40 ms (host clock): slower than 30 fps, within the deadline.
                let start = now_us();
                while now_us().saturating_sub(start) < 40_000 {
                    std::hint::spin_loop();
                }
                frame
                    .write_region(Rect::new(0, 0, 1, 1), &[200])
                    .map_err(Into::into)
            }
            "loop" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "oom" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "panic" => panic!("boom at pts {}", frame.pts_us()),
            "flood" => {
                let mut refused = 0u32;
                for i in 0..100_000u32 {
                    if emit("Flood", &i).is_err() {
                        refused += 1;
                    }
                }
                log(Level::Info, &format!("flood refused {refused}"));
                Ok(())
            }
            "log-flood" => {
                for i in 0..100_000u32 {
                    log(Level::Info, &format!("line {i}"));
                }
                Ok(())
            }
            "oversized-write" => {
                let big = vec![0u8; frame.read().len() * 2];
                frame.write(&big).map_err(Into::into)
            }
            "wrong-region-write" => frame
                .write_region(Rect::new(0, 0, 4, 4), &[1, 2, 3])
                .map_err(Into::into),
            "out-of-bounds-read" => {
                frame.read_region(Rect::new(frame.width(), 0, 10, 10))?;
                Ok(())
            }
            "scribble-then-fail" => {
                frame.fill_rect(frame.bounds(), Color::rgb(255, 255, 255));
                let zeros = vec![0u8; frame.read().len()];
                frame.write(&zeros)?;
                frame.draw_text("GONE", 0, 0, 2, Color::rgb(255, 255, 255));
                Err("scribbled, then failed".into())
            }
            "huge-plate-candidate" => {
                let candidate = vision::Candidate {
                    bounds: frame.bounds(),
                    chars: vec![Rect::new(0, 0, 4, 8); 10_000],
                    inverted: false,
                    score: f32::NAN,
                };
                let read = vision::read_plate(frame, &candidate, &vision::PlateOptions::default());
                Err(format!("the host read it: {read:?}").into())
            }
            "stack-overflow" => {
                let mut buf = [0u8; 1024];
                std::hint::black_box(recurse(0, &mut buf));
                Ok(())
            }
            other => Err(format!("unknown mode {other:?}").into()),
        }
    }

    fn end_of_stream(&mut self) -> Result<()> {
        match self.config.mode.as_str() {
            "loop-at-end" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "refuse-at-end" => Err("nothing to say at the end".into()),
            _ => Ok(()),
        }
    }
}

export_filter!(Hostile);
