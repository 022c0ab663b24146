//! Configuration: one serde struct, defaults as named constants, validated once at startup.
//!
//! Read in `main` (TOML file, then `PRISM_*` environment, then flags, as later issues add them)
//! and passed down; nothing below `main` reads the environment. Every resource a filter can grow
//! has a named cap here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Memory one filter instance may use. Plate detection on 1080p RGBA needs a few frame-sized
/// buffers (8 MiB each); 128 MiB leaves room while keeping a hundred instances within a few GiB.
pub const DEFAULT_FILTER_MEMORY_BYTES: u64 = 128 * 1024 * 1024;
/// Wall time one `process` call may take. Three frame intervals at 30 fps: a filter slower than
/// that cannot keep up with live video anyway.
pub const DEFAULT_PROCESS_DEADLINE_MS: u64 = 100;
/// Wall time `describe`/`configure` may take (they may build lookup tables).
pub const DEFAULT_CONTROL_DEADLINE_MS: u64 = 1_000;
/// Events one `process` call may emit; a detector emits a handful per frame at most.
pub const DEFAULT_MAX_EVENTS_PER_CALL: u32 = 32;
/// Bytes of one event's JSON payload.
pub const DEFAULT_MAX_EVENT_BYTES: u32 = 64 * 1024;
/// Log lines one call may write before the rest are dropped (and counted).
pub const DEFAULT_MAX_LOGS_PER_CALL: u32 = 32;
/// Consecutive failures after which a filter is disabled until it is reconfigured.
pub const DEFAULT_MAX_CONSECUTIVE_FAILURES: u32 = 5;
/// First wait before re-instantiating a trapped filter; doubles on each further failure.
pub const DEFAULT_BACKOFF_INITIAL_MS: u64 = 50;
/// Longest wait between re-instantiations.
pub const DEFAULT_BACKOFF_MAX_MS: u64 = 5_000;
/// Filter instances alive at once in the process (the pooling allocator's slots).
pub const DEFAULT_MAX_INSTANCES: u32 = 256;
/// Granularity of deadlines: the epoch ticker's period.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// What happens to a frame whose filter failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailure {
    /// Forward the frame as it was before the filter ran.
    #[default]
    PassThrough,
    /// Drop the frame.
    Drop,
}

/// Limits and failure policy of the filter runtime.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Linear memory cap per filter instance, bytes.
    pub filter_memory_bytes: u64,
    /// Deadline of one `process` call, milliseconds.
    pub process_deadline_ms: u64,
    /// Deadline of `describe` and `configure`, milliseconds.
    pub control_deadline_ms: u64,
    /// Events per `process` call.
    pub max_events_per_call: u32,
    /// Bytes per event payload.
    pub max_event_bytes: u32,
    /// Log lines per call.
    pub max_logs_per_call: u32,
    /// What to do with a frame when its filter fails.
    pub on_failure: OnFailure,
    /// Consecutive failures before the filter is disabled.
    pub max_consecutive_failures: u32,
    /// First re-instantiation back-off, milliseconds.
    pub backoff_initial_ms: u64,
    /// Longest re-instantiation back-off, milliseconds.
    pub backoff_max_ms: u64,
    /// Filter instances alive at once.
    pub max_instances: u32,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            filter_memory_bytes: DEFAULT_FILTER_MEMORY_BYTES,
            process_deadline_ms: DEFAULT_PROCESS_DEADLINE_MS,
            control_deadline_ms: DEFAULT_CONTROL_DEADLINE_MS,
            max_events_per_call: DEFAULT_MAX_EVENTS_PER_CALL,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            max_logs_per_call: DEFAULT_MAX_LOGS_PER_CALL,
            on_failure: OnFailure::default(),
            max_consecutive_failures: DEFAULT_MAX_CONSECUTIVE_FAILURES,
            backoff_initial_ms: DEFAULT_BACKOFF_INITIAL_MS,
            backoff_max_ms: DEFAULT_BACKOFF_MAX_MS,
            max_instances: DEFAULT_MAX_INSTANCES,
        }
    }
}

/// GStreamer elements a client's `GStreamerFilter` may use unless the operator says otherwise:
/// video effects and format changes that read nothing but the frames they are given and write
/// nothing but frames (no sources, sinks, files, sockets or plugins that run code), and none
/// whose properties can stall or grow without bound (`queue`, `identity sleep-time`).
pub const DEFAULT_GSTREAMER_FILTER_ELEMENTS: &[&str] = &[
    "capsfilter",
    "videoconvert",
    "videoscale",
    "videorate",
    "videoflip",
    "videobalance",
    "videocrop",
    "videobox",
    "gamma",
    "coloreffects",
    "gaussianblur",
    "edgetv",
    "agingtv",
    "dicetv",
    "warptv",
    "shagadelictv",
    "vertigotv",
    "revtv",
    "quarktv",
    "radioactv",
    "rippletv",
    "streaktv",
    "optv",
    "textoverlay",
    "timeoverlay",
    "clockoverlay",
];

