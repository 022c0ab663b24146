//! # Prism filter SDK
//!
//! Write video filters for the [Prism](../README.md) media server in safe Rust. A filter is a
//! type that implements [`Filter`]; [`export_filter!`] turns the crate into a WebAssembly
//! component (`cargo build --target wasm32-wasip2 --release`) that Prism loads at run time, in
//! a sandbox, without a restart.
//!
//! ```no_run
//! use prism_filter_sdk::{Color, Filter, FilterInfo, Frame, PixelFormat, Rect, export_filter};
//!
//! /// Draws a red box in the middle of every frame.
//! #[derive(Default)]
//! struct RedBox;
//!
//! impl Filter for RedBox {
//!     fn describe() -> FilterInfo {
//!         FilterInfo::new("redbox", "0.1.0", PixelFormat::Rgba).description("A red box.")
//!     }
//!
//!     fn process(&mut self, frame: &mut Frame<'_>) -> prism_filter_sdk::Result<()> {
//!         let (w, h) = (frame.width(), frame.height());
//!         frame.draw_rect(Rect::new(w / 4, h / 4, w / 2, h / 2), Color::rgb(255, 0, 0), 3);
//!         Ok(())
//!     }
//! }
//!
//! export_filter!(RedBox);
//! ```
//!
//! Frames stay in the host. Reading pixels copies them into the filter ([`Frame::read`],
//! [`Frame::region`]); writing copies them back. Drawing ([`Frame::draw_rect`],
//! [`Frame::fill_rect`], [`Frame::draw_text`]) runs in the host with no copy. For pixel work over
//! the whole frame, [`Frame::update_bands`] walks it in cache-sized bands, which is the fastest
//! way through the ABI.
//!
//! Filters are tested natively with `cargo test`: [`testing::Harness`] runs a filter on
//! in-memory frames with the same drawing and region code the host uses, and records its
//! events and logs.

#![deny(missing_docs)]

mod frame;
mod host;
mod info;
pub mod testing;
pub mod vision;

pub use frame::Frame;
pub use host::{Level, emit, log, now_us};
pub use info::FilterInfo;
pub use prism_frame::{
    Color, FrameBuf, FrameError, PixelFormat, Placement, PlaneLayout, Rect, kernels, text_size,
};

/// An error a filter returns from `process` or `configure`. The host reports it with the
/// filter's name and passes the frame on unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<String> for Error {
    fn from(s: String) -> Self {
        Error(s)
    }
}

impl From<&str> for Error {
    fn from(s: &str) -> Self {
        Error(s.to_string())
    }
}

impl From<FrameError> for Error {
    fn from(e: FrameError) -> Self {
        Error(e.to_string())
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error(e.to_string())
    }
}

/// `Result` with the SDK's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A video filter.
///
/// One value of the type lives per filter element in the server, created with `Default` and
/// then configured. Calls never overlap.
pub trait Filter: Default + 'static {
    /// Name, version, pixel format and configuration schema. Must not depend on configuration.
    fn describe() -> FilterInfo;

    /// Applies a configuration: the JSON object a user set on the element. The default accepts
    /// only `{}`. [`parse_config`] turns it into a typed struct.
    fn configure(&mut self, config_json: &str) -> Result<()> {
        match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(config_json) {
            Ok(map) if map.is_empty() => Ok(()),
            Ok(map) => Err(Error(format!(
                "this filter takes no configuration, got keys: {}",
                map.keys().cloned().collect::<Vec<_>>().join(", ")
            ))),
            Err(e) => Err(Error(format!("configuration is not a JSON object: {e}"))),
        }
    }

    /// Processes one frame in place, in the format [`Filter::describe`] asked for.
    fn process(&mut self, frame: &mut Frame<'_>) -> Result<()>;

    /// The stream ended (the last frame of a file or a still picture, a pipeline's source at
    /// its end): emit what is still pending and start afresh, since the next frame, if any,
    /// begins another stream whose times may start again from zero. The configuration stays.
    /// The default does nothing.
    fn end_of_stream(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Parses a configuration into `T`, with an error message that names the problem.
///
/// ```
/// #[derive(Debug, serde::Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct Config { radius: u32 }
///
/// let c: Config = prism_filter_sdk::parse_config(r#"{"radius": 3}"#).unwrap();
/// assert_eq!(c.radius, 3);
/// let err = prism_filter_sdk::parse_config::<Config>(r#"{"radius": -1}"#).unwrap_err();
/// assert!(err.0.starts_with("invalid configuration: invalid value: integer `-1`"), "{err}");
/// ```
pub fn parse_config<T: serde::de::DeserializeOwned>(config_json: &str) -> Result<T> {
    serde_json::from_str(config_json).map_err(|e| Error(format!("invalid configuration: {e}")))
}

/// Generated bindings of the WIT package. Not part of the SDK's API.
#[doc(hidden)]
#[cfg(target_arch = "wasm32")]
pub mod __bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "prism:filter/vision-filter",
        pub_export_macro: true,
        export_macro_name: "__export_raw",
        default_bindings_module: "prism_filter_sdk::__bindings",
    });
}

/// Glue called by [`export_filter!`]. Not part of the SDK's API.
#[doc(hidden)]
pub mod __private {
    pub use crate::host::install_panic_hook;
    #[cfg(target_arch = "wasm32")]
    pub use crate::info::to_wit as info_to_wit;
}

/// Exports a [`Filter`] type as the component's `prism:filter/filter` interface.
///
/// Use it once per crate, at the top level. On targets other than `wasm32` it expands to
/// nothing, so the crate's native unit tests still build.
#[macro_export]
macro_rules! export_filter {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use ::std::cell::RefCell;
            use $crate::__bindings::exports::prism::filter::filter as wit;

            ::std::thread_local! {
                static STATE: RefCell<Option<$ty>> = const { RefCell::new(None) };
            }

            fn with_state<R>(f: impl FnOnce(&mut $ty) -> R) -> R {
                STATE.with(|cell| {
                    let mut state = cell.borrow_mut();
                    if state.is_none() {
                        $crate::__private::install_panic_hook();
                        *state = Some(<$ty as ::std::default::Default>::default());
                    }
                    f(state.as_mut().expect("state was just set"))
                })
            }

            struct Export;

            impl wit::Guest for Export {
                fn describe() -> wit::FilterInfo {
                    $crate::__private::install_panic_hook();
                    $crate::__private::info_to_wit(<$ty as $crate::Filter>::describe())
                }

                fn configure(config_json: String) -> Result<(), String> {
                    with_state(|f| $crate::Filter::configure(f, &config_json)).map_err(|e| e.0)
                }

                fn process(
                    frame: &$crate::__bindings::prism::filter::types::Frame,
                ) -> Result<(), String> {
                    with_state(|f| {
                        let mut frame = $crate::Frame::from_host(frame);
                        $crate::Filter::process(f, &mut frame)
                    })
                    .map_err(|e| e.0)
                }

                fn end_of_stream() -> Result<(), String> {
                    with_state(|f| $crate::Filter::end_of_stream(f)).map_err(|e| e.0)
                }
            }

    $crate::__bindings::__export_raw!(Export with_types_in $crate::__bindings);
        };
    };
}
