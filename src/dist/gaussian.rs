//! A Gaussian fitted to data: the noise distribution of noise-contrastive estimation. Held as
//! its mean and the lower Cholesky factor L of its covariance (Sigma = L L^T), so a draw is
//! mu + L e (e standard normal) and log q(x) = -1/2 ||L^-1 (x - mu)||^2 - log|L| - D/2 log 2 pi.

/// Largest condition number of a fitted covariance: beyond it, log q loses its digits in f32
/// (the GPU evaluates L^-1 (x - mu) in single precision).
pub const MAX_CONDITION: f64 = 1e6;

/// A Gaussian with a full covariance L L^T.
#[derive(Clone, Debug, PartialEq)]
pub struct Gaussian {
    /// The mean.
    pub mean: Vec<f64>,
    /// Lower-triangular L, row-major [D, D].
    pub chol: Vec<f64>,
}

impl Gaussian {
    /// The dimension.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// The Gaussian with the mean and covariance of `n` samples of `d` values (`xs`), plus
    /// `extra_var` on the diagonal (the noise level's sigma^2); `diagonal` keeps only the
    /// variances. Refused (a message naming the smallest direction) when the covariance is
    /// singular or too ill-conditioned for f32.
    pub fn fit(xs: &[f32], d: usize, extra_var: f64, diagonal: bool) -> Result<Gaussian, String> {
        let n = xs.len() / d.max(1);
        if n < 2 || d == 0 {
            return Err(format!("a Gaussian fit needs at least 2 samples, got {n}"));
        }
        let mut mean = vec![0.0; d];
        for row in xs.chunks_exact(d) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += v as f64 / n as f64;
            }
        }
        let mut cov = vec![0.0; d * d];
        for row in xs.chunks_exact(d) {
            for i in 0..d {
                let a = row[i] as f64 - mean[i];
                for j in 0..=i {
                    cov[i * d + j] += a * (row[j] as f64 - mean[j]) / (n - 1) as f64;
                }
            }
        }
        for i in 0..d {
            for j in 0..i {
                cov[j * d + i] = if diagonal { 0.0 } else { cov[i * d + j] };
                if diagonal {
                    cov[i * d + j] = 0.0;
                }
            }
            cov[i * d + i] += extra_var;
        }
        if let Some(v) = cov.iter().find(|v| !v.is_finite()) {
            return Err(format!("the data's covariance holds {v}"));
        }
        let (lo, hi) = eigen_range(&cov, d);
        if !(lo > 0.0 && hi / lo <= MAX_CONDITION) {
            return Err(format!(
                "the data's covariance (plus sigma^2) is singular or nearly so: eigenvalues from {lo:.3e} to {hi:.3e}, \
                 condition number above {MAX_CONDITION:.0e}"
            ));
        }
        let chol = cholesky(&cov, d).ok_or("the data's covariance is not positive definite")?;
        Ok(Gaussian { mean, chol })
    }

    /// log |L| = 1/2 log det Sigma.
    pub fn log_det_chol(&self) -> f64 {
        let d = self.dim();
        (0..d).map(|i| self.chol[i * d + i].ln()).sum()
    }

    /// log q(x).
    pub fn log_density(&self, x: &[f64]) -> f64 {
        let d = self.dim();
        let w = self.whiten(x);
        -0.5 * w.iter().map(|v| v * v).sum::<f64>()
            - self.log_det_chol()
            - 0.5 * d as f64 * (2.0 * std::f64::consts::PI).ln()
    }

    /// L^-1 (x - mu), by forward substitution.
    pub fn whiten(&self, x: &[f64]) -> Vec<f64> {
        let d = self.dim();
        let mut w = vec![0.0; d];
        for i in 0..d {
            let s: f64 = (0..i).map(|j| self.chol[i * d + j] * w[j]).sum();
            w[i] = (x[i] - self.mean[i] - s) / self.chol[i * d + i];
        }
        w
    }

    /// L^-1, row-major [D, D] (lower triangular).
    pub fn inverse_chol(&self) -> Vec<f64> {
        let d = self.dim();
        let mut inv = vec![0.0; d * d];
        for c in 0..d {
            let mut e = vec![0.0; d];
            e[c] = 1.0;
            // L^-1 e_c = whiten(mu + e_c)
            let x: Vec<f64> = self.mean.iter().zip(&e).map(|(m, v)| m + v).collect();
            for (r, v) in self.whiten(&x).into_iter().enumerate() {
                inv[r * d + c] = v;
            }
        }
        inv
    }
}

