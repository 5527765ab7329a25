//! Run configuration (TOML), as plain structs with documented defaults. Unknown keys are
//! errors that name the key and the file. The whole config travels in every checkpoint's
//! `__metadata__`, so `sample` and `eval` need only the checkpoint.

pub use crate::data::{DataConfig, SourceKind};
use crate::error::{Error, Result};
pub use crate::retrieval::RetrievalConfig;
use crate::sample::SamplerKind;
pub use crate::score::config::{ModelConfig, ProcessConfig};
use crate::score::process::ProcessKind;
use crate::score::{ModelSpec, Objective, ParamKind, Parameterisation, Process};
use serde::{Deserialize, Serialize};

mod tables;
pub use tables::{SampleConfig, TrainConfig};

/// A run's whole configuration (the TOML file `train` reads; checkpoints carry it).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[data]`.
    pub data: DataConfig,
    /// `[model]`.
    #[serde(default)]
    pub model: ModelConfig,
    /// `[process]`.
    #[serde(default)]
    pub process: ProcessConfig,
    /// `[train]`.
    #[serde(default)]
    pub train: TrainConfig,
    /// `[sample]`: the defaults of sampling from the checkpoint.
    #[serde(default)]
    pub sample: SampleConfig,
    /// Retrieval-conditioned models (Blattmann et al. 2022): the database and its neighbours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrieval: Option<RetrievalConfig>,
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
        let mut c = c;
        c.process.fill_defaults();
        Ok(c)
    }

    /// The config a checkpoint carries. Checkpoints written before the VP family refused a
    /// sigma range carry the (unused) default `sigma_min`/`sigma_max` for vp, vp-cosine and
    /// subvp: those two keys are dropped there, as the version that wrote them ignored them.
    pub fn from_metadata(text: &str, path: &str) -> Result<Config> {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| Error::Invalid(format!("{path}: {}", e.message().trim())))?;
        crate::score::config::drop_legacy_keys(&mut table);
        Config::from_toml(&table.to_string(), path)
    }

    /// Read and check a config file (errors name the file and the key).
    pub fn load(path: &std::path::Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("{}: cannot read the config", path.display()), e))?;
        Config::from_toml(&text, &path.display().to_string())
    }

    /// The config as TOML (what checkpoints carry).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a config always serialises")
    }

    fn validate(&self) -> std::result::Result<(), String> {
        self.data.check()?;
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
        m.check()?;
        self.check_retrieval()?;
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
        if s.sampler == SamplerKind::Ald && s.steps < s.levels {
            return Err(format!(
                "sample.steps = {} is below sample.levels = {}: ALD needs at least one step per noise level",
                s.steps, s.levels
            ));
        }
        if s.eps >= 1.0 {
            return Err(format!("sample.eps = {} must be below 1 (the end of the time grid)", s.eps));
        }
        self.process.check()?;
        if self.process.kind == ProcessKind::Fixed
            && s.sampler != SamplerKind::Langevin
            && s.sampler.mcmc().is_none()
            && self.model.network != crate::score::NetworkKind::Classifier
        {
            return Err(format!(
                "sample.sampler = \"{}\": process 'fixed' trains one noise level, which only Langevin dynamics at that \
                 level samples; set sample.sampler = \"langevin\" (or \"mala\")",
                s.sampler.name()
            ));
        }
        self.check_objective()
    }

    /// The objective's settings: keys another objective would use are refused, as is NCE
    /// without an energy model at one noise level.
    fn check_objective(&self) -> std::result::Result<(), String> {
        let t = &self.train;
        let obj = t.objective;
        let sliced = [Objective::Ssm, Objective::SsmVr].contains(&obj);
        let keys = [
            ("projections", t.projections.is_some(), sliced, "ssm and ssm-vr"),
            ("projection", t.projection.is_some(), sliced, "ssm and ssm-vr"),
            ("nce_ratio", t.nce_ratio.is_some(), obj == Objective::Nce, "nce"),
            ("nce_noise", t.nce_noise.is_some(), obj == Objective::Nce, "nce"),
        ];
        if let Some((key, _, _, who)) = keys.iter().find(|k| k.1 && !k.2) {
            return Err(format!(
                "train.{key}: only objective {who} uses it (objective is \"{}\"); remove the key",
                obj.name()
            ));
        }
        for (key, v) in [("projections", t.projections), ("nce_ratio", t.nce_ratio)] {
            if let Some(v) = v.filter(|v| !(1..=64).contains(v)) {
                return Err(format!("train.{key} = {v} must be from 1 to 64"));
            }
        }
        self.check_classes()?;
        if obj == Objective::Nce {
            if self.model.param != ParamKind::Energy {
                return Err(crate::score::objective::nce_needs_energy(self.model.param().name()));
            }
            if self.process.kind != ProcessKind::Fixed {
                return Err(format!(
                    "train.objective = \"nce\" fits a normalised density at one noise level: set process.kind = \
                     \"fixed\" with process.sigma_min the level (process.kind is \"{}\")",
                    self.process.kind.name()
                ));
            }
        }
        Ok(())
    }

    /// Class-conditional models and classifiers: the keys that go with them.
    fn check_classes(&self) -> std::result::Result<(), String> {
        let (m, t) = (&self.model, &self.train);
        let classifier = m.network == crate::score::NetworkKind::Classifier;
        if let Some(p) = t.label_dropout {
            if m.classes.is_none() || classifier {
                return Err(
                    "train.label_dropout: only class-conditional models (model.classes) use it; remove the key".into(),
                );
            }
            if !(0.0..1.0).contains(&p) {
                return Err(format!("train.label_dropout = {p} must be in [0, 1)"));
            }
        }
        if m.classes.is_some() && t.objective == Objective::Nce {
            return Err("model.classes: NCE trains unconditional energies; remove model.classes".into());
        }
        if classifier && t.objective != Objective::Dsm {
            return Err(format!(
                "train.objective = \"{}\": a classifier trains by cross-entropy on noised data; remove the key",
                t.objective.name()
            ));
        }
        Ok(())
    }

    /// Retrieval conditioning: alone (no classes), for score networks trained by DSM.
    fn check_retrieval(&self) -> std::result::Result<(), String> {
        let Some(r) = &self.retrieval else { return Ok(()) };
        r.check()?;
        let m = &self.model;
        if m.classes.is_some() {
            return Err("[retrieval] with model.classes: condition on the neighbours or on classes, not both".into());
        }
        if m.network == crate::score::NetworkKind::Classifier {
            return Err("[retrieval]: a classifier takes no retrieval context; remove the section".into());
        }
        if self.train.objective == Objective::Nce {
            return Err("[retrieval]: NCE trains unconditional energies; remove the section".into());
        }
        Ok(())
    }

    /// The probability of the null label in training (0 without classes).
    pub fn label_dropout(&self) -> f32 {
        let classifier = self.model.network == crate::score::NetworkKind::Classifier;
        match self.model.classes {
            Some(_) if !classifier => self.train.label_dropout.unwrap_or(0.1),
            _ => 0.0,
        }
    }

    /// The noise process `[process]` describes.
    pub fn process(&self) -> Process {
        self.process.process()
    }
    /// The parameterisation `[model]` describes.
    pub fn param(&self) -> Parameterisation {
        self.model.param()
    }

    /// The model for samples of `data_shape`.
    pub fn model_spec(&self, data_shape: &[usize]) -> Result<ModelSpec> {
        let mut spec = self.model.spec(data_shape)?;
        if let Some(r) = &self.retrieval {
            crate::score::config::add_context(&mut spec, r.k, r.width, &r.database)?;
        }
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bundled_config_loads_and_its_unet_builds() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/configs");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                let c = Config::load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                if c.model.network == crate::score::NetworkKind::Unet {
                    c.model.unet(&[1, 28, 28], c.model.classes).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                }
                n += 1;
            }
        }
        assert!(n >= 6, "{n} configs in {}", dir.display());
    }

    #[test]
    fn the_retrieval_section_is_checked_and_conditions_the_network() {
        let base = "[data]\nsource = \"toy\"\n[retrieval]\ndatabase = \"db.safetensors\"\nk = 8\n";
        for (extra, word) in [
            ("dropout = 1.0", "retrieval.dropout"),
            ("encoder = \"clip\"", "retrieval.encoder"),
            ("width = 0", "retrieval.width"),
            ("k2 = 3", "k2"),
        ] {
            let e = Config::from_toml(&format!("{base}{extra}\n"), "r.toml").unwrap_err().to_string();
            assert!(e.contains(word) && e.contains("r.toml"), "{e}");
        }
        let c = Config::from_toml(base, "r.toml").unwrap();
        assert!(c.model_spec(&[2]).unwrap_err().to_string().contains("retrieval.width"));
        let c = Config::from_toml(&format!("{base}width = 2\n"), "r.toml").unwrap();
        assert_eq!(c.model_spec(&[2]).unwrap().context, Some(crate::score::ContextSpec { tokens: 8, dim: 2 }));
        assert_eq!(Config::from_toml(&c.to_toml(), "round").unwrap(), c);
        let unet = "[data]\nsource = \"idx\"\npath = \"x\"\n[model]\nnetwork = \"unet\"\nattn_resolutions = []\n\
                    mid_attention = false\n[retrieval]\ndatabase = \"d\"\nk = 4\nwidth = 3\n";
        let c = Config::from_toml(unet, "u.toml").unwrap();
        assert!(c.model_spec(&[1, 8, 8]).unwrap_err().to_string().contains("mid_attention"));
        let c = Config::from_toml(&unet.replace("mid_attention = false", "mid_attention = true"), "u.toml").unwrap();
        let spec = c.model_spec(&[1, 8, 8]).unwrap();
        assert!(matches!(spec.network, crate::score::Network::UNet(ref u) if u.context_dim == Some(3)));
    }

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
    fn clipping_the_denoised_estimate_is_on_by_default_and_a_sample_setting() {
        let c = Config::from_toml("[data]\nsource = \"toy\"\n", "c.toml").unwrap();
        assert!(c.sample.clip_denoised && c.sample.request().opts.clip_denoised);
        let c = Config::from_toml("[data]\nsource = \"toy\"\n[sample]\nclip_denoised = false\n", "c.toml").unwrap();
        assert!(!c.sample.request().opts.clip_denoised);
        assert_eq!(Config::from_toml(&c.to_toml(), "round").unwrap(), c);
        // The MNIST U-Net samples unclipped by default (its background measure in the README).
        let unet = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/configs/mnist_unet_cond.toml");
        assert!(!Config::load(&unet).unwrap().sample.clip_denoised);
        let e =
            Config::from_toml("[data]\nsource = \"toy\"\n[sample]\nclip_denoised = \"no\"\n", "c.toml").unwrap_err();
        let e = e.to_string();
        assert!(e.contains("c.toml (line 4)") && e.contains("boolean") && e.lines().count() == 1, "{e}");
    }

    #[test]
    fn process_ranges_are_used_or_refused_and_written_out() {
        // A config names only the kind: the range it uses is written out in full.
        let c = Config::from_toml("[data]\nsource = \"toy\"\n[process]\nkind = \"vp\"\nbeta_max = 10.0\n", "v.toml")
            .unwrap();
        assert_eq!(c.process(), Process::VpLinear { beta_min: 0.1, beta_max: 10.0 });
        let text = c.to_toml();
        assert!(text.contains("beta_min = 0.1") && !text.contains("sigma_m"), "{text}");
        let c = Config::from_toml("[data]\nsource = \"toy\"\n", "e.toml").unwrap();
        assert_eq!(c.process(), Process::ve(0.01, 10.0));
        assert!(c.to_toml().contains("sigma_max = 10.0"));
        // EDM's log-normal of training levels: the paper's by default, or the config's.
        let edm = "[data]\nsource = \"toy\"\n[process]\nkind = \"edm\"\nsigma_min = 0.002\nsigma_max = 80.0\n";
        let c = Config::from_toml(edm, "d.toml").unwrap();
        assert_eq!(c.process(), Process::edm());
        let text = c.to_toml();
        assert!(text.contains("p_mean = -1.2") && text.contains("p_std = 1.2"), "{text}");
        let c = Config::from_toml(&format!("{edm}p_mean = -0.6\n"), "d.toml").unwrap();
        assert_eq!(c.process(), Process::Edm { sigma_min: 0.002, sigma_max: 80.0, p_mean: -0.6, p_std: 1.2 });
        assert_eq!(Config::from_toml(&c.to_toml(), "round").unwrap().process(), c.process());
        // Checkpoints written before: a VP config with the unused default sigma range loads;
        // a user's config with it is refused.
        let old = "[data]\nsource = \"toy\"\n[process]\nkind = \"subvp\"\nsigma_min = 0.01\nsigma_max = 10.0\n";
        let c = Config::from_metadata(old, "ck (metadata)").unwrap();
        assert_eq!(c.process(), Process::SubVp { beta_min: 0.1, beta_max: 20.0 });
        let e = Config::from_toml(old, "u.toml").unwrap_err().to_string();
        assert!(e.contains("process.sigma_min") && e.contains("subvp") && e.matches("u.toml").count() == 1, "{e}");
        // Typed keys: an unknown value is named with the choices, the file once.
        let e = Config::from_toml("[data]\nsource = \"toy\"\n[process]\nkind = \"vee\"\n", "k.toml").unwrap_err();
        let e = e.to_string();
        assert!(e.contains("vee") && e.contains("vp-cosine") && e.matches("k.toml").count() == 1, "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
    }

    #[test]
    fn out_of_range_values_name_the_key() {
        // (lines added to a valid config after its [data] source, words the error must contain)
        let cases = [
            ("[model]\nhidden = [64, 0]", "model.hidden"),
            ("[model]\ndropout = 1.0", "model.dropout"),
            ("[model]\nsigma_data = 0.0", "model.sigma_data"),
            ("[model]\nenergy = \"norm\"", "model.energy"),
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
            ("[process]\nsigma_max = 1e39", "process.sigma_max"),
            ("[process]\nsigma_min = 1e-300", "process.sigma_min"),
            ("[process]\nkind = \"vp\"\nsigma_max = 50.0", "process.sigma_max"),
            ("[process]\nkind = \"subvp\"\nsigma_min = 0.1", "process.sigma_min"),
            ("[process]\nkind = \"vp-cosine\"\nbeta_max = 10.0", "process.beta_max"),
            ("[process]\nkind = \"ve\"\nbeta_min = 0.5", "process.beta_min"),
            ("[process]\nkind = \"vp\"\nbeta_min = 30.0", "beta_min"),
            ("[process]\nkind = \"vp\"\nbeta_max = 1e9", "beta range"),
            ("[process]\np_mean = -0.6", "process.p_mean"),
            ("[process]\nkind = \"edm\"\np_std = 0.0", "process.p_std"),
            ("[process]\nkind = \"edm\"\np_mean = nan", "process.p_mean"),
            ("[process]\nkind = \"edm\"\np_mean = 100.0", "process.p_mean"),
            ("[process]\nkind = \"edm\"\np_mean = -inf", "process.p_mean"),
            ("[process]\nkind = \"edm\"\np_std = 1e10", "process.p_std"),
            ("[process]\nkind = \"edm\"\np_std = -1.0", "process.p_std"),
            ("[process]\nkind = \"ve\"\np_std = 1.0", "process.p_std"),
            ("size = 0", "data.size"),
            ("size = 100000", "data.size"),
            ("limit = 0", "data.limit"),
            ("labels = \"y.npy\"", "data.labels"),
            ("[model]\nclasses = 1", "model.classes"),
            ("[model]\nnetwork = \"classifier\"", "model.classes"),
            ("[model]\nbody = \"mlp\"", "model.body"),
            ("[model]\nnetwork = \"classifier\"\nclasses = 3\nbody = \"classifier\"", "model.body"),
            ("[train]\nlabel_dropout = 0.5", "train.label_dropout"),
            ("[model]\nclasses = 3\n[train]\nlabel_dropout = 1.0", "train.label_dropout"),
            ("[model]\nnetwork = \"classifier\"\nclasses = 3\n[train]\nobjective = \"ssm\"", "cross-entropy"),
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
