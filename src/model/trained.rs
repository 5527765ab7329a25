//! A trained network: its architecture, weights, process and data moments.

use super::{CondInput, CondVars, ScoreModel};
use crate::dist::Moments;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::plan::ParamStore;
use crate::graph::Var;
use crate::io::checkpoint::Checkpoint;
use crate::nn::Builder;
use crate::score::config::ScoreConfig;
use crate::score::objective::LOG_Z;
use crate::score::{ModelSpec, Process};
use crate::tensor::Tensor;
use std::path::Path;

/// A score network with its weights (from training or a checkpoint).
pub struct Trained {
    /// The network's architecture (what the checkpoint's config describes).
    pub spec: ModelSpec,
    /// Its weights on the GPU, by PyTorch-style name.
    pub params: ParamStore,
    /// The noise process it was trained under (the levels it knows).
    pub process: Process,
    /// The training data's moments (the sampling prior).
    pub moments: Moments,
    /// Trained on 8-bit images scaled to [-1, 1].
    pub images: bool,
    /// NCE's learned log-normaliser of the energy, for models trained by NCE.
    pub log_z: Option<f64>,
    /// Class-conditional models: the classes' names (from the data; numbers where it had none).
    pub class_names: Vec<String>,
}

/// What a checkpoint says besides the model: its training step and the run's whole config
/// (TOML; the CLI reads its sampler and data settings from it).
#[derive(Clone, Debug)]
pub struct CheckpointInfo {
    /// Training steps taken when the checkpoint was written.
    pub step: usize,
    /// The run's whole config as TOML.
    pub config: String,
}

/// What a checkpoint written by `scoregen train` holds: the network (score model or
/// classifier), its weights and process, the data's moments, shape and classes.
pub(crate) struct Parts {
    pub spec: ModelSpec,
    pub params: ParamStore,
    pub process: Process,
    pub moments: Moments,
    pub images: bool,
    pub log_z: Option<f64>,
    pub class_names: Vec<String>,
    pub info: CheckpointInfo,
}

/// Read a checkpoint: the architecture and process from its config, the weights by name (every
/// mismatch in one error), the data moments (the prior).
pub(crate) fn load_parts(gpu: &Gpu, path: &Path) -> Result<Parts> {
    let ck = Checkpoint::load(path)?;
    let meta = |k: &str| {
        ck.metadata.get(k).cloned().ok_or_else(|| {
            Error::Invalid(format!("{}: not a scoregen checkpoint (no '{k}' in its metadata)", path.display()))
        })
    };
    let config = meta("scoregen.config")?;
    let cfg = ScoreConfig::from_metadata(&config, &format!("{} (metadata)", path.display()))?;
    let shape: Vec<usize> = serde_json::from_str(&meta("scoregen.data_shape")?)
        .map_err(|e| Error::Invalid(format!("{}: bad data_shape metadata: {e}", path.display())))?;
    if shape.is_empty() || shape.contains(&0) {
        return Err(Error::Invalid(format!(
            "{}: metadata scoregen.data_shape {shape:?} has no samples to draw (a zero or no dimension)",
            path.display()
        )));
    }
    let numel = crate::tensor::checked_numel(&shape).unwrap_or(usize::MAX);
    if numel as u128 * 4 > gpu.limits.max_storage_buffer_binding_size as u128 {
        return Err(Error::Limit(format!(
            "{}: metadata scoregen.data_shape {shape:?}: one sample is larger than this device binds",
            path.display()
        )));
    }
    let spec = cfg.spec(&shape)?;
    let mut params = ParamStore::new();
    for p in &spec.param_specs()? {
        params.insert(p.name.clone(), Tensor::zeros(gpu, &p.shape)?);
    }
    // NCE's learned log-normaliser travels as a one-value tensor beside the weights.
    let mut ck = ck;
    let log_z = match ck.tensors.remove(LOG_Z) {
        Some((shape, v)) if shape == [1] && v[0].is_finite() => Some(v[0] as f64),
        Some(_) => return Err(Error::Invalid(format!("{}: tensor {LOG_Z} is not one finite number", path.display()))),
        None => None,
    };
    ck.load_into(gpu, &params, &path.display().to_string())?;
    let images = ck.metadata.get("scoregen.images").map(|v| v == "true").unwrap_or(false);
    let step = ck.metadata.get("scoregen.step").and_then(|s| s.parse().ok()).unwrap_or(0);
    let moments = checkpoint_moments(&ck.metadata, spec.numel(), &path.display().to_string())?;
    let k = spec.classes.unwrap_or(0);
    let class_names = match ck.metadata.get("scoregen.class_names") {
        Some(v) => serde_json::from_str::<Vec<String>>(v)
            .ok()
            .filter(|n| n.len() <= k)
            .ok_or_else(|| Error::Invalid(format!("{}: bad scoregen.class_names metadata", path.display())))?,
        None => Vec::new(),
    };
    // Classes without a name in the data are named by number.
    let class_names = (0..k).map(|c| class_names.get(c).cloned().unwrap_or_else(|| c.to_string())).collect();
    let process = cfg.process.process();
    Ok(Parts { spec, params, process, moments, images, log_z, class_names, info: CheckpointInfo { step, config } })
}

