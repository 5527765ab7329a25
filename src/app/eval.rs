//! `scoregen eval`: sample quality against ground truth, likelihoods (the PF-ODE's, or a
//! normalised energy's), and the Fisher divergence to an analytic mixture.

use super::{Loaded, ModelSource};
use crate::data::Dataset;
use crate::dist::gmm::Gmm;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::fisher::fisher;
use crate::model::{Probes, ScoreFn, ScoreModel};
use crate::rng::{HostRng, Stream};
use crate::sample::{draw, SampleRequest};
use std::path::Path;

/// Most data points `eval` takes for the PF-ODE likelihood.
pub const MAX_NLL_POINTS: usize = 1_000_000;

/// Figures of `eval`: (name, value, unit).
pub type Figures = Vec<(String, f64, String)>;

/// Independent ground-truth draws that `eval`'s sliced W2 is averaged over: one draw of
/// 10,000 points moves the figure by about a third on the bundled toy model.
pub const TRUTH_DRAWS: u64 = 5;

/// Where `eval` draws ground truth from: the checkpoint's data, or the exact mixture.
struct Truth {
    data: Option<Dataset>,
    gmm: Option<Gmm>,
}

impl Truth {
    fn new(loaded: &Loaded, cfg_dir: &Path) -> Result<Truth> {
        let data = match &loaded.config {
            Some(cfg) => Some(Dataset::load(&cfg.data, cfg_dir)?),
            None => None,
        };
        // The exact distribution, where known: the model's own, or the toy's behind the data.
        let gmm = loaded.model.mixture().cloned().or_else(|| match data.as_ref().map(|d| &d.source) {
            Some(crate::data::Source::Toy(t)) => t.gmm(),
            _ => None,
        });
        if data.is_none() && gmm.is_none() {
            return Err(Error::Invalid(
                "eval needs ground truth: a checkpoint (whose config names its data) or an analytic mixture".into(),
            ));
        }
        Ok(Truth { data, gmm })
    }

    /// n points of the data, noised at the level of a fixed-level model (whose target is the
    /// noised density p_sigma, not the data's).
    fn draw(&self, n: usize, seed: u64, process: &crate::score::Process) -> Vec<f32> {
        let mut rng = HostRng::new(seed);
        let mut xs = match (&self.data, &self.gmm) {
            (Some(ds), _) => ds.draw(n, &mut rng),
            (None, Some(g)) => g.sample(n, &mut rng),
            (None, None) => Vec::new(),
        };
        if let crate::score::Process::Fixed { sigma } = *process {
            xs.iter_mut().for_each(|v| *v += (sigma * rng.normal()) as f32);
        }
        xs
    }
}

/// Mean and sample standard deviation.
fn mean_sd(v: &[f64]) -> (f64, f64) {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len().max(2) - 1) as f64;
    (m, var.sqrt())
}

/// Sample quality: sliced W2 to `TRUTH_DRAWS` fresh ground-truth draws (mean and spread) beside
/// the same figure for truth against truth (the floor a perfect sampler reaches with this
/// many points); exact W2 and MMD on up to 2,000 points; for mixtures, log-density and modes.
fn sample_figures(
    gpu: &Gpu,
    model: &dyn ScoreModel,
    req: &SampleRequest,
    truth: &Truth,
    out: &mut Figures,
) -> Result<()> {
    let d = model.numel();
    let t0 = std::time::Instant::now();
    let xs = draw(gpu, model, req, &mut |_, _| {})?;
    out.push(("sample_seconds".into(), t0.elapsed().as_secs_f64(), "s".into()));
    crate::metrics::check_finite(&xs, d, &format!("the {} sampler's samples", req.sampler.name()))?;
    let gts: Vec<Vec<f32>> =
        (0..TRUTH_DRAWS).map(|j| truth.draw(req.n, Stream::Truth(j).derive(req.seed), model.process())).collect();
    let k = gts.len();
    let w: Vec<f64> = gts.iter().map(|gt| crate::metrics::sliced_w2(&xs, gt, d, 256, 1)).collect();
    let floor: Vec<f64> = (0..k).map(|j| crate::metrics::sliced_w2(&gts[j], &gts[(j + 1) % k], d, 256, 1)).collect();
    let ((wm, ws), (fm, fs)) = (mean_sd(&w), mean_sd(&floor));
    out.push(("sliced_w2".into(), wm, format!("(mean over {k} truth draws of {})", req.n)));
    out.push(("sliced_w2_sd".into(), ws, "(sd over those draws)".into()));
    out.push(("sliced_w2_truth_vs_truth".into(), fm, format!("(mean over {k} pairs of truth draws)")));
    out.push(("sliced_w2_truth_vs_truth_sd".into(), fs, "".into()));
    let gt = &gts[0];
    if d <= 64 {
        let m = req.n.min(2000);
        let w = crate::metrics::exact_w2(&xs[..m * d], &gt[..m * d], d)?;
        out.push((format!("exact_w2_first_{m}"), w, "".into()));
        out.push(("mmd2".into(), crate::metrics::mmd2(&xs[..m * d], &gt[..m * d], d, None), "".into()));
    }
    if let Some(g) = &truth.gmm {
        out.push(("mean_log_density".into(), crate::metrics::mean_log_density(g, &xs), "nats".into()));
        out.push(("mean_log_density_truth".into(), crate::metrics::mean_log_density(g, gt), "nats".into()));
        for (k, f) in crate::metrics::mode_fractions(g, &xs).iter().enumerate() {
            out.push((format!("mode_{k}_fraction"), *f, format!("(weight {:.3})", g.weights[k])));
        }
    }
    Ok(())
}

