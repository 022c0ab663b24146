//! Run a filter natively in unit tests, on in-memory frames.
//!
//! ```
//! use prism_filter_sdk::testing::Harness;
//! use prism_filter_sdk::{Filter, FilterInfo, Frame, FrameBuf, PixelFormat, Result, emit};
//!
//! #[derive(Default)]
//! struct CountFrames(u32);
//!
//! impl Filter for CountFrames {
//!     fn describe() -> FilterInfo {
//!         FilterInfo::new("count", "0.1.0", PixelFormat::Gray8)
//!     }
//!     fn process(&mut self, _frame: &mut Frame<'_>) -> Result<()> {
//!         self.0 += 1;
//!         emit("Counted", &self.0)
//!     }
//!     fn end_of_stream(&mut self) -> Result<()> {
//!         emit("Total", &std::mem::take(&mut self.0))
//!     }
//! }
//!
//! let mut harness = Harness::<CountFrames>::new();
//! let mut frame = FrameBuf::zeroed(PixelFormat::Gray8, 4, 4);
//! harness.process(&mut frame, 0).unwrap();
//! harness.process(&mut frame, 33_333).unwrap();
//! harness.end_of_stream().unwrap();
//! let event = |name: &str, n: u32| (name.to_string(), n.into());
//! assert_eq!(harness.take_events(), vec![event("Counted", 1), event("Counted", 2), event("Total", 2)]);
//! ```

use std::cell::RefCell;

use crate::{Filter, FilterInfo, Frame, FrameBuf, Level, Result};

#[derive(Default)]
pub(crate) struct Recorder {
    pub events: Vec<(String, serde_json::Value)>,
    pub logs: Vec<(Level, String)>,
}

thread_local! {
    pub(crate) static RECORDER: RefCell<Recorder> = RefCell::new(Recorder::default());
}

/// Runs a [`Filter`] the way the host does, on [`FrameBuf`]s, and records what it emits and
/// logs (per thread, so tests running in parallel do not mix).
pub struct Harness<F: Filter> {
    filter: F,
}

impl<F: Filter> Default for Harness<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: Filter> Harness<F> {
    /// A fresh filter, as the host creates it.
    pub fn new() -> Self {
        RECORDER.with(|r| *r.borrow_mut() = Recorder::default());
        Self {
            filter: F::default(),
        }
    }

    /// The filter's description.
    pub fn describe(&self) -> FilterInfo {
        F::describe()
    }

    /// Applies a JSON configuration.
    pub fn configure(&mut self, json: &str) -> Result<()> {
        self.filter.configure(json)
    }

    /// Processes one frame in place. Like the host, refuses frames in another format than the
    /// filter asked for.
    pub fn process(&mut self, frame: &mut FrameBuf, pts_us: u64) -> Result<()> {
        let wanted = F::describe().format;
        if frame.format() != wanted {
            return Err(crate::Error(format!(
                "the filter asked for {wanted} frames and was given {}",
                frame.format()
            )));
        }
        self.filter.process(&mut Frame::local(frame, pts_us))
    }

    /// Ends the stream, as the host does after the last frame of a file or a still picture.
    pub fn end_of_stream(&mut self) -> Result<()> {
        self.filter.end_of_stream()
    }

    /// The filter itself.
    pub fn filter(&mut self) -> &mut F {
        &mut self.filter
    }

    /// Events emitted since the last call, oldest first.
    pub fn take_events(&mut self) -> Vec<(String, serde_json::Value)> {
        RECORDER.with(|r| std::mem::take(&mut r.borrow_mut().events))
    }

    /// Log lines written since the last call, oldest first.
    pub fn take_logs(&mut self) -> Vec<(Level, String)> {
        RECORDER.with(|r| std::mem::take(&mut r.borrow_mut().logs))
    }
}
