//! `scoregen train`: score matching on the GPU (DSM, SSM, ESM or NCE: `score::objective`). A
//! training step (forward, loss, backward, Adam, EMA, loss accumulation) is one planned submission; the host only makes the
//! next batch (data and noise levels, from (seed, step) alone) on a second thread while the GPU
//! runs, and reads the loss back asynchronously every `log_every` steps. Checkpoints are
//! written atomically; `--resume` restores weights, optimizer moments, EMA, the learning-rate
//! state and the GPU random counter, so the resumed run continues the same loss curve.

use crate::config::Config;
use crate::data::{Batcher, Dataset};
use crate::dist::Gaussian;
use crate::error::{Error, Result};
use crate::gpu::{Captured, Gpu, Recorder};
use crate::graph::plan::ParamStore;
use crate::graph::Graph;
use crate::nn::{init_params, Builder};
use crate::ops::kernels::slots::optim as O;
use crate::optim::{AdamConfig, TrainStep};
use crate::rng::Stream;
use crate::score::objective::{esm_bound_message, Nce, ESM_MAX_DIM};
use crate::score::{Loss, NceNoise, Objective};
use crate::tensor::Tensor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

pub mod retrieval;
mod state;

pub use state::{metadata, sampling_weights};
use state::{restore, save};

/// The checkpoint's file name in a run folder.
pub const CHECKPOINT: &str = "checkpoint.safetensors";
/// The resumable state's file name in a run folder.
pub const STATE: &str = "train_state.safetensors";

/// How `train` runs.
pub struct TrainOpts {
    /// The run folder.
    pub out: PathBuf,
    /// Overrides train.steps.
    pub steps: Option<usize>,
    /// Continue the run in `out` from its state.
    pub resume: bool,
    /// Progress on stderr.
    pub progress: bool,
    /// Stop after this many steps of this invocation (tests of interruption), if set.
    pub stop_after: Option<usize>,
}

/// Mixed into the run's seed for the data drawn beside samples (`Dataset::reference`).
const REFERENCE_SEED: u64 = 0x7e57;

/// What a training run reached.
pub struct TrainOutcome {
    /// The step reached.
    pub step: usize,
    /// (step, mean loss over the preceding window)
    pub losses: Vec<(usize, f64)>,
    /// Training speed of this invocation.
    pub steps_per_sec: f64,
    /// For 2-D data: `sample.n` points of the data, titled, to draw beside samples
    /// (`Dataset::reference`).
    pub reference: Option<(String, Vec<f32>)>,
}

/// One training batch from the data thread: x0, sigma, the one-hot labels (conditional models
/// and classifiers) and the context tokens (retrieval-conditioned models).
type Batch = (Vec<f32>, Vec<f32>, Option<Vec<f32>>, Option<Vec<f32>>);

struct Pending {
    step: usize,
    buf: wgpu::Buffer,
    ready: Arc<AtomicBool>,
}

/// The config as the checkpoints carry it: the data path as found (absolute), so `eval` finds
/// the data from anywhere.
fn with_absolute_data_path(cfg: &Config, cfg_dir: &Path) -> Config {
    let mut cfg = cfg.clone();
    for p in [&mut cfg.data.path, &mut cfg.data.labels].into_iter().flatten() {
        let as_given = std::path::PathBuf::from(&*p);
        let found = if as_given.exists() || as_given.is_absolute() { as_given } else { cfg_dir.join(as_given) };
        if let Ok(abs) = found.canonicalize() {
            *p = abs.display().to_string();
        }
    }
    cfg
}

/// model.classes against the data's labels: the data must have labels, all of them below it.
pub fn check_classes(cfg: &Config, data: &Dataset) -> Result<()> {
    let Some(k) = cfg.model.classes else { return Ok(()) };
    let have = data.classes();
    if have == 0 {
        let how = match cfg.data.source {
            crate::data::SourceKind::Toy => {
                "use a mixture toy (ring8, ncsn, du-ring), whose components are the classes"
            }
            crate::data::SourceKind::Images => "put the images in one subfolder per class",
            _ => "set data.labels = \"FILE\" (an idx label file or an integer .npy)",
        };
        return Err(Error::Invalid(format!("model.classes = {k}: the data have no labels; {how}")));
    }
    if have > k {
        return Err(Error::Invalid(format!(
            "model.classes = {k}: the data's labels have {have} classes; set model.classes = {have}"
        )));
    }
    Ok(())
}

