//! The host side of `prism:filter/vision`: the guest's `borrow<frame>` is read in place (the
//! luma plane of `gray8`/`i420` frames; `rgba` frames are converted to luma once per call) and
//! handed to [`crate::vision`]. Also the pictures attached to a filter element
//! ([`AttachedImages`]) that `draw-image` draws.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use wasmtime::component::Resource;

use super::RuntimeError;
use super::bindings::WitRect;
use super::bindings::prism::filter::vision::{
    self as wit, CharGuess, CharRead, Face, FaceOptions, OcrOptions, OcrResult, OcrWord, PageMode,
    Placement, PlateCandidate, PlateOptions, PlateRead, PlateRegion, PlateSearch, TextGuess,
};
use super::state::{FrameResource, StoreData};
use crate::vision::{self, GrayImage, Rect, Region, RgbaImage, faces, ocr};

/// Results a filter may ask for at once.
const MAX_RESULTS: u32 = 16;
/// Most glyph boxes a candidate given to `read-plate` may have: four times the most the host's
/// own candidates have.
pub const MAX_CANDIDATE_GLYPHS: usize = 4 * vision::segment::MAX_GLYPHS;
/// Most pictures attached to one filter element at once (each holds up to
/// [`vision::picture::MAX_IMAGE_PIXELS`] RGBA pixels).
pub const MAX_ATTACHED_IMAGES: usize = 8;
/// Longest picture name.
const MAX_IMAGE_NAME_BYTES: usize = 64;

/// The pictures attached to one filter element, by name, for `vision.draw-image`. A cheap
/// handle: clones share the set, so the control plane attaches a picture while the filter's
/// thread draws it (the new picture is seen from the next `draw-image` call on).
#[derive(Debug, Clone, Default)]
pub struct AttachedImages(Arc<RwLock<BTreeMap<String, Arc<RgbaImage>>>>);

impl AttachedImages {
    /// Attaches `image` under `name` (replacing one of that name), or detaches it (`None`).
    /// Names are 1 to 64 bytes; at most [`MAX_ATTACHED_IMAGES`] pictures at once.
    pub fn set(&self, name: &str, image: Option<Arc<RgbaImage>>) -> Result<(), RuntimeError> {
        let refuse = |message: String| RuntimeError::AttachImage {
            name: name.into(),
            message,
        };
        if name.is_empty() || name.len() > MAX_IMAGE_NAME_BYTES {
            return Err(refuse(format!(
                "picture names are 1 to {MAX_IMAGE_NAME_BYTES} bytes"
            )));
        }
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        match image {
            Some(image) => {
                if !map.contains_key(name) && map.len() >= MAX_ATTACHED_IMAGES {
                    return Err(refuse(format!(
                        "a filter holds at most {MAX_ATTACHED_IMAGES} pictures"
                    )));
                }
                map.insert(name.into(), image);
            }
            None => {
                map.remove(name);
            }
        }
        Ok(())
    }

    /// The picture attached under `name`.
    pub fn get(&self, name: &str) -> Option<Arc<RgbaImage>> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// The names attached, sorted.
    pub fn names(&self) -> Vec<String> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }
}

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
        search: match o.search {
            PlateSearch::Thorough => vision::Search::Thorough,
            PlateSearch::Quick => vision::Search::Quick,
        },
    }
}

fn read_to_wit(r: vision::PlateRead) -> PlateRead {
    PlateRead {
        text: r.text,
        confidence: r.confidence,
        region: region_to(r.region),
        format: r.format,
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
    fn detect_faces(
        &mut self,
        image: Resource<FrameResource>,
        options_: FaceOptions,
    ) -> wasmtime::Result<Result<Vec<Face>, String>> {
        let opts = faces::FaceOptions {
            area: options_.area.map(Into::into),
            min_size: options_.min_size,
            max_results: options_.max_results as usize,
        };
        let found = with_luma(self, &image, |img| faces::detect_faces(img, &opts))?;
        Ok(match found {
            Ok(found) => Ok(found
                .into_iter()
                .map(|f| Face {
                    area: rect(f.bounds),
                    confidence: f.confidence,
                })
                .collect()),
            Err(e) => {
                tracing::warn!(filter = %self.call.filter, cause = %e, "face detection failed");
                Err(e.to_string())
            }
        })
    }

    fn draw_image(
        &mut self,
        target: Resource<FrameResource>,
        name: String,
        at: Placement,
    ) -> wasmtime::Result<Result<(), String>> {
        let started = Instant::now();
        let Some(picture) = self.images.get(&name) else {
            let names = self.images.names();
            return Ok(Err(format!(
                "no picture named {name:?} is attached to this filter (attached: {})",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )));
        };
        let at = prism_frame::Placement::new(at.x, at.y, at.width, at.height);
        let frame = self.frame(&target)?;
        let result = match at.clip(frame.buf.width(), frame.buf.height()) {
            Some(area) => {
                frame.save_drawn(area);
                frame
                    .buf
                    .draw_picture(picture.as_frame(), at)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            None => Ok(()),
        };
        // Native work does not count against the filter's own deadline.
        self.call.host_credit += started.elapsed();
        Ok(result)
    }

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
        // Each box is classified and every run of them decoded: a guest's list is bounded
        // like the candidates the host finds, so one call cannot hold the thread for long.
        if candidate.chars.len() > MAX_CANDIDATE_GLYPHS {
            return Err(wasmtime::Error::msg(format!(
                "read-plate: a candidate of {} glyph boxes (at most {MAX_CANDIDATE_GLYPHS})",
                candidate.chars.len()
            )));
        }
        let cand = vision::Candidate {
            bounds: candidate.bounds.into(),
            chars: candidate.chars.into_iter().map(Into::into).collect(),
            inverted: candidate.inverted,
            // A NaN score is no score (`clamp` would keep it NaN).
            score: if candidate.score.is_nan() {
                0.0
            } else {
                candidate.score.clamp(0.0, 1.0)
            },
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

#[cfg(test)]
mod tests {
    use super::*;

    fn picture() -> Option<Arc<RgbaImage>> {
        Some(Arc::new(RgbaImage::new(1, 1, vec![1, 2, 3, 255]).unwrap()))
    }

    #[test]
    fn attached_images_are_shared_named_and_capped() {
        let images = AttachedImages::default();
        let other_handle = images.clone();
        images.set("hat", picture()).unwrap();
        assert_eq!(
            other_handle.get("hat").unwrap().pixel(0, 0),
            Some([1, 2, 3, 255])
        );
        for i in 1..MAX_ATTACHED_IMAGES {
            images.set(&format!("p{i}"), picture()).unwrap();
        }
        let e = images.set("one-too-many", picture()).unwrap_err();
        assert!(e.to_string().contains("at most 8 pictures"), "{e}");
        // Replacing one that is there is not one more.
        images.set("hat", picture()).unwrap();
        images.set("hat", None).unwrap();
        assert!(other_handle.get("hat").is_none());
        assert_eq!(images.names().len(), MAX_ATTACHED_IMAGES - 1);
        for bad in ["", &"x".repeat(65)] {
            assert!(images.set(bad, picture()).is_err());
        }
    }
}
