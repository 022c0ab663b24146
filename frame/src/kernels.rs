//! Pixel kernels written once and compiled both natively and to WebAssembly, so the benchmark
//! compares the same algorithm on both sides.

/// Full-range BT.601 luma of an sRGB pixel, in 8-bit fixed point.
#[inline]
pub fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((r as u32 * 77 + g as u32 * 150 + b as u32 * 29 + 128) >> 8) as u8
}

/// Turns RGBA pixels gray in place (R = G = B = luma; alpha kept).
///
/// Each pixel is handled as one little-endian `u32` in 16-pixel blocks, so the compiler turns
/// the loop into 32-bit lane SIMD (SSE natively, SIMD128 in WebAssembly).
pub fn gray_rgba_in_place(pixels: &mut [u8]) {
    let mut blocks = pixels.chunks_exact_mut(64);
    for block in &mut blocks {
        let mut words = [0u32; 16];
        for (w, px) in words.iter_mut().zip(block.chunks_exact(4)) {
            *w = u32::from_le_bytes([px[0], px[1], px[2], px[3]]);
        }
        for w in &mut words {
            *w = gray_word(*w);
        }
        for (w, px) in words.iter().zip(block.chunks_exact_mut(4)) {
            px.copy_from_slice(&w.to_le_bytes());
        }
    }
    for px in blocks.into_remainder().chunks_exact_mut(4) {
        let w = gray_word(u32::from_le_bytes([px[0], px[1], px[2], px[3]]));
        px.copy_from_slice(&w.to_le_bytes());
    }
}

/// One RGBA pixel as a little-endian word, turned gray.
#[inline(always)]
fn gray_word(w: u32) -> u32 {
    let r = w & 0xff;
    let g = (w >> 8) & 0xff;
    let b = (w >> 16) & 0xff;
    let y = (r * 77 + g * 150 + b * 29 + 128) >> 8;
    (w & 0xff00_0000) | y | (y << 8) | (y << 16)
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
