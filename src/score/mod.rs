//! Score models: noise processes, parameterisations and the denoising score-matching objective.
//! A model maps (x~, sigma) to the score grad log p(x~; sigma) in the scaled coordinates of
//! `process` (x~ = x0 + sigma z for every process), so samplers need nothing else.

pub mod classify;
pub mod config;
pub mod objective;
pub mod process;

use crate::error::{Error, Result};
use crate::graph::{Graph, Var};
use crate::nn::unet::{unet, UNetConfig};
use crate::nn::Builder;
use crate::ops::elementwise::Unary;
pub use objective::{Loss, NceNoise, Objective, Projection};
pub use process::Process;

/// What the network's output F means (Karras et al. 2022, Table 1 for the denoiser).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Parameterisation {
    /// score = F / sigma (NCSN's output scaling; W1).
    Score,
    /// score = -F / sigma (F predicts the noise z; DDPM).
    Epsilon,
    /// EDM preconditioning: D = c_skip x~ + c_out F(c_in x~, c_noise), score = (D - x~) / sigma^2.
    Denoiser {
        /// The data's standard deviation in the preconditioning.
        sigma_data: f32,
    },
    /// An energy per sample E(x~, sigma) from F (`EnergyForm`), with eps_hat = grad_x E and
    /// score = -grad_x E / sigma: the unnormalised log-density at level sigma is
    /// log p~(x~; sigma) = -E / sigma + const (Du et al. 2023). The score is E's input gradient
    /// by autodiff, so training differentiates a gradient (second order).
    Energy {
        /// How E is formed from the network's output.
        form: EnergyForm,
    },
}

/// How an energy model turns the network's output F (shaped like x~) into one scalar.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnergyForm {
    /// E = 1/2 ||F(x~, sigma)||^2 (the PyTorch re-implementation of Du et al.).
    #[default]
    Norm,
    /// E = ||F(u, sigma) - u||^2 with u = c_in x~ the network's input (Du et al.'s JAX
    /// notebook, whose inputs are VP-scaled; u = x~ without `model.input_var`).
    Dae,
}

/// The parameterisations a config names (`model.param`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamKind {
    /// score = F / sigma.
    Score,
    /// score = -F / sigma (`epsilon`).
    #[serde(alias = "epsilon")]
    Eps,
    /// EDM preconditioning (`edm`).
    #[serde(alias = "edm")]
    Denoiser,
    /// An energy per sample; the score is its input gradient.
    Energy,
}

impl Parameterisation {
    /// The parameterisation `kind` names, with the settings it takes.
    pub fn new(kind: ParamKind, sigma_data: f32, form: EnergyForm) -> Self {
        match kind {
            ParamKind::Score => Parameterisation::Score,
            ParamKind::Eps => Parameterisation::Epsilon,
            ParamKind::Denoiser => Parameterisation::Denoiser { sigma_data },
            ParamKind::Energy => Parameterisation::Energy { form },
        }
    }
    /// The name configs use.
    pub fn name(&self) -> &'static str {
        match self {
            Parameterisation::Score => "score",
            Parameterisation::Epsilon => "eps",
            Parameterisation::Denoiser { .. } => "denoiser",
            Parameterisation::Energy { .. } => "energy",
        }
    }
}

/// The MLP's nonlinearity (`model.activation`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// SiLU (W1's).
    #[default]
    Silu,
    /// softplus (NCSN's toy experiments).
    Softplus,
}

impl Activation {
    /// The element-wise op computing it.
    pub fn unary(self) -> Unary {
        match self {
            Activation::Silu => Unary::Silu,
            Activation::Softplus => Unary::Softplus,
        }
    }
}

/// The networks a config names (`model.network`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkKind {
    /// For flat data.
    Mlp,
    /// For flat data: residual blocks of width hidden[0] (model.res_blocks of them).
    Resmlp,
    /// For images [C, H, W].
    Unet,
    /// A noise-conditional classifier p(y | x~, sigma) of model.classes classes (classifier
    /// guidance): an MLP of model.hidden for flat data, the U-Net's encoder half with pooling
    /// for images.
    Classifier,
}

