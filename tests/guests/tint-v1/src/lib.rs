//! `tint` version 1.0.0: paints the frame gray level 60 (hot-swap tests).

const VERSION: &str = "1.0.0";
const LEVEL: u8 = 60;

include!("../../tint/tint.rs");
