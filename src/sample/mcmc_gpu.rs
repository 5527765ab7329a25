//! The MCMC rows of a program (shaders/mcmc.wgsl) as captured command lists of the runner: the
//! chains' state lives in GPU buffers, each chain is accepted or rejected on its own, and the
//! accepted proposals per level, the step multipliers and the AIS weights are kept per chain.

use super::mcmc::{McmcConsts, McmcReport};
use super::{Kind, Params};
use crate::error::{Error, Result};
use crate::gpu::{Captured, Gpu, Recorder};
use crate::model::ScoreFn;
use crate::ops::grid;
use crate::ops::kernels::slots::mcmc as M;
use crate::ops::kernels::slots::sampler as S;
use crate::tensor::Tensor;

/// Columns of a chain's row before the per-level counts.
const FIXED: usize = 4;
const SCALE: usize = 2;
const LOGW: usize = 3;

/// The captured MCMC steps and the buffers they bind.
pub(super) struct McmcSteps {
    pub kinds: Vec<(Kind, Captured)>,
    /// Per chain [B, 4 + levels]: energy, line integral, step multiplier, AIS log weight, then
    /// the accepted proposals at each level.
    pub chain: Tensor,
    pub keep: Vec<Tensor>,
}

fn needs_energy(c: &McmcConsts) -> bool {
    c.ais || (c.method.adjusted() && !c.trapezoid)
}

/// The one-line refusal of an MCMC program that needs an energy the model lacks.
fn no_energy(c: &McmcConsts) -> Error {
    let (what, instead) = if c.ais {
        ("AIS (eval --log-z)", String::new())
    } else {
        ("a Metropolis test by the energy", format!(" (for {}: --mh trapezoid:5)", c.method.name()))
    };
    Error::Invalid(format!(
        "{what} needs the model's energy: energy networks (model.param = \"energy\"), analytic mixtures and \
         compositions of them have one; this model gives only a score{instead}"
    ))
}

/// Capture the MCMC kinds for `model`; `u` holds the prior's mean (tiled) for AIS.
pub(super) fn capture(
    gpu: &Gpu,
    model: &ScoreFn,
    c: &McmcConsts,
    (sched, ctr, u): (&Tensor, &Tensor, &Tensor),
    base: Params,
) -> Result<McmcSteps> {
    let (b, d) = (model.batch, model.numel());
    // Models without an energy bind zeros where the kernels would read it (never used).
    let dummy = match model.energy() {
        Some(_) => None,
        None if needs_energy(c) => return Err(no_energy(c)),
        None => Some(Tensor::zeros(gpu, &[b])?),
    };
    let energy = model.energy().or(dummy.as_ref()).expect("an energy or zeros");
    let cols = FIXED + c.levels.len().max(1);
    let state = Tensor::zeros(gpu, &[2 * b * d])?;
    let mom = Tensor::zeros(gpu, &[2 * b * d])?;
    let xp = Tensor::zeros(gpu, &[b * d])?;
    let chain = Tensor::zeros(gpu, &[b * cols])?;
    let consts = [
        ("LEVELS", c.levels.len().max(1) as f64),
        ("DAMP", c.damping),
        ("MASS", c.mass),
        ("TARGET", c.target),
        ("UNADJUSTED", if c.method.adjusted() { 0.0 } else { 1.0 }),
        ("TRAPEZOID", if c.trapezoid { 1.0 } else { 0.0 }),
    ];
    let rec = Recorder::capturing(gpu);
    let (g_n, g_b) = (grid(&rec, b * d, 256)?, grid(&rec, b, 256)?);
    let set = rec.pipeline("sampler", "set_sigma", &[])?;
    let tick = rec.pipeline("sampler", "tick", &[])?;
    let (x, s, sig) = (model.x().buffer(), model.score().buffer(), model.sigma().buffer());
    let (sb, cb, eb) = (sched.buffer(), ctr.buffer(), energy.buffer());
    let (st, chb, mb, xpb) = (state.buffer(), chain.buffer(), mom.buffer(), xp.buffer());
    let head = [(M::SCHED, sb), (M::CTR, cb), (M::X, x)];
    fn with<'a, T>(head: &[(u32, &'a T)], more: &[(u32, &'a T)]) -> Vec<(u32, &'a T)> {
        head.iter().chain(more).copied().collect()
    }
    // (kind, entry, per element or per chain, evaluates first, bindings): each entry point binds
    // what it uses (the layouts are derived from the shader).
    let table = [
        (
            Kind::McmcCache,
            "cache",
            g_b,
            with(&head, &[(M::S, s), (M::E, eb), (M::STATE, st), (M::CHAIN, chb), (M::U, u.buffer())]),
        ),
        (Kind::McmcPropose, "propose", g_n, with(&head, &[(M::STATE, st), (M::CHAIN, chb)])),
        (Kind::HmcStart, "hmc_start", g_n, with(&head, &[(M::STATE, st), (M::CHAIN, chb), (M::MOM, mb)])),
        (Kind::HmcLeap, "hmc_leap", g_n, with(&head, &[(M::S, s), (M::CHAIN, chb), (M::MOM, mb)])),
        (Kind::LineStart, "line_start", g_n, with(&head, &[(M::STATE, st), (M::CHAIN, chb), (M::XP, xpb)])),
        (Kind::LineStep, "line_step", g_b, with(&head, &[(M::S, s), (M::STATE, st), (M::CHAIN, chb), (M::XP, xpb)])),
        (Kind::MalaAccept, "mala_accept", g_b, with(&head, &[(M::S, s), (M::E, eb), (M::STATE, st), (M::CHAIN, chb)])),
        (
            Kind::HmcAccept,
            "hmc_accept",
            g_b,
            with(&head, &[(M::S, s), (M::E, eb), (M::STATE, st), (M::CHAIN, chb), (M::MOM, mb)]),
        ),
    ];
    let mut kinds = Vec::new();
    for (kind, entry, g, bind) in table {
        let mut r = Recorder::capturing(gpu);
        if kind.evaluates() {
            let pi = r.params(&Params { groups_x: g_b[0], ..base });
            r.dispatch_at(&set, Some(pi), &[(S::SCHED, sb), (S::CTR, cb), (S::SIGMA, sig)], g_b)?;
            model.plan.record(&mut r);
        }
        let pipe = r.pipeline("mcmc", entry, &consts)?;
        let pi = r.params(&Params { groups_x: g[0], ..base });
        r.dispatch_at(&pipe, Some(pi), &bind, g)?;
        r.dispatch_at(&tick, None, &[(S::CTR, cb)], [1, 1, 1])?;
        kinds.push((kind, r.into_captured()));
    }
    let mut keep = vec![state, mom, xp];
    keep.extend(dummy);
    Ok(McmcSteps { kinds, chain, keep })
}

