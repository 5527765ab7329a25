//! What the CLI's commands do, as library calls: load a model (a checkpoint or an analytic
//! mixture), draw samples and write them, evaluate samples and likelihoods.

use crate::config::Config;
use crate::dist::gmm::Gmm;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::{Mixture, ScoreModel, Trained};
use crate::sample::SampleRequest;
use std::path::{Path, PathBuf};

/// Where a model comes from: a checkpoint written by `train`, or an analytic mixture.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelSource {
    /// A checkpoint written by `train`.
    Checkpoint(PathBuf),
    /// NCSN's two modes, W1's ring of 8, or a mixture file.
    Mixture(MixtureSource),
    /// A composition file (`compose::load_composition`).
    Compose(PathBuf),
}

/// An analytic mixture.
#[derive(Clone, Debug, PartialEq)]
pub enum MixtureSource {
    /// W1's 8 Gaussians on a ring of radius 4.
    Ring8,
    /// NCSN's two modes.
    Ncsn,
    /// A mixture file (TOML).
    File(PathBuf),
}

impl ModelSource {
    /// `--model` values: gmm:ring8, gmm:ncsn, gmm:FILE.toml, compose:FILE.toml.
    pub fn parse_model(spec: &str) -> Result<ModelSource> {
        if let Some(path) = spec.strip_prefix("compose:") {
            return Ok(ModelSource::Compose(PathBuf::from(path)));
        }
        let rest = spec.strip_prefix("gmm:").ok_or_else(|| {
            Error::Invalid(format!(
                "--model {spec}: use gmm:FILE.toml, gmm:ring8, gmm:ncsn or compose:FILE.toml (or --checkpoint FILE)"
            ))
        })?;
        Ok(ModelSource::Mixture(match rest {
            "ring8" => MixtureSource::Ring8,
            "ncsn" => MixtureSource::Ncsn,
            path => MixtureSource::File(PathBuf::from(path)),
        }))
    }
}

impl MixtureSource {
    /// The mixture.
    pub fn load(&self) -> Result<Gmm> {
        Ok(match self {
            MixtureSource::Ring8 => Gmm::ring8(),
            MixtureSource::Ncsn => Gmm::ncsn_two_modes(),
            MixtureSource::File(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| Error::io(format!("{}: cannot read the mixture file", path.display()), e))?;
                Gmm::from_toml(&text, &path.display().to_string())?
            }
        })
    }
}

impl ModelSource {
    /// A model named in a composition file: `gmm:...`, `compose:...` or a checkpoint path.
    pub fn parse(spec: &str) -> Result<ModelSource> {
        if spec.starts_with("gmm:") || spec.starts_with("compose:") {
            return ModelSource::parse_model(spec);
        }
        Ok(ModelSource::Checkpoint(PathBuf::from(spec)))
    }
}

/// A model with what the CLI knows about it besides the score.
pub struct Loaded {
    /// The model.
    pub model: Box<dyn ScoreModel>,
    /// A checkpoint's config: sampler defaults and the data for `eval`.
    pub config: Option<Box<Config>>,
    /// A checkpoint's training step.
    pub step: usize,
    /// The conditioning of the chains (class-conditional models: the null label unless
    /// `guide` says otherwise).
    pub conditions: crate::model::Conditions,
    /// The classes the chains cycle through (`--class`), if any.
    pub class_list: Option<Vec<u32>>,
    /// A class-conditional checkpoint's class names.
    pub class_names: Vec<String>,
}

impl Loaded {
    /// Open a model from `src`.
    pub fn load(gpu: &Gpu, src: &ModelSource) -> Result<Loaded> {
        let (model, config, step, class_names): (Box<dyn ScoreModel>, _, _, _) = match src {
            ModelSource::Mixture(m) => (Box::new(Mixture::new(m.load()?)), None, 0, Vec::new()),
            ModelSource::Checkpoint(path) => {
                let (model, cfg, step) = load_checkpoint(gpu, path)?;
                let names = model.class_names.clone();
                (Box::new(model), Some(Box::new(cfg)), step, names)
            }
            ModelSource::Compose(path) => {
                let (c, cfg) = compose::load_composition(gpu, path, 0)?;
                (Box::new(c), cfg.map(Box::new), 0, Vec::new())
            }
        };
        let conditions = crate::model::guide::unconditional(model.as_ref())?;
        Ok(Loaded { model, config, step, conditions, class_list: None, class_names })
    }

