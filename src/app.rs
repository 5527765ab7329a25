//! What the CLI's commands do, as library calls: load a model (a checkpoint or an analytic
//! mixture), draw samples and write them, evaluate samples and likelihoods.

use crate::config::Config;
use crate::data::rng::HostRng;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::plan::ParamStore;
use crate::io::checkpoint::Checkpoint;
use crate::nn::Builder;
use crate::ops::elementwise::Unary;
use crate::sample::{Probes, Runner, SamplerKind, SamplerOpts, ScoreFn};
use crate::score::gmm::Gmm;
use crate::score::process::Moments;
use crate::score::{ModelSpec, Process};
use crate::tensor::Tensor;
use std::path::Path;

/// A model ready to plan: a trained network or an analytic mixture.
pub enum Model {
    Trained { cfg: Box<Config>, spec: ModelSpec, params: ParamStore, images: bool, step: usize, moments: Moments },
    Mixture { gmm: Gmm, process: Process },
}

impl Model {
    /// `spec`: a checkpoint path, or `gmm:FILE.toml`, `gmm:ring8`, `gmm:ncsn`.
    pub fn load(gpu: &Gpu, spec: &str) -> Result<Model> {
        if let Some(rest) = spec.strip_prefix("gmm:") {
            let gmm = match rest {
                "ring8" => Gmm::ring8(),
                "ncsn" => Gmm::ncsn_two_modes(),
                path => {
                    let text = std::fs::read_to_string(path)
                        .map_err(|e| Error::Io(format!("{path}: cannot read the mixture file: {e}")))?;
                    Gmm::from_toml(&text, path)?
                }
            };
            // sigma_max about the largest distance between points (Song & Ermon 2020, technique 1).
            let spread = gmm.means.iter().flatten().fold(0f64, |a, &m| a.max(m.abs()));
            let process =
                Process::ve(0.01, (2.0 * spread + 3.0 * gmm.stds.iter().cloned().fold(0.0, f64::max)).max(1.0));
            return Ok(Model::Mixture { gmm, process });
        }
        let path = Path::new(spec);
        let ck = Checkpoint::load(path)?;
        let meta = |k: &str| {
            ck.metadata.get(k).cloned().ok_or_else(|| {
                Error::Invalid(format!("{}: not a scoregen checkpoint (no '{k}' in its metadata)", path.display()))
            })
        };
        let cfg = Config::from_toml(&meta("scoregen.config")?, &format!("{} (metadata)", path.display()))?;
        let shape: Vec<usize> = serde_json::from_str(&meta("scoregen.data_shape")?)
            .map_err(|e| Error::Invalid(format!("{}: bad data_shape metadata: {e}", path.display())))?;
        if shape.is_empty() || shape.contains(&0) {
            return Err(Error::Invalid(format!(
                "{}: metadata scoregen.data_shape {shape:?} has no samples to draw (a zero or no dimension)",
                path.display()
            )));
        }
        let numel = crate::tensor::checked_numel(&shape).unwrap_or(usize::MAX);
        if numel as u128 * 4 > gpu.limits.max_storage_buffer_binding_size as u128 {
            return Err(Error::Limit(format!(
                "{}: metadata scoregen.data_shape {shape:?}: one sample is larger than this device binds",
                path.display()
            )));
        }
        let spec = cfg.model_spec(&shape)?;
        // Parameter names and shapes from the architecture; every mismatch in one error.
        let mut params = ParamStore::new();
        for p in &spec.param_specs()? {
            params.insert(p.name.clone(), Tensor::zeros(gpu, &p.shape)?);
        }
        ck.load_into(gpu, &params, &path.display().to_string())?;
        let images = ck.metadata.get("scoregen.images").map(|v| v == "true").unwrap_or(false);
        let step = ck.metadata.get("scoregen.step").and_then(|s| s.parse().ok()).unwrap_or(0);
        let moments = checkpoint_moments(&ck.metadata, spec.numel(), &path.display().to_string())?;
        Ok(Model::Trained { cfg: Box::new(cfg), spec, params, images, step, moments })
    }

    pub fn shape(&self) -> Vec<usize> {
        match self {
            Model::Trained { spec, .. } => spec.data_shape.clone(),
            Model::Mixture { gmm, .. } => vec![gmm.dim()],
        }
    }

