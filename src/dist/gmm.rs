//! An analytic model: a mixture of isotropic Gaussians, whose noised density
//! p(x; sigma) = sum_k w_k N(x; mu_k, (s_k^2 + sigma^2) I) and score are exact at every noise
//! level. It is a graph like any trained model, so samplers, likelihoods and demos use it
//! unchanged (`--model gmm:FILE.toml`).
//!
//! File format:
//! ```toml
//! [[component]]
//! weight = 0.8
//! mean = [5.0, 5.0]
//! std = 1.0
//! ```

use crate::error::{Error, Result};
use crate::graph::{Graph, Var};
use crate::ops::elementwise::Unary;
use crate::ops::reduce::Reduce;
use crate::rng::HostRng;

/// An isotropic Gaussian mixture (analytic scores, densities and draws).
#[derive(Clone, Debug, PartialEq)]
pub struct Gmm {
    /// Normalised weights.
    pub weights: Vec<f64>,
    /// The components' means.
    pub means: Vec<Vec<f64>>,
    /// The components' standard deviations (isotropic).
    pub stds: Vec<f64>,
}

impl Gmm {
    /// A mixture of these components (weights normalised; sizes and values checked).
    pub fn new(weights: Vec<f64>, means: Vec<Vec<f64>>, stds: Vec<f64>) -> Result<Gmm> {
        let k = weights.len();
        if k == 0 || means.len() != k || stds.len() != k {
            return Err(Error::Invalid(format!(
                "mixture needs as many weights ({k}), means ({}) and stds ({}), at least one",
                means.len(),
                stds.len()
            )));
        }
        let d = means[0].len();
        if d == 0 || means.iter().any(|m| m.len() != d) {
            return Err(Error::Invalid("mixture means must all have the same, non-zero length".into()));
        }
        // Checked in the precision that runs: the score graph holds means and std^2 in f32.
        let f32ok = |v: f64| v.is_finite() && v.abs() < f32::MAX as f64;
        if let Some(w) = weights.iter().find(|w| !(**w > 0.0 && f32ok(**w))) {
            return Err(Error::Invalid(format!("mixture weight {w} must be a positive, finite number")));
        }
        if let Some(s) = stds.iter().find(|s| !(**s > 0.0 && f32ok(*s * *s) && f32ok(1.0 / (*s * *s)))) {
            return Err(Error::Invalid(format!(
                "mixture std {s} must be positive with std^2 and 1/std^2 finite in f32"
            )));
        }
        if let Some(m) = means.iter().flatten().find(|m| !f32ok(**m)) {
            return Err(Error::Invalid(format!("mixture mean {m} must be a finite f32 number")));
        }
        let tot: f64 = weights.iter().sum();
        Ok(Gmm { weights: weights.iter().map(|w| w / tot).collect(), means, stds })
    }

    /// W1's data: 8 Gaussians on a circle of radius 4, std 0.3, equal weights.
    pub fn ring8() -> Gmm {
        let means = (0..8)
            .map(|k| {
                let a = k as f64 * std::f64::consts::PI / 4.0;
                vec![4.0 * a.cos(), 4.0 * a.sin()]
            })
            .collect();
        Gmm::new(vec![1.0; 8], means, vec![0.3; 8]).unwrap()
    }

    /// Song & Ermon 2019, Fig. 3: 0.2 N((-5, -5), I) + 0.8 N((5, 5), I).
    pub fn ncsn_two_modes() -> Gmm {
        Gmm::new(vec![0.2, 0.8], vec![vec![-5.0, -5.0], vec![5.0, 5.0]], vec![1.0, 1.0]).unwrap()
    }

