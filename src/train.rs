//! `scoregen train`: denoising score matching on the GPU. A training step (forward, loss,
//! backward, Adam, EMA, loss accumulation) is one planned submission; the host only makes the
//! next batch (data and noise levels, from (seed, step) alone) on a second thread while the GPU
//! runs, and reads the loss back asynchronously every `log_every` steps. Checkpoints are
//! written atomically; `--resume` restores weights, optimizer moments, EMA, the learning-rate
//! state and the GPU random counter, so the resumed run continues the same loss curve.

use crate::config::Config;
use crate::data::{Batcher, Dataset};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Recorder};
use crate::graph::plan::ParamStore;
use crate::graph::Graph;
use crate::io::checkpoint::Checkpoint;
use crate::nn::{init_params, Builder};
use crate::optim::{AdamConfig, TrainStep};
use crate::rng::Stream;
use crate::tensor::Tensor;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

pub const CHECKPOINT: &str = "checkpoint.safetensors";
pub const STATE: &str = "train_state.safetensors";

pub struct TrainOpts {
    pub out: PathBuf,
    /// Overrides train.steps.
    pub steps: Option<usize>,
    pub resume: bool,
    /// Progress on stderr.
    pub progress: bool,
    /// Stop after this many steps of this invocation (tests of interruption), if set.
    pub stop_after: Option<usize>,
}

pub struct TrainOutcome {
    pub step: usize,
    /// (step, mean loss over the preceding window)
    pub losses: Vec<(usize, f64)>,
    pub steps_per_sec: f64,
}

/// The metadata every checkpoint of this run carries.
pub fn metadata(cfg: &Config, data: &Dataset, step: usize, weights: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("scoregen.format".into(), "1".into());
    m.insert("scoregen.config".into(), cfg.to_toml());
    m.insert("scoregen.data_shape".into(), serde_json::to_string(&data.shape).unwrap());
    m.insert("scoregen.images".into(), data.images.to_string());
    m.insert("scoregen.data_mean".into(), serde_json::to_string(&data.moments.mean).unwrap());
    m.insert("scoregen.data_var".into(), data.moments.var.to_string());
    m.insert("scoregen.step".into(), step.to_string());
    m.insert("scoregen.weights".into(), weights.into());
    m
}

struct Pending {
    step: usize,
    buf: wgpu::Buffer,
    ready: Arc<AtomicBool>,
}

