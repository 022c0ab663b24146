//! `tint` version 2.0.0: paints the frame gray level 200 (hot-swap tests).

const VERSION: &str = "2.0.0";
const LEVEL: u8 = 200;

include!("../../tint/tint.rs");
