//! MCMC cost per score evaluation: W1's network as an energy model (score = -grad E, so every
//! evaluation runs the network forward and back), random weights, `chains` chains over W1's 10
//! levels. Plain Langevin (fused update rows), ULA, MALA and HMC (3 leapfrog steps) each run
//! about `evals` network evaluations per chain in the same sitting; the figure is the time per
//! evaluation, and its ratio to plain Langevin's: what the Metropolis tests and the momentum
//! updates add (target: at most 1.3x). Plain Langevin runs first and last (after a warm-up run);
//! its figure is the mean of the two.

use super::{Figure, Report};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::sample::mcmc::annealed;
use crate::sample::{annealed_langevin, geometric_sigmas, McmcMethod, McmcOpts, Probes, Program, Runner};
use std::time::Instant;

/// Run the benchmark, printing its figures.
pub fn run(gpu: &Gpu, chains: usize, evals: usize, seed: u64, report: &Report) -> Result<()> {
    let mut cfg = super::sample::w1_config(0, seed);
    cfg.model.param = crate::score::ParamKind::Energy;
    let model = super::sample::untrained(gpu, &cfg)?;
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
    // A warm-up run (pipelines, driver caches), then each program once; Langevin runs first and
    // last, and the ratios are to the mean of its two runs.
    let time = |prog: &Program| -> Result<f64> {
        let runner = Runner::new(gpu, &f, prog.clone(), seed)?;
        gpu.wait()?;
        let t0 = Instant::now();
        runner.sample(gpu, 0, chains, &mut |_, _| {})?;
        Ok(t0.elapsed().as_secs_f64() / prog.evaluations() as f64 * 1e3)
    };
    time(&programs[0].1)?;
    let mut times: Vec<f64> = programs.iter().map(|(_, p)| time(p)).collect::<Result<_>>()?;
    let base = 0.5 * (times[0] + time(&programs[0].1)?);
    times[0] = base;
    for ((name, prog), t) in programs.iter().zip(times) {
        let fields = || vec![("chains", chains.to_string()), ("evaluations", prog.evaluations().to_string())];
        report.emit(Figure { bench: "mcmc", fields: fields(), imp: name.to_string(), value: t, unit: "ms/eval" });
        let imp = format!("{name}/langevin");
        report.emit(Figure { bench: "mcmc", fields: fields(), imp, value: t / base, unit: "x" });
    }
    Ok(())
}
