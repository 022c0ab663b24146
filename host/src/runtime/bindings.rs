//! The one `bindgen!` of the filter ABI, and conversions between generated types and domain
//! types. Generated types go no further than this module and `state.rs`.

use prism_frame::{Color, FrameError, PixelFormat, PlaneLayout, Rect};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "prism:filter/vision-filter",
    imports: { default: trappable },
    with: {
        "prism:filter/types.frame": super::state::FrameResource,
    },
});

pub use self::prism::filter::host::{EventError, Level};
pub use self::prism::filter::types::{
    Color as WitColor, FrameError as WitFrameError, PixelFormat as WitPixelFormat,
    Plane as WitPlane, Rect as WitRect,
};

/// The ABI version this host serves.
pub const ABI_VERSION: &str = "0.1.0";
/// The interface every filter must export.
pub const FILTER_EXPORT: &str = "prism:filter/filter@0.1.0";

impl From<WitPixelFormat> for PixelFormat {
    fn from(f: WitPixelFormat) -> Self {
        match f {
            WitPixelFormat::Rgba => PixelFormat::Rgba,
            WitPixelFormat::I420 => PixelFormat::I420,
            WitPixelFormat::Gray8 => PixelFormat::Gray8,
        }
    }
}

impl From<PixelFormat> for WitPixelFormat {
    fn from(f: PixelFormat) -> Self {
        match f {
            PixelFormat::Rgba => WitPixelFormat::Rgba,
            PixelFormat::I420 => WitPixelFormat::I420,
            PixelFormat::Gray8 => WitPixelFormat::Gray8,
        }
    }
}

impl From<WitRect> for Rect {
    fn from(r: WitRect) -> Self {
        Rect::new(r.x, r.y, r.width, r.height)
    }
}

impl From<WitColor> for Color {
    fn from(c: WitColor) -> Self {
        Color {
            r: c.r,
            g: c.g,
            b: c.b,
            a: c.a,
        }
    }
}

impl From<PlaneLayout> for WitPlane {
    fn from(p: PlaneLayout) -> Self {
        WitPlane {
            offset: p.offset,
            stride: p.stride,
            width: p.width,
            height: p.height,
            bytes_per_sample: p.bytes_per_sample,
        }
    }
}

impl From<FrameError> for WitFrameError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::OutOfBounds(m) => WitFrameError::OutOfBounds(m),
            FrameError::WrongSize(m) => WitFrameError::WrongSize(m),
            FrameError::Unsupported(m) => WitFrameError::Unsupported(m),
        }
    }
}
