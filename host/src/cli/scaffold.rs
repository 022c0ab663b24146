//! `prism filter new NAME [--path DIR] [--sdk PATH]`: scaffold a filter crate.
//!
//! The crate builds as-is with `cargo build --target wasm32-wasip2 --release`, and `cargo test`
//! runs its unit test natively through the SDK's test harness.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};

const CARGO_TOML: &str = r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
prism-filter-sdk = { path = "{sdk}" }
serde = { version = "1", features = ["derive"] }
serde_json = "1"

# A crate of its own, not a member of an enclosing workspace.
[workspace]

"#;

const CARGO_CONFIG: &str = r#"# WebAssembly SIMD lets pixel loops vectorise; Prism's runtime supports it.
[target.wasm32-wasip2]
rustflags = ["-C", "target-feature=+simd128"]
"#;

const LIB_RS: &str = r##"//! `{name}`: a Prism video filter. It inverts the colours of the picture; make it yours.
//!
//! Build: `cargo build --target wasm32-wasip2 --release`
//! Test:  `cargo test`
//! Try:   `prism filter run target/wasm32-wasip2/release/{crate_file}.wasm --input in.jpg --output out.png`

use prism_filter_sdk::{Filter, FilterInfo, Frame, PixelFormat, Result, export_filter, parse_config};
use serde::Deserialize;

/// Configuration, set with `--config '{"strength": 0.5}'` or by the application.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    /// 0.0 leaves the picture alone, 1.0 inverts it fully.
    strength: f32,
}

impl Default for Config {
    fn default() -> Self {
        Self { strength: 1.0 }
    }
}

/// The filter's state: one per filter element in the server.
#[derive(Default)]
pub struct {type_name} {
    config: Config,
}

impl Filter for {type_name} {
    fn describe() -> FilterInfo {
        FilterInfo::new("{name}", env!("CARGO_PKG_VERSION"), PixelFormat::Rgba)
            .description("Inverts the colours of the picture.")
            .parameters_schema(
                r#"{"type":"object","additionalProperties":false,
                    "properties":{"strength":{"type":"number","minimum":0,"maximum":1}}}"#,
            )
    }

    fn configure(&mut self, config_json: &str) -> Result<()> {
        let config: Config = parse_config(config_json)?;
        if !(0.0..=1.0).contains(&config.strength) {
            return Err("strength must be between 0 and 1".into());
        }
        self.config = config;
        Ok(())
    }

    fn process(&mut self, frame: &mut Frame<'_>) -> Result<()> {
        let k = (self.config.strength * 256.0) as u32;
        let rows = frame.band_rows();
        frame.update_bands(rows, |band, _area| {
            for px in band.data_mut().chunks_exact_mut(4) {
                for c in &mut px[..3] {
                    let inverted = 255 - *c as u32;
                    *c = ((inverted * k + *c as u32 * (256 - k)) >> 8) as u8;
                }
            }
            Ok(())
        })
    }

    // Optional: `fn end_of_stream(&mut self) -> Result<()>` runs when the stream ends (the
    // last frame of a file, a pipeline's source at its end): emit what is still pending.
}

export_filter!({type_name});

#[cfg(test)]
mod tests {
    use prism_filter_sdk::testing::Harness;
    use prism_filter_sdk::{Color, FrameBuf, Rect};

    use super::*;

    #[test]
    fn inverts_colours() {
        let mut harness = Harness::<{type_name}>::new();
        let mut frame = FrameBuf::zeroed(PixelFormat::Rgba, 8, 8);
        frame.fill_rect(Rect::new(0, 0, 4, 8), Color::rgb(255, 0, 10));
        harness.process(&mut frame, 0).unwrap();
        assert_eq!(frame.pixel(1, 1), Some(&[0, 255, 245, 255][..]));
        assert_eq!(frame.pixel(6, 6), Some(&[255, 255, 255, 0][..]));
    }

