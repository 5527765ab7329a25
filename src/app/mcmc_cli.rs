//! The MCMC options of `sample` and `eval` and what an MCMC run reports: a stderr summary, a
//! JSON file and a plot of acceptance against sigma beside the samples.

use crate::error::Result;
use crate::sample::{McmcMethod, McmcOpts, McmcReport, MhRule, StepRule};
use std::path::Path;

/// Options of the annealed MCMC samplers (ula, mala, uhmc, hmc) and of MCMC correctors.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct McmcArgs {
    /// Noise levels of annealed MCMC (the process's grid; default sample.levels).
    #[arg(long)]
    pub mcmc_levels: Option<usize>,
    /// Transitions per noise level (default: --steps over sample.levels; correctors: 1).
    #[arg(long)]
    pub mcmc_steps: Option<usize>,
    /// The Langevin step h per level: ald (sample.eps sigma^2 / sigma_L^2 / 2), sigma2:C
    /// (C sigma^2), const:H or levels:H1,H2,... (HMC's leapfrog step is sqrt(2h)).
    #[arg(long, value_parser = |s: &str| s.parse::<StepRule>())]
    pub mcmc_step: Option<StepRule>,
    /// Leapfrog steps per HMC transition [default: 3].
    #[arg(long)]
    pub leapfrog: Option<usize>,
    /// Momentum kept at each refresh, v' = k v + sqrt(1 - k^2) sqrt(M) z [default: 0.5].
    #[arg(long)]
    pub damping: Option<f64>,
    /// HMC's mass M [default: 1].
    #[arg(long)]
    pub mass: Option<f64>,
    /// Adapt each chain's step toward this acceptance (Du et al.: 0.57): h <- h (1 + 0.02 (a - target)).
    #[arg(long, num_args = 0..=1, default_missing_value = "0.57")]
    pub adapt: Option<f64>,
    /// The Metropolis test's log-density ratio: energy, or trapezoid:N (score-only models: the
    /// score integrated along x -> x' with N points).
    #[arg(long, value_parser = |s: &str| s.parse::<MhRule>())]
    pub mh: Option<MhRule>,
    /// MCMC between the steps of pc, ddim or ancestral (replacing pc's Langevin corrector).
    #[arg(long, value_enum)]
    pub corrector: Option<McmcMethod>,
    /// The fraction of those steps, from the top of the noise range, that get the corrector.
    #[arg(long)]
    pub corrector_fraction: Option<f64>,
}

impl McmcArgs {
    /// These options over `base`.
    pub fn apply(&self, base: &McmcOpts) -> McmcOpts {
        McmcOpts {
            steps_per_level: self.mcmc_steps.or(base.steps_per_level),
            step: self.mcmc_step.clone().unwrap_or(base.step.clone()),
            leapfrog: self.leapfrog.unwrap_or(base.leapfrog),
            damping: self.damping.unwrap_or(base.damping),
            mass: self.mass.unwrap_or(base.mass),
            adapt: self.adapt.or(base.adapt),
            mh: self.mh.unwrap_or(base.mh),
            ais: base.ais,
            corrector: self.corrector.or(base.corrector),
            corrector_fraction: self.corrector_fraction.unwrap_or(base.corrector_fraction),
        }
    }
}

/// Report an MCMC run: one stderr line (overall, lowest and highest level, chain groups), and
/// beside `out` (the samples) `<stem>.acceptance.json` and, where there are levels with tests,
/// `<stem>.acceptance.png` (acceptance against log sigma).
pub fn report(r: &McmcReport, out: &Path) -> Result<Vec<std::path::PathBuf>> {
    if r.levels.is_empty() {
        return Ok(vec![]);
    }
    let (lo, hi) = r.levels.iter().fold((1.0f64, 0.0f64), |(lo, hi), l| (lo.min(l.1), hi.max(l.1)));
    let (glo, ghi) = r.groups.iter().fold((1.0f64, 0.0f64), |(lo, hi), &g| (lo.min(g), hi.max(g)));
    eprintln!(
        "{}: {:.1}% of proposals accepted; per level {:.1}% .. {:.1}% over {} levels; per chain group {:.1}% .. {:.1}%",
        r.method,
        100.0 * r.overall,
        100.0 * lo,
        100.0 * hi,
        r.levels.len(),
        100.0 * glo,
        100.0 * ghi
    );
    let stem = out.with_extension("");
    let json = stem.with_extension("acceptance.json");
    crate::io::write_atomic(&json, (r.json() + "\n").as_bytes())?;
    let png = stem.with_extension("acceptance.png");
    crate::io::plot::acceptance(&png, &r.levels)?;
    Ok(vec![json, png])
}

/// log Z of a model with an energy by annealed importance sampling: the request's MCMC sampler
/// (hmc unless it names one) over its levels, started from the prior, with AIS weights per
/// chain; (log Z, its standard error, the run's report).
pub fn log_z(
    gpu: &crate::Gpu,
    model: &dyn crate::model::ScoreModel,
    req: &crate::sample::SampleRequest,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(f64, f64, McmcReport)> {
    let mut req = req.clone();
    if req.sampler.mcmc().is_none() {
        req.sampler = crate::sample::SamplerKind::Hmc;
    }
    if req.n < 2 {
        return Err(crate::Error::Invalid(format!("--n {}: log Z needs at least 2 chains", req.n)));
    }
    req.opts.mcmc.ais = true;
    let report = crate::sample::draw_each(gpu, model, &req, &mut |_| Ok(()), progress)?
        .ok_or_else(|| crate::Error::Invalid("AIS needs an MCMC sampler: ula, mala, uhmc or hmc".into()))?;
    let (lz, se) = report.log_z().ok_or_else(|| crate::Error::Invalid("AIS gave no weights".into()))?;
    if !lz.is_finite() {
        return Err(crate::Error::Invalid(format!(
            "AIS: log Z is {lz} (the weights over- or underflowed); use more levels (sample.levels) or steps"
        )));
    }
    Ok((lz, se, report))
}