fn fmt_secs(s: f64) -> String {
    let s = s.max(0.0) as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

pub fn train(gpu: &Gpu, cfg: &Config, cfg_dir: &Path, opts: &TrainOpts) -> Result<TrainOutcome> {
    if opts.steps.unwrap_or(cfg.train.steps) == 0 {
        return Err(Error::Invalid("--steps 0 (or train.steps = 0): nothing to train; give at least 1".into()));
    }
    let data = Dataset::load(&cfg.data, cfg_dir)?;
    // Checkpoints carry the data path as found (absolute), so `eval` finds the data from anywhere.
    let mut cfg = cfg.clone();
    if let Some(p) = &cfg.data.path {
        let as_given = std::path::PathBuf::from(p);
        let found = if as_given.exists() || as_given.is_absolute() { as_given } else { cfg_dir.join(as_given) };
        if let Ok(abs) = found.canonicalize() {
            cfg.data.path = Some(abs.display().to_string());
        }
    }
    let cfg = &cfg;
    let spec = cfg.model_spec(&data.shape)?;
    let process = cfg.process();
    let t = &cfg.train;
    let total = opts.steps.unwrap_or(t.steps);
    let b = t.batch;
    // The training graph: x0 [B, ...], sigma [B] -> loss.
    let mut g = Graph::new();
    let mut xs = vec![b];
    xs.extend(&data.shape);
    let x0 = g.input("x0", &xs);
    let sigma = g.input("sigma", &[b]);
    let mut bld = Builder::new(&mut g);
    bld.training = true;
    bld.seed = Stream::Dropout.derive(t.seed);
    let loss = spec.dsm_loss(&mut bld, x0, sigma, Stream::DsmNoise.derive(t.seed))?;
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
    std::fs::create_dir_all(&opts.out)
        .map_err(|e| Error::Io(format!("{}: cannot create the output folder: {e}", opts.out.display())))?;
    // One training process per folder; temporaries of killed writers are swept.
    let _lock = crate::io::DirLock::acquire(&opts.out)?;
    crate::io::sweep_stale_temporaries(&opts.out);
    let mut start = 0usize;
    let mut losses: Vec<(usize, f64)> = Vec::new();
    let acc = Tensor::zeros(gpu, &[2])?;
    if opts.resume {
        let path = opts.out.join(STATE);
        if path.exists() {
            (start, losses) = restore(gpu, &path, cfg, &params, &step, &acc)?;
        } else if let Some(f) = [CHECKPOINT, "loss.csv"].into_iter().find(|f| opts.out.join(f).exists()) {
            // Starting afresh here would replace a run that cannot be continued.
            return Err(Error::Invalid(format!(
                "{}: --resume needs {STATE}, which is missing, but the folder holds {f} of a run; start over with \
                 --overwrite or choose another --out",
                opts.out.display()
            )));
        } else if opts.progress {
            eprintln!("note: nothing to resume in {} (no {STATE}); starting afresh", opts.out.display());
        }
    }
    if total < start {
        return Err(Error::Invalid(format!(
            "--steps {total}: the run in {} is already at step {start}; give more steps to continue it",
            opts.out.display()
        )));
    }
    if total == start {
        if opts.progress {
            eprintln!("note: the run in {} has already reached step {total}; nothing to train", opts.out.display());
        }
        return Ok(TrainOutcome { step: start, losses, steps_per_sec: 0.0 });
    }
    let zeros = Tensor::zeros(gpu, &[2])?;
    let mut rec0 = Recorder::capturing(gpu);
    let lpipe = rec0.pipeline("optim", "loss_acc", &[])?;
    rec0.dispatch_at(&lpipe, None, &[(2, acc.buffer()), (3, step.loss().buffer())], [1, 1, 1])?;
    let acc_steps = rec0.into_captured();
    let end = match opts.stop_after {
        Some(s) => (start + s).min(total),
        None => total,
    };
    let mut pending: Vec<Pending> = Vec::new();
    let t0 = Instant::now();
    let mut nan_at: Option<usize> = None;
    let log_every = t.log_every;
    let mut last_good: Option<usize> = if start > 0 { Some(start) } else { None };
    let result = std::thread::scope(|scope| -> Result<usize> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(Vec<f32>, Vec<f32>)>(2);
        let data_ref = &data;
        let proc_ref = &process;
        scope.spawn(move || {
            let mut batcher = Batcher::new(data_ref, t.seed, b);
            for k in start..end {
                let (x, mut rng) = batcher.batch(k as u64);
                let s: Vec<f32> = (0..b).map(|_| proc_ref.train_sigma(rng.uniform(), rng.uniform()) as f32).collect();
                if tx.send((x, s)).is_err() {
                    return;
                }
            }
        });
        for k in start..end {
            let (x, s) = rx.recv().map_err(|_| Error::Invalid("the data thread stopped".into()))?;
            step.plan.feed(gpu, "x0", &x)?;
            step.plan.feed(gpu, "sigma", &s)?;
            let mut rec = Recorder::new(gpu);
            step.plan.record(&mut rec);
            step.opt.record(&mut rec);
            rec.replay(&acc_steps.steps);
            // A stop before the end (stop_after) keeps the partial window in the state.
            let logging = (k + 1) % log_every == 0 || k + 1 == total;
            let readback = if logging {
                let buf = gpu.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("loss readback"),
                    size: 8,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                rec.copy(acc.buffer().buffer(), 0, &buf, 0, 8);
                rec.copy(zeros.buffer().buffer(), 0, acc.buffer().buffer(), 0, 8);
                Some(buf)
            } else {
                None
            };
            rec.submit()?;
            if let Some(buf) = readback {
                let ready = Arc::new(AtomicBool::new(false));
                let r2 = ready.clone();
                buf.slice(..).map_async(wgpu::MapMode::Read, move |r| {
                    if r.is_ok() {
                        r2.store(true, Ordering::Release)
                    }
                });
                pending.push(Pending { step: k + 1, buf, ready });
            }
            let checkpoint = (t.checkpoint_every > 0 && (k + 1) % t.checkpoint_every == 0) || k + 1 == end;
            if let Some(at) = collect(gpu, &mut pending, &mut losses, checkpoint)? {
                nan_at.get_or_insert(at);
            }
            if let Some(at) = nan_at {
                return Err(Error::Invalid(format!(
                    "training loss became {} by step {at}; stopped. {} Check the data for NaN or inf values, lower train.lr or set train.clip.",
                    losses.iter().find(|l| l.0 == at).map(|l| l.1).unwrap_or(f64::NAN),
                    match last_good {
                        Some(s) => format!("The last good checkpoint (step {s}) is kept in {}.", opts.out.display()),
                        None => "No checkpoint had been written yet.".into(),
                    }
                )));
            }
            if checkpoint {
                save(gpu, cfg, &data, &opts.out, k + 1, &params, &step, &losses, &acc)?;
                last_good = Some(k + 1);
            }
            if t.sample_every > 0 && (k + 1) % t.sample_every == 0 && k + 1 < end {
                periodic_samples(gpu, cfg, &data, &spec, &params, &step, &opts.out, k + 1)?;
            }
            if opts.progress && (logging || k + 1 == end) {
                let done = k + 1 - start;
                let sps = done as f64 / t0.elapsed().as_secs_f64().max(1e-9);
                let l = losses.last().map(|l| format!("{:.4}", l.1)).unwrap_or_else(|| "-".into());
                let width = 24;
                let filled = width * (k + 1) / total.max(1);
                eprint!(
                    "\r[{}{}] {}/{} loss {l} {:.2} steps/s ETA {}   ",
                    "#".repeat(filled),
                    " ".repeat(width - filled),
                    k + 1,
                    total,
                    sps,
                    fmt_secs((total - k - 1) as f64 / sps.max(1e-9))
                );
            }
        }
        Ok(end)
    });
    if opts.progress {
        eprintln!();
    }
    let reached = result?;
    collect(gpu, &mut pending, &mut losses, true)?;
    let sps = (reached - start) as f64 / t0.elapsed().as_secs_f64().max(1e-9);
    Ok(TrainOutcome { step: reached, losses, steps_per_sec: sps })
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
    };
    let mut req = cfg.sample.request();
    req.n = req.n.min(if data.images { 64 } else { 1000 });
    let xs = crate::sample::draw(gpu, &model, &req, &mut |_, _| {})?;
    // A PNG where the samples can be shown as one, else the array.
    let ext = if crate::io::samples::png_fits(&data.shape, data.images) { "png" } else { "npy" };
    crate::io::samples::write_samples(&out.join(format!("samples_{at:07}.{ext}")), &xs, &data.shape, data.images)
}

