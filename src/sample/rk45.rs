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
use crate::ops::kernels::slots::sampler as S;
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
    /// The chains' end points [B * D].
    pub x: Vec<f32>,
    /// Model evaluations taken per chain.
    pub evaluations: usize,
}

/// The solver's GPU state for one batch: the solution x, the trial x5, the error estimate,
/// the seven stage values K and the coefficient block the `lincomb` / `store_k` kernels read.
struct Solver<'m> {
    gpu: &'m Gpu,
    model: &'m ScoreFn,
    x: Tensor,
    xn: Tensor,
    err: Tensor,
    k: Tensor,
    coef: Tensor,
    prm: Params,
    lin: std::sync::Arc<crate::gpu::pipeline::Pipeline>,
    store: std::sync::Arc<crate::gpu::pipeline::Pipeline>,
    grid: [u32; 3],
}

impl<'m> Solver<'m> {
    fn new(gpu: &'m Gpu, model: &'m ScoreFn, x0: &[f32]) -> Result<Self> {
        let (b, d) = (model.batch, model.numel());
        let n = b * d;
        let rec0 = Recorder::capturing(gpu);
        let g = grid(&rec0, n, 256)?;
        let prm = Params { n: n as u32, d: d as u32, b: b as u32, groups_x: g[0], ..Default::default() };
        Ok(Solver {
            gpu,
            model,
            x: Tensor::from_slice(gpu, x0, &[n])?,
            xn: Tensor::zeros(gpu, &[n])?,
            err: Tensor::zeros(gpu, &[n])?,
            k: Tensor::zeros(gpu, &[7 * n])?,
            coef: Tensor::zeros(gpu, &[10])?,
            prm,
            lin: rec0.pipeline("sampler", "lincomb", &[])?,
            store: rec0.pipeline("sampler", "store_k", &[])?,
            grid: g,
        })
    }

    fn write_coef(&self, c: &[f64; 10]) {
        let v: Vec<f32> = c.iter().map(|&v| v as f32).collect();
        self.gpu.queue.write_buffer(self.coef.buffer().buffer(), 0, bytemuck::cast_slice(&v));
    }

    /// One stage: model input <- x + h sum a_j K_j, evaluate at sigma, K[j] <- -sigma s.
    fn stage(&self, j: usize, sigma: f64, a: &[f64]) -> Result<()> {
        let mut c = [0.0; 10];
        c[..a.len()].copy_from_slice(a);
        c[7] = j as f64;
        c[8] = -sigma;
        c[9] = 1.0;
        self.write_coef(&c);
        let (gpu, model) = (self.gpu, self.model);
        gpu.queue.write_buffer(
            model.sigma().buffer().buffer(),
            0,
            bytemuck::cast_slice(&vec![sigma as f32; model.batch]),
        );
        let mut rec = Recorder::new(gpu);
        let pi = rec.params(&self.prm);
        let bind = [
            (S::SCHED, self.coef.buffer()),
            (S::X, self.x.buffer()),
            (S::U, model.x().buffer()),
            (S::V, self.k.buffer()),
        ];
        rec.dispatch_at(&self.lin, Some(pi), &bind, self.grid)?;
        model.plan.record(&mut rec);
        let pi = rec.params(&self.prm);
        let bind = [(S::SCHED, self.coef.buffer()), (S::S, model.score().buffer()), (S::V, self.k.buffer())];
        rec.dispatch_at(&self.store, Some(pi), &bind, self.grid)?;
        rec.submit()
    }

    /// out <- w x + sum c_j K_j
    fn combine(&self, c: &[f64], w: f64, out: &Tensor) -> Result<()> {
        let mut cc = [0.0; 10];
        cc[..7].copy_from_slice(c);
        cc[9] = w;
        self.write_coef(&cc);
        let mut rec = Recorder::new(self.gpu);
        let pi = rec.params(&self.prm);
        let bind =
            [(S::SCHED, self.coef.buffer()), (S::X, self.x.buffer()), (S::U, out.buffer()), (S::V, self.k.buffer())];
        rec.dispatch_at(&self.lin, Some(pi), &bind, self.grid)?;
        rec.submit()
    }

