//! How far a model's score is from the truth: the Fisher divergence
//!   F(sigma) = E_{x ~ p_sigma} || s_theta(x, sigma) - grad_x log p_sigma(x) ||^2
//! to an analytic mixture, estimated on fresh draws of the noised mixture, with its standard
//! error; for energy models also the correlation between -U(x) and log p_sigma(x) (the energy
//! is only defined up to a constant, so a correlation, not a difference).

use super::{Probes, ScoreFn, ScoreModel};
use crate::dist::Gmm;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::rng::HostRng;

/// One level's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Fisher {
    /// The noise level.
    pub sigma: f64,
    /// Points the estimate averages over.
    pub points: usize,
    /// The estimate of F(sigma) and its standard error (sd / sqrt(points)).
    pub divergence: f64,
    /// The estimate's standard error.
    pub std_error: f64,
    /// E ||grad log p_sigma||^2: the divergence of the zero score, the scale F is read against.
    pub truth_norm: f64,
    /// Pearson correlation of -U and log p_sigma over the points (energy models).
    pub energy_corr: Option<f64>,
    /// Mean of log p_sigma and, for models with a log-normaliser, of -U - log_z (nats).
    pub mean_log_density: f64,
    /// The mean of -U - log_z over the points, for models with a log-normaliser.
    pub model_mean_log_density: Option<f64>,
}

/// The score (and energy) of `model` at `points` [n * d], all at level sigma, `batch` at a time.
pub fn evaluate_at(
    gpu: &Gpu,
    model: &dyn ScoreModel,
    points: &[f32],
    sigma: f64,
    batch: usize,
) -> Result<(Vec<f32>, Option<Vec<f32>>)> {
    let d = model.numel();
    let n = points.len() / d.max(1);
    let b = batch.clamp(1, n.max(1));
    let f = ScoreFn::plan(gpu, model, b, Probes::None)?;
    f.plan.feed(gpu, "sigma", &vec![sigma as f32; b])?;
    let (mut scores, mut energies) = (Vec::with_capacity(n * d), f.energy().map(|_| Vec::with_capacity(n)));
    for c0 in (0..n).step_by(b) {
        let rows = b.min(n - c0);
        let mut x = points[c0 * d..(c0 + rows) * d].to_vec();
        x.resize(b * d, 0.0);
        f.plan.feed(gpu, "x", &x)?;
        f.plan.run(gpu)?;
        scores.extend_from_slice(&f.score().to_vec(gpu)?[..rows * d]);
        if let (Some(e), Some(t)) = (energies.as_mut(), f.energy()) {
            e.extend_from_slice(&t.to_vec(gpu)?[..rows]);
        }
    }
    Ok((scores, energies))
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    (m, (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt())
}

fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let ((ma, sa), (mb, sb)) = (mean_sd(a), mean_sd(b));
    let cov = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum::<f64>() / (a.len().max(2) - 1) as f64;
    cov / (sa * sb)
}

/// The Fisher divergence of `model` to `gmm` at level `sigma` on `n` fresh draws of the
/// noised mixture (from `seed`).
pub fn fisher(
    gpu: &Gpu,
    model: &dyn ScoreModel,
    gmm: &Gmm,
    sigma: f64,
    n: usize,
    batch: usize,
    seed: u64,
) -> Result<Fisher> {
    let d = model.numel();
    if gmm.dim() != d {
        return Err(Error::Shape(format!(
            "the reference mixture is {}-dimensional, the model {d}-dimensional",
            gmm.dim()
        )));
    }
    if !(sigma > 0.0 && sigma.is_finite()) || n < 2 {
        return Err(Error::Invalid(format!(
            "Fisher divergence: need a positive level (got {sigma}) and at least 2 points"
        )));
    }
    let mut rng = HostRng::new(seed);
    let mut pts = gmm.sample(n, &mut rng);
    pts.iter_mut().for_each(|v| *v += (sigma * rng.normal()) as f32);
    let (s, e) = evaluate_at(gpu, model, &pts, sigma, batch)?;
    let (mut div, mut norm, mut logp) = (Vec::with_capacity(n), 0.0, Vec::with_capacity(n));
    for (x, sx) in pts.chunks(d).zip(s.chunks(d)) {
        let x: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let t = gmm.score(&x, sigma);
        div.push(t.iter().zip(sx).map(|(a, &b)| (a - b as f64).powi(2)).sum::<f64>());
        norm += t.iter().map(|a| a * a).sum::<f64>() / n as f64;
        logp.push(gmm.log_density(&x, sigma));
    }
    let (m, sd) = mean_sd(&div);
    let neg_u: Option<Vec<f64>> = e.map(|e| e.iter().map(|&u| -(u as f64)).collect());
    Ok(Fisher {
        sigma,
        points: n,
        divergence: m,
        std_error: sd / (n as f64).sqrt(),
        truth_norm: norm,
        energy_corr: neg_u.as_ref().map(|u| correlation(u, &logp)),
        mean_log_density: mean_sd(&logp).0,
        model_mean_log_density: neg_u.zip(model.log_normaliser()).map(|(u, c)| mean_sd(&u).0 - c),
    })
}

/// log Z = log of the integral of exp(-U(x, sigma)) over the box [lo, hi]^2 by the midpoint rule
/// on a `k` x `k` grid (2-D energy models): the normaliser NCE's log_z should have learned.
pub fn log_partition_2d(
    gpu: &Gpu,
    model: &dyn ScoreModel,
    sigma: f64,
    lo: [f64; 2],
    hi: [f64; 2],
    k: usize,
) -> Result<f64> {
    if model.numel() != 2 {
        return Err(Error::Shape(format!("log_partition_2d takes 2-D models, this one is {}-D", model.numel())));
    }
    let h = [(hi[0] - lo[0]) / k as f64, (hi[1] - lo[1]) / k as f64];
    let pts: Vec<f32> = (0..k * k)
        .flat_map(|i| {
            [(lo[0] + (i % k) as f64 * h[0] + 0.5 * h[0]) as f32, (lo[1] + (i / k) as f64 * h[1] + 0.5 * h[1]) as f32]
        })
        .collect();
    let (_, e) = evaluate_at(gpu, model, &pts, sigma, 4096)?;
    let e = e.ok_or_else(|| Error::Invalid("log_partition_2d needs an energy model".into()))?;
    // log sum exp(-U) h0 h1, stably.
    let m = e.iter().map(|&u| -(u as f64)).fold(f64::NEG_INFINITY, f64::max);
    let s: f64 = e.iter().map(|&u| (-(u as f64) - m).exp()).sum();
    Ok(m + s.ln() + (h[0] * h[1]).ln())
}
