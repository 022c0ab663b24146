//! Tilted copies of a labelled folder for `prism bench plates` (a development aid): every
//! `SET/NAME.jpg` + `NAME.txt` of `DIR` (as in `../shared/data/alpr`) is turned about its
//! plate's centre by `DEGREES`, alternately clockwise and counter-clockwise in name order, and
//! written to `OUT/SET/` with the upright box about the turned plate.
//!
//! ```text
//! cargo run --release -p prism --example plate_tilted -- ../shared/data/alpr /tmp/tilted 8
//! prism bench plates --data /tmp/tilted --native
//! ```
//!
//! Cameras above a lane or at a gate see plates turned by a few degrees; the photos of the dev
//! sets are nearly all level, so this set shows what a tilt costs the reader.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use opencv::core::{BORDER_REPLICATE, Mat, Point2f, Scalar, Vector};
use opencv::prelude::*;
use opencv::{imgcodecs, imgproc};
use prism::vision::Turn;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(out)) = (args.next(), args.next()) else {
        bail!("usage: plate_tilted DIR OUT_DIR [DEGREES]");
    };
    let degrees: f32 = args.next().map_or(Ok(8.0), |d| d.parse())?;
    let (dir, out) = (PathBuf::from(dir), PathBuf::from(out));
    let mut n = 0;
    for set in std::fs::read_dir(&dir)? {
        let set = set?.path();
        if !set.is_dir() {
            continue;
        }
        let mut labels: Vec<PathBuf> = std::fs::read_dir(&set)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        labels.retain(|p| p.extension().is_some_and(|e| e == "txt"));
        labels.sort();
        if labels.is_empty() {
            continue;
        }
        let target = out.join(set.file_name().context("a set folder")?);
        std::fs::create_dir_all(&target)?;
        for (i, label) in labels.iter().enumerate() {
            let sign = if i % 2 == 0 { 1.0 } else { -1.0 };
            tilt(label, &set, &target, sign * degrees)?;
            n += 1;
        }
    }
    println!(
        "{n} pictures tilted by {degrees} degrees into {}",
        out.display()
    );
    Ok(())
}

/// Writes the picture of `label` (in `set`) turned by `degrees` about its plate, and its label.
fn tilt(label: &Path, set: &Path, target: &Path, degrees: f32) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(label)?;
    let f: Vec<&str> = text.split_whitespace().collect();
    let [file, x, y, w, h, plate] = f[..] else {
        bail!("{}: not `NAME.jpg X Y W H PLATE`", label.display());
    };
    let [x, y, w, h] = [x, y, w, h].map(|v| v.parse::<f32>().unwrap_or(0.0));
    let photo = imgcodecs::imread(set.join(file), imgcodecs::IMREAD_COLOR)?;
    if photo.empty() {
        bail!("cannot read {}", set.join(file).display());
    }
    let centre = Point2f::new(x + w / 2.0, y + h / 2.0);
    let turn = imgproc::get_rotation_matrix_2d(centre, f64::from(degrees), 1.0)?;
    let mut turned = Mat::default();
    imgproc::warp_affine(
        &photo,
        &mut turned,
        &turn,
        photo.size()?,
        imgproc::INTER_CUBIC,
        BORDER_REPLICATE,
        Scalar::default(),
    )?;
    // The box about the plate turned as the picture was.
    let size = (photo.cols() as f32, photo.rows() as f32);
    let [left, top, width, height] =
        Turn::new((centre.x, centre.y), degrees).bounds([x, y, w, h], size);
    let params = Vector::from_slice(&[imgcodecs::IMWRITE_JPEG_QUALITY, 95]);
    let path = target.join(file);
    if !imgcodecs::imwrite(&path, &turned, &params)? {
        bail!("cannot write {}", path.display());
    }
    std::fs::write(
        target.join(label.file_name().context("a label file")?),
        format!(
            "{file}\t{}\t{}\t{}\t{}\t{plate}\n",
            left.round(),
            top.round(),
            width.round(),
            height.round()
        ),
    )?;
    Ok(())
}
