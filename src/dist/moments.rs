//! The first two moments of a data set: the mean per dimension and the variance about it.

use crate::error::{Error, Result};

/// The first two moments of the data, per dimension, that set the sampling prior: the mean
/// and the variance about it (averaged over dimensions). Computed exactly for analytic models,
/// measured on the data for trained ones and stored in the checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct Moments {
    /// The mean per dimension.
    pub mean: Vec<f64>,
    /// The variance (averaged over dimensions).
    pub var: f64,
}

impl Moments {
    /// Zero mean and variance `var` in `d` dimensions (checkpoints older than the mean).
    pub fn centred(d: usize, var: f64) -> Moments {
        Moments { mean: vec![0.0; d], var }
    }

    /// Moments of `n` samples of `d` values each.
    pub fn of(xs: &[f32], d: usize) -> Moments {
        let n = (xs.len() / d.max(1)).max(1) as f64;
        let mut mean = vec![0.0; d];
        for row in xs.chunks_exact(d.max(1)) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += v as f64 / n;
            }
        }
        let mut var = 0.0;
        for row in xs.chunks_exact(d.max(1)) {
            for (m, &v) in mean.iter().zip(row) {
                var += (v as f64 - m).powi(2);
            }
        }
        Moments { mean, var: var / (n * d.max(1) as f64) }
    }

    /// Check values read from a file (finite in f32, variance not negative, `d` values).
    pub fn check(&self, d: usize, what: &str) -> Result<()> {
        if self.mean.len() != d {
            return Err(Error::Invalid(format!(
                "{what}: the data mean has {} values, the samples {d}",
                self.mean.len()
            )));
        }
        let f32ok = |v: f64| v.is_finite() && v.abs() < f32::MAX as f64;
        if let Some(v) = self.mean.iter().find(|v| !f32ok(**v)) {
            return Err(Error::Invalid(format!("{what}: data mean {v} is not a finite f32")));
        }
        if !(self.var >= 0.0 && f32ok(self.var)) {
            return Err(Error::Invalid(format!("{what}: data variance {} must be a finite number >= 0", self.var)));
        }
        Ok(())
    }
}