/// The lower Cholesky factor of a symmetric positive-definite matrix, if it is one.
fn cholesky(a: &[f64], d: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * d + k] * l[j * d + k]).sum();
            if i == j {
                let v = a[i * d + i] - s;
                if !(v > 0.0) {
                    return None;
                }
                l[i * d + i] = v.sqrt();
            } else {
                l[i * d + j] = (a[i * d + j] - s) / l[j * d + j];
            }
        }
    }
    Some(l)
}

/// The smallest and largest eigenvalues of a symmetric matrix (cyclic Jacobi rotations).
fn eigen_range(a: &[f64], d: usize) -> (f64, f64) {
    let mut m = a.to_vec();
    for _sweep in 0..100 {
        let off: f64 = (0..d)
            .flat_map(|i| (0..d).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[i * d + j].powi(2))
            .sum();
        if off < 1e-30 * (0..d).map(|i| m[i * d + i].powi(2)).sum::<f64>().max(1e-300) {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                let apq = m[p * d + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (m[q * d + q] - m[p * d + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let (c, s) = (1.0 / (t * t + 1.0).sqrt(), t / (t * t + 1.0).sqrt());
                for k in 0..d {
                    let (mkp, mkq) = (m[k * d + p], m[k * d + q]);
                    m[k * d + p] = c * mkp - s * mkq;
                    m[k * d + q] = s * mkp + c * mkq;
                }
                for k in 0..d {
                    let (mpk, mqk) = (m[p * d + k], m[q * d + k]);
                    m[p * d + k] = c * mpk - s * mqk;
                    m[q * d + k] = s * mpk + c * mqk;
                }
            }
        }
    }
    let diag = (0..d).map(|i| m[i * d + i]);
    diag.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::HostRng;

    #[test]
    fn fit_recovers_a_correlated_gaussian_and_its_density() {
        // x = mu + A e with A = [[2, 0], [1, 0.5]]: Sigma = [[4, 2], [2, 1.25]].
        let mut rng = HostRng::new(3);
        let xs: Vec<f32> = (0..200_000)
            .flat_map(|_| {
                let (a, b) = (rng.normal(), rng.normal());
                [(1.0 + 2.0 * a) as f32, (-2.0 + a + 0.5 * b) as f32]
            })
            .collect();
        let g = Gaussian::fit(&xs, 2, 0.0, false).unwrap();
        let want = [2.0, 0.0, 1.0, 0.5];
        for (l, w) in g.chol.iter().zip(want) {
            assert!((l - w).abs() < 0.02, "{:?}", g.chol);
        }
        // log q against the closed form at a point: det Sigma = 1, quad form by hand.
        let (x, y) = (2.0f64, -1.0f64);
        let (u, v) = (x - g.mean[0], y - g.mean[1]);
        let c = g.chol.clone();
        let s = [c[0] * c[0], c[0] * c[2], c[2] * c[2] + c[3] * c[3]];
        let det = s[0] * s[2] - s[1] * s[1];
        let quad = (s[2] * u * u - 2.0 * s[1] * u * v + s[0] * v * v) / det;
        let want = -0.5 * quad - 0.5 * det.ln() - (2.0 * std::f64::consts::PI).ln();
        assert!((g.log_density(&[x, y]) - want).abs() < 1e-9);
        // L^-1 L = I
        let inv = g.inverse_chol();
        let prod = [inv[0] * c[0], inv[2] * c[0] + inv[3] * c[2], inv[3] * c[3]];
        assert!((prod[0] - 1.0).abs() < 1e-12 && prod[1].abs() < 1e-12 && (prod[2] - 1.0).abs() < 1e-12);
    }

    #[test]
    fn singular_covariances_are_refused_and_sigma_regularises() {
        // The second coordinate is twice the first: rank 1.
        let mut rng = HostRng::new(4);
        let xs: Vec<f32> = (0..1000)
            .flat_map(|_| {
                let a = rng.normal() as f32;
                [a, 2.0 * a]
            })
            .collect();
        let e = Gaussian::fit(&xs, 2, 0.0, false).unwrap_err();
        assert!(e.contains("singular"), "{e}");
        assert!(Gaussian::fit(&xs, 2, 0.01, false).is_ok());
        assert!(Gaussian::fit(&xs, 2, 0.0, true).is_ok(), "the diagonal fit keeps both variances");
    }
}