/// The loss the config names, for these data (NCE: its Gaussian noise fitted to 20,000 points
/// of the data noised at the level; ESM: refused above its dimension bound).
pub fn loss_of(cfg: &Config, data: &Dataset, spec: &crate::score::ModelSpec) -> Result<Loss> {
    let t = &cfg.train;
    Ok(match t.objective {
        Objective::Dsm => Loss::Dsm,
        Objective::Ssm | Objective::SsmVr => Loss::Sliced {
            projections: t.projections.unwrap_or(1),
            dist: t.projection.unwrap_or_default(),
            vr: t.objective == Objective::SsmVr,
        },
        Objective::Esm if spec.numel() > ESM_MAX_DIM => return Err(Error::Invalid(esm_bound_message(spec.numel()))),
        Objective::Esm => Loss::Exact,
        Objective::Nce => {
            let sigma = cfg.process().sigma_min();
            let mut rng = crate::rng::HostRng::stream(t.seed, Stream::NceFit);
            let xs = data.draw(20_000, &mut rng);
            let diagonal = t.nce_noise == Some(NceNoise::Diagonal);
            let noise = Gaussian::fit(&xs, data.numel(), sigma * sigma, diagonal).map_err(|e| {
                Error::Invalid(format!(
                    "train.objective = \"nce\": no Gaussian noise fits the data: {e}; raise process.sigma_min (sigma^2 \
                     regularises the covariance) or set train.nce_noise = \"diagonal\""
                ))
            })?;
            Loss::Nce(Nce { sigma, ratio: t.nce_ratio.unwrap_or(1), noise })
        }
    })
}

/// The training graph (x0 [B, ...], sigma [B] -> the objective's loss), its parameters initialised from
/// the seed, and the planned step with Adam.
fn objective(
    gpu: &Gpu,
    cfg: &Config,
    data: &Dataset,
    spec: &crate::score::ModelSpec,
    total: usize,
) -> Result<(ParamStore, TrainStep)> {
    let t = &cfg.train;
    let mut g = Graph::new();
    let mut xs = vec![t.batch];
    xs.extend(&spec.data_shape);
    let x0 = g.input("x0", &xs);
    let sigma = g.input("sigma", &[t.batch]);
    let label = spec.classes.map(|k| g.input("label", &[t.batch, k + 1]));
    let context = spec.context.map(|c| g.input("context", &[t.batch, c.tokens, c.dim]));
    let mut bld = Builder::new(&mut g);
    bld.label = label;
    bld.context = context;
    bld.training = true;
    bld.seed = Stream::Dropout.derive(t.seed);
    let loss = spec.loss(&mut bld, x0, sigma, &loss_of(cfg, data, spec)?, Stream::DsmNoise.derive(t.seed))?;
    let specs = bld.specs.clone();
    let params = init_params(gpu, &specs, Stream::Init.derive(t.seed))?;
    let adam = AdamConfig {
        lr: t.lr,
        warmup_steps: t.warmup,
        total_steps: if t.cosine { total as u32 } else { 0 },
        lr_min: t.lr_min,
        clip_norm: t.clip,
        ema_decay: t.ema,
        ..AdamConfig::default()
    };
    let step = TrainStep::new(gpu, &mut g, loss, &params, adam)?;
    Ok((params, step))
}