    pub fn process(&self) -> Process {
        match self {
            Model::Trained { cfg, .. } => cfg.process().expect("validated"),
            Model::Mixture { process, .. } => process.clone(),
        }
    }

    /// Plan the score for `batch` chains.
    pub fn plan(&self, gpu: &Gpu, batch: usize, probes: Probes) -> Result<ScoreFn> {
        match self {
            Model::Trained { spec, params, images, .. } => {
                // Image samplers clip the denoised estimate D = x + sigma^2 s to the data range
                // [-1, 1] (DDPM's clip_denoised): a network far outside its training inputs can
                // otherwise send a rare trajectory off to infinity. Likelihoods use the model
                // as trained.
                let clip = *images && probes == Probes::None;
                ScoreFn::new(gpu, batch, &spec.data_shape, params, probes, |g, x, s| {
                    let mut b = Builder::new(g);
                    let score = spec.score(&mut b, x, s)?;
                    if !clip {
                        return Ok(score);
                    }
                    let xs = g.shape(x).to_vec();
                    let sig = crate::score::per_sample(g, s, &xs)?;
                    let s2 = g.unary(Unary::Square, sig);
                    let t = g.mul(score, s2)?;
                    let d = g.add(x, t)?;
                    let dc = g.unary(Unary::Clamp(-1.0, 1.0), d);
                    let r = g.sub(dc, x)?;
                    g.div(r, s2)
                })
            }
            Model::Mixture { gmm, .. } => {
                ScoreFn::new(gpu, batch, &[gmm.dim()], &ParamStore::new(), probes, |g, x, s| gmm.score_graph(g, x, s))
            }
        }
    }

    /// Sampler settings: the config's, for a checkpoint.
    pub fn sample_defaults(&self) -> crate::config::SampleConfig {
        match self {
            Model::Trained { cfg, .. } => cfg.sample.clone(),
            Model::Mixture { .. } => crate::config::SampleConfig::default(),
        }
    }

    /// The data's mean and variance per dimension (they set the sampling prior).
    pub fn moments(&self) -> Moments {
        match self {
            Model::Trained { moments, .. } => moments.clone(),
            Model::Mixture { gmm, .. } => gmm.moments(),
        }
    }

    /// Whether samples are images in [-1, 1].
    pub fn images(&self) -> bool {
        matches!(self, Model::Trained { images: true, .. })
    }
}

/// The data moments a checkpoint records: `scoregen.data_mean` (JSON list) and
/// `scoregen.data_var`, or, in checkpoints written before them, `scoregen.data_mean_square`
/// (zero mean). Checked in f32: a non-finite value would make every sample NaN.
fn checkpoint_moments(meta: &std::collections::BTreeMap<String, String>, d: usize, file: &str) -> Result<Moments> {
    let num = |key: &str| -> Result<Option<f64>> {
        meta.get(key)
            .map(|v| {
                v.trim()
                    .parse::<f64>()
                    .map_err(|_| Error::Invalid(format!("{file}: metadata {key} = '{v}' is not a number")))
            })
            .transpose()
    };
    let m = match meta.get("scoregen.data_mean") {
        Some(v) => {
            let mean: Vec<f64> = serde_json::from_str(v)
                .map_err(|_| Error::Invalid(format!("{file}: metadata scoregen.data_mean is not a list of numbers")))?;
            Moments { mean, var: num("scoregen.data_var")?.unwrap_or(0.0) }
        }
        None => Moments::centred(d, num("scoregen.data_mean_square")?.unwrap_or(0.0)),
    };
    m.check(d, &format!("{file}: metadata"))?;
    Ok(m)
}

/// What to draw.
pub struct SampleRequest {
    pub sampler: SamplerKind,
    pub steps: usize,
    pub n: usize,
    pub batch: usize,
    pub seed: u64,
    pub opts: SamplerOpts,
}

impl SampleRequest {
    pub fn from_config(s: &crate::config::SampleConfig) -> Result<Self> {
        Ok(SampleRequest {
            sampler: SamplerKind::from_name(&s.sampler)?,
            steps: s.steps,
            n: s.n,
            batch: s.batch,
            seed: s.seed,
            opts: SamplerOpts { eps: s.eps, levels: s.levels, snr: s.snr, data_var: 0.0, tol: s.tol },
        })
    }
}