impl Trained {
    /// A checkpoint written by `scoregen train` (a score model; classifiers load as
    /// `Classifier`).
    pub fn load(gpu: &Gpu, path: &Path) -> Result<(Trained, CheckpointInfo)> {
        let p = load_parts(gpu, path)?;
        if p.spec.is_classifier() {
            return Err(Error::Invalid(format!(
                "{}: is a classifier, not a score model; guide a sampler with it (sample --classifier {} --class K) \
                 or measure it (scoregen classify)",
                path.display(),
                path.display()
            )));
        }
        let model = Trained {
            spec: p.spec,
            params: p.params,
            process: p.process,
            moments: p.moments,
            images: p.images,
            log_z: p.log_z,
            class_names: p.class_names,
        };
        Ok((model, p.info))
    }

    /// The classes the model is conditional on (0: unconditional).
    pub fn classes(&self) -> usize {
        self.spec.classes.unwrap_or(0)
    }
}

/// The data moments a checkpoint records: `scoregen.data_mean` (JSON list) and
/// `scoregen.data_var`, or, in checkpoints written before them, `scoregen.data_mean_square`
/// (zero mean). Checked in f32: a non-finite value would make every sample NaN.
fn checkpoint_moments(meta: &std::collections::BTreeMap<String, String>, d: usize, file: &str) -> Result<Moments> {
    let num = |key: &str| -> Result<Option<f64>> {
        meta.get(key)
            .map(|v| {
                v.trim()
                    .parse::<f64>()
                    .map_err(|_| Error::Invalid(format!("{file}: metadata {key} = '{v}' is not a number")))
            })
            .transpose()
    };
    let m = match meta.get("scoregen.data_mean") {
        Some(v) => {
            let mean: Vec<f64> = serde_json::from_str(v)
                .map_err(|_| Error::Invalid(format!("{file}: metadata scoregen.data_mean is not a list of numbers")))?;
            Moments { mean, var: num("scoregen.data_var")?.unwrap_or(0.0) }
        }
        None => Moments::centred(d, num("scoregen.data_mean_square")?.unwrap_or(0.0)),
    };
    m.check(d, &format!("{file}: metadata"))?;
    Ok(m)
}

/// Build with the label and context inputs of `cond` (where given) as the builder's.
fn with_label<T>(b: &mut Builder, cond: &CondVars, f: impl FnOnce(&mut Builder) -> Result<T>) -> Result<T> {
    let saved = (b.label, b.context);
    b.label = cond.get(super::guide::LABEL).copied();
    b.context = cond.get(super::guide::CONTEXT).copied();
    let r = f(b);
    (b.label, b.context) = saved;
    r
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
    fn conditioning(&self) -> Vec<CondInput> {
        let label = self.spec.classes.map(|k| CondInput { name: super::guide::LABEL.into(), shape: vec![k + 1] });
        let context =
            self.spec.context.map(|c| CondInput { name: super::guide::CONTEXT.into(), shape: vec![c.tokens, c.dim] });
        label.into_iter().chain(context).collect()
    }
    fn score(&self, b: &mut Builder, x: Var, sigma: Var, cond: &CondVars) -> Result<Var> {
        with_label(b, cond, |b| self.spec.score(b, x, sigma))
    }
    fn energy(&self, b: &mut Builder, x: Var, sigma: Var, cond: &CondVars) -> Result<Option<Var>> {
        with_label(b, cond, |b| self.spec.energy(b, x, sigma))
    }
    fn score_and_energy(&self, b: &mut Builder, x: Var, sigma: Var, cond: &CondVars) -> Result<(Var, Option<Var>)> {
        with_label(b, cond, |b| self.spec.score_and_energy(b, x, sigma))
    }
    fn log_normaliser(&self) -> Option<f64> {
        self.log_z
    }
    fn has_energy(&self) -> bool {
        matches!(self.spec.param, crate::score::Parameterisation::Energy { .. })
    }
}