/// Where the run starts: step 0, or the saved state with `--resume` (weights, optimizer, loss
/// accumulator restored in place). Refuses to start afresh over a run that cannot be resumed.
fn starting_point(
    gpu: &Gpu,
    cfg: &Config,
    opts: &TrainOpts,
    params: &ParamStore,
    step: &TrainStep,
    acc: &Tensor,
) -> Result<(usize, Vec<(usize, f64)>)> {
    if !opts.resume {
        return Ok((0, Vec::new()));
    }
    let path = opts.out.join(STATE);
    if path.exists() {
        return restore(gpu, &path, cfg, params, step, acc);
    }
    if let Some(f) = [CHECKPOINT, "loss.csv"].into_iter().find(|f| opts.out.join(f).exists()) {
        // Starting afresh here would replace a run that cannot be continued.
        return Err(Error::Invalid(format!(
            "{}: --resume needs {STATE}, which is missing, but the folder holds {f} of a run; start over with \
             --overwrite or choose another --out",
            opts.out.display()
        )));
    }
    if opts.progress {
        eprintln!("note: nothing to resume in {} (no {STATE}); starting afresh", opts.out.display());
    }
    Ok((0, Vec::new()))
}

/// Whether a run at `start` has steps left to reach `total`: an error below it, a note at it.
fn steps_left(start: usize, total: usize, opts: &TrainOpts) -> Result<bool> {
    if total < start {
        return Err(Error::Invalid(format!(
            "--steps {total}: the run in {} is already at step {start}; give more steps to continue it",
            opts.out.display()
        )));
    }
    if total == start && opts.progress {
        eprintln!("note: the run in {} has already reached step {total}; nothing to train", opts.out.display());
    }
    Ok(total > start)
}

/// The one-line error of a NaN stop.
fn nan_stop(at: usize, losses: &[(usize, f64)], last_good: Option<usize>, out: &Path) -> Error {
    Error::Invalid(format!(
        "training loss became {} by step {at}; stopped. {} Check the data for NaN or inf values, lower train.lr or \
         set train.clip.",
        losses.iter().find(|l| l.0 == at).map(|l| l.1).unwrap_or(f64::NAN),
        match last_good {
            Some(s) => format!("The last good checkpoint (step {s}) is kept in {}.", out.display()),
            None => "No checkpoint had been written yet.".into(),
        }
    ))
}

/// One step's submission: the planned forward/backward, the optimizer, the loss accumulation,
/// and with `log`, the accumulated window copied out (and reset) for an asynchronous read.
fn submit_step(
    gpu: &Gpu,
    step: &TrainStep,
    acc_steps: &Captured,
    acc: &Tensor,
    zeros: &Tensor,
    log: bool,
) -> Result<Option<wgpu::Buffer>> {
    let mut rec = Recorder::new(gpu);
    step.plan.record(&mut rec);
    step.opt.record(&mut rec);
    rec.replay(&acc_steps.steps);
    let readback = log.then(|| {
        let buf = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("loss readback"),
            size: 8,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        rec.copy(acc.buffer().buffer(), 0, &buf, 0, 8);
        rec.copy(zeros.buffer().buffer(), 0, acc.buffer().buffer(), 0, 8);
        buf
    });
    rec.submit()?;
    Ok(readback)
}

fn pending_read(buf: wgpu::Buffer, step: usize) -> Pending {
    let ready = Arc::new(AtomicBool::new(false));
    let r2 = ready.clone();
    buf.slice(..).map_async(wgpu::MapMode::Read, move |r| {
        if r.is_ok() {
            r2.store(true, Ordering::Release)
        }
    });
    Pending { step, buf, ready }
}

