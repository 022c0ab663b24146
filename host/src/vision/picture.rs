//! Pictures the host holds for filters to draw (`vision.draw-image`): loaded from a URI the
//! control plane was given (Kurento's `setOverlayedImage`), decoded with OpenCV into RGBA and
//! attached to a filter element by name. Filters never fetch anything and never see the bytes.
//!
//! Accepted URIs: `file:///path`, a plain path, `http://` and `https://`. Only PNG (with its
//! alpha) and JPEG are decoded; the encoded size and the decoded dimensions are capped (the
//! dimensions are read from the header before decoding, so a small file cannot claim a huge
//! picture).
//!
//! [`load_image`] blocks (file or network I/O); call it off the async runtime
//! (`tokio::task::spawn_blocking`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use opencv::core::{CV_8U, Mat};
use opencv::imgcodecs;
use opencv::imgproc;
use opencv::prelude::*;
use prism_frame::{FrameBuf, PixelFormat};

/// Largest encoded picture read or downloaded: overlays are logos and hats, a few hundred KiB.
pub const MAX_IMAGE_BYTES: u64 = 16 * 1024 * 1024;
/// Most pixels a decoded picture may have (16 MiB of RGBA; 2048x2048): far beyond any overlay,
/// and a bound on the memory each attached picture holds.
pub const MAX_IMAGE_PIXELS: u64 = 2048 * 2048;
/// Longest side a decoded picture may have.
pub const MAX_IMAGE_SIDE: u32 = 8192;
/// A download must be complete within this time.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a picture could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The URI's scheme is not one Prism loads from.
    #[error("unsupported image URI {uri:?}: use file:///path, a file path, http:// or https://")]
    UnsupportedUri {
        /// The URI.
        uri: String,
    },
    /// The file cannot be read.
    #[error("cannot read image {path}: {message}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        message: String,
    },
    /// The download failed (unreachable host, timeout, TLS, HTTP error status).
    #[error("cannot fetch image {uri}: {message}")]
    Fetch {
        /// The URI.
        uri: String,
        /// The cause.
        message: String,
    },
    /// The encoded picture is larger than [`MAX_IMAGE_BYTES`].
    #[error("image {source_name} is larger than {limit} bytes")]
    TooLarge {
        /// Where it came from.
        source_name: String,
        /// The cap.
        limit: u64,
    },
    /// The bytes are not a PNG or JPEG picture (their content is not echoed: the URI may name
    /// any file the server can read).
    #[error("{source_name} is not a PNG or JPEG image")]
    NotAnImage {
        /// Where it came from.
        source_name: String,
    },
    /// The picture's dimensions are over the caps.
    #[error(
        "image {source_name} is {width}x{height}: pictures are at most {MAX_IMAGE_SIDE} pixels \
         a side and {MAX_IMAGE_PIXELS} pixels"
    )]
    TooManyPixels {
        /// Where it came from.
        source_name: String,
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
    },
    /// OpenCV could not decode it.
    #[error("cannot decode image {source_name}: {message}")]
    Decode {
        /// Where it came from.
        source_name: String,
        /// The cause.
        message: String,
    },
}

/// A decoded picture, 8-bit RGBA with straight (not premultiplied) alpha, row by row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbaImage(FrameBuf);

impl RgbaImage {
    /// A picture from packed RGBA bytes; `None` if `data` is not `width * height * 4` long.
    pub fn new(width: u32, height: u32, data: Vec<u8>) -> Option<Self> {
        FrameBuf::new(PixelFormat::Rgba, width, height, data)
            .ok()
            .map(RgbaImage)
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.0.width()
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.0.height()
    }

    /// The RGBA bytes of pixel (x, y).
    pub fn pixel(&self, x: u32, y: u32) -> Option<[u8; 4]> {
        self.0
            .pixel(x, y)
            .map(|p| p.try_into().expect("invariant: rgba pixels are 4 bytes"))
    }

    /// The picture as an `rgba` frame buffer (what [`FrameBuf::draw_picture`] takes).
    pub fn as_frame(&self) -> &FrameBuf {
        &self.0
    }
}

/// The local file a picture URI names, if it names one (not HTTP).
pub fn local_path(uri: &str) -> Option<PathBuf> {
    match parse_uri(uri) {
        Ok(Source::File(p)) => Some(p),
        _ => None,
    }
}

/// Where a URI points.
#[derive(Debug, PartialEq)]
enum Source {
    File(PathBuf),
    Http(String),
}

