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
/// The shipped model file.
const BUILTIN: &[u8] = include_bytes!("../../models/plate-glyphs.bin");

/// A small convolutional network over a patch, trained by `host/examples/train_plate_cnn.py`:
/// three 3x3 convolutions (ReLU; 2x2 max-pooling after the first two), a hidden dense layer and
/// the class layer. Activations are kept channels-last, so the innermost loops run over output
/// channels (vectorised), several pixels at a time.
#[derive(Debug, Clone, PartialEq)]
pub struct Cnn {
    convs: [Conv; 3],
    hidden: usize,
    /// The hidden layer's weights by input, inputs in row, column, channel order (the
    /// activations'): `flattened x hidden`. The file has them `hidden x flattened`, inputs in
    /// channel, row, column order.
    d1_cols: Vec<f32>,
    e1: Vec<f32>,
    /// The class layer's weights by input: `hidden x CLASSES` (the file: `CLASSES x hidden`).
    d2_cols: Vec<f32>,
    e2: Vec<f32>,
    /// Networks of the same recipe trained from other seeds, asked when this one is unsure
    /// ([`Cnn::classify`]).
    peers: Vec<Cnn>,
}

/// A glyph the first network gives a class at least this likely is not shown to its peers.
const PEERS_UNLESS_SURE: f32 = 0.95;
/// ... nor one it takes for "not a character" at least this likely (most blobs of a frame).
const PEERS_UNLESS_NOISE: f32 = 0.5;

/// A 3x3 zero-padded convolution followed by a ReLU.
#[derive(Debug, Clone, PartialEq)]
struct Conv {
    cin: usize,
    cout: usize,
    /// `3 x 3 x cin x cout`: per tap and input channel, the weights of every output channel
    /// (the file has them `cout x cin x 3 x 3`).
    taps: Vec<f32>,
    b: Vec<f32>,
}

impl Conv {
    /// From the file's weights `w` (`cout x cin x 3 x 3`) and biases.
    fn new(cin: usize, cout: usize, w: &[f32], b: Vec<f32>) -> Conv {
        let mut taps = vec![0f32; w.len()];
        for co in 0..cout {
            for ci in 0..cin {
                for k in 0..9 {
                    taps[(k * cin + ci) * cout + co] = w[(co * cin + ci) * 9 + k];
                }
            }
        }
        Conv { cin, cout, taps, b }
    }

    /// `input` is `h x w x cin` (channels last); returns `h x w x cout`.
    #[inline(always)]
    fn apply<M: Mac>(&self, input: &[f32], w: usize, h: usize) -> Vec<f32> {
        let cin = self.cin;
        let pw = w + 2;
        let mut padded = vec![0f32; (h + 2) * pw * cin];
        for y in 0..h {
            padded[((y + 1) * pw + 1) * cin..][..w * cin]
                .copy_from_slice(&input[y * w * cin..][..w * cin]);
        }
        let mut out = vec![0f32; h * w * self.cout];
        // Output channels in blocks of `L` for `P` pixels at a time: the `P x L` sums stay in
        // registers while the 3x3xcin inputs stream past, each weight loaded once for the
        // `P` pixels, and the sums form enough independent chains to keep the adders busy.
        let mut co = 0;
        while co < self.cout {
            co += match self.cout - co {
                32.. => self.channels::<M, 32, 2>(&padded, &mut out, w, co),
                16.. => self.channels::<M, 16, 4>(&padded, &mut out, w, co),
                8.. => self.channels::<M, 8, 8>(&padded, &mut out, w, co),
                _ => self.channels::<M, 1, 1>(&padded, &mut out, w, co),
            };
        }
        out.iter_mut().for_each(|v| *v = v.max(0.0));
        out
    }

