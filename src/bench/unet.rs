//! W2: the 28x28 U-Net of docs/workloads.md: parameter count, training steps per
//! second at batch 64 (DSM, sigma log-uniform in [0.01, 50], Adam lr 2e-4; steps 5..25 by
//! default), forward batches per second at batch 256, and the plans' peak GPU bytes. Inputs are
//! synthetic (the figure is speed, not quality). `--config`: the U-Net of a training config's
//! `[model]` instead, at its `train.batch` (no label input; the label table is one row's add).

use super::{Figure, Report};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::plan::ParamStore;
use crate::graph::plan::Plan;
use crate::graph::Graph;
use crate::nn::unet::{unet, UNetConfig};
use crate::nn::{init_params, Builder};
use crate::ops::elementwise::Unary;
use crate::optim::{AdamConfig, TrainStep};
use crate::score::NetworkKind;
use std::time::Instant;

fn batch(rng: &mut crate::rng::SplitMix64, b: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut u = || rng.open_unit_24();
    let (mut x, mut t, mut target) = (Vec::with_capacity(b * 784), Vec::with_capacity(b), Vec::with_capacity(b * 784));
    for _ in 0..b {
        let sigma = (0.01f64.ln() + u() * (50f64.ln() - 0.01f64.ln())).exp();
        t.push((sigma.ln() / 4.0) as f32);
        for p in 0..784 {
            let x0 = if (p / 28 + p % 28) % 7 < 3 { 1.0 } else { -1.0 }; // a fixed stripe image
            let z = (-2.0 * u().ln()).sqrt() * (2.0 * std::f64::consts::PI * u()).cos();
            x.push((x0 + sigma * z) as f32);
            target.push(-z as f32);
        }
    }
    (x, t, target)
}

/// One W2 figure at `batch` (None: no batch field).
fn fig(report: &Report, batch: Option<usize>, imp: &str, value: f64, unit: &'static str) {
    let fields = batch.map(|b| vec![("batch", b.to_string())]).unwrap_or_default();
    report.emit(Figure { bench: "unet", fields, imp: imp.into(), value, unit });
}

/// Training: steps first..last of batch 64 timed (parameter count, plan bytes, steps/s).
fn train_figures(gpu: &Gpu, net: &Net, (first, last): (usize, usize), report: &Report) -> Result<ParamStore> {
    let (cfg, b) = (&net.cfg, net.batch);
    let mut g = Graph::new();
    let x = g.input("x", &[b, 1, 28, 28]);
    let t = g.input("t", &[b]);
    let target = g.input("target", &[b, 1, 28, 28]);
    let mut bld = Builder::new(&mut g);
    let out = unet(&mut bld, x, t, None, None, cfg)?;
    let (specs, count) = (bld.specs.clone(), bld.count());
    let d = g.sub(out, target)?;
    let sq = g.unary(Unary::Square, d);
    let per = g.reshape(sq, &[b, 784])?;
    let per = g.sum(per, 1)?;
    let loss = g.mean_all(per)?;
    let params = init_params(gpu, &specs, 0)?;
    let step = TrainStep::new(gpu, &mut g, loss, &params, AdamConfig { lr: 2e-4, ..Default::default() })?;
    report.note(&format!("adapter: {}; {}, {} kernels per training step", gpu.describe(), net.name, step.plan.steps));
    fig(report, None, "scoregen", count as f64, "parameters");
    fig(report, Some(b), "scoregen", step.plan.peak_bytes as f64, "train plan peak bytes");
    let mut rng = crate::rng::SplitMix64::new(1);
    let mut t0 = Instant::now();
    for i in 0..last {
        if i == first {
            gpu.wait()?;
            t0 = Instant::now();
        }
        let (xv, tv, tg) = batch(&mut rng, b);
        step.plan.feed(gpu, "x", &xv)?;
        step.plan.feed(gpu, "t", &tv)?;
        step.plan.feed(gpu, "target", &tg)?;
        step.run(gpu, 1)?;
    }
    gpu.wait()?;
    let sps = (last - first) as f64 / t0.elapsed().as_secs_f64();
    fig(report, Some(b), "scoregen", sps, "train steps/s");
    if net.w2 {
        fig(report, Some(b), "scoregen", sps * 71.7, "GFLOP/s");
        fig(report, Some(b), "scoregen/pytorch-cpu-ref", sps / 2.01, "x");
    }
    report.note(&format!("loss after {last} steps: {:.3}", step.loss().to_vec(gpu)?[0]));
    Ok(params)
}

/// Inference: the forward plan at batch 256 (plan bytes, batches/s).
fn forward_figures(gpu: &Gpu, net: &Net, params: &ParamStore, report: &Report) -> Result<()> {
    let cfg = &net.cfg;
    let b = 256;
    let mut g = Graph::new();
    let x = g.input("x", &[b, 1, 28, 28]);
    let t = g.input("t", &[b]);
    let mut bld = Builder::new(&mut g);
    let out = unet(&mut bld, x, t, None, None, cfg)?;
    let plan = Plan::new(gpu, &g, &[out], params)?;
    fig(report, Some(b), "scoregen", plan.peak_bytes as f64, "forward plan peak bytes");
    let (xv, tv, _) = batch(&mut crate::rng::SplitMix64::new(2), b);
    plan.feed(gpu, "x", &xv)?;
    plan.feed(gpu, "t", &tv)?;
    plan.run(gpu)?;
    gpu.wait()?;
    let reps = 3;
    let t0 = Instant::now();
    for _ in 0..reps {
        plan.run(gpu)?;
    }
    gpu.wait()?;
    let bps = reps as f64 / t0.elapsed().as_secs_f64();
    fig(report, Some(b), "scoregen", bps, "forward batches/s");
    if net.w2 {
        fig(report, Some(b), "scoregen/pytorch-cpu-ref", bps / 0.885, "x");
    }
    Ok(())
}

/// The U-Net timed: W2's, or a config's at its training batch.
struct Net {
    cfg: UNetConfig,
    batch: usize,
    name: String,
    w2: bool,
}

/// Run the benchmark, printing its figures: W2's U-Net, or `config`'s (a training config whose
/// model is a U-Net of 28x28 single-channel images).
pub fn run(gpu: &Gpu, first: usize, last: usize, config: Option<(&str, &Config)>, report: &Report) -> Result<()> {
    let net = match config {
        None => Net { cfg: UNetConfig::w2(), batch: 64, name: "W2 U-Net".into(), w2: true },
        Some((file, c)) => {
            if c.model.network != NetworkKind::Unet {
                return Err(Error::Invalid(format!("--config {file}: model.network is not \"unet\"")));
            }
            let cfg = c.model.unet(&[1, 28, 28], None).map_err(|e| Error::Invalid(format!("--config {file}: {e}")))?;
            Net { cfg, batch: c.train.batch, name: format!("the U-Net of {file}"), w2: false }
        }
    };
    let params = train_figures(gpu, &net, (first, last), report)?;
    forward_figures(gpu, &net, &params, report)?;
    if let Some(p) = gpu.profile_report() {
        report.note(&p);
    }
    Ok(())
}
