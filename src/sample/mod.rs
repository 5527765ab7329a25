//! Samplers. A sampler is a short function (samplers.rs) that turns a noise schedule into a
//! *program*: a list of steps, each "evaluate the model at (x, sigma_k), then apply one fused
//! update kernel" (shaders/sampler.wgsl) with that step's coefficients. The program's rows go
//! to a schedule buffer on the GPU once; a step counter on the GPU indexes it, so the same
//! captured commands replay for every step and thousands of steps go out in a few submissions
//! with no host write or readback in between. All samplers work in the scaled coordinates
//! x~ = x0 + sigma z of score::process.

pub mod draw;
pub mod likelihood;
pub mod mcmc;
mod mcmc_gpu;
mod reference;
pub mod rk45;
pub mod samplers;

use crate::error::{Error, Result};
use crate::gpu::{Captured, Gpu, Recorder};
pub use crate::model::{Conditions, Probes, ScoreFn};
use crate::ops::grid;
use crate::ops::kernels::slots::sampler as S;
use crate::tensor::Tensor;
pub use draw::{check_sample_size, draw, draw_each, SampleRequest, MAX_SAMPLE_BYTES};
use mcmc::McmcConsts;
pub use mcmc::{McmcMethod, McmcOpts, McmcReport, MhRule, StepRule};
pub use reference::{run_program_ref, run_program_ref_mcmc, McmcRef};
pub use samplers::*;

/// One row of a program: the noise level the model is evaluated at and the update's
/// coefficients (see shaders/sampler.wgsl).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Row {
    /// The noise level the model is evaluated at.
    pub sigma: f32,
    /// The update's coefficient on x.
    pub cx: f32,
    /// The coefficient on the score s.
    pub cs: f32,
    /// The coefficient on fresh Gaussian noise z.
    pub cz: f32,
    /// The coefficient on the saved point u (Heun's second stage).
    pub cu: f32,
    /// The coefficient on the saved score v.
    pub cv: f32,
}

/// What a program step does (the kernel it runs after the model, if any).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// x <- cx x + cz z (no model evaluation): drawing from the prior.
    Init,
    /// Evaluate, then x <- cx x + cs s + cz z + cu u + cv v.
    Update,
    /// Evaluate, then the same update after saving u <- x, v <- s (Heun's first stage).
    UpdateSave,
    /// Evaluate at x, then keep (x, s, energy) as the chain's current state (MCMC; AIS weight).
    McmcCache,
    /// A Langevin proposal from the current state (MALA; no evaluation).
    McmcPropose,
    /// Refresh the momentum and take the first leapfrog position step (HMC; no evaluation).
    HmcStart,
    /// Evaluate, then a leapfrog kick and position step.
    HmcLeap,
    /// Keep the proposal and move to the first interior point of the line x -> x' (trapezoid).
    LineStart,
    /// Evaluate, add to the line integral and move to the next point.
    LineStep,
    /// Evaluate at the proposal, then MALA's per-chain Metropolis test (shaders/mcmc.wgsl).
    MalaAccept,
    /// Evaluate at the trajectory's end, the last half kick, then HMC's per-chain test.
    HmcAccept,
}

impl Kind {
    fn mcmc(self) -> bool {
        !matches!(self, Kind::Init | Kind::Update | Kind::UpdateSave)
    }
    /// Whether the model runs (at the chains' x) before the step's kernel.
    pub fn evaluates(self) -> bool {
        !matches!(self, Kind::Init | Kind::McmcPropose | Kind::HmcStart | Kind::LineStart)
    }
}

/// A sampler as data: steps in order.
#[derive(Clone, Debug, Default)]
pub struct Program {
    /// The steps, in order.
    pub steps: Vec<(Kind, Row)>,
    /// The settings of its MCMC rows, if any.
    pub mcmc: Option<McmcConsts>,
}

impl Program {
    /// Append a step.
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
        self.steps.iter().filter(|(k, _)| k.evaluates()).count()
    }
}

/// The parameter block of every kernel in shaders/sampler.wgsl.
pub(crate) use crate::ops::kernels::SamplerParams as Params;

/// The planned model a `Runner` drives: borrowed (the CLI's draws) or owned (a `Runner<'static>`
/// an application keeps between frames, `embed`).
pub enum Planned<'m> {
    /// A plan the caller keeps.
    Borrowed(&'m ScoreFn),
    /// A plan the runner owns.
    Owned(Box<ScoreFn>),
}

impl std::ops::Deref for Planned<'_> {
    type Target = ScoreFn;
    fn deref(&self) -> &ScoreFn {
        match self {
            Planned::Borrowed(f) => f,
            Planned::Owned(f) => f,
        }
    }
}

/// A program bound to a model: the schedule on the GPU and one captured command list per step
/// kind. Also integrates an accumulator with the divergence when the model has one (the
/// instantaneous change of variables of the probability-flow ODE).
pub struct Runner<'m> {
    /// The planned model the program drives.
    pub model: Planned<'m>,
    program: Program,
    seed: u64,
    ctr: Tensor,
    kinds: Vec<(Kind, Captured)>,
    /// Log-density change accumulated along the path [B] (models with a divergence).
    pub acc: Option<Tensor>,
    /// Mean of the prior [D] (the data's mean; zeros unless set): Init rows add it from u.
    pub prior_mean: Vec<f32>,
    /// Conditioning values of every chain, for models that take conditioning inputs, and the
    /// first chain of the request they belong to (`Conditions`).
    pub conditions: Conditions,
    /// The first chain of the request (conditions cycling from it).
    pub first_chain: usize,
    /// The chains' MCMC rows of the last batch [B, 4 + levels] (mcmc_gpu.rs).
    pub chain: Option<Tensor>,
    /// Acceptance and AIS weights summed over the batches `sample_each` ran.
    tally: std::cell::RefCell<mcmc_gpu::Tally>,
    /// Schedule and scratch buffers the captured commands bind.
    _keep: Vec<Tensor>,
}