    /// Apply `sample`'s class and guidance flags.
    pub fn guide(self, gpu: &Gpu, args: &guide_cli::GuideArgs) -> Result<Loaded> {
        let g = args.apply(gpu, self.model, &self.class_names)?;
        Ok(Loaded { model: g.model, conditions: g.conditions, class_list: g.classes, ..self })
    }

    /// Sampler settings: the config's, for a checkpoint.
    pub fn sample_defaults(&self) -> crate::config::SampleConfig {
        self.config.as_ref().map(|c| c.sample.clone()).unwrap_or_default()
    }
}

/// A trained model from a checkpoint, with the whole run config it carries (sampler
/// defaults, data) and its step.
pub fn load_checkpoint(gpu: &Gpu, path: &Path) -> Result<(Trained, Config, usize)> {
    let (model, info) = Trained::load(gpu, path)?;
    let cfg = Config::from_metadata(&info.config, &format!("{} (metadata)", path.display()))?;
    Ok((model, cfg, info.step))
}

/// Non-finite samples are reported, not passed over in silence: a one-line error counting them.
fn non_finite_error(bad: usize, n: usize, out: &Path) -> Result<()> {
    if bad > 0 {
        return Err(Error::Invalid(format!(
            "{bad} of {n} samples have NaN or infinite values (written to {} all the same); try more --steps or \
             another --sampler",
            out.display()
        )));
    }
    Ok(())
}

/// `scoregen sample`: draw and write to `out`. A `.npy` is written batch by batch as the
/// samples are drawn (any --n the disk holds; the file appears complete or not at all); a PNG
/// needs them all in memory. Non-finite samples are counted and reported after writing.
/// Returns the MCMC samplers' acceptance and AIS weights.
pub fn sample_to(
    gpu: &Gpu,
    model: &dyn ScoreModel,
    req: &SampleRequest,
    out: &Path,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Option<crate::sample::McmcReport>> {
    let (shape, d) = (model.shape(), model.numel());
    crate::io::samples::check_output(out, shape, model.images())?;
    if out.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy")) {
        let mut full = vec![req.n];
        full.extend(shape);
        let mut w = crate::io::npy::NpyWriter::create(out, &full).map_err(|e| e.context(format!("--n {}", req.n)))?;
        let mut bad = 0;
        let rate = crate::sample::draw_each(
            gpu,
            model,
            req,
            &mut |xs| {
                bad += crate::metrics::count_non_finite(xs, d);
                w.write(xs)
            },
            progress,
        )?;
        w.finish()?;
        return non_finite_error(bad, req.n, out).map(|_| rate);
    }
    crate::sample::check_sample_size(req.n, d)?;
    let mut xs = Vec::with_capacity(req.n * d);
    let rate = crate::sample::draw_each(
        gpu,
        model,
        req,
        &mut |b| {
            xs.extend_from_slice(b);
            Ok(())
        },
        progress,
    )?;
    // Chains cycling through L classes: a grid of L columns, one class each.
    let cols = req.conditions.get(crate::model::guide::LABEL).filter(|_| req.conditions.cycle).and_then(|rows| {
        let k = crate::model::guide::label_classes(model)? + 1;
        Some(rows.len() / k)
    });
    // 2-D samples of an analytic mixture: exact draws beside them.
    let exact =
        model.mixture().filter(|_| d == 2).map(|g| g.sample(req.n, &mut crate::rng::HostRng::new(req.seed ^ 0x7e57)));
    let reference = exact.as_deref().map(|e| ("the mixture (exact draws)", e));
    crate::io::samples::write_samples_with(out, &xs, shape, model.images(), cols, reference)?;
    non_finite_error(crate::metrics::count_non_finite(&xs, d), req.n, out).map(|_| rate)
}

pub mod classify;
pub mod compose;
mod eval;
mod field;
pub mod guide_cli;
pub mod mcmc_cli;
pub mod retrieval_cli;
pub mod shard;

pub use eval::{evaluate, Figures, FisherRequest, MAX_NLL_POINTS, TRUTH_DRAWS};
pub use field::field_picture;
