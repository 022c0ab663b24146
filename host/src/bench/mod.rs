//! `prism bench ...`: benchmarks that print figures, each against a baseline measured in the
//! same run (machines are shared and noisy, so ratios travel better than absolute times).

pub mod approach;
pub mod filter;
pub mod plates;
pub mod registry;
pub mod sessions;
pub mod stats;
pub mod variants;
