//! Hostile filters: each misbehaviour is contained (deadline, memory cap, trap), reported with
//! the filter's name and cause, the frame goes on unchanged, and the following frames still
//! flow through a fresh instance. The host process survives all of it.

use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use prism::config::{OnFailure, RuntimeConfig};
use prism::runtime::{EventSink, FilterEvent, FilterInstance, FilterRuntime, Verdict};
use prism_frame::{Color, FrameBuf, PixelFormat};
use prism_tests::{load, test_config, test_runtime, wasm};

/// Far above any deadline in these tests: only catches a call that was never interrupted.
const SANITY: Duration = Duration::from_secs(10);

/// The test runtime with deadlines no call reaches on a loaded machine: faults other than a
/// timeout must not turn into one when the tests run beside others on two cores.
fn patient_runtime() -> Arc<FilterRuntime> {
    FilterRuntime::new(RuntimeConfig {
        process_deadline_ms: 5_000,
        control_deadline_ms: 5_000,
        ..test_config()
    })
    .expect("runtime")
}

fn hostile(config: &str) -> (FilterInstance, Receiver<FilterEvent>) {
    hostile_in(patient_runtime(), config)
}

fn hostile_in(
    runtime: Arc<FilterRuntime>,
    config: &str,
) -> (FilterInstance, Receiver<FilterEvent>) {
    let filter = load(&runtime, "hostile");
    let (sink, rx) = EventSink::channel(1024);
    let mut instance = runtime.instantiate(&filter, Some(sink)).unwrap();
    instance.configure(config).unwrap();
    (instance, rx)
}

fn frame() -> FrameBuf {
    FrameBuf::filled(PixelFormat::Gray8, 64, 48, Color::rgb(50, 50, 50))
}

fn drain(rx: &Receiver<FilterEvent>) -> Vec<serde_json::Value> {
    rx.try_iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect()
}

/// Frame 0 is processed normally, frame 1 triggers `mode`, frames 2 and 3 must flow again.
fn contained(mode: &str, fault: &str, cause: &str) {
    // Only a timeout needs the short deadline.
    let runtime = if fault == "timeout" {
        test_runtime()
    } else {
        patient_runtime()
    };
    let config = format!(r#"{{"mode": "{mode}", "at": [1]}}"#);
    let (mut instance, rx) = hostile_in(runtime, &config);
    let mut f0 = frame();
    assert_eq!(instance.process(&mut f0, 0), Verdict::Forward);
    assert_eq!(f0.data()[0], 200, "{mode}: frame 0 went through the filter");

    let mut f1 = frame();
    let started = Instant::now();
    assert_eq!(
        instance.process(&mut f1, 1),
        Verdict::Forward,
        "{mode}: passed through"
    );
    assert!(
        started.elapsed() < SANITY,
        "{mode}: the call was not contained"
    );
    assert_eq!(
        f1,
        frame(),
        "{mode}: the failed frame goes on exactly as it came in"
    );

    let events = drain(&rx);
    let error = events
        .iter()
        .find(|e| e["kind"] == "error")
        .unwrap_or_else(|| panic!("{mode}: no error event in {events:?}"));
    assert_eq!(error["filter"], "hostile");
    assert_eq!(error["fault"], fault, "{mode}: {error}");
    assert_eq!(error["pts_us"], 1);
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains(cause),
        "{mode}: cause {message:?} does not mention {cause:?}"
    );

    for pts in [2, 3] {
        let mut f = frame();
        assert_eq!(instance.process(&mut f, pts), Verdict::Forward);
        assert_eq!(
            f.data()[0],
            200,
            "{mode}: frame {pts} flowed through the filter again"
        );
    }
    assert_eq!(instance.stats().failures, 1);
    assert!(!instance.is_disabled());
}

#[test]
fn infinite_loop_hits_the_deadline() {
    contained("loop", "timeout", "deadline");
}

