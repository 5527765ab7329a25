//! Compositions of models (Du et al., ICML 2023, "Reduce, Reuse, Recycle"): a model built from
//! other models, itself a [`ScoreModel`], so every sampler, metric and nested composition takes
//! it. With energies E_i (score s_i = -grad E_i) at the shared level sigma:
//! - product: E = sum_i E_i, s = sum_i s_i;
//! - negation: E = sum_i w_i E_i with weights such as (1.3, -0.3) (Du et al.'s code);
//! - sum: s = s_0 + sum_{i>0} w_i (s_i - s_0) (classifier-free-style), E likewise;
//! - mixture: E = -logsumexp_i(-T E_i) (Du et al.'s form, T = 3.5 in their code), whose score is
//!   T sum_i r_i s_i with r = softmax(-T E): it needs every component's energy.
//!
//! Product, negation and sum need only scores; their energy exists where every component has
//! one. Each component is built into the same graph under its own parameter scope (`c0.`,
//! `c1.`, ...), so one planned pass evaluates them all.

use super::{CondInput, CondVars, ScoreModel};
use crate::dist::Moments;
use crate::error::{Error, Result};
use crate::graph::plan::ParamStore;
use crate::graph::Var;
use crate::nn::Builder;
use crate::ops::elementwise::Unary;
use crate::ops::reduce::Reduce;
use crate::score::Process;

/// The composition operators a file names (`op`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComposeOp {
    /// The product of the densities: scores (and energies) added.
    Product,
    /// A mixture of the densities (energies combined by log-sum-exp).
    Mixture,
    /// p1 / p2^w: the second model's score subtracted, weighted.
    Negation,
    /// A weighted sum of the scores (no density behind it in general).
    Sum,
}

impl ComposeOp {
    /// The name composition files use.
    pub fn name(self) -> &'static str {
        match self {
            ComposeOp::Product => "product",
            ComposeOp::Mixture => "mixture",
            ComposeOp::Negation => "negation",
            ComposeOp::Sum => "sum",
        }
    }
}

/// Components share the data shape and the process family, and take no conditioning.
fn check_parts(parts: &[Box<dyn ScoreModel>], names: &[String]) -> std::result::Result<(), String> {
    for (i, p) in parts.iter().enumerate().skip(1) {
        if p.shape() != parts[0].shape() {
            return Err(format!(
                "{} has samples of shape {:?}, {} of shape {:?}: components must share the data shape",
                names[i],
                p.shape(),
                names[0],
                parts[0].shape()
            ));
        }
        if p.process().name() != parts[0].process().name() {
            return Err(format!(
                "{} follows process '{}', {} process '{}': components must share a noise process family",
                names[i],
                p.process().name(),
                names[0],
                parts[0].process().name()
            ));
        }
    }
    if let Some((i, _)) = parts.iter().enumerate().find(|(_, p)| !p.conditioning().is_empty()) {
        return Err(format!("{}: conditioned models cannot be composed yet", names[i]));
    }
    Ok(())
}

/// A composition of models (see the module).
pub struct Composition {
    /// How the parts combine.
    pub op: ComposeOp,
    /// The models composed.
    pub parts: Vec<Box<dyn ScoreModel>>,
    /// The linear weights on the parts' scores and energies (product, negation, sum).
    coef: Vec<f64>,
    /// The temperature the composed energy is divided by.
    pub temperature: f64,
}

impl Composition {
    /// Compose `parts` (named by `names` in errors). `weights`: negation's per part (default
    /// 1.3, -0.3), sum's on parts 1.. (default 1 each); `temperature`: mixture's (default 3.5).
    pub fn new(
        op: ComposeOp,
        parts: Vec<Box<dyn ScoreModel>>,
        names: &[String],
        weights: Option<Vec<f64>>,
        temperature: Option<f64>,
    ) -> std::result::Result<Composition, String> {
        let k = parts.len();
        if k < 2 {
            return Err(format!("op = \"{}\" composes at least two models, got {k}", op.name()));
        }
        check_parts(&parts, names)?;
        if weights.is_some() && [ComposeOp::Product, ComposeOp::Mixture].contains(&op) {
            return Err(format!("weights: op = \"{}\" takes none (negation and sum do)", op.name()));
        }
        if temperature.is_some() && op != ComposeOp::Mixture {
            return Err(format!("temperature: only op = \"mixture\" takes it (op is \"{}\")", op.name()));
        }
        let coef = match op {
            ComposeOp::Product | ComposeOp::Mixture => vec![1.0; k],
            ComposeOp::Negation => {
                let w = weights.unwrap_or_else(|| vec![1.3, -0.3]);
                if w.len() != k {
                    return Err(format!("weights: negation needs one weight per model ({k}), got {}", w.len()));
                }
                w
            }
            ComposeOp::Sum => {
                let w = weights.unwrap_or_else(|| vec![1.0; k - 1]);
                if w.len() != k - 1 {
                    return Err(format!(
                        "weights: sum needs one weight per model after the first ({}), got {}",
                        k - 1,
                        w.len()
                    ));
                }
                // s_0 + sum w_i (s_i - s_0) = (1 - sum w) s_0 + sum w_i s_i
                let mut c = vec![1.0 - w.iter().sum::<f64>()];
                c.extend(w);
                c
            }
        };
        if let Some(w) = coef.iter().find(|w| !w.is_finite()) {
            return Err(format!("weights: {w} is not a finite number"));
        }
        let temperature = temperature.unwrap_or(3.5);
        if !(temperature > 0.0 && temperature.is_finite()) {
            return Err(format!("temperature = {temperature} must be positive"));
        }
        if op == ComposeOp::Mixture {
            if let Some(i) = (0..k).find(|&i| !parts[i].has_energy()) {
                return Err(format!(
                    "{}: op = \"mixture\" needs every component's energy and this model gives only a score; use \
                     energy models (model.param = \"energy\") or analytic mixtures",
                    names[i]
                ));
            }
        }
        Ok(Composition { op, parts, coef, temperature })
    }

