//! The character classifier: a small two-layer perceptron over [`char_patch`] patches, trained
//! by `host/examples/train_plate_reader.rs` (recipe in `host/models/README.md`) and committed as
//! `host/models/plate-chars.bin`.
//!
//! 36 symbols (`0-9`, `A-Z`) and one more class, "not a character" (stickers, bolts, border
//! pieces, dashes), so rows can shed what is not part of the plate.
//!
//! [`char_patch`]: super::image::char_patch

use super::image::{PATCH_H, PATCH_LEN, PATCH_W};

/// Orientation bins of the gradient histograms.
const HOG_BINS: usize = 9;
/// Cell size of the gradient histograms, pixels.
const HOG_CELL: usize = 4;
/// Gradient-histogram features of a patch.
const HOG_LEN: usize = (PATCH_W / HOG_CELL) * (PATCH_H / HOG_CELL) * HOG_BINS;
/// Inputs of the network: the patch's pixels, then its gradient histograms.
pub const INPUTS: usize = PATCH_LEN + HOG_LEN;

/// The network's inputs for a patch: its pixels and histograms of gradient orientations per
/// 4x4 cell (unsigned, 9 bins), which stay the same under changes of contrast and small blur.
pub fn features(patch: &[f32; PATCH_LEN]) -> Vec<f32> {
    let mut out = Vec::with_capacity(INPUTS);
    out.extend_from_slice(patch);
    let at = |x: isize, y: isize| {
        if x < 0 || y < 0 || x >= PATCH_W as isize || y >= PATCH_H as isize {
            0.0
        } else {
            patch[y as usize * PATCH_W + x as usize]
        }
    };
    let cells_x = PATCH_W / HOG_CELL;
    let mut hog = [0f32; HOG_LEN];
    for y in 0..PATCH_H {
        for x in 0..PATCH_W {
            let (xi, yi) = (x as isize, y as isize);
            let gx = at(xi + 1, yi) - at(xi - 1, yi);
            let gy = at(xi, yi + 1) - at(xi, yi - 1);
            let mag = (gx * gx + gy * gy).sqrt();
            if mag < 1e-6 {
                continue;
            }
            let mut angle = gy.atan2(gx);
            if angle < 0.0 {
                angle += std::f32::consts::PI;
            }
            let bin = ((angle / std::f32::consts::PI * HOG_BINS as f32) as usize).min(HOG_BINS - 1);
            let cell = (y / HOG_CELL) * cells_x + x / HOG_CELL;
            hog[cell * HOG_BINS + bin] += mag;
        }
    }
    let norm = hog.iter().map(|v| v * v).sum::<f32>().sqrt() + 1e-3;
    out.extend(hog.iter().map(|v| v / norm * 4.0));
    out
}

/// The symbols, in class order; class `SYMBOLS.len()` is "not a character".
pub const SYMBOLS: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
/// Classes the network tells apart.
pub const CLASSES: usize = SYMBOLS.len() + 1;
/// The "not a character" class.
pub const NOISE: usize = SYMBOLS.len();

const MAGIC: &[u8; 8] = b"PRISMCH1";

/// Class of a symbol, if it is one.
pub fn class_of(c: char) -> Option<usize> {
    let c = c.to_ascii_uppercase();
    SYMBOLS.iter().position(|&s| s as char == c)
}

/// The networks shipped with Prism, whose probabilities are averaged: one over pixels and
/// gradient histograms (`plate-chars.bin`), one over pixels only (`plate-chars-px.bin`).
/// Trained alike, they err on different glyphs.
#[derive(Debug, Clone, PartialEq)]
pub struct Ensemble {
    members: Vec<Classifier>,
}

impl Ensemble {
    /// The models shipped with Prism.
    pub fn builtin() -> &'static Ensemble {
        static MODELS: std::sync::OnceLock<Ensemble> = std::sync::OnceLock::new();
        MODELS.get_or_init(|| Ensemble {
            members: vec![
                Classifier::from_bytes(include_bytes!("../../models/plate-chars.bin"))
                    .expect("host/models/plate-chars.bin is a valid model"),
                Classifier::from_bytes(include_bytes!("../../models/plate-chars-px.bin"))
                    .expect("host/models/plate-chars-px.bin is a valid model"),
            ],
        })
    }

    /// Mean class probabilities of the members.
    pub fn classify(&self, patch: &[f32; PATCH_LEN]) -> [f32; CLASSES] {
        let mut sum = [0f32; CLASSES];
        for m in &self.members {
            for (s, p) in sum.iter_mut().zip(m.classify(patch)) {
                *s += p;
            }
        }
        let n = self.members.len().max(1) as f32;
        sum.map(|s| s / n)
    }
}

