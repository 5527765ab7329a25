//! Drawing samples from any model: plan it for a batch, run the sampler's program over
//! batches of chains, collect the samples.

use super::{rk45, Conditions, Probes, Runner, SamplerKind, SamplerOpts, ScoreFn};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::ScoreModel;

/// What to draw.
#[derive(Clone, Debug)]
pub struct SampleRequest {
    /// The sampler (`--sampler`).
    pub sampler: SamplerKind,
    /// Its steps (`--steps`; Heun and the PF-ODE evaluate the model twice per step).
    pub steps: usize,
    /// Samples to draw.
    pub n: usize,
    /// Chains run at once (the plan's batch; any batch gives the same samples).
    pub batch: usize,
    /// The run's seed: chain i's noise depends only on (seed, i).
    pub seed: u64,
    /// The samplers' finer settings (levels, snr, eps, tolerance, MCMC).
    pub opts: SamplerOpts,
    /// Conditioning values of the n chains, for models that take conditioning inputs.
    pub conditions: Conditions,
    /// The first chain: chains first_chain .. first_chain + n are drawn (a shard of a larger run).
    pub first_chain: usize,
}

/// Largest sample output held in host memory: 16 GiB of f32.
pub const MAX_SAMPLE_BYTES: u128 = 16 << 30;

/// `n` samples of `d` numbers must fit in host memory before any work starts.
pub fn check_sample_size(n: usize, d: usize) -> Result<()> {
    let bytes = n as u128 * d as u128 * 4;
    if bytes > MAX_SAMPLE_BYTES {
        return Err(Error::Limit(format!(
            "--n {n}: {n} samples of {d} numbers are {:.1} GB, more than the {} GB scoregen holds in memory; draw \
             fewer per run (different --seed values give independent samples)",
            bytes as f64 / 1e9,
            MAX_SAMPLE_BYTES >> 30
        )));
    }
    Ok(())
}

fn check_request(model: &dyn ScoreModel, req: &SampleRequest) -> Result<()> {
    for (name, v) in [("--n", req.n), ("--steps", req.steps), ("--batch", req.batch)] {
        if v == 0 {
            return Err(Error::Invalid(format!("{name} must be at least 1")));
        }
    }
    if req.sampler == SamplerKind::Ald && req.steps < req.opts.levels {
        return Err(Error::Invalid(format!(
            "--steps {}: ALD runs sample.levels = {} noise levels and needs at least one step per level",
            req.steps, req.opts.levels
        )));
    }
    if matches!(model.process(), crate::score::Process::Fixed { .. })
        && req.sampler != SamplerKind::Langevin
        && req.sampler.mcmc().is_none()
    {
        return Err(Error::Invalid(format!(
            "sampler '{}': the model was trained at one noise level (process 'fixed'), which only Langevin dynamics \
             at that level samples; use --sampler langevin (or ula, mala, uhmc, hmc)",
            req.sampler.name()
        )));
    }
    let mcmc = &req.opts.mcmc;
    if let Some(c) = mcmc.corrector {
        if ![SamplerKind::Pc, SamplerKind::Ddim, SamplerKind::Ancestral].contains(&req.sampler) {
            return Err(Error::Invalid(format!(
                "--corrector {}: MCMC correctors run between the steps of pc, ddim or ancestral, not {} (for annealed \
                 MCMC alone use --sampler {})",
                c.name(),
                req.sampler.name(),
                c.name()
            )));
        }
    }
    if let Some(m) = req.sampler.mcmc().or(mcmc.corrector) {
        mcmc.check(m)?;
    }
    if req.sampler.mcmc().is_some() && req.opts.levels < 2 {
        return Err(Error::Invalid(format!(
            "--mcmc-levels {}: annealed MCMC needs at least 2 noise levels (sample.levels)",
            req.opts.levels
        )));
    }
    req.conditions.check(&model.conditioning(), req.n)
}

