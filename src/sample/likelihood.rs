//! Likelihoods by the probability-flow ODE (Song et al. 2021, Sec. 4.3 and App. D.2): run
//! dx~/dsigma = v = -sigma score from the data at sigma_min up to sigma_max with Heun steps
//! (log-spaced levels), integrating the instantaneous change of variables
//!   log p(x(sigma_min); sigma_min) = log N(x(sigma_max); mean, prior_var I) + int div v dsigma,
//! (the samplers' prior: the data's mean, and sigma_max^2 plus the data's variance),
//! with div v = -sigma div score computed exactly (one vector-Jacobian product per dimension)
//! or by Hutchinson's estimator (Rademacher probes fixed per chain).
//! The result is the density of the data smoothed by N(0, sigma_min^2) in the model's
//! coordinates (x~ at sigma_min; the data themselves for VE and EDM).

use super::samplers::{geometric_sigmas, ode_forward};
use super::{Runner, ScoreFn};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::score::Process;

/// Negative log-likelihood in nats per sample of `data` [n * D] (chains 0..n, probes drawn with
/// `seed`), over `levels` log-spaced noise levels.
pub fn nll(gpu: &Gpu, model: &ScoreFn, process: &Process, data: &[f32], levels: usize, seed: u64) -> Result<Vec<f64>> {
    if model.div().is_none() {
        return Err(Error::Invalid("likelihood needs a model planned with a divergence (Probes)".into()));
    }
    let (b, d) = (model.batch, model.numel());
    if !data.len().is_multiple_of(d) {
        return Err(Error::Shape(format!("{} data values are not whole samples of {d}", data.len())));
    }
    let n = data.len() / d;
    let mut sig = geometric_sigmas(process.sigma_max(), process.sigma_min(), levels);
    sig.reverse();
    let runner = Runner::new(gpu, model, ode_forward(&sig), seed)?;
    // The samplers' prior, with the data's moments estimated from the data given.
    let m = crate::dist::Moments::of(data, d);
    let var = process.prior_var_with(m.var);
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    while start < n {
        let take = (n - start).min(b);
        let mut x0 = vec![0f32; b * d];
        x0[..take * d].copy_from_slice(&data[start * d..(start + take) * d]);
        runner.run_batch(gpu, start, Some(&x0), 512, &mut |_, _| {})?;
        let xt = model.x().to_vec(gpu)?;
        let acc = runner.acc.as_ref().unwrap().to_vec(gpu)?;
        for r in 0..take {
            let sq: f64 = xt[r * d..(r + 1) * d].iter().zip(&m.mean).map(|(&v, mu)| (v as f64 - mu).powi(2)).sum();
            let log_prior = -0.5 * sq / var - 0.5 * d as f64 * (2.0 * std::f64::consts::PI * var).ln();
            out.push(-(log_prior + acc[r] as f64));
        }
        start += take;
    }
    Ok(out)
}

/// Bits per dimension of 8-bit data at k / 127.5 - 1 in [-1, 1], dequantised uniformly over
/// bins of width 1/127.5: -log2 P(k) <= (nll + D ln 127.5) / ln 2 (nll of the dequantised data).
pub fn bits_per_dim_8bit(nll_nats: f64, d: usize) -> f64 {
    (nll_nats / d as f64 + 127.5f64.ln()) / std::f64::consts::LN_2
}