    /// Read a mixture from TOML (see the module docs); `path` names the file in errors.
    pub fn from_toml(text: &str, path: &str) -> Result<Gmm> {
        let v: toml::Value =
            text.parse().map_err(|e: toml::de::Error| Error::Invalid(format!("{path}: {}", e.message())))?;
        let comps = v
            .get("component")
            .and_then(|c| c.as_array())
            .ok_or_else(|| Error::Invalid(format!("{path}: no [[component]] tables")))?;
        let (mut w, mut m, mut s) = (vec![], vec![], vec![]);
        for (i, c) in comps.iter().enumerate() {
            let t = c.as_table().ok_or_else(|| Error::Invalid(format!("{path}: component {i} is not a table")))?;
            for key in t.keys() {
                if !["weight", "mean", "std"].contains(&key.as_str()) {
                    return Err(Error::Invalid(format!(
                        "{path}: unknown key '{key}' in component {i} (use weight, mean, std)"
                    )));
                }
            }
            let num = |k: &str| -> Result<f64> {
                t.get(k)
                    .and_then(|x| x.as_float().or_else(|| x.as_integer().map(|i| i as f64)))
                    .ok_or_else(|| Error::Invalid(format!("{path}: component {i} needs a number '{k}'")))
            };
            w.push(num("weight")?);
            s.push(num("std")?);
            let mean = t
                .get("mean")
                .and_then(|x| x.as_array())
                .ok_or_else(|| Error::Invalid(format!("{path}: component {i} needs 'mean = [..]'")))?;
            m.push(
                mean.iter()
                    .map(|x| x.as_float().or_else(|| x.as_integer().map(|i| i as f64)))
                    .collect::<Option<Vec<f64>>>()
                    .ok_or_else(|| Error::Invalid(format!("{path}: component {i}: mean must be numbers")))?,
            );
        }
        Gmm::new(w, m, s).map_err(|e| e.context(path))
    }

    /// The mixture's mean and its variance per dimension (averaged over dimensions).
    pub fn moments(&self) -> crate::dist::Moments {
        let d = self.dim();
        let mean: Vec<f64> =
            (0..d).map(|j| self.weights.iter().zip(&self.means).map(|(w, m)| w * m[j]).sum()).collect();
        let second: f64 = (0..self.weights.len())
            .map(|k| {
                self.weights[k] * (self.means[k].iter().map(|m| m * m).sum::<f64>() / d as f64 + self.stds[k].powi(2))
            })
            .sum();
        let var = second - mean.iter().map(|m| m * m).sum::<f64>() / d as f64;
        crate::dist::Moments { mean, var: var.max(0.0) }
    }

    /// The dimension.
    pub fn dim(&self) -> usize {
        self.means[0].len()
    }

    /// log p(x; sigma) (f64).
    pub fn log_density(&self, x: &[f64], sigma: f64) -> f64 {
        let d = self.dim() as f64;
        let terms: Vec<f64> = (0..self.weights.len())
            .map(|k| {
                let v = self.stds[k].powi(2) + sigma * sigma;
                let sq: f64 = x.iter().zip(&self.means[k]).map(|(a, b)| (a - b).powi(2)).sum();
                self.weights[k].ln() - 0.5 * d * (2.0 * std::f64::consts::PI * v).ln() - sq / (2.0 * v)
            })
            .collect();
        let m = terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        m + terms.iter().map(|t| (t - m).exp()).sum::<f64>().ln()
    }

    /// grad_x log p(x; sigma) (f64).
    pub fn score(&self, x: &[f64], sigma: f64) -> Vec<f64> {
        let d = self.dim();
        let lp = self.log_density(x, sigma);
        let mut s = vec![0.0; d];
        for k in 0..self.weights.len() {
            let v = self.stds[k].powi(2) + sigma * sigma;
            let sq: f64 = x.iter().zip(&self.means[k]).map(|(a, b)| (a - b).powi(2)).sum();
            let lk = self.weights[k].ln() - 0.5 * d as f64 * (2.0 * std::f64::consts::PI * v).ln() - sq / (2.0 * v);
            let r = (lk - lp).exp();
            for j in 0..d {
                s[j] -= r * (x[j] - self.means[k][j]) / v;
            }
        }
        s
    }