/// Draw samples: [n * D] values, chains 0..n of `seed`. Chain i's sample depends only on
/// (seed, i), not on n or the batch (rk45 excepted: its step sizes are shared by a batch).
/// Held in memory (at most `MAX_SAMPLE_BYTES`); `draw_each` streams any number.
pub fn draw(
    gpu: &Gpu,
    model: &dyn ScoreModel,
    req: &SampleRequest,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<f32>> {
    check_sample_size(req.n, model.numel())?;
    let mut out = Vec::with_capacity(req.n * model.numel());
    draw_each(
        gpu,
        model,
        req,
        &mut |xs| {
            out.extend_from_slice(xs);
            Ok(())
        },
        progress,
    )?;
    Ok(out)
}

/// `draw`, handing each batch's samples (chains in order) to `each` as they are drawn. Returns
/// the MCMC samplers' acceptance (per level and chain group) and AIS weights.
pub fn draw_each(
    gpu: &Gpu,
    model: &dyn ScoreModel,
    req: &SampleRequest,
    each: &mut dyn FnMut(&[f32]) -> Result<()>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Option<super::McmcReport>> {
    check_request(model, req)?;
    let batch = req.batch.min(req.n);
    let hint = batch_hint(batch);
    let p = model.process();
    let moments = model.moments();
    let opts = SamplerOpts { data_var: moments.var, ..req.opts.clone() };
    match req.sampler.program(p, req.steps, &opts)? {
        super::SamplerProgram::Fixed(prog) => {
            let runner = bind(gpu, model, &SampleRequest { batch, ..req.clone() }, prog)?;
            runner.sample_each(gpu, req.first_chain, req.n, each, progress).map_err(&hint)?;
            Ok(runner.mcmc_report())
        }
        super::SamplerProgram::Adaptive { tol } => {
            let f = plan(gpu, model, batch, req).map_err(&hint)?;
            let prior_mean: Vec<f32> = moments.mean.iter().map(|&m| m as f32).collect();
            let prior = (&prior_mean[..], p.prior_var_with(opts.data_var).sqrt());
            let mut start = 0;
            while start < req.n {
                let chain0 = req.first_chain + start;
                f.set_conditions(gpu, &req.conditions, chain0, req.first_chain)?;
                let r =
                    rk45::rk45(gpu, &f, p.sigma_max(), p.sigma_min(), prior, tol, req.seed, chain0).map_err(&hint)?;
                let take = (req.n - start).min(batch);
                each(&r.x[..take * f.numel()])?;
                start += take;
                progress(start, req.n);
            }
            Ok(None)
        }
    }
}

/// Out-of-memory and other limits name the batch to lower.
fn batch_hint(batch: usize) -> impl Fn(Error) -> Error {
    move |e| match e {
        Error::Limit(m) => Error::Limit(format!("{m}; lower --batch ({batch} chains per batch now)")),
        e => e,
    }
}

/// `model` planned for `req.batch` chains under the fixed-step program of `req` (every sampler
/// but the adaptive rk45, which is refused): a runner that owns its plan, with the prior's mean
/// and the request's conditions set. `draw_each` runs it over batches; an application steps it
/// inside its frames (`embed`).
pub fn runner(gpu: &Gpu, model: &dyn ScoreModel, req: &SampleRequest) -> Result<Runner<'static>> {
    check_request(model, req)?;
    let opts = SamplerOpts { data_var: model.moments().var, ..req.opts.clone() };
    let super::SamplerProgram::Fixed(prog) = req.sampler.program(model.process(), req.steps, &opts)? else {
        return Err(Error::Invalid(format!(
            "sampler '{}' chooses its steps as it goes; plan a fixed-step sampler (heun, pc, ddim, ald, ...)",
            req.sampler.name()
        )));
    };
    bind(gpu, model, req, prog)
}

/// `model` planned for sampling `batch` chains, clipping image models' denoised estimate where
/// the request says so.
fn plan(gpu: &Gpu, model: &dyn ScoreModel, batch: usize, req: &SampleRequest) -> Result<ScoreFn> {
    ScoreFn::plan_with(gpu, model, batch, Probes::None, model.images() && req.opts.clip_denoised)
}

/// `prog` bound to `model` planned for `req.batch` chains.
fn bind(gpu: &Gpu, model: &dyn ScoreModel, req: &SampleRequest, prog: super::Program) -> Result<Runner<'static>> {
    let hint = batch_hint(req.batch);
    let f = plan(gpu, model, req.batch, req).map_err(&hint)?;
    let mut runner = Runner::owning(gpu, f, prog, req.seed).map_err(&hint)?;
    runner.prior_mean = model.moments().mean.iter().map(|&m| m as f32).collect();
    runner.conditions = req.conditions.clone();
    runner.first_chain = req.first_chain;
    Ok(runner)
}
