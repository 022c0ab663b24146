//! One running filter: its store, its configuration and its failure policy.
//!
//! Policy when a call fails (trap, deadline, memory cap, error result): report it as a
//! [`FilterEvent::Error`] with the filter's name and cause, hand the frame on exactly as it came
//! in (or drop it, per [`OnFailure`]), and carry on. A trapped instance is discarded and
//! re-instantiated (with its last good configuration) after a back-off that doubles on each
//! failure; after `max_consecutive_failures` failures in a row the filter is disabled until it
//! is configured again. Nothing a filter does can take the host down.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prism_frame::FrameBuf;
use serde::Serialize;
use wasmtime::Store;
use wasmtime::component::Resource;

use super::bindings::VisionFilter;
use super::error::{RuntimeError, classify, describe_trap};
use super::events::{EventSink, FaultKind, FilterEvent};
use super::state::{FrameResource, StoreData};
use super::vision::AttachedImages;
use super::{FilterRuntime, LoadedFilter, ticks};
use crate::config::OnFailure;

/// What to do with the frame after `process`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send the frame on.
    Forward,
    /// Drop the frame.
    Drop,
}

/// Counters of one instance.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct InstanceStats {
    /// Frames handed to the filter (including those skipped while backing off or disabled).
    pub frames: u64,
    /// Failed calls.
    pub failures: u64,
    /// Frames dropped because of failures (policy `drop`).
    pub dropped_frames: u64,
    /// Re-instantiations after a trap.
    pub restarts: u64,
}

struct Live {
    store: Store<StoreData>,
    bindings: VisionFilter,
}

enum Health {
    Running(Box<Live>),
    /// The instance trapped; a new one may be made from `retry_at` on.
    BackingOff {
        retry_at: Instant,
    },
    /// Too many failures in a row.
    Disabled,
}

/// One filter instance with its own store.
pub struct FilterInstance {
    runtime: Arc<FilterRuntime>,
    filter: Arc<LoadedFilter>,
    name: Arc<str>,
    sink: Option<EventSink>,
    /// Pictures for `vision.draw-image`; every store this instance makes shares them.
    images: AttachedImages,
    config_json: Option<String>,
    health: Health,
    consecutive_failures: u32,
    stats: InstanceStats,
    /// The time of the last frame given to the filter: events the filter emits at the end of
    /// the stream carry it.
    last_pts_us: Option<u64>,
}

impl std::fmt::Debug for FilterInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilterInstance")
            .field("filter", &self.name)
            .field("stats", &self.stats)
            .finish()
    }
}

/// The outcome of one guest call, before policy.
enum CallFailure {
    /// The guest returned an error; the instance is still usable.
    Refused(String),
    /// The guest trapped or was interrupted; the instance is gone.
    Trapped(FaultKind, String),
}

impl FilterInstance {
    pub(super) fn new(
        runtime: Arc<FilterRuntime>,
        filter: Arc<LoadedFilter>,
        sink: Option<EventSink>,
    ) -> Result<Self, RuntimeError> {
        let name: Arc<str> = filter.info.name.as_str().into();
        let images = AttachedImages::default();
        let live =
            Self::spawn(&runtime, &filter, &name, &sink, &images, None).map_err(|message| {
                RuntimeError::Configure {
                    filter: name.to_string(),
                    message,
                }
            })?;
        Ok(Self {
            runtime,
            filter,
            name,
            sink,
            images,
            config_json: None,
            health: Health::Running(Box::new(live)),
            consecutive_failures: 0,
            stats: InstanceStats::default(),
            last_pts_us: None,
        })
    }

    /// The loaded filter this is an instance of.
    pub fn filter(&self) -> &Arc<LoadedFilter> {
        &self.filter
    }

    /// Counters.
    pub fn stats(&self) -> InstanceStats {
        self.stats
    }

    /// Whether the filter has been disabled after repeated failures.
    pub fn is_disabled(&self) -> bool {
        matches!(self.health, Health::Disabled)
    }

