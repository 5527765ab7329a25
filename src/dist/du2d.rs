//! The 2-D sets of Du et al. (ICML 2023, "Reduce, Reuse, Recycle", Sec. 5.1) and the exact
//! densities of their compositions, for metrics: 8 Gaussians on a ring of radius 0.5 (std 0.03),
//! a bar x in [-0.2, 0.2], y in [-1, 1], left and right bars (x = -0.2 +- 0.1 and 0.2 +- 0.1),
//! and boxes of half-width 0.7 and 0.3.
//! - product (ring x bar): the ring restricted to the bar;
//! - mixture (left bar + right bar): the two bars with equal weight;
//! - negation (box 0.7 minus box 0.3): the outer box without the inner one.
//!
//! Samples of the truth are exact (rejection from the ring; uniform draws). The log-density a
//! metric reads is the truth smoothed by a Gaussian of std `SMOOTH` (hard edges would give
//! -inf to a sample a hair outside), normalised by quadrature on a fine grid.

use super::gmm::Gmm;
use crate::rng::HostRng;

/// Std of the Gaussian that smooths the truth's edges for log-likelihoods.
pub const SMOOTH: f64 = 0.02;

/// The ring: 8 Gaussians of std 0.03 at radius 0.5.
pub fn ring() -> Gmm {
    let means = (0..8).map(|k| (k as f64 * std::f64::consts::PI / 4.0).sin_cos()).map(|(s, c)| vec![0.5 * c, 0.5 * s]);
    Gmm::new(vec![1.0; 8], means.collect(), vec![0.03; 8]).expect("a valid mixture")
}

/// An axis-aligned box [x0, x1] x [y0, y1] (a uniform density).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rect(pub f64, pub f64, pub f64, pub f64);

/// Du et al.'s bar.
pub const BAR: Rect = Rect(-0.2, 0.2, -1.0, 1.0);
/// The left bar.
pub const BAR_LEFT: Rect = Rect(-0.3, -0.1, -1.0, 1.0);
/// The right bar.
pub const BAR_RIGHT: Rect = Rect(0.1, 0.3, -1.0, 1.0);
/// The outer box.
pub const BOX_OUTER: Rect = Rect(-0.7, 0.7, -0.7, 0.7);
/// The inner box.
pub const BOX_INNER: Rect = Rect(-0.3, 0.3, -0.3, 0.3);

impl Rect {
    /// Its area.
    pub fn area(&self) -> f64 {
        (self.1 - self.0) * (self.3 - self.2)
    }
    /// Whether point `p` lies inside.
    pub fn contains(&self, p: &[f64]) -> bool {
        (self.0..=self.1).contains(&p[0]) && (self.2..=self.3).contains(&p[1])
    }
    /// P(p + s z in the box), z ~ N(0, I): the indicator smoothed.
    pub fn smoothed(&self, p: &[f64], s: f64) -> f64 {
        let side = |a: f64, b: f64, x: f64| phi((b - x) / s) - phi((a - x) / s);
        side(self.0, self.1, p[0]) * side(self.2, self.3, p[1])
    }
    /// A uniform draw from it.
    pub fn sample(&self, rng: &mut HostRng) -> [f64; 2] {
        [self.0 + (self.1 - self.0) * rng.uniform(), self.2 + (self.3 - self.2) * rng.uniform()]
    }
}

/// The standard normal CDF (Abramowitz & Stegun 7.1.26 for erf, |error| < 1.5e-7).
pub fn phi(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.3275911 * z);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let erfc = poly * (-z * z).exp();
    if x >= 0.0 {
        1.0 - 0.5 * erfc
    } else {
        0.5 * erfc
    }
}

/// The three compositions of the benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// ring x bar.
    Product,
    /// ring + bar.
    Mixture,
    /// the outer box without the inner one.
    Negation,
}

