//! Frontal face detection for the `vision.detect-faces` import: OpenCV's cascade classifier
//! with the cascade Debian's `opencv-data` ships, run on the luma plane of the frame (no colour
//! conversion, no copy for `i420`/`gray8` frames).
//!
//! The searched area is shrunk (area average) until the smallest face asked for is
//! [`WORK_MIN_FACE`] pixels, so the cost depends on how small a face may be relative to the
//! picture, not on the frame's resolution; it is then histogram-equalised, searched, and the
//! boxes are mapped back to frame pixels. Each worker thread loads the cascade once.
//!
//! Not here: tracking faces across frames or landmarks (the filter decides what to do with
//! the boxes).

use std::cell::RefCell;
use std::path::Path;

use opencv::core::{Mat, Size, Vector};
use opencv::imgproc;
use opencv::objdetect::CascadeClassifier;
use opencv::prelude::*;

use super::{GrayImage, Rect};

/// The cascade used: OpenCV's LBP frontal-face cascade, from Debian's `opencv-data`, the one
/// Kurento's face filters use (so its face boxes, and the overlay fractions written for them,
/// match Kurento's).
///
/// Measured on the 640x480 portrait of tests/all/faces.rs (2 cores, 30-pixel minimum face):
/// LBP 20 ms, `lbpcascade_frontalface_improved` 36 ms (a tighter box), Haar `default` and
/// `alt2` 51 ms; with the default 60-pixel minimum, LBP 6.5 ms and Haar 15 ms (and Haar
/// `default` then boxed only part of the face). All four found the one face and nothing in
/// noise. LBP loads in under 1 ms, the Haar XML in 7-15 ms.
pub const FACE_CASCADE: &str = "/usr/share/opencv4/lbpcascades/lbpcascade_frontalface.xml";
/// The side of the cascade's detection window, pixels: no face smaller is found.
const WINDOW: u32 = 24;
/// The searched area is shrunk until the smallest face asked for is this many pixels: a few
/// pixels of margin over the window, where the cascade is still reliable.
const WORK_MIN_FACE: f32 = 32.0;
/// The searched area is never worked on at more pixels than this (a 4K frame asked for 24-pixel
/// faces is shrunk anyway, and its smallest faces are missed rather than the deadline).
const MAX_WORK_PIXELS: f32 = 1280.0 * 720.0;
/// Pyramid step between two searched face sizes.
const SCALE_STEP: f64 = 1.1;
/// Overlapping detections a face needs to be reported.
const MIN_NEIGHBOURS: i32 = 3;
/// Most faces one call returns.
pub const MAX_FACES: usize = 32;

/// Why faces cannot be detected at all (as opposed to: there are none).
#[derive(Debug, thiserror::Error)]
pub enum FaceError {
    /// The cascade file is not there.
    #[error(
        "the face cascade {path} is missing: install Debian's opencv-data package \
         (`make setup` does)"
    )]
    CascadeMissing {
        /// Where it was looked for.
        path: String,
    },
    /// The cascade file is there but OpenCV cannot load it.
    #[error("the face cascade {path} cannot be loaded: {message}")]
    CascadeUnreadable {
        /// The file.
        path: String,
        /// OpenCV's words.
        message: String,
    },
    /// OpenCV failed while detecting.
    #[error("face detection failed: {0}")]
    OpenCv(#[from] opencv::Error),
}

/// What to look for.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FaceOptions {
    /// Only look inside this rectangle.
    pub area: Option<Rect>,
    /// The smallest face reported (its box's side, pixels); 0 = 1/8 of the searched area's
    /// shorter side (a face within a few metres of a webcam), at least the cascade's window.
    pub min_size: u32,
    /// At most this many faces (capped at [`MAX_FACES`]); 0 = the cap.
    pub max_results: usize,
}

/// A face as found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Face {
    /// Its box in the image's pixels.
    pub bounds: Rect,
    /// 0..1, from the number of overlapping detections that agree on it.
    pub confidence: f32,
}

thread_local! {
    static CASCADE: RefCell<Option<CascadeClassifier>> = const { RefCell::new(None) };
}

/// Loads a cascade file with a clear error when it is missing or broken.
pub fn load_cascade(path: &str) -> Result<CascadeClassifier, FaceError> {
    if !Path::new(path).is_file() {
        return Err(FaceError::CascadeMissing { path: path.into() });
    }
    let unreadable = |message: String| FaceError::CascadeUnreadable {
        path: path.into(),
        message,
    };
    let cascade = CascadeClassifier::new(path).map_err(|e| unreadable(e.to_string()))?;
    if cascade.empty().map_err(|e| unreadable(e.to_string()))? {
        return Err(unreadable("OpenCV read no classifier from it".into()));
    }
    Ok(cascade)
}

/// Frontal faces in `img`, largest first, with this thread's [`FACE_CASCADE`].
pub fn detect_faces(img: &GrayImage<'_>, opts: &FaceOptions) -> Result<Vec<Face>, FaceError> {
    CASCADE.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(load_cascade(FACE_CASCADE)?);
        }
        let cascade = slot
            .as_mut()
            .expect("invariant: the cascade was just loaded");
        detect_with(cascade, img, opts)
    })
}

