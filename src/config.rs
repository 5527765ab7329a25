//! Run configuration (TOML), as plain structs with documented defaults. Unknown keys are
//! errors that name the key and the file. The whole config travels in every checkpoint's
//! `__metadata__`, so `sample` and `eval` need only the checkpoint.

use crate::error::{Error, Result};
use crate::nn::unet::UNetConfig;
use crate::score::{ModelSpec, Network, Parameterisation, Process};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub data: DataConfig,
    #[serde(default)]
    pub model: ModelConfig,
    #[serde(default)]
    pub process: ProcessConfig,
    #[serde(default)]
    pub train: TrainConfig,
    #[serde(default)]
    pub sample: SampleConfig,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// "toy" (2-D, `name`), "idx" (MNIST-style images file at `path`, .gz or not), "images"
    /// (a folder of PNG/JPEG at `path`, resized to `size`), "npy" (float32 array at `path`,
    /// first axis = samples).
    pub source: String,
    /// Toy name: ring8, moons, swissroll, checkerboard, rings, ncsn.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    /// Image side for "images" (square, RGB unless `channels` = 1).
    #[serde(default)]
    pub size: Option<usize>,
    #[serde(default)]
    pub channels: Option<usize>,
    /// Use only the first N samples.
    #[serde(default)]
    pub limit: Option<usize>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// "mlp" (flat data) or "unet" (images).
    pub network: String,
    /// MLP hidden widths.
    pub hidden: Vec<usize>,
    /// MLP: sinusoidal noise-level features added to the input (0: ln(sigma)/4 alone, as W1).
    pub noise_features: usize,
    /// "score" (F / sigma), "eps" (-F / sigma) or "denoiser" (EDM preconditioning).
    pub param: String,
    pub sigma_data: f32,
    /// Scale network inputs by 1 / sqrt(input_var + sigma^2) (VP-style); absent: no scaling.
    pub input_var: Option<f32>,
    pub base_channels: usize,
    pub channel_mults: Vec<usize>,
    pub res_blocks: usize,
    pub attn_resolutions: Vec<usize>,
    pub mid_attention: bool,
    pub groups: usize,
    pub emb_dim: usize,
    pub dropout: f32,
}