fn parse_uri(uri: &str) -> Result<Source, ImageError> {
    let unsupported = || ImageError::UnsupportedUri { uri: uri.into() };
    let lower = uri.get(..8).unwrap_or(uri).to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Ok(Source::Http(uri.into()));
    }
    if let Some(rest) = lower.strip_prefix("file://").map(|_| &uri[7..]) {
        // file:///path or file://localhost/path; percent-escapes decoded.
        let path = rest.strip_prefix("localhost").unwrap_or(rest);
        if !path.starts_with('/') {
            return Err(unsupported());
        }
        return Ok(Source::File(PathBuf::from(
            percent_decode(path).ok_or_else(unsupported)?,
        )));
    }
    // Any other scheme (`data:`, `ftp://`...) is refused; a Windows-style drive is not a
    // scheme here (the server runs on Linux).
    if uri.is_empty() || uri.contains("://") || uri.starts_with("data:") {
        return Err(unsupported());
    }
    Ok(Source::File(PathBuf::from(uri)))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn read_file(path: &Path) -> Result<Vec<u8>, ImageError> {
    let name = path.display().to_string();
    let read_err = |e: std::io::Error| ImageError::Read {
        path: name.clone(),
        message: e.to_string(),
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    if !file.metadata().map_err(read_err)?.is_file() {
        return Err(ImageError::Read {
            path: name,
            message: "not a regular file".into(),
        });
    }
    let mut bytes = Vec::new();
    file.take(MAX_IMAGE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_IMAGE_BYTES {
        return Err(ImageError::TooLarge {
            source_name: name,
            limit: MAX_IMAGE_BYTES,
        });
    }
    Ok(bytes)
}

fn fetch(uri: &str) -> Result<Vec<u8>, ImageError> {
    let fail = |message: String| ImageError::Fetch {
        uri: uri.into(),
        message,
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(FETCH_TIMEOUT))
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent.get(uri).call().map_err(|e| fail(e.to_string()))?;
    let status = response.status();
    if !status.is_success() {
        return Err(fail(format!("HTTP status {status}")));
    }
    match response
        .body_mut()
        .with_config()
        .limit(MAX_IMAGE_BYTES)
        .read_to_vec()
    {
        Ok(bytes) => Ok(bytes),
        Err(ureq::Error::BodyExceedsLimit(_)) => Err(ImageError::TooLarge {
            source_name: uri.into(),
            limit: MAX_IMAGE_BYTES,
        }),
        Err(e) => Err(fail(e.to_string())),
    }
}

/// Loads and decodes the picture at `uri` (see the module docs for what is accepted).
pub fn load_image(uri: &str) -> Result<RgbaImage, ImageError> {
    let (bytes, name) = match parse_uri(uri)? {
        Source::File(path) => (read_file(&path)?, path.display().to_string()),
        Source::Http(url) => (fetch(&url)?, url),
    };
    decode_image(&bytes, &name)
}

/// The dimensions a PNG or JPEG header declares; `None` if `bytes` is neither (or the header is
/// cut short).
fn header_size(bytes: &[u8]) -> Option<(u32, u32)> {
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.starts_with(PNG) {
        // The IHDR chunk comes first: length, "IHDR", width, height (big-endian).
        if bytes.get(12..16)? != b"IHDR" {
            return None;
        }
        let be = |i: usize| Some(u32::from_be_bytes(bytes.get(i..i + 4)?.try_into().ok()?));
        return Some((be(16)?, be(20)?));
    }
    if bytes.starts_with(&[0xff, 0xd8]) {
        // Walk the markers to the first start-of-frame (SOF0..SOF15 but DHT, JPG and DAC).
        let mut i = 2;
        loop {
            while *bytes.get(i)? != 0xff {
                i += 1;
            }
            while *bytes.get(i)? == 0xff {
                i += 1;
            }
            let marker = *bytes.get(i)?;
            i += 1;
            if matches!(marker, 0xd0..=0xd9 | 0x01) {
                continue;
            }
            let len = u16::from_be_bytes(bytes.get(i..i + 2)?.try_into().ok()?) as usize;
            if (0xc0..=0xcf).contains(&marker) && !matches!(marker, 0xc4 | 0xc8 | 0xcc) {
                let h = u16::from_be_bytes(bytes.get(i + 3..i + 5)?.try_into().ok()?);
                let w = u16::from_be_bytes(bytes.get(i + 5..i + 7)?.try_into().ok()?);
                return Some((w as u32, h as u32));
            }
            i += len;
        }
    }
    None
}

/// Decodes PNG or JPEG bytes into RGBA. `source_name` names them in errors.
pub fn decode_image(bytes: &[u8], source_name: &str) -> Result<RgbaImage, ImageError> {
    let Some((w, h)) = header_size(bytes) else {
        return Err(ImageError::NotAnImage {
            source_name: source_name.into(),
        });
    };
    if w == 0
        || h == 0
        || w > MAX_IMAGE_SIDE
        || h > MAX_IMAGE_SIDE
        || w as u64 * h as u64 > MAX_IMAGE_PIXELS
    {
        return Err(ImageError::TooManyPixels {
            source_name: source_name.into(),
            width: w,
            height: h,
        });
    }
    let decode_err = |message: String| ImageError::Decode {
        source_name: source_name.into(),
        message,
    };
    decode_rgba(bytes)
        .map_err(|e| decode_err(e.to_string()))?
        .ok_or_else(|| decode_err("OpenCV could not decode it (truncated or corrupt?)".into()))
}

fn decode_rgba(bytes: &[u8]) -> opencv::Result<Option<RgbaImage>> {
    let decoded = imgcodecs::imdecode(&bytes, imgcodecs::IMREAD_UNCHANGED)?;
    if decoded.empty() {
        return Ok(None);
    }
    // 16-bit PNGs come out 16-bit.
    let eight = if decoded.depth() == CV_8U {
        decoded
    } else {
        let mut m = Mat::default();
        decoded.convert_to(&mut m, CV_8U, 1.0 / 257.0, 0.0)?;
        m
    };
    let code = match eight.channels() {
        1 => imgproc::COLOR_GRAY2RGBA,
        3 => imgproc::COLOR_BGR2RGBA,
        4 => imgproc::COLOR_BGRA2RGBA,
        _ => return Ok(None),
    };
    let mut rgba = Mat::default();
    imgproc::cvt_color(&eight, &mut rgba, code, 0)?;
    let (w, h) = (rgba.cols() as u32, rgba.rows() as u32);
    let data = rgba.data_bytes()?.to_vec();
    Ok(RgbaImage::new(w, h, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_are_parsed() {
        assert_eq!(
            parse_uri("file:///tmp/a%20b.png").unwrap(),
            Source::File("/tmp/a b.png".into())
        );
        assert_eq!(
            parse_uri("FILE://localhost/x.png").unwrap(),
            Source::File("/x.png".into())
        );
        assert_eq!(
            parse_uri("img/hat.png").unwrap(),
            Source::File("img/hat.png".into())
        );
        assert_eq!(
            parse_uri("https://example.invalid/hat.png").unwrap(),
            Source::Http("https://example.invalid/hat.png".into())
        );
        for bad in [
            "ftp://x/y.png",
            "data:image/png;base64,AAAA",
            "",
            "file://host/x",
        ] {
            let e = parse_uri(bad).unwrap_err();
            assert!(
                e.to_string().contains("unsupported image URI"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn png_round_trip_keeps_alpha() {
        let mut bgra = Mat::new_rows_cols_with_default(
            3,
            5,
            opencv::core::CV_8UC4,
            opencv::core::Scalar::new(255.0, 0.0, 0.0, 128.0),
        )
        .unwrap();
        // One opaque red pixel (BGRA order in OpenCV).
        *bgra.at_2d_mut::<opencv::core::Vec4b>(1, 2).unwrap() = [0, 0, 255, 255].into();
        let mut png = opencv::core::Vector::<u8>::new();
        imgcodecs::imencode(".png", &bgra, &mut png, &opencv::core::Vector::new()).unwrap();
        let img = decode_image(png.as_slice(), "test").unwrap();
        assert_eq!((img.width(), img.height()), (5, 3));
        assert_eq!(img.pixel(0, 0), Some([0, 0, 255, 128]));
        assert_eq!(img.pixel(2, 1), Some([255, 0, 0, 255]));
        assert_eq!(header_size(png.as_slice()), Some((5, 3)));
    }

    #[test]
    fn jpeg_headers_give_their_size() {
        let grey = Mat::new_rows_cols_with_default(
            7,
            9,
            opencv::core::CV_8UC3,
            opencv::core::Scalar::all(90.0),
        )
        .unwrap();
        let mut jpg = opencv::core::Vector::<u8>::new();
        imgcodecs::imencode(".jpg", &grey, &mut jpg, &opencv::core::Vector::new()).unwrap();
        assert_eq!(header_size(jpg.as_slice()), Some((9, 7)));
        let img = decode_image(jpg.as_slice(), "test").unwrap();
        let p = img.pixel(4, 3).unwrap();
        assert!(p[0].abs_diff(90) <= 2 && p[3] == 255, "{p:?}");
    }

    #[test]
    fn bad_bytes_are_clear_errors() {
        let e = decode_image(b"<html>not found</html>", "http://x/y.png").unwrap_err();
        assert!(matches!(e, ImageError::NotAnImage { .. }));
        assert!(e.to_string().contains("not a PNG or JPEG"), "{e}");
        // A PNG header claiming 100000x100000 pixels is refused before decoding.
        let mut huge = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        huge.extend_from_slice(&100_000u32.to_be_bytes());
        huge.extend_from_slice(&100_000u32.to_be_bytes());
        huge.extend_from_slice(&[8, 6, 0, 0, 0]);
        let e = decode_image(&huge, "bomb.png").unwrap_err();
        assert!(matches!(e, ImageError::TooManyPixels { .. }), "{e}");
        // A valid header over garbage fails in the decoder, not with a panic.
        let mut cut = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        cut.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 4, 8, 6, 0, 0, 0, 1, 2, 3]);
        assert!(matches!(
            decode_image(&cut, "cut.png").unwrap_err(),
            ImageError::Decode { .. }
        ));
    }

    #[test]
    fn missing_files_and_unreachable_hosts_are_clear_errors() {
        let e = load_image("file:///nonexistent/hat.png").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot read image /nonexistent/hat.png"),
            "{e}"
        );
        // Nothing listens on port 9 of the loopback: refused at once.
        let e = load_image("http://127.0.0.1:9/hat.png").unwrap_err();
        assert!(matches!(e, ImageError::Fetch { .. }), "{e}");
        assert!(
            e.to_string()
                .starts_with("cannot fetch image http://127.0.0.1:9/hat.png")
        );
    }
}
