//! Samplers. A sampler is a short function (samplers.rs) that turns a noise schedule into a
//! *program*: a list of steps, each "evaluate the model at (x, sigma_k), then apply one fused
//! update kernel" (shaders/sampler.wgsl) with that step's coefficients. The program's rows go
//! to a schedule buffer on the GPU once; a step counter on the GPU indexes it, so the same
//! captured commands replay for every step and thousands of steps go out in a few submissions
//! with no host write or readback in between. All samplers work in the scaled coordinates
//! x~ = x0 + sigma z of score::process.

pub mod draw;
pub mod likelihood;
mod mcmc;
pub mod rk45;
pub mod samplers;

use crate::error::{Error, Result};
use crate::gpu::{Captured, Gpu, Recorder};
pub use crate::model::{Conditions, Probes, ScoreFn};
use crate::ops::grid;
use crate::ops::kernels::slots::sampler as S;
use crate::tensor::Tensor;
pub use draw::{check_sample_size, draw, draw_each, SampleRequest, MAX_SAMPLE_BYTES};
pub use samplers::*;

/// One row of a program: the noise level the model is evaluated at and the update's
/// coefficients (see shaders/sampler.wgsl).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Row {
    pub sigma: f32,
    pub cx: f32,
    pub cs: f32,
    pub cz: f32,
    pub cu: f32,
    pub cv: f32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// x <- cx x + cz z (no model evaluation): drawing from the prior.
    Init,
    /// Evaluate, then x <- cx x + cs s + cz z + cu u + cv v.
    Update,
    /// Evaluate, then the same update after saving u <- x, v <- s (Heun's first stage).
    UpdateSave,
    /// Evaluate at x, then keep (x, s, energy) as the chain's current state (MCMC).
    McmcCache,
    /// A Langevin proposal from the current state, step h = row.cs (no evaluation).
    McmcPropose,
    /// Evaluate at the proposal, then the per-chain Metropolis test (shaders/mcmc.wgsl).
    McmcAccept,
}

impl Kind {
    fn mcmc(self) -> bool {
        matches!(self, Kind::McmcCache | Kind::McmcPropose | Kind::McmcAccept)
    }
}

/// A sampler as data: steps in order.
#[derive(Clone, Debug, Default)]
pub struct Program {
    pub steps: Vec<(Kind, Row)>,
}

impl Program {
    pub fn push(&mut self, kind: Kind, row: Row) {
        self.steps.push((kind, row));
    }
    /// The rows on the GPU: 8 floats each (sigma, cx, cs, cz, cu, cv, two spare).
    fn schedule(&self, gpu: &Gpu) -> Result<Tensor> {
        let mut sched = Vec::with_capacity(8 * self.steps.len().max(1));
        for (_, r) in &self.steps {
            sched.extend([r.sigma, r.cx, r.cs, r.cz, r.cu, r.cv, 0.0, 0.0]);
        }
        if sched.is_empty() {
            sched.resize(8, 0.0);
        }
        Tensor::from_slice(gpu, &sched, &[sched.len()])
    }

    /// Model evaluations per chain.
    pub fn evaluations(&self) -> usize {
        self.steps.iter().filter(|(k, _)| *k != Kind::Init).count()
    }
}

/// The parameter block of every kernel in shaders/sampler.wgsl.
pub(crate) use crate::ops::kernels::SamplerParams as Params;

/// A program bound to a model: the schedule on the GPU and one captured command list per step
/// kind. Also integrates an accumulator with the divergence when the model has one (the
/// instantaneous change of variables of the probability-flow ODE).
pub struct Runner<'m> {
    pub model: &'m ScoreFn,
    program: Program,
    seed: u64,
    ctr: Tensor,
    kinds: Vec<(Kind, Captured)>,
    /// Log-density change accumulated along the path [B] (models with a divergence).
    pub acc: Option<Tensor>,
    /// Mean of the prior [D] (the data's mean; zeros unless set): Init rows add it from u.
    pub prior_mean: Vec<f32>,
    /// Conditioning values of every chain, for models that take conditioning inputs.
    pub conditions: Conditions,
    /// Accepted proposals per chain of the last batch (programs with Metropolis tests).
    pub accepted: Option<Tensor>,
    /// (accepted proposals, chains) summed over the batches `sample_each` ran.
    acceptance: std::cell::Cell<(f64, usize)>,
    /// Schedule and scratch buffers the captured commands bind.
    _keep: Vec<Tensor>,
}

