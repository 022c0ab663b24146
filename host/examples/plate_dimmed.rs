//! Dimmed copies of a labelled folder for `prism bench plates` (a development aid): every
//! photo of `DIR` (sets as in `../shared/data/alpr`) is darkened as by an underexposed camera,
//! its light scaled by `LIGHT` and then its contrast about the mean cut to `CONTRAST`, and
//! written with its label to `OUT/SET/`.
//!
//! ```text
//! cargo run --release -p prism --example plate_dimmed -- ../shared/data/alpr /tmp/dim 0.6 0.7
//! prism bench plates --data /tmp/dim --native
//! ```
//!
//! The dev photos are nearly all taken in daylight; this set shows what dusk, shade or a
//! cheap camera's exposure costs the reader.

use std::path::PathBuf;

use anyhow::{Context, bail};
use opencv::core::{Mat, Vector};
use opencv::prelude::*;
use opencv::{core, imgcodecs};
use prism::bench::plates::load_sets;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(out)) = (args.next(), args.next()) else {
        bail!("usage: plate_dimmed DIR OUT_DIR [LIGHT [CONTRAST]]");
    };
    let light: f64 = args.next().map_or(Ok(0.6), |v| v.parse())?;
    let contrast: f64 = args.next().map_or(Ok(0.7), |v| v.parse())?;
    let (dir, out) = (PathBuf::from(dir), PathBuf::from(out));
    let mut n = 0;
    for (set, samples) in load_sets(&dir)? {
        let target = out.join(&set);
        std::fs::create_dir_all(&target)?;
        for s in samples {
            let photo = imgcodecs::imread(&s.image, imgcodecs::IMREAD_COLOR)?;
            if photo.empty() {
                bail!("cannot read {}", s.image.display());
            }
            // v' = m + (light v - m) contrast, m the mean of the darkened picture.
            let mean = core::mean(&photo, &core::no_array())?;
            let m = light * (mean[0] + mean[1] + mean[2]) / 3.0;
            let mut dim = Mat::default();
            photo.convert_to(&mut dim, -1, light * contrast, m * (1.0 - contrast))?;
            let name = s.image.file_name().context("a photo's name")?;
            imgcodecs::imwrite(target.join(name), &dim, &Vector::new())?;
            let b = s.truth;
            let label = format!(
                "{}\t{}\t{}\t{}\t{}\t{}\n",
                name.to_string_lossy(),
                b.x,
                b.y,
                b.w,
                b.h,
                s.plate
            );
            std::fs::write(target.join(name).with_extension("txt"), label)?;
            n += 1;
        }
    }
    println!(
        "{n} pictures at {light} light and {contrast} contrast into {}",
        out.display()
    );
    Ok(())
}
