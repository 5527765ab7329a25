//! Guidance: classifier-free guidance of a class-conditional model (Ho & Salimans 2021) and
//! classifier guidance by a noise-conditional classifier (Dhariwal & Nichol 2021; Song et al.
//! 2021). Both are score models wrapping another, so every sampler, MCMC corrector and
//! likelihood uses them without special cases.
//!
//! Conventions: with guidance weight w, eps~ = (1 + w) eps(x, y) - w eps(x, null); in scores
//! (eps = -sigma s, the same sigma for both) s~ = (1 + w) s(x, y) - w s(x, null). diffusers'
//! guidance scale is S = 1 + w. Classifier guidance adds S_c grad_x log p(y | x~, sigma) to the
//! score (guided-diffusion's and score_sde's scale).

use super::{Classifier, CondInput, CondVars, Conditions, ScoreModel};
use crate::dist::gmm::Gmm;
use crate::dist::Moments;
use crate::error::{Error, Result};
use crate::graph::autodiff::grad;
use crate::graph::plan::ParamStore;
use crate::graph::Var;
use crate::nn::Builder;
use crate::ops::elementwise::Unary;
use crate::score::Process;

/// The name of the one-hot class label input [classes + 1] (the last class the null label).
pub const LABEL: &str = "label";

/// The name of the context tokens [k, dim] of retrieval-conditioned models (the neighbours'
/// embeddings; all zeros: the null context).
pub const CONTEXT: &str = "context";

/// The context tokens (k, dim) a model attends to, if it is retrieval-conditioned.
pub fn context_shape(model: &dyn ScoreModel) -> Option<(usize, usize)> {
    model.conditioning().iter().find(|c| c.name == CONTEXT).map(|c| (c.shape[0], c.shape[1]))
}

/// The classes a model is conditional on (its label input), if it is.
pub fn label_classes(model: &dyn ScoreModel) -> Option<usize> {
    model.conditioning().iter().find(|c| c.name == LABEL).map(|c| c.numel().saturating_sub(1))
}

/// Conditions for chains cycling through `labels` (None: the null label): chain i takes
/// labels[i mod len], whatever the batch or shard it is drawn in.
pub fn label_conditions(classes: usize, labels: &[Option<u32>]) -> Conditions {
    let rows = crate::data::labels::one_hot(labels, classes);
    Conditions { values: vec![(LABEL.into(), rows)], cycle: true }
}

/// The conditions an unconditional draw from `model` needs: the null label for models with
/// classes, the null context (zeros) for retrieval-conditioned ones; none for others. Other
/// conditioning inputs have no default (an error names them).
pub fn unconditional(model: &dyn ScoreModel) -> Result<Conditions> {
    let mut values = Vec::new();
    for c in model.conditioning() {
        match c.name.as_str() {
            LABEL => values.push((LABEL.to_string(), crate::data::labels::one_hot(&[None], c.numel() - 1))),
            CONTEXT => values.push((CONTEXT.to_string(), vec![0.0; c.numel()])),
            _ => {
                return Err(Error::Invalid(format!(
                    "the model takes conditioning input '{}' {:?} per sample; none given",
                    c.name, c.shape
                )))
            }
        }
    }
    Ok(Conditions { cycle: !values.is_empty(), values })
}

/// Everything but the score passes through to the wrapped model.
macro_rules! forward {
    () => {
        fn shape(&self) -> &[usize] {
            self.inner.shape()
        }
        fn process(&self) -> &Process {
            self.inner.process()
        }
        fn moments(&self) -> Moments {
            self.inner.moments()
        }
        fn images(&self) -> bool {
            self.inner.images()
        }
        fn has_energy(&self) -> bool {
            self.inner.has_energy()
        }
        fn mixture(&self) -> Option<&Gmm> {
            None
        }
        fn score(&self, b: &mut Builder, x: Var, sigma: Var, cond: &CondVars) -> Result<Var> {
            Ok(self.score_and_energy(b, x, sigma, cond)?.0)
        }
        fn energy(&self, b: &mut Builder, x: Var, sigma: Var, cond: &CondVars) -> Result<Option<Var>> {
            Ok(self.score_and_energy(b, x, sigma, cond)?.1)
        }
    };
}

