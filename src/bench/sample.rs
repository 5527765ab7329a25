//! W1 sampling: annealed Langevin dynamics (Song & Ermon 2019, Alg. 1) with the W1 score MLP,
//! 10 geometric levels from 10 to 0.01, 100 steps each, eps = 5e-5, 10,000 chains from
//! N(0, 10^2 I), final denoising step. The whole run is recorded as GPU work: a schedule
//! buffer indexed by a GPU step counter, no host round trip between steps. With
//! `--train-steps N` the network is first trained with W1's exact settings and the quality
//! figures (sliced W2 to fresh ground truth, mean log-density) are printed beside PyTorch's.

use super::{Figure, Report};
use crate::config::Config;
use crate::dist::gmm::Gmm;
use crate::error::Result;
use crate::gpu::Gpu;
use crate::metrics::{mean_log_density, sliced_w2};
use crate::sample::{annealed_langevin, geometric_sigmas, Probes, Runner};
use std::time::Instant;

/// Multiply-adds of one W1 network evaluation per chain.
pub const W1_MACS: usize = 3 * 256 + 256 * 256 * 2 + 256 * 2;

/// The W1 config (docs/workloads.md); `steps` only matters to training (0 gives a
/// config for untrained weights).
pub fn w1_config(steps: usize, seed: u64) -> Config {
    let steps = steps.max(1);
    let text = format!(
        "[data]\nsource = \"toy\"\nname = \"ring8\"\n[model]\nnetwork = \"mlp\"\nhidden = [256, 256, 256]\n\
         [process]\nkind = \"ve\"\nsigma_min = 0.01\nsigma_max = 10.0\n[train]\nsteps = {steps}\nbatch = 4096\n\
         lr = 1e-3\ncheckpoint_every = 0\nseed = {seed}\n"
    );
    Config::from_toml(&text, "W1").expect("the W1 config parses")
}

/// The network of a 2-D config with random weights (speed figures).
pub fn untrained(gpu: &Gpu, cfg: &Config) -> Result<crate::model::Trained> {
    let spec = cfg.model_spec(&[2])?;
    let params = crate::nn::init_params(gpu, &spec.param_specs()?, 0)?;
    Ok(crate::model::Trained {
        spec,
        params,
        process: cfg.process(),
        images: false,
        moments: crate::dist::Moments::centred(2, 0.0),
        log_z: None,
        class_names: Vec::new(),
    })
}

/// Run the benchmark, printing its figures.
pub fn run(
    gpu: &Gpu,
    chains: usize,
    steps_per_level: usize,
    train_steps: usize,
    seed: u64,
    report: &Report,
) -> Result<()> {
    let ck_dir = std::env::temp_dir().join(format!("scoregen-bench-w1-{}", std::process::id()));
    let model = if train_steps > 0 {
        let cfg = w1_config(train_steps, seed);
        let opts = crate::train::TrainOpts {
            out: ck_dir.clone(),
            steps: None,
            resume: false,
            progress: !report.json,
            stop_after: None,
        };
        let r = crate::train::train(gpu, &cfg, std::path::Path::new("."), &opts)?;
        report.note(&format!("trained W1 for {} steps ({:.2} steps/s)", r.step, r.steps_per_sec));
        crate::app::load_checkpoint(gpu, &ck_dir.join(crate::train::CHECKPOINT))?.0
    } else {
        // Random weights: the same work, for speed alone.
        untrained(gpu, &w1_config(0, seed))?
    };
    let f = crate::model::ScoreFn::plan(gpu, &model, chains, Probes::None)?;
    let prog = annealed_langevin(&geometric_sigmas(10.0, 0.01, 10), steps_per_level, 5e-5, true, 10.0);
    let evals = prog.evaluations();
    let runner = Runner::new(gpu, &f, prog, seed)?;
    report.note(&format!(
        "adapter: {}; W1 ALD: {chains} chains x {evals} network evaluations, {} kernels per step",
        gpu.describe(),
        f.plan.steps + 3
    ));
    // Warm-up: pipelines are compiled at plan time; one short run warms the driver.
    gpu.wait()?;
    let t0 = Instant::now();
    let xs = runner.sample(gpu, 0, chains, &mut |_, _| {})?;
    let sec = t0.elapsed().as_secs_f64();
    let fields = || vec![("chains", chains.to_string()), ("steps", evals.to_string())];
    report.emit(Figure { bench: "sample", fields: fields(), imp: "scoregen".into(), value: sec, unit: "s" });
    let gflops = 2.0 * W1_MACS as f64 * chains as f64 * evals as f64 / sec / 1e9;
    report.emit(Figure { bench: "sample", fields: fields(), imp: "scoregen".into(), value: gflops, unit: "GFLOP/s" });
    report.emit(Figure {
        bench: "sample",
        fields: fields(),
        imp: "scoregen/pytorch-cpu-ref".into(),
        value: 18.25 / sec * (chains * evals) as f64 / 1e7,
        unit: "x",
    });
    if let Some(p) = gpu.profile_report() {
        report.note(&p);
    }
    if train_steps > 0 {
        let gt = Gmm::ring8().sample(chains, &mut crate::rng::HostRng::new(12345));
        let sw = sliced_w2(&xs, &gt, 2, 256, 1);
        let lp = mean_log_density(&Gmm::ring8(), &xs);
        let f2 = || vec![("train_steps", train_steps.to_string()), ("seed", seed.to_string())];
        report.emit(Figure { bench: "sample", fields: f2(), imp: "scoregen".into(), value: sw, unit: "sliced W2" });
        report.emit(Figure { bench: "sample", fields: f2(), imp: "scoregen".into(), value: lp, unit: "mean log p" });
        report.note("PyTorch (PEERS.md): 0.65-0.76 / -2.39..-2.60 after 550 steps, 0.39 / -2.57 after 5,000; truth 0.08-0.10 / -2.52");
        report.note("both vary widely between training seeds: compare several seeds on one machine with src/bench/w1_pytorch.py");
        let _ = std::fs::remove_dir_all(&ck_dir);
    }
    Ok(())
}
