//! W2: the 28x28 U-Net of docs/workloads.md: parameter count, training steps per
//! second at batch 64 (DSM, sigma log-uniform in [0.01, 50], Adam lr 2e-4; steps 5..25 by
//! default), forward batches per second at batch 256, and the plans' peak GPU bytes. Inputs are
//! synthetic (the figure is speed, not quality).

use super::{Figure, Report};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::graph::plan::Plan;
use crate::graph::Graph;
use crate::nn::unet::{unet, UNetConfig};
use crate::nn::{init_params, Builder};
use crate::ops::elementwise::Unary;
use crate::optim::{AdamConfig, TrainStep};
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

pub fn run(gpu: &Gpu, first: usize, last: usize, report: &Report) -> Result<()> {
    let cfg = UNetConfig::w2();
    // Training plan at batch 64.
    let b = 64;
    let mut g = Graph::new();
    let x = g.input("x", &[b, 1, 28, 28]);
    let t = g.input("t", &[b]);
    let target = g.input("target", &[b, 1, 28, 28]);
    let mut bld = Builder::new(&mut g);
    let out = unet(&mut bld, x, t, None, None, &cfg)?;
    let (specs, count) = (bld.specs.clone(), bld.count());
    let d = g.sub(out, target)?;
    let sq = g.unary(Unary::Square, d);
    let per = g.reshape(sq, &[b, 784])?;
    let per = g.sum(per, 1)?;
    let loss = g.mean_all(per)?;
    let params = init_params(gpu, &specs, 0)?;
    let step = TrainStep::new(gpu, &mut g, loss, &params, AdamConfig { lr: 2e-4, ..Default::default() })?;
    report.note(&format!("adapter: {}; W2 U-Net, {} kernels per training step", gpu.describe(), step.plan.steps));
    report.emit(Figure {
        bench: "unet",
        fields: vec![],
        imp: "scoregen".into(),
        value: count as f64,
        unit: "parameters",
    });
    report.emit(Figure {
        bench: "unet",
        fields: vec![("batch", "64".into())],
        imp: "scoregen".into(),
        value: step.plan.peak_bytes as f64,
        unit: "train plan peak bytes",
    });
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
    report.emit(Figure {
        bench: "unet",
        fields: vec![("batch", "64".into())],
        imp: "scoregen".into(),
        value: sps,
        unit: "train steps/s",
    });
    report.emit(Figure {
        bench: "unet",
        fields: vec![("batch", "64".into())],
        imp: "scoregen".into(),
        value: sps * 71.7,
        unit: "GFLOP/s",
    });
    report.emit(Figure {
        bench: "unet",
        fields: vec![("batch", "64".into())],
        imp: "scoregen/pytorch-cpu-ref".into(),
        value: sps / 2.01,
        unit: "x",
    });
    report.note(&format!("loss after {last} steps: {:.3}", step.loss().to_vec(gpu)?[0]));
    drop(step);
    // Forward-only plan at batch 256.
    let b = 256;
    let mut g = Graph::new();
    let x = g.input("x", &[b, 1, 28, 28]);
    let t = g.input("t", &[b]);
    let mut bld = Builder::new(&mut g);
    let out = unet(&mut bld, x, t, None, None, &cfg)?;
    let plan = Plan::new(gpu, &g, &[out], &params)?;
    report.emit(Figure {
        bench: "unet",
        fields: vec![("batch", "256".into())],
        imp: "scoregen".into(),
        value: plan.peak_bytes as f64,
        unit: "forward plan peak bytes",
    });
    let (xv, tv, _) = batch(&mut rng, b);
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
    report.emit(Figure {
        bench: "unet",
        fields: vec![("batch", "256".into())],
        imp: "scoregen".into(),
        value: bps,
        unit: "forward batches/s",
    });
    report.emit(Figure {
        bench: "unet",
        fields: vec![("batch", "256".into())],
        imp: "scoregen/pytorch-cpu-ref".into(),
        value: bps / 0.885,
        unit: "x",
    });
    if let Some(p) = gpu.profile_report() {
        report.note(&p);
    }
    Ok(())
}