/// Classifier-free guidance of a conditional model with weight w: the conditional and the
/// unconditional scores (the null label; for retrieval-conditioned models the null context, as
/// RDM guides over its neighbours) from one network pass over 2B rows.
pub struct FreeGuided {
    /// The conditional model (trained with label dropout: its null label is the unconditional one).
    pub inner: Box<dyn ScoreModel>,
    /// The guidance weight w: (1 + w) s(x, y) - w s(x, null).
    pub w: f32,
    /// Guide only where lo < sigma < hi (Kynkäänniemi et al. 2024); elsewhere the score is the
    /// conditional one (w = 0). None: every noise level.
    pub interval: Option<(f32, f32)>,
}

impl FreeGuided {
    /// Guide `inner` (which must take a label or context) with weight `w`.
    pub fn new(inner: Box<dyn ScoreModel>, w: f32) -> Result<FreeGuided> {
        if label_classes(inner.as_ref()).is_none() && context_shape(inner.as_ref()).is_none() {
            return Err(Error::Invalid(format!(
                "--guidance {w}: the model has no class labels (train it with model.classes = K) or retrieval \
                 context ([retrieval]) to guide by"
            )));
        }
        if !w.is_finite() {
            return Err(Error::Invalid(format!("--guidance {w} must be a finite number")));
        }
        Ok(FreeGuided { inner, w, interval: None })
    }

    /// Guide only at noise levels lo < sigma < hi (a guidance interval: Kynkäänniemi et al.
    /// 2024, who guide EDM2 only in the middle of the noise range); 0 <= lo < hi, hi may be
    /// infinite.
    pub fn with_interval(self, lo: f32, hi: f32) -> Result<FreeGuided> {
        if !interval_ok(lo, hi) {
            return Err(Error::Invalid(format!(
                "--guidance-interval {lo},{hi}: give two noise levels 0 <= LO < HI (guidance applies where LO < sigma < HI)"
            )));
        }
        Ok(FreeGuided { interval: Some((lo, hi)), ..self })
    }

    /// The guided combination of the halves `cond`, `uncond` [B, ...] at noise levels sigma [B]:
    /// `combine` everywhere, or (1 + w m) cond - w m uncond with m = 1 inside the interval, 0
    /// outside (the same arithmetic as `combine` inside, the conditional score exactly outside).
    fn guide(&self, b: &mut Builder, cond: Var, uncond: Var, sigma: Var) -> Result<Var> {
        let Some((lo, hi)) = self.interval else { return combine(b, cond, uncond, self.w) };
        let shape = b.g.shape(cond).to_vec();
        let mut mshape = vec![1; shape.len()];
        mshape[0] = shape[0];
        let m = b.g.unary(Unary::InRange(lo, hi), sigma);
        let m = b.g.reshape(m, &mshape)?;
        let wm = b.g.scale(m, self.w);
        let one_wm = b.g.unary(Unary::AddScalar(1.0), wm);
        let c = b.g.mul(cond, one_wm)?;
        let u = b.g.mul(uncond, wm)?;
        b.g.sub(c, u)
    }
}

/// Whether (lo, hi) is a guidance interval: 0 <= lo < hi, lo finite (false for NaNs).
pub fn interval_ok(lo: f32, hi: f32) -> bool {
    lo >= 0.0 && lo.is_finite() && hi > lo
}

/// (1 + w) a - w b, the guided combination of the conditional a and unconditional b.
pub fn combine(b: &mut Builder, cond: Var, uncond: Var, w: f32) -> Result<Var> {
    let c = b.g.scale(cond, 1.0 + w);
    let u = b.g.scale(uncond, w);
    b.g.sub(c, u)
}

impl ScoreModel for FreeGuided {
    forward!();

