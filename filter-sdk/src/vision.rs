//! The host's native vision: licence-plate reading and OCR, run by the server on the frame
//! being processed (nothing is copied into the filter). Outside the server (native unit
//! tests) there is no vision: the plate calls find nothing and [`ocr`] returns an error.
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

use crate::{Frame, Rect, Result};

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
}

impl Default for PlateOptions {
    fn default() -> Self {
        PlateOptions {
            region: Region::Auto,
            plate_width_pct: 0.0,
            area: None,
            max_results: 4,
        }
    }
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