    /// Output channels `co..co + L` of every pixel of `out` (`w` wide), from the zero-padded
    /// input; returns `L`.
    #[inline(always)]
    fn channels<M: Mac, const L: usize, const P: usize>(
        &self,
        padded: &[f32],
        out: &mut [f32],
        w: usize,
        co: usize,
    ) -> usize {
        let n = out.len() / self.cout;
        let mut i = 0;
        while i + P <= n {
            self.pixels::<M, L, P>(padded, out, w, i, co);
            i += P;
        }
        while i < n {
            self.pixels::<M, L, 1>(padded, out, w, i, co);
            i += 1;
        }
        L
    }

    /// Output channels `co..co + L` of pixels `i..i + P` (row-major, rows `w` wide).
    #[inline(always)]
    fn pixels<M: Mac, const L: usize, const P: usize>(
        &self,
        padded: &[f32],
        out: &mut [f32],
        w: usize,
        i: usize,
        co: usize,
    ) {
        let (cin, cout, pw) = (self.cin, self.cout, w + 2);
        // Where each pixel's 3x3 neighbourhood starts in the padded input.
        let at: [usize; P] = std::array::from_fn(|p| ((i + p) / w * pw + (i + p) % w) * cin);
        let mut sum = [[0f32; L]; P];
        for s in &mut sum {
            s.copy_from_slice(&self.b[co..co + L]);
        }
        // Every read below is in bounds: the last pixel's neighbourhood ends inside the padded
        // input, and the last tap's weights inside `taps`.
        assert!(at[P - 1] + ((2 * pw + 2) + 1) * cin <= padded.len());
        assert!(co + L <= cout && self.taps.len() == 9 * cin * cout);
        for k in 0..9 {
            let off = ((k / 3) * pw + k % 3) * cin;
            for ci in 0..cin {
                let w0 = (k * cin + ci) * cout + co;
                for (s, &a) in sum.iter_mut().zip(&at) {
                    // SAFETY: `a + off + ci` is at most the last pixel's last neighbour and
                    // `w0 + l` the last tap's last weight of the block, both checked above.
                    let v = unsafe { *padded.get_unchecked(a + off + ci) };
                    for (l, acc) in s.iter_mut().enumerate() {
                        // SAFETY: see above.
                        let wv = unsafe { *self.taps.get_unchecked(w0 + l) };
                        *acc = M::mac(*acc, v, wv);
                    }
                }
            }
        }
        for (p, s) in sum.iter().enumerate() {
            out[(i + p) * cout + co..][..L].copy_from_slice(s);
        }
    }
}

/// How the network multiplies and adds: fused (one rounding) where the CPU has FMA, plainly
/// elsewhere (a fused multiply-add in software is slow).
trait Mac {
    /// `acc + a * b`.
    fn mac(acc: f32, a: f32, b: f32) -> f32;
}

struct Plain;

impl Mac for Plain {
    #[inline(always)]
    fn mac(acc: f32, a: f32, b: f32) -> f32 {
        acc + a * b
    }
}

#[cfg(target_arch = "x86_64")]
struct Fused;

#[cfg(target_arch = "x86_64")]
impl Mac for Fused {
    #[inline(always)]
    fn mac(acc: f32, a: f32, b: f32) -> f32 {
        a.mul_add(b, acc)
    }
}

/// 2x2 max-pooling of an `h x w x c` activation (even sizes).
#[inline(always)]
fn pool(input: &[f32], c: usize, w: usize, h: usize) -> Vec<f32> {
    let (ow, oh) = (w / 2, h / 2);
    let mut out = vec![0f32; oh * ow * c];
    for y in 0..oh {
        for x in 0..ow {
            let dst = &mut out[(y * ow + x) * c..][..c];
            for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                let src = &input[((2 * y + dy) * w + 2 * x + dx) * c..][..c];
                for (d, &v) in dst.iter_mut().zip(src) {
                    *d = d.max(v);
                }
            }
        }
    }
    out
}

