//! Adam / AdamW with learning-rate warm-up and cosine decay, global gradient-norm clipping and
//! an EMA of the weights, as fused kernels (shaders/optim.wgsl) whose per-step scalars (step
//! count, learning rate, clip scale) live in a GPU buffer. `TrainStep` joins a planned forward
//! and backward pass with the update: one training step is one submission.

use crate::error::{Error, Result};
use crate::gpu::{Captured, Gpu, Recorder};
use crate::graph::autodiff::grad;
use crate::graph::plan::{ParamStore, Plan};
use crate::graph::{Graph, Op, Var};
use crate::ops::grid;
use crate::ops::kernels::slots::optim as O;
use crate::ops::kernels::OptimParams as Params;
use crate::tensor::Tensor;

/// Optimizer settings; the defaults are PyTorch's Adam.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    /// The peak learning rate.
    pub lr: f32,
    /// Adam's first-moment decay.
    pub beta1: f32,
    /// Adam's second-moment decay.
    pub beta2: f32,
    /// Adam's epsilon.
    pub eps: f32,
    /// > 0 makes it AdamW (decoupled weight decay).
    pub weight_decay: f32,
    /// Linear warm-up length in steps (0: none).
    pub warmup_steps: u32,
    /// Cosine decay to `lr_min` ends at this step (0: constant after warm-up).
    pub total_steps: u32,
    /// The learning rate the cosine decay ends at.
    pub lr_min: f32,
    /// Global gradient-norm clipping threshold (0: off).
    pub clip_norm: f32,
    /// EMA of the weights with this decay (e.g. 0.999), or none.
    pub ema_decay: Option<f32>,
}

impl AdamConfig {
    /// The learning rate of step `t` (1 for the first), as the GPU schedule computes it: linear
    /// warm-up to `lr` over `warmup_steps`, then cosine decay to `lr_min` at `total_steps`.
    pub fn lr_at(&self, t: u32) -> f64 {
        let (t, warmup, total) = (t as f64, self.warmup_steps as f64, self.total_steps as f64);
        let (lr, lr_min) = (self.lr as f64, self.lr_min as f64);
        if t <= warmup {
            lr * t / warmup.max(1.0)
        } else if total > warmup {
            let prog = ((t - warmup) / (total - warmup)).clamp(0.0, 1.0);
            lr_min + 0.5 * (lr - lr_min) * (1.0 + (std::f64::consts::PI * prog).cos())
        } else {
            lr
        }
    }
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            warmup_steps: 0,
            total_steps: 0,
            lr_min: 0.0,
            clip_norm: 0.0,
            ema_decay: None,
        }
    }
}

struct Slot {
    name: String,
    m: Tensor,
    v: Tensor,
    ema: Option<Tensor>,
}

/// Adam(W) over named parameters: the update of every parameter captured once, replayed
/// each step.
pub struct Optimizer {
    /// Its settings.
    pub cfg: AdamConfig,
    /// [t, lr, clip scale, sum of squared gradients]
    pub state: Tensor,
    slots: Vec<Slot>,
    captured: Captured,
}