/// Train `cfg` (relative data paths from `cfg_dir`) into `opts.out`, resuming if asked.
pub fn train(gpu: &Gpu, cfg: &Config, cfg_dir: &Path, opts: &TrainOpts) -> Result<TrainOutcome> {
    if opts.steps.unwrap_or(cfg.train.steps) == 0 {
        return Err(Error::Invalid("--steps 0 (or train.steps = 0): nothing to train; give at least 1".into()));
    }
    let data = Dataset::load(&cfg.data, cfg_dir)?;
    let mut cfg = with_absolute_data_path(cfg, cfg_dir);
    let (data, context) = retrieval::prepare(gpu, &mut cfg, data, cfg_dir, &opts.out)?;
    let cfg = &cfg;
    check_classes(cfg, &data)?;
    let spec = cfg.model_spec(&data.shape)?;
    let t = &cfg.train;
    let total = opts.steps.unwrap_or(t.steps);
    if let (Some(e), true) = (t.ema, opts.progress) {
        // The EMA starts at the initial weights, which still weigh e^steps at the end.
        let left = (e as f64).powi(total.min(i32::MAX as usize) as i32);
        if left > 0.05 {
            eprintln!(
                "note: train.ema = {e} over {total} steps: the averaged weights that samples use still hold {:.0}% of \
                 the initial ones; lower train.ema (or train longer)",
                100.0 * left
            );
        }
    }
    let (params, step) = objective(gpu, cfg, &data, &spec, total)?;
    std::fs::create_dir_all(&opts.out)
        .map_err(|e| Error::io(format!("{}: cannot create the output folder", opts.out.display()), e))?;
    // One training process per folder; temporaries of killed writers are swept.
    let _lock = crate::io::DirLock::acquire(&opts.out)?;
    crate::io::sweep_stale_temporaries(&opts.out);
    let acc = Tensor::zeros(gpu, &[2])?;
    let (start, mut losses) = starting_point(gpu, cfg, opts, &params, &step, &acc)?;
    if !steps_left(start, total, opts)? {
        return Ok(TrainOutcome { step: start, losses, steps_per_sec: 0.0, reference: None });
    }
    let zeros = Tensor::zeros(gpu, &[2])?;
    let mut rec0 = Recorder::capturing(gpu);
    let lpipe = rec0.pipeline("optim", "loss_acc", &[])?;
    rec0.dispatch_at(&lpipe, None, &[(O::W, acc.buffer()), (O::G, step.loss().buffer())], [1, 1, 1])?;
    let acc_steps = rec0.into_captured();
    let end = opts.stop_after.map(|s| (start + s).min(total)).unwrap_or(total);
    let mut pending: Vec<Pending> = Vec::new();
    let t0 = Instant::now();
    let mut bar = opts.progress.then(|| crate::progress::Progress::new("train", total as u64));
    let mut last_good: Option<usize> = (start > 0).then_some(start);
    let process = cfg.process();
    let result = std::thread::scope(|scope| -> Result<usize> {
        // The next batches (data and noise levels, from (seed, step) alone) on a second thread.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(2);
        let (data_ref, proc_ref, ctx_ref, b) = (&data, &process, &context, t.batch);
        let (classes, drop) = (spec.classes, cfg.label_dropout());
        scope.spawn(move || {
            let mut batcher = Batcher::new(data_ref, t.seed, b);
            for k in start..end {
                let crate::data::Drawn { x, labels: y, rows, mut rng } = batcher.batch(k as u64);
                let s: Vec<f32> = (0..b).map(|_| proc_ref.train_sigma(rng.uniform(), rng.uniform()) as f32).collect();
                // Labels after the levels, so an unconditional run's batches are unchanged.
                let y = classes.zip(y).map(|(c, y)| {
                    let kept: Vec<Option<u32>> =
                        y.into_iter().map(|l| (rng.uniform() >= drop as f64).then_some(l)).collect();
                    crate::data::labels::one_hot(&kept, c)
                });
                let c = ctx_ref.as_ref().zip(rows).map(|(c, rows)| c.tokens(&rows, &mut rng));
                if tx.send((x, s, y, c)).is_err() {
                    return;
                }
            }
        });
        for k in start..end {
            let (x, s, y, c) = rx.recv().map_err(|_| Error::Invalid("the data thread stopped".into()))?;
            step.plan.feed(gpu, "x0", &x)?;
            step.plan.feed(gpu, "sigma", &s)?;
            if let Some(y) = y {
                step.plan.feed(gpu, "label", &y)?;
            }
            if let Some(c) = c {
                step.plan.feed(gpu, "context", &c)?;
            }
            // A stop before the end (stop_after) keeps the partial window in the state.
            let logging = (k + 1) % t.log_every == 0 || k + 1 == total;
            if let Some(buf) = submit_step(gpu, &step, &acc_steps, &acc, &zeros, logging)? {
                pending.push(pending_read(buf, k + 1));
            }
            let checkpoint = (t.checkpoint_every > 0 && (k + 1) % t.checkpoint_every == 0) || k + 1 == end;
            if let Some(at) = collect(gpu, &mut pending, &mut losses, checkpoint)? {
                return Err(nan_stop(at, &losses, last_good, &opts.out));
            }
            if checkpoint {
                save(gpu, cfg, &data, &opts.out, k + 1, &params, &step, &losses, &acc)?;
                last_good = Some(k + 1);
            }
            if t.sample_every > 0 && (k + 1) % t.sample_every == 0 && k + 1 < end && !spec.is_classifier() {
                periodic_samples(gpu, cfg, &data, &spec, &params, &step, &opts.out, k + 1)?;
            }
            if let (Some(bar), true) = (&mut bar, logging || k + 1 == end) {
                let l = losses.last().map(|l| format!("loss {:.4}", l.1)).unwrap_or_default();
                bar.set(k as u64 + 1, &l);
            }
        }
        Ok(end)
    });
    drop(bar);
    let reached = result?;
    collect(gpu, &mut pending, &mut losses, true)?;
    let sps = (reached - start) as f64 / t0.elapsed().as_secs_f64().max(1e-9);
    let reference = data.reference(cfg.sample.n, cfg.train.seed ^ REFERENCE_SEED);
    Ok(TrainOutcome { step: reached, losses, steps_per_sec: sps, reference })
}

