//! The configuration of a score model, its `[model]` and `[process]` tables: what a checkpoint
//! needs to rebuild the network and its noise process. The run's whole config (module `config`,
//! the CLI's) holds these two beside data, training and sampling settings; the library reads
//! them alone from a checkpoint (`model::Trained::load`).

use super::process::{ProcessKind, Range, EDM_P_MEAN, EDM_P_STD};
use super::{Activation, EnergyForm, ModelSpec, Network, NetworkKind, ParamKind, Parameterisation, Process};
use crate::error::{Error, Result};
use crate::nn::unet::UNetConfig;
use serde::{Deserialize, Serialize};

/// `[model]`: the network and its parameterisation.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// mlp or resmlp (flat data; resmlp: model.res_blocks blocks of width hidden[0]), unet (images) or
    /// classifier (model.classes; an MLP for flat data, a U-Net encoder for images).
    pub network: NetworkKind,
    /// MLP hidden widths.
    pub hidden: Vec<usize>,
    /// MLP: sinusoidal noise-level features added to the input (0: ln(sigma)/4 alone, as W1).
    pub noise_features: usize,
    /// MLP: silu (default) or softplus.
    pub activation: Activation,
    /// score (F / sigma), eps (-F / sigma) or denoiser (EDM preconditioning).
    pub param: ParamKind,
    /// param = "denoiser": the data's standard deviation (EDM's sigma_data).
    pub sigma_data: f32,
    /// param = "energy": the energy's form, norm (E = 1/2 ||F||^2, default) or dae
    /// (E = ||F - c_in x~||^2, the network's input). Other parameterisations refuse it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub energy: Option<EnergyForm>,
    /// Scale network inputs by 1 / sqrt(input_var + sigma^2) (VP-style); absent: no scaling.
    pub input_var: Option<f32>,
    /// U-Net: channels of the first level.
    pub base_channels: usize,
    /// U-Net: channel multipliers per level.
    pub channel_mults: Vec<usize>,
    /// Residual blocks per level (U-Net), or blocks of the resmlp.
    pub res_blocks: usize,
    /// U-Net: the resolutions with self-attention.
    pub attn_resolutions: Vec<usize>,
    /// U-Net: attention in the middle block.
    pub mid_attention: bool,
    /// U-Net: group-norm groups.
    pub groups: usize,
    /// U-Net: the noise embedding's width.
    pub emb_dim: usize,
    /// U-Net: dropout in the residual blocks.
    pub dropout: f32,
    /// Class-conditional models: the number of classes (labels from the data; the model also
    /// learns the null label, so it samples unconditionally too). network = "classifier": the
    /// classes it tells apart.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classes: Option<usize>,
    /// network = "classifier": its body, mlp (model.hidden) or unet (the encoder half of the
    /// U-Net the unet keys describe); default unet for images, mlp for flat data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<NetworkKind>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        let u = UNetConfig::w2();
        ModelConfig {
            network: NetworkKind::Mlp,
            hidden: vec![256, 256, 256],
            noise_features: 0,
            activation: Activation::Silu,
            param: ParamKind::Score,
            energy: None,
            sigma_data: 0.5,
            input_var: None,
            base_channels: u.base_channels,
            channel_mults: u.channel_mults,
            res_blocks: u.res_blocks,
            attn_resolutions: u.attn_resolutions,
            mid_attention: u.mid_attention,
            groups: u.groups,
            emb_dim: u.emb_dim,
            dropout: u.dropout,
            classes: None,
            body: None,
        }
    }
}

/// `[process]`: the noise process.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessConfig {
    /// ve, vp, vp-cosine, subvp, edm, or fixed (one level, sigma_min).
    pub kind: ProcessKind,
    /// ve and edm: the noise range (defaults 0.01 and 10); fixed: sigma_min alone (the level,
    /// default 0.01). Other kinds refuse them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sigma_min: Option<f64>,
    /// See `sigma_min`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sigma_max: Option<f64>,
    /// vp and subvp: the range of the linear beta(t) (defaults 0.1 and 20, DDPM's and
    /// score_sde's). Other kinds refuse it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beta_min: Option<f64>,
    /// See `beta_min`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beta_max: Option<f64>,
    /// edm: training draws ln sigma ~ N(p_mean, p_std^2) (EDM's P_mean and P_std, defaults
    /// -1.2 and 1.2). Other kinds refuse them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p_mean: Option<f64>,
    /// See `p_mean`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p_std: Option<f64>,
}

impl Default for ProcessConfig {
    fn default() -> Self {
        ProcessConfig {
            kind: ProcessKind::Ve,
            sigma_min: None,
            sigma_max: None,
            beta_min: None,
            beta_max: None,
            p_mean: None,
            p_std: None,
        }
    }
}

