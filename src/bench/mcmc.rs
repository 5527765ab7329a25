//! MCMC cost per score evaluation: W1's network as an energy model (score = -grad E, so every
//! evaluation runs the network forward and back), random weights, `chains` chains over W1's 10
//! levels. Plain Langevin (fused update rows), ULA, MALA and HMC (3 leapfrog steps) each run
//! about `evals` network evaluations per chain in the same sitting; the figure is the time per
//! evaluation, and its ratio to plain Langevin's: what the Metropolis tests and the momentum
//! updates add (target: at most 1.3x).

use super::{Figure, Report};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::sample::mcmc::annealed;
use crate::sample::{annealed_langevin, geometric_sigmas, McmcMethod, McmcOpts, Probes, Program, Runner};
use std::time::Instant;

pub fn run(gpu: &Gpu, chains: usize, evals: usize, seed: u64, report: &Report) -> Result<()> {
    let mut cfg = super::sample::w1_config(0, seed);
    cfg.model.param = crate::score::ParamKind::Energy;
    let spec = cfg.model_spec(&[2])?;
    let params = crate::nn::init_params(gpu, &spec.param_specs()?, 0)?;
    let model = crate::model::Trained {
        spec,
        params,
        process: cfg.process(),
        images: false,
        moments: crate::dist::Moments::centred(2, 0.0),
        log_z: None,
    };
    let f = crate::model::ScoreFn::plan(gpu, &model, chains, Probes::None)?;
    let sig = geometric_sigmas(10.0, 0.01, 10);
    let per = (evals / sig.len()).max(3);
    let opts = McmcOpts::default();
    let programs: Vec<(&str, Program)> = vec![
        ("langevin", annealed_langevin(&sig, per, 5e-5, false, 10.0)),
        ("ula", annealed(McmcMethod::Ula, &sig, per, 5e-5, 10.0, &opts)?),
        ("mala", annealed(McmcMethod::Mala, &sig, per, 5e-5, 10.0, &opts)?),
        ("hmc", annealed(McmcMethod::Hmc, &sig, per / opts.leapfrog, 5e-5, 10.0, &opts)?),
    ];
    report.note(&format!(
        "adapter: {}; W1 energy network, {chains} chains, about {} evaluations each",
        gpu.describe(),
        per * sig.len()
    ));
    let mut base = None;
    for (name, prog) in programs {
        let n_eval = prog.evaluations();
        let runner = Runner::new(gpu, &f, prog, seed)?;
        gpu.wait()?;
        let t0 = Instant::now();
        runner.sample(gpu, 0, chains, &mut |_, _| {})?;
        let per_eval = t0.elapsed().as_secs_f64() / n_eval as f64 * 1e3;
        let fields = || vec![("chains", chains.to_string()), ("evaluations", n_eval.to_string())];
        report.emit(Figure { bench: "mcmc", fields: fields(), imp: name.into(), value: per_eval, unit: "ms/eval" });
        let b = *base.get_or_insert(per_eval);
        let imp = format!("{name}/langevin");
        report.emit(Figure { bench: "mcmc", fields: fields(), imp, value: per_eval / b, unit: "x" });
    }
    Ok(())
}