    #[test]
    fn rejects_bad_configuration() {
        let mut harness = Harness::<{type_name}>::new();
        assert!(harness.configure(r#"{"strength": 2}"#).is_err());
        assert!(harness.configure(r#"{"colour": 1}"#).is_err());
        harness.configure(r#"{"strength": 0}"#).unwrap();
    }
}
"##;

const README: &str = r#"# {name}

A Prism video filter, written with `prism-filter-sdk`.

```sh
rustup target add wasm32-wasip2                     # once
cargo test                                          # unit tests, natively
cargo build --target wasm32-wasip2 --release        # the component
prism filter check target/wasm32-wasip2/release/{crate_file}.wasm
prism filter run target/wasm32-wasip2/release/{crate_file}.wasm --input photo.jpg --output out.png
```

Upload `target/wasm32-wasip2/release/{crate_file}.wasm` to a Prism server to use it in pipelines.
"#;

const GITIGNORE: &str = "/target\nCargo.lock\n";

/// Checks a filter name: it becomes a crate name and the filter's `describe` name.
fn validate_name(name: &str) -> anyhow::Result<()> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        bail!(
            "invalid filter name {name:?}: use 1 to 64 lower-case letters, digits, '-' or '_', \
             starting with a letter"
        );
    }
    const RESERVED: &[&str] = &["self", "super", "crate", "test", "core", "std", "alloc"];
    if RESERVED.contains(&name) {
        bail!("invalid filter name {name:?}: it is reserved in Rust");
    }
    Ok(())
}

/// `my-filter` -> `MyFilter`.
fn type_name(name: &str) -> String {
    name.split(['-', '_'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The SDK next to the sources this binary was built from.
fn default_sdk() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../filter-sdk");
    dir.join("Cargo.toml")
        .is_file()
        .then(|| dir.canonicalize().ok())
        .flatten()
}

fn render(template: &str, name: &str, sdk: &Path) -> String {
    template
        .replace("{name}", name)
        .replace("{type_name}", &type_name(name))
        .replace("{crate_file}", &name.replace('-', "_"))
        .replace("{sdk}", &sdk.display().to_string().replace('\\', "/"))
}

/// Writes the crate; returns its directory.
pub fn scaffold(name: &str, dir: &Path, sdk: &Path) -> anyhow::Result<()> {
    validate_name(name)?;
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!("{} already exists and is not empty", dir.display());
    }
    let sdk = sdk
        .canonicalize()
        .with_context(|| format!("the filter SDK is not at {}", sdk.display()))?;
    if !sdk.join("Cargo.toml").is_file() {
        bail!(
            "{} is not the prism-filter-sdk crate (no Cargo.toml)",
            sdk.display()
        );
    }
    let files = [
        ("Cargo.toml", CARGO_TOML),
        (".cargo/config.toml", CARGO_CONFIG),
        ("src/lib.rs", LIB_RS),
        ("README.md", README),
        (".gitignore", GITIGNORE),
    ];
    for (path, template) in files {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&target, render(template, name, &sdk))
            .with_context(|| format!("cannot write {}", target.display()))?;
    }
    Ok(())
}

pub fn run(name: &str, path: Option<PathBuf>, sdk: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let dir = path.unwrap_or_else(|| PathBuf::from(name));
    let sdk = match sdk.or_else(default_sdk) {
        Some(sdk) => sdk,
        None => bail!("cannot find the filter SDK: pass --sdk PATH/TO/prism/filter-sdk"),
    };
    scaffold(name, &dir, &sdk)?;
    println!("created filter {name} in {}", dir.display());
    println!(
        "  cd {} && cargo test && cargo build --target wasm32-wasip2 --release",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("plate-reader_2").is_ok());
        for bad in ["", "2fast", "Upper", "a b", "self", &"x".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(type_name("plate-reader_2"), "PlateReader2");
    }

    #[test]
    fn refuses_non_empty_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x"), "").unwrap();
        let sdk = default_sdk().unwrap();
        let err = scaffold("ok", dir.path(), &sdk).unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err}");
    }
}
