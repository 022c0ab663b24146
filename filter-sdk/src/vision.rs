//! The host's native vision: licence-plate reading, OCR and face detection, run by the server
//! on the frame being processed (nothing is copied into the filter), and drawing the pictures
//! the server attached to the filter ([`draw_image`]). Outside the server (native unit tests)
//! there is no vision: the plate calls find nothing, and [`ocr`], [`detect_faces`] and
//! [`draw_image`] return an error.
//!
//! ```no_run
//! use prism_filter_sdk::vision::{self, PlateOptions, Region};
//! # fn f(frame: &prism_filter_sdk::Frame<'_>) {
//! let opts = PlateOptions { region: Region::Eu, ..PlateOptions::default() };
//! for plate in vision::detect_plates(frame, &opts) {
//!     println!("{} ({:.0}%)", plate.text, plate.confidence * 100.0);
//! }
//! # }
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Frame, Placement, Rect, Result};

/// Plate formats to read against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    /// Any format.
    #[default]
    Auto,
    /// European single-line plates.
    Eu,
    /// United States plates.
    Us,
    /// Brazilian plates.
    Br,
}

impl Region {
    /// The lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Region::Auto => "auto",
            Region::Eu => "eu",
            Region::Us => "us",
            Region::Br => "br",
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Region {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Region::Auto),
            "eu" => Ok(Region::Eu),
            "us" => Ok(Region::Us),
            "br" => Ok(Region::Br),
            other => Err(format!("unknown plate region {other:?} (auto, eu, us, br)")),
        }
    }
}

/// What to look for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlateOptions {
    /// Plate formats.
    pub region: Region,
    /// Expected plate width as a percentage of the frame width; 0 = any size.
    pub plate_width_pct: f32,
    /// Only look inside this rectangle.
    pub area: Option<Rect>,
    /// At most this many results.
    pub max_results: u32,
    /// How hard [`detect_plates`] looks.
    pub search: Search,
}

impl Default for PlateOptions {
    fn default() -> Self {
        PlateOptions {
            region: Region::Auto,
            plate_width_pct: 0.0,
            area: None,
            max_results: 4,
            search: Search::Thorough,
        }
    }
}

/// How hard [`detect_plates`] looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Search {
    /// Where nothing reads well, the host searches again for fainter ink: the surest, but a
    /// frame with no plate takes about twice as long.
    #[default]
    Thorough,
    /// One search, and where nothing reads well no reading at all: what a thorough search
    /// gives, or nothing, in about half the time of a frame with no plate. For a frame of a
    /// stream whose neighbours are searched thoroughly (a plate stays in view for many
    /// frames).
    Quick,
}

/// A row of glyphs that may be a plate.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The plate's estimated outline.
    pub bounds: Rect,
    /// Glyph boxes, left to right.
    pub chars: Vec<Rect>,
    /// Light glyphs on a dark plate.
    pub inverted: bool,
    /// How regular the row is, 0..1.
    pub score: f32,
}

/// One glyph as read.
#[derive(Debug, Clone, PartialEq)]
pub struct CharRead {
    /// Its box.
    pub bounds: Rect,
    /// Ranked (symbol, confidence), best first.
    pub guesses: Vec<(char, f32)>,
}

/// A plate as read.
#[derive(Debug, Clone, PartialEq)]
pub struct PlateRead {
    /// Upper-case letters and digits.
    pub text: String,
    /// 0..1.
    pub confidence: f32,
    /// The region whose format the text follows.
    pub region: Region,
    /// The format the text follows (`L` a letter, `N` a digit, e.g. `LLNNNLL`), empty for
    /// free text (a vanity plate, a plate read in part, a format not listed).
    pub format: String,
    /// The plate's outline.
    pub bounds: Rect,
    /// The glyphs used.
    pub chars: Vec<CharRead>,
    /// Next-best texts, best first.
    pub alternatives: Vec<(String, f32)>,
}

/// Tesseract's layout modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PageMode {
    /// One line.
    #[default]
    SingleLine,
    /// One word.
    SingleWord,
    /// A block of text.
    SingleBlock,
    /// Text anywhere.
    SparseText,
    /// Full layout analysis.
    Auto,
}

/// What to read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OcrOptions {
    /// The region (none = the whole frame).
    pub area: Option<Rect>,
    /// Only these characters.
    pub whitelist: Option<String>,
    /// Layout.
    pub page_mode: PageMode,
}

