//! Media-flow state per element and direction (Kurento's MediaFlowIn/OutStateChanged), and
//! small latency histograms.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::graph::MediaType;

/// No media for this long means "not flowing".
pub const FLOW_TIMEOUT: Duration = Duration::from_millis(2000);

/// Whether data enters or leaves an element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Direction {
    /// Into the element.
    In,
    /// Out of the element.
    Out,
}

#[derive(Default)]
struct Slot {
    last_ms: AtomicU64,
    flowing: AtomicBool,
}

/// Last-activity stamps of one element.
pub struct FlowMeter {
    epoch: Instant,
    slots: [Slot; 4],
}

impl Default for FlowMeter {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            slots: Default::default(),
        }
    }
}

impl std::fmt::Debug for FlowMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowMeter").finish_non_exhaustive()
    }
}

fn index(dir: Direction, media: MediaType) -> usize {
    (dir as usize) * 2 + media as usize
}

impl FlowMeter {
    /// Records activity now.
    pub fn mark(&self, dir: Direction, media: MediaType) {
        // +1 so that 0 means "never".
        let ms = self.epoch.elapsed().as_millis() as u64 + 1;
        self.slots[index(dir, media)]
            .last_ms
            .store(ms, Ordering::Relaxed);
    }

    /// Whether media is flowing (as of the last [`FlowMeter::poll`]).
    pub fn is_flowing(&self, dir: Direction, media: MediaType) -> bool {
        self.slots[index(dir, media)]
            .flowing
            .load(Ordering::Relaxed)
    }

    /// The state changes since the last poll.
    pub fn poll(&self) -> Vec<(Direction, MediaType, bool)> {
        let now = self.epoch.elapsed().as_millis() as u64 + 1;
        let mut changes = Vec::new();
        for dir in [Direction::In, Direction::Out] {
            for media in MediaType::ALL {
                let slot = &self.slots[index(dir, media)];
                let last = slot.last_ms.load(Ordering::Relaxed);
                let flowing =
                    last != 0 && now.saturating_sub(last) < FLOW_TIMEOUT.as_millis() as u64;
                if slot.flowing.swap(flowing, Ordering::Relaxed) != flowing {
                    changes.push((dir, media, flowing));
                }
            }
        }
        changes
    }
}

/// The most recent samples of a latency, for percentiles.
#[derive(Debug, Default)]
pub struct LatencyWindow {
    samples: Mutex<Vec<u32>>,
    next: AtomicU64,
}

/// Samples kept per window.
const WINDOW: usize = 2048;

impl LatencyWindow {
    /// Records one latency.
    pub fn record(&self, latency: Duration) {
        let us = latency.as_micros().min(u32::MAX as u128) as u32;
        let i = self.next.fetch_add(1, Ordering::Relaxed) as usize % WINDOW;
        let mut samples = crate::sys::lock(&self.samples);
        if samples.len() < WINDOW {
            samples.push(us);
        } else {
            samples[i] = us;
        }
    }

    /// Samples recorded since the window was created or cleared.
    pub fn count(&self) -> u64 {
        self.next.load(Ordering::Relaxed)
    }

    /// All samples kept, in milliseconds.
    pub fn samples_ms(&self) -> Vec<f64> {
        let samples = crate::sys::lock(&self.samples);
        samples.iter().map(|&us| us as f64 / 1000.0).collect()
    }

    /// p50 and p99 in milliseconds, if there are samples.
    pub fn percentiles_ms(&self) -> Option<(f64, f64)> {
        let mut ms = self.samples_ms();
        if ms.is_empty() {
            return None;
        }
        ms.sort_by(f64::total_cmp);
        let at = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
        Some((at(0.5), at(0.99)))
    }

    /// Forgets every sample.
    pub fn clear(&self) {
        crate::sys::lock(&self.samples).clear();
        self.next.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_turns_on_then_off() {
        let meter = FlowMeter::default();
        assert!(meter.poll().is_empty());
        meter.mark(Direction::In, MediaType::Video);
        assert_eq!(meter.poll(), vec![(Direction::In, MediaType::Video, true)]);
        assert!(meter.poll().is_empty());
        assert!(meter.is_flowing(Direction::In, MediaType::Video));
        assert!(!meter.is_flowing(Direction::Out, MediaType::Video));
    }

    #[test]
    fn percentiles_of_a_window() {
        let w = LatencyWindow::default();
        for ms in 1..=100 {
            w.record(Duration::from_millis(ms));
        }
        let (p50, p99) = w.percentiles_ms().unwrap();
        assert!((50.0..=51.0).contains(&p50), "{p50}");
        assert_eq!(p99, 99.0);
    }
}