impl Default for ModelConfig {
    fn default() -> Self {
        let u = UNetConfig::w2();
        ModelConfig {
            network: "mlp".into(),
            hidden: vec![256, 256, 256],
            noise_features: 0,
            param: "score".into(),
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
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessConfig {
    /// ve, vp, vp-cosine, subvp, edm.
    pub kind: String,
    pub sigma_min: f64,
    pub sigma_max: f64,
}

impl Default for ProcessConfig {
    fn default() -> Self {
        ProcessConfig { kind: "ve".into(), sigma_min: 0.01, sigma_max: 10.0 }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub steps: usize,
    pub batch: usize,
    pub lr: f32,
    pub warmup: u32,
    /// Cosine decay of the learning rate to lr_min over the run.
    pub cosine: bool,
    pub lr_min: f32,
    /// Global gradient-norm clipping (0: off).
    pub clip: f32,
    /// EMA decay of the weights (absent: no EMA; samples use the raw weights).
    pub ema: Option<f32>,
    pub seed: u64,
    /// Loss averaged and read back every N steps.
    pub log_every: usize,
    pub checkpoint_every: usize,
    /// Write a sample grid / scatter every N steps (0: only at the end).
    pub sample_every: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            steps: 5000,
            batch: 4096,
            lr: 1e-3,
            warmup: 0,
            cosine: false,
            lr_min: 0.0,
            clip: 0.0,
            ema: None,
            seed: 0,
            log_every: 100,
            checkpoint_every: 1000,
            sample_every: 0,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SampleConfig {
    /// ald, pc, ode, rk45, ddim, ancestral, heun, langevin.
    pub sampler: String,
    /// Model evaluations' worth of steps (ALD: all levels together).
    pub steps: usize,
    pub n: usize,
    pub batch: usize,
    pub eps: f64,
    pub levels: usize,
    pub snr: f64,
    /// rk45's tolerance (relative and absolute).
    pub tol: f64,
    pub seed: u64,
}

impl Default for SampleConfig {
    fn default() -> Self {
        SampleConfig {
            sampler: "ald".into(),
            steps: 1000,
            n: 10000,
            batch: 10000,
            eps: 5e-5,
            levels: 10,
            snr: 0.16,
            tol: 1e-5,
            seed: 0,
        }
    }
}

impl Config {
    /// Parse TOML; `path` names the file in errors.
    pub fn from_toml(text: &str, path: &str) -> Result<Config> {
        let c: Config = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|s| format!(" (line {})", text[..s.start.min(text.len())].lines().count().max(1)))
                .unwrap_or_default();
            Error::Invalid(format!("{path}{at}: {}", e.message().trim()))
        })?;
        c.validate().map_err(|e| Error::Invalid(format!("{path}: {e}")))?;
        Ok(c)
    }

    pub fn load(path: &std::path::Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Io(format!("{}: cannot read the config: {e}", path.display())))?;
        Config::from_toml(&text, &path.display().to_string())
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a config always serialises")
    }

    fn validate(&self) -> std::result::Result<(), String> {
        self.process()?;
        self.param()?;
        crate::sample::SamplerKind::from_name(&self.sample.sampler).map_err(|e| e.message().to_string())?;
        if !["mlp", "unet"].contains(&self.model.network.as_str()) {
            return Err(format!("model.network = '{}': use mlp or unet", self.model.network));
        }
        if self.data.limit == Some(0) {
            return Err("data.limit = 0 must be at least 1 (leave it out for the whole set)".into());
        }
        if let Some(size) = self.data.size.filter(|s| !(1..=4096).contains(s)) {
            return Err(format!("data.size = {size}: use 1 to 4096 pixels"));
        }
        let (m, t, s) = (&self.model, &self.train, &self.sample);
        let at_least_one = [
            ("train.steps", t.steps),
            ("train.batch", t.batch),
            ("train.log_every", t.log_every),
            ("sample.batch", s.batch),
            ("sample.steps", s.steps),
            ("sample.n", s.n),
            ("sample.levels", s.levels),
        ];
        if let Some((name, v)) = at_least_one.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} = {v} must be at least 1"));
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
        if !(t.lr > 0.0 && t.lr.is_finite()) {
            return Err(format!("train.lr = {} must be positive", t.lr));
        }
        if !(t.lr_min >= 0.0 && t.lr_min <= t.lr) {
            return Err(format!("train.lr_min = {} must be in [0, train.lr = {}]", t.lr_min, t.lr));
        }
        if !(t.clip >= 0.0 && t.clip.is_finite()) {
            return Err(format!("train.clip = {} must be zero (off) or positive", t.clip));
        }
        if let Some(e) = t.ema.filter(|e| !(0.0..1.0).contains(e)) {
            return Err(format!("train.ema = {e} must be in [0, 1) (leave it out for no EMA)"));
        }
        for (name, v) in [("sample.eps", s.eps), ("sample.snr", s.snr), ("sample.tol", s.tol)] {
            if !(v > 0.0 && v.is_finite()) {
                return Err(format!("{name} = {v} must be positive"));
            }
        }
        if s.sampler == "ald" && s.steps < s.levels {
            return Err(format!(
                "sample.steps = {} is below sample.levels = {}: ALD needs at least one step per noise level",
                s.steps, s.levels
            ));
        }
        if s.eps >= 1.0 {
            return Err(format!("sample.eps = {} must be below 1 (the end of the time grid)", s.eps));
        }
        if !(self.process.sigma_min > 0.0
            && self.process.sigma_max > self.process.sigma_min
            && self.process.sigma_max.is_finite())
        {
            return Err(format!(
                "process: need 0 < sigma_min ({}) < sigma_max ({}), both finite",
                self.process.sigma_min, self.process.sigma_max
            ));
        }
        // In the precision that runs: sigma^2 enters the kernels in f32.
        let (lo, hi) = (self.process.sigma_min, self.process.sigma_max);
        if (hi * hi) as f32 == f32::INFINITY {
            return Err(format!("process.sigma_max = {hi}: sigma_max^2 overflows f32; use at most 1e18"));
        }
        if ((lo * lo) as f32) < f32::MIN_POSITIVE {
            return Err(format!("process.sigma_min = {lo}: sigma_min^2 underflows f32; use at least 1e-18"));
        }
        Ok(())
    }

