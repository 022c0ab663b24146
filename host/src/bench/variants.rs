//! `prism bench plates --variants`: the labelled photos again as other cameras and other days
//! would have taken them, a check that the reader generalises beyond the photos it was
//! developed on. Each variant is mild (a person reads every plate as easily as before); a
//! reader tuned to the exact pixels of its dev photos loses far more of them than one that
//! reads plates.

use anyhow::bail;
use opencv::core::{BORDER_REPLICATE, Mat, Point2f, Scalar, Size, Vector};
use opencv::prelude::*;
use opencv::{imgcodecs, imgproc};
use prism_frame::{FrameBuf, PixelFormat};

use super::plates::{BBox, fit};

/// One way the photos are changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Shrunk to three quarters (a camera farther away or of fewer pixels).
    Shrunk,
    /// The luma re-encoded as a JPEG of quality 35 (a cheap camera, a busy link).
    Jpeg,
    /// Turned by 3 or 4 degrees either way about the plate (a camera or a road at a slant).
    Turned,
    /// Luma at 55 % (dusk, an underexposed camera).
    Dimmed,
    /// A Gaussian blur of one pixel (focus, motion).
    Blurred,
}

impl Variant {
    /// Every variant, in the order they are reported.
    pub const ALL: [Variant; 5] = [
        Variant::Shrunk,
        Variant::Jpeg,
        Variant::Turned,
        Variant::Dimmed,
        Variant::Blurred,
    ];

    /// The name reports use.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Shrunk => "shrunk 0.75",
            Variant::Jpeg => "jpeg q35",
            Variant::Turned => "turned 3-4 deg",
            Variant::Dimmed => "dimmed 0.55",
            Variant::Blurred => "blurred 1 px",
        }
    }

    /// The photo `index` of a set changed, and its plate's box with it. Only I420 and gray
    /// frames (what plate filters take) can be changed.
    pub fn apply(
        self,
        mut photo: FrameBuf,
        truth: BBox,
        index: usize,
    ) -> anyhow::Result<(FrameBuf, BBox)> {
        if !matches!(photo.format(), PixelFormat::I420 | PixelFormat::Gray8) {
            bail!(
                "--variants changes I420 or gray frames, not {}",
                photo.format().name()
            );
        }
        match self {
            Variant::Shrunk => {
                let size = (
                    (photo.width() as f64 * 0.75) as u32,
                    (photo.height() as f64 * 0.75) as u32,
                );
                let (small, f) = fit(photo, size)?;
                return Ok((small, truth.scaled(f)));
            }
            Variant::Jpeg => on_plane(&mut photo, 0, |luma| {
                let mut jpg = Vector::<u8>::new();
                let quality = Vector::from_slice(&[imgcodecs::IMWRITE_JPEG_QUALITY, 35]);
                imgcodecs::imencode(".jpg", luma, &mut jpg, &quality)?;
                imgcodecs::imdecode(&jpg, imgcodecs::IMREAD_GRAYSCALE)
            })?,
            Variant::Turned => {
                let angle = [-4.0, 3.0, -3.0, 4.0][index % 4];
                let centre = (truth.x + truth.w / 2.0, truth.y + truth.h / 2.0);
                for plane in 0..photo.planes().len() {
                    // Chroma planes of I420 are half the size.
                    let k = photo.planes()[plane].width as f64 / photo.width() as f64;
                    on_plane(&mut photo, plane, |p| {
                        let c = Point2f::new((centre.0 * k) as f32, (centre.1 * k) as f32);
                        let turn = imgproc::get_rotation_matrix_2d(c, angle, 1.0)?;
                        let mut out = Mat::default();
                        imgproc::warp_affine(
                            p,
                            &mut out,
                            &turn,
                            p.size()?,
                            imgproc::INTER_LINEAR,
                            BORDER_REPLICATE,
                            Scalar::default(),
                        )?;
                        Ok(out)
                    })?;
                }
            }
            Variant::Dimmed => photo
                .plane_mut(0)
                .iter_mut()
                .for_each(|v| *v = (f32::from(*v) * 0.55).round() as u8),
            Variant::Blurred => on_plane(&mut photo, 0, |luma| {
                let mut out = Mat::default();
                imgproc::gaussian_blur(
                    luma,
                    &mut out,
                    Size::new(0, 0),
                    1.0,
                    1.0,
                    BORDER_REPLICATE,
                )?;
                Ok(out)
            })?,
        }
        Ok((photo, truth))
    }
}

