//! Pixel formats and their packed plane layouts.

/// Pixel formats a filter can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// One plane, R G B A bytes per pixel.
    Rgba,
    /// Planar Y, U, V with 2x2 subsampled chroma (rounded up).
    I420,
    /// One plane of 8-bit luma.
    Gray8,
}

impl PixelFormat {
    /// All formats.
    pub const ALL: [PixelFormat; 3] = [PixelFormat::Rgba, PixelFormat::I420, PixelFormat::Gray8];

    /// Lower-case name as used in the WIT enum and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            PixelFormat::Rgba => "rgba",
            PixelFormat::I420 => "i420",
            PixelFormat::Gray8 => "gray8",
        }
    }

    /// The GStreamer `video/x-raw` format string.
    pub fn gst_name(self) -> &'static str {
        match self {
            PixelFormat::Rgba => "RGBA",
            PixelFormat::I420 => "I420",
            PixelFormat::Gray8 => "GRAY8",
        }
    }

    /// Total bytes of a packed frame.
    pub fn byte_len(self, width: u32, height: u32) -> usize {
        let (w, h) = (width as usize, height as usize);
        match self {
            PixelFormat::Rgba => w * h * 4,
            PixelFormat::Gray8 => w * h,
            PixelFormat::I420 => w * h + 2 * w.div_ceil(2) * h.div_ceil(2),
        }
    }
}

impl std::fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for PixelFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PixelFormat::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(s) || f.gst_name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown pixel format {s:?} (expected rgba, i420 or gray8)"))
    }
}

/// Where one plane lives in a packed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaneLayout {
    /// Byte offset of the first row.
    pub offset: u32,
    /// Bytes from one row to the next.
    pub stride: u32,
    /// Width in samples.
    pub width: u32,
    /// Height in rows.
    pub height: u32,
    /// Bytes per sample.
    pub bytes_per_sample: u32,
}

impl PlaneLayout {
    /// Bytes the plane occupies.
    pub fn byte_len(&self) -> usize {
        self.stride as usize * self.height as usize
    }
}

/// The planes of a packed frame of `format`.
pub fn layout(format: PixelFormat, width: u32, height: u32) -> Vec<PlaneLayout> {
    let plane = |offset: usize, width: u32, height: u32, bps: u32| PlaneLayout {
        offset: offset as u32,
        stride: width * bps,
        width,
        height,
        bytes_per_sample: bps,
    };
    match format {
        PixelFormat::Rgba => vec![plane(0, width, height, 4)],
        PixelFormat::Gray8 => vec![plane(0, width, height, 1)],
        PixelFormat::I420 => {
            let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
            let y = plane(0, width, height, 1);
            let u = plane(y.byte_len(), cw, ch, 1);
            let v = plane(y.byte_len() + u.byte_len(), cw, ch, 1);
            vec![y, u, v]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn i420_layout_rounds_chroma_up() {
        let planes = layout(PixelFormat::I420, 5, 3);
        assert_eq!(planes[0].byte_len(), 15);
        assert_eq!(
            (planes[1].offset, planes[1].width, planes[1].height),
            (15, 3, 2)
        );
        assert_eq!(planes[2].offset, 21);
        assert_eq!(PixelFormat::I420.byte_len(5, 3), 27);
    }

    #[test]
    fn parses_names() {
        assert_eq!("RGBA".parse::<PixelFormat>(), Ok(PixelFormat::Rgba));
        assert_eq!("gray8".parse::<PixelFormat>(), Ok(PixelFormat::Gray8));
        assert!("nv12".parse::<PixelFormat>().is_err());
    }
}
