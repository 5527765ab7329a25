//! A noise-conditional classifier p_phi(y | x~, sigma) from a checkpoint (`model.network =
//! "classifier"`): its logits as graph ops (classifier guidance differentiates them on the
//! GPU), and its accuracy on labelled data at chosen noise levels.

use super::trained::load_parts;
use super::CheckpointInfo;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::plan::{ParamStore, Plan};
use crate::graph::{Graph, Var};
use crate::nn::Builder;
use crate::rng::HostRng;
use crate::score::{ModelSpec, Process};
use std::path::Path;

/// A trained classifier.
pub struct Classifier {
    /// The classifier network's architecture.
    pub spec: ModelSpec,
    /// Its weights on the GPU.
    pub params: ParamStore,
    /// The noise process it was trained on (the levels it knows).
    pub process: Process,
    /// Trained on 8-bit images scaled to [-1, 1].
    pub images: bool,
    /// The classes' names (numbers where the data had none).
    pub class_names: Vec<String>,
    /// The checkpoint's step and config.
    pub info: CheckpointInfo,
}

impl Classifier {
    /// A classifier checkpoint written by `scoregen train` (`model.network = "classifier"`).
    pub fn load(gpu: &Gpu, path: &Path) -> Result<Classifier> {
        let p = load_parts(gpu, path)?;
        if !p.spec.is_classifier() {
            return Err(Error::Invalid(format!(
                "{}: is a score model, not a classifier (train one with model.network = \"classifier\")",
                path.display()
            )));
        }
        Ok(Classifier {
            spec: p.spec,
            params: p.params,
            process: p.process,
            images: p.images,
            class_names: p.class_names,
            info: p.info,
        })
    }

    /// The number of classes.
    pub fn classes(&self) -> usize {
        self.spec.classes.unwrap_or(0)
    }

    /// The shape of one input.
    pub fn shape(&self) -> &[usize] {
        &self.spec.data_shape
    }

    /// log p(y | x~, sigma) [B] for one-hot labels [B, classes + 1] (the null column ignored).
    pub fn log_prob(&self, b: &mut Builder, x: Var, sigma: Var, label: Var) -> Result<Var> {
        let logits = self.spec.logits(b, x, sigma)?;
        let y = crate::score::classify::real_columns(b.g, label, self.classes())?;
        crate::score::classify::log_prob(b.g, logits, y)
    }

    /// The predicted class of each of n samples `xs` [n * D] at level `sigma`, the samples
    /// noised by sigma z first (z from `rng`; sigma = 0: as they are), in batches of `batch`.
    pub fn predict(&self, gpu: &Gpu, xs: &[f32], sigma: f64, rng: &mut HostRng, batch: usize) -> Result<Vec<u32>> {
        let d = self.spec.numel();
        let n = xs.len() / d;
        let batch = batch.min(n).max(1);
        let mut g = Graph::new();
        let mut shape = vec![batch];
        shape.extend(&self.spec.data_shape);
        let (x, s) = (g.input("x", &shape), g.input("sigma", &[batch]));
        let mut b = Builder::new(&mut g);
        let logits = self.spec.logits(&mut b, x, s)?;
        let plan = Plan::batch_invariant(gpu, &g, &[logits], &self.params)?;
        // The network sees at least its lowest trained level (sigma = 0 would be log 0).
        let level = sigma.max(self.process.sigma_min()) as f32;
        let k = self.classes();
        let mut out = Vec::with_capacity(n);
        for start in (0..n).step_by(batch) {
            let take = (n - start).min(batch);
            let mut v = vec![0f32; batch * d];
            for (i, o) in v[..take * d].iter_mut().enumerate() {
                *o = xs[start * d + i] + (sigma * rng.normal()) as f32;
            }
            plan.feed(gpu, "x", &v)?;
            plan.feed(gpu, "sigma", &vec![level; batch])?;
            plan.run(gpu)?;
            let l = plan.output(0).to_vec(gpu)?;
            out.extend(l.chunks(k).take(take).map(|r| argmax(r) as u32));
        }
        Ok(out)
    }
}

fn argmax(r: &[f32]) -> usize {
    (0..r.len()).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap_or(0)
}

/// Accuracy per class: (correct, total) for each class of `labels`.
pub fn per_class(pred: &[u32], labels: &[u32], classes: usize) -> Vec<(usize, usize)> {
    let mut c = vec![(0, 0); classes];
    for (p, l) in pred.iter().zip(labels) {
        if let Some(e) = c.get_mut(*l as usize) {
            e.1 += 1;
            e.0 += (p == l) as usize;
        }
    }
    c
}