/// A trained network.
#[derive(Debug, Clone, PartialEq)]
pub struct Classifier {
    hidden: usize,
    /// [`INPUTS`] (pixels and gradient histograms) or [`PATCH_LEN`] (pixels only).
    inputs: usize,
    /// `hidden x INPUTS`, row-major.
    w1: Vec<f32>,
    b1: Vec<f32>,
    /// `CLASSES x hidden`.
    w2: Vec<f32>,
    b2: Vec<f32>,
}

impl Classifier {
    /// Class probabilities of one patch.
    pub fn classify(&self, patch: &[f32; PATCH_LEN]) -> [f32; CLASSES] {
        let x = if self.inputs == INPUTS {
            features(patch)
        } else {
            patch.to_vec()
        };
        let mut h = vec![0f32; self.hidden];
        self.hidden_layer(&x, &mut h);
        let mut out = [0f32; CLASSES];
        self.output_layer(&h, &mut out);
        out
    }

    fn hidden_layer(&self, x: &[f32], h: &mut [f32]) {
        for (j, hj) in h.iter_mut().enumerate() {
            let w = &self.w1[j * self.inputs..(j + 1) * self.inputs];
            let s: f32 = w.iter().zip(x).map(|(a, b)| a * b).sum::<f32>() + self.b1[j];
            *hj = s.max(0.0);
        }
    }

    fn output_layer(&self, h: &[f32], out: &mut [f32; CLASSES]) {
        for (k, o) in out.iter_mut().enumerate() {
            let w = &self.w2[k * self.hidden..(k + 1) * self.hidden];
            *o = w.iter().zip(h).map(|(a, b)| a * b).sum::<f32>() + self.b2[k];
        }
        softmax(out);
    }