    pub fn process(&self) -> std::result::Result<Process, String> {
        Process::from_name(&self.process.kind, self.process.sigma_min, self.process.sigma_max)
            .map_err(|e| e.message().to_string())
    }
    pub fn param(&self) -> std::result::Result<Parameterisation, String> {
        Parameterisation::from_name(&self.model.param, self.model.sigma_data).map_err(|e| e.message().to_string())
    }

    /// The model for samples of `data_shape`.
    pub fn model_spec(&self, data_shape: &[usize]) -> Result<ModelSpec> {
        let m = &self.model;
        let network = match m.network.as_str() {
            "mlp" => Network::Mlp { hidden: m.hidden.clone(), noise_features: m.noise_features },
            _ => {
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
                    num_classes: None,
                    context_dim: None,
                    dropout: m.dropout,
                };
                let shape = [1, data_shape[0], data_shape[1], data_shape[2]];
                u.check(&shape).map_err(|e| Error::Invalid(format!("model: {e}")))?;
                Network::UNet(u)
            }
        };
        Ok(ModelSpec {
            data_shape: data_shape.to_vec(),
            network,
            param: self.param().map_err(Error::Invalid)?,
            input_var: m.input_var,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_name_the_key_and_file() {
        let e = Config::from_toml("[data]\nsource = \"toy\"\n[train]\nstepz = 3\n", "x.toml").unwrap_err().to_string();
        assert!(e.contains("x.toml") && e.contains("stepz"), "{e}");
        let e = Config::from_toml("[data]\nsource = \"toy\"\n[process]\nkind = \"vx\"\n", "y.toml").unwrap_err();
        assert!(e.to_string().contains("vx"), "{e}");
        let c = Config::from_toml("[data]\nsource = \"toy\"\nname = \"ring8\"\n", "z.toml").unwrap();
        assert_eq!(Config::from_toml(&c.to_toml(), "round").unwrap(), c);
    }

    #[test]
    fn out_of_range_values_name_the_key() {
        // (lines added to a valid config after its [data] source, words the error must contain)
        let cases = [
            ("[model]\nhidden = [64, 0]", "model.hidden"),
            ("[model]\ndropout = 1.0", "model.dropout"),
            ("[model]\nsigma_data = 0.0", "model.sigma_data"),
            ("[train]\nsteps = 0", "train.steps"),
            ("[train]\nlr = inf", "train.lr"),
            ("[train]\nlr_min = 0.5", "train.lr_min"),
            ("[train]\nclip = -1.0", "train.clip"),
            ("[train]\nema = 1.5", "train.ema"),
            ("[sample]\nsteps = 0", "sample.steps"),
            ("[sample]\nlevels = 0", "sample.levels"),
            ("[sample]\neps = -1.0", "sample.eps"),
            ("[sample]\neps = 2.0", "sample.eps"),
            ("[sample]\nsnr = nan", "sample.snr"),
            ("[process]\nsigma_max = inf", "sigma_max"),
            ("size = 0", "data.size"),
            ("size = 100000", "data.size"),
            ("limit = 0", "data.limit"),
        ];
        for (extra, key) in cases {
            let text = format!("[data]\nsource = \"toy\"\n{extra}\n");
            let e = Config::from_toml(&text, "c.toml").unwrap_err().to_string();
            assert!(e.contains("c.toml") && e.contains(key), "{extra}: {e}");
        }
        // U-Net fields are checked against the data's shape.
        let unet = |extra: &str| {
            let text = format!("[data]\nsource = \"toy\"\n[model]\nnetwork = \"unet\"\n{extra}\n");
            Config::from_toml(&text, "u.toml").unwrap().model_spec(&[1, 28, 28]).map(|_| ())
        };
        unet("").unwrap();
        for (extra, key) in [
            ("base_channels = 0", "base_channels"),
            ("channel_mults = []", "channel_mults"),
            ("channel_mults = [1, 2, 2, 2]", "divisible by 8"),
            ("groups = 0", "groups"),
            ("emb_dim = 31", "emb_dim"),
            ("attn_resolutions = [7, 5]", "5 is not one of"),
        ] {
            let e = unet(extra).unwrap_err().to_string();
            assert!(e.contains(key), "{extra}: {e}");
        }
    }
}