    fn conditioning(&self) -> Vec<CondInput> {
        self.inner.conditioning()
    }
    fn params(&self) -> ParamStore {
        self.inner.params()
    }
    fn score_and_energy(&self, b: &mut Builder, x: Var, sigma: Var, cond: &CondVars) -> Result<(Var, Option<Var>)> {
        let n = b.g.shape(x)[0];
        let x2 = b.g.concat(x, x, 0)?;
        let s2 = b.g.concat(sigma, sigma, 0)?;
        let mut c2 = CondVars::new();
        for (name, &v) in cond {
            let shape = b.g.shape(v).to_vec();
            let other = match name.as_str() {
                LABEL => {
                    let k = shape[1];
                    let null: Vec<f32> = (0..n * k).map(|i| if i % k == k - 1 { 1.0 } else { 0.0 }).collect();
                    b.g.constant(null, &[n, k])?
                }
                CONTEXT => b.g.constant(vec![0.0; shape.iter().product()], &shape)?,
                _ => v,
            };
            c2.insert(name.clone(), b.g.concat(v, other, 0)?);
        }
        let (s, e) = self.inner.score_and_energy(b, x2, s2, &c2)?;
        let halves = |b: &mut Builder, v: Var| -> Result<Var> {
            let c = b.g.slice(v, 0, 0, n)?;
            let u = b.g.slice(v, 0, n, n)?;
            self.guide(b, c, u, sigma)
        };
        let s = halves(b, s)?;
        let e = e.map(|e| halves(b, e)).transpose()?;
        Ok((s, e))
    }
}

/// Classifier guidance: the score of `inner` plus scale * grad_x log p(y | x~, sigma) of a
/// noise-conditional classifier (its parameters under `clf.`), with the energy lowered by
/// scale * log p for energy models. The label input is the model's own where it has one (CFG
/// and classifier guidance together), else one of the classifier's classes.
pub struct ClassifierGuided {
    /// The unconditional score model.
    pub inner: Box<dyn ScoreModel>,
    /// The noise-conditional classifier whose input gradient is added.
    pub clf: Classifier,
    /// The scale on grad log p(y | x, sigma).
    pub scale: f32,
}

impl ClassifierGuided {
    /// Guide `inner` with `clf` at `scale` (their data shapes and noise processes must agree;
    /// `clf_file` names the classifier in errors).
    pub fn new(inner: Box<dyn ScoreModel>, clf: Classifier, scale: f32, clf_file: &str) -> Result<ClassifierGuided> {
        if inner.shape() != clf.shape() {
            return Err(Error::Invalid(format!(
                "--classifier {clf_file}: trained on samples of {:?}, the model draws {:?}",
                clf.shape(),
                inner.shape()
            )));
        }
        if inner.process() != &clf.process {
            return Err(Error::Invalid(format!(
                "--classifier {clf_file}: trained on the noise process {:?}, the model samples {:?}; train the \
                 classifier with the model's [process]",
                clf.process,
                inner.process()
            )));
        }
        if let Some(k) = label_classes(inner.as_ref()).filter(|k| *k != clf.classes()) {
            return Err(Error::Invalid(format!(
                "--classifier {clf_file}: tells {} classes apart, the model is conditional on {k}",
                clf.classes()
            )));
        }
        if !scale.is_finite() {
            return Err(Error::Invalid(format!("--classifier-scale {scale} must be a finite number")));
        }
        Ok(ClassifierGuided { inner, clf, scale })
    }
}

impl ScoreModel for ClassifierGuided {
    forward!();

    fn conditioning(&self) -> Vec<CondInput> {
        let mut c = self.inner.conditioning();
        if !c.iter().any(|c| c.name == LABEL) {
            c.push(CondInput { name: LABEL.into(), shape: vec![self.clf.classes() + 1] });
        }
        c
    }
    fn params(&self) -> ParamStore {
        let mut p = self.inner.params();
        p.extend(self.clf.params.iter().map(|(k, v)| (format!("clf.{k}"), v.clone())));
        p
    }
    fn score_and_energy(&self, b: &mut Builder, x: Var, sigma: Var, cond: &CondVars) -> Result<(Var, Option<Var>)> {
        let label = cond[LABEL];
        let mut inner_cond = cond.clone();
        if label_classes(self.inner.as_ref()).is_none() {
            inner_cond.remove(LABEL);
        }
        let (s, e) = self.inner.score_and_energy(b, x, sigma, &inner_cond)?;
        let lp = b.scope("clf", |b| self.clf.log_prob(b, x, sigma, label))?;
        let tot = b.g.sum_all(lp)?;
        let gx = grad(b.g, tot, &[x])?[0];
        let gx = b.g.scale(gx, self.scale);
        let s = b.g.add(s, gx)?;
        let e = match e {
            Some(e) => {
                let l = b.g.scale(lp, self.scale);
                Some(b.g.sub(e, l)?)
            }
            None => None,
        };
        Ok((s, e))
    }
}
