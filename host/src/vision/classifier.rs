//! The character classifier: a small convolutional network over [`char_patch`] patches,
//! trained by `host/examples/train_plate_cnn.py` on the examples `host/examples/plate_glyphs.rs`
//! builds (recipe in `host/models/README.md`), committed as `host/models/plate-glyphs.bin` and
//! run here in plain Rust (about 1.4 M multiply-adds a glyph).
//!
//! 36 symbols (`0-9`, `A-Z`) and one more class, "not a character" (stickers, bolts, border
//! pieces, dashes), so rows can shed what is not part of the plate.
//!
//! [`char_patch`]: super::image::char_patch

use super::image::{PATCH_H, PATCH_LEN, PATCH_W};

/// The symbols, in class order; class `SYMBOLS.len()` is "not a character".
pub const SYMBOLS: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
/// Classes the network tells apart.
pub const CLASSES: usize = SYMBOLS.len() + 1;
/// The "not a character" class.
pub const NOISE: usize = SYMBOLS.len();

/// Class of a symbol, if it is one.
pub fn class_of(c: char) -> Option<usize> {
    let c = c.to_ascii_uppercase();
    SYMBOLS.iter().position(|&s| s as char == c)
}

const CNN_MAGIC: &[u8; 8] = b"PRISMCN1";

/// A small convolutional network over a patch, trained by `host/examples/train_plate_cnn.py`:
/// three 3x3 convolutions (ReLU; 2x2 max-pooling after the first two), a hidden dense layer and
/// the class layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Cnn {
    convs: [Conv; 3],
    hidden: usize,
    /// `hidden x flattened`, row-major; inputs in channel, row, column order.
    d1: Vec<f32>,
    e1: Vec<f32>,
    /// `CLASSES x hidden`.
    d2: Vec<f32>,
    e2: Vec<f32>,
}

/// A 3x3 zero-padded convolution followed by a ReLU.
#[derive(Debug, Clone, PartialEq)]
struct Conv {
    cin: usize,
    cout: usize,
    /// `cout x cin x 3 x 3`.
    w: Vec<f32>,
    b: Vec<f32>,
}

impl Conv {
    /// `input` is `cin` planes of `w x h`; returns `cout` planes.
    fn apply(&self, input: &[f32], w: usize, h: usize) -> Vec<f32> {
        let (pw, ph) = (w + 2, h + 2);
        let mut padded = vec![0f32; self.cin * pw * ph];
        for c in 0..self.cin {
            for y in 0..h {
                let src = &input[(c * h + y) * w..][..w];
                padded[(c * ph + y + 1) * pw + 1..][..w].copy_from_slice(src);
            }
        }
        let mut out = vec![0f32; self.cout * w * h];
        for (co, plane) in out.chunks_exact_mut(w * h).enumerate() {
            plane.fill(self.b[co]);
            for ci in 0..self.cin {
                let k = &self.w[(co * self.cin + ci) * 9..][..9];
                let src = &padded[ci * pw * ph..][..pw * ph];
                for y in 0..h {
                    let row = &mut plane[y * w..][..w];
                    for (ky, kr) in k.chunks_exact(3).enumerate() {
                        let s = &src[(y + ky) * pw..][..pw];
                        for (x, o) in row.iter_mut().enumerate() {
                            *o += kr[0] * s[x] + kr[1] * s[x + 1] + kr[2] * s[x + 2];
                        }
                    }
                }
            }
            plane.iter_mut().for_each(|v| *v = v.max(0.0));
        }
        out
    }
}

/// 2x2 max-pooling of `c` planes of `w x h` (even sizes).
fn pool(input: &[f32], c: usize, w: usize, h: usize) -> Vec<f32> {
    let (ow, oh) = (w / 2, h / 2);
    let mut out = vec![0f32; c * ow * oh];
    for ch in 0..c {
        for y in 0..oh {
            for x in 0..ow {
                let at = |dy: usize, dx: usize| input[(ch * h + 2 * y + dy) * w + 2 * x + dx];
                out[(ch * oh + y) * ow + x] = at(0, 0).max(at(0, 1)).max(at(1, 0)).max(at(1, 1));
            }
        }
    }
    out
}