/// The network behind a score model.
#[derive(Clone, Debug, PartialEq)]
pub enum Network {
    /// For flat data [B, D]: input [c_in x~, ln(sigma)/4] (and, when noise_features > 0, that
    /// many sinusoidal features of 250 ln(sigma)/4) -> hidden layers (SiLU) -> D.
    Mlp {
        /// Hidden widths.
        hidden: Vec<usize>,
        /// Sinusoidal features of the noise level (0: ln(sigma)/4 alone).
        noise_features: usize,
        /// The activation.
        act: Activation,
    },
    /// The same input, then `blocks` residual blocks h <- h + W2 act(W1 act(h)) of `width`
    /// (Du et al.'s 2-D networks), then a linear output after act.
    ResMlp {
        /// The width.
        width: usize,
        /// Residual blocks.
        blocks: usize,
        /// Sinusoidal features of the noise level.
        noise_features: usize,
        /// The activation.
        act: Activation,
    },
    /// For images [B, C, H, W], conditioned on 250 ln(sigma)/4 through the sinusoidal
    /// embedding (the factor spreads the noise range over the embedding's frequencies, as
    /// DDPM's t in [0, 1000] does).
    UNet(UNetConfig),
    /// A classifier's body (an `Mlp` for flat data, a `UNet` whose encoder half is used for
    /// images) with `ModelSpec::classes` outputs: logits, not a score.
    Classifier(Box<Network>),
}

/// Everything needed to rebuild a score model's graph (stored in checkpoints).
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    /// Shape of one sample, e.g. [2] or [1, 28, 28].
    pub data_shape: Vec<usize>,
    /// The network.
    pub network: Network,
    /// How its output becomes a score.
    pub param: Parameterisation,
    /// Network input scaling c_in = 1 / sqrt(input_var + sigma^2) (the denoiser uses
    /// sigma_data^2); None: c_in = 1 (NCSN, W1).
    pub input_var: Option<f32>,
    /// Class-conditional networks: the number of classes (the label input is one-hot
    /// [B, classes + 1], the last class the null label of classifier-free guidance);
    /// classifiers: the number of outputs.
    pub classes: Option<usize>,
    /// Retrieval-conditioned networks: the context tokens they attend to (the k neighbours'
    /// embeddings, input "context" [B, tokens, dim]).
    pub context: Option<ContextSpec>,
}

/// The context tokens of a retrieval-conditioned network: `tokens` neighbours of width `dim`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContextSpec {
    /// Tokens (neighbours) per sample.
    pub tokens: usize,
    /// Their width.
    pub dim: usize,
}

/// Width of the learned label embedding the MLPs join to their input.
pub const MLP_LABEL_DIM: usize = 32;

/// The error of a class-conditional network built without a label input.
fn missing_label(k: usize) -> Error {
    Error::Invalid(format!("the model is conditional on {k} classes but was given no label input"))
}

/// An MLP's input [B, D + 1 (+ features) (+ label embedding)]: the flat x, c_noise, its
/// sinusoidal features and, for conditional models, the label's embedding.
pub(crate) fn mlp_input(
    b: &mut Builder,
    x_in: Var,
    c_noise: Var,
    noise_features: usize,
    label: Option<Var>,
) -> Result<Var> {
    let xs = b.g.shape(x_in).to_vec();
    let (bsz, d) = (xs[0], xs[1..].iter().product());
    let flat = b.g.reshape(x_in, &[bsz, d])?;
    let c = b.g.reshape(c_noise, &[bsz, 1])?;
    let mut inp = b.g.concat(flat, c, 1)?;
    if noise_features > 0 {
        let ce = b.g.scale(c_noise, 250.0);
        let feats = crate::nn::sinusoidal(b.g, ce, noise_features)?;
        inp = b.g.concat(inp, feats, 1)?;
    }
    if let Some(l) = label {
        inp = b.g.concat(inp, l, 1)?;
    }
    Ok(inp)
}

/// E [B] of the network output F for the network's input x [B, ...] (see `EnergyForm`).
fn energy_of(g: &mut Graph, form: EnergyForm, f: Var, x: Var) -> Result<Var> {
    let xs = g.shape(x).to_vec();
    let d: usize = xs[1..].iter().product();
    let r = match form {
        EnergyForm::Norm => f,
        EnergyForm::Dae => g.sub(f, x)?,
    };
    let r2 = g.unary(Unary::Square, r);
    let flat = g.reshape(r2, &[xs[0], d])?;
    let e = g.sum(flat, 1)?;
    Ok(match form {
        EnergyForm::Norm => g.scale(e, 0.5),
        EnergyForm::Dae => e,
    })
}

/// score = -grad_x E / sigma for energies E [B] of x [B, ...] (E summed over the batch: each
/// sample's energy depends on its own x~ only).
fn energy_score(g: &mut Graph, e: Var, x: Var, sig: Var) -> Result<Var> {
    let tot = g.sum_all(e)?;
    let gx = crate::graph::autodiff::grad(g, tot, &[x])?[0];
    let s = g.div(gx, sig)?;
    Ok(g.neg(s))
}