    /// The trial step of size h from sigma: x5 into xn, the error estimate's RMS norm against
    /// the mixed tolerance `tol (1 + max(|x|, |x5|))`.
    fn trial(&self, s: f64, h: f64, tol: f64) -> Result<f64> {
        for j in 1..7 {
            let a: Vec<f64> = A[j][..j].iter().map(|v| v * h).collect();
            self.stage(j, s + C[j] * h, &a)?;
        }
        let y: Vec<f64> = A[6].iter().map(|v| v * h).chain([0.0]).collect();
        self.combine(&y, 1.0, &self.xn)?;
        let e: Vec<f64> = E.iter().map(|v| v * h).collect();
        self.combine(&e, 0.0, &self.err)?;
        let gpu = self.gpu;
        let (ev, xv, x1) = (self.err.to_vec(gpu)?, self.x.to_vec(gpu)?, self.xn.to_vec(gpu)?);
        let sum = ev
            .iter()
            .zip(xv.iter().zip(&x1))
            .map(|(e, (a, b))| (*e as f64 / (tol + tol * (a.abs().max(b.abs()) as f64))).powi(2))
            .sum::<f64>();
        Ok((sum / ev.len() as f64).sqrt())
    }

    /// x <- x5.
    fn accept(&self) -> Result<()> {
        let mut rec = Recorder::new(self.gpu);
        rec.copy_buffers(self.xn.buffer(), 0, self.x.buffer(), 0, 4 * self.x.numel() as u64);
        rec.submit()
    }
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
    if prior.0.len() != d {
        return Err(Error::Shape(format!("rk45: the prior mean has {} values, the samples {d}", prior.0.len())));
    }
    let mut x0 = Vec::with_capacity(b * d);
    for r in 0..b {
        let z = random_ref(d, RngKey { seed, stream: (chain0 + r) as u64, counter: 0 }, Dist::Normal);
        x0.extend(z.iter().zip(prior.0.iter().cycle()).map(|(v, m)| m + v * prior.1 as f32));
    }
    let sv = Solver::new(gpu, model, &x0)?;
    let (mut s, end) = (sigma_max, sigma_min);
    let mut h = -(sigma_max - sigma_min) / 100.0;
    sv.stage(0, s, &[])?; // K_0 = f(x, sigma_max)
    let (mut evals, mut steps) = (1, 0);
    while s > end * (1.0 + 1e-9) {
        steps += 1;
        if steps > 100_000 {
            return Err(Error::Invalid("rk45: more than 100,000 steps; loosen the tolerance".into()));
        }
        if s + h < end {
            h = end - s;
        }
        let norm = sv.trial(s, h, tol)?;
        evals += 6;
        if !norm.is_finite() {
            return Err(Error::Invalid("rk45: the solution became NaN or infinite".into()));
        }
        if norm <= 1.0 {
            // Accept: x <- x5, sigma += h, and K_0 at the new point (K_6 is that value up to
            // rounding, but a buffer cannot be copied onto itself: one more evaluation).
            sv.accept()?;
            s += h;
            sv.stage(0, s, &[])?;
            evals += 1;
        }
        let factor = if norm == 0.0 { 5.0 } else { (0.9 * norm.powf(-0.2)).clamp(0.2, 5.0) };
        h *= if norm <= 1.0 { factor } else { factor.min(1.0) };
    }
    // Tweedie's denoising step at sigma_min: x + sigma^2 s = x - sigma K_0.
    sv.combine(&[-end, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], 1.0, &sv.xn)?;
    Ok(Rk45Out { x: sv.xn.to_vec(gpu)?, evaluations: evals })
}
