//! A model planned for one batch: its graph with inputs x [B, shape...], sigma [B] and the
//! conditioning inputs, lowered to GPU buffers and kernels; optionally the divergence of the
//! score (likelihoods).

use super::{CondInput, CondVars, ScoreModel};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::autodiff::grad;
use crate::graph::plan::{ParamStore, Plan};
use crate::graph::{Graph, Var};
use crate::nn::Builder;
use crate::ops::elementwise::Unary;
use crate::rng::{HostRng, Stream};
use crate::tensor::Tensor;

/// A score model planned for one batch size: inputs x [B, shape...] and sigma [B], output
/// the score, and optionally the divergence of the score [B] (for likelihoods).
pub struct ScoreFn {
    /// The planned graph: score (and energy, divergence) of `batch` chains.
    pub plan: Plan,
    /// Chains evaluated at once.
    pub batch: usize,
    /// Shape of one sample.
    pub shape: Vec<usize>,
    /// Probes of the divergence estimate (inputs "probe0", ...), if any.
    pub probes: Probes,
    /// Conditioning inputs (graph inputs of the same names, [B, shape...]).
    pub cond: Vec<CondInput>,
    /// Which output holds the energy [B] of energy models (a Metropolis test's input).
    energy_at: Option<usize>,
}

/// How a divergence is computed: exactly (one vector-Jacobian product per dimension) or by
/// Hutchinson's estimator with k Rademacher probes per chain (fixed for the whole solve).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Probes {
    /// No divergence (sampling).
    None,
    /// The exact divergence: one vector-Jacobian product per dimension.
    Exact,
    /// Hutchinson's estimate with this many Rademacher probes per chain.
    Hutchinson(usize),
}

impl ScoreFn {
    /// Plan `model` for `batch` chains. Image models used for sampling (no probes) clip the
    /// denoised estimate D = x + sigma^2 s to the data range [-1, 1] (DDPM's clip_denoised): a
    /// network far outside its training inputs can otherwise send a rare trajectory off to
    /// infinity. Likelihoods use the model as trained.
    pub fn plan(gpu: &Gpu, model: &dyn ScoreModel, batch: usize, probes: Probes) -> Result<ScoreFn> {
        Self::plan_with(gpu, model, batch, probes, model.images() && probes == Probes::None)
    }

    /// [`ScoreFn::plan`] with clipping of the denoised estimate to [-1, 1] chosen by the caller
    /// (`sample.clip_denoised`). Clipping is one-sided at the range's edges: where the data sit
    /// at -1 (MNIST's background) it keeps the network's errors above -1 and drops those below,
    /// a small upward bias at every step (MNIST U-Net background 0.0053 clipped, 0.0031 not).
    pub fn plan_with(gpu: &Gpu, model: &dyn ScoreModel, batch: usize, probes: Probes, clip: bool) -> Result<ScoreFn> {
        let cond = model.conditioning();
        let params = model.params();
        Self::with_outputs(gpu, batch, model.shape(), &params, probes, &cond, |g, x, s, c| {
            let mut b = Builder::new(g);
            let (score, energy) = model.score_and_energy(&mut b, x, s, c)?;
            if clip {
                return Ok((clip_denoised(g, x, s, score)?, energy));
            }
            Ok((score, energy))
        })
    }

    /// Plan `build(graph, x, sigma) -> score` for `batch` samples of `shape`.
    pub fn new(
        gpu: &Gpu,
        batch: usize,
        shape: &[usize],
        params: &ParamStore,
        probes: Probes,
        build: impl FnOnce(&mut Graph, Var, Var) -> Result<Var>,
    ) -> Result<ScoreFn> {
        Self::with_outputs(gpu, batch, shape, params, probes, &[], |g, x, s, _| Ok((build(g, x, s)?, None)))
    }

