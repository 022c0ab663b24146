//! `faceoverlay`: Kurento's FaceOverlayFilter as a WASM filter. Finds frontal faces with the
//! host's native detector (`vision.detect-faces`) and draws a picture the host attached to
//! the element over each (`vision.draw-image`: the filter never fetches or sees the picture),
//! or a box around each face when there is no picture.
//!
//! Configuration (every key optional):
//! `{"image": "overlay"|null, "offset_x": 0, "offset_y": 0, "width": 1, "height": 1}`
//! * `image`: the name the picture was attached under (Kurento's `setOverlayedImage` attaches
//!   it); `null` draws boxes;
//! * `offset_x`, `offset_y`, `width`, `height`: where the picture goes, as fractions of the
//!   face's box, exactly Kurento's `offsetXPercent`, `offsetYPercent`, `widthPercent`,
//!   `heightPercent` (its magic-mirror tutorial puts a hat with -0.35, -1.2, 1.6, 1.6).
//!
//! Emits `FacesDetected` `{"count": n, "faces": [{"x", "y", "width", "height", "confidence"}]}`
//! when the number of faces changes (not on every frame: a face moving is no news).

use prism_filter_sdk::vision::{self, Face, FaceOptions};
use prism_filter_sdk::{
    Color, Filter, FilterInfo, Frame, Level, PixelFormat, Placement, Result, emit, export_filter,
    log, parse_config,
};
use serde::{Deserialize, Serialize};

/// Offsets and sizes are bounded so a placement stays a sane multiple of the face.
const MAX_FRACTION: f32 = 10.0;
/// Longest picture name (the host's limit).
const MAX_NAME_BYTES: usize = 64;
/// Faces handled per frame.
const MAX_FACES: u32 = 16;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    image: Option<String>,
    offset_x: f32,
    offset_y: f32,
    width: f32,
    height: f32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            image: None,
            offset_x: 0.0,
            offset_y: 0.0,
            width: 1.0,
            height: 1.0,
        }
    }
}

impl Config {
    fn check(&self) -> Result<()> {
        let bad = |m: String| {
            Err(prism_filter_sdk::Error(format!(
                "invalid configuration: {m}"
            )))
        };
        if let Some(name) = &self.image
            && (name.is_empty() || name.len() > MAX_NAME_BYTES)
        {
            return bad(format!(
                "image names are 1 to {MAX_NAME_BYTES} bytes, got {name:?}"
            ));
        }
        for (key, v) in [("offset_x", self.offset_x), ("offset_y", self.offset_y)] {
            if !v.is_finite() || v.abs() > MAX_FRACTION {
                return bad(format!("{key} {v} is not -{MAX_FRACTION}..{MAX_FRACTION}"));
            }
        }
        for (key, v) in [("width", self.width), ("height", self.height)] {
            if !v.is_finite() || v <= 0.0 || v > MAX_FRACTION {
                return bad(format!("{key} {v} is not in (0, {MAX_FRACTION}]"));
            }
        }
        Ok(())
    }

    /// Where the picture goes for a face.
    fn placement(&self, face: &Face) -> Placement {
        let b = face.bounds;
        let (fw, fh) = (b.width as f32, b.height as f32);
        Placement::new(
            (b.x as f32 + self.offset_x * fw).round() as i32,
            (b.y as f32 + self.offset_y * fh).round() as i32,
            (self.width * fw).round().max(1.0) as u32,
            (self.height * fh).round().max(1.0) as u32,
        )
    }
}

#[derive(Serialize)]
struct FaceJson {
    x: u32,
    y: u32,
    width: u32,
    height: u32,
    confidence: f32,
}

#[derive(Serialize)]
struct FacesDetected {
    count: usize,
    faces: Vec<FaceJson>,
}

/// The filter and its state.
#[derive(Default)]
pub struct FaceOverlay {
    config: Config,
    /// Faces in the last frame (`None` before the first).
    last_count: Option<usize>,
    /// The picture named in the configuration is missing: warned once, boxes drawn meanwhile.
    warned_missing: bool,
}

impl FaceOverlay {
    /// Emits `FacesDetected` when the number of faces changed.
    fn report(&mut self, faces: &[Face]) -> Result<()> {
        if self.last_count == Some(faces.len()) {
            return Ok(());
        }
        self.last_count = Some(faces.len());
        emit(
            "FacesDetected",
            &FacesDetected {
                count: faces.len(),
                faces: faces
                    .iter()
                    .map(|f| FaceJson {
                        x: f.bounds.x,
                        y: f.bounds.y,
                        width: f.bounds.width,
                        height: f.bounds.height,
                        confidence: f.confidence,
                    })
                    .collect(),
            },
        )
    }

    fn draw(&mut self, frame: &mut Frame<'_>, faces: &[Face]) {
        const GREEN: Color = Color::rgb(40, 230, 90);
        for face in faces {
            if let Some(name) = &self.config.image {
                match vision::draw_image(frame, name, self.config.placement(face)) {
                    Ok(()) => continue,
                    Err(e) if !self.warned_missing => {
                        log(
                            Level::Warn,
                            &format!("{e}; drawing boxes until it is attached"),
                        );
                        self.warned_missing = true;
                    }
                    Err(_) => {}
                }
            }
            let thickness = (face.bounds.width / 40).clamp(2, 6);
            frame.draw_rect(face.bounds, GREEN, thickness);
        }
    }
}

