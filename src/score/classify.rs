//! Noise-conditional classifiers p_phi(y | x~, sigma) (Dhariwal & Nichol 2021; Song et al.
//! 2021's class-conditional sampling): logits from the same inputs a score network sees
//! (c_in x~ and the noise level), trained by cross-entropy on data noised by the model's
//! process; their input gradient guides sampling.

use super::{mlp_input, per_sample, ModelSpec, Network};
use crate::error::{Error, Result};
use crate::graph::{Graph, Var};
use crate::nn::{mlp, Builder};
use crate::ops::random::Dist;
use crate::ops::reduce::Reduce;

/// log p(y | logits) [B] for logits [B, K] and one-hot labels [B, K]:
/// logits . onehot - logsumexp(logits) (stable for any logits).
pub fn log_prob(g: &mut Graph, logits: Var, onehot: Var) -> Result<Var> {
    let picked = g.mul(logits, onehot)?;
    let picked = g.sum(picked, 1)?;
    let lse = g.reduce(Reduce::LogSumExp, logits, 1)?;
    g.sub(picked, lse)
}

/// The first `classes` columns of a one-hot label [B, classes + 1] (the null column dropped).
pub fn real_columns(g: &mut Graph, label: Var, classes: usize) -> Result<Var> {
    g.slice(label, 1, 0, classes)
}

impl ModelSpec {
    /// The classes a classifier tells apart, or an error for score networks.
    pub fn classifier_classes(&self) -> Result<usize> {
        match (&self.network, self.classes) {
            (Network::Classifier(_), Some(k)) => Ok(k),
            _ => Err(Error::Invalid("the model is a score network, not a classifier".into())),
        }
    }

    /// Logits [B, classes] of x~ [B, data_shape...] at levels sigma [B].
    pub fn logits(&self, b: &mut Builder, x: Var, sigma: Var) -> Result<Var> {
        let k = self.classifier_classes()?;
        let Network::Classifier(body) = &self.network else { unreachable!("checked above") };
        let (x_in, c_noise) = self.scaled_inputs(b, x, sigma)?;
        match body.as_ref() {
            Network::Mlp { hidden, noise_features, act } => {
                let inp = mlp_input(b, x_in, c_noise, *noise_features, None)?;
                let mut sizes = vec![b.g.shape(inp)[1]];
                sizes.extend(hidden);
                sizes.push(k);
                mlp(b, inp, &sizes, act.unary())
            }
            Network::UNet(cfg) => {
                let ce = b.g.scale(c_noise, 250.0);
                crate::nn::unet::encoder(b, x_in, ce, cfg, k)
            }
            _ => Err(Error::Invalid("a classifier's body is an MLP or a U-Net encoder".into())),
        }
    }

    /// Cross-entropy of the classifier on x0 + sigma z (z drawn on the GPU from `seed`), mean
    /// over the batch; `label` is the one-hot input [B, classes + 1] (the builder's label).
    pub fn ce_loss(&self, b: &mut Builder, x0: Var, sigma: Var, seed: u64) -> Result<Var> {
        let k = self.classifier_classes()?;
        let label = b.label.ok_or_else(|| Error::Invalid("a classifier trains on labelled data".into()))?;
        let xs = b.g.shape(x0).to_vec();
        let z = b.g.random(&xs, Dist::Normal, seed, crate::rng::DSM_NOISE_STREAM);
        let sig = per_sample(b.g, sigma, &xs)?;
        let sz = b.g.mul(z, sig)?;
        let xt = b.g.add(x0, sz)?;
        let logits = self.logits(b, xt, sigma)?;
        let y = real_columns(b.g, label, k)?;
        let lp = log_prob(b.g, logits, y)?;
        let m = b.g.mean_all(lp)?;
        Ok(b.g.neg(m))
    }
}
