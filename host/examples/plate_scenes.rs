//! Turns labelled plate crops into a second test set for `prism bench plates` (a development
//! aid): each crop of `DIR/groundtruth.csv` (`FILE,STATE,PLATE`, as in
//! `../shared/data/alpr/ocr-us`) is shrunk to a plate 90-170 px wide, the size of plates in
//! street photos, and pasted at a random place into a 640x480 picture of its own darkened mean
//! colour; `OUT/us/NAME.jpg` + `NAME.txt` hold the picture and the plate's box and text.
//!
//! ```text
//! cargo run --release -p prism --example plate_scenes -- ../shared/data/alpr/ocr-us /tmp/scenes
//! prism bench plates --data /tmp/scenes --native
//! ```
//!
//! The 751 crops are of many states and cars other than the photos', so a change to the
//! reader that holds up here is not fitted to the photos. The classifier was trained on most of
//! these glyphs, so read rates over them all compare readers but are no accuracy figure;
//! `--held-out` writes only the fifth of the crops its training kept out
//! ([`held_out_crop`]), placed as in the full set: plates the classifier never saw.
//!
//! ```text
//! cargo run --release -p prism --example plate_scenes -- ../shared/data/alpr/ocr-us /tmp/held --held-out
//! ```

use std::path::PathBuf;

use anyhow::{Context, bail};
use opencv::core::{Mat, Rect as CvRect, Scalar, Size, Vector};
use opencv::prelude::*;
use opencv::{imgcodecs, imgproc};
use prism::vision::classifier::{Rng, held_out_crop};

const WIDTH: i32 = 640;
const HEIGHT: i32 = 480;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(out)) = (args.next(), args.next()) else {
        bail!("usage: plate_scenes CROPS_DIR OUT_DIR [--held-out]");
    };
    let only_held_out = match args.next().as_deref() {
        None => false,
        Some("--held-out") => true,
        Some(other) => bail!("unknown option {other} (--held-out)"),
    };
    let (dir, out) = (PathBuf::from(dir), PathBuf::from(out).join("us"));
    std::fs::create_dir_all(&out)?;
    let csv = std::fs::read_to_string(dir.join("groundtruth.csv"))
        .with_context(|| format!("reading {}/groundtruth.csv", dir.display()))?;
    let mut rng = Rng::new(1);
    let mut n = 0;
    for (i, line) in csv.lines().enumerate() {
        let f: Vec<&str> = line.trim().split(',').collect();
        let [file, _state, plate] = f[..] else {
            continue;
        };
        let path = dir.join(file);
        let crop = imgcodecs::imread(&path, imgcodecs::IMREAD_COLOR)?;
        if crop.empty() {
            bail!("cannot read {}", path.display());
        }
        let w = 90 + rng.below(81) as i32;
        let h = ((crop.rows() * w) as f32 / crop.cols() as f32).round() as i32;
        if h + 140 > HEIGHT {
            continue;
        }
        let mut small = Mat::default();
        imgproc::resize(
            &crop,
            &mut small,
            Size::new(w, h),
            0.0,
            0.0,
            imgproc::INTER_AREA,
        )?;
        let mean = opencv::core::mean(&small, &opencv::core::no_array())?;
        let fill = Scalar::new(mean[0] * 0.7, mean[1] * 0.7, mean[2] * 0.7, 0.0);
        let mut scene = Mat::new_rows_cols_with_default(HEIGHT, WIDTH, small.typ(), fill)?;
        let x = 20 + rng.below((WIDTH - w - 40) as usize) as i32;
        let y = 100 + rng.below((HEIGHT - h - 140) as usize) as i32;
        // Every crop draws its place, so the held-out ones sit where they do in the full set.
        if only_held_out && !held_out_crop(i) {
            continue;
        }
        small.copy_to(&mut Mat::roi_mut(&mut scene, CvRect::new(x, y, w, h))?)?;
        let name = file.trim_end_matches(".png");
        let jpg = out.join(format!("{name}.jpg"));
        let params = Vector::from_slice(&[imgcodecs::IMWRITE_JPEG_QUALITY, 90]);
        imgcodecs::imwrite(&jpg, &scene, &params)?;
        std::fs::write(
            out.join(format!("{name}.txt")),
            format!("{name}.jpg\t{x}\t{y}\t{w}\t{h}\t{plate}\n"),
        )?;
        n += 1;
    }
    println!("wrote {n} pictures to {}", out.display());
    Ok(())
}