/// The lengths of a model file's tensors, in the file's order (conv weights and biases three
/// times, dense weights and biases twice), for channel counts `[c1, c2, c3, hidden]`.
fn tensor_lens([c1, c2, c3, hidden]: [usize; 4]) -> [usize; 10] {
    let flat = c3 * (PATCH_W / 4) * (PATCH_H / 4);
    [
        c1 * 9,
        c1,
        c2 * c1 * 9,
        c2,
        c3 * c2 * 9,
        c3,
        hidden * flat,
        hidden,
        CLASSES * hidden,
        CLASSES,
    ]
}

impl Cnn {
    /// The model shipped with Prism (`host/models/plate-glyphs.bin`, embedded at build time).
    pub fn builtin() -> &'static Cnn {
        static MODEL: std::sync::OnceLock<Cnn> = std::sync::OnceLock::new();
        MODEL.get_or_init(|| {
            Cnn::from_bytes(BUILTIN).expect("host/models/plate-glyphs.bin is a valid model")
        })
    }

    /// Class probabilities of one patch: the first network's, or, where it is unsure of a
    /// symbol (no class [`PEERS_UNLESS_SURE`] and not likely noise), the mean of every
    /// network's. Networks trained alike from other seeds err on different glyphs, and their
    /// mean errs less than any one of them; asked only then, they cost little time. Within
    /// [`remembering`], a patch classified before is not classified again.
    pub fn classify(&self, patch: &[f32; PATCH_LEN]) -> [f32; CLASSES] {
        self.remembered(patch, || self.classify_alone(patch))
    }

    /// The first network's probabilities of a patch ([`Cnn::classify_alone`]); within
    /// [`remembering`], those of a patch classified before are not computed again.
    pub fn first(&self, patch: &[f32; PATCH_LEN]) -> [f32; CLASSES] {
        match self.recall(patch) {
            Some((first, _)) => first,
            None => self.classify_alone(patch),
        }
    }

    /// [`Cnn::classify`] of a patch whose first network's probabilities ([`Cnn::first`]) are
    /// `first`.
    pub fn classify_from(&self, patch: &[f32; PATCH_LEN], first: [f32; CLASSES]) -> [f32; CLASSES] {
        self.remembered(patch, || first)
    }

    /// [`Cnn::with_peers`] of the first network's probabilities (`first`, called unless the
    /// patch is remembered).
    fn remembered(
        &self,
        patch: &[f32; PATCH_LEN],
        first: impl FnOnce() -> [f32; CLASSES],
    ) -> [f32; CLASSES] {
        if let Some((_, p)) = self.recall(patch) {
            return p;
        }
        let first = first();
        let p = self.with_peers(patch, first);
        if MEMO.with(|m| m.borrow().depth > 0) {
            let (net, hash) = (self as *const Cnn as usize, patch_hash(patch));
            MEMO.with(|m| m.borrow_mut().keep(hash, net, patch, (first, p)));
        }
        p
    }

    /// What this network's [`Cnn::first`] and [`Cnn::classify`] gave a patch before, within
    /// [`remembering`].
    fn recall(&self, patch: &[f32; PATCH_LEN]) -> Option<FirstAndAll> {
        MEMO.with(|m| {
            let m = m.borrow();
            if m.depth == 0 {
                return None;
            }
            m.recall(patch_hash(patch), self as *const Cnn as usize, patch)
        })
    }

    /// The first network's probabilities `first`, or where it is unsure, the mean of every
    /// network's.
    fn with_peers(&self, patch: &[f32; PATCH_LEN], first: [f32; CLASSES]) -> [f32; CLASSES] {
        let mut p = first;
        let unsure = p.iter().copied().fold(0.0, f32::max) < PEERS_UNLESS_SURE
            && p[NOISE] < PEERS_UNLESS_NOISE;
        if unsure && !self.peers.is_empty() {
            for peer in &self.peers {
                let q = peer.classify_alone(patch);
                p.iter_mut().zip(q).for_each(|(a, b)| *a += b);
            }
            let n = (self.peers.len() + 1) as f32;
            p.iter_mut().for_each(|a| *a /= n);
        }
        p
    }

    /// This network's class probabilities of one patch, without its peers.
    pub fn classify_alone(&self, patch: &[f32; PATCH_LEN]) -> [f32; CLASSES] {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA, checked right above.
            return unsafe { self.classify_avx2(patch) };
        }
        self.classify_any::<Plain>(patch)
    }

    /// [`Cnn::classify_alone`] compiled for AVX2 and FMA: the loops over channels run eight
    /// lanes wide instead of the baseline's four, multiplying and adding in one instruction.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn classify_avx2(&self, patch: &[f32; PATCH_LEN]) -> [f32; CLASSES] {
        self.classify_any::<Fused>(patch)
    }

    /// The network, inlined into each instruction-set variant of [`Cnn::classify_alone`].
    #[inline(always)]
    fn classify_any<M: Mac>(&self, patch: &[f32; PATCH_LEN]) -> [f32; CLASSES] {
        let (w, h) = (PATCH_W, PATCH_H);
        let a = self.convs[0].apply::<M>(patch, w, h);
        let a = pool(&a, self.convs[0].cout, w, h);
        let (w, h) = (w / 2, h / 2);
        let a = self.convs[1].apply::<M>(&a, w, h);
        let a = pool(&a, self.convs[1].cout, w, h);
        let (w, h) = (w / 2, h / 2);
        let a = self.convs[2].apply::<M>(&a, w, h);
        // Dense layers as sums of weight columns scaled by the inputs: the inner loop runs
        // over outputs (vectorised) instead of reducing a dot product (which floats keep
        // sequential).
        let mut hid = self.e1.clone();
        // Only the inputs the ReLU left non-zero (about half) weigh: listed without a branch
        // (a branch per input mispredicts half the time), their weight columns are all the
        // hidden layer reads of its large matrix.
        let mut live = vec![0u32; a.len()];
        let mut n = 0;
        for (i, &v) in a.iter().enumerate() {
            live[n] = i as u32;
            n += usize::from(v != 0.0);
        }
        live.truncate(n);
        // Outputs in blocks of 64 whose sums stay in registers while the inputs stream past.
        let mut j = 0;
        while j < self.hidden {
            j += match self.hidden - j {
                64.. => self.hidden_block::<M, 64>(&a, &live, &mut hid, j),
                8.. => self.hidden_block::<M, 8>(&a, &live, &mut hid, j),
                _ => self.hidden_block::<M, 1>(&a, &live, &mut hid, j),
            };
        }
        let mut out = [0f32; CLASSES];
        out.copy_from_slice(&self.e2);
        for (&v, col) in hid.iter().zip(self.d2_cols.chunks_exact(CLASSES)) {
            let v = v.max(0.0);
            out.iter_mut()
                .zip(col)
                .for_each(|(o, &w)| *o = M::mac(*o, v, w));
        }
        softmax(&mut out);
        out
    }

    /// Adds to hidden outputs `j..j + L` the shares of the inputs listed in `live`; returns
    /// `L`.
    #[inline(always)]
    fn hidden_block<M: Mac, const L: usize>(
        &self,
        input: &[f32],
        live: &[u32],
        hid: &mut [f32],
        j: usize,
    ) -> usize {
        let mut sum = [0f32; L];
        sum.copy_from_slice(&hid[j..j + L]);
        for &i in live {
            let i = i as usize;
            let v = input[i];
            let col: &[f32; L] = self.d1_cols[i * self.hidden + j..][..L].try_into().unwrap();
            for (acc, &w) in sum.iter_mut().zip(col) {
                *acc = M::mac(*acc, v, w);
            }
        }
        hid[j..j + L].copy_from_slice(&sum);
        L
    }

    /// Parses a model file: one network as written by `train_plate_cnn.py`, or several such
    /// one after the other (the first, then its peers).
    pub fn from_bytes(mut b: &[u8]) -> Result<Cnn, String> {
        let mut nets = Vec::new();
        while !b.is_empty() || nets.is_empty() {
            let (net, rest) = Cnn::one_from_bytes(b)?;
            nets.push(net);
            b = rest;
        }
        let mut first = nets.remove(0);
        first.peers = nets;
        Ok(first)
    }

    /// The network at the start of `b`, and the bytes after it.
    fn one_from_bytes(b: &[u8]) -> Result<(Cnn, &[u8]), String> {
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
        let sizes = tensor_lens([c1, c2, c3, hidden]);
        let end = 28 + 4 * sizes.iter().sum::<usize>();
        let (body, rest) = match b.get(28..end) {
            Some(body) => (body, &b[end..]),
            None => return Err("model file has the wrong length".into()),
        };
        let floats: Vec<f32> = body
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let mut it = floats.into_iter();
        let [w1, b1, w2, b2, w3, b3, d1, e1, d2, e2] =
            sizes.map(|n| it.by_ref().take(n).collect::<Vec<f32>>());
        let convs = [
            Conv::new(1, c1, &w1, b1),
            Conv::new(c1, c2, &w2, b2),
            Conv::new(c2, c3, &w3, b3),
        ];
        let c = c3;
        let cells = (PATCH_W / 4) * (PATCH_H / 4);
        let mut d1_cols = vec![0f32; d1.len()];
        for j in 0..hidden {
            for ch in 0..c {
                for cell in 0..cells {
                    d1_cols[(cell * c + ch) * hidden + j] = d1[j * c * cells + ch * cells + cell];
                }
            }
        }
        let mut d2_cols = vec![0f32; d2.len()];
        for k in 0..CLASSES {
            for j in 0..hidden {
                d2_cols[j * CLASSES + k] = d2[k * hidden + j];
            }
        }
        let net = Cnn {
            convs,
            hidden,
            d1_cols,
            e1,
            d2_cols,
            e2,
            peers: Vec::new(),
        };
        Ok((net, rest))
    }
}