/// The PF-ODE likelihood of `nll_n` data points (images: uniformly dequantised, also in bits
/// per dimension), beside the exact density's for mixtures.
fn nll_figures(
    gpu: &Gpu,
    model: &dyn ScoreModel,
    req: &SampleRequest,
    (nll_n, probes): (usize, Probes),
    truth: &Truth,
    out: &mut Figures,
) -> Result<()> {
    let d = model.numel();
    let mut pts = truth.draw(nll_n, Stream::NllPoints.derive(req.seed), model.process());
    if let crate::score::Process::Fixed { sigma } = *model.process() {
        // One level: no probability-flow ODE; the density is normalised where NCE learned log Z.
        return normalised_nll(gpu, model, &pts, sigma, req.batch, truth, out);
    }
    if model.images() {
        // Uniform dequantisation: 8-bit level k sits at k / 127.5 - 1; add U(0, 1/127.5).
        let mut rng = HostRng::stream(req.seed, Stream::Dequantise);
        pts.iter_mut().for_each(|v| *v += (rng.uniform() / 127.5) as f32);
    }
    let f = ScoreFn::plan(gpu, model, nll_n.min(req.batch.max(1)), probes)?;
    let nll = crate::sample::likelihood::nll(gpu, &f, model.process(), &pts, 100, req.seed)?;
    let mean = nll.iter().sum::<f64>() / nll.len() as f64;
    out.push(("nll".into(), mean, "nats".into()));
    if model.images() {
        out.push((
            "bpd".into(),
            crate::sample::likelihood::bits_per_dim_8bit(mean, d),
            "bits/dim (8-bit data at k/127.5 - 1, uniformly dequantised: + ln 127.5 per dim)".into(),
        ));
    } else {
        out.push(("nll_bits_per_dim".into(), mean / d as f64 / std::f64::consts::LN_2, "bits/dim (continuous)".into()));
    }
    if let Some(g) = &truth.gmm {
        let sig = model.process().sigma_min();
        let exact =
            pts.chunks(d).map(|p| -g.log_density(&p.iter().map(|&v| v as f64).collect::<Vec<_>>(), sig)).sum::<f64>()
                / nll_n as f64;
        out.push(("nll_exact_of_data_density".into(), exact, "nats".into()));
    }
    Ok(())
}

/// Sample quality against the data (toys with an analytic mixture: fresh ground truth, mean
/// log-density, mode fractions) and PF-ODE likelihood of `nll_n` data points.
pub fn evaluate(
    gpu: &Gpu,
    loaded: &Loaded,
    req: &SampleRequest,
    nll_n: usize,
    probes: Probes,
    cfg_dir: &Path,
    fisher: Option<&FisherRequest>,
) -> Result<Figures> {
    if nll_n > MAX_NLL_POINTS {
        return Err(Error::Invalid(format!(
            "--nll-n {nll_n}: at most {MAX_NLL_POINTS} points (the NLL is a mean; 10,000 points give a standard error \
             near 0.01 nats)"
        )));
    }
    let truth = Truth::new(loaded, cfg_dir)?;
    let model = loaded.model.as_ref();
    let mut out: Figures = Vec::new();
    if req.n > 0 {
        sample_figures(gpu, model, req, &truth, &mut out)?;
    }
    if nll_n > 0 {
        nll_figures(gpu, model, req, (nll_n, probes), &truth, &mut out)?;
    }
    if let Some(fr) = fisher {
        fisher_figures(gpu, model, fr, &truth, req, &mut out)?;
    }
    Ok(out)
}

/// What `eval --reference/--levels` asks for: the Fisher divergence to a mixture (default: the
/// one behind the data) at these levels (default: a fixed-level model's own; else sigma_min, the
/// geometric middle and sigma_max) on `n` fresh points each.
#[derive(Clone, Debug, Default)]
pub struct FisherRequest {
    /// The density behind the data, where known (analytic mixtures, toys).
    pub reference: Option<Gmm>,
    /// The noise levels measured.
    pub levels: Vec<f64>,
    /// Points per level.
    pub n: usize,
}