    /// The pictures this instance draws from (`vision.draw-image`), by name. Attach one with
    /// [`AttachedImages::set`]; a clone of the handle attaches to the same set.
    pub fn images(&self) -> &AttachedImages {
        &self.images
    }

    /// Makes this instance draw from `images` (another handle's set, e.g. the one of the
    /// instance it replaces) instead of its own.
    pub fn share_images(&mut self, images: AttachedImages) {
        if let Health::Running(live) = &mut self.health {
            live.store.data_mut().images = images.clone();
        }
        self.images = images;
    }

    /// A fresh store and instance, configured with `config` if given.
    fn spawn(
        runtime: &FilterRuntime,
        filter: &LoadedFilter,
        name: &Arc<str>,
        sink: &Option<EventSink>,
        images: &AttachedImages,
        config: Option<&str>,
    ) -> Result<Live, String> {
        let (store, bindings) = runtime
            .instantiate_raw(name.clone(), &filter.pre, sink.clone(), images.clone())
            .map_err(|e| describe_trap(&e))?;
        let mut live = Live { store, bindings };
        if let Some(json) = config {
            match call_configure(runtime, &mut live, json) {
                Ok(()) => {}
                Err(CallFailure::Refused(m) | CallFailure::Trapped(_, m)) => return Err(m),
            }
        }
        Ok(live)
    }