impl Filter for FaceOverlay {
    fn describe() -> FilterInfo {
        FilterInfo::new("faceoverlay", "1.0.0", PixelFormat::I420)
            .description("Draws a picture the server holds over every face (Kurento's FaceOverlayFilter), or boxes; emits FacesDetected when the count changes.")
            .parameters_schema(
                r#"{"type":"object","additionalProperties":false,"properties":{
"image":{"type":["string","null"],"minLength":1,"maxLength":64},
"offset_x":{"type":"number","minimum":-10,"maximum":10},
"offset_y":{"type":"number","minimum":-10,"maximum":10},
"width":{"type":"number","exclusiveMinimum":0,"maximum":10},
"height":{"type":"number","exclusiveMinimum":0,"maximum":10}}}"#,
            )
    }

    fn configure(&mut self, config_json: &str) -> Result<()> {
        let config: Config = parse_config(config_json)?;
        config.check()?;
        if config.image != self.config.image {
            self.warned_missing = false;
        }
        self.config = config;
        Ok(())
    }

    fn process(&mut self, frame: &mut Frame<'_>) -> Result<()> {
        let opts = FaceOptions {
            max_results: MAX_FACES,
            ..FaceOptions::default()
        };
        let faces = vision::detect_faces(frame, &opts)?;
        self.report(&faces)?;
        self.draw(frame, &faces);
        Ok(())
    }
}

export_filter!(FaceOverlay);

#[cfg(test)]
mod tests {
    use super::*;
    use prism_filter_sdk::Rect;

    fn face(x: u32, y: u32, side: u32) -> Face {
        Face {
            bounds: Rect::new(x, y, side, side),
            confidence: 0.9,
        }
    }

    #[test]
    fn kurento_fractions_place_a_hat_above_the_face() {
        let mut f = FaceOverlay::default();
        f.configure(
            r#"{"image": "hat", "offset_x": -0.35, "offset_y": -1.2, "width": 1.6, "height": 1.6}"#,
        )
        .unwrap();
        // A 100-pixel face at (200, 150): the hat starts 35 left and 120 above, 160 square.
        assert_eq!(
            f.config.placement(&face(200, 150, 100)),
            Placement::new(165, 30, 160, 160)
        );
        // Near the top edge the placement starts above the frame (the host clips it).
        assert_eq!(
            f.config.placement(&face(10, 20, 50)),
            Placement::new(-8, -40, 80, 80)
        );
    }

    #[test]
    fn defaults_cover_the_face_and_draw_boxes() {
        let mut f = FaceOverlay::default();
        f.configure("{}").unwrap();
        assert_eq!(f.config.image, None);
        assert_eq!(
            f.config.placement(&face(7, 9, 33)),
            Placement::new(7, 9, 33, 33)
        );
        f.configure(r#"{"image": null}"#).unwrap();
        assert_eq!(f.config, Config::default());
    }

    #[test]
    fn configuration_is_checked() {
        let mut f = FaceOverlay::default();
        for (bad, why) in [
            (r#"{"width": 0}"#, "width 0"),
            (r#"{"height": -1}"#, "height -1"),
            (r#"{"offset_x": 11}"#, "offset_x 11"),
            (r#"{"image": ""}"#, "image names"),
            (r#"{"image": 3}"#, "invalid type"),
            (r#"{"uri": "http://x/hat.png"}"#, "unknown field `uri`"),
        ] {
            let e = f.configure(bad).unwrap_err();
            assert!(e.0.contains(why), "{bad}: {e}");
        }
        // A refused configuration leaves the previous one.
        assert_eq!(f.config, Config::default());
    }

    #[test]
    fn events_only_when_the_count_changes() {
        let mut h = prism_filter_sdk::testing::Harness::<FaceOverlay>::new();
        for faces in [
            vec![],
            vec![],
            vec![face(1, 2, 30)],
            vec![face(5, 2, 31)],
            vec![face(5, 2, 31), face(100, 2, 40)],
            vec![],
        ] {
            h.filter().report(&faces).unwrap();
        }
        let events = h.take_events();
        let counts: Vec<u64> = events
            .iter()
            .map(|(name, payload)| {
                assert_eq!(name, "FacesDetected");
                payload["count"].as_u64().unwrap()
            })
            .collect();
        assert_eq!(counts, [0, 1, 2, 0]);
        assert_eq!(
            events[1].1["faces"][0],
            serde_json::json!({"x": 1, "y": 2, "width": 30, "height": 30, "confidence": 0.9})
        );
    }

    #[test]
    fn outside_the_host_process_fails_clearly() {
        // Natively there is no detector: the error says so instead of pretending no face.
        let mut h = prism_filter_sdk::testing::Harness::<FaceOverlay>::new();
        let mut frame = prism_filter_sdk::FrameBuf::zeroed(PixelFormat::I420, 64, 48);
        let e = h.process(&mut frame, 0).unwrap_err();
        assert!(e.0.contains("Prism host"), "{e}");
    }
}