/// Draw samples: [n * D] values, chains 0..n of `seed`.
pub fn draw(gpu: &Gpu, model: &Model, req: &SampleRequest, progress: &mut dyn FnMut(usize, usize)) -> Result<Vec<f32>> {
    for (name, v) in [("--n", req.n), ("--steps", req.steps), ("--batch", req.batch)] {
        if v == 0 {
            return Err(Error::Invalid(format!("{name} must be at least 1")));
        }
    }
    let d: usize = model.shape().iter().product();
    check_sample_size(req.n, d)?;
    if req.sampler == SamplerKind::Ald && req.steps < req.opts.levels {
        return Err(Error::Invalid(format!(
            "--steps {}: ALD runs sample.levels = {} noise levels and needs at least one step per level",
            req.steps, req.opts.levels
        )));
    }
    let batch = req.batch.min(req.n);
    let hint = |e: Error| match e {
        Error::Limit(m) => Error::Limit(format!("{m}; lower --batch ({batch} chains per batch now)")),
        e => e,
    };
    let f = model.plan(gpu, batch, Probes::None).map_err(hint)?;
    let moments = model.moments();
    let opts = SamplerOpts { data_var: moments.var, ..req.opts };
    let prior_mean: Vec<f32> = moments.mean.iter().map(|&m| m as f32).collect();
    if req.sampler == SamplerKind::Rk45 {
        let p = model.process();
        let prior = (&prior_mean[..], p.prior_var_with(opts.data_var).sqrt());
        let mut out = Vec::with_capacity(req.n * f.numel());
        let mut start = 0;
        while start < req.n {
            let r = crate::sample::rk45::rk45(gpu, &f, p.sigma_max(), p.sigma_min(), prior, opts.tol, req.seed, start)
                .map_err(hint)?;
            let take = (req.n - start).min(batch);
            out.extend_from_slice(&r.x[..take * f.numel()]);
            start += take;
            progress(start, req.n);
        }
        return Ok(out);
    }
    let prog = req.sampler.program(&model.process(), req.steps, &opts);
    let mut runner = Runner::new(gpu, &f, prog, req.seed).map_err(hint)?;
    runner.prior_mean = prior_mean;
    runner.sample(gpu, 0, req.n, progress).map_err(hint)
}

/// Largest sample output held in host memory: 16 GiB of f32.
pub const MAX_SAMPLE_BYTES: u128 = 16 << 30;

/// `n` samples of `d` numbers must fit in host memory before any work starts.
pub fn check_sample_size(n: usize, d: usize) -> Result<()> {
    let bytes = n as u128 * d as u128 * 4;
    if bytes > MAX_SAMPLE_BYTES {
        return Err(Error::Limit(format!(
            "--n {n}: {n} samples of {d} numbers are {:.1} GB, more than the {} GB scoregen holds in memory; draw \
             fewer per run (different --seed values give independent samples)",
            bytes as f64 / 1e9,
            MAX_SAMPLE_BYTES >> 30
        )));
    }
    Ok(())
}

/// Non-finite samples are reported, not passed over in silence: a one-line error counting them.
pub fn check_samples_finite(xs: &[f32], d: usize, out: &Path) -> Result<()> {
    let bad = crate::metrics::count_non_finite(xs, d);
    if bad > 0 {
        return Err(Error::Invalid(format!(
            "{bad} of {} samples have NaN or infinite values (written to {} all the same); try more --steps or \
             another --sampler",
            xs.len() / d.max(1),
            out.display()
        )));
    }
    Ok(())
}

/// What `write_samples` writes for a path and sample shape.
enum OutKind {
    Npy,
    /// An image grid; false: arrays of image shape whose values are not known to lie in
    /// [-1, 1] (npy data), shown over their own range.
    Grid(bool),
    Scatter,
}

fn output_kind(path: &Path, shape: &[usize], images: bool) -> Result<OutKind> {
    let d: usize = shape.iter().product();
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "npy" => Ok(OutKind::Npy),
        "png" if shape.len() == 3 && (images || shape[0] == 1 || shape[0] == 3) => Ok(OutKind::Grid(images)),
        "png" if d == 2 => Ok(OutKind::Scatter),
        "png" => Err(Error::Invalid(format!(
            "{}: a PNG needs images ([1 or 3, H, W]) or 2-D points; these samples are {shape:?}: write .npy instead",
            path.display()
        ))),
        _ => Err(Error::Invalid(format!("{}: the output must end in .png or .npy", path.display()))),
    }
}