/// The chains' rows at the start of a batch: zeros, step multiplier 1.
pub(super) fn reset(gpu: &Gpu, chain: &Tensor, b: usize) {
    let cols = chain.numel() / b;
    let mut v = vec![0f32; b * cols];
    for r in 0..b {
        v[r * cols + SCALE] = 1.0;
    }
    gpu.queue.write_buffer(chain.buffer().buffer(), 0, bytemuck::cast_slice(&v));
}

/// What the batches of a run have accepted so far.
#[derive(Clone, Debug, Default)]
pub(super) struct Tally {
    /// Accepted proposals per level, summed over chains.
    per_level: Vec<f64>,
    /// Accepted proposals of each chain (all levels).
    per_chain: Vec<f32>,
    log_w: Vec<f64>,
}

impl Tally {
    /// Add the first `take` chains of a batch's rows.
    pub fn add(&mut self, rows: &[f32], b: usize, take: usize, c: &McmcConsts) {
        let cols = rows.len() / b;
        let levels = c.levels.len();
        self.per_level.resize(levels, 0.0);
        for r in rows.chunks(cols).take(take) {
            let counts = &r[FIXED..FIXED + levels];
            for (t, &a) in self.per_level.iter_mut().zip(counts) {
                *t += a as f64;
            }
            self.per_chain.push(counts.iter().sum());
            if c.ais {
                self.log_w.push(r[LOGW] as f64);
            }
        }
    }

    pub fn report(&self, c: &McmcConsts) -> McmcReport {
        let n = self.per_chain.len().max(1);
        let tests: usize = c.tests.iter().sum();
        let levels = (0..c.levels.len())
            .filter(|&l| c.tests[l] > 0)
            .map(|l| (c.levels[l], self.per_level[l] / (c.tests[l] * n) as f64))
            .collect();
        let overall = self.per_level.iter().sum::<f64>() / (tests.max(1) * n) as f64;
        let g = n.min(8);
        let groups = (0..g)
            .map(|k| {
                let part = &self.per_chain[k * n / g..(k + 1) * n / g];
                part.iter().map(|&a| a as f64).sum::<f64>() / (part.len().max(1) * tests.max(1)) as f64
            })
            .collect();
        let groups = if tests > 0 { groups } else { vec![] };
        McmcReport { method: c.method.name().into(), levels, overall, groups, log_w: self.log_w.clone() }
    }
}
