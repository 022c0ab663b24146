//! Prints the plate candidates and readings of one image (a development aid): `CHARS=1`
//! each reading's glyphs, `RAW=1` each candidate's top classes, `MAX=N` readings, `FIT=WxH`
//! the picture shrunk as `prism bench plates --max-size` shrinks it.
use prism::media::Decoder;
use prism::vision::{self, GrayImage, PlateOptions};
use prism_frame::PixelFormat;

fn main() -> anyhow::Result<()> {
    let mut a = std::env::args().skip(1);
    let path = a.next().expect("IMAGE [REGION]");
    let region = a
        .next()
        .unwrap_or_else(|| "auto".into())
        .parse()
        .map_err(anyhow::Error::msg)?;
    prism::media::init()?;
    // `I420=1` decodes with colour, as the bench does.
    let format = if std::env::var_os("I420").is_some() {
        PixelFormat::I420
    } else {
        PixelFormat::Gray8
    };
    let mut d = Decoder::open(path.as_ref(), format)?;
    let mut buf = d.next_frame()?.expect("a picture").buf;
    // `FIT=640x480` shrinks the picture as `prism bench plates --max-size` does.
    if let Ok(size) = std::env::var("FIT") {
        let size = prism::bench::plates::parse_size(&size).map_err(anyhow::Error::msg)?;
        buf = prism::bench::plates::fit(buf, size)?.0;
    }
    let img = GrayImage::of_frame(&buf).expect("gray");
    // `MAX=N` reports up to N plates (default 4, as the filter).
    let max_results = std::env::var("MAX")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(PlateOptions::default().max_results);
    let opts = PlateOptions {
        region,
        max_results,
        ..PlateOptions::default()
    };
    for c in vision::find_candidates(&img, &opts)? {
        let r = vision::read_plate(&img, &c, &opts);
        if std::env::var_os("RAW").is_some() {
            let m = vision::classifier::Cnn::builtin();
            for ch in &c.chars {
                let p = m.classify(&vision::char_patch(&img, *ch, !c.inverted));
                let mut idx: Vec<usize> = (0..p.len()).collect();
                idx.sort_by(|a, b| p[*b].total_cmp(&p[*a]));
                let name = |i: usize| {
                    vision::classifier::SYMBOLS
                        .get(i)
                        .map_or('#', |&s| s as char)
                };
                print!(
                    " [{}]",
                    idx[..3]
                        .iter()
                        .map(|&i| format!("{}{:.2}", name(i), p[i]))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
            }
            println!();
        }
        if std::env::var_os("DUMP").is_some() && r.as_ref().is_some_and(|r| r.text.len() >= 5) {
            for (i, ch) in c.chars.iter().enumerate() {
                let p = vision::char_patch(&img, *ch, !c.inverted);
                let mut pgm = b"P5 20 28 255\n".to_vec();
                pgm.extend(p.iter().map(|v| (v * 255.0) as u8));
                std::fs::write(format!("/tmp/dbg/{}_{i}.pgm", c.bounds.x), pgm)?;
            }
        }
        if std::env::var_os("CHARS").is_some() {
            println!(
                "chars {:?}",
                c.chars
                    .iter()
                    .map(|r| (r.x, r.y, r.width, r.height))
                    .collect::<Vec<_>>()
            );
        }
        println!(
            "cand {:?} n={} inv={} score={:.2} -> {:?}",
            c.bounds,
            c.chars.len(),
            c.inverted,
            c.score,
            r.map(|r| (
                r.text,
                r.confidence,
                r.chars.iter().map(|c| c.guesses[0]).collect::<Vec<_>>()
            ))
        );
    }
    for r in vision::detect_plates(&img, &opts)? {
        println!("detected {} {:.2} {:?}", r.text, r.confidence, r.bounds);
        if std::env::var_os("CHARS").is_some() {
            for c in &r.chars {
                let b = c.bounds;
                println!(
                    "  {:?} {},{} {}x{}",
                    c.guesses.first(),
                    b.x,
                    b.y,
                    b.width,
                    b.height
                );
            }
        }
    }
    Ok(())
}
