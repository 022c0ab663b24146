//! `prism filter new` scaffolds a crate that builds for wasm32-wasip2 as-is, passes its own
//! test, and runs through `prism filter run`.

use std::process::Command;

use prism::media::{Decoder, Encoder};
use prism_frame::{Color, FrameBuf, PixelFormat, Rect};
use prism_tests::{prism_bin, root, target_dir};

/// Cargo in the scaffolded crate, sharing this workspace's target directory, lock file and
/// release profile so the SDK's dependencies are not compiled again.
fn cargo(dir: &std::path::Path, args: &[&str]) {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target_dir())
        .env("CARGO_PROFILE_RELEASE_INCREMENTAL", "true")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16")
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .status()
        .expect("cargo runs");
    assert!(
        status.success(),
        "cargo {args:?} failed in {}",
        dir.display()
    );
}

#[test]
fn scaffolded_filter_builds_tests_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let crate_dir = dir.path().join("night-vision");
    let new_filter = || {
        Command::new(prism_bin())
            .args([
                "filter",
                "new",
                "night-vision",
                "--path",
                crate_dir.to_str().unwrap(),
            ])
            .output()
            .unwrap()
    };
    let out = new_filter();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::copy(root().join("Cargo.lock"), crate_dir.join("Cargo.lock")).unwrap();

    cargo(&crate_dir, &["test", "--release", "--quiet"]);
    cargo(
        &crate_dir,
        &["build", "--target", "wasm32-wasip2", "--release", "--quiet"],
    );
    let component = target_dir().join("wasm32-wasip2/release/night_vision.wasm");

    let input = dir.path().join("in.png");
    let output = dir.path().join("out.png");
    let mut frame = FrameBuf::zeroed(PixelFormat::Rgba, 64, 64);
    frame.fill_rect(Rect::new(0, 0, 32, 64), Color::rgb(255, 0, 10));
    let mut enc = Encoder::create(&input, PixelFormat::Rgba, 64, 64, (1, 1)).unwrap();
    enc.push(&frame, 0).unwrap();
    enc.finish().unwrap();

    let out = Command::new(prism_bin())
        .args(["filter", "run", component.to_str().unwrap()])
        .args([
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut dec = Decoder::open(&output, PixelFormat::Rgba).unwrap();
    let inverted = dec.next_frame().unwrap().unwrap().buf;
    assert_eq!(inverted.pixel(5, 5), Some(&[0, 255, 245, 255][..]));
    assert_eq!(
        inverted.pixel(50, 5).map(|p| &p[..3]),
        Some(&[255, 255, 255][..])
    );

    // A second scaffold into the same place is refused.
    let again = new_filter();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
}