    /// Each part's (score, energy) under its own scope.
    fn build_parts(&self, b: &mut Builder, x: Var, sigma: Var, cond: &CondVars) -> Result<Vec<(Var, Option<Var>)>> {
        let mut out = Vec::with_capacity(self.parts.len());
        for (i, p) in self.parts.iter().enumerate() {
            out.push(b.scope(&format!("c{i}"), |b| p.score_and_energy(b, x, sigma, cond))?);
        }
        Ok(out)
    }

    /// sum_i c_i v_i.
    fn linear(&self, b: &mut Builder, vs: &[Var]) -> Result<Var> {
        let mut acc = b.g.scale(vs[0], self.coef[0] as f32);
        for (v, c) in vs.iter().zip(&self.coef).skip(1) {
            let t = b.g.scale(*v, *c as f32);
            acc = b.g.add(acc, t)?;
        }
        Ok(acc)
    }

    /// Mixture: (E = -logsumexp(-T E_i), s = T sum_i r_i s_i).
    fn mixture_of(&self, b: &mut Builder, parts: &[(Var, Option<Var>)]) -> Result<(Var, Var)> {
        let t = self.temperature as f32;
        let bsz = b.g.shape(parts[0].0)[0];
        let mut a: Option<Var> = None;
        for (_, e) in parts {
            let e = e.ok_or_else(|| Error::Invalid("mixture composition without an energy".into()))?;
            let col = b.g.reshape(e, &[bsz, 1])?;
            let col = b.g.scale(col, -t);
            a = Some(match a {
                Some(acc) => b.g.concat(acc, col, 1)?,
                None => col,
            });
        }
        let a = a.unwrap(); // [B, K]
        let m = b.g.reduce_keep(Reduce::Max, a, 1)?;
        let c = b.g.sub(a, m)?;
        let ex = b.g.unary(Unary::Exp, c);
        let se = b.g.sum(ex, 1)?;
        let lse = b.g.unary(Unary::Log, se);
        let m = b.g.reshape(m, &[bsz])?;
        let lse = b.g.add(lse, m)?;
        let energy = b.g.neg(lse);
        let r = b.g.softmax(a);
        let shape = b.g.shape(parts[0].0).to_vec();
        let mut score: Option<Var> = None;
        for (i, (s, _)) in parts.iter().enumerate() {
            let ri = b.g.slice(r, 1, i, 1)?;
            let ri = b.g.reshape(ri, &[bsz])?;
            let ri = crate::score::per_sample(b.g, ri, &shape)?;
            let term = b.g.mul(*s, ri)?;
            score = Some(match score {
                Some(acc) => b.g.add(acc, term)?,
                None => term,
            });
        }
        Ok((energy, b.g.scale(score.unwrap(), t)))
    }
}

impl ScoreModel for Composition {
    fn shape(&self) -> &[usize] {
        self.parts[0].shape()
    }
    fn process(&self) -> &Process {
        self.parts[0].process()
    }
    fn moments(&self) -> Moments {
        self.parts[0].moments()
    }
    fn images(&self) -> bool {
        self.parts[0].images()
    }
    fn conditioning(&self) -> Vec<CondInput> {
        Vec::new()
    }
    fn params(&self) -> ParamStore {
        let mut all = ParamStore::new();
        for (i, p) in self.parts.iter().enumerate() {
            for (name, t) in p.params() {
                all.insert(format!("c{i}.{name}"), t);
            }
        }
        all
    }
    fn score(&self, b: &mut Builder, x: Var, sigma: Var, cond: &CondVars) -> Result<Var> {
        Ok(self.score_and_energy(b, x, sigma, cond)?.0)
    }
    fn energy(&self, b: &mut Builder, x: Var, sigma: Var, cond: &CondVars) -> Result<Option<Var>> {
        Ok(self.score_and_energy(b, x, sigma, cond)?.1)
    }
    fn score_and_energy(&self, b: &mut Builder, x: Var, sigma: Var, cond: &CondVars) -> Result<(Var, Option<Var>)> {
        let parts = self.build_parts(b, x, sigma, cond)?;
        if self.op == ComposeOp::Mixture {
            let (e, s) = self.mixture_of(b, &parts)?;
            return Ok((s, Some(e)));
        }
        let scores: Vec<Var> = parts.iter().map(|p| p.0).collect();
        let s = self.linear(b, &scores)?;
        let energies: Option<Vec<Var>> = parts.iter().map(|p| p.1).collect();
        let e = match energies {
            Some(es) => Some(self.linear(b, &es)?),
            None => None,
        };
        Ok((s, e))
    }
    fn has_energy(&self) -> bool {
        self.op == ComposeOp::Mixture || self.parts.iter().all(|p| p.has_energy())
    }
}
