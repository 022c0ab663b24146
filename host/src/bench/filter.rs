//! `prism bench filter [--json]`: the cost of the filter ABI.
//!
//! * `noop_us`: one `process` call of the `passthrough` filter on a 640x480 frame (host ->
//!   guest -> host, frame lent, not copied). Target <= 2 us.
//! * `grayscale_wasm_us` / `grayscale_native_us`: the `grayscale` filter on a 640x480 RGBA
//!   frame, against the same kernel ([`kernels::gray_rgba_in_place`]) run natively on the same
//!   frame, interleaved in the same run; `wasm_native_ratio` is their quotient. Target <= 1.3.
//! * `instantiate_ms`: a new instance (store, WASI context, component instance) from the
//!   cached `InstancePre`. Target <= 0.2 ms.
//!
//! Medians over `--iterations` samples. Build with `--release`: the figures mean nothing in a
//! debug build.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use prism_frame::{FrameBuf, PixelFormat, kernels};
use serde::Serialize;

use super::stats::Summary;
use crate::cli::default_filters_dir;
use crate::config::RuntimeConfig;
use crate::runtime::{FilterRuntime, Verdict};

const WIDTH: u32 = 640;
const HEIGHT: u32 = 480;
/// Calls per no-op sample: one call is too short for the clock.
const NOOP_BATCH: u32 = 50;
/// Unmeasured calls first, so caches, branch predictors and clocks settle.
const WARMUP: u32 = 50;

/// The figures.
#[derive(Debug, Clone, Serialize)]
pub struct FilterBench {
    /// Frame size used.
    pub frame: String,
    /// Samples per figure.
    pub iterations: u32,
    /// No-op filter call, microseconds (median).
    pub noop_us: f64,
    /// Grayscale in WASM, microseconds (median).
    pub grayscale_wasm_us: f64,
    /// The same kernel natively, microseconds (median).
    pub grayscale_native_us: f64,
    /// `grayscale_wasm_us / grayscale_native_us`.
    pub wasm_native_ratio: f64,
    /// Instantiation from the cache, milliseconds (median).
    pub instantiate_ms: f64,
    /// Compiling and describing the grayscale component once, milliseconds.
    pub compile_ms: f64,
    /// Grayscale in WASM, 99th percentile, microseconds.
    pub grayscale_wasm_us_p99: f64,
}

/// An RGBA test frame with varied pixels.
fn pattern(width: u32, height: u32) -> FrameBuf {
    let mut frame = FrameBuf::zeroed(PixelFormat::Rgba, width, height);
    for (i, px) in frame.data_mut().chunks_exact_mut(4).enumerate() {
        let (x, y) = ((i as u32 % width), (i as u32 / width));
        px.copy_from_slice(&[(x * 3 + y) as u8, (y * 5 + x / 2) as u8, (x ^ y) as u8, 255]);
    }
    frame
}

fn component(dir: &Path, name: &str) -> anyhow::Result<Vec<u8>> {
    let path = dir.join(format!("{name}.wasm"));
    std::fs::read(&path).with_context(|| {
        format!(
            "cannot read {} (build the filters first: cargo build --target wasm32-wasip2 --release -p {name})",
            path.display()
        )
    })
}

/// Runs the measurements.
pub fn measure(dir: &Path, iterations: u32) -> anyhow::Result<FilterBench> {
    let iterations = iterations.max(10);
    let runtime = FilterRuntime::new(RuntimeConfig::default())?;
    let passthrough = runtime.load(&component(dir, "passthrough")?)?;
    let gray_bytes = component(dir, "grayscale")?;
    let t = Instant::now();
    let grayscale = runtime.load(&gray_bytes)?;
    let compile_ms = t.elapsed().as_secs_f64() * 1e3;

    // No-op calls.
    let mut noop = runtime.instantiate(&passthrough, None)?;
    let mut frame = FrameBuf::zeroed(PixelFormat::I420, WIDTH, HEIGHT);
    for _ in 0..NOOP_BATCH {
        noop.process(&mut frame, 0);
    }
    let mut noop_us: Vec<f64> = (0..iterations)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..NOOP_BATCH {
                let verdict = noop.process(&mut frame, 0);
                debug_assert_eq!(verdict, Verdict::Forward);
            }
            t.elapsed().as_secs_f64() * 1e6 / NOOP_BATCH as f64
        })
        .collect();

    // Grayscale, WASM and native interleaved.
    let mut gray = runtime.instantiate(&grayscale, None)?;
    let mut wasm_frame = pattern(WIDTH, HEIGHT);
    let mut native_frame = pattern(WIDTH, HEIGHT);
    gray.process(&mut wasm_frame, 0);
    kernels::gray_rgba_in_place(native_frame.data_mut());
    for _ in 0..WARMUP {
        gray.process(&mut wasm_frame, 0);
        kernels::gray_rgba_in_place(native_frame.data_mut());
    }
    anyhow::ensure!(
        wasm_frame == native_frame,
        "the WASM and native grayscale disagree: the comparison would be meaningless"
    );
    let mut wasm_us = Vec::new();
    let mut native_us = Vec::new();
    for _ in 0..iterations {
        let t = Instant::now();
        gray.process(&mut wasm_frame, 0);
        wasm_us.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        kernels::gray_rgba_in_place(std::hint::black_box(native_frame.data_mut()));
        native_us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    anyhow::ensure!(
        gray.stats().failures == 0,
        "grayscale failed during the benchmark"
    );

    // Instantiation from the cache.
    let mut inst_ms: Vec<f64> = (0..iterations)
        .map(|_| {
            let t = Instant::now();
            let instance = runtime.instantiate(&passthrough, None);
            let ms = t.elapsed().as_secs_f64() * 1e3;
            drop(instance);
            ms
        })
        .collect();

    let wasm = Summary::of(&mut wasm_us);
    let native = Summary::of(&mut native_us);
    Ok(FilterBench {
        frame: format!("{WIDTH}x{HEIGHT}"),
        iterations,
        noop_us: Summary::of(&mut noop_us).p50,
        grayscale_wasm_us: wasm.p50,
        grayscale_native_us: native.p50,
        wasm_native_ratio: wasm.p50 / native.p50,
        instantiate_ms: Summary::of(&mut inst_ms).p50,
        compile_ms,
        grayscale_wasm_us_p99: wasm.p99,
    })
}

pub fn run(filters: Option<PathBuf>, iterations: u32, json: bool) -> anyhow::Result<ExitCode> {
    let dir = filters.unwrap_or_else(default_filters_dir);
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: this is a debug build; benchmark figures are only meaningful with --release"
        );
    }
    let b = measure(&dir, iterations)?;
    if json {
        println!("{}", serde_json::to_string(&b)?);
    } else {
        println!(
            "filter ABI, {} frames, median of {} samples",
            b.frame, b.iterations
        );
        println!(
            "  no-op call            {:>9.2} us   (target <= 2 us)",
            b.noop_us
        );
        println!(
            "  grayscale in WASM     {:>9.1} us   (p99 {:.1} us)",
            b.grayscale_wasm_us, b.grayscale_wasm_us_p99
        );
        println!("  grayscale native      {:>9.1} us", b.grayscale_native_us);
        println!(
            "  WASM / native         {:>9.2} x    (target <= 1.3)",
            b.wasm_native_ratio
        );
        println!(
            "  instantiate (cached)  {:>9.3} ms   (target <= 0.2 ms)",
            b.instantiate_ms
        );
        println!("  compile + describe    {:>9.1} ms", b.compile_ms);
    }
    Ok(ExitCode::SUCCESS)
}