impl<'m> Runner<'m> {
    pub fn new(gpu: &Gpu, model: &'m ScoreFn, program: Program, seed: u64) -> Result<Runner<'m>> {
        let (b, d) = (model.batch, model.numel());
        let sched = program.schedule(gpu)?;
        let ctr = Tensor::zeros(gpu, &[1])?;
        let u = Tensor::zeros(gpu, &[b * d])?;
        let v = Tensor::zeros(gpu, &[b * d])?;
        let n = b * d;
        let rec = Recorder::capturing(gpu);
        let g_n = grid(&rec, n, 256)?;
        let (seed_lo, seed_hi) = (seed as u32, (seed >> 32) as u32);
        let base =
            Params { n: n as u32, d: d as u32, b: b as u32, seed_lo, seed_hi, groups_x: g_n[0], ..Default::default() };
        let set = rec.pipeline("sampler", "set_sigma", &[])?;
        let upd = rec.pipeline("sampler", "update", &[("SAVE", 0.0)])?;
        let upd_save = rec.pipeline("sampler", "update", &[("SAVE", 1.0)])?;
        let tick = rec.pipeline("sampler", "tick", &[])?;
        let (x, s, sig) = (model.x().buffer(), model.score().buffer(), model.sigma().buffer());
        let (sb, cb) = (sched.buffer(), ctr.buffer());
        // Accumulator of the divergence: the same update on (acc, div) with d = 1.
        let acc = match model.div() {
            Some(_) => Some(Tensor::zeros(gpu, &[b])?),
            None => None,
        };
        let (ua, va) = (Tensor::zeros(gpu, &[b])?, Tensor::zeros(gpu, &[b])?);
        let g_b = grid(&rec, b, 256)?;
        let pa = Params { n: b as u32, d: 1, groups_x: g_b[0], ..base };
        let mut kinds = Vec::new();
        for kind in [Kind::Init, Kind::Update, Kind::UpdateSave] {
            let mut r = Recorder::capturing(gpu);
            if kind != Kind::Init {
                let pi = r.params(&Params { groups_x: g_b[0], ..base });
                r.dispatch_at(&set, Some(pi), &[(S::SCHED, sb), (S::CTR, cb), (S::SIGMA, sig)], g_b)?;
                model.plan.record(&mut r);
            }
            let pipe = if kind == Kind::UpdateSave { &upd_save } else { &upd };
            if let (Some(acc), Some(div)) = (&acc, model.div()) {
                if kind != Kind::Init {
                    let pi = r.params(&pa);
                    let bind = [
                        (S::SCHED, sb),
                        (S::CTR, cb),
                        (S::X, acc.buffer()),
                        (S::S, div.buffer()),
                        (S::U, ua.buffer()),
                        (S::V, va.buffer()),
                    ];
                    r.dispatch_at(pipe, Some(pi), &bind, g_b)?;
                }
            }
            let pi = r.params(&base);
            let bind = [(S::SCHED, sb), (S::CTR, cb), (S::X, x), (S::S, s), (S::U, u.buffer()), (S::V, v.buffer())];
            r.dispatch_at(pipe, Some(pi), &bind, g_n)?;
            r.dispatch_at(&tick, None, &[(S::CTR, cb)], [1, 1, 1])?;
            kinds.push((kind, r.into_captured()));
        }
        let mut _keep = vec![sched, u, v, ua, va];
        let mut accepted = None;
        if program.steps.iter().any(|(k, _)| k.mcmc()) {
            let m = mcmc::capture(gpu, model, &_keep[0], &ctr, base)?;
            kinds.extend(m.kinds);
            _keep.extend(m.keep);
            accepted = Some(m.stats);
        }
        Ok(Runner {
            model,
            program,
            seed,
            ctr,
            kinds,
            acc,
            prior_mean: vec![0.0; d],
            conditions: Conditions::default(),
            accepted,
            acceptance: std::cell::Cell::new((0.0, 0)),
            _keep,
        })
    }

    /// The fraction of proposals accepted over the chains `sample_each` drew (programs with
    /// Metropolis tests).
    pub fn acceptance_rate(&self) -> Option<f64> {
        let tests = self.program.steps.iter().filter(|(k, _)| *k == Kind::McmcAccept).count();
        let (sum, chains) = self.acceptance.get();
        (self.accepted.is_some() && chains > 0 && tests > 0).then(|| sum / (chains * tests) as f64)
    }

    fn captured(&self, kind: Kind) -> &Captured {
        &self.kinds.iter().find(|(k, _)| *k == kind).unwrap().1
    }

    /// Run the program for chains chain0 .. chain0 + B. `x0`: the starting points [B * D]
    /// (e.g. data, for likelihoods), or None when the program starts by drawing from the prior.
    /// `per_submit` steps go out per submission; `progress(done, total)` after each.
    pub fn run_batch(
        &self,
        gpu: &Gpu,
        chain0: usize,
        x0: Option<&[f32]>,
        per_submit: usize,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<()> {
        let chain0 = u32::try_from(chain0).map_err(|_| Error::Limit("more than 2^32 chains".into()))?;
        // Between submissions, never inside one: the chain offset (Params.chain0 of every
        // parameter block) and the step counter.
        for (_, cap) in &self.kinds {
            for p in &cap.params {
                gpu.queue.write_buffer(p.buffer(), Params::CHAIN0_OFFSET, bytemuck::bytes_of(&chain0));
            }
        }
        gpu.queue.write_buffer(self.ctr.buffer().buffer(), 0, bytemuck::bytes_of(&0u32));
        if let Some(x0) = x0 {
            self.model.plan.feed(gpu, "x", x0)?;
        }
        // The prior's mean, read by Init rows from the scratch u (Heun's stages overwrite it).
        if self.program.steps.iter().any(|(k, _)| *k == Kind::Init) {
            let d = self.model.numel();
            if self.prior_mean.len() != d {
                return Err(Error::Shape(format!("prior mean of {} values for samples of {d}", self.prior_mean.len())));
            }
            let tiled: Vec<f32> = self.prior_mean.iter().copied().cycle().take(self.model.batch * d).collect();
            gpu.queue.write_buffer(self._keep[1].buffer().buffer(), 0, bytemuck::cast_slice(&tiled));
        }
        for t in [&self.acc, &self.accepted].into_iter().flatten() {
            gpu.queue.write_buffer(t.buffer().buffer(), 0, bytemuck::cast_slice(&vec![0f32; self.model.batch]));
        }
        self.model.set_probes(gpu, self.seed, chain0 as usize)?;
        self.model.set_conditions(gpu, &self.conditions, chain0 as usize)?;
        let total = self.program.steps.len();
        let per = per_submit.max(1);
        let mut done = 0;
        while done < total {
            let mut rec = Recorder::new(gpu);
            for (kind, _) in &self.program.steps[done..(done + per).min(total)] {
                rec.replay(&self.captured(*kind).steps);
            }
            rec.submit()?;
            done = (done + per).min(total);
            progress(done, total);
        }
        Ok(())
    }

    /// Draw `n` samples (chains first_chain .. first_chain + n) in batches of the model's size:
    /// [n * D] values. Chain i's result depends only on (seed, i), not on n or the batch size.
    pub fn sample(
        &self,
        gpu: &Gpu,
        first_chain: usize,
        n: usize,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(n * self.model.numel());
        self.sample_each(gpu, first_chain, n, &mut |xs| Ok(out.extend_from_slice(xs)), progress)?;
        Ok(out)
    }

    /// The same, handing each batch's samples to `each` as they are drawn (nothing held).
    pub fn sample_each(
        &self,
        gpu: &Gpu,
        first_chain: usize,
        n: usize,
        each: &mut dyn FnMut(&[f32]) -> Result<()>,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<()> {
        let (b, d) = (self.model.batch, self.model.numel());
        let mut start = 0;
        let total = n.div_ceil(b) * self.program.steps.len();
        let mut base = 0;
        while start < n {
            self.run_batch(gpu, first_chain + start, None, 256, &mut |k, _| progress(base + k, total))?;
            base += self.program.steps.len();
            let xs = self.model.x().to_vec(gpu)?;
            let take = (n - start).min(b);
            if let Some(a) = &self.accepted {
                let (sum, chains) = self.acceptance.get();
                let got: f64 = a.to_vec(gpu)?[..take].iter().map(|&v| v as f64).sum();
                self.acceptance.set((sum + got, chains + take));
            }
            each(&xs[..take * d])?;
            start += take;
        }
        Ok(())
    }
}

/// Plain-loop reference of a program for one chain (f64, the same Philox noise as the GPU):
/// the executable spec of shaders/sampler.wgsl. `score(x, sigma)` is the model; `prior_mean`
/// is what the runner puts in u before the program (`Runner::prior_mean`).
pub fn run_program_ref(
    program: &Program,
    score: &dyn Fn(&[f64], f64) -> Vec<f64>,
    d: usize,
    chain: u64,
    seed: u64,
    x0: Option<&[f64]>,
    prior_mean: &[f64],
) -> Vec<f64> {
    run_program_ref_energy(program, score, &|_, _| f64::NAN, d, (chain, seed), x0, prior_mean).0
}

/// The same with the model's energy, for programs with Metropolis tests (shaders/mcmc.wgsl):
/// (the chain's final x, its accepted proposals).
pub fn run_program_ref_energy(
    program: &Program,
    score: &dyn Fn(&[f64], f64) -> Vec<f64>,
    energy: &dyn Fn(&[f64], f64) -> f64,
    d: usize,
    (chain, seed): (u64, u64),
    x0: Option<&[f64]>,
    prior_mean: &[f64],
) -> (Vec<f64>, usize) {
    use crate::ops::random::{random_ref, Dist, RngKey};
    let blocks = d.div_ceil(4) as u64;
    let mut x = x0.map(|v| v.to_vec()).unwrap_or_else(|| vec![0.0; d]);
    let (mut u, mut v) = (prior_mean.to_vec(), vec![0.0; d]);
    let (mut xc, mut sc, mut ec, mut accepted) = (x.clone(), vec![0.0; d], 0.0, 0);
    for (k, (kind, r)) in program.steps.iter().enumerate() {
        let z: Vec<f64> = random_ref(d, RngKey { seed, stream: chain, counter: k as u64 * blocks }, Dist::Normal)
            .iter()
            .map(|&z| z as f64)
            .collect();
        let (sig, h) = (r.sigma as f64, r.cs as f64);
        match kind {
            Kind::McmcCache => (xc, sc, ec) = (x.clone(), score(&x, sig), energy(&x, sig)),
            Kind::McmcPropose => x = (0..d).map(|j| xc[j] + h * sc[j] + (2.0 * h).sqrt() * z[j]).collect(),
            Kind::McmcAccept => {
                let (s, e) = (score(&x, sig), energy(&x, sig));
                let fwd: f64 = (0..d).map(|j| (x[j] - xc[j] - h * sc[j]).powi(2)).sum();
                let bwd: f64 = (0..d).map(|j| (xc[j] - x[j] - h * s[j]).powi(2)).sum();
                let log_a = -(e - ec) + (fwd - bwd) / (4.0 * h);
                let key = RngKey { seed, stream: chain, counter: (1u64 << 32) + k as u64 };
                let uni = random_ref(1, key, Dist::Uniform)[0] as f64;
                if uni.ln() < log_a {
                    (xc, sc, ec) = (x.clone(), s, e);
                    accepted += 1;
                } else {
                    x = xc.clone();
                }
            }
            _ => {
                let s = if *kind == Kind::Init { vec![0.0; d] } else { score(&x, sig) };
                for j in 0..d {
                    let new = r.cx as f64 * x[j]
                        + r.cs as f64 * s[j]
                        + r.cz as f64 * z[j]
                        + r.cu as f64 * u[j]
                        + r.cv as f64 * v[j];
                    if *kind == Kind::UpdateSave {
                        u[j] = x[j];
                        v[j] = s[j];
                    }
                    x[j] = new;
                }
            }
        }
    }
    (x, accepted)
}
