//! Generic OCR of a frame region with Tesseract 5 (Debian's `eng` model), for filters that read
//! text other than plates. One engine per worker thread, created on first use.

use std::cell::RefCell;

use opencv::core::{Mat, Size};
use opencv::imgproc;
use opencv::prelude::*;
use tesseract::{PageSegMode, Tesseract};

use super::{GrayImage, Rect};

/// How Tesseract lays out the region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PageMode {
    /// One line of text.
    #[default]
    SingleLine,
    /// One word.
    SingleWord,
    /// A uniform block of text.
    SingleBlock,
    /// As much text as possible, in no particular order.
    SparseText,
    /// Full page layout analysis.
    Auto,
}

impl PageMode {
    fn tess(self) -> PageSegMode {
        match self {
            PageMode::SingleLine => PageSegMode::PsmSingleLine,
            PageMode::SingleWord => PageSegMode::PsmSingleWord,
            PageMode::SingleBlock => PageSegMode::PsmSingleBlock,
            PageMode::SparseText => PageSegMode::PsmSparseText,
            PageMode::Auto => PageSegMode::PsmAuto,
        }
    }
}

/// What to read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OcrOptions {
    /// The region (none = the whole image).
    pub area: Option<Rect>,
    /// Only these characters may be recognised.
    pub whitelist: Option<String>,
    /// Layout.
    pub page_mode: PageMode,
}

/// One recognised word.
#[derive(Debug, Clone, PartialEq)]
pub struct OcrWord {
    /// Its text.
    pub text: String,
    /// 0..1.
    pub confidence: f32,
    /// Its box in the image.
    pub bounds: Rect,
}

/// What Tesseract read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OcrResult {
    /// All words, space-separated, lines by newlines.
    pub text: String,
    /// Mean word confidence, 0..1.
    pub confidence: f32,
    /// The words.
    pub words: Vec<OcrWord>,
}

thread_local! {
    static ENGINE: RefCell<Option<Tesseract>> = const { RefCell::new(None) };
}

/// Text is scaled up to at least this height (pixels) before recognition.
const MIN_TEXT_HEIGHT: usize = 40;
/// Largest region Tesseract is given, pixels (larger regions are refused: OCR time grows with
/// area and a frame must not stall the filter's deadline).
const MAX_AREA: usize = 2_000_000;

/// Reads the text of a region.
pub fn ocr(img: &GrayImage<'_>, opts: &OcrOptions) -> Result<OcrResult, String> {
    let area = opts
        .area
        .unwrap_or(Rect::new(0, 0, img.width() as u32, img.height() as u32));
    let crop = img
        .sub(area)
        .ok_or_else(|| format!("the OCR area {area:?} does not lie inside the image"))?;
    if crop.width() * crop.height() > MAX_AREA {
        return Err(format!(
            "the OCR area is {}x{}; at most {MAX_AREA} pixels",
            crop.width(),
            crop.height()
        ));
    }
    if let Some(w) = &opts.whitelist
        && (w.is_empty() || w.contains('\0'))
    {
        return Err("the whitelist must be non-empty text".into());
    }
    let scale = MIN_TEXT_HEIGHT.div_ceil(crop.height()).clamp(1, 4);
    let scaled;
    let (data, w, h) = if scale > 1 {
        let mut m = Mat::default();
        imgproc::resize(
            &crop.mat().map_err(|e| e.to_string())?,
            &mut m,
            Size::new(
                (crop.width() * scale) as i32,
                (crop.height() * scale) as i32,
            ),
            0.0,
            0.0,
            imgproc::INTER_CUBIC,
        )
        .map_err(|e| e.to_string())?;
        scaled = m;
        (
            scaled.data_bytes().map_err(|e| e.to_string())?.to_vec(),
            crop.width() * scale,
            crop.height() * scale,
        )
    } else {
        let mut v = Vec::with_capacity(crop.width() * crop.height());
        for y in 0..crop.height() {
            v.extend_from_slice(crop.row(y));
        }
        (v, crop.width(), crop.height())
    };
    ENGINE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let engine = match slot.take() {
            Some(e) => e,
            None => Tesseract::new(None, Some("eng")).map_err(|e| {
                format!("Tesseract failed to start (is tesseract-ocr-eng installed?): {e}")
            })?,
        };
        let mut engine = engine
            .set_variable(
                "tessedit_char_whitelist",
                opts.whitelist.as_deref().unwrap_or(""),
            )
            .map_err(|e| e.to_string())?;
        engine.set_page_seg_mode(opts.page_mode.tess());
        let mut engine = engine
            .set_frame(&data, w as i32, h as i32, 1, w as i32)
            .map_err(|e| e.to_string())?
            .recognize()
            .map_err(|e| e.to_string())?;
        let tsv = engine.get_tsv_text(0).map_err(|e| e.to_string());
        *slot = Some(engine);
        Ok(parse_tsv(&tsv?, scale as f32, area))
    })
}

