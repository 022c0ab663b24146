//! Pixel kernels written once and compiled both natively and to WebAssembly, so the benchmark
//! compares the same algorithm on both sides.

/// Full-range BT.601 luma of an sRGB pixel, in 8-bit fixed point.
#[inline]
pub fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((r as u32 * 77 + g as u32 * 150 + b as u32 * 29 + 128) >> 8) as u8
}

/// Turns RGBA pixels gray in place (R = G = B = luma; alpha kept).
///
/// Works on 16 pixels at a time so that the compiler vectorises it (SSE/AVX natively, SIMD128
/// in WebAssembly).
pub fn gray_rgba_in_place(pixels: &mut [u8]) {
    let mut blocks = pixels.chunks_exact_mut(64);
    for block in &mut blocks {
        let mut y = [0u8; 16];
        for (i, v) in y.iter_mut().enumerate() {
            *v = luma(block[i * 4], block[i * 4 + 1], block[i * 4 + 2]);
        }
        for (i, v) in y.iter().enumerate() {
            block[i * 4] = *v;
            block[i * 4 + 1] = *v;
            block[i * 4 + 2] = *v;
        }
    }
    for px in blocks.into_remainder().chunks_exact_mut(4) {
        let v = luma(px[0], px[1], px[2]);
        px[0] = v;
        px[1] = v;
        px[2] = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gray_matches_scalar_formula() {
        let mut px: Vec<u8> = (0..4 * 37).map(|i| (i * 7 % 251) as u8).collect();
        let before = px.clone();
        gray_rgba_in_place(&mut px);
        for (a, b) in px.chunks_exact(4).zip(before.chunks_exact(4)) {
            let y = luma(b[0], b[1], b[2]);
            assert_eq!(a, [y, y, y, b[3]]);
        }
        assert_eq!(luma(255, 255, 255), 255);
        assert_eq!(luma(255, 0, 0), 77);
    }
}
