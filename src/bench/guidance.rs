//! The cost of guidance (`bench sample --guidance`): on W1's network made class-conditional
//! (8 classes), seconds per sampler step of the unguided conditional model, of classifier-free
//! guidance (one network pass over 2B rows) and of classifier guidance of the unconditional
//! W1 network by an MLP classifier, beside the classifier's forward and backward alone; all in
//! one run, each the median of interleaved rounds (each round runs the rows forward and back;
//! the ratios: the median of each round's ratio), random weights (the cost is the same).

use super::{median, Figure, Report};
use crate::config::Config;
use crate::error::Result;
use crate::gpu::Gpu;
use crate::model::guide::{label_conditions, LABEL};
use crate::model::{Classifier, ClassifierGuided, CondVars, FreeGuided, ScoreModel};
use crate::sample::{SamplerKind, SamplerOpts};
use std::time::Instant;

fn config(model: &str) -> Result<Config> {
    let text = format!(
        "[data]\nsource = \"toy\"\nname = \"ring8\"\n[model]\nhidden = [256, 256, 256]\n{model}\n[process]\nkind = \
         \"ve\"\nsigma_min = 0.01\nsigma_max = 10.0\n"
    );
    Config::from_toml(&text, "bench guidance")
}

/// A model whose score is zero at no cost: classifier guidance over it is the classifier's
/// forward and backward (and the sampler's own element-wise work).
struct Zero(crate::score::Process);

impl ScoreModel for Zero {
    fn shape(&self) -> &[usize] {
        &[2]
    }
    fn process(&self) -> &crate::score::Process {
        &self.0
    }
    fn moments(&self) -> crate::dist::Moments {
        crate::dist::Moments::centred(2, 1.0)
    }
    fn params(&self) -> crate::graph::plan::ParamStore {
        Default::default()
    }
    fn score(
        &self,
        b: &mut crate::nn::Builder,
        x: crate::graph::Var,
        _: crate::graph::Var,
        _: &CondVars,
    ) -> Result<crate::graph::Var> {
        Ok(b.g.scale(x, 0.0))
    }
}

fn classifier(gpu: &Gpu) -> Result<Classifier> {
    let cfg = config("network = \"classifier\"\nclasses = 8")?;
    let m = super::sample::untrained(gpu, &cfg)?;
    let info = crate::model::CheckpointInfo { step: 0, config: String::new() };
    Ok(Classifier { spec: m.spec, params: m.params, process: m.process, images: false, class_names: vec![], info })
}

/// Run the benchmark, printing its figures.
pub fn run(gpu: &Gpu, chains: usize, steps: usize, rounds: usize, report: &Report) -> Result<()> {
    let cond =
        || -> Result<Box<dyn ScoreModel>> { Ok(Box::new(super::sample::untrained(gpu, &config("classes = 8")?)?)) };
    let uncond = || -> Result<Box<dyn ScoreModel>> { Ok(Box::new(super::sample::untrained(gpu, &config("")?)?)) };
    let process = config("")?.process();
    let rows: Vec<(&str, Box<dyn ScoreModel>)> = vec![
        ("conditional", cond()?),
        ("cfg", Box::new(FreeGuided::new(cond()?, 3.0)?)),
        ("unconditional", uncond()?),
        ("classifier-guided", Box::new(ClassifierGuided::new(uncond()?, classifier(gpu)?, 1.0, "bench")?)),
        ("classifier-alone", Box::new(ClassifierGuided::new(Box::new(Zero(process)), classifier(gpu)?, 1.0, "bench")?)),
    ];
    let labels: Vec<Option<u32>> = (0..8).map(Some).collect();
    report.note(&format!(
        "adapter: {}; {chains} chains x {steps} Euler PF-ODE steps, median of {rounds} rounds (plans built and warmed \
         up first)",
        gpu.describe()
    ));
    // Each model planned once; the timed runs replay its sampler program.
    let mut planned = Vec::new();
    for (_, m) in &rows {
        let f = crate::model::ScoreFn::plan(gpu, m.as_ref(), chains, crate::sample::Probes::None)?;
        let prog = match SamplerKind::Ode.program(m.process(), steps, &SamplerOpts::default())? {
            crate::sample::SamplerProgram::Fixed(p) => p,
            _ => unreachable!("the PF-ODE's Euler steps are a fixed program"),
        };
        planned.push((f, prog));
    }
    let mut runners = Vec::new();
    for ((_, m), (f, prog)) in rows.iter().zip(&planned) {
        let mut r = crate::sample::Runner::new(gpu, f, prog.clone(), 0)?;
        if m.conditioning().iter().any(|c| c.name == LABEL) {
            r.conditions = label_conditions(8, &labels);
        }
        runners.push(r);
    }
    // Each round runs the rows in order and then in reverse (A B C C B A), a row's time the
    // mean of its two runs: a drift of the host's speed within the round (seconds per row on a
    // shared CPU) then moves every row alike instead of favouring the rows that ran first.
    let n = runners.len();
    let mut times = vec![Vec::new(); n];
    for round in 0..=rounds {
        let mut sum = vec![0.0; n];
        for i in (0..n).chain((0..n).rev()) {
            let t = Instant::now();
            runners[i].sample(gpu, 0, chains, &mut |_, _| {})?;
            sum[i] += t.elapsed().as_secs_f64() / (2 * steps) as f64;
        }
        if round > 0 {
            sum.iter().zip(&mut times).for_each(|(s, t)| t.push(*s));
        }
    }
    // With --profile: the timed rounds' times are dropped, then each model runs once more
    // alone, its kernels printed (what a guided step adds over its parts).
    if gpu.profile_take().is_some() {
        for ((name, _), r) in rows.iter().zip(&runners) {
            r.sample(gpu, 0, chains, &mut |_, _| {})?;
            report.note(&format!("{name}, one run of {steps} steps:\n{}", gpu.profile_take().unwrap_or_default()));
        }
    }
    let med: Vec<f64> = times.iter().map(|t| median(&mut t.clone())).collect();
    // The ratios are taken within each round (the rows ran back to back) and their median
    // reported: a drift of the host's speed between rounds then moves both sides together.
    let per_round = |f: &dyn Fn(usize) -> f64| median(&mut (0..rounds).map(f).collect::<Vec<_>>());
    let cfg = per_round(&|r| times[1][r] / times[0][r]);
    let clf = per_round(&|r| times[3][r] / (times[2][r] + times[4][r]));
    let fields = || vec![("chains", chains.to_string()), ("steps", steps.to_string())];
    for ((name, _), t) in rows.iter().zip(&med) {
        report.emit(Figure {
            bench: "guidance",
            fields: fields(),
            imp: (*name).into(),
            value: t * 1e3,
            unit: "ms/step",
        });
    }
    report.emit(Figure { bench: "guidance", fields: fields(), imp: "cfg/conditional".into(), value: cfg, unit: "x" });
    report.emit(Figure {
        bench: "guidance",
        fields: fields(),
        imp: "classifier-guided/(unconditional+classifier-alone)".into(),
        value: clf,
        unit: "x",
    });
    Ok(())
}