/// Words of Tesseract's TSV (level 5 rows), boxes mapped back to the image.
fn parse_tsv(tsv: &str, scale: f32, area: Rect) -> OcrResult {
    let mut words = Vec::new();
    let mut text = String::new();
    let mut last_line = None;
    for line in tsv.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 12 || f[0] != "5" {
            continue;
        }
        let word = f[11].trim();
        let num = |i: usize| f[i].parse::<f32>().unwrap_or(0.0);
        if word.is_empty() {
            continue;
        }
        let line_id = (f[2], f[3], f[4]);
        if !text.is_empty() {
            text.push(if last_line == Some(line_id) {
                ' '
            } else {
                '\n'
            });
        }
        last_line = Some(line_id);
        text.push_str(word);
        words.push(OcrWord {
            text: word.to_string(),
            confidence: (num(10) / 100.0).clamp(0.0, 1.0),
            bounds: Rect::new(
                area.x + (num(6) / scale) as u32,
                area.y + (num(7) / scale) as u32,
                (num(8) / scale).round() as u32,
                (num(9) / scale).round() as u32,
            ),
        });
    }
    let confidence = if words.is_empty() {
        0.0
    } else {
        words.iter().map(|w| w.confidence).sum::<f32>() / words.len() as f32
    };
    OcrResult {
        text,
        confidence,
        words,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsv_words_map_back_to_the_image() {
        let tsv = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n\
                   5\t1\t1\t1\t1\t1\t10\t20\t40\t30\t91.5\tHELLO\n\
                   5\t1\t1\t1\t1\t2\t60\t20\t40\t30\t80\tWORLD\n\
                   5\t1\t1\t1\t2\t1\t10\t60\t40\t30\t70\tBYE\n";
        let r = parse_tsv(tsv, 2.0, Rect::new(100, 200, 50, 50));
        assert_eq!(r.text, "HELLO WORLD\nBYE");
        assert_eq!(r.words[0].bounds, Rect::new(105, 210, 20, 15));
        assert!((r.words[0].confidence - 0.915).abs() < 1e-4);
        assert!((r.confidence - (0.915 + 0.8 + 0.7) / 3.0).abs() < 1e-4);
    }

    #[test]
    fn reads_rendered_text() {
        // White text on black drawn with the host's 8x8 font, scaled 4x: Tesseract reads it.
        let mut f = prism_frame::FrameBuf::zeroed(prism_frame::PixelFormat::Gray8, 260, 60);
        f.draw_text(
            "PRISM 42",
            10,
            14,
            4,
            prism_frame::Color::rgb(255, 255, 255),
        );
        let img = GrayImage::of_frame(&f).unwrap();
        let r = ocr(&img, &OcrOptions::default()).unwrap();
        assert_eq!(r.text.replace(' ', ""), "PRISM42", "{r:?}");
        let err = ocr(
            &img,
            &OcrOptions {
                area: Some(Rect::new(250, 0, 20, 20)),
                ..OcrOptions::default()
            },
        )
        .unwrap_err();
        assert!(err.contains("does not lie inside"), "{err}");
    }
}