/// What the OCR read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OcrResult {
    /// Words separated by spaces, lines by newlines.
    pub text: String,
    /// Mean word confidence, 0..1.
    pub confidence: f32,
    /// (word, confidence, box).
    pub words: Vec<(String, f32, Rect)>,
}

/// Where and what size of face to look for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FaceOptions {
    /// Only look inside this rectangle.
    pub area: Option<Rect>,
    /// The smallest face reported (its box's side, pixels); 0 = the host's default (1/8 of
    /// the searched area's shorter side, at least 24). Smaller minimums cost more time.
    pub min_size: u32,
    /// At most this many faces, largest first; 0 = the host's cap (32).
    pub max_results: u32,
}

/// A face as found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Face {
    /// The face's box (brows to chin, cheek to cheek: roughly square).
    pub bounds: Rect,
    /// How sure the detector is, 0..1.
    pub confidence: f32,
}

#[cfg(target_arch = "wasm32")]
mod host {
    use super::*;
    use crate::__bindings::prism::filter::types::Rect as WitRect;
    use crate::__bindings::prism::filter::vision as wit;

    pub fn rect_to(r: Rect) -> WitRect {
        WitRect {
            x: r.x,
            y: r.y,
            width: r.width,
            height: r.height,
        }
    }

    pub fn rect_from(r: WitRect) -> Rect {
        Rect::new(r.x, r.y, r.width, r.height)
    }

    pub fn options(o: &PlateOptions) -> wit::PlateOptions {
        wit::PlateOptions {
            region: match o.region {
                Region::Auto => wit::PlateRegion::Auto,
                Region::Eu => wit::PlateRegion::Eu,
                Region::Us => wit::PlateRegion::Us,
                Region::Br => wit::PlateRegion::Br,
            },
            plate_width_pct: o.plate_width_pct,
            area: o.area.map(rect_to),
            max_results: o.max_results,
            search: match o.search {
                Search::Thorough => wit::PlateSearch::Thorough,
                Search::Quick => wit::PlateSearch::Quick,
            },
        }
    }

    pub fn read(r: wit::PlateRead) -> PlateRead {
        PlateRead {
            text: r.text,
            confidence: r.confidence,
            region: match r.region {
                wit::PlateRegion::Auto => Region::Auto,
                wit::PlateRegion::Eu => Region::Eu,
                wit::PlateRegion::Us => Region::Us,
                wit::PlateRegion::Br => Region::Br,
            },
            format: r.format,
            bounds: rect_from(r.bounds),
            chars: r
                .chars
                .into_iter()
                .map(|c| CharRead {
                    bounds: rect_from(c.bounds),
                    guesses: c
                        .guesses
                        .into_iter()
                        .map(|g| (g.symbol, g.confidence))
                        .collect(),
                })
                .collect(),
            alternatives: r
                .alternatives
                .into_iter()
                .map(|t| (t.text, t.confidence))
                .collect(),
        }
    }

    pub fn candidate_to(c: &Candidate) -> wit::PlateCandidate {
        wit::PlateCandidate {
            bounds: rect_to(c.bounds),
            chars: c.chars.iter().copied().map(rect_to).collect(),
            inverted: c.inverted,
            score: c.score,
        }
    }
}

/// Finds and reads plates: the most confident reading of each place, best first.
pub fn detect_plates(frame: &Frame<'_>, options: &PlateOptions) -> Vec<PlateRead> {
    #[cfg(target_arch = "wasm32")]
    if let Some(f) = frame.host_handle() {
        return crate::__bindings::prism::filter::vision::detect_plates(f, host::options(options))
            .into_iter()
            .map(host::read)
            .collect();
    }
    let _ = (frame, options);
    Vec::new()
}

/// Rows of glyphs that may be plates, most regular first.
pub fn find_plate_candidates(frame: &Frame<'_>, options: &PlateOptions) -> Vec<Candidate> {
    #[cfg(target_arch = "wasm32")]
    if let Some(f) = frame.host_handle() {
        return crate::__bindings::prism::filter::vision::find_plate_candidates(
            f,
            host::options(options),
        )
        .into_iter()
        .map(|c| Candidate {
            bounds: host::rect_from(c.bounds),
            chars: c.chars.into_iter().map(host::rect_from).collect(),
            inverted: c.inverted,
            score: c.score,
        })
        .collect();
    }
    let _ = (frame, options);
    Vec::new()
}