/// Classifications remembered while a picture is searched ([`remembering`]), per network and
/// patch: the reader cuts the same glyph box several times over (once per threshold that
/// finds it, again to fill a gap or to read a row closer): about one in nine patches of a
/// search of the dev photos is one it classified already.
#[derive(Default)]
struct Memo {
    /// Nested [`remembering`] calls under way.
    depth: usize,
    /// By a hash of the patch: what each patch of that hash was classified as.
    seen: std::collections::HashMap<u64, Vec<Remembered>>,
}

/// A network (its address), a patch, and its probabilities: the first network's and, with
/// its peers', [`Cnn::classify`]'s.
type Remembered = (usize, Box<[f32; PATCH_LEN]>, FirstAndAll);

type FirstAndAll = ([f32; CLASSES], [f32; CLASSES]);

thread_local! {
    static MEMO: std::cell::RefCell<Memo> = std::cell::RefCell::new(Memo::default());
}

/// FNV-1a over the patch's bits.
fn patch_hash(patch: &[f32; PATCH_LEN]) -> u64 {
    patch.iter().fold(0xcbf2_9ce4_8422_2325, |h, v| {
        (h ^ u64::from(v.to_bits())).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Memo {
    fn recall(&self, hash: u64, net: usize, patch: &[f32; PATCH_LEN]) -> Option<FirstAndAll> {
        self.seen
            .get(&hash)?
            .iter()
            .find(|(n, p, _)| *n == net && **p == *patch)
            .map(|(_, _, probs)| *probs)
    }

    fn keep(&mut self, hash: u64, net: usize, patch: &[f32; PATCH_LEN], probs: FirstAndAll) {
        self.seen
            .entry(hash)
            .or_default()
            .push((net, Box::new(*patch), probs));
    }
}

/// Runs `f` (one picture's search) with [`Cnn::classify`] remembering what it classified, on
/// this thread, until `f` returns.
pub fn remembering<T>(f: impl FnOnce() -> T) -> T {
    /// Forgets when the outermost call ends, even by a panic.
    struct Forget;
    impl Drop for Forget {
        fn drop(&mut self) {
            MEMO.with(|m| {
                let mut m = m.borrow_mut();
                m.depth -= 1;
                if m.depth == 0 {
                    m.seen.clear();
                }
            });
        }
    }
    MEMO.with(|m| m.borrow_mut().depth += 1);
    let _forget = Forget;
    f()
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

/// Whether the training recipe (`host/examples/plate_glyphs.rs`) keeps the crop on line `line`
/// (from 0, the header included) of a `groundtruth.csv` of labelled plate crops out of
/// training, to measure the classifier on plates it never saw: one line in five.
pub fn held_out_crop(line: usize) -> bool {
    line.is_multiple_of(5)
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

    /// A model file in the trainer's format: sizes `[c1, c2, c3, hidden]`, then the tensors in
    /// the file's order.
    fn model_file(sizes: [usize; 4], tensors: &[&[f32]]) -> Vec<u8> {
        let mut v = CNN_MAGIC.to_vec();
        for n in sizes.into_iter().chain([CLASSES]) {
            v.extend_from_slice(&(n as u32).to_le_bytes());
        }
        for f in tensors.iter().flat_map(|t| t.iter()) {
            v.extend_from_slice(&f.to_le_bytes());
        }
        v
    }

    /// The tensors of a model file, in the file's order (conv weights and biases three times,
    /// dense weights and biases twice), and its sizes.
    fn tensors_of(file: &[u8]) -> ([usize; 4], Vec<Vec<f32>>) {
        let word = |i: usize| u32::from_le_bytes(file[8 + 4 * i..][..4].try_into().unwrap());
        let [c1, c2, c3, hidden] = [0, 1, 2, 3].map(|i| word(i) as usize);
        let lens = tensor_lens([c1, c2, c3, hidden]);
        let mut floats = file[28..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()));
        let tensors = lens
            .iter()
            .map(|&n| floats.by_ref().take(n).collect())
            .collect();
        ([c1, c2, c3, hidden], tensors)
    }

    /// A model file whose three convolutions copy their input shifted by `shift` (the kernel's
    /// only weight at row `shift.0`, column `shift.1`; (1, 1) is the centre), whose hidden
    /// layer copies the 7x5 cells and whose class `k < 35` is cell `k`.
    fn probe(shift: (usize, usize)) -> Cnn {
        let mut kernel = [0f32; 9];
        kernel[shift.0 * 3 + shift.1] = 1.0;
        let centre = [0., 0., 0., 0., 1., 0., 0., 0., 0.];
        let cells = (PATCH_W / 4) * (PATCH_H / 4);
        let mut d1 = vec![0f32; cells * cells];
        for k in 0..cells {
            d1[k * cells + k] = 1.0;
        }
        let mut d2 = vec![0f32; CLASSES * cells];
        for k in 0..cells {
            d2[k * cells + k] = 20.0;
        }
        let file = model_file(
            [1, 1, 1, cells],
            &[
                &kernel,
                &[0.0],
                &centre,
                &[0.0],
                &centre,
                &[0.0],
                &d1,
                &vec![0.0; cells],
                &d2,
                &[0.0; CLASSES],
            ],
        );
        Cnn::from_bytes(&file).unwrap()
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
    }

    /// The network of a model file computed the plain way: channel planes, the file's weight
    /// orders.
    fn reference(file: &[u8], patch: &[f32; PATCH_LEN]) -> [f32; CLASSES] {
        let ([c1, c2, c3, hidden], t) = tensors_of(file);
        let conv = |(cin, cout): (usize, usize), wt: &[f32], b: &[f32], input: &[f32], w, h| {
            let mut out = vec![0f32; cout * w * h];
            for co in 0..cout {
                for y in 0..h {
                    for x in 0..w {
                        let mut s = b[co];
                        for ci in 0..cin {
                            for k in 0..9 {
                                let (yy, xx) = (y + k / 3, x + k % 3);
                                if yy >= 1 && xx >= 1 && yy <= h && xx <= w {
                                    s += wt[(co * cin + ci) * 9 + k]
                                        * input[(ci * h + yy - 1) * w + xx - 1];
                                }
                            }
                        }
                        out[(co * h + y) * w + x] = s.max(0.0);
                    }
                }
            }
            out
        };
        let pool = |input: &[f32], c: usize, w: usize, h: usize| {
            let mut out = vec![0f32; c * (w / 2) * (h / 2)];
            for ch in 0..c {
                for y in 0..h / 2 {
                    for x in 0..w / 2 {
                        let at = |dy, dx| input[(ch * h + 2 * y + dy) * w + 2 * x + dx];
                        out[(ch * (h / 2) + y) * (w / 2) + x] =
                            at(0, 0).max(at(0, 1)).max(at(1, 0)).max(at(1, 1));
                    }
                }
            }
            out
        };
        let a = pool(&conv((1, c1), &t[0], &t[1], patch, 20, 28), c1, 20, 28);
        let a = pool(&conv((c1, c2), &t[2], &t[3], &a, 10, 14), c2, 10, 14);
        let a = conv((c2, c3), &t[4], &t[5], &a, 5, 7);
        let hid: Vec<f32> = (0..hidden)
            .map(|j| {
                let row = &t[6][j * a.len()..][..a.len()];
                (row.iter().zip(&a).map(|(p, q)| p * q).sum::<f32>() + t[7][j]).max(0.0)
            })
            .collect();
        let mut out = [0f32; CLASSES];
        for (k, o) in out.iter_mut().enumerate() {
            let row = &t[8][k * hidden..][..hidden];
            *o = row.iter().zip(&hid).map(|(p, q)| p * q).sum::<f32>() + t[9][k];
        }
        softmax(&mut out);
        out
    }

    #[test]
    fn the_channels_last_network_computes_the_plain_one() {
        let net = Cnn::builtin();
        let mut rng = Rng::new(5);
        for _ in 0..8 {
            let mut patch = [0f32; PATCH_LEN];
            // Blobs of ink on a clear patch, like glyph strokes, and some noise.
            for _ in 0..4 {
                let (x0, y0) = (rng.below(16), rng.below(22));
                for y in y0..y0 + 6 {
                    for x in x0..x0 + 4 {
                        patch[y * PATCH_W + x] = rng.range(0.6, 1.0);
                    }
                }
            }
            patch
                .iter_mut()
                .for_each(|v| *v = (*v + rng.range(0.0, 0.1)).min(1.0));
            // The build this CPU runs (AVX2 and FMA here) and the baseline one.
            let plain = reference(BUILTIN, &patch);
            for fast in [
                net.classify_alone(&patch),
                net.classify_any::<Plain>(&patch),
            ] {
                for (a, b) in fast.iter().zip(&plain) {
                    assert!((a - b).abs() < 1e-4, "{fast:?} vs {plain:?}");
                }
            }
        }
    }

    #[test]
    fn builtin_model_loads_and_reads_a_drawn_glyph() {
        let m = Cnn::builtin();
        // The file is exactly its header and tensors, and parses to the same network again.
        let (sizes, tensors) = tensors_of(BUILTIN);
        let rebuilt = model_file(
            sizes,
            &tensors.iter().map(Vec::as_slice).collect::<Vec<_>>(),
        );
        assert_eq!(rebuilt, BUILTIN[..rebuilt.len()]);
        let mut alone = m.clone();
        alone.peers.clear();
        assert_eq!(Cnn::from_bytes(&rebuilt).unwrap(), alone);
        // Two peers follow it, each a whole network.
        assert_eq!(m.peers.len(), 2);
        let mut rest = &BUILTIN[rebuilt.len()..];
        for peer in &m.peers {
            let (net, after) = Cnn::one_from_bytes(rest).unwrap();
            assert_eq!(&net, peer);
            rest = after;
        }
        assert!(rest.is_empty());
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
    fn a_search_remembers_what_it_classified_and_forgets_after() {
        let m = Cnn::builtin();
        let mut patch = [0f32; PATCH_LEN];
        for (i, v) in patch.iter_mut().enumerate() {
            *v = ((i * 7) % 11) as f32 / 10.0;
        }
        let fresh = m.classify(&patch);
        let remembered = |patch: &[f32; PATCH_LEN]| {
            MEMO.with(|s| {
                s.borrow()
                    .recall(patch_hash(patch), m as *const Cnn as usize, patch)
            })
        };
        let alone = m.classify_alone(&patch);
        let (first, again, inside) = remembering(|| {
            let first = m.classify(&patch);
            let again = m.classify(&patch);
            // Nested searches share what the outer one remembers.
            let inside = remembering(|| remembered(&patch));
            (first, again, inside)
        });
        assert_eq!(first, fresh);
        assert_eq!(again, fresh);
        // The first network's probabilities are remembered with them.
        assert_eq!(inside, Some((alone, fresh)));
        // A patch that differs in one value was not classified.
        let mut other = patch;
        other[3] += 0.5;
        assert_eq!(remembering(|| remembered(&other)), None);
        // Outside a search nothing is kept.
        assert_eq!(remembered(&patch), None);
        assert!(MEMO.with(|s| s.borrow().seen.is_empty()));
    }

    #[test]
    fn peers_are_asked_only_when_the_first_network_is_unsure() {
        let m = Cnn::builtin();
        let mut rng = Rng::new(9);
        let (mut asked, mut not_asked) = (0, 0);
        for _ in 0..200 {
            let mut patch = [0f32; PATCH_LEN];
            for _ in 0..1 + rng.below(4) {
                let (x0, y0) = (rng.below(16), rng.below(22));
                for y in y0..y0 + 1 + rng.below(6) {
                    for x in x0..x0 + 1 + rng.below(4) {
                        patch[y * PATCH_W + x] = rng.range(0.3, 1.0);
                    }
                }
            }
            let first = m.classify_alone(&patch);
            let p = m.classify(&patch);
            let sure = first.iter().copied().fold(0.0, f32::max) >= PEERS_UNLESS_SURE
                || first[NOISE] >= PEERS_UNLESS_NOISE;
            if sure {
                not_asked += 1;
                assert_eq!(p, first);
            } else {
                asked += 1;
                let mut mean = first;
                for peer in &m.peers {
                    let q = peer.classify_alone(&patch);
                    mean.iter_mut().zip(q).for_each(|(a, b)| *a += b);
                }
                mean.iter_mut().for_each(|a| *a /= 3.0);
                assert_eq!(p, mean);
                assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4);
            }
        }
        assert!(asked > 0 && not_asked > 0, "{asked} asked, {not_asked} not");
    }

    #[test]
    fn bad_model_files_are_refused() {
        assert!(Cnn::from_bytes(b"short").is_err());
        assert!(Cnn::from_bytes(b"NOTAMODEL___________________").is_err());
        let mut b = BUILTIN.to_vec();
        b.pop();
        assert!(Cnn::from_bytes(&b).is_err());
        b.truncate(b.len() - 3);
        assert!(Cnn::from_bytes(&b).is_err());
        // A whole network followed by a piece of another.
        let one = 28 + 4 * tensor_lens(tensors_of(BUILTIN).0).iter().sum::<usize>();
        assert!(Cnn::from_bytes(&BUILTIN[..one]).is_ok());
        assert!(Cnn::from_bytes(&BUILTIN[..one + 40]).is_err());
        let mut huge = BUILTIN.to_vec();
        huge[8..12].copy_from_slice(&5000u32.to_le_bytes());
        assert!(Cnn::from_bytes(&huge).is_err());
    }
}