/// Media settings of the server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// GStreamer element factories a `GStreamerFilter` command may contain (the operator's
    /// allowlist; anything else is refused).
    pub gstreamer_filter_elements: Vec<String>,
    /// Directories that local files named by clients (player and recorder `file://` URIs,
    /// overlay pictures) must lie in, once symlinks and `..` are resolved; empty: any path
    /// the server's user may open, as in Kurento.
    pub media_dirs: Vec<PathBuf>,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            gstreamer_filter_elements: DEFAULT_GSTREAMER_FILTER_ELEMENTS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            media_dirs: Vec::new(),
        }
    }
}

impl MediaConfig {
    /// Whether a client may have the server open `path` (named by `uri`): anywhere when no
    /// [`MediaConfig::media_dirs`] are set, else only inside one of them, judged on the
    /// resolved path (a file not written yet by its resolved directory). The error says why.
    pub fn check_path(&self, uri: &str, path: &Path) -> Result<(), String> {
        if self.media_dirs.is_empty() {
            return Ok(());
        }
        let resolved = path.canonicalize().ok().or_else(|| {
            let name = path.file_name()?;
            Some(path.parent()?.canonicalize().ok()?.join(name))
        });
        let inside = resolved.is_some_and(|p| {
            self.media_dirs
                .iter()
                .any(|d| d.canonicalize().is_ok_and(|d| p.starts_with(d)))
        });
        if inside {
            Ok(())
        } else {
            Err(format!(
                "uri {uri:?}: outside the media directories this server allows \
                 ([media] media_dirs)"
            ))
        }
    }
}

/// A configuration value that cannot work.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {field}: {reason}")]
pub struct ConfigError {
    /// The offending key.
    pub field: &'static str,
    /// Why.
    pub reason: String,
}

impl RuntimeConfig {
    /// Checks the values; called once at startup.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |field, reason: &str| {
            Err(ConfigError {
                field,
                reason: reason.to_string(),
            })
        };
        if self.filter_memory_bytes < 1024 * 1024 || self.filter_memory_bytes > 4 << 30 {
            return err("filter_memory_bytes", "must be between 1 MiB and 4 GiB");
        }
        if self.process_deadline_ms == 0 || self.control_deadline_ms == 0 {
            return err("process_deadline_ms", "deadlines must be at least 1 ms");
        }
        if self.max_consecutive_failures == 0 {
            return err("max_consecutive_failures", "must be at least 1");
        }
        if self.backoff_initial_ms > self.backoff_max_ms {
            return err("backoff_initial_ms", "must not exceed backoff_max_ms");
        }
        if self.max_instances == 0 {
            return err("max_instances", "must be at least 1");
        }
        Ok(())
    }

    /// Deadline of one `process` call.
    pub fn process_deadline(&self) -> Duration {
        Duration::from_millis(self.process_deadline_ms)
    }

    /// Deadline of `describe`/`configure`.
    pub fn control_deadline(&self) -> Duration {
        Duration::from_millis(self.control_deadline_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_dirs_confine_client_paths() {
        let root = tempfile::tempdir().unwrap();
        let allowed = root.path().join("media");
        let other = root.path().join("other");
        std::fs::create_dir_all(&allowed).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(allowed.join("clip.webm"), b"x").unwrap();
        std::fs::write(other.join("secret"), b"x").unwrap();
        std::os::unix::fs::symlink(other.join("secret"), allowed.join("link")).unwrap();
        let open = MediaConfig::default();
        let confined = MediaConfig {
            media_dirs: vec![allowed.clone()],
            ..MediaConfig::default()
        };
        let check = |c: &MediaConfig, p: PathBuf| c.check_path("u", &p);
        // Inside: a file, and one a recorder is about to write.
        assert!(check(&confined, allowed.join("clip.webm")).is_ok());
        assert!(check(&confined, allowed.join("new.webm")).is_ok());
        // Outside, by name, by `..` and through a symlink.
        for p in [
            other.join("secret"),
            allowed.join("../other/secret"),
            allowed.join("link"),
            allowed.join(".."),
            PathBuf::from("/etc/passwd"),
            allowed.join("missing-dir/new.webm"),
        ] {
            let err = check(&confined, p.clone()).unwrap_err();
            assert!(err.contains("media_dirs"), "{p:?}: {err}");
            assert!(check(&open, p).is_ok());
        }
    }

    #[test]
    fn defaults_validate_and_unknown_keys_are_rejected() {
        RuntimeConfig::default().validate().unwrap();
        let err = serde_json::from_str::<RuntimeConfig>(r#"{"filter_memory": 1}"#).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `filter_memory`"),
            "{err}"
        );
        let bad = RuntimeConfig {
            max_consecutive_failures: 0,
            ..Default::default()
        };
        assert_eq!(
            bad.validate().unwrap_err().field,
            "max_consecutive_failures"
        );
    }
}
