//! An analytic model: a Gaussian mixture, whose score and energy (-log p, normalised) are exact
//! at every noise level.

use super::{CondVars, ScoreModel};
use crate::dist::gmm::Gmm;
use crate::dist::Moments;
use crate::error::Result;
use crate::graph::plan::ParamStore;
use crate::graph::Var;
use crate::nn::Builder;
use crate::score::Process;

/// A Gaussian mixture under a VE process.
pub struct Mixture {
    /// The mixture: weights, means, (diagonal or full) covariances.
    pub gmm: Gmm,
    /// The noise process its scores are convolved with.
    pub process: Process,
    shape: [usize; 1],
}

impl Mixture {
    /// VE from 0.01 to sigma_max about the largest distance between points (Song & Ermon
    /// 2020, technique 1): 2 max |mean| + 3 max std, at least 1.
    pub fn new(gmm: Gmm) -> Mixture {
        let spread = gmm.means.iter().flatten().fold(0f64, |a, &m| a.max(m.abs()));
        let sigma_max = (2.0 * spread + 3.0 * gmm.stds.iter().cloned().fold(0.0, f64::max)).max(1.0);
        Mixture::with_process(gmm, Process::ve(0.01, sigma_max))
    }

    /// The mixture under another noise process than its default.
    pub fn with_process(gmm: Gmm, process: Process) -> Mixture {
        let shape = [gmm.dim()];
        Mixture { gmm, process, shape }
    }
}

impl ScoreModel for Mixture {
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn process(&self) -> &Process {
        &self.process
    }
    fn moments(&self) -> Moments {
        self.gmm.moments()
    }
    fn params(&self) -> ParamStore {
        ParamStore::new()
    }
    fn score(&self, b: &mut Builder, x: Var, sigma: Var, _cond: &CondVars) -> Result<Var> {
        self.gmm.score_graph(b.g, x, sigma)
    }
    fn energy(&self, b: &mut Builder, x: Var, sigma: Var, _cond: &CondVars) -> Result<Option<Var>> {
        Ok(Some(self.gmm.energy_graph(b.g, x, sigma)?))
    }
    fn log_normaliser(&self) -> Option<f64> {
        Some(0.0)
    }
    fn has_energy(&self) -> bool {
        true
    }
    fn mixture(&self) -> Option<&Gmm> {
        Some(&self.gmm)
    }
}
