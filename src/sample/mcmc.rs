//! Metropolis-adjusted steps (shaders/mcmc.wgsl) as captured command lists of the runner: the
//! chains' current state (x, score, energy) lives in cache buffers on the GPU, every chain is
//! accepted or rejected on its own, and the accepted proposals are counted per chain.

use super::{Kind, Params};
use crate::error::{Error, Result};
use crate::gpu::{Captured, Gpu, Recorder};
use crate::model::ScoreFn;
use crate::ops::grid;
use crate::ops::kernels::slots::mcmc as M;
use crate::ops::kernels::slots::sampler as S;
use crate::tensor::Tensor;

/// The captured MCMC steps and the buffers they bind.
pub(super) struct McmcSteps {
    pub kinds: Vec<(Kind, Captured)>,
    /// Accepted proposals per chain [B] (reset at each batch).
    pub stats: Tensor,
    pub keep: Vec<Tensor>,
}

/// Capture `cache`, `propose` and `accept` for `model` (which must give an energy).
pub(super) fn capture(gpu: &Gpu, model: &ScoreFn, sched: &Tensor, ctr: &Tensor, base: Params) -> Result<McmcSteps> {
    let energy = model.energy().ok_or_else(|| {
        Error::Invalid(
            "a Metropolis-adjusted sampler needs the model's energy: energy networks (model.param = \"energy\"), \
             analytic mixtures and compositions of them have one; this model gives only a score"
                .into(),
        )
    })?;
    let (b, d) = (model.batch, model.numel());
    let (xc, sc) = (Tensor::zeros(gpu, &[b * d])?, Tensor::zeros(gpu, &[b * d])?);
    let (ec, stats) = (Tensor::zeros(gpu, &[b])?, Tensor::zeros(gpu, &[b])?);
    let rec = Recorder::capturing(gpu);
    let (g_n, g_b) = (grid(&rec, b * d, 256)?, grid(&rec, b, 256)?);
    let set = rec.pipeline("sampler", "set_sigma", &[])?;
    let tick = rec.pipeline("sampler", "tick", &[])?;
    let (x, s, sig) = (model.x().buffer(), model.score().buffer(), model.sigma().buffer());
    let (sb, cb) = (sched.buffer(), ctr.buffer());
    let (eb, xcb, scb, ecb) = (energy.buffer(), xc.buffer(), sc.buffer(), ec.buffer());
    // Each entry point binds what it uses (the layouts are derived from the shader).
    let cache_b = vec![(M::X, x), (M::S, s), (M::E, eb), (M::XC, xcb), (M::SC, scb), (M::EC, ecb)];
    let propose_b = vec![(M::SCHED, sb), (M::CTR, cb), (M::X, x), (M::XC, xcb), (M::SC, scb)];
    let mut accept_b = propose_b.clone();
    accept_b.extend([(M::S, s), (M::E, eb), (M::EC, ecb), (M::STATS, stats.buffer())]);
    let mut kinds = Vec::new();
    for (kind, entry, g, bind) in [
        (Kind::McmcCache, "cache", g_n, cache_b),
        (Kind::McmcPropose, "propose", g_n, propose_b),
        (Kind::McmcAccept, "accept", g_b, accept_b),
    ] {
        let mut r = Recorder::capturing(gpu);
        if kind != Kind::McmcPropose {
            let pi = r.params(&Params { groups_x: g_b[0], ..base });
            r.dispatch_at(&set, Some(pi), &[(S::SCHED, sb), (S::CTR, cb), (S::SIGMA, sig)], g_b)?;
            model.plan.record(&mut r);
        }
        let pipe = r.pipeline("mcmc", entry, &[])?;
        let pi = r.params(&Params { groups_x: g[0], ..base });
        r.dispatch_at(&pipe, Some(pi), &bind, g)?;
        r.dispatch_at(&tick, None, &[(S::CTR, cb)], [1, 1, 1])?;
        kinds.push((kind, r.into_captured()));
    }
    Ok(McmcSteps { kinds, stats, keep: vec![xc, sc, ec] })
}
