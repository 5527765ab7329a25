//! A trained network: its architecture, weights, process and data moments.

use super::{CondVars, ScoreModel};
use crate::dist::Moments;
use crate::error::Result;
use crate::graph::plan::ParamStore;
use crate::graph::Var;
use crate::nn::Builder;
use crate::score::{ModelSpec, Process};

/// A score network with its weights (from training or a checkpoint).
pub struct Trained {
    pub spec: ModelSpec,
    pub params: ParamStore,
    pub process: Process,
    /// The training data's moments (the sampling prior).
    pub moments: Moments,
    /// Trained on 8-bit images scaled to [-1, 1].
    pub images: bool,
}

impl ScoreModel for Trained {
    fn shape(&self) -> &[usize] {
        &self.spec.data_shape
    }
    fn process(&self) -> &Process {
        &self.process
    }
    fn moments(&self) -> Moments {
        self.moments.clone()
    }
    fn images(&self) -> bool {
        self.images
    }
    fn params(&self) -> ParamStore {
        self.params.clone()
    }
    fn score(&self, b: &mut Builder, x: Var, sigma: Var, _cond: &CondVars) -> Result<Var> {
        self.spec.score(b, x, sigma)
    }
}