/// Broadcast a per-sample value [B] against a tensor [B, ...].
pub(crate) fn per_sample(g: &mut Graph, v: Var, like: &[usize]) -> Result<Var> {
    let mut s = vec![1usize; like.len()];
    s[0] = like[0];
    g.reshape(v, &s)
}

impl ModelSpec {
    /// Values per sample.
    pub fn numel(&self) -> usize {
        self.data_shape.iter().product()
    }

    /// The parameters (names, shapes, initialisers) the network creates.
    pub fn param_specs(&self) -> Result<Vec<crate::nn::ParamSpec>> {
        let mut g = Graph::new();
        let mut xs = vec![1];
        xs.extend(&self.data_shape);
        let (x, s) = (g.input("x", &xs), g.input("sigma", &[1]));
        let label = self.classes.map(|k| g.input("label", &[1, k + 1]));
        let context = self.context.map(|c| g.input("context", &[1, c.tokens, c.dim]));
        let mut b = Builder::new(&mut g);
        b.label = label;
        b.context = context;
        if self.is_classifier() {
            self.logits(&mut b, x, s)?;
        } else {
            self.score(&mut b, x, s)?;
        }
        Ok(b.specs)
    }

    /// Whether the network is a classifier (logits, no score).
    pub fn is_classifier(&self) -> bool {
        matches!(self.network, Network::Classifier(_))
    }

    /// The label embedding [B, MLP_LABEL_DIM] an MLP joins to its input, for class-conditional
    /// models (the label comes from the builder: `Builder::label`).
    fn mlp_label(&self, b: &mut Builder) -> Result<Option<Var>> {
        let Some(k) = self.classes else { return Ok(None) };
        let l = b.label.ok_or_else(|| missing_label(k))?;
        let table = b.param("label_emb.weight", &[k + 1, MLP_LABEL_DIM], crate::nn::Init::Uniform(1.0));
        Ok(Some(b.g.matmul(l, table, false, false)?))
    }

    /// The context tokens [B, T, D] from the builder, for retrieval-conditioned models.
    fn context(&self, b: &Builder) -> Result<Option<Var>> {
        let Some(c) = self.context else { return Ok(None) };
        let v = b.context.ok_or_else(|| {
            Error::Invalid(format!(
                "the model is conditioned on {} retrieved neighbours of width {} but was given no context",
                c.tokens, c.dim
            ))
        })?;
        Ok(Some(v))
    }

    /// score(x~, sigma): x [B, data_shape...], sigma [B] -> [B, data_shape...]. Parameters are
    /// created through `b` (training and sampling graphs use the same names).
    pub fn score(&self, b: &mut Builder, x: Var, sigma: Var) -> Result<Var> {
        let (f, x_in) = self.network_io(b, x, sigma)?;
        let xs = b.g.shape(x).to_vec();
        let sig = per_sample(b.g, sigma, &xs)?;
        self.score_from(b, f, (x, x_in), sig)
    }

    /// The energy U(x~, sigma) = E / sigma [B] with score = -grad_x U, for energy models; None
    /// for models that give the score directly.
    pub fn energy(&self, b: &mut Builder, x: Var, sigma: Var) -> Result<Option<Var>> {
        let Parameterisation::Energy { form } = self.param else { return Ok(None) };
        let (f, x_in) = self.network_io(b, x, sigma)?;
        let e = energy_of(b.g, form, f, x_in)?;
        Ok(Some(b.g.div(e, sigma)?))
    }

    /// The score and, for energy models, the energy U = E / sigma [B], from one evaluation of
    /// the network.
    pub fn score_and_energy(&self, b: &mut Builder, x: Var, sigma: Var) -> Result<(Var, Option<Var>)> {
        let (f, x_in) = self.network_io(b, x, sigma)?;
        let xs = b.g.shape(x).to_vec();
        let sig = per_sample(b.g, sigma, &xs)?;
        let Parameterisation::Energy { form } = self.param else {
            return Ok((self.score_from(b, f, (x, x_in), sig)?, None));
        };
        let e = energy_of(b.g, form, f, x_in)?;
        let s = energy_score(b.g, e, x, sig)?;
        Ok((s, Some(b.g.div(e, sigma)?)))
    }