    /// The normalised product of this mixture and `other`, both noised to `sigma`, and the log of
    /// its normaliser log Z = log int p(x; sigma) q(x; sigma) dx: a product of isotropic
    /// Gaussian mixtures is one (component pairs (a, b) with variance va vb / (va + vb), mean
    /// (ma vb + mb va) / (va + vb) and weight wa wb N(ma; mb, (va + vb) I)). The exact target of
    /// a product composition, for tests and metrics.
    pub fn product(&self, other: &Gmm, sigma: f64) -> Result<(Gmm, f64)> {
        let d = self.dim();
        if other.dim() != d {
            return Err(Error::Shape(format!("product of mixtures of {d} and {} dimensions", other.dim())));
        }
        let (mut w, mut m, mut s) = (vec![], vec![], vec![]);
        for a in 0..self.weights.len() {
            for b in 0..other.weights.len() {
                let (va, vb) = (self.stds[a].powi(2) + sigma * sigma, other.stds[b].powi(2) + sigma * sigma);
                let (ma, mb) = (&self.means[a], &other.means[b]);
                let sq: f64 = ma.iter().zip(mb).map(|(x, y)| (x - y).powi(2)).sum();
                let log_n = -0.5 * d as f64 * (2.0 * std::f64::consts::PI * (va + vb)).ln() - sq / (2.0 * (va + vb));
                w.push(self.weights[a].ln() + other.weights[b].ln() + log_n);
                m.push(ma.iter().zip(mb).map(|(x, y)| (x * vb + y * va) / (va + vb)).collect());
                s.push((va * vb / (va + vb)).sqrt());
            }
        }
        let top = w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let log_z = top + w.iter().map(|l| (l - top).exp()).sum::<f64>().ln();
        let w = w.iter().map(|l| (l - log_z).exp()).collect();
        Ok((Gmm::new(w, m, s)?, log_z))
    }

    /// Index of the component with the largest responsibility at x (noise-free).
    pub fn nearest_mode(&self, x: &[f64]) -> usize {
        (0..self.weights.len())
            .max_by(|&a, &b| {
                let la = self.component_log(a, x);
                let lb = self.component_log(b, x);
                la.partial_cmp(&lb).unwrap()
            })
            .unwrap()
    }
    fn component_log(&self, k: usize, x: &[f64]) -> f64 {
        let v = self.stds[k].powi(2);
        let sq: f64 = x.iter().zip(&self.means[k]).map(|(a, b)| (a - b).powi(2)).sum();
        self.weights[k].ln() - 0.5 * self.dim() as f64 * v.ln() - sq / (2.0 * v)
    }

    /// n samples [n * D] of the noise-free mixture.
    pub fn sample(&self, n: usize, rng: &mut HostRng) -> Vec<f32> {
        self.sample_labelled(n, rng).0
    }

    /// n samples [n * D] and the component each came from (the same draws as `sample`).
    pub fn sample_labelled(&self, n: usize, rng: &mut HostRng) -> (Vec<f32>, Vec<u32>) {
        let mut out = Vec::with_capacity(n * self.dim());
        let mut labels = Vec::with_capacity(n);
        for _ in 0..n {
            let u = rng.uniform();
            let mut acc = 0.0;
            let mut k = self.weights.len() - 1;
            for (i, w) in self.weights.iter().enumerate() {
                acc += w;
                if u < acc {
                    k = i;
                    break;
                }
            }
            for j in 0..self.dim() {
                out.push((self.means[k][j] + self.stds[k] * rng.normal()) as f32);
            }
            labels.push(k as u32);
        }
        (out, labels)
    }