/// Whether samples of this shape can be shown as a PNG (image grid or 2-D density plot).
pub fn png_fits(shape: &[usize], images: bool) -> bool {
    output_kind(Path::new("samples.png"), shape, images).is_ok()
}

/// Check before sampling that `write_samples` can take `path` (its format, and a folder that
/// exists), so that a long run does not end in an error with its samples lost.
pub fn check_output(path: &Path, shape: &[usize], images: bool) -> Result<()> {
    output_kind(path, shape, images)?;
    if path.is_dir() {
        return Err(Error::Invalid(format!("{}: is a folder; give a file name", path.display())));
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(Error::Invalid(format!(
            "{}: the folder {} does not exist; create it first",
            path.display(),
            dir.display()
        )));
    }
    // Writable: the samples are written through a temporary file in that folder.
    let probe = dir.join(format!(".scoregen-probe-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(Error::Io(format!("{}: cannot write in {}: {e}", path.display(), dir.display()))),
    }
}

/// Write samples to `.png` (image grid or 2-D density plot) or `.npy` ([n, ...] float32).
pub fn write_samples(path: &Path, xs: &[f32], shape: &[usize], images: bool) -> Result<()> {
    let d: usize = shape.iter().product();
    let n = xs.len() / d;
    match output_kind(path, shape, images)? {
        OutKind::Npy => {
            let mut s = vec![n];
            s.extend(shape);
            crate::data::files::write_npy(path, &s, xs)
        }
        OutKind::Grid(in_range) => {
            let cols = (n as f64).sqrt().ceil() as usize;
            if in_range {
                return crate::io::plot::image_grid(path, xs, shape, cols);
            }
            let finite = || xs.iter().copied().filter(|v| v.is_finite());
            let (lo, hi) = (finite().fold(f32::INFINITY, f32::min), finite().fold(f32::NEG_INFINITY, f32::max));
            let scale = if hi > lo { 2.0 / (hi - lo) } else { 0.0 };
            let scaled: Vec<f32> = xs.iter().map(|v| (v - lo) * scale - 1.0).collect();
            crate::io::plot::image_grid(path, &scaled, shape, cols)
        }
        OutKind::Scatter => {
            let lim = xs.iter().fold(1f32, |a, &v| if v.is_finite() { a.max(v.abs()) } else { a }).min(50.0) * 1.1;
            crate::io::plot::scatter(path, xs, lim)
        }
    }
}

/// Most data points `eval` takes for the PF-ODE likelihood.
pub const MAX_NLL_POINTS: usize = 1_000_000;

/// Figures of `eval`: (name, value, unit).
pub type Figures = Vec<(String, f64, String)>;

/// Sample quality against the data (toys with an analytic mixture: fresh ground truth, mean
/// log-density, mode fractions) and PF-ODE likelihood of `nll_n` data points.
pub fn evaluate(
    gpu: &Gpu,
    model: &Model,
    req: &SampleRequest,
    nll_n: usize,
    probes: Probes,
    cfg_dir: &Path,
) -> Result<Figures> {
    let mut out: Figures = Vec::new();
    let shape = model.shape();
    let d: usize = shape.iter().product();
    let (data, gmm) = match model {
        Model::Trained { cfg, .. } => {
            let data = Dataset::load(&cfg.data, cfg_dir)?;
            let gmm = match &data.source {
                crate::data::Source::Toy(t) => t.gmm(),
                _ => None,
            };
            (Some(data), gmm)
        }
        Model::Mixture { gmm, .. } => (None, Some(gmm.clone())),
    };
    let truth = |n: usize, seed: u64| -> Vec<f32> {
        let mut rng = HostRng::new(seed);
        match (&data, &gmm) {
            (Some(ds), _) => ds.draw(n, &mut rng),
            (None, Some(g)) => g.sample(n, &mut rng),
            _ => unreachable!(),
        }
    };
    if req.n > 0 {
        let t0 = std::time::Instant::now();
        let xs = draw(gpu, model, req, &mut |_, _| {})?;
        out.push(("sample_seconds".into(), t0.elapsed().as_secs_f64(), "s".into()));
        crate::metrics::check_finite(&xs, d, &format!("the {:?} sampler's samples", req.sampler))?;
        let gt = truth(req.n, 0xC0FFEE ^ req.seed);
        out.push(("sliced_w2".into(), crate::metrics::sliced_w2(&xs, &gt, d, 256, 1), "".into()));
        let gt2 = truth(req.n, 0xBEEF ^ req.seed);
        out.push(("sliced_w2_truth_vs_truth".into(), crate::metrics::sliced_w2(&gt2, &gt, d, 256, 1), "".into()));
        if d <= 64 {
            let m = req.n.min(2000);
            let w = crate::metrics::exact_w2(&xs[..m * d], &gt[..m * d], d)?;
            out.push((format!("exact_w2_first_{m}"), w, "".into()));
            out.push(("mmd2".into(), crate::metrics::mmd2(&xs[..m * d], &gt[..m * d], d, None), "".into()));
        }
        if let Some(g) = &gmm {
            out.push(("mean_log_density".into(), crate::metrics::mean_log_density(g, &xs), "nats".into()));
            out.push(("mean_log_density_truth".into(), crate::metrics::mean_log_density(g, &gt), "nats".into()));
            for (k, f) in crate::metrics::mode_fractions(g, &xs).iter().enumerate() {
                out.push((format!("mode_{k}_fraction"), *f, format!("(weight {:.3})", g.weights[k])));
            }
        }
    }
    if nll_n > MAX_NLL_POINTS {
        return Err(Error::Invalid(format!(
            "--nll-n {nll_n}: at most {MAX_NLL_POINTS} points (the NLL is a mean; 10,000 points give a standard error \
             near 0.01 nats)"
        )));
    }
    if nll_n > 0 {
        let mut pts = truth(nll_n, 0xDA7A);
        if model.images() {
            // Uniform dequantisation: 8-bit level k sits at k / 127.5 - 1; add U(0, 1/127.5).
            let mut rng = HostRng::new(0xDE0);
            pts.iter_mut().for_each(|v| *v += (rng.uniform() / 127.5) as f32);
        }
        let f = model.plan(gpu, nll_n.min(req.batch.max(1)), probes)?;
        let nll = crate::sample::likelihood::nll(gpu, &f, &model.process(), &pts, 100, req.seed)?;
        let mean = nll.iter().sum::<f64>() / nll.len() as f64;
        out.push(("nll".into(), mean, "nats".into()));
        if model.images() {
            out.push((
                "bpd".into(),
                crate::sample::likelihood::bits_per_dim_8bit(mean, d),
                "bits/dim (8-bit data at k/127.5 - 1, uniformly dequantised: + ln 127.5 per dim)".into(),
            ));
        } else {
            out.push((
                "nll_bits_per_dim".into(),
                mean / d as f64 / std::f64::consts::LN_2,
                "bits/dim (continuous)".into(),
            ));
        }
        if let Some(g) = &gmm {
            let sig = model.process().sigma_min();
            let exact = pts
                .chunks(d)
                .map(|p| -g.log_density(&p.iter().map(|&v| v as f64).collect::<Vec<_>>(), sig))
                .sum::<f64>()
                / nll_n as f64;
            out.push(("nll_exact_of_data_density".into(), exact, "nats".into()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_shaped_arrays_write_a_png_grid_over_their_range() {
        let dir = std::env::temp_dir().join(format!("scoregen-png-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Four 1x4x4 "images" of npy data far outside [-1, 1]: a 2x2 grid, not all one grey.
        let xs: Vec<f32> = (0..64).map(|i| 100.0 + i as f32).collect();
        let p = dir.join("g.png");
        write_samples(&p, &xs, &[1, 4, 4], false).unwrap();
        let img = image::open(&p).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (2 * 6 + 2, 2 * 6 + 2));
        let (a, b) = (img.get_pixel(2, 2)[0], img.get_pixel(2 + 6 + 3, 2 + 6 + 3)[0]);
        assert!(a < 10 && b > 245, "range not stretched: {a} {b}");
        // Two channels is no image: refused before any sampling, with the shape named.
        let e = check_output(&p, &[2, 4, 4], false).unwrap_err().to_string();
        assert!(e.contains("[2, 4, 4]") && e.contains(".npy"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