impl FisherRequest {
    /// The request `eval`'s flags make (--reference, --levels, --fisher-n), if any.
    pub fn from_flags(
        reference: &Option<ModelSource>,
        levels: &Option<Vec<f64>>,
        n: usize,
    ) -> Result<Option<FisherRequest>> {
        if reference.is_none() && levels.is_none() {
            return Ok(None);
        }
        let reference = match reference {
            Some(ModelSource::Mixture(m)) => Some(m.load()?),
            Some(ModelSource::Compose(p)) => {
                return Err(Error::Invalid(format!(
                "--reference compose:{}: the reference needs an exact density: gmm:FILE.toml, gmm:ring8 or gmm:ncsn",
                p.display()
            )))
            }
            Some(ModelSource::Checkpoint(_)) => unreachable!("parse_model gives no checkpoints"),
            None => None,
        };
        let levels = levels.clone().unwrap_or_default();
        if let Some(l) = levels.iter().find(|l| !(**l > 0.0 && l.is_finite())) {
            return Err(Error::Invalid(format!("--levels: {l} is not a positive noise level")));
        }
        if n < 2 {
            return Err(Error::Invalid(format!("--fisher-n {n}: the Fisher divergence needs at least 2 points")));
        }
        Ok(Some(FisherRequest { reference, levels, n }))
    }
}

fn fisher_figures(
    gpu: &Gpu,
    model: &dyn ScoreModel,
    fr: &FisherRequest,
    truth: &Truth,
    req: &SampleRequest,
    out: &mut Figures,
) -> Result<()> {
    let gmm = fr.reference.as_ref().or(truth.gmm.as_ref()).ok_or_else(|| {
        Error::Invalid("--levels: the data have no analytic density; give --reference gmm:FILE.toml".into())
    })?;
    let p = model.process();
    let levels = match (&fr.levels[..], p) {
        ([], crate::score::Process::Fixed { sigma }) => vec![*sigma],
        ([], _) => vec![p.sigma_min(), (p.sigma_min() * p.sigma_max()).sqrt(), p.sigma_max()],
        (l, _) => l.to_vec(),
    };
    for (j, &sigma) in levels.iter().enumerate() {
        let f = fisher(gpu, model, gmm, sigma, fr.n, req.batch, Stream::FisherPoints(j as u64).derive(req.seed))?;
        let tag = format!("@{sigma}");
        out.push((format!("fisher{tag}"), f.divergence, format!("(mean over {} fresh points of p_sigma)", f.points)));
        out.push((format!("fisher{tag}_se"), f.std_error, "(standard error)".into()));
        out.push((
            format!("fisher{tag}_relative"),
            f.divergence / f.truth_norm,
            "(over E||grad log p_sigma||^2)".into(),
        ));
        if let Some(c) = f.energy_corr {
            out.push((format!("energy_corr{tag}"), c, "(Pearson, -U against log p_sigma)".into()));
        }
        if let Some(m) = f.model_mean_log_density {
            out.push((format!("mean_loglik{tag}"), m, "nats (held-out draws; -U - log_z)".into()));
            out.push((format!("mean_loglik_truth{tag}"), f.mean_log_density, "nats (log p_sigma, same draws)".into()));
        }
    }
    Ok(())
}

/// A fixed-level model's negative log-likelihood where it is normalised (NCE's log Z): the
/// mean of U + log_z over the points, beside the exact density's; for 2-D models also log Z
/// by quadrature, against which the learned one is read.
fn normalised_nll(
    gpu: &Gpu,
    model: &dyn ScoreModel,
    pts: &[f32],
    sigma: f64,
    batch: usize,
    truth: &Truth,
    out: &mut Figures,
) -> Result<()> {
    let Some(log_z) = model.log_normaliser() else { return Ok(()) };
    let d = model.numel();
    let (_, e) = crate::model::fisher::evaluate_at(gpu, model, pts, sigma, batch)?;
    let e = e.ok_or_else(|| Error::Invalid("a log-normaliser without an energy".into()))?;
    let nll = e.iter().map(|&u| u as f64 + log_z).sum::<f64>() / e.len() as f64;
    out.push(("log_z".into(), log_z, "(learned by NCE)".into()));
    if d == 2 {
        let m = model.moments();
        let r = 6.0 * (m.var + sigma * sigma).sqrt();
        let (lo, hi) = ([m.mean[0] - r, m.mean[1] - r], [m.mean[0] + r, m.mean[1] + r]);
        let q = crate::model::fisher::log_partition_2d(gpu, model, sigma, lo, hi, 800)?;
        out.push((
            "log_z_quadrature".into(),
            q,
            format!("(log of the integral of exp(-U) over [-{r:.1}, {r:.1}]^2 about the mean)"),
        ));
    }
    out.push(("nll".into(), nll, "nats (U + log_z at held-out points of p_sigma)".into()));
    if let Some(g) = &truth.gmm {
        let exact =
            pts.chunks(d).map(|p| -g.log_density(&p.iter().map(|&v| v as f64).collect::<Vec<_>>(), sigma)).sum::<f64>()
                / e.len() as f64;
        out.push(("nll_exact_of_data_density".into(), exact, "nats".into()));
    }
    Ok(())
}
