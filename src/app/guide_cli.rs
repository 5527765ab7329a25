//! The guidance options of `sample`, `eval` and `field`: which class each chain draws, the
//! classifier-free guidance weight (in both conventions) and classifier guidance.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::guide::{interval_ok, label_classes, label_conditions, unconditional};
use crate::model::{Classifier, ClassifierGuided, Conditions, FreeGuided, ScoreModel};
use std::path::{Path, PathBuf};

/// Conditioning and guidance flags.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct GuideArgs {
    /// The class to draw: a number or name, a comma-separated list, or `all` (chains cycle
    /// through the list: chain i draws class list[i mod len]; the grid's columns are the
    /// classes). Default: unconditional (the null label).
    #[arg(long)]
    pub class: Option<String>,
    /// Classifier-free guidance weight w (Ho & Salimans): eps~ = (1 + w) eps(x, y) - w eps(x, null);
    /// w = 0 is plain conditional sampling. diffusers' guidance_scale is 1 + w.
    #[arg(long, allow_hyphen_values = true)]
    pub guidance: Option<f32>,
    /// diffusers' convention for the same: S = 1 + w (S = 1: no guidance).
    #[arg(long, allow_hyphen_values = true, conflicts_with = "guidance")]
    pub guidance_scale: Option<f32>,
    /// Classifier-free guidance only at noise levels LO < sigma < HI, `LO,HI` (sigma as in the
    /// process: x~ = s (x0 + sigma z)); elsewhere the conditional score alone (Kynkäänniemi et al.
    /// 2024). HI may be `inf`. Needs --guidance; classifier guidance is not limited by it.
    #[arg(long, value_name = "LO,HI", allow_hyphen_values = true)]
    pub guidance_interval: Option<String>,
    /// A noise-conditional classifier (model.network = "classifier") whose input gradient guides
    /// the score toward --class.
    #[arg(long)]
    pub classifier: Option<PathBuf>,
    /// Classifier guidance scale: score + S grad_x log p(y | x, sigma) [default: 1].
    #[arg(long, allow_hyphen_values = true, requires = "classifier")]
    pub classifier_scale: Option<f32>,
}

/// What the guidance flags make of a model: the model to sample (wrapped), the conditions of
/// its chains and the class list the chains cycle through (None: unconditional).
pub struct Guided {
    /// The model to sample.
    pub model: Box<dyn ScoreModel>,
    /// Its chains' conditioning.
    pub conditions: Conditions,
    /// The classes the chains cycle through.
    pub classes: Option<Vec<u32>>,
}

impl GuideArgs {
    /// The classifier-free weight w from either flag.
    pub fn weight(&self) -> Option<f32> {
        self.guidance.or(self.guidance_scale.map(|s| s - 1.0))
    }

    /// What the guidance adds to a sharded run's key: the classifier's hash and the weights.
    pub fn run_key(&self) -> Result<String> {
        let clf = match &self.classifier {
            Some(c) => super::shard::model_hash(&super::ModelSource::Checkpoint(c.clone()))?,
            None => "none".into(),
        };
        let interval = self.interval()?;
        Ok(format!(" classifier {clf} guidance {:?} {:?} {interval:?}", self.weight(), self.classifier_scale))
    }

    /// `--guidance-interval LO,HI` as two numbers.
    pub fn interval(&self) -> Result<Option<(f32, f32)>> {
        let Some(s) = &self.guidance_interval else { return Ok(None) };
        let bad = || {
            Error::Invalid(format!(
                "--guidance-interval {s}: give two noise levels LO,HI with 0 <= LO < HI (e.g. 0.3,5 or 0.3,inf)"
            ))
        };
        let v: Vec<f32> = s.split(',').map(|t| t.trim().parse::<f32>().map_err(|_| bad())).collect::<Result<_>>()?;
        match v[..] {
            [lo, hi] if interval_ok(lo, hi) => Ok(Some((lo, hi))),
            _ => Err(bad()),
        }
    }

