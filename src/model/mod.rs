//! The model abstraction every sampler, likelihood and metric consumes.
//!
//! A [`ScoreModel`] knows the shape of its samples, the noise process it was trained for, the
//! data's first two moments (the sampling prior), its parameters, and how to build its score
//! s(x~, sigma[, conditioning]) into a graph (and, where it has one, its energy). Planned for a
//! batch ([`ScoreFn::plan`]) it becomes GPU buffers and recorded kernels. Trained networks
//! ([`Trained`]) and analytic mixtures ([`Mixture`]) are models; so is anything an application
//! writes against this trait: compositions, guided and retrieval-conditioned models plug in here
//! without special cases in the samplers or the CLI.

mod classifier;
pub mod compose;
pub mod fisher;
pub mod guide;
mod mixture;
mod plan;
mod trained;

pub use classifier::{per_class, Classifier};
pub use compose::{ComposeOp, Composition};
pub use guide::{ClassifierGuided, FreeGuided};
pub use mixture::Mixture;
pub use plan::{Conditions, Probes, ScoreFn};
pub use trained::{CheckpointInfo, Trained};

use crate::dist::gmm::Gmm;
use crate::dist::Moments;
use crate::error::Result;
use crate::graph::plan::ParamStore;
use crate::graph::Var;
use crate::nn::Builder;
use crate::score::Process;
use std::collections::BTreeMap;

/// A conditioning input besides (x~, sigma): a named per-chain tensor, e.g. a one-hot class
/// label [classes + 1] (the last class is the null label) or context tokens [T, dim].
#[derive(Clone, Debug, PartialEq)]
pub struct CondInput {
    /// The graph input's name (`label`, `context`).
    pub name: String,
    /// Shape per chain (the graph input is [B, shape...]).
    pub shape: Vec<usize>,
}

impl CondInput {
    /// Values per chain.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// The conditioning inputs of one graph, by name.
pub type CondVars = BTreeMap<String, Var>;

/// A score model (see the module's documentation).
pub trait ScoreModel {
    /// Shape of one sample, e.g. [2] or [1, 28, 28].
    fn shape(&self) -> &[usize];

    /// The noise process the model was trained for: the samplers' noise range and schedule.
    fn process(&self) -> &Process;

    /// The data's mean per dimension and variance about it: the sampling prior is
    /// N(mean, (sigma_max^2 + var) I).
    fn moments(&self) -> Moments;

    /// Whether samples are images in [-1, 1]: samplers then clip the denoised estimate to that
    /// range, and likelihoods report bits per dimension of 8-bit data.
    fn images(&self) -> bool {
        false
    }

    /// The conditioning inputs the model takes (none by default).
    fn conditioning(&self) -> Vec<CondInput> {
        Vec::new()
    }

    /// The parameters, under the names `score` gives them through its builder.
    fn params(&self) -> ParamStore;

    /// Build score(x~, sigma) into `b`: x [B, shape...], sigma [B], `cond` the graph inputs of
    /// `conditioning()` -> [B, shape...].
    fn score(&self, b: &mut Builder, x: Var, sigma: Var, cond: &CondVars) -> Result<Var>;

    /// Build the energy E(x~, sigma) [B] of energy-parameterised models (score = -grad_x E);
    /// None for models that give the score directly.
    fn energy(&self, _b: &mut Builder, _x: Var, _sigma: Var, _cond: &CondVars) -> Result<Option<Var>> {
        Ok(None)
    }

    /// The score and, for energy models, the energy [B] from one evaluation of the network
    /// (what a Metropolis test reads beside the score). The default builds them separately.
    fn score_and_energy(&self, b: &mut Builder, x: Var, sigma: Var, cond: &CondVars) -> Result<(Var, Option<Var>)> {
        let s = self.score(b, x, sigma, cond)?;
        Ok((s, self.energy(b, x, sigma, cond)?))
    }

    /// Whether `energy` gives one (energy networks, analytic mixtures, compositions of them).
    fn has_energy(&self) -> bool {
        false
    }

    /// The log-normaliser of the energy where it is known (NCE-trained models):
    /// p(x~; sigma) = exp(-E(x~, sigma) - log_z).
    fn log_normaliser(&self) -> Option<f64> {
        None
    }

    /// The analytic mixture the model is, when it is one (exact densities for metrics).
    fn mixture(&self) -> Option<&Gmm> {
        None
    }

    /// Number of values in one sample.
    fn numel(&self) -> usize {
        self.shape().iter().product()
    }
}
