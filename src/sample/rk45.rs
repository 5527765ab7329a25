//! Adaptive probability-flow ODE solver: Dormand & Prince (1980) RK5(4) with the
//! usual step-size control, the method of score_sde's `ode_sampler` (scipy's RK45, rtol = atol
//! = 1e-5 there). It integrates dx~/dsigma = -sigma score from sigma_max to sigma_min, then
//! takes Tweedie's denoising step x + sigma_min^2 s. Stages run on the GPU (fused
//! combination kernels of shaders/sampler.wgsl); the error norm, read back once per step,
//! drives the step size on the host. The norm is taken over the whole batch (as scipy does on
//! the flattened batch), so unlike the fixed-step samplers a chain's result depends on its
//! batch; the prior draw is the same Philox draw as theirs.

use super::{Params, ScoreFn};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Recorder};
use crate::ops::grid;
use crate::ops::random::{random_ref, Dist, RngKey};
use crate::tensor::Tensor;

const C: [f64; 7] = [0.0, 1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0, 1.0, 1.0];
const A: [[f64; 6]; 7] = [
    [0.0; 6],
    [1.0 / 5.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    [3.0 / 40.0, 9.0 / 40.0, 0.0, 0.0, 0.0, 0.0],
    [44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0, 0.0, 0.0, 0.0],
    [19372.0 / 6561.0, -25360.0 / 2187.0, 64448.0 / 6561.0, -212.0 / 729.0, 0.0, 0.0],
    [9017.0 / 3168.0, -355.0 / 33.0, 46732.0 / 5247.0, 49.0 / 176.0, -5103.0 / 18656.0, 0.0],
    [35.0 / 384.0, 0.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0],
];
/// 5th-order weights (= A[6]) minus the embedded 4th-order ones: the error estimate.
const E: [f64; 7] =
    [71.0 / 57600.0, 0.0, -71.0 / 16695.0, 71.0 / 1920.0, -17253.0 / 339200.0, 22.0 / 525.0, -1.0 / 40.0];

/// Result of a solve: samples [B * D] and model evaluations per chain.
pub struct Rk45Out {
    pub x: Vec<f32>,
    pub evaluations: usize,
}

/// Solve for chains chain0 .. chain0 + B from the prior N(mean, std^2 I), `prior` = (mean [D], std).
#[allow(clippy::too_many_arguments)]
pub fn rk45(
    gpu: &Gpu,
    model: &ScoreFn,
    sigma_max: f64,
    sigma_min: f64,
    prior: (&[f32], f64),
    tol: f64,
    seed: u64,
    chain0: usize,
) -> Result<Rk45Out> {
    let (b, d) = (model.batch, model.numel());
    let n = b * d;
    if prior.0.len() != d {
        return Err(Error::Shape(format!("rk45: the prior mean has {} values, the samples {d}", prior.0.len())));
    }
    let mut x0 = Vec::with_capacity(n);
    for r in 0..b {
        let z = random_ref(d, RngKey { seed, stream: (chain0 + r) as u64, counter: 0 }, Dist::Normal);
        x0.extend(z.iter().zip(prior.0.iter().cycle()).map(|(v, m)| m + v * prior.1 as f32));
    }
    let x = Tensor::from_slice(gpu, &x0, &[n])?;
    let xn = Tensor::zeros(gpu, &[n])?;
    let err = Tensor::zeros(gpu, &[n])?;
    let k = Tensor::zeros(gpu, &[7 * n])?;
    let coef = Tensor::zeros(gpu, &[10])?;
    let rec0 = Recorder::capturing(gpu);
    let g = grid(&rec0, n, 256)?;
    let prm = Params {
        n: n as u32,
        d: d as u32,
        b: b as u32,
        chain0: 0,
        seed_lo: 0,
        seed_hi: 0,
        stream_hi: 0,
        groups_x: g[0],
    };
    let lin = rec0.pipeline("sampler", "lincomb", &[])?;
    let store = rec0.pipeline("sampler", "store_k", &[])?;
    drop(rec0);
    let write_coef = |c: &[f64; 10]| {
        let v: Vec<f32> = c.iter().map(|&v| v as f32).collect();
        gpu.queue.write_buffer(coef.buffer().buffer(), 0, bytemuck::cast_slice(&v));
    };
    // One stage: model input <- x + h sum a_j K_j, evaluate at sigma, K[j] <- -sigma s.
    let stage = |j: usize, sigma: f64, a: &[f64]| -> Result<()> {
        let mut c = [0.0; 10];
        c[..a.len()].copy_from_slice(a);
        c[7] = j as f64;
        c[8] = -sigma;
        c[9] = 1.0;
        write_coef(&c);
        gpu.queue.write_buffer(model.sigma().buffer().buffer(), 0, bytemuck::cast_slice(&vec![sigma as f32; b]));
        let mut rec = Recorder::new(gpu);
        let pi = rec.params(&prm);
        rec.dispatch_at(
            &lin,
            Some(pi),
            &[(1, coef.buffer()), (3, x.buffer()), (5, model.x().buffer()), (6, k.buffer())],
            g,
        )?;
        model.plan.record(&mut rec);
        let pi = rec.params(&prm);
        rec.dispatch_at(&store, Some(pi), &[(1, coef.buffer()), (4, model.score().buffer()), (6, k.buffer())], g)?;
        rec.submit()
    };
    // out <- w x + sum c_j K_j
    let combine = |c: &[f64], w: f64, out: &Tensor| -> Result<()> {
        let mut cc = [0.0; 10];
        cc[..7].copy_from_slice(c);
        cc[9] = w;
        write_coef(&cc);
        let mut rec = Recorder::new(gpu);
        let pi = rec.params(&prm);
        rec.dispatch_at(&lin, Some(pi), &[(1, coef.buffer()), (3, x.buffer()), (5, out.buffer()), (6, k.buffer())], g)?;
        rec.submit()
    };
    let (mut s, end) = (sigma_max, sigma_min);
    let mut h = -(sigma_max - sigma_min) / 100.0;
    let mut evals = 1;
    stage(0, s, &[])?; // K_0 = f(x, sigma_max)
    let mut steps = 0;
    while s > end * (1.0 + 1e-9) {
        steps += 1;
        if steps > 100_000 {
            return Err(Error::Invalid("rk45: more than 100,000 steps; loosen the tolerance".into()));
        }
        if s + h < end {
            h = end - s;
        }
        for j in 1..7 {
            let a: Vec<f64> = A[j][..j].iter().map(|v| v * h).collect();
            stage(j, s + C[j] * h, &a)?;
        }
        evals += 6;
        let y: Vec<f64> = A[6].iter().map(|v| v * h).chain([0.0]).collect();
        combine(&y, 1.0, &xn)?;
        let e: Vec<f64> = E.iter().map(|v| v * h).collect();
        combine(&e, 0.0, &err)?;
        let (ev, xv, x1) = (err.to_vec(gpu)?, x.to_vec(gpu)?, xn.to_vec(gpu)?);
        let norm = (ev
            .iter()
            .zip(xv.iter().zip(&x1))
            .map(|(e, (a, b))| (*e as f64 / (tol + tol * (a.abs().max(b.abs()) as f64))).powi(2))
            .sum::<f64>()
            / n as f64)
            .sqrt();
        if !norm.is_finite() {
            return Err(Error::Invalid("rk45: the solution became NaN or infinite".into()));
        }
        if norm <= 1.0 {
            // Accept: x <- x5, sigma += h, and K_0 at the new point (K_6 is that value up to
            // rounding, but a buffer cannot be copied onto itself: one more evaluation).
            let mut rec = Recorder::new(gpu);
            rec.copy_buffers(xn.buffer(), 0, x.buffer(), 0, 4 * n as u64);
            rec.submit()?;
            s += h;
            stage(0, s, &[])?;
            evals += 1;
        }
        let factor = if norm == 0.0 { 5.0 } else { (0.9 * norm.powf(-0.2)).clamp(0.2, 5.0) };
        h *= if norm <= 1.0 { factor } else { factor.min(1.0) };
    }
    // Tweedie's denoising step at sigma_min: x + sigma^2 s = x - sigma K_0.
    combine(&[-end, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], 1.0, &xn)?;
    Ok(Rk45Out { x: xn.to_vec(gpu)?, evaluations: evals })
}