    /// Applies a JSON configuration. Also revives a disabled or backing-off filter.
    pub fn configure(&mut self, json: &str) -> Result<(), RuntimeError> {
        let refuse = |message: String| RuntimeError::Configure {
            filter: self.name.to_string(),
            message,
        };
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| refuse(format!("not valid JSON: {e}")))?;
        if !value.is_object() {
            return Err(refuse("the configuration must be a JSON object".into()));
        }
        let mut live = match std::mem::replace(&mut self.health, Health::Disabled) {
            Health::Running(live) => *live,
            Health::BackingOff { .. } | Health::Disabled => Self::spawn(
                &self.runtime,
                &self.filter,
                &self.name,
                &self.sink,
                &self.images,
                None,
            )
            .map_err(refuse)?,
        };
        let result = call_configure(&self.runtime, &mut live, json);
        match result {
            Ok(()) => {
                self.health = Health::Running(Box::new(live));
                self.config_json = Some(json.to_string());
                self.consecutive_failures = 0;
                Ok(())
            }
            Err(CallFailure::Refused(message)) => {
                self.health = Health::Running(Box::new(live));
                Err(refuse(message))
            }
            Err(CallFailure::Trapped(kind, message)) => {
                // The configuration killed the instance: go back to the last good one.
                let restored = Self::spawn(
                    &self.runtime,
                    &self.filter,
                    &self.name,
                    &self.sink,
                    &self.images,
                    self.config_json.as_deref(),
                );
                self.health = match restored {
                    Ok(live) => Health::Running(Box::new(live)),
                    Err(_) => Health::BackingOff {
                        retry_at: Instant::now(),
                    },
                };
                Err(refuse(format!("{}: {message}", fault_name(kind))))
            }
        }
    }

    /// The verdict for a frame the filter could not process.
    fn failed_verdict(&mut self) -> Verdict {
        match self.runtime.config.on_failure {
            OnFailure::PassThrough => Verdict::Forward,
            OnFailure::Drop => {
                self.stats.dropped_frames += 1;
                Verdict::Drop
            }
        }
    }

    /// Runs the filter on one frame, in place. The frame must be in the filter's format.
    ///
    /// On failure the frame is restored to what it was and the verdict follows the policy.
    pub fn process(&mut self, frame: &mut FrameBuf, pts_us: u64) -> Verdict {
        self.stats.frames += 1;
        self.last_pts_us = Some(pts_us);
        if frame.format() != self.filter.info.format {
            let message = format!(
                "the filter asked for {} frames and was given {}",
                self.filter.info.format,
                frame.format()
            );
            self.record_failure(FaultKind::Format, message, Some(pts_us));
            return self.failed_verdict();
        }
        let mut live = match std::mem::replace(&mut self.health, Health::Disabled) {
            Health::Running(live) => live,
            Health::Disabled => return self.failed_verdict(),
            Health::BackingOff { retry_at } if Instant::now() < retry_at => {
                self.health = Health::BackingOff { retry_at };
                return self.failed_verdict();
            }
            Health::BackingOff { .. } => {
                let config = self.config_json.clone();
                match Self::spawn(
                    &self.runtime,
                    &self.filter,
                    &self.name,
                    &self.sink,
                    &self.images,
                    config.as_deref(),
                ) {
                    Ok(live) => {
                        self.stats.restarts += 1;
                        self.report(FilterEvent::Restarted {
                            filter: self.name.to_string(),
                        });
                        Box::new(live)
                    }
                    Err(message) => {
                        self.record_failure(FaultKind::Instantiate, message, Some(pts_us));
                        return self.failed_verdict();
                    }
                }
            }
        };

        let _span = tracing::trace_span!("filter.process", filter = %self.name, pts_us).entered();
        let taken = std::mem::replace(frame, FrameBuf::zeroed(frame.format(), 0, 0));
        let (back, outcome) = call_process(&self.runtime, &mut live, taken, pts_us);
        let Some(mut back) = back else {
            // The frame could not be taken back from the store: report and drop it.
            self.record_failure(
                FaultKind::Trap,
                "frame lost in the store".into(),
                Some(pts_us),
            );
            self.stats.dropped_frames += 1;
            return Verdict::Drop;
        };
        match outcome {
            Ok(()) => {
                *frame = back.buf;
                self.health = Health::Running(live);
                self.consecutive_failures = 0;
                Verdict::Forward
            }
            Err(failure) => {
                back.rollback();
                *frame = back.buf;
                self.call_failed(live, failure, Some(pts_us));
                self.failed_verdict()
            }
        }
    }

    /// Tells the filter its stream ended (it emits what is pending and starts afresh). A
    /// filter that is backing off or disabled has nothing pending and is not called; a
    /// failure is reported and handled like one in [`FilterInstance::process`].
    pub fn end_of_stream(&mut self) {
        let pts_us = self.last_pts_us.take();
        let mut live = match std::mem::replace(&mut self.health, Health::Disabled) {
            Health::Running(live) => live,
            waiting => {
                self.health = waiting;
                return;
            }
        };
        let _span = tracing::trace_span!("filter.end_of_stream", filter = %self.name).entered();
        match call_end_of_stream(&self.runtime, &mut live, pts_us) {
            Ok(()) => self.health = Health::Running(live),
            Err(failure) => self.call_failed(live, failure, pts_us),
        }
    }

    /// After a failed `process` or `end-of-stream` call: an instance that refused keeps
    /// running, a trapped one is discarded; the failure is counted and reported.
    fn call_failed(&mut self, live: Box<Live>, failure: CallFailure, pts_us: Option<u64>) {
        let (kind, message) = match failure {
            CallFailure::Refused(message) => {
                self.health = Health::Running(live);
                (FaultKind::FilterError, message)
            }
            CallFailure::Trapped(kind, message) => {
                drop(live);
                (kind, message)
            }
        };
        self.record_failure(kind, message, pts_us);
    }

    fn report(&self, event: FilterEvent) {
        if let Some(sink) = &self.sink {
            sink.send(event);
        }
    }

    /// Counts a failure, reports it and decides what happens to the instance.
    fn record_failure(&mut self, fault: FaultKind, message: String, pts_us: Option<u64>) {
        self.stats.failures += 1;
        self.consecutive_failures += 1;
        let consecutive = self.consecutive_failures;
        tracing::warn!(filter = %self.name, fault = fault_name(fault), consecutive, cause = %message, "filter call failed");
        self.report(FilterEvent::Error {
            filter: self.name.to_string(),
            fault,
            message,
            pts_us,
            consecutive,
        });
        let cfg = &self.runtime.config;
        if consecutive >= cfg.max_consecutive_failures {
            tracing::error!(filter = %self.name, failures = consecutive, "filter disabled");
            self.health = Health::Disabled;
            self.report(FilterEvent::Disabled {
                filter: self.name.to_string(),
                failures: consecutive,
            });
        } else if !matches!(self.health, Health::Running(_)) {
            let backoff = Duration::from_millis(cfg.backoff_initial_ms)
                .saturating_mul(1 << (consecutive - 1).min(20))
                .min(Duration::from_millis(cfg.backoff_max_ms));
            self.health = Health::BackingOff {
                retry_at: Instant::now() + backoff,
            };
        }
    }
}