    /// Plan `build(graph, x, sigma, conditioning inputs by name) -> (score, energy [B] of energy
    /// models)`, the energy planned as an output beside the score.
    fn with_outputs(
        gpu: &Gpu,
        batch: usize,
        shape: &[usize],
        params: &ParamStore,
        probes: Probes,
        cond: &[CondInput],
        build: impl FnOnce(&mut Graph, Var, Var, &CondVars) -> Result<(Var, Option<Var>)>,
    ) -> Result<ScoreFn> {
        if batch == 0 {
            return Err(Error::Invalid("a sampler batch must hold at least one chain".into()));
        }
        let mut g = Graph::new();
        let mut xs = vec![batch];
        xs.extend(shape);
        let x = g.input("x", &xs);
        let sigma = g.input("sigma", &[batch]);
        let mut vars = CondVars::new();
        for c in cond {
            if ["x", "sigma"].contains(&c.name.as_str()) || c.name.starts_with("probe") {
                return Err(Error::Invalid(format!("conditioning input '{}': the name is taken", c.name)));
            }
            let mut cs = vec![batch];
            cs.extend(&c.shape);
            vars.insert(c.name.clone(), g.input(&c.name, &cs));
        }
        let (s, energy) = build(&mut g, x, sigma, &vars)?;
        if g.shape(s) != xs.as_slice() {
            return Err(Error::Shape(format!("the model returns {:?} for input {xs:?}", g.shape(s))));
        }
        let mut outs = vec![s];
        let d: usize = shape.iter().product();
        let k = match probes {
            Probes::None => 0,
            Probes::Exact => d,
            Probes::Hutchinson(k) => k,
        };
        if k > 0 {
            let mut div: Option<Var> = None;
            for i in 0..k {
                let pv = g.input(&format!("probe{i}"), &xs);
                let sp = g.mul(s, pv)?;
                let tot = g.sum_all(sp)?;
                let gx = grad(&mut g, tot, &[x])?[0];
                let jp = g.mul(gx, pv)?;
                let jp = g.reshape(jp, &[batch, d])?;
                let di = g.sum(jp, 1)?;
                div = Some(match div {
                    Some(a) => g.add(a, di)?,
                    None => di,
                });
            }
            let mut div = div.unwrap();
            if let Probes::Hutchinson(k) = probes {
                div = g.scale(div, 1.0 / k as f32);
            }
            outs.push(div);
        }
        let energy_at = energy.map(|e| {
            outs.push(e);
            outs.len() - 1
        });
        let plan = Plan::batch_invariant(gpu, &g, &outs, params)?;
        Ok(ScoreFn { plan, batch, shape: shape.to_vec(), probes, cond: cond.to_vec(), energy_at })
    }

    /// The chains' points [B, shape...] (the input the samplers update in place).
    pub fn x(&self) -> &Tensor {
        self.plan.input("x").unwrap()
    }
    /// The noise level of each chain [B].
    pub fn sigma(&self) -> &Tensor {
        self.plan.input("sigma").unwrap()
    }
    /// The score at (x, sigma) [B, shape...].
    pub fn score(&self) -> &Tensor {
        self.plan.output(0)
    }
    /// The divergence of the score [B], when planned with probes.
    pub fn div(&self) -> Option<&Tensor> {
        (self.probes != Probes::None).then(|| self.plan.output(1))
    }
    /// The energy [B] of energy models, computed with the score.
    pub fn energy(&self) -> Option<&Tensor> {
        self.energy_at.map(|i| self.plan.output(i))
    }
    /// Values per chain.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Feed the conditioning rows of chains chain0 .. chain0 + B of the run, whose request
    /// starts at chain `first` (see `Conditions`; rows past the end repeat the last one: those
    /// chains are discarded).
    pub fn set_conditions(&self, gpu: &Gpu, conds: &Conditions, chain0: usize, first: usize) -> Result<()> {
        for c in &self.cond {
            let v = conds.get(&c.name).ok_or_else(|| Error::Invalid(format!("no values for '{}'", c.name)))?;
            let k = c.numel();
            let rows = v.len() / k.max(1);
            let mut buf = Vec::with_capacity(self.batch * k);
            for r in 0..self.batch {
                let i = conds.row(chain0 + r, first, rows);
                buf.extend_from_slice(&v[i * k..(i + 1) * k]);
            }
            self.plan.feed(gpu, &c.name, &buf)?;
        }
        Ok(())
    }

