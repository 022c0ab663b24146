//! [`FilterInfo`]: what a filter says about itself.

use crate::PixelFormat;

/// What a filter says about itself in `describe`.
///
/// ```
/// use prism_filter_sdk::{FilterInfo, PixelFormat};
///
/// let info = FilterInfo::new("blur", "1.2.0", PixelFormat::Rgba)
///     .description("Blurs a region.")
///     .parameters_schema(r#"{"type": "object", "properties": {"radius": {"type": "integer"}}}"#);
/// assert_eq!(info.name, "blur");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterInfo {
    /// Short machine name, e.g. `grayscale` (1 to 64 bytes).
    pub name: String,
    /// The filter's own version (semver).
    pub version: String,
    /// One sentence for humans.
    pub description: String,
    /// The pixel format `process` wants.
    pub format: PixelFormat,
    /// JSON Schema of the configuration object.
    pub parameters_schema: String,
}

impl FilterInfo {
    /// A description with an empty sentence and a schema that accepts `{}` only.
    pub fn new(name: &str, version: &str, format: PixelFormat) -> Self {
        Self {
            name: name.to_string(),
            version: version.to_string(),
            description: String::new(),
            format,
            parameters_schema: r#"{"type":"object","additionalProperties":false}"#.to_string(),
        }
    }

    /// Sets the sentence for humans.
    pub fn description(mut self, text: &str) -> Self {
        self.description = text.to_string();
        self
    }

    /// Sets the JSON Schema of the configuration.
    pub fn parameters_schema(mut self, schema: &str) -> Self {
        self.parameters_schema = schema.to_string();
        self
    }
}

/// Converts to the generated WIT record (used by `export_filter!`).
#[cfg(target_arch = "wasm32")]
pub fn to_wit(info: FilterInfo) -> crate::__bindings::exports::prism::filter::filter::FilterInfo {
    use crate::__bindings::prism::filter::types::PixelFormat as W;
    crate::__bindings::exports::prism::filter::filter::FilterInfo {
        name: info.name,
        version: info.version,
        description: info.description,
        format: match info.format {
            PixelFormat::Rgba => W::Rgba,
            PixelFormat::I420 => W::I420,
            PixelFormat::Gray8 => W::Gray8,
        },
        parameters_schema: info.parameters_schema,
    }
}
