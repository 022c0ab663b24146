//! The host side of `prism:filter/vision`: the guest's `borrow<frame>` is read in place (the
//! luma plane of `gray8`/`i420` frames; `rgba` frames are converted to luma once per call) and
//! handed to [`crate::vision`].

use wasmtime::component::Resource;

use super::bindings::WitRect;
use super::bindings::prism::filter::vision::{
    self as wit, CharGuess, CharRead, OcrOptions, OcrResult, OcrWord, PageMode, PlateCandidate,
    PlateOptions, PlateRead, PlateRegion, TextGuess,
};
use super::state::{FrameResource, StoreData};
use crate::vision::{self, GrayImage, Rect, Region, ocr};

/// Results a filter may ask for at once.
const MAX_RESULTS: u32 = 16;

fn region_from(r: PlateRegion) -> Region {
    match r {
        PlateRegion::Auto => Region::Auto,
        PlateRegion::Eu => Region::Eu,
        PlateRegion::Us => Region::Us,
        PlateRegion::Br => Region::Br,
    }
}

fn region_to(r: Region) -> PlateRegion {
    match r {
        Region::Auto => PlateRegion::Auto,
        Region::Eu => PlateRegion::Eu,
        Region::Us => PlateRegion::Us,
        Region::Br => PlateRegion::Br,
    }
}

fn rect(r: Rect) -> WitRect {
    WitRect {
        x: r.x,
        y: r.y,
        width: r.width,
        height: r.height,
    }
}

fn options(o: &PlateOptions) -> vision::PlateOptions {
    vision::PlateOptions {
        region: region_from(o.region),
        plate_width_pct: if o.plate_width_pct.is_finite() {
            o.plate_width_pct.clamp(0.0, 100.0)
        } else {
            0.0
        },
        area: o.area.map(Into::into),
        max_results: o.max_results.clamp(1, MAX_RESULTS) as usize,
    }
}

fn read_to_wit(r: vision::PlateRead) -> PlateRead {
    PlateRead {
        text: r.text,
        confidence: r.confidence,
        region: region_to(r.region),
        bounds: rect(r.bounds),
        chars: r
            .chars
            .into_iter()
            .map(|c| CharRead {
                bounds: rect(c.bounds),
                guesses: c
                    .guesses
                    .into_iter()
                    .map(|(symbol, confidence)| CharGuess { symbol, confidence })
                    .collect(),
            })
            .collect(),
        alternatives: r
            .alternatives
            .into_iter()
            .map(|(text, confidence)| TextGuess { text, confidence })
            .collect(),
    }
}

/// Runs `f` over the luma of the frame behind `handle`.
fn with_luma<T>(
    data: &mut StoreData,
    handle: &Resource<FrameResource>,
    f: impl FnOnce(&GrayImage<'_>) -> T,
) -> wasmtime::Result<T> {
    let started = std::time::Instant::now();
    let frame = &data.frame_ref(handle)?.buf;
    let out = match GrayImage::of_frame(frame) {
        // gray8 and i420: the frame's own planes.
        Some(img) => f(&img),
        None => {
            let luma = vision::image::luma_of(frame);
            let w = frame.width() as usize;
            let img = GrayImage::new(&luma, w, frame.height() as usize, w)
                .ok_or_else(|| wasmtime::Error::msg("frame luma is shorter than its size"))?;
            f(&img)
        }
    };
    // Native work does not count against the filter's own deadline.
    data.call.host_credit += started.elapsed();
    Ok(out)
}

fn log_failure<T: Default>(r: opencv::Result<T>, what: &str) -> T {
    r.unwrap_or_else(|e| {
        tracing::warn!("vision {what} failed: {e}");
        T::default()
    })
}

impl wit::Host for StoreData {
    fn find_plate_candidates(
        &mut self,
        image: Resource<FrameResource>,
        options_: PlateOptions,
    ) -> wasmtime::Result<Vec<PlateCandidate>> {
        let opts = options(&options_);
        let found = with_luma(self, &image, |img| {
            log_failure(vision::find_candidates(img, &opts), "plate search")
        })?;
        Ok(found
            .into_iter()
            .take(MAX_RESULTS as usize)
            .map(|c| PlateCandidate {
                bounds: rect(c.bounds),
                chars: c.chars.into_iter().map(rect).collect(),
                inverted: c.inverted,
                score: c.score,
            })
            .collect())
    }

    fn read_plate(
        &mut self,
        image: Resource<FrameResource>,
        candidate: PlateCandidate,
        options_: PlateOptions,
    ) -> wasmtime::Result<Option<PlateRead>> {
        let opts = options(&options_);
        let cand = vision::Candidate {
            bounds: candidate.bounds.into(),
            chars: candidate.chars.into_iter().map(Into::into).collect(),
            inverted: candidate.inverted,
            score: candidate.score.clamp(0.0, 1.0),
        };
        with_luma(self, &image, |img| {
            vision::read_plate(img, &cand, &opts).map(read_to_wit)
        })
    }

    fn detect_plates(
        &mut self,
        image: Resource<FrameResource>,
        options_: PlateOptions,
    ) -> wasmtime::Result<Vec<PlateRead>> {
        let opts = options(&options_);
        let reads = with_luma(self, &image, |img| {
            log_failure(vision::detect_plates(img, &opts), "plate detection")
        })?;
        Ok(reads.into_iter().map(read_to_wit).collect())
    }

    fn ocr(
        &mut self,
        image: Resource<FrameResource>,
        options_: OcrOptions,
    ) -> wasmtime::Result<Result<OcrResult, String>> {
        let opts = ocr::OcrOptions {
            area: options_.area.map(Into::into),
            whitelist: options_.whitelist,
            page_mode: match options_.page_mode {
                PageMode::SingleLine => ocr::PageMode::SingleLine,
                PageMode::SingleWord => ocr::PageMode::SingleWord,
                PageMode::SingleBlock => ocr::PageMode::SingleBlock,
                PageMode::SparseText => ocr::PageMode::SparseText,
                PageMode::Auto => ocr::PageMode::Auto,
            },
        };
        with_luma(self, &image, |img| {
            ocr::ocr(img, &opts).map(|r| OcrResult {
                text: r.text,
                confidence: r.confidence,
                words: r
                    .words
                    .into_iter()
                    .map(|w| OcrWord {
                        text: w.text,
                        confidence: w.confidence,
                        bounds: rect(w.bounds),
                    })
                    .collect(),
            })
        })
    }
}