impl ProcessConfig {
    fn pair(lo: Option<f64>, hi: Option<f64>, default: (f64, f64)) -> Option<(f64, f64)> {
        (lo.is_some() || hi.is_some()).then(|| (lo.unwrap_or(default.0), hi.unwrap_or(default.1)))
    }

    /// The process these settings describe (after `check`).
    pub fn process(&self) -> Process {
        let sigma = Self::pair(self.sigma_min, self.sigma_max, (0.01, 10.0));
        let beta = Self::pair(self.beta_min, self.beta_max, (0.1, 20.0));
        match Process::from_kind(self.kind, sigma, beta) {
            Process::Edm { sigma_min, sigma_max, p_mean, p_std } => Process::Edm {
                sigma_min,
                sigma_max,
                p_mean: self.p_mean.unwrap_or(p_mean),
                p_std: self.p_std.unwrap_or(p_std),
            },
            p => p,
        }
    }

    /// Write the kind's range out in full (defaults included; edm also its log-normal of
    /// training levels), so that a checkpoint's config does not depend on the defaults of the
    /// version that reads it.
    pub fn fill_defaults(&mut self) {
        match self.kind.takes() {
            Some(Range::Sigma) => {
                self.sigma_min.get_or_insert(0.01);
                if self.kind != ProcessKind::Fixed {
                    self.sigma_max.get_or_insert(10.0);
                }
            }
            Some(Range::Beta) => {
                self.beta_min.get_or_insert(0.1);
                self.beta_max.get_or_insert(20.0);
            }
            None => {}
        }
        if self.kind == ProcessKind::Edm {
            self.p_mean.get_or_insert(EDM_P_MEAN);
            self.p_std.get_or_insert(EDM_P_STD);
        }
    }

    /// A range the kind does not take is refused, naming the key; a range it takes must be
    /// ordered and give noise levels that f32 holds.
    pub fn check(&self) -> std::result::Result<(), String> {
        let takes = self.kind.takes();
        self.check_lognormal()?;
        if self.kind == ProcessKind::Fixed {
            if self.sigma_max.is_some() {
                return Err(
                    "process.sigma_max: process 'fixed' has one noise level, process.sigma_min; remove the key".into(),
                );
            }
            return match self.sigma_min.unwrap_or(0.01) {
                s if s > 0.0
                    && s.is_finite()
                    && ((s * s) as f32) >= f32::MIN_POSITIVE
                    && ((s * s) as f32).is_finite() =>
                {
                    Ok(())
                }
                s => Err(format!(
                    "process.sigma_min = {s:e}: the fixed level needs 0 < sigma_min with sigma_min^2 finite in f32"
                )),
            };
        }
        let keys = [
            ("sigma_min", self.sigma_min, Range::Sigma),
            ("sigma_max", self.sigma_max, Range::Sigma),
            ("beta_min", self.beta_min, Range::Beta),
            ("beta_max", self.beta_max, Range::Beta),
        ];
        for (key, v, range) in keys {
            if v.is_some() && takes != Some(range) {
                let uses = match takes {
                    Some(Range::Sigma) => "its noise range is sigma_min..sigma_max",
                    Some(Range::Beta) => "its noise range follows beta_min..beta_max",
                    None => "its schedule is fixed",
                };
                return Err(format!(
                    "process.{key}: process '{}' does not use it ({uses}); remove the key",
                    self.kind.name()
                ));
            }
        }
        let ordered = |name: &str, lo: f64, hi: f64| {
            if lo > 0.0 && hi > lo && hi.is_finite() {
                Ok(())
            } else {
                Err(format!("process: need 0 < {name}_min ({lo}) < {name}_max ({hi}), both finite"))
            }
        };
        if let Some((lo, hi)) = Self::pair(self.sigma_min, self.sigma_max, (0.01, 10.0)) {
            ordered("sigma", lo, hi)?;
        }
        if let Some((lo, hi)) = Self::pair(self.beta_min, self.beta_max, (0.1, 20.0)) {
            ordered("beta", lo, hi)?;
        }
        // In the precision that runs: sigma^2 enters the kernels in f32.
        let p = self.process();
        let (lo, hi) = (p.sigma_min(), p.sigma_max());
        let key = |k: &str| if takes == Some(Range::Beta) { "beta range".to_string() } else { format!("process.{k}") };
        if !((hi * hi) as f32).is_finite() {
            return Err(format!(
                "{}: sigma_max = {hi:.3e}: sigma_max^2 overflows f32; use at most 1e18",
                key("sigma_max")
            ));
        }
        if !(((lo * lo) as f32) >= f32::MIN_POSITIVE) {
            return Err(format!(
                "{}: sigma_min = {lo:.3e}: sigma_min^2 underflows f32; use at least 1e-18",
                key("sigma_min")
            ));
        }
        Ok(())
    }
    /// EDM's training distribution of noise levels: edm alone takes it; a finite mean and a
    /// positive spread whose draws keep sigma^2 inside f32 (ln sigma within +-40 out to five
    /// standard deviations).
    fn check_lognormal(&self) -> std::result::Result<(), String> {
        let key = match (self.p_mean, self.p_std) {
            (None, None) => return Ok(()),
            (Some(_), _) => "p_mean",
            (None, Some(_)) => "p_std",
        };
        if self.kind != ProcessKind::Edm {
            return Err(format!(
                "process.{key}: only process 'edm' draws its training noise levels from a log-normal (kind is '{}'); \
                 remove the key",
                self.kind.name()
            ));
        }
        let (mean, std) = (self.p_mean.unwrap_or(EDM_P_MEAN), self.p_std.unwrap_or(EDM_P_STD));
        if !(std > 0.0) {
            return Err(format!("process.p_std = {std} must be positive (EDM: 1.2)"));
        }
        if !(mean.abs() + 5.0 * std <= 40.0) {
            return Err(format!(
                "process.p_mean = {mean}, process.p_std = {std}: ln sigma = p_mean +- 5 p_std leaves +-40, where \
                 sigma^2 overflows f32 (EDM: p_mean = -1.2, p_std = 1.2)"
            ));
        }
        Ok(())
    }
}