impl Cnn {
    /// The model shipped with Prism (`host/models/plate-glyphs.bin`, embedded at build time).
    pub fn builtin() -> &'static Cnn {
        static MODEL: std::sync::OnceLock<Cnn> = std::sync::OnceLock::new();
        MODEL.get_or_init(|| {
            Cnn::from_bytes(include_bytes!("../../models/plate-glyphs.bin"))
                .expect("host/models/plate-glyphs.bin is a valid model")
        })
    }

    /// Serialises in the trainer's format.
    pub fn to_bytes(&self) -> Vec<u8> {
        let [c1, c2, c3] = self.convs.each_ref().map(|c| c.cout as u32);
        let mut v = CNN_MAGIC.to_vec();
        for n in [c1, c2, c3, self.hidden as u32, CLASSES as u32] {
            v.extend_from_slice(&n.to_le_bytes());
        }
        let tensors = self.convs.iter().flat_map(|c| [&c.w, &c.b]);
        for t in tensors.chain([&self.d1, &self.e1, &self.d2, &self.e2]) {
            for f in t.iter() {
                v.extend_from_slice(&f.to_le_bytes());
            }
        }
        v
    }

    /// Class probabilities of one patch.
    pub fn classify(&self, patch: &[f32; PATCH_LEN]) -> [f32; CLASSES] {
        let (w, h) = (PATCH_W, PATCH_H);
        let a = self.convs[0].apply(patch, w, h);
        let a = pool(&a, self.convs[0].cout, w, h);
        let (w, h) = (w / 2, h / 2);
        let a = self.convs[1].apply(&a, w, h);
        let a = pool(&a, self.convs[1].cout, w, h);
        let (w, h) = (w / 2, h / 2);
        let a = self.convs[2].apply(&a, w, h);
        let hid: Vec<f32> = self
            .d1
            .chunks_exact(a.len())
            .zip(&self.e1)
            .map(|(row, b)| (row.iter().zip(&a).map(|(p, q)| p * q).sum::<f32>() + b).max(0.0))
            .collect();
        let mut out = [0f32; CLASSES];
        for (k, o) in out.iter_mut().enumerate() {
            let row = &self.d2[k * self.hidden..][..self.hidden];
            *o = row.iter().zip(&hid).map(|(p, q)| p * q).sum::<f32>() + self.e2[k];
        }
        softmax(&mut out);
        out
    }

    /// Parses the file written by `train_plate_cnn.py`.
    pub fn from_bytes(b: &[u8]) -> Result<Cnn, String> {
        let head = b.get(..28).ok_or("model file too short")?;
        if &head[..8] != CNN_MAGIC {
            return Err("not a Prism convolutional character model".into());
        }
        let word =
            |i: usize| u32::from_le_bytes(head[8 + 4 * i..][..4].try_into().unwrap()) as usize;
        let (c1, c2, c3, hidden, classes) = (word(0), word(1), word(2), word(3), word(4));
        if classes != CLASSES || [c1, c2, c3, hidden].iter().any(|&n| n == 0 || n > 1024) {
            return Err(format!(
                "model shape {c1}/{c2}/{c3}/{hidden}/{classes} does not fit {CLASSES} classes"
            ));
        }
        let flat = c3 * (PATCH_W / 4) * (PATCH_H / 4);
        let sizes = [
            c1 * 9,
            c1,
            c2 * c1 * 9,
            c2,
            c3 * c2 * 9,
            c3,
            hidden * flat,
            hidden,
            classes * hidden,
            classes,
        ];
        let floats: Vec<f32> = b[28..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        if !b.len().is_multiple_of(4) || floats.len() != sizes.iter().sum::<usize>() {
            return Err("model file has the wrong length".into());
        }
        let mut it = floats.into_iter();
        let mut take = |n| it.by_ref().take(n).collect::<Vec<f32>>();
        let mut conv = |cin, cout| Conv {
            cin,
            cout,
            w: take(cout * cin * 9),
            b: take(cout),
        };
        let convs = [conv(1, c1), conv(c1, c2), conv(c2, c3)];
        Ok(Cnn {
            convs,
            hidden,
            d1: take(hidden * flat),
            e1: take(hidden),
            d2: take(classes * hidden),
            e2: take(classes),
        })
    }
}

fn softmax(v: &mut [f32]) {
    let max = v.iter().copied().fold(f32::MIN, f32::max);
    let mut sum = 0.0;
    for x in v.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    for x in v.iter_mut() {
        *x /= sum;
    }
}