/// The weights samples should use: the EMA where there is one.
pub fn sampling_weights(params: &ParamStore, step: &TrainStep) -> (ParamStore, &'static str) {
    if step.opt.cfg.ema_decay.is_some() {
        let ema = params.keys().map(|k| (k.clone(), step.opt.ema(k).unwrap_or(&params[k]).clone())).collect();
        (ema, "ema")
    } else {
        (params.clone(), "raw")
    }
}

fn losses_path(out: &Path) -> PathBuf {
    out.join("loss.csv")
}

fn read_losses(out: &Path) -> Result<Vec<(usize, f64)>> {
    let Ok(text) = std::fs::read_to_string(losses_path(out)) else { return Ok(Vec::new()) };
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut it = l.split(',');
            Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
        })
        .collect())
}

#[allow(clippy::too_many_arguments)]
fn save(
    gpu: &Gpu,
    cfg: &Config,
    data: &Dataset,
    out: &Path,
    at: usize,
    params: &ParamStore,
    step: &TrainStep,
    losses: &[(usize, f64)],
    acc: &Tensor,
) -> Result<()> {
    // Non-finite weights never replace a good checkpoint (the loss is only read every
    // log_every steps, so a NaN can reach the weights between two readings).
    let (w, kind) = sampling_weights(params, step);
    let ck = Checkpoint::from_params(gpu, &w, metadata(cfg, data, at, kind))?;
    if let Some((name, _)) = ck.tensors.iter().find(|(_, (_, v))| v.iter().any(|x| !x.is_finite())) {
        return Err(Error::Invalid(format!(
            "training produced non-finite weights ({name}) by step {at}; stopped without writing them. Check the \
             data for NaN or inf values, lower train.lr or set train.clip"
        )));
    }
    // Resume state first, then the sampling checkpoint: both name the same step. The state
    // holds the loss history and the partial loss window too, so a resumed run's loss.csv is
    // the uninterrupted run's whatever happened after the state was written.
    let mut st = Checkpoint::from_params(gpu, &BTreeMap::new(), metadata(cfg, data, at, "state"))?;
    st.tensors.insert("loss_acc".into(), (vec![2], acc.to_vec(gpu)?));
    // (step, f64 loss) as raw bits in f32 slots: the text of loss.csv must come back exactly.
    let bits = |u: u64| [f32::from_bits(u as u32), f32::from_bits((u >> 32) as u32)];
    let hist: Vec<f32> = losses.iter().flat_map(|&(s, l)| [bits(s as u64), bits(l.to_bits())]).flatten().collect();
    st.tensors.insert("loss_history".into(), (vec![losses.len(), 4], hist));
    for (name, p) in params {
        st.tensors.insert(format!("param/{name}"), (p.shape().to_vec(), p.to_vec(gpu)?));
        let (m, v) = step.opt.moments(name).ok_or_else(|| Error::Invalid(format!("no moments for {name}")))?;
        st.tensors.insert(format!("adam_m/{name}"), (m.shape().to_vec(), m.to_vec(gpu)?));
        st.tensors.insert(format!("adam_v/{name}"), (v.shape().to_vec(), v.to_vec(gpu)?));
        if let Some(e) = step.opt.ema(name) {
            st.tensors.insert(format!("ema/{name}"), (e.shape().to_vec(), e.to_vec(gpu)?));
        }
    }
    st.tensors.insert("optim_state".into(), (vec![4], step.opt.state.to_vec(gpu)?));
    st.tensors.insert("plan_replays".into(), (vec![1], step.plan.replays.to_vec(gpu)?));
    st.save(&out.join(STATE))?;
    ck.save(&out.join(CHECKPOINT))?;
    let mut csv = String::from("step,loss\n");
    for (s, l) in losses {
        csv.push_str(&format!("{s},{l}\n"));
    }
    crate::io::write_atomic(&losses_path(out), csv.as_bytes())?;
    crate::io::plot::loss_curve(&out.join("loss.png"), losses)
}

