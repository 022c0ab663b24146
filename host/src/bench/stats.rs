//! Percentiles of timing samples.

/// Median and tail of a set of samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Smallest.
    pub min: f64,
}

impl Summary {
    /// Summarises `samples` (sorted in place). Empty input gives zeros.
    pub fn of(samples: &mut [f64]) -> Self {
        if samples.is_empty() {
            return Self {
                p50: 0.0,
                p99: 0.0,
                min: 0.0,
            };
        }
        samples.sort_by(f64::total_cmp);
        Self {
            p50: percentile(samples, 0.5),
            p99: percentile(samples, 0.99),
            min: samples[0],
        }
    }
}

/// The `q` quantile of sorted samples (nearest rank).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let mut v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let s = Summary::of(&mut v);
        assert_eq!((s.p50, s.p99, s.min), (50.0, 99.0, 1.0));
        assert_eq!(Summary::of(&mut []).p50, 0.0);
    }
}