/// [`detect_faces`] with a given cascade.
pub fn detect_with(
    cascade: &mut CascadeClassifier,
    img: &GrayImage<'_>,
    opts: &FaceOptions,
) -> Result<Vec<Face>, FaceError> {
    let (view, ox, oy) = match opts.area {
        None => (*img, 0, 0),
        Some(a) => match a
            .clip(img.width() as u32, img.height() as u32)
            .and_then(|a| Some((img.sub(a)?, a.x, a.y)))
        {
            Some(found) => found,
            None => return Ok(Vec::new()),
        },
    };
    let (w, h) = (view.width() as u32, view.height() as u32);
    if w < WINDOW || h < WINDOW {
        return Ok(Vec::new());
    }
    let min_face = match opts.min_size {
        0 => (w.min(h) / 8).max(WINDOW),
        n => n.max(WINDOW),
    };
    if min_face > w.min(h) {
        return Ok(Vec::new());
    }
    // Work scale (work pixels per image pixel).
    let f = (WORK_MIN_FACE / min_face as f32)
        .min((MAX_WORK_PIXELS / (w as f32 * h as f32)).sqrt())
        .min(1.0);
    let source = view.mat()?;
    let mut work = Mat::default();
    if f < 1.0 {
        let size = Size::new(
            ((w as f32 * f).round() as i32).max(1),
            ((h as f32 * f).round() as i32).max(1),
        );
        let mut small = Mat::default();
        imgproc::resize(&source, &mut small, size, 0.0, 0.0, imgproc::INTER_AREA)?;
        imgproc::equalize_hist(&small, &mut work)?;
    } else {
        imgproc::equalize_hist(&source, &mut work)?;
    }
    let work_min = ((min_face as f32 * f).round() as i32).max(WINDOW as i32);
    let mut found = Vector::<opencv::core::Rect>::new();
    let mut neighbours = Vector::<i32>::new();
    cascade.detect_multi_scale2(
        &work,
        &mut found,
        &mut neighbours,
        SCALE_STEP,
        MIN_NEIGHBOURS,
        0,
        Size::new(work_min, work_min),
        Size::new(0, 0),
    )?;
    let mut faces: Vec<Face> = found
        .iter()
        .zip(neighbours.iter())
        .filter_map(|(r, n)| {
            let x = (r.x.max(0) as f32 / f).round() as u32;
            let y = (r.y.max(0) as f32 / f).round() as u32;
            let side_w = (r.width.max(0) as f32 / f).round() as u32;
            let side_h = (r.height.max(0) as f32 / f).round() as u32;
            let bounds = Rect::new(x, y, side_w, side_h).clip(w, h)?;
            Some(Face {
                bounds: Rect::new(bounds.x + ox, bounds.y + oy, bounds.width, bounds.height),
                confidence: confidence(n),
            })
        })
        .collect();
    faces.sort_by_key(|f| std::cmp::Reverse(f.bounds.area()));
    let cap = match opts.max_results {
        0 => MAX_FACES,
        n => n.min(MAX_FACES),
    };
    faces.truncate(cap);
    Ok(faces)
}

/// Confidence from the number of overlapping raw detections grouped into a face: the fewest a
/// face may have ([`MIN_NEIGHBOURS`]) is a weak 0.3; a real face a cascade sees at many
/// positions and scales (15 and more) is above 0.8.
fn confidence(neighbours: i32) -> f32 {
    1.0 - (-(neighbours.max(0) as f32) / 8.5).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confidence_grows_with_agreement() {
        assert!((confidence(3) - 0.3).abs() < 0.02, "{}", confidence(3));
        assert!(confidence(15) > 0.8);
        assert!(confidence(1000) <= 1.0);
        assert_eq!(confidence(-4), 0.0);
    }

    #[test]
    fn a_missing_cascade_is_a_clear_error() {
        let e = load_cascade("/nonexistent/cascade.xml").unwrap_err();
        assert!(matches!(e, FaceError::CascadeMissing { .. }));
        assert!(e.to_string().contains("opencv-data"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.xml");
        std::fs::write(&bad, "<opencv_storage></opencv_storage>").unwrap();
        let e = load_cascade(bad.to_str().unwrap()).unwrap_err();
        assert!(
            matches!(e, FaceError::CascadeUnreadable { .. }),
            "{e:?}: {e}"
        );
    }

    #[test]
    fn flat_and_tiny_images_have_no_face() {
        let flat = vec![128u8; 320 * 240];
        let img = GrayImage::new(&flat, 320, 240, 320).unwrap();
        assert!(
            detect_faces(&img, &FaceOptions::default())
                .unwrap()
                .is_empty()
        );
        let tiny = GrayImage::new(&flat, 10, 10, 10).unwrap();
        assert!(
            detect_faces(&tiny, &FaceOptions::default())
                .unwrap()
                .is_empty()
        );
        let outside = FaceOptions {
            area: Some(Rect::new(400, 400, 50, 50)),
            ..FaceOptions::default()
        };
        assert!(detect_faces(&img, &outside).unwrap().is_empty());
    }
}
