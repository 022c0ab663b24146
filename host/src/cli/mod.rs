//! The `prism` command line: argument definitions and dispatch. Each command lives in its own
//! file; they print results on stdout (JSON with `--json`) and diagnostics on stderr.

mod check;
mod run;
mod scaffold;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::bench;

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
    /// Run a filter over an image or a video and write the result.
    Run {
        /// The component (.wasm).
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
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Filter(FilterCommand::New { name, path, sdk }) => scaffold::run(&name, path, sdk),
        Command::Filter(FilterCommand::Check { file, json }) => check::run(&file, json),
        Command::Filter(FilterCommand::Run {
            file,
            input,
            output,
            config,
            json,
        }) => run::run(&run::Options {
            file,
            input,
            output,
            config,
            json,
        }),
        Command::Bench(BenchCommand::Filter {
            json,
            filters,
            iterations,
        }) => bench::filter::run(filters, iterations, json),
    }
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