    /// Fill the probes for chains chain0.. : unit vectors (exact) or Rademacher vectors drawn
    /// from (seed, chain index), so a chain's probes do not depend on the batch.
    pub fn set_probes(&self, gpu: &Gpu, seed: u64, chain0: usize) -> Result<()> {
        let d = self.numel();
        match self.probes {
            Probes::None => {}
            Probes::Exact => {
                for i in 0..d {
                    let mut v = vec![0f32; self.batch * d];
                    for r in 0..self.batch {
                        v[r * d + i] = 1.0;
                    }
                    self.plan.feed(gpu, &format!("probe{i}"), &v)?;
                }
            }
            Probes::Hutchinson(k) => {
                let mut vs = vec![vec![0f32; self.batch * d]; k];
                for r in 0..self.batch {
                    let mut rng = HostRng::stream(seed, Stream::Probes((chain0 + r) as u64));
                    for v in vs.iter_mut() {
                        for j in 0..d {
                            v[r * d + j] = if rng.next_u64() >> 63 == 0 { 1.0 } else { -1.0 };
                        }
                    }
                }
                for (i, v) in vs.iter().enumerate() {
                    self.plan.feed(gpu, &format!("probe{i}"), v)?;
                }
            }
        }
        Ok(())
    }
}

/// s' = (clamp(x + sigma^2 s, -1, 1) - x) / sigma^2.
fn clip_denoised(g: &mut Graph, x: Var, sigma: Var, score: Var) -> Result<Var> {
    let xs = g.shape(x).to_vec();
    let sig = crate::score::per_sample(g, sigma, &xs)?;
    let s2 = g.unary(Unary::Square, sig);
    let t = g.mul(score, s2)?;
    let d = g.add(x, t)?;
    let dc = g.unary(Unary::Clamp(-1.0, 1.0), d);
    let r = g.sub(dc, x)?;
    g.div(r, s2)
}

/// Conditioning values: for each input, rows of its per-chain size. Chain i of the run takes
/// row i - first_chain of the request (one row per chain drawn), or, with `cycle`, row
/// i mod rows (e.g. one one-hot label per class, the chains cycling through them): either way
/// a chain's conditioning does not depend on the batch or the shard it is drawn in.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Conditions {
    /// Per conditioning input (by name): its values, one row per chain (or per cycle entry).
    pub values: Vec<(String, Vec<f32>)>,
    /// Rows repeat with period rows (chain i takes row i mod rows) instead of one per chain.
    pub cycle: bool,
}

impl Conditions {
    /// The row of chain `chain` of a request starting at chain `first`, of `rows` rows.
    pub fn row(&self, chain: usize, first: usize, rows: usize) -> usize {
        if self.cycle {
            chain % rows.max(1)
        } else {
            chain.saturating_sub(first).min(rows.saturating_sub(1))
        }
    }

    /// Check against a model's inputs: every input given, with `n` rows.
    pub fn check(&self, inputs: &[CondInput], n: usize) -> Result<()> {
        for c in inputs {
            let v = self.get(&c.name).ok_or_else(|| {
                Error::Invalid(format!(
                    "the model takes conditioning input '{}' {:?} per sample; none given",
                    c.name, c.shape
                ))
            })?;
            let rows_ok =
                if self.cycle { !v.is_empty() && v.len() % c.numel().max(1) == 0 } else { v.len() == n * c.numel() };
            if !rows_ok {
                return Err(Error::Shape(format!(
                    "conditioning input '{}': {} values for {n} samples of {:?}",
                    c.name,
                    v.len(),
                    c.shape
                )));
            }
        }
        if let Some((name, _)) = self.values.iter().find(|(k, _)| !inputs.iter().any(|c| &c.name == k)) {
            return Err(Error::Invalid(format!("conditioning input '{name}': the model does not take it")));
        }
        Ok(())
    }

    /// The values of input `name`, if given.
    pub fn get(&self, name: &str) -> Option<&[f32]> {
        self.values.iter().find(|(k, _)| k == name).map(|(_, v)| &v[..])
    }
}