impl ModelConfig {
    /// Values no network can take, named by key.
    pub fn check(&self) -> std::result::Result<(), String> {
        let m = self;
        if m.energy.is_some() && m.param != ParamKind::Energy {
            return Err(format!(
                "model.energy: only model.param = \"energy\" uses it (param is {:?}); remove the key",
                m.param
            ));
        }
        if m.hidden.contains(&0) {
            return Err(format!("model.hidden = {:?}: every layer needs at least one unit", m.hidden));
        }
        if !(0.0..1.0).contains(&m.dropout) {
            return Err(format!("model.dropout = {} must be in [0, 1)", m.dropout));
        }
        if !(m.sigma_data > 0.0 && m.sigma_data.is_finite()) {
            return Err(format!("model.sigma_data = {} must be positive", m.sigma_data));
        }
        if let Some(v) = m.input_var.filter(|v| !(*v >= 0.0 && v.is_finite())) {
            return Err(format!("model.input_var = {v} must be zero or positive"));
        }
        if let Some(k) = m.classes.filter(|k| !(2..=65536).contains(k)) {
            return Err(format!("model.classes = {k}: a conditional model or classifier needs 2 to 65,536 classes"));
        }
        match (m.body, m.network) {
            (Some(b), NetworkKind::Classifier) if ![NetworkKind::Mlp, NetworkKind::Unet].contains(&b) => {
                return Err(format!("model.body = {b:?}: a classifier's body is \"mlp\" or \"unet\""));
            }
            (Some(_), n) if n != NetworkKind::Classifier => {
                return Err("model.body: only model.network = \"classifier\" uses it; remove the key".into());
            }
            _ => {}
        }
        if m.network == NetworkKind::Classifier && m.classes.is_none() {
            return Err("model.network = \"classifier\" needs model.classes = K (the classes it tells apart)".into());
        }
        Ok(())
    }

    /// The parameterisation these settings describe.
    pub fn param(&self) -> Parameterisation {
        Parameterisation::new(self.param, self.sigma_data, self.energy.unwrap_or_default())
    }

    /// The model for samples of `data_shape`.
    pub fn spec(&self, data_shape: &[usize]) -> Result<ModelSpec> {
        let m = self;
        let network = match m.network {
            NetworkKind::Mlp => self.mlp(),
            NetworkKind::Resmlp => Network::ResMlp {
                width: m.hidden.first().copied().unwrap_or(128),
                blocks: m.res_blocks,
                noise_features: m.noise_features,
                act: m.activation,
            },
            NetworkKind::Unet => Network::UNet(self.unet(data_shape, m.classes)?),
            NetworkKind::Classifier => {
                let images = data_shape.len() == 3;
                Network::Classifier(Box::new(match m.body {
                    Some(NetworkKind::Unet) => Network::UNet(self.unet(data_shape, None)?),
                    None if images => Network::UNet(self.unet(data_shape, None)?),
                    _ => self.mlp(),
                }))
            }
        };
        Ok(ModelSpec {
            data_shape: data_shape.to_vec(),
            network,
            param: self.param(),
            input_var: m.input_var,
            classes: m.classes,
            context: None,
        })
    }