/// Gather finished loss readbacks (waiting for all when `block`); the first step whose
/// window mean is not finite, if any.
fn collect(
    gpu: &Gpu,
    pending: &mut Vec<Pending>,
    losses: &mut Vec<(usize, f64)>,
    block: bool,
) -> Result<Option<usize>> {
    if block && !pending.is_empty() {
        gpu.wait()?;
    } else {
        let _ = gpu.device.poll(wgpu::PollType::Poll);
    }
    let mut bad = None;
    while pending.first().map(|p| p.ready.load(Ordering::Acquire)).unwrap_or(false) {
        let p = pending.remove(0);
        let v = {
            let view = p.buf.slice(..).get_mapped_range().map_err(|e| Error::Gpu(format!("loss readback: {e}")))?;
            let f: &[f32] = bytemuck::cast_slice(&view);
            f[0] as f64 / f[1].max(1.0) as f64
        };
        if !v.is_finite() && bad.is_none() {
            bad = Some(p.step);
        }
        losses.push((p.step, v));
    }
    Ok(bad)
}

/// Samples of the current (EMA) weights during training: DIR/samples_<step>.png with the
/// config's sampler (at most 1,000 points, or 64 images).
#[allow(clippy::too_many_arguments)]
fn periodic_samples(
    gpu: &Gpu,
    cfg: &Config,
    data: &Dataset,
    spec: &crate::score::ModelSpec,
    params: &ParamStore,
    step: &TrainStep,
    out: &Path,
    at: usize,
) -> Result<()> {
    let (w, _) = sampling_weights(params, step);
    let model = crate::model::Trained {
        spec: spec.clone(),
        params: w,
        process: cfg.process(),
        moments: data.moments.clone(),
        images: data.images,
        log_z: None,
        class_names: Vec::new(),
    };
    let mut req = cfg.sample.request();
    req.n = req.n.min(if data.images { 64 } else { 1000 });
    req.conditions = crate::model::guide::unconditional(&model)?;
    let xs = crate::sample::draw(gpu, &model, &req, &mut |_, _| {})?;
    // A PNG where the samples can be shown as one, else the array.
    let ext = if crate::io::samples::png_fits(&data.shape, data.images) { "png" } else { "npy" };
    let reference = data.reference(req.n, cfg.train.seed ^ REFERENCE_SEED);
    let reference = reference.as_ref().map(|(t, r)| (t.as_str(), r.as_slice()));
    let path = out.join(format!("samples_{at:07}.{ext}"));
    crate::io::samples::write_samples_with(&path, &xs, &data.shape, data.images, None, reference)
}