impl Optimizer {
    /// Capture the update of each named parameter from its gradient tensor.
    pub fn new(gpu: &Gpu, cfg: AdamConfig, params: &ParamStore, grads: &[(String, Tensor)]) -> Result<Optimizer> {
        if !(cfg.lr > 0.0) || !(0.0..1.0).contains(&cfg.beta1) || !(0.0..1.0).contains(&cfg.beta2) || !(cfg.eps > 0.0) {
            return Err(Error::Invalid(format!("optimizer settings out of range: {cfg:?}")));
        }
        let state = Tensor::zeros(gpu, &[4])?;
        let base = Params {
            n: 0,
            warmup: cfg.warmup_steps as f32,
            total: cfg.total_steps as f32,
            lr_max: cfg.lr,
            lr_min: cfg.lr_min,
            beta1: cfg.beta1,
            beta2: cfg.beta2,
            eps: cfg.eps,
            weight_decay: cfg.weight_decay,
            max_norm: cfg.clip_norm,
            decay: cfg.ema_decay.unwrap_or(0.0),
            p0: 0.0,
        };
        let mut rec = Recorder::capturing(gpu);
        let tick = rec.pipeline("optim", "tick", &[])?;
        let pi = rec.params(&base);
        rec.dispatch_at(&tick, Some(pi), &[(O::STATE, state.buffer())], [1, 1, 1])?;
        if cfg.clip_norm > 0.0 {
            let sumsq = rec.pipeline("optim", "sumsq", &[])?;
            for (_, g) in grads {
                let pi = rec.params(&Params { n: g.numel() as u32, ..base });
                rec.dispatch_at(&sumsq, Some(pi), &[(O::STATE, state.buffer()), (O::G, g.buffer())], [1, 1, 1])?;
            }
        }
        let clip = rec.pipeline("optim", "clip_scale", &[])?;
        let pi = rec.params(&base);
        rec.dispatch_at(&clip, Some(pi), &[(O::STATE, state.buffer())], [1, 1, 1])?;
        let adam = rec.pipeline("optim", "adam", &[])?;
        let ema = rec.pipeline("optim", "ema", &[])?;
        let mut slots = Vec::new();
        for (name, g) in grads {
            let p =
                params.get(name).ok_or_else(|| Error::Invalid(format!("no parameter '{name}' for its gradient")))?;
            if p.shape() != g.shape() {
                return Err(Error::Shape(format!(
                    "parameter '{name}' {:?} and its gradient {:?} differ",
                    p.shape(),
                    g.shape()
                )));
            }
            let (m, v) = (Tensor::zeros(gpu, p.shape())?, Tensor::zeros(gpu, p.shape())?);
            let n = p.numel();
            let groups = grid(&rec, n, 256)?;
            let pi = rec.params(&Params { n: n as u32, ..base });
            rec.dispatch_at(
                &adam,
                Some(pi),
                &[
                    (O::STATE, state.buffer()),
                    (O::W, p.buffer()),
                    (O::G, g.buffer()),
                    (O::M, m.buffer()),
                    (O::V, v.buffer()),
                ],
                groups,
            )?;
            let e = match cfg.ema_decay {
                Some(_) => {
                    // The EMA starts from the initial weights.
                    let e = Tensor::from_slice(gpu, &p.to_vec(gpu)?, p.shape())?;
                    let pi = rec.params(&Params { n: n as u32, ..base });
                    rec.dispatch_at(&ema, Some(pi), &[(O::W, p.buffer()), (O::E, e.buffer())], groups)?;
                    Some(e)
                }
                None => None,
            };
            slots.push(Slot { name: name.clone(), m, v, ema: e });
        }
        Ok(Optimizer { cfg, state, slots, captured: rec.into_captured() })
    }

    /// Record one update of every parameter (tick, clipping, the updates).
    pub fn record(&self, rec: &mut Recorder) {
        rec.replay(&self.captured.steps);
    }

    /// The EMA weights of a parameter (when `ema_decay` is set).
    pub fn ema(&self, name: &str) -> Option<&Tensor> {
        self.slots.iter().find(|s| s.name == name).and_then(|s| s.ema.as_ref())
    }

    /// Adam's first and second moments of a parameter (for checkpoints).
    pub fn moments(&self, name: &str) -> Option<(&Tensor, &Tensor)> {
        self.slots.iter().find(|s| s.name == name).map(|s| (&s.m, &s.v))
    }

    /// Steps taken, learning rate of the last step, last clip scale (a readback).
    pub fn read_state(&self, gpu: &Gpu) -> Result<(f32, f32, f32)> {
        let s = self.state.to_vec(gpu)?;
        Ok((s[0], s[1], s[2]))
    }
}

/// A planned training step: forward, loss, backward and the optimizer update, replayed as one
/// submission per step.
pub struct TrainStep {
    /// The forward and backward plan.
    pub plan: Plan,
    /// The optimizer.
    pub opt: Optimizer,
}

/// Param nodes of a graph by name.
pub fn param_vars(g: &Graph) -> Vec<(String, Var)> {
    g.nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| match &n.op {
            Op::Param(name) => Some((name.clone(), Var(i))),
            _ => None,
        })
        .collect()
}

impl TrainStep {
    /// Differentiate `loss` with respect to every parameter of the graph and plan the step.
    pub fn new(gpu: &Gpu, g: &mut Graph, loss: Var, params: &ParamStore, cfg: AdamConfig) -> Result<TrainStep> {
        let pv = param_vars(g);
        let vars: Vec<Var> = pv.iter().map(|(_, v)| *v).collect();
        let grads = grad(g, loss, &vars)?;
        let mut outs = vec![loss];
        outs.extend(&grads);
        let plan = Plan::new(gpu, g, &outs, params)?;
        let named: Vec<(String, Tensor)> =
            pv.iter().enumerate().map(|(i, (n, _))| (n.clone(), plan.output(1 + i).clone())).collect();
        let opt = Optimizer::new(gpu, cfg, params, &named)?;
        Ok(TrainStep { plan, opt })
    }

    /// The loss of the last step (a scalar tensor).
    pub fn loss(&self) -> &Tensor {
        self.plan.output(0)
    }

    /// `steps` training steps in one submission (inputs fed before stay the same).
    pub fn run(&self, gpu: &Gpu, steps: usize) -> Result<()> {
        let mut rec = Recorder::new(gpu);
        for _ in 0..steps {
            self.plan.record(&mut rec);
            self.opt.record(&mut rec);
        }
        rec.submit()
    }
}