/// A deterministic generator for training (xorshift64*), so a model can be rebuilt bit for bit.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }
    /// Uniform index below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f32 {
        let u = self.unit().max(1e-7);
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A network whose three convolutions copy their input shifted by `shift` (the kernel's
    /// only weight at row `shift.0`, column `shift.1`; (1, 1) is the centre), whose hidden
    /// layer copies the 7x5 cells and whose class `k < 35` is cell `k`.
    fn probe(shift: (usize, usize)) -> Cnn {
        let mut kernel = vec![0f32; 9];
        kernel[shift.0 * 3 + shift.1] = 1.0;
        let cells = (PATCH_W / 4) * (PATCH_H / 4);
        let mut d1 = vec![0f32; cells * cells];
        for k in 0..cells {
            d1[k * cells + k] = 1.0;
        }
        let mut d2 = vec![0f32; CLASSES * cells];
        for k in 0..cells {
            d2[k * cells + k] = 20.0;
        }
        let conv = |w: &[f32]| Conv {
            cin: 1,
            cout: 1,
            w: w.to_vec(),
            b: vec![0.0],
        };
        let centre = [0., 0., 0., 0., 1., 0., 0., 0., 0.];
        Cnn {
            convs: [conv(&kernel), conv(&centre), conv(&centre)],
            hidden: cells,
            d1,
            e1: vec![0.0; cells],
            d2,
            e2: vec![0.0; CLASSES],
        }
    }

    fn best(p: &[f32; CLASSES]) -> usize {
        (0..CLASSES).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap()
    }

    #[test]
    fn convolution_pooling_and_flattening_follow_the_trainer() {
        // One bright pixel at row 15, column 11.
        let mut patch = [0f32; PATCH_LEN];
        patch[15 * PATCH_W + 11] = 1.0;
        // The identity kernel keeps it in 4x4 cell (3, 2) = class 3 * 5 + 2.
        let p = probe((1, 1)).classify(&patch);
        assert_eq!(best(&p), 17);
        assert!(p[17] > 0.3, "{}", p[17]);
        // A kernel weighing the top-left neighbour (cross-correlation, as the trainer's
        // convolutions) moves it one down and right: cell (4, 3) = class 23. A flipped kernel
        // would have moved it up and left, into cell (3, 2) again.
        assert_eq!(best(&probe((0, 0)).classify(&patch)), 23);
        // The zero padding drops what is shifted out of the patch.
        let mut corner = [0f32; PATCH_LEN];
        corner[PATCH_LEN - 1] = 1.0;
        let p = probe((0, 0)).classify(&corner);
        assert!(p.iter().all(|&v| (v - 1.0 / CLASSES as f32).abs() < 1e-6));
        // And the file format round-trips.
        let net = probe((0, 0));
        assert_eq!(Cnn::from_bytes(&net.to_bytes()).unwrap(), net);
    }

    #[test]
    fn builtin_model_loads_and_reads_a_drawn_glyph() {
        let m = Cnn::builtin();
        assert_eq!(Cnn::from_bytes(&m.to_bytes()).unwrap(), *m);
        let p = m.classify(&[0.0; PATCH_LEN]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        // A thick vertical bar is a 1 (or an I), not a round glyph.
        let mut bar = [0f32; PATCH_LEN];
        for y in 2..26 {
            for x in 8..12 {
                bar[y * PATCH_W + x] = 1.0;
            }
        }
        let b = SYMBOLS[best(&m.classify(&bar))];
        assert!(b"1IJLT".contains(&b), "{}", b as char);
    }

    #[test]
    fn bad_model_files_are_refused() {
        assert!(Cnn::from_bytes(b"short").is_err());
        assert!(Cnn::from_bytes(b"NOTAMODEL___________________").is_err());
        let mut b = Cnn::builtin().to_bytes();
        b.pop();
        assert!(Cnn::from_bytes(&b).is_err());
        b.truncate(b.len() - 3);
        assert!(Cnn::from_bytes(&b).is_err());
        let mut huge = Cnn::builtin().to_bytes();
        huge[8..12].copy_from_slice(&5000u32.to_le_bytes());
        assert!(Cnn::from_bytes(&huge).is_err());
    }
}
