//! What a run keeps on disk: the checkpoint (sampling weights and the metadata that rebuilds
//! the model), the train state `--resume` needs, and the loss history, written as one
//! consistent unit.

use super::{CHECKPOINT, STATE};
use crate::config::Config;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::plan::ParamStore;
use crate::io::checkpoint::Checkpoint;
use crate::optim::TrainStep;
use crate::tensor::Tensor;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
    if let (Some(l), Some(_)) = (&data.labels, cfg.model.classes) {
        m.insert("scoregen.class_names".into(), serde_json::to_string(&l.names).unwrap());
    }
    m
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
pub(super) fn save(
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
    let opt = step.opt.cfg;
    crate::io::plot::loss_curve(&out.join("loss.png"), losses, &|s| opt.lr_at(s as u32))
}

/// Restore a run from its state file: the step it had reached and its loss history.
pub(super) fn restore(
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