    /// The network's inputs: c_in x~ (x~ checked against the data shape) and c_noise = ln(sigma) / 4 [B].
    pub(crate) fn scaled_inputs(&self, b: &mut Builder, x: Var, sigma: Var) -> Result<(Var, Var)> {
        let xs = b.g.shape(x).to_vec();
        if xs[1..] != self.data_shape[..] {
            return Err(Error::Shape(format!("model takes samples of shape {:?}, got {xs:?}", self.data_shape)));
        }
        let sig = per_sample(b.g, sigma, &xs)?;
        let var = match self.param {
            Parameterisation::Denoiser { sigma_data } => Some(sigma_data * sigma_data),
            _ => self.input_var,
        };
        let x_in = match var {
            Some(v) => {
                let s2 = b.g.unary(Unary::Square, sig);
                let c_in = b.g.unary(Unary::AddScalar(v), s2);
                let c_in = b.g.unary(Unary::Rsqrt, c_in);
                b.g.mul(x, c_in)?
            }
            None => x,
        };
        let ls = b.g.unary(Unary::Log, sigma);
        Ok((x_in, b.g.scale(ls, 0.25)))
    }

    /// The network's output F(c_in x~, c_noise), shaped like x~, and its input c_in x~.
    fn network_io(&self, b: &mut Builder, x: Var, sigma: Var) -> Result<(Var, Var)> {
        let xs = b.g.shape(x).to_vec();
        let (x_in, c_noise) = self.scaled_inputs(b, x, sigma)?;
        let f = match &self.network {
            Network::Mlp { hidden, noise_features, act } => {
                let label = self.mlp_label(b)?;
                let inp = mlp_input(b, x_in, c_noise, *noise_features, label)?;
                let mut sizes = vec![b.g.shape(inp)[1]];
                sizes.extend(hidden);
                sizes.push(self.numel());
                let ctx = self.context(b)?;
                let out = crate::nn::mlp_with_context(b, inp, &sizes, act.unary(), ctx)?;
                b.g.reshape(out, &xs)?
            }
            Network::ResMlp { width, blocks, noise_features, act } => {
                let label = self.mlp_label(b)?;
                let inp = mlp_input(b, x_in, c_noise, *noise_features, label)?;
                let ctx = self.context(b)?;
                let out = crate::nn::res_mlp(b, inp, (*width, *blocks, self.numel()), act.unary(), ctx)?;
                b.g.reshape(out, &xs)?
            }
            Network::UNet(cfg) => {
                let ce = b.g.scale(c_noise, 250.0);
                let label = match cfg.num_classes {
                    Some(k) => Some(b.label.ok_or_else(|| missing_label(k))?),
                    None => None,
                };
                let ctx = self.context(b)?;
                unet(b, x_in, ce, label, ctx, cfg)?
            }
            Network::Classifier(_) => {
                return Err(Error::Invalid(
                    "the model is a classifier (logits, not a score); use it with --classifier".into(),
                ))
            }
        };
        Ok((f, x_in))
    }

    /// The score from the network's output F, per the parameterisation (`sig`: sigma
    /// broadcast against x; `x_in` = c_in x~, the network's input, which the DAE energy compares
    /// F with).
    fn score_from(&self, b: &mut Builder, f: Var, (x, x_in): (Var, Var), sig: Var) -> Result<Var> {
        match self.param {
            Parameterisation::Energy { form } => {
                let e = energy_of(b.g, form, f, x_in)?;
                energy_score(b.g, e, x, sig)
            }
            Parameterisation::Score => b.g.div(f, sig),
            Parameterisation::Epsilon => {
                let s = b.g.div(f, sig)?;
                Ok(b.g.neg(s))
            }
            Parameterisation::Denoiser { sigma_data } => {
                // D - x~ = (c_skip - 1) x~ + c_out F = (-sigma^2 x~ + sigma sigma_d sqrt(..) F) / (sigma^2 + sigma_d^2)
                // score = (D - x~) / sigma^2 = (-x~ + sigma_d F sqrt(sigma^2+sd^2)/sigma ... ) / (sigma^2 + sigma_d^2)
                let sd2 = sigma_data * sigma_data;
                let s2 = b.g.unary(Unary::Square, sig);
                let tot = b.g.unary(Unary::AddScalar(sd2), s2);
                let rt = b.g.unary(Unary::Rsqrt, tot); // 1 / sqrt(sigma^2 + sd^2)
                                                       // c_out / sigma^2 = sigma_d / (sigma sqrt(sigma^2 + sd^2))
                let inv_sig = b.g.unary(Unary::Recip, sig);
                let k = b.g.mul(rt, inv_sig)?;
                let k = b.g.scale(k, sigma_data);
                let fo = b.g.mul(f, k)?;
                // (c_skip - 1) / sigma^2 = -1 / (sigma^2 + sd^2)
                let inv_tot = b.g.unary(Unary::Recip, tot);
                let sk = b.g.mul(x, inv_tot)?;
                b.g.sub(fo, sk)
            }
        }
    }
}