    /// Serialises: magic, hidden size, then the four tensors as little-endian f32.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(16 + 4 * (self.w1.len() + self.w2.len()));
        v.extend_from_slice(MAGIC);
        v.extend_from_slice(&(self.hidden as u32).to_le_bytes());
        v.extend_from_slice(&(self.inputs as u32).to_le_bytes());
        v.extend_from_slice(&(CLASSES as u32).to_le_bytes());
        for t in [&self.w1, &self.b1, &self.w2, &self.b2] {
            for f in t.iter() {
                v.extend_from_slice(&f.to_le_bytes());
            }
        }
        v
    }

    /// Parses [`Classifier::to_bytes`].
    pub fn from_bytes(b: &[u8]) -> Result<Classifier, String> {
        let head = b.get(..20).ok_or("model file too short")?;
        if &head[..8] != MAGIC {
            return Err("not a Prism character model".into());
        }
        let word = |i: usize| u32::from_le_bytes(head[i..i + 4].try_into().unwrap()) as usize;
        let (hidden, inputs, classes) = (word(8), word(12), word(16));
        if ![INPUTS, PATCH_LEN].contains(&inputs)
            || classes != CLASSES
            || hidden == 0
            || hidden > 4096
        {
            return Err(format!(
                "model shape {inputs}x{hidden}x{classes} does not match {INPUTS} or {PATCH_LEN} \
                 inputs x ? x {CLASSES}"
            ));
        }
        let floats: Vec<f32> = b[20..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let sizes = [hidden * inputs, hidden, classes * hidden, classes];
        if floats.len() != sizes.iter().sum::<usize>() {
            return Err("model file has the wrong length".into());
        }
        let mut it = floats.into_iter();
        let mut take = |n| it.by_ref().take(n).collect::<Vec<f32>>();
        Ok(Classifier {
            hidden,
            inputs,
            w1: take(sizes[0]),
            b1: take(sizes[1]),
            w2: take(sizes[2]),
            b2: take(sizes[3]),
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

/// Training settings.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub hidden: usize,
    /// Inputs: pixels and gradient histograms (true) or pixels only.
    pub gradients: bool,
    pub epochs: usize,
    pub learning_rate: f32,
    pub seed: u64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            hidden: 224,
            gradients: true,
            epochs: 24,
            learning_rate: 0.003,
            seed: 7,
        }
    }
}

/// Trains on `(patch, class)` pairs with momentum SGD and cross-entropy; `progress` hears
/// (epoch, training accuracy).
pub fn train(
    samples: &[([f32; PATCH_LEN], u8)],
    opts: &TrainOptions,
    mut progress: impl FnMut(usize, f32),
) -> Classifier {
    let mut rng = Rng::new(opts.seed);
    let hid = opts.hidden;
    let n_in = if opts.gradients { INPUTS } else { PATCH_LEN };
    let scale1 = (2.0 / n_in as f32).sqrt();
    let scale2 = (2.0 / hid as f32).sqrt();
    let mut net = Classifier {
        hidden: hid,
        inputs: n_in,
        w1: (0..hid * n_in).map(|_| rng.normal() * scale1).collect(),
        b1: vec![0.0; hid],
        w2: (0..CLASSES * hid).map(|_| rng.normal() * scale2).collect(),
        b2: vec![0.0; CLASSES],
    };
    let mut v1 = vec![0f32; net.w1.len()];
    let mut vb1 = vec![0f32; hid];
    let mut v2 = vec![0f32; net.w2.len()];
    let mut vb2 = [0f32; CLASSES];
    let inputs: Vec<Vec<f32>> = samples
        .iter()
        .map(|(p, _)| {
            if opts.gradients {
                features(p)
            } else {
                p.to_vec()
            }
        })
        .collect();
    let mut order: Vec<usize> = (0..samples.len()).collect();
    let mut h = vec![0f32; hid];
    let mut dh = vec![0f32; hid];
    const MOMENTUM: f32 = 0.9;
    const DECAY: f32 = 1e-5;
    for epoch in 0..opts.epochs {
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i + 1));
        }
        // Cosine-free step decay: the last third of the epochs at a tenth of the rate.
        let lr = if epoch * 3 >= opts.epochs * 2 {
            opts.learning_rate * 0.1
        } else {
            opts.learning_rate
        };
        let mut correct = 0usize;
        for &idx in &order {
            let x = &inputs[idx];
            let y = samples[idx].1 as usize;
            net.hidden_layer(x, &mut h);
            let mut p = [0f32; CLASSES];
            net.output_layer(&h, &mut p);
            let argmax = (0..CLASSES)
                .max_by(|&a, &b| p[a].total_cmp(&p[b]))
                .unwrap_or(0);
            correct += usize::from(argmax == y);
            // dL/dlogits = p - onehot
            p[y] -= 1.0;
            dh.iter_mut().for_each(|d| *d = 0.0);
            for k in 0..CLASSES {
                let g = p[k];
                let row = k * hid;
                for j in 0..hid {
                    dh[j] += g * net.w2[row + j];
                    let grad = g * h[j] + DECAY * net.w2[row + j];
                    v2[row + j] = MOMENTUM * v2[row + j] - lr * grad;
                    net.w2[row + j] += v2[row + j];
                }
                vb2[k] = MOMENTUM * vb2[k] - lr * g;
                net.b2[k] += vb2[k];
            }
            for j in 0..hid {
                if h[j] <= 0.0 {
                    continue;
                }
                let g = dh[j];
                let row = j * n_in;
                let w = &mut net.w1[row..row + n_in];
                let v = &mut v1[row..row + n_in];
                for ((wi, vi), xi) in w.iter_mut().zip(v.iter_mut()).zip(x.iter()) {
                    *vi = MOMENTUM * *vi - lr * (g * xi + DECAY * *wi);
                    *wi += *vi;
                }
                vb1[j] = MOMENTUM * vb1[j] - lr * g;
                net.b1[j] += vb1[j];
            }
        }
        progress(epoch, correct as f32 / samples.len().max(1) as f32);
    }
    net
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_models_load_and_round_trip() {
        let e = Ensemble::builtin();
        assert_eq!(e.members.len(), 2);
        assert_eq!(
            e.members.iter().map(|m| m.inputs).collect::<Vec<_>>(),
            [INPUTS, PATCH_LEN]
        );
        for m in &e.members {
            assert_eq!(Classifier::from_bytes(&m.to_bytes()).unwrap(), *m);
        }
        let p = e.classify(&[0.0; PATCH_LEN]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    }

    #[test]
    fn bad_model_files_are_refused() {
        assert!(Classifier::from_bytes(b"short").is_err());
        assert!(Classifier::from_bytes(b"NOTAMODEL___________").is_err());
        let mut b = Ensemble::builtin().members[0].to_bytes();
        b.pop();
        assert!(Classifier::from_bytes(&b).is_err());
    }

    #[test]
    fn learns_two_separable_shapes() {
        // Left-half ink is "1", right-half ink is "7"; a few epochs tell them apart.
        let mut rng = Rng::new(3);
        let samples: Vec<([f32; PATCH_LEN], u8)> = (0..200)
            .map(|i| {
                let mut x = [0f32; PATCH_LEN];
                let right = i % 2 == 1;
                for (k, v) in x.iter_mut().enumerate() {
                    let col = k % 20;
                    if (col >= 10) == right {
                        *v = 0.8 + 0.2 * rng.unit();
                    }
                }
                (x, if right { 7 } else { 1 })
            })
            .collect();
        let opts = TrainOptions {
            hidden: 8,
            gradients: true,
            epochs: 4,
            learning_rate: 0.01,
            seed: 1,
        };
        let m = train(&samples, &opts, |_, _| {});
        let p = m.classify(&samples[1].0);
        assert_eq!((0..CLASSES).max_by(|&a, &b| p[a].total_cmp(&p[b])), Some(7));
    }
}
