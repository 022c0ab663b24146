//! Events that leave a filter element: what the filter emitted, and what the runtime reports
//! about it (faults, disabling, recovery). They travel on a bounded channel; when the consumer
//! falls behind, events are dropped and counted rather than queued without bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use serde::Serialize;

/// How a filter call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// The guest trapped (panic, `unreachable`, out-of-bounds access, ...).
    Trap,
    /// The call ran past its deadline and was interrupted.
    Timeout,
    /// The guest tried to grow its memory past the cap.
    MemoryLimit,
    /// The guest returned an error from `process`, `configure` or `end-of-stream`.
    FilterError,
    /// The filter could not be (re-)instantiated.
    Instantiate,
    /// The frame was not in the pixel format the filter asked for.
    Format,
}

/// One event from a filter element.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FilterEvent {
    /// An event the filter emitted (`host.emit-event`).
    Event {
        /// Filter name.
        filter: String,
        /// Event name, e.g. `PlateDetected`.
        name: String,
        /// The filter's JSON payload.
        payload: serde_json::Value,
        /// Timestamp of the frame being processed, if any.
        pts_us: Option<u64>,
    },
    /// A call failed; the frame was passed through or dropped as configured.
    Error {
        /// Filter name.
        filter: String,
        /// What went wrong.
        fault: FaultKind,
        /// Human-readable cause.
        message: String,
        /// Timestamp of the frame, if any.
        pts_us: Option<u64>,
        /// Failures in a row, this one included.
        consecutive: u32,
    },
    /// Too many failures in a row: the filter is off until it is reconfigured.
    Disabled {
        /// Filter name.
        filter: String,
        /// Failures in a row.
        failures: u32,
    },
    /// A fresh instance replaced one that had failed.
    Restarted {
        /// Filter name.
        filter: String,
    },
}

impl FilterEvent {
    /// The filter the event is about.
    pub fn filter(&self) -> &str {
        match self {
            FilterEvent::Event { filter, .. }
            | FilterEvent::Error { filter, .. }
            | FilterEvent::Disabled { filter, .. }
            | FilterEvent::Restarted { filter } => filter,
        }
    }
}

/// The sending side of an event channel. Never blocks a filter call.
#[derive(Debug, Clone)]
pub struct EventSink {
    tx: SyncSender<FilterEvent>,
    dropped: Arc<AtomicU64>,
}

impl EventSink {
    /// A channel holding at most `capacity` undelivered events.
    pub fn channel(capacity: usize) -> (EventSink, Receiver<FilterEvent>) {
        let (tx, rx) = sync_channel(capacity);
        (
            EventSink {
                tx,
                dropped: Arc::new(AtomicU64::new(0)),
            },
            rx,
        )
    }

    /// Sends, or drops and counts the event when the channel is full or closed.
    pub fn send(&self, event: FilterEvent) {
        match self.tx.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Events dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_channel_drops_and_counts() {
        let (sink, rx) = EventSink::channel(1);
        let ev = FilterEvent::Restarted { filter: "f".into() };
        sink.send(ev.clone());
        sink.send(ev.clone());
        assert_eq!(sink.dropped(), 1);
        assert_eq!(rx.try_recv().unwrap(), ev);
        let json = serde_json::to_value(&ev).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "restarted", "filter": "f"})
        );
    }
}