/// Reads one candidate.
pub fn read_plate(
    frame: &Frame<'_>,
    candidate: &Candidate,
    options: &PlateOptions,
) -> Option<PlateRead> {
    #[cfg(target_arch = "wasm32")]
    if let Some(f) = frame.host_handle() {
        return crate::__bindings::prism::filter::vision::read_plate(
            f,
            &host::candidate_to(candidate),
            host::options(options),
        )
        .map(host::read);
    }
    let _ = (frame, candidate, options);
    None
}

/// Frontal faces, largest first.
///
/// ```no_run
/// use prism_filter_sdk::vision::{self, FaceOptions};
/// use prism_filter_sdk::{Color, Frame};
/// # fn f(frame: &mut Frame<'_>) -> prism_filter_sdk::Result<()> {
/// for face in vision::detect_faces(frame, &FaceOptions::default())? {
///     frame.draw_rect(face.bounds, Color::rgb(0, 255, 0), 3);
/// }
/// # Ok(())
/// # }
/// ```
///
/// An error means the host cannot detect faces at all (e.g. its cascade file is missing), not
/// that there are none.
pub fn detect_faces(frame: &Frame<'_>, options: &FaceOptions) -> Result<Vec<Face>> {
    #[cfg(target_arch = "wasm32")]
    if let Some(f) = frame.host_handle() {
        use crate::__bindings::prism::filter::vision as wit;
        let opts = wit::FaceOptions {
            area: options.area.map(host::rect_to),
            min_size: options.min_size,
            max_results: options.max_results,
        };
        return wit::detect_faces(f, opts)
            .map(|faces| {
                faces
                    .into_iter()
                    .map(|face| Face {
                        bounds: host::rect_from(face.area),
                        confidence: face.confidence,
                    })
                    .collect()
            })
            .map_err(crate::Error);
    }
    let _ = (frame, options);
    Err(crate::Error(
        "vision runs in the Prism host; this frame is not a host frame".into(),
    ))
}

/// Draws the picture the host attached to this filter element under `name` (e.g. the image of
/// Kurento's `setOverlayedImage`), scaled to `at`, blended by its alpha and clipped to the
/// frame. The filter never sees the picture's bytes; it fails if none of that name is attached.
///
/// ```no_run
/// use prism_filter_sdk::{Frame, Placement, vision};
/// # fn f(frame: &mut Frame<'_>) -> prism_filter_sdk::Result<()> {
/// // A hat above a face at (200, 120) of 100x100 pixels.
/// vision::draw_image(frame, "hat", Placement::new(180, 20, 140, 110))?;
/// # Ok(())
/// # }
/// ```
pub fn draw_image(frame: &mut Frame<'_>, name: &str, at: Placement) -> Result<()> {
    #[cfg(target_arch = "wasm32")]
    if let Some(f) = frame.host_handle() {
        use crate::__bindings::prism::filter::vision as wit;
        let at = wit::Placement {
            x: at.x,
            y: at.y,
            width: at.width,
            height: at.height,
        };
        return wit::draw_image(f, name, at).map_err(crate::Error);
    }
    let _ = (frame, at);
    Err(crate::Error(format!(
        "picture {name:?}: pictures are attached by the Prism host; this frame is not a host frame"
    )))
}

/// Generic OCR (Tesseract) of a region.
pub fn ocr(frame: &Frame<'_>, options: &OcrOptions) -> Result<OcrResult> {
    #[cfg(target_arch = "wasm32")]
    if let Some(f) = frame.host_handle() {
        use crate::__bindings::prism::filter::vision as wit;
        let opts = wit::OcrOptions {
            area: options.area.map(host::rect_to),
            whitelist: options.whitelist.clone(),
            page_mode: match options.page_mode {
                PageMode::SingleLine => wit::PageMode::SingleLine,
                PageMode::SingleWord => wit::PageMode::SingleWord,
                PageMode::SingleBlock => wit::PageMode::SingleBlock,
                PageMode::SparseText => wit::PageMode::SparseText,
                PageMode::Auto => wit::PageMode::Auto,
            },
        };
        return wit::ocr(f, &opts)
            .map(|r| OcrResult {
                text: r.text,
                confidence: r.confidence,
                words: r
                    .words
                    .into_iter()
                    .map(|w| (w.text, w.confidence, host::rect_from(w.bounds)))
                    .collect(),
            })
            .map_err(crate::Error);
    }
    let _ = (frame, options);
    Err(crate::Error(
        "vision runs in the Prism host; this frame is not a host frame".into(),
    ))
}