/// Ends a stream of two frames with `mode` at its end: the failure is reported at the last
/// frame's time and the next stream's frames still flow through the filter.
fn contained_at_end(mode: &str, fault: &str, cause: &str) {
    let runtime = if fault == "timeout" {
        test_runtime()
    } else {
        patient_runtime()
    };
    let (mut instance, rx) = hostile_in(runtime, &format!(r#"{{"mode": "{mode}"}}"#));
    for pts in [0, 33_333] {
        assert_eq!(instance.process(&mut frame(), pts), Verdict::Forward);
    }
    let started = Instant::now();
    instance.end_of_stream();
    assert!(
        started.elapsed() < SANITY,
        "{mode}: the call was not contained"
    );
    let events = drain(&rx);
    assert_eq!(events.len(), 1, "{mode}: {events:?}");
    let error = &events[0];
    assert_eq!(
        (&error["kind"], &error["filter"], &error["fault"]),
        (&"error".into(), &"hostile".into(), &fault.into()),
        "{mode}: {error}"
    );
    assert_eq!(error["pts_us"], 33_333);
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains(cause),
        "{mode}: {message:?} lacks {cause:?}"
    );
    if fault != "filter-error" {
        // A trapped instance is gone: another end (of an empty stream) while it backs off
        // calls nothing and changes nothing.
        instance.end_of_stream();
        assert!(drain(&rx).is_empty() && !instance.is_disabled(), "{mode}");
    }
    // The next stream: a trapped instance is replaced once its back-off is over.
    std::thread::sleep(Duration::from_millis(test_config().backoff_max_ms + 50));
    let mut f = frame();
    assert_eq!(instance.process(&mut f, 0), Verdict::Forward);
    assert_eq!(
        f.data()[0],
        200,
        "{mode}: the next stream flows through the filter"
    );
    assert_eq!(instance.stats().failures, 1);
}

#[test]
fn a_loop_at_the_end_of_the_stream_hits_the_deadline() {
    contained_at_end("loop-at-end", "timeout", "deadline");
}

#[test]
fn an_error_at_the_end_of_the_stream_is_reported() {
    contained_at_end("refuse-at-end", "filter-error", "nothing to say at the end");
}

#[test]
fn memory_bomb_hits_the_cap() {
    contained("oom", "memory-limit", "memory");
}

#[test]
fn panic_is_a_trap_with_its_message() {
    contained("panic", "trap", "boom at pts 1");
}

#[test]
fn stack_overflow_is_a_trap() {
    // Rust keeps its stack in linear memory: overflowing it is an out-of-bounds access.
    contained(
        "stack-overflow",
        "trap",
        "out of bounds memory access in hostile::recurse",
    );
}

#[test]
fn oversized_write_is_refused() {
    contained("oversized-write", "filter-error", "wrong size");
}

#[test]
fn wrong_sized_region_write_is_refused() {
    contained(
        "wrong-region-write",
        "filter-error",
        "takes 16 bytes, got 3",
    );
}

#[test]
fn out_of_bounds_read_is_refused() {
    contained("out-of-bounds-read", "filter-error", "does not fit");
}

#[test]
fn a_plate_candidate_of_too_many_glyphs_is_refused() {
    // Each box would be classified and every run of them decoded: seconds of host time.
    contained(
        "huge-plate-candidate",
        "trap",
        "10000 glyph boxes (at most 48)",
    );
}

#[test]
fn scribbles_are_rolled_back_on_failure() {
    contained(
        "scribble-then-fail",
        "filter-error",
        "scribbled, then failed",
    );
}

#[test]
fn event_flood_is_capped() {
    let (mut instance, rx) = hostile(r#"{"mode": "flood", "at": [7]}"#);
    let mut f = frame();
    assert_eq!(instance.process(&mut f, 7), Verdict::Forward);
    let events = drain(&rx);
    let cap = RuntimeConfig::default().max_events_per_call as usize;
    assert_eq!(
        events.len(),
        cap,
        "exactly the per-call cap of events got out"
    );
    for (i, e) in events.iter().enumerate() {
        assert_eq!(
            (e["kind"].as_str(), e["name"].as_str()),
            (Some("event"), Some("Flood"))
        );
        assert_eq!(e["payload"], i);
    }
    // The next call has a fresh budget.
    let mut f = frame();
    instance.process(&mut f, 8);
    assert_eq!(f.data()[0], 200);
}

#[test]
fn log_flood_is_harmless() {
    let (mut instance, _rx) = hostile(r#"{"mode": "log-flood", "at": [1]}"#);
    let mut f = frame();
    assert_eq!(instance.process(&mut f, 1), Verdict::Forward);
    assert_eq!(instance.stats().failures, 0);
}

#[test]
fn repeated_failures_disable_then_reconfigure_revives() {
    let (mut instance, rx) = hostile(r#"{"mode": "panic"}"#);
    let max = RuntimeConfig::default().max_consecutive_failures;
    for pts in 0..max as u64 + 3 {
        let mut f = frame();
        assert_eq!(instance.process(&mut f, pts), Verdict::Forward);
        assert_eq!(f, frame());
    }
    assert!(instance.is_disabled());
    let events = drain(&rx);
    let errors = events.iter().filter(|e| e["kind"] == "error").count();
    assert_eq!(errors, max as usize, "no calls after disabling");
    let disabled: Vec<_> = events.iter().filter(|e| e["kind"] == "disabled").collect();
    assert_eq!(disabled.len(), 1);
    assert_eq!(disabled[0]["failures"], max);
    assert!(events.iter().any(|e| e["kind"] == "restarted"));

    instance.configure(r#"{"mode": "mark"}"#).unwrap();
    assert!(!instance.is_disabled());
    let mut f = frame();
    instance.process(&mut f, 100);
    assert_eq!(f.data()[0], 200);
}

#[test]
fn drop_policy_drops_failed_frames() {
    let runtime = FilterRuntime::new(RuntimeConfig {
        on_failure: OnFailure::Drop,
        process_deadline_ms: 20,
        backoff_initial_ms: 0,
        backoff_max_ms: 0,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let filter = runtime.load_file(&wasm("hostile")).unwrap();
    let mut instance = runtime.instantiate(&filter, None).unwrap();
    instance
        .configure(r#"{"mode": "loop", "at": [1]}"#)
        .unwrap();
    let mut f = frame();
    assert_eq!(instance.process(&mut f, 1), Verdict::Drop);
    assert_eq!(instance.process(&mut f, 2), Verdict::Forward);
    assert_eq!(instance.stats().dropped_frames, 1);
}

#[test]
fn configure_errors_are_clear_and_keep_the_last_good_config() {
    let (mut instance, _rx) = hostile(r#"{"mode": "mark"}"#);
    let err = instance.configure("{not json").unwrap_err().to_string();
    assert!(err.contains("not valid JSON"), "{err}");
    let err = instance.configure("[1, 2]").unwrap_err().to_string();
    assert!(err.contains("must be a JSON object"), "{err}");
    let err = instance
        .configure(r#"{"mode": "mark", "extra": 1}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `extra`"), "{err}");
    let err = instance
        .configure(r#"{"mode": "panic-in-configure"}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("configure blew up"), "{err}");
    // Still the "mark" instance.
    let mut f = frame();
    assert_eq!(instance.process(&mut f, 0), Verdict::Forward);
    assert_eq!(f.data()[0], 200);
}

#[test]
fn many_instances_of_many_filters_coexist() {
    let runtime = patient_runtime();
    let filter = load(&runtime, "hostile");
    let mut instances: Vec<_> = (0..32)
        .map(|_| runtime.instantiate(&filter, None).unwrap())
        .collect();
    for (i, instance) in instances.iter_mut().enumerate() {
        let mode = if i % 2 == 0 { "mark" } else { "panic" };
        instance
            .configure(&format!(r#"{{"mode": "{mode}"}}"#))
            .unwrap();
        let mut f = frame();
        instance.process(&mut f, 0);
        assert_eq!(f.data()[0], if i % 2 == 0 { 200 } else { 50 });
    }
}