fn fault_name(kind: FaultKind) -> &'static str {
    match kind {
        FaultKind::Trap => "trap",
        FaultKind::Timeout => "deadline exceeded",
        FaultKind::MemoryLimit => "memory limit exceeded",
        FaultKind::FilterError => "filter error",
        FaultKind::Instantiate => "instantiation failed",
        FaultKind::Format => "wrong pixel format",
    }
}

/// Turns a trap into a failure, with the filter's last error log (its panic message) if any.
fn trapped(live: &mut Live, e: &wasmtime::Error) -> CallFailure {
    let kind = classify(e);
    let mut message = match kind {
        FaultKind::Timeout => "the call ran past its deadline and was interrupted".to_string(),
        FaultKind::MemoryLimit => {
            format!(
                "the filter tried to grow its memory past the cap ({})",
                describe_trap(e)
            )
        }
        _ => describe_trap(e),
    };
    if let Some(last) = live.store.data_mut().call.last_error_log.take() {
        message = format!("{message} (filter said: {last})");
    }
    CallFailure::Trapped(kind, message)
}

fn call_configure(runtime: &FilterRuntime, live: &mut Live, json: &str) -> Result<(), CallFailure> {
    live.store.data_mut().call.begin(None);
    live.store
        .set_epoch_deadline(ticks(runtime.config.control_deadline()));
    let result = live
        .bindings
        .prism_filter_filter()
        .call_configure(&mut live.store, json);
    call_result(live, result)
}

/// A guest call's result as a [`CallFailure`] if it failed.
fn call_result(
    live: &mut Live,
    result: wasmtime::Result<Result<(), String>>,
) -> Result<(), CallFailure> {
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(message)) => Err(CallFailure::Refused(message)),
        Err(e) => Err(trapped(live, &e)),
    }
}

fn call_end_of_stream(
    runtime: &FilterRuntime,
    live: &mut Live,
    last_pts_us: Option<u64>,
) -> Result<(), CallFailure> {
    live.store.data_mut().call.begin(last_pts_us);
    live.store
        .set_epoch_deadline(ticks(runtime.config.process_deadline()));
    let result = live
        .bindings
        .prism_filter_filter()
        .call_end_of_stream(&mut live.store);
    call_result(live, result)
}

/// Lends the frame to the guest for one `process` call and takes it back. Returns `None` for
/// the frame only if the store lost it (an invariant violation reported as a failure).
fn call_process(
    runtime: &FilterRuntime,
    live: &mut Live,
    frame: FrameBuf,
    pts_us: u64,
) -> (Option<FrameResource>, Result<(), CallFailure>) {
    let data = live.store.data_mut();
    data.call.begin(Some(pts_us));
    let handle = match data.lend(FrameResource::new(frame, pts_us)) {
        Ok(h) => h,
        Err(e) => {
            return (
                None,
                Err(CallFailure::Trapped(FaultKind::Trap, describe_trap(&e))),
            );
        }
    };
    let rep = handle.rep();
    live.store
        .set_epoch_deadline(ticks(runtime.config.process_deadline()));
    let result = live
        .bindings
        .prism_filter_filter()
        .call_process(&mut live.store, handle);
    let outcome = call_result(live, result);
    let back = live.store.data_mut().take_back(Resource::new_own(rep)).ok();
    (back, outcome)
}