    /// log w_k + log N(x; mu_k, v_k I) up to -D/2 log 2 pi [B, K], x - mu_k [B, K, D] and 1 / v_k
    /// [B, K], with v_k = s_k^2 + sigma^2, as graph ops.
    fn component_logs(&self, g: &mut Graph, x: Var, sigma: Var) -> Result<(Var, Var, Var)> {
        let (k, d) = (self.weights.len(), self.dim());
        let b = g.shape(x)[0];
        let mu: Vec<f32> = self.means.iter().flatten().map(|&m| m as f32).collect();
        let mu = g.constant(mu, &[1, k, d])?;
        let s2 = g.constant(self.stds.iter().map(|s| (s * s) as f32).collect(), &[1, k])?;
        let logw = g.constant(self.weights.iter().map(|w| w.ln() as f32).collect(), &[1, k])?;
        let sig = g.reshape(sigma, &[b, 1])?;
        let sig2 = g.unary(Unary::Square, sig);
        let v = g.add(s2, sig2)?; // [B, K]
        let x3 = g.reshape(x, &[b, 1, d])?;
        let diff = g.sub(x3, mu)?; // [B, K, D]
        let d2 = g.unary(Unary::Square, diff);
        let sq = g.sum(d2, 2)?; // [B, K]
        let inv_v = g.unary(Unary::Recip, v);
        let q = g.mul(sq, inv_v)?;
        let q = g.scale(q, -0.5);
        let lv = g.unary(Unary::Log, v);
        let lv = g.scale(lv, -0.5 * d as f32);
        let lp = g.add(q, lv)?;
        Ok((g.add(lp, logw)?, diff, inv_v))
    }

    /// The exact score as graph ops: x [B, D], sigma [B] -> [B, D].
    pub fn score_graph(&self, g: &mut Graph, x: Var, sigma: Var) -> Result<Var> {
        let (k, b) = (self.weights.len(), g.shape(x)[0]);
        let (lp, diff, inv_v) = self.component_logs(g, x, sigma)?;
        let r = g.softmax(lp); // responsibilities [B, K]
        let a = g.mul(r, inv_v)?;
        let a3 = g.reshape(a, &[b, k, 1])?;
        let t = g.mul(a3, diff)?;
        let s = g.reduce(Reduce::Sum, t, 1)?; // [B, D]
        Ok(g.neg(s))
    }

    /// The exact energy U = -log p(x; sigma) [B] (normalised: its log-normaliser is 0), as graph
    /// ops, by a log-sum-exp over the components shifted by their maximum.
    pub fn energy_graph(&self, g: &mut Graph, x: Var, sigma: Var) -> Result<Var> {
        let (lp, _, _) = self.component_logs(g, x, sigma)?;
        let m = g.reduce_keep(Reduce::Max, lp, 1)?; // [B, 1]
        let c = g.sub(lp, m)?;
        let e = g.unary(Unary::Exp, c);
        let se = g.sum(e, 1)?;
        let ls = g.unary(Unary::Log, se);
        let b = g.shape(x)[0];
        let m = g.reshape(m, &[b])?;
        let logp = g.add(ls, m)?;
        let half_log_2pi = 0.5 * self.dim() as f32 * (2.0 * std::f32::consts::PI).ln();
        Ok(g.unary(Unary::Affine(-1.0, half_log_2pi), logp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_is_the_gradient_of_the_log_density() {
        let g = Gmm::new(vec![0.3, 0.7], vec![vec![1.0, -2.0], vec![-1.5, 0.5]], vec![0.5, 1.2]).unwrap();
        for (x, sig) in [([0.3, 0.1], 0.0), ([2.0, -1.0], 0.7), ([-3.0, 4.0], 3.0)] {
            let s = g.score(&x, sig);
            for j in 0..2 {
                let (mut a, mut b) = (x, x);
                a[j] += 1e-5;
                b[j] -= 1e-5;
                let fd = (g.log_density(&a, sig) - g.log_density(&b, sig)) / 2e-5;
                assert!((fd - s[j]).abs() < 1e-6 * (1.0 + fd.abs()), "{x:?} {sig}: {fd} vs {}", s[j]);
            }
        }
    }

    #[test]
    fn toml_errors_name_the_file_and_key() {
        let e = Gmm::from_toml("[[component]]\nweight = 1\nmean = [0]\nstd = 1\ncolour = 2\n", "m.toml").unwrap_err();
        assert!(e.to_string().contains("m.toml") && e.to_string().contains("colour"), "{e}");
        let e = Gmm::from_toml("[[component]]\nweight = 1\nstd = 1\n", "m.toml").unwrap_err();
        assert!(e.to_string().contains("mean"), "{e}");
        let g = Gmm::from_toml("[[component]]\nweight = 1\nmean = [0, 1]\nstd = 2\n", "m.toml").unwrap();
        assert_eq!(g.dim(), 2);
    }
}
