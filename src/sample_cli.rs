//! The model and sampler flags `sample`, `eval`, `field` and `log-z` share, and the request
//! they make (defaults: the checkpoint's config).

use scoregen::app::{Loaded, ModelSource};
use scoregen::sample::{SampleRequest, SamplerKind};
use scoregen::{Error, Gpu, Result};
use std::path::PathBuf;

/// The model and sampler settings `sample` and `eval` share (defaults: the checkpoint's config).
#[derive(clap::Args)]
pub(crate) struct SampleArgs {
    /// A checkpoint written by `train`.
    #[arg(long, conflicts_with = "model")]
    pub checkpoint: Option<PathBuf>,
    /// An analytic model or a composition instead: gmm:FILE.toml, gmm:ring8, gmm:ncsn or
    /// compose:FILE.toml.
    #[arg(long, value_parser = parse_model)]
    pub model: Option<ModelSource>,
    /// ald, pc, ode, rk45, ddim, ancestral, heun, langevin, ula, mala, uhmc, hmc.
    #[arg(long, value_enum)]
    pub sampler: Option<SamplerKind>,
    /// Sampler steps (model evaluations; ALD: all noise levels together); default from the
    /// checkpoint's config.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Samples to draw (eval: for the sample metrics, 0 skips them).
    #[arg(long)]
    pub n: Option<usize>,
    /// Seed of the chains (chain i's numbers depend only on seed and i).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Chains per batch (results do not depend on it, except with rk45).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Image models: clip the denoised estimate to [-1, 1] at every step (true or false;
    /// default from the checkpoint's config, `sample.clip_denoised`, itself true by default).
    #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
    pub clip_denoised: Option<bool>,
    #[command(flatten)]
    pub mcmc: scoregen::app::mcmc_cli::McmcArgs,
    #[command(flatten)]
    pub guide: scoregen::app::guide_cli::GuideArgs,
    #[command(flatten)]
    pub retrieval: scoregen::app::retrieval_cli::RetrievalArgs,
}

pub(crate) fn parse_model(s: &str) -> std::result::Result<ModelSource, String> {
    ModelSource::parse_model(s).map_err(|e| e.message().to_string())
}
pub(crate) fn source(a: &SampleArgs) -> Result<ModelSource> {
    match (&a.checkpoint, &a.model) {
        (Some(c), _) => Ok(ModelSource::Checkpoint(c.clone())),
        (None, Some(m)) => Ok(m.clone()),
        (None, None) => Err(Error::Invalid("give --checkpoint FILE or --model gmm:...".into())),
    }
}

/// The model's file as the user named it (errors about its database name it).
pub(crate) fn source_name(a: &SampleArgs) -> String {
    a.checkpoint.as_ref().map_or("the model".into(), |c| c.display().to_string())
}

pub(crate) fn load_model(gpu: &Gpu, a: &SampleArgs) -> Result<Loaded> {
    Loaded::load(gpu, &source(a)?)?.guide(gpu, &a.guide)
}

pub(crate) fn request(m: &Loaded, a: &SampleArgs) -> SampleRequest {
    let mut req = m.sample_defaults().request();
    req.sampler = a.sampler.unwrap_or(req.sampler);
    req.steps = a.steps.unwrap_or(req.steps);
    req.n = a.n.unwrap_or(req.n);
    req.seed = a.seed.unwrap_or(req.seed);
    req.batch = a.batch.unwrap_or(req.batch);
    req.opts.clip_denoised = a.clip_denoised.unwrap_or(req.opts.clip_denoised);
    req.opts.mcmc = a.mcmc.apply(&req.opts.mcmc);
    req.opts.levels = a.mcmc.mcmc_levels.unwrap_or(req.opts.levels);
    req.conditions = m.conditions.clone();
    req
}