/// Replaces plane `index` of `frame` with `change` of it (a one-channel picture of the same
/// size).
fn on_plane(
    frame: &mut FrameBuf,
    index: usize,
    change: impl FnOnce(&Mat) -> opencv::Result<Mat>,
) -> anyhow::Result<()> {
    let p = frame.planes()[index];
    let (w, h, stride) = (p.width as usize, p.height as usize, p.stride as usize);
    let tight: Vec<u8> = frame
        .plane(index)
        .chunks(stride)
        .take(h)
        .flat_map(|row| &row[..w])
        .copied()
        .collect();
    let src = Mat::new_rows_cols_with_data(h as i32, w as i32, &tight)?.try_clone()?;
    let out = change(&src)?;
    if out.rows() as usize != h || out.cols() as usize != w || out.channels() != 1 {
        bail!("a changed plane of another size");
    }
    let out = out.try_clone()?;
    let bytes = out.data_bytes()?;
    for (row, new) in frame.rows_mut(index).zip(bytes.chunks_exact(w)) {
        row[..w].copy_from_slice(new);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prism_frame::{Color, Rect};

    fn photo() -> FrameBuf {
        let mut f = FrameBuf::filled(PixelFormat::I420, 200, 100, Color::rgb(200, 200, 200));
        f.fill_rect(Rect::new(80, 40, 40, 20), Color::rgb(20, 20, 20));
        f
    }

    const PLATE: BBox = BBox {
        x: 80.0,
        y: 40.0,
        w: 40.0,
        h: 20.0,
    };

    #[test]
    fn variants_change_the_photo_and_keep_its_plate_in_the_box() {
        crate::media::init().unwrap();
        let luma = |f: &FrameBuf, x: u32, y: u32| f.plane(0)[(y * f.width() + x) as usize];
        let before = photo();
        let (light, dark) = (luma(&before, 10, 10), luma(&before, 100, 50));
        for v in Variant::ALL {
            let (after, truth) = v.apply(photo(), PLATE, 0).unwrap();
            let (cx, cy) = (
                (truth.x + truth.w / 2.0) as u32,
                (truth.y + truth.h / 2.0) as u32,
            );
            // The plate's middle stays dark and the background light (dimmed: both darker).
            let (bg, ink) = (luma(&after, 5, 5), luma(&after, cx, cy));
            assert!(ink < 40 && bg > 90, "{}: {bg} {ink}", v.name());
            match v {
                Variant::Shrunk => {
                    // (frames keep even sides)
                    assert_eq!((after.width(), after.height()), (150, 74));
                    assert_eq!((truth.x, truth.w), (60.0, 30.0));
                }
                Variant::Dimmed => assert_eq!(bg, (f32::from(light) * 0.55).round() as u8),
                // Turned, the plate's edges are no longer where they were.
                Variant::Turned => {
                    let moved = (0..100)
                        .flat_map(|y| (0..200).map(move |x| (x, y)))
                        .filter(|&(x, y)| luma(&after, x, y).abs_diff(luma(&before, x, y)) > 60)
                        .count();
                    assert!(moved > 20, "{moved}");
                }
                // Its edge is no longer sharp.
                Variant::Blurred => {
                    let edge = luma(&after, 80, 50);
                    assert!(edge > dark + 20 && edge < light - 20, "{edge}");
                }
                Variant::Jpeg => assert_eq!(truth, PLATE),
            }
        }
        // Only frames plate filters take.
        let rgba = FrameBuf::filled(PixelFormat::Rgba, 8, 8, Color::rgb(0, 0, 0));
        assert!(Variant::Jpeg.apply(rgba, PLATE, 0).is_err());
    }
}
