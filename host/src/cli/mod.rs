//! The `prism` command line: argument definitions and dispatch. Each command lives in its own
//! file; they print results on stdout (JSON with `--json`) and diagnostics on stderr.

mod check;
mod remote;
mod run;
mod scaffold;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::bench;
use crate::media::rtp::VideoCodec;

/// Prism: a WebAssembly-extensible media server.
#[derive(Debug, Parser)]
#[command(name = "prism", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write, check and run filters.
    #[command(subcommand)]
    Filter(FilterCommand),
    /// Measure performance; prints figures (JSON with --json).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Run the media server: the Kurento protocol on ws://HOST:PORT/kurento.
    Serve {
        /// TOML configuration file (overridden by PRISM_* variables, then by flags).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on (default 0.0.0.0).
        #[arg(long)]
        bind: Option<String>,
        /// Port (default 8888).
        #[arg(long)]
        port: Option<u16>,
        /// Data directory (default ./prism-data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

/// `prism filter ...`
#[derive(Debug, Subcommand)]
pub enum FilterCommand {
    /// Create a new filter crate that builds as-is for wasm32-wasip2 and has a passing test.
    New {
        /// Filter name: lower-case letters, digits, `-` and `_`, starting with a letter.
        name: String,
        /// Directory to create (default: ./NAME).
        #[arg(long)]
        path: Option<PathBuf>,
        /// Path to the prism-filter-sdk crate (default: the SDK next to this prism build).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Validate a component against the filter ABI and print its description.
    Check {
        /// The component (.wasm).
        file: PathBuf,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Upload a filter to a running server's registry.
    Upload {
        /// The component (.wasm).
        file: PathBuf,
        /// Server base URL.
        #[arg(long, default_value = "http://127.0.0.1:8888")]
        server: String,
        /// API token (default: $PRISM_TOKEN).
        #[arg(long)]
        token: Option<String>,
    },
    /// List the filters of a running server.
    Ls {
        /// Server base URL.
        #[arg(long, default_value = "http://127.0.0.1:8888")]
        server: String,
        /// Print the server's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a filter over an image or a video and write the result.
    Run {
        /// The component (.wasm), or a filter crate's directory (its built component is used).
        file: PathBuf,
        /// Input image or video (anything GStreamer decodes).
        #[arg(long)]
        input: PathBuf,
        /// Output: .png or .jpg (first frame), .webm, .mkv or .mp4.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Filter configuration, a JSON object.
        #[arg(long)]
        config: Option<String>,
        /// Attach a picture the filter can draw (`vision.draw-image`) as NAME=URI (a path,
        /// file:///path or http(s)://); repeatable.
        #[arg(long = "image", value_name = "NAME=URI", value_parser = run::parse_image_arg)]
        images: Vec<(String, String)>,
        /// Print events and the summary as JSON lines on stdout (no progress bar).
        #[arg(long)]
        json: bool,
    },
}

/// `prism bench ...`
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Filter call overhead, WASM vs native pixel work, instantiation time.
    Filter {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Directory holding passthrough.wasm and grayscale.wasm (default: the build's
        /// target/wasm32-wasip2/release).
        #[arg(long)]
        filters: Option<PathBuf>,
        /// Frames per measurement (more is steadier, slower).
        #[arg(long, default_value_t = 300)]
        iterations: u32,
    },
    /// Concurrent 640x480@30 WebRTC loopback sessions through a pass-through filter (peers in
    /// a separate process): delivery, CPU against the bare codec cost, latency, memory.
    Sessions {
        /// Concurrent sessions.
        #[arg(long, default_value_t = 4)]
        sessions: usize,
        /// Seconds measured (after a 2 s warm-up).
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Video codec: VP8 or H264.
        #[arg(long, default_value = "VP8")]
        codec: VideoCodec,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Directory holding passthrough.wasm (default: the build's target/wasm32-wasip2/release).
        #[arg(long)]
        filters: Option<PathBuf>,
    },
    /// Licence-plate detection and reading: accuracy and time per set of labelled photos.
    Plates {
        /// Folder of sets (subfolders of NAME.jpg + NAME.txt), or one set.
        #[arg(long)]
        data: PathBuf,
        /// Shrink images to fit WIDTHxHEIGHT first (what a live stream gives), e.g. 640x480.
        #[arg(long, value_parser = crate::bench::plates::parse_size)]
        max_size: Option<(u32, u32)>,
        /// The plate filter (default: platedetector.wasm of this build).
        #[arg(long)]
        filter: Option<PathBuf>,
        /// Filter configuration for every set (default: {"region": SET} for eu/us/br, else auto).
        #[arg(long)]
        config: Option<String>,
        /// Measure the native plate reader directly instead of the WASM filter.
        #[arg(long)]
        native: bool,
        /// Measure both and print the WASM filter's time over the native core's.
        #[arg(long)]
        compare: bool,
        /// Also run each photo as a 640x480 clip closing in on its plate, through the filter.
        #[arg(long)]
        approach: bool,
        /// With --approach: a set's clips one after another through one filter instance (a
        /// camera at one spot seeing car after car), not each through its own.
        #[arg(long, requires = "approach")]
        street: bool,
        /// Also read the photos shrunk, re-compressed, turned, dimmed and blurred (a check
        /// that the reader generalises beyond its dev photos).
        #[arg(long)]
        variants: bool,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// How soon an uploaded filter is usable: first upload, after a restart, cached.
    Registry {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Directory holding privacy.wasm (default: the build's target/wasm32-wasip2/release).
        #[arg(long)]
        filters: Option<PathBuf>,
    },
    /// The peers of `bench sessions` (driven over stdin/stdout).
    #[command(hide = true)]
    Peers {
        /// Sessions.
        #[arg(long)]
        sessions: usize,
        /// Seconds to send.
        #[arg(long)]
        seconds: u64,
        /// Video codec.
        #[arg(long)]
        codec: VideoCodec,
    },
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Filter(FilterCommand::New { name, path, sdk }) => scaffold::run(&name, path, sdk),
        Command::Filter(FilterCommand::Check { file, json }) => check::run(&file, json),
        Command::Filter(FilterCommand::Upload {
            file,
            server,
            token,
        }) => remote::upload(&file, &server, token),
        Command::Filter(FilterCommand::Ls { server, json }) => remote::list(&server, json),
        Command::Filter(FilterCommand::Run {
            file,
            input,
            output,
            config,
            images,
            json,
        }) => run::run(&run::Options {
            file: resolve_component(&file)?,
            input,
            output,
            config,
            images,
            json,
        }),
        Command::Bench(BenchCommand::Filter {
            json,
            filters,
            iterations,
        }) => bench::filter::run(filters, iterations, json),
        Command::Bench(BenchCommand::Sessions {
            sessions,
            seconds,
            codec,
            json,
            filters,
        }) => bench::sessions::run(
            &filters.unwrap_or_else(default_filters_dir),
            sessions,
            seconds,
            codec,
            json,
        ),
        Command::Serve {
            config,
            bind,
            port,
            data_dir,
        } => {
            let overrides = crate::control::server::Overrides {
                bind,
                port,
                data_dir,
            };
            let config = crate::control::server::ServeConfig::load(config.as_deref(), &overrides)?;
            crate::control::server::run(config)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Plates {
            data,
            max_size,
            filter,
            config,
            native,
            compare,
            approach,
            street,
            variants,
            json,
        }) => bench::plates::run(&bench::plates::Request {
            filter: &filter.unwrap_or_else(|| default_filters_dir().join("platedetector.wasm")),
            data: &data,
            max_size,
            config: config.as_deref(),
            measured: match (compare, native) {
                (true, _) => bench::plates::Measured::Both,
                (false, true) => bench::plates::Measured::Native,
                (false, false) => bench::plates::Measured::Filter,
            },
            clips: match (approach, street) {
                (false, _) => None,
                (true, false) => Some(bench::plates::Clips::Apart),
                (true, true) => Some(bench::plates::Clips::Street),
            },
            variants,
            json,
        }),
        Command::Bench(BenchCommand::Registry { json, filters }) => {
            bench::registry::run(&filters.unwrap_or_else(default_filters_dir), json)
        }
        Command::Bench(BenchCommand::Peers {
            sessions,
            seconds,
            codec,
        }) => bench::sessions::peers(sessions, seconds, codec),
    }
}

/// A `.wasm` path as given, or for a filter crate's directory its component built for
/// wasm32-wasip2 (release) in this build's target directory.
fn resolve_component(path: &std::path::Path) -> anyhow::Result<PathBuf> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let manifest = std::fs::read_to_string(path.join("Cargo.toml"))
        .map_err(|_| anyhow::anyhow!("{} is a directory without a Cargo.toml", path.display()))?;
    let name = manifest
        .parse::<toml::Table>()?
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .map(|n| n.replace('-', "_"))
        .ok_or_else(|| anyhow::anyhow!("{}/Cargo.toml has no package name", path.display()))?;
    let candidates = [
        path.join("target/wasm32-wasip2/release"),
        default_filters_dir(),
    ];
    candidates
        .iter()
        .map(|d| d.join(format!("{name}.wasm")))
        .find(|f| f.is_file())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{name}.wasm is not built: run `cargo build --target wasm32-wasip2 --release` in {}",
                path.display()
            )
        })
}

/// Where guest components of this build live: `target/wasm32-wasip2/release` beside the
/// `target/<profile>/prism` binary, else the same path under the current directory.
pub fn default_filters_dir() -> PathBuf {
    let beside_exe = std::env::current_exe().ok().and_then(|exe| {
        let target = exe.parent()?.parent()?;
        let dir = target.join("wasm32-wasip2").join("release");
        dir.is_dir().then_some(dir)
    });
    beside_exe.unwrap_or_else(|| PathBuf::from("target/wasm32-wasip2/release"))
}
