//! The `[train]` and `[sample]` tables with their defaults.

use crate::sample::{SampleRequest, SamplerKind, SamplerOpts};
use crate::score::{NceNoise, Objective, Projection};
use serde::{Deserialize, Serialize};

/// `[train]`: the optimisation.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Training steps.
    pub steps: usize,
    /// Samples per step.
    pub batch: usize,
    /// The peak learning rate.
    pub lr: f32,
    /// Linear warm-up steps.
    pub warmup: u32,
    /// Cosine decay of the learning rate to lr_min over the run.
    pub cosine: bool,
    /// The learning rate the cosine decay ends at.
    pub lr_min: f32,
    /// Global gradient-norm clipping (0: off).
    pub clip: f32,
    /// EMA decay of the weights (absent: no EMA; samples use the raw weights).
    pub ema: Option<f32>,
    /// The run's seed (every random stream derives from it: `rng::Stream`).
    pub seed: u64,
    /// Loss averaged and read back every N steps.
    pub log_every: usize,
    /// Write the checkpoint and the resumable state every N steps.
    pub checkpoint_every: usize,
    /// Write a sample grid / scatter every N steps (0: only at the end).
    pub sample_every: usize,
    /// dsm (default), ssm, ssm-vr, esm or nce (see `score::objective`).
    pub objective: Objective,
    /// ssm, ssm-vr: projections per sample (default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub projections: Option<usize>,
    /// ssm, ssm-vr: the projections' distribution, rademacher (default), gaussian or sphere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub projection: Option<Projection>,
    /// nce: noise samples per data sample (default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nce_ratio: Option<usize>,
    /// nce: the covariance of the Gaussian noise fitted to the data, full (default) or diagonal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nce_noise: Option<NceNoise>,
    /// Class-conditional models: the probability that a training label is replaced by the null
    /// label, so one model learns the conditional and the unconditional score (classifier-free
    /// guidance; default 0.1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_dropout: Option<f32>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            steps: 5000,
            batch: 4096,
            lr: 1e-3,
            warmup: 0,
            cosine: false,
            lr_min: 0.0,
            clip: 0.0,
            ema: None,
            seed: 0,
            log_every: 100,
            checkpoint_every: 1000,
            sample_every: 0,
            objective: Objective::Dsm,
            projections: None,
            projection: None,
            nce_ratio: None,
            nce_noise: None,
            label_dropout: None,
        }
    }
}

/// `[sample]`: how samples are drawn by default.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SampleConfig {
    /// ald, pc, ode, rk45, ddim, ancestral, heun, langevin, ula, mala, uhmc, hmc.
    pub sampler: SamplerKind,
    /// Model evaluations' worth of steps (ALD: all levels together).
    pub steps: usize,
    /// Samples drawn.
    pub n: usize,
    /// Chains run at once.
    pub batch: usize,
    /// The last noise level's distance from 0 (the samplers' end time).
    pub eps: f64,
    /// Noise levels of ALD and the MCMC samplers.
    pub levels: usize,
    /// The Langevin corrector's signal-to-noise ratio (pc).
    pub snr: f64,
    /// rk45's tolerance (relative and absolute).
    pub tol: f64,
    /// The seed: chain i's noise depends only on (seed, i).
    pub seed: u64,
    /// Image models: clip the denoised estimate to [-1, 1] at every step (DDPM's
    /// clip_denoised). It keeps a rare runaway trajectory in range but lifts pixels that sit
    /// at the range's edge (MNIST's background); EDM-preconditioned denoisers do well without.
    pub clip_denoised: bool,
}

impl Default for SampleConfig {
    fn default() -> Self {
        SampleConfig {
            sampler: SamplerKind::Ald,
            steps: 1000,
            n: 10000,
            batch: 10000,
            eps: 5e-5,
            levels: 10,
            snr: 0.16,
            tol: 1e-5,
            seed: 0,
            clip_denoised: true,
        }
    }
}

impl SampleConfig {
    /// The request this table describes.
    pub fn request(&self) -> SampleRequest {
        SampleRequest {
            sampler: self.sampler,
            steps: self.steps,
            n: self.n,
            batch: self.batch,
            seed: self.seed,
            opts: SamplerOpts {
                eps: self.eps,
                levels: self.levels,
                snr: self.snr,
                tol: self.tol,
                clip_denoised: self.clip_denoised,
                ..SamplerOpts::default()
            },
            conditions: Default::default(),
            first_chain: 0,
        }
    }
}
