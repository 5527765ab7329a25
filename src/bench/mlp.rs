//! W1 training step: the score MLP of docs/workloads.md (3 -> 256 -> 256 -> 256 -> 2,
//! SiLU), denoising score matching with lambda(sigma) = sigma^2, Adam lr 1e-3, batch 4096.
//! The batch (noisy points, noise, log sigma feature) is made on the host and uploaded; the
//! forward pass, loss, backward pass and Adam update replay as one submission per step.

use super::{Figure, Report};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::graph::Graph;
use crate::nn::{init_params, mlp, Builder};
use crate::ops::elementwise::Unary;
use crate::optim::{AdamConfig, TrainStep};
use std::time::Instant;

/// FLOPs of one W1 training step at batch `b` (forward 2*params*b, backward twice that).
pub fn w1_flops(b: usize) -> f64 {
    let macs = 3 * 256 + 256 * 256 * 2 + 256 * 2;
    6.0 * macs as f64 * b as f64
}

/// One batch of W1's DSM objective: (features [b, 3], target -z [b, 2]).
pub fn w1_batch(rng: &mut crate::rng::SplitMix64, b: usize) -> (Vec<f32>, Vec<f32>) {
    let mut u = || rng.open_unit_24();
    let mut feat = Vec::with_capacity(3 * b);
    let mut target = Vec::with_capacity(2 * b);
    for _ in 0..b {
        // 8 Gaussians on a circle of radius 4, std 0.3
        let k = (u() * 8.0).floor();
        let ang = k * std::f64::consts::PI / 4.0;
        let mut gauss = || (-2.0 * u().ln()).sqrt() * (2.0 * std::f64::consts::PI * u()).cos();
        let (x0, x1) = (4.0 * ang.cos() + 0.3 * gauss(), 4.0 * ang.sin() + 0.3 * gauss());
        let (z0, z1) = (gauss(), gauss());
        let sigma = (0.01f64.ln() + u() * (10.0f64.ln() - 0.01f64.ln())).exp();
        feat.extend([(x0 + sigma * z0) as f32, (x1 + sigma * z1) as f32, (sigma.ln() / 4.0) as f32]);
        // sigma * s + z with s = out / sigma: the loss is || out + z ||^2, target -z.
        target.extend([-z0 as f32, -z1 as f32]);
    }
    (feat, target)
}

/// Run the benchmark, printing its figures.
pub fn run(gpu: &Gpu, steps: usize, report: &Report) -> Result<()> {
    let b = 4096;
    let mut g = Graph::new();
    let x = g.input("x", &[b, 3]);
    let t = g.input("target", &[b, 2]);
    let mut bld = Builder::new(&mut g);
    let out = mlp(&mut bld, x, &[3, 256, 256, 256, 2], Unary::Silu)?;
    let specs = bld.specs.clone();
    let n_params = bld.count();
    let d = g.sub(out, t)?;
    let sq = g.unary(Unary::Square, d);
    let per = g.sum(sq, 1)?;
    let loss = g.mean_all(per)?;
    let params = init_params(gpu, &specs, 0)?;
    let step = TrainStep::new(gpu, &mut g, loss, &params, AdamConfig::default())?;
    report.note(&format!(
        "adapter: {}; W1 MLP, {n_params} parameters, batch {b}, plan peak {} KiB, {} kernels per step",
        gpu.describe(),
        step.plan.peak_bytes / 1024,
        step.plan.steps
    ));
    let mut rng = crate::rng::SplitMix64::new(0);
    let warm = 50.min(steps / 10).max(1);
    let mut t0 = Instant::now();
    for i in 0..steps + warm {
        if i == warm {
            gpu.wait()?;
            t0 = Instant::now();
        }
        let (f, tg) = w1_batch(&mut rng, b);
        step.plan.feed(gpu, "x", &f)?;
        step.plan.feed(gpu, "target", &tg)?;
        step.run(gpu, 1)?;
    }
    gpu.wait()?;
    let sec = t0.elapsed().as_secs_f64();
    let sps = steps as f64 / sec;
    let loss_v = step.loss().to_vec(gpu)?[0];
    let fields = || vec![("batch", b.to_string())];
    report.emit(Figure { bench: "mlp", fields: fields(), imp: "scoregen".into(), value: sps, unit: "steps/s" });
    report.emit(Figure {
        bench: "mlp",
        fields: fields(),
        imp: "scoregen".into(),
        value: sps * w1_flops(b) / 1e9,
        unit: "GFLOP/s",
    });
    report.emit(Figure {
        bench: "mlp",
        fields: fields(),
        imp: "scoregen/pytorch-cpu-ref".into(),
        value: sps / 40.25,
        unit: "x",
    });
    report.emit(Figure {
        bench: "mlp",
        fields: fields(),
        imp: "scoregen/burn-wgpu-ref".into(),
        value: sps / 2.425,
        unit: "x",
    });
    report.emit(Figure {
        bench: "mlp",
        fields: fields(),
        imp: "scoregen".into(),
        value: step.plan.peak_bytes as f64,
        unit: "plan peak bytes",
    });
    report.note(&format!("loss after {} steps: {loss_v:.4}", steps + warm));
    if let Some(p) = gpu.profile_report() {
        report.note(&p);
    }
    Ok(())
}