    fn mlp(&self) -> Network {
        Network::Mlp { hidden: self.hidden.clone(), noise_features: self.noise_features, act: self.activation }
    }

    /// The U-Net these keys describe for data of `data_shape` [C, H, W] (checked).
    pub fn unet(&self, data_shape: &[usize], classes: Option<usize>) -> Result<UNetConfig> {
        let m = self;
        if data_shape.len() != 3 {
            return Err(Error::Invalid(format!(
                "model.network = 'unet' needs image data [C, H, W], the data are {data_shape:?}"
            )));
        }
        let u = UNetConfig {
            in_channels: data_shape[0],
            out_channels: data_shape[0],
            base_channels: m.base_channels,
            channel_mults: m.channel_mults.clone(),
            res_blocks: m.res_blocks,
            attn_resolutions: m.attn_resolutions.clone(),
            mid_attention: m.mid_attention,
            groups: m.groups,
            emb_dim: m.emb_dim,
            num_classes: classes,
            context_dim: None,
            dropout: m.dropout,
        };
        let shape = [1, data_shape[0], data_shape[1], data_shape[2]];
        u.check(&shape).map_err(|e| Error::Invalid(format!("model: {e}")))?;
        Ok(u)
    }
}

/// A checkpoint's `[model]` and `[process]` (other tables are the CLI's and ignored here).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct ScoreConfig {
    /// `[model]`.
    #[serde(default)]
    pub model: ModelConfig,
    /// `[process]`.
    #[serde(default)]
    pub process: ProcessConfig,
    /// `[retrieval]`'s part the network needs.
    #[serde(default)]
    pub retrieval: Option<ContextConfig>,
}

/// What the network needs of a checkpoint's `[retrieval]`: the number of context tokens and
/// their width (the rest is the CLI's).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct ContextConfig {
    /// Neighbours per sample (context tokens).
    pub k: usize,
    /// Their width (the database's embedding width).
    pub width: Option<usize>,
}

impl ScoreConfig {
    /// The model for samples of `data_shape`, with its context tokens where it has them.
    pub fn spec(&self, data_shape: &[usize]) -> Result<ModelSpec> {
        let mut spec = self.model.spec(data_shape)?;
        if let Some(c) = &self.retrieval {
            add_context(&mut spec, c.k, c.width, "the checkpoint's")?;
        }
        Ok(spec)
    }
}

/// Condition `spec` on `k` context tokens of width `width` (the MLPs' cross-attention block,
/// the U-Net's context_dim). `whose` names the database in the error when the width is unknown.
pub fn add_context(spec: &mut ModelSpec, k: usize, width: Option<usize>, whose: &str) -> Result<()> {
    let dim = width.ok_or_else(|| {
        Error::Invalid(format!("retrieval.width is unknown: {whose} database has not been read (training fills it in)"))
    })?;
    spec.context = Some(super::ContextSpec { tokens: k, dim });
    if let Network::UNet(u) = &mut spec.network {
        // Cross-attention runs where self-attention does: without any, the context is unused.
        if u.attn_resolutions.is_empty() && !u.mid_attention {
            return Err(Error::Invalid(
                "[retrieval] with a U-Net: the neighbours are attended to where self-attention runs; set \
                 model.mid_attention = true or model.attn_resolutions"
                    .into(),
            ));
        }
        u.context_dim = Some(dim);
    }
    Ok(())
}

/// Checkpoints written before the VP family refused a sigma range carry the (unused) default
/// `sigma_min`/`sigma_max` for vp, vp-cosine and subvp: dropped, as the version that wrote
/// them ignored them.
pub fn drop_legacy_keys(table: &mut toml::Table) {
    if let Some(toml::Value::Table(p)) = table.get_mut("process") {
        let kind = p.get("kind").and_then(|k| k.as_str()).unwrap_or("ve");
        if ["vp", "vp-cosine", "subvp"].contains(&kind) {
            p.remove("sigma_min");
            p.remove("sigma_max");
        }
    }
}

impl ScoreConfig {
    /// From the config TOML a checkpoint carries (`file` names it in errors).
    pub fn from_metadata(text: &str, file: &str) -> Result<ScoreConfig> {
        let bad = |m: String| Error::Invalid(format!("{file}: {m}"));
        let mut table: toml::Table = toml::from_str(text).map_err(|e| bad(e.message().trim().to_string()))?;
        drop_legacy_keys(&mut table);
        let c: ScoreConfig = table.try_into().map_err(|e: toml::de::Error| bad(e.message().trim().to_string()))?;
        c.model.check().map_err(bad)?;
        c.process.check().map_err(bad)?;
        Ok(c)
    }
}