/// Restore a run from its state file: the step it had reached and its loss history.
fn restore(
    gpu: &Gpu,
    path: &Path,
    cfg: &Config,
    params: &ParamStore,
    step: &TrainStep,
    acc: &Tensor,
) -> Result<(usize, Vec<(usize, f64)>)> {
    let st = Checkpoint::load(path)?;
    let saved = st.metadata.get("scoregen.config").cloned().unwrap_or_default();
    let saved = Config::from_toml(&saved, &format!("{} (metadata)", path.display()))?;
    if saved.model != cfg.model || saved.data != cfg.data || saved.process != cfg.process {
        return Err(Error::Invalid(format!(
            "{}: saved by a run with a different model, data or process; use another --out or the same config",
            path.display()
        )));
    }
    let put = |name: &str, t: &Tensor| -> Result<()> {
        let (shape, v) = st
            .tensors
            .get(name)
            .ok_or_else(|| Error::Invalid(format!("{}: missing tensor '{name}'", path.display())))?;
        if shape.as_slice() != t.shape() {
            return Err(Error::Shape(format!(
                "{}: '{name}' is {shape:?}, the model wants {:?}",
                path.display(),
                t.shape()
            )));
        }
        gpu.queue.write_buffer(t.buffer().buffer(), 0, bytemuck::cast_slice(v));
        Ok(())
    };
    for (name, p) in params {
        put(&format!("param/{name}"), p)?;
        let (m, v) = step.opt.moments(name).unwrap();
        put(&format!("adam_m/{name}"), m)?;
        put(&format!("adam_v/{name}"), v)?;
        if let Some(e) = step.opt.ema(name) {
            put(&format!("ema/{name}"), e)?;
        }
    }
    put("optim_state", &step.opt.state)?;
    put("plan_replays", &step.plan.replays)?;
    let at: usize = st
        .metadata
        .get("scoregen.step")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::Invalid(format!("{}: no step in the metadata", path.display())))?;
    // States written before the loss history was kept: the window restarts, loss.csv is read.
    if st.tensors.contains_key("loss_acc") {
        put("loss_acc", acc)?;
    }
    let losses = match st.tensors.get("loss_history") {
        Some((_, v)) => {
            let u = |lo: f32, hi: f32| lo.to_bits() as u64 | (hi.to_bits() as u64) << 32;
            v.chunks_exact(4).map(|p| (u(p[0], p[1]) as usize, f64::from_bits(u(p[2], p[3])))).collect()
        }
        None => read_losses(path.parent().unwrap_or(Path::new(".")))?.into_iter().filter(|l| l.0 <= at).collect(),
    };
    Ok((at, losses))
}