impl Task {
    /// The name tables use.
    pub fn name(self) -> &'static str {
        match self {
            Task::Product => "product",
            Task::Mixture => "mixture",
            Task::Negation => "negation",
        }
    }

    /// The unnormalised smoothed density.
    fn unnormalised(self, p: &[f64]) -> f64 {
        match self {
            Task::Product => ring().log_density(p, SMOOTH).exp() * BAR.smoothed(p, SMOOTH),
            Task::Mixture => {
                0.5 * (BAR_LEFT.smoothed(p, SMOOTH) / BAR_LEFT.area()
                    + BAR_RIGHT.smoothed(p, SMOOTH) / BAR_RIGHT.area())
            }
            Task::Negation => (BOX_OUTER.smoothed(p, SMOOTH) - BOX_INNER.smoothed(p, SMOOTH)).max(0.0),
        }
    }

    /// Exact samples of the composition [n * 2].
    pub fn sample(self, n: usize, rng: &mut HostRng) -> Vec<f32> {
        let mut out = Vec::with_capacity(2 * n);
        let ring = ring();
        while out.len() < 2 * n {
            let p = match self {
                Task::Product => {
                    let q = ring.sample(1, rng);
                    [q[0] as f64, q[1] as f64]
                }
                Task::Mixture if rng.uniform() < 0.5 => BAR_LEFT.sample(rng),
                Task::Mixture => BAR_RIGHT.sample(rng),
                Task::Negation => BOX_OUTER.sample(rng),
            };
            let keep = match self {
                Task::Product => BAR.contains(&p),
                Task::Mixture => true,
                Task::Negation => !BOX_INNER.contains(&p),
            };
            if keep {
                out.extend([p[0] as f32, p[1] as f32]);
            }
        }
        out
    }
}

/// A task's smoothed log-density, normalised by the midpoint rule on [-1.5, 1.5]^2 (step 0.004,
/// a fifth of the smoothing std).
pub struct Truth {
    /// The composition.
    pub task: Task,
    log_z: f64,
}

impl Truth {
    /// The normalised target of `task`.
    pub fn new(task: Task) -> Truth {
        let (lim, h) = (1.5, 0.004);
        let k = (2.0 * lim / h) as usize;
        let mut z = 0.0;
        for i in 0..k {
            for j in 0..k {
                let p = [-lim + (i as f64 + 0.5) * h, -lim + (j as f64 + 0.5) * h];
                z += task.unnormalised(&p);
            }
        }
        Truth { task, log_z: (z * h * h).ln() }
    }

    /// log p(x), floored at -700 (far outside the support).
    pub fn log_density(&self, p: &[f64]) -> f64 {
        self.task.unnormalised(p).max(1e-304).ln() - self.log_z
    }

    /// The mean log-density of points [n * 2].
    pub fn mean_log_density(&self, xs: &[f32]) -> f64 {
        let n = xs.len() / 2;
        xs.chunks(2).map(|p| self.log_density(&[p[0] as f64, p[1] as f64])).sum::<f64>() / n.max(1) as f64
    }
}

/// The fraction of points inside the inner box (the negation's hole).
pub fn fraction_inside(xs: &[f32], r: Rect) -> f64 {
    let n = xs.len() / 2;
    xs.chunks(2).filter(|p| r.contains(&[p[0] as f64, p[1] as f64])).count() as f64 / n.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The normaliser is right: each task's density integrates to 1 on a grid other than the
    /// one that normalised it, its samples are inside the support, and phi is the normal CDF.
    #[test]
    fn densities_are_normalised_and_samples_exact() {
        assert!((phi(0.0) - 0.5).abs() < 1e-7 && (phi(1.959964) - 0.975).abs() < 1e-6);
        for task in [Task::Product, Task::Mixture, Task::Negation] {
            let t = Truth::new(task);
            let (lim, h) = (1.5, 0.0037);
            let k = (2.0 * lim / h) as usize;
            let mut total = 0.0;
            for i in 0..k {
                for j in 0..k {
                    total += t.log_density(&[-lim + (i as f64 + 0.5) * h, -lim + (j as f64 + 0.5) * h]).exp();
                }
            }
            assert!((total * h * h - 1.0).abs() < 0.01, "{task:?}: integral {}", total * h * h);
            let xs = task.sample(2000, &mut HostRng::new(1));
            let inside = match task {
                Task::Product => fraction_inside(&xs, BAR),
                Task::Mixture => fraction_inside(&xs, BAR_LEFT) + fraction_inside(&xs, BAR_RIGHT),
                Task::Negation => 1.0 - fraction_inside(&xs, BOX_INNER),
            };
            assert_eq!(inside, 1.0, "{task:?}");
        }
    }
}
