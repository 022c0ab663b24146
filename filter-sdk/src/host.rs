//! Logs, events and time: the `host` imports, or their local stand-ins in native tests.

use serde::Serialize;

use crate::{Error, Result};

/// Log levels, most to least verbose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Very detailed.
    Trace,
    /// Debugging.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected the filter coped with.
    Warn,
    /// Something failed.
    Error,
}

/// Writes a line to the server's log, tagged with the filter's name. The host keeps a bounded
/// number of lines per call.
pub fn log(level: Level, message: &str) {
    imp::log(level, message)
}

/// Emits an event (e.g. `PlateDetected`) with a JSON payload to everyone subscribed to the
/// filter element.
///
/// Fails when the payload is too large or the filter has emitted too many events during this
/// call (the host's limits).
///
/// ```no_run
/// #[derive(serde::Serialize)]
/// struct Seen { plate: String, confidence: f32 }
///
/// prism_filter_sdk::emit("PlateDetected", &Seen { plate: "AB123CD".into(), confidence: 0.93 })?;
/// # Ok::<(), prism_filter_sdk::Error>(())
/// ```
pub fn emit<T: Serialize + ?Sized>(name: &str, payload: &T) -> Result<()> {
    let json = serde_json::to_string(payload)?;
    imp::emit(name, &json)
}

/// A monotonic clock in microseconds: the only clock a filter has.
pub fn now_us() -> u64 {
    imp::now_us()
}

/// Sends panic messages to the host log so that a trap report says why the filter panicked.
pub fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            log(Level::Error, &format!("panic: {info}"))
        }));
    });
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::*;
    use crate::__bindings::prism::filter::host as wit;

    pub fn log(level: Level, message: &str) {
        let level = match level {
            Level::Trace => wit::Level::Trace,
            Level::Debug => wit::Level::Debug,
            Level::Info => wit::Level::Info,
            Level::Warn => wit::Level::Warn,
            Level::Error => wit::Level::Error,
        };
        wit::log(level, message);
    }

    pub fn emit(name: &str, json: &str) -> Result<()> {
        wit::emit_event(name, json).map_err(|e| match e {
            wit::EventError::InvalidJson(m) => Error(format!("event payload is not JSON: {m}")),
            wit::EventError::TooLarge(m) => Error(format!("event too large: {m}")),
            wit::EventError::RateLimited => Error("too many events in this call".into()),
        })
    }

    pub fn now_us() -> u64 {
        wit::now_us()
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    //! Native stand-ins: logs and events go to the current thread's [`crate::testing`] recorder.
    use super::*;
    use crate::testing::RECORDER;

    pub fn log(level: Level, message: &str) {
        RECORDER.with(|r| r.borrow_mut().logs.push((level, message.to_string())));
    }

    pub fn emit(name: &str, json: &str) -> Result<()> {
        if name.is_empty() {
            return Err(Error("event names must not be empty".into()));
        }
        let payload = serde_json::from_str(json)?;
        RECORDER.with(|r| r.borrow_mut().events.push((name.to_string(), payload)));
        Ok(())
    }

    pub fn now_us() -> u64 {
        use std::sync::OnceLock;
        use std::time::Instant;
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        ORIGIN.get_or_init(Instant::now).elapsed().as_micros() as u64
    }
}