impl<'m> Runner<'m> {
    /// Bind `program` to a planned model, with the run's seed.
    pub fn new(gpu: &Gpu, model: &'m ScoreFn, program: Program, seed: u64) -> Result<Runner<'m>> {
        Self::planned(gpu, Planned::Borrowed(model), program, seed)
    }

    /// A runner that owns its planned model.
    pub fn owning(gpu: &Gpu, model: ScoreFn, program: Program, seed: u64) -> Result<Runner<'static>> {
        Runner::planned(gpu, Planned::Owned(Box::new(model)), program, seed)
    }

    fn planned(gpu: &Gpu, planned: Planned<'m>, program: Program, seed: u64) -> Result<Runner<'m>> {
        let model: &ScoreFn = &planned;
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
        let mut chain = None;
        if let Some(c) = program.mcmc.as_ref().filter(|_| program.steps.iter().any(|(k, _)| k.mcmc())) {
            let m = mcmc_gpu::capture(gpu, model, c, (&_keep[0], &ctr, &_keep[1]), base)?;
            kinds.extend(m.kinds);
            _keep.extend(m.keep);
            chain = Some(m.chain);
        }
        Ok(Runner {
            model: planned,
            program,
            seed,
            ctr,
            kinds,
            acc,
            prior_mean: vec![0.0; d],
            conditions: Conditions::default(),
            first_chain: 0,
            chain,
            tally: Default::default(),
            _keep,
        })
    }

    /// Acceptance per level and chain group, and AIS weights, over the chains `sample_each`
    /// drew (programs with MCMC rows).
    pub fn mcmc_report(&self) -> Option<McmcReport> {
        let c = self.program.mcmc.as_ref()?;
        self.chain.as_ref()?;
        Some(self.tally.borrow().report(c))
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
        self.begin(gpu, chain0, x0)?;
        self.submit_steps(gpu, 0..self.program.steps.len(), per_submit, progress)
    }

    /// Submit steps `range` (after `begin`, continuing where the last steps ended), `per_submit`
    /// to a submission; `progress(done, total)` after each, counted over the whole program.
    pub fn submit_steps(
        &self,
        gpu: &Gpu,
        range: std::ops::Range<usize>,
        per_submit: usize,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<()> {
        let (per, mut done) = (per_submit.max(1), range.start);
        while done < range.end {
            let mut rec = Recorder::new(gpu);
            self.record_steps(&mut rec, done..(done + per).min(range.end));
            rec.submit()?;
            done = (done + per).min(range.end);
            progress(done, self.program.steps.len());
        }
        Ok(())
    }

    /// Set up chains chain0 .. chain0 + B to run the program from its first step: queue writes
    /// only (the chain offset, the step counter, the prior's mean, `x0`, probes and
    /// conditions), which reach the GPU before any commands submitted after them.
    pub fn begin(&self, gpu: &Gpu, chain0: usize, x0: Option<&[f32]>) -> Result<()> {
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
        if let Some(t) = &self.acc {
            gpu.queue.write_buffer(t.buffer().buffer(), 0, bytemuck::cast_slice(&vec![0f32; self.model.batch]));
        }
        if let Some(c) = &self.chain {
            mcmc_gpu::reset(gpu, c, self.model.batch);
        }
        self.model.set_probes(gpu, self.seed, chain0 as usize)?;
        self.model.set_conditions(gpu, &self.conditions, chain0 as usize, self.first_chain)
    }

    /// The program's steps (kind and row), in order.
    pub fn steps(&self) -> &[(Kind, Row)] {
        &self.program.steps
    }

    /// Record steps `range` of the program (after `begin`, in order, each once).
    pub fn record_steps(&self, rec: &mut Recorder, range: std::ops::Range<usize>) {
        for (kind, _) in &self.program.steps[range] {
            rec.replay(&self.captured(*kind).steps);
        }
    }

    /// Encode steps `range` into a command encoder the caller owns and submits (an
    /// application's frame); the same commands `run_batch` submits.
    pub fn encode_steps(&self, encoder: &mut wgpu::CommandEncoder, range: std::ops::Range<usize>) {
        let mut pass = None;
        for (kind, _) in &self.program.steps[range] {
            crate::gpu::encode_steps(encoder, &mut pass, &self.captured(*kind).steps);
        }
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
        self.sample_each(
            gpu,
            first_chain,
            n,
            &mut |xs| {
                out.extend_from_slice(xs);
                Ok(())
            },
            progress,
        )?;
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
            if let (Some(t), Some(c)) = (&self.chain, &self.program.mcmc) {
                self.tally.borrow_mut().add(&t.to_vec(gpu)?, b, take, c);
            }
            each(&xs[..take * d])?;
            start += take;
        }
        Ok(())
    }
}