    /// Wrap `model` as the flags say (class names from `names`, where the model has them).
    pub fn apply(&self, gpu: &Gpu, model: Box<dyn ScoreModel>, names: &[String]) -> Result<Guided> {
        let clf = self.classifier.as_ref().map(|p| Classifier::load(gpu, p)).transpose()?;
        let model_k = label_classes(model.as_ref());
        let k = model_k.or(clf.as_ref().map(|c| c.classes()));
        let classes = match (&self.class, k) {
            (Some(c), Some(k)) => {
                let names =
                    if names.is_empty() { clf.as_ref().map(|c| &c.class_names[..]).unwrap_or(&[]) } else { names };
                Some(parse_classes(c, k, names)?)
            }
            (Some(c), None) => {
                return Err(Error::Invalid(format!(
                    "--class {c}: the model has no class labels (train it with model.classes = K, or guide it with \
                     --classifier)"
                )))
            }
            (None, _) => None,
        };
        let context = crate::model::guide::context_shape(model.as_ref()).is_some();
        if let (Some(w), None, false) = (self.weight(), &classes, context) {
            return Err(Error::Invalid(format!("--guidance {w}: give --class (the class to guide toward)")));
        }
        if let (Some(p), None) = (&self.classifier, &classes) {
            return Err(Error::Invalid(format!(
                "--classifier {}: give --class (the class to guide toward)",
                p.display()
            )));
        }
        let interval = self.interval()?;
        if let (Some(s), None) = (&self.guidance_interval, self.weight()) {
            return Err(Error::Invalid(format!(
                "--guidance-interval {s}: give --guidance W (the weight to apply inside the interval)"
            )));
        }
        let mut model = model;
        if let Some(w) = self.weight().filter(|w| *w != 0.0) {
            let guided = FreeGuided::new(model, w)?;
            model = Box::new(match interval {
                Some((lo, hi)) => guided.with_interval(lo, hi)?,
                None => guided,
            });
        }
        if let (Some(c), Some(p)) = (clf, &self.classifier) {
            let s = self.classifier_scale.unwrap_or(1.0);
            model = Box::new(ClassifierGuided::new(model, c, s, &p.display().to_string())?);
        }
        let conditions = match (&classes, k) {
            (Some(list), Some(k)) => {
                let labels: Vec<Option<u32>> = list.iter().map(|&c| Some(c)).collect();
                label_conditions(k, &labels)
            }
            _ => unconditional(model.as_ref())?,
        };
        Ok(Guided { model, conditions, classes })
    }
}

/// `--class` values: a number or class name, a comma-separated list of them, or `all`.
pub fn parse_classes(s: &str, k: usize, names: &[String]) -> Result<Vec<u32>> {
    if s.trim() == "all" {
        return Ok((0..k as u32).collect());
    }
    s.split(',')
        .map(|t| {
            let t = t.trim();
            let c = match names.iter().position(|n| n == t) {
                Some(i) => i,
                None => t.parse::<usize>().map_err(|_| {
                    Error::Invalid(format!(
                        "--class {s}: '{t}' is neither a class number (0 to {}) nor a class name",
                        k.saturating_sub(1)
                    ))
                })?,
            };
            if c >= k {
                return Err(Error::Invalid(format!(
                    "--class {s}: class {c} is beyond the model's {k} classes (0 to {})",
                    k - 1
                )));
            }
            Ok(c as u32)
        })
        .collect()
}

/// The labels of chains first .. first + n cycling through `classes`, written as `<stem>.labels.npy`
/// beside `out` (float32 class numbers, one per sample).
pub fn write_labels(out: &Path, classes: &[u32], first: usize, n: usize) -> Result<PathBuf> {
    let path = super::classify::labels_beside(out);
    let v: Vec<f32> = (first..first + n).map(|i| classes[i % classes.len()] as f32).collect();
    crate::io::npy::write_npy(&path, &[n], &v)?;
    Ok(path)
}
