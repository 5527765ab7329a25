//! Du et al.'s 2-D composition benchmark (ICML 2023, Table 1 in spirit): for each training seed,
//! the models trained by docs/du2d/table.sh (`MODELS/SEED/<set>-<param>/checkpoint.safetensors`)
//! are composed (product: ring x bar; mixture: left bar + right bar; negation: box 0.7 minus
//! box 0.3, weights 1.3 / -0.3) through `compose:` files, sampled by reverse diffusion (50
//! ancestral steps) and by the same with an MCMC corrector at every level (ULA, uHMC, MALA,
//! HMC; Metropolis tests by the energy or by the trapezoid rule), and scored against the exact
//! composition (dist::du2d): mean log-likelihood, exact W2 to as many true samples and, for the
//! negation, the fraction of samples inside the inner box. Prints one JSON line per run and a
//! Markdown table of medians (and the range over seeds).

use crate::app::{Loaded, ModelSource};
use crate::dist::du2d::{fraction_inside, Task, Truth, BOX_INNER};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::sample::{draw, McmcMethod, McmcOpts, MhRule, SampleRequest, SamplerKind, StepRule};
use std::collections::BTreeMap;
use std::path::Path;

/// One row of the table: a corrector (None: plain reverse diffusion) and its test.
struct Row {
    name: &'static str,
    corrector: Option<McmcMethod>,
    mh: MhRule,
}

const ROWS: [Row; 8] = [
    Row { name: "reverse diffusion", corrector: None, mh: MhRule::Energy },
    Row { name: "ULA", corrector: Some(McmcMethod::Ula), mh: MhRule::Energy },
    Row { name: "uHMC", corrector: Some(McmcMethod::Uhmc), mh: MhRule::Energy },
    Row { name: "MALA", corrector: Some(McmcMethod::Mala), mh: MhRule::Energy },
    Row { name: "HMC", corrector: Some(McmcMethod::Hmc), mh: MhRule::Energy },
    Row { name: "HMC, MH trapezoid 3", corrector: Some(McmcMethod::Hmc), mh: MhRule::Trapezoid(3) },
    Row { name: "HMC, MH trapezoid 5", corrector: Some(McmcMethod::Hmc), mh: MhRule::Trapezoid(5) },
    Row { name: "HMC, MH trapezoid 10", corrector: Some(McmcMethod::Hmc), mh: MhRule::Trapezoid(10) },
];

/// The composition file of a task for one seed and parameterisation.
fn compose_file(seed_dir: &Path, task: Task, param: &str) -> Result<std::path::PathBuf> {
    let (op, a, b, extra) = match task {
        Task::Product => ("product", "du-ring", "du-bar", String::new()),
        Task::Mixture => ("mixture", "du-bar-left", "du-bar-right", "temperature = 3.5\n".into()),
        Task::Negation => ("negation", "du-box-outer", "du-box-inner", "weights = [1.3, -0.3]\n".into()),
    };
    let path = seed_dir.join(format!("compose-{}-{param}.toml", task.name()));
    let text = format!(
        "op = \"{op}\"\nmodels = [\"{a}-{param}/checkpoint.safetensors\", \"{b}-{param}/checkpoint.safetensors\"]\n{extra}"
    );
    crate::io::write_atomic(&path, text.as_bytes())?;
    Ok(path)
}

/// The sampler request of a row: 50 ancestral steps; correctors take 2 transitions per level
/// with h = 0.05 sigma^2 (3 leapfrog steps for HMC), adapted toward 0.57 where there is a test.
/// (Du et al. take 100 steps; halved for a 2-core CPU.)
fn request(row: &Row, seed: u64, n: usize) -> SampleRequest {
    let mut req = crate::config::SampleConfig::default().request();
    (req.sampler, req.steps, req.n, req.batch, req.seed) = (SamplerKind::Ancestral, 50, n, n, seed);
    req.opts.mcmc = McmcOpts {
        steps_per_level: Some(2),
        step: StepRule::Sigma2(0.05),
        adapt: row.corrector.filter(|m| m.adjusted()).map(|_| 0.57),
        mh: row.mh,
        corrector: row.corrector,
        ..McmcOpts::default()
    };
    req
}

/// (mean log-likelihood, exact W2, fraction inside the inner box) of samples.
fn metrics(xs: &[f32], truth: &Truth, reference: &[f32]) -> Result<[f64; 3]> {
    let w2 = crate::metrics::exact_w2(xs, reference, 2)?;
    Ok([truth.mean_log_density(xs), w2, fraction_inside(xs, BOX_INNER)])
}

const TASKS: [Task; 3] = [Task::Product, Task::Mixture, Task::Negation];
const PARAMS: [&str; 2] = ["score", "energy"];

/// The truth of a task and n true samples for W2 (the same for every run).
fn reference(ti: usize, n: usize) -> (Truth, Vec<f32>, crate::rng::HostRng) {
    let mut rng = crate::rng::HostRng::new(7 + ti as u64);
    let reference = TASKS[ti].sample(n, &mut rng);
    (Truth::new(TASKS[ti]), reference, rng)
}

/// The metrics of a second set of n true samples: the table's first row.
fn floors(n: usize) -> Result<Vec<[f64; 3]>> {
    (0..3)
        .map(|ti| {
            let (truth, reference, mut rng) = reference(ti, n);
            metrics(&TASKS[ti].sample(n, &mut rng), &truth, &reference)
        })
        .collect()
}

/// The Markdown table from the JSON lines `run` printed (several runs' lines together: one seed
/// each, say).
pub fn table_from_lines(text: &str, n: usize) -> Result<String> {
    let mut table: BTreeMap<(usize, usize, usize), Vec<[f64; 3]>> = BTreeMap::new();
    let mut seeds = std::collections::BTreeSet::new();
    for line in text.lines().filter(|l| l.contains("\"du2d\"")) {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| Error::Invalid(format!("--table: not a JSON line: {e}: {line}")))?;
        let find = |k: &str, names: &[&str]| names.iter().position(|n| Some(*n) == v[k].as_str());
        let rows: Vec<&str> = ROWS.iter().map(|r| r.name).collect();
        let names: Vec<&str> = TASKS.iter().map(|t| t.name()).collect();
        let (Some(ti), Some(pi), Some(ri)) = (find("task", &names), find("param", &PARAMS), find("sampler", &rows))
        else {
            return Err(Error::Invalid(format!("--table: unknown task, param or sampler in {line}")));
        };
        let num = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        seeds.insert(v["seed"].as_u64().unwrap_or(0));
        table.entry((ti, pi, ri)).or_default().push([num("loglik"), num("w2"), num("inside")]);
    }
    Ok(markdown(&table, &floors(n)?, seeds.len(), n))
}

/// Run the benchmark, printing its figures.
pub fn run(gpu: &Gpu, models: &Path, seeds: &[u64], n: usize, json: bool) -> Result<()> {
    // (task, param, row) -> per seed metrics
    let mut table: BTreeMap<(usize, usize, usize), Vec<[f64; 3]>> = BTreeMap::new();
    for (ti, &task) in TASKS.iter().enumerate() {
        let (truth, reference, _) = reference(ti, n);
        for &seed in seeds {
            let dir = models.join(seed.to_string());
            if !dir.is_dir() {
                return Err(Error::Invalid(format!(
                    "--models: no folder {} (train it with docs/du2d/table.sh)",
                    dir.display()
                )));
            }
            for (pi, param) in PARAMS.iter().enumerate() {
                if task == Task::Mixture && *param == "score" {
                    continue; // a mixture needs energies: refused for score models
                }
                let loaded = Loaded::load(gpu, &ModelSource::Compose(compose_file(&dir, task, param)?))?;
                for (ri, row) in ROWS.iter().enumerate() {
                    if *param == "score" && row.corrector.is_some_and(|m| m.adjusted()) && row.mh == MhRule::Energy {
                        continue;
                    }
                    let t0 = std::time::Instant::now();
                    let xs = draw(gpu, loaded.model.as_ref(), &request(row, seed, n), &mut |_, _| {})?;
                    let m = metrics(&xs, &truth, &reference)?;
                    let secs = t0.elapsed().as_secs_f64();
                    let line = format!(
                        "{{\"bench\":\"du2d\",\"task\":\"{}\",\"param\":\"{param}\",\"sampler\":\"{}\",\"seed\":{seed},\
                         \"loglik\":{:.4},\"w2\":{:.4},\"inside\":{:.4},\"seconds\":{secs:.1}}}",
                        task.name(),
                        row.name,
                        m[0],
                        m[1],
                        m[2]
                    );
                    if json {
                        println!("{line}");
                    } else {
                        eprintln!("{line}");
                    }
                    table.entry((ti, pi, ri)).or_default().push(m);
                }
            }
        }
    }
    if !json {
        print!("{}", markdown(&table, &floors(n)?, seeds.len(), n));
    }
    Ok(())
}

/// Median of the seeds' values, with their range when there are several.
fn cell(v: &[f64]) -> String {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let med = if s.len() % 2 == 1 { s[s.len() / 2] } else { 0.5 * (s[s.len() / 2 - 1] + s[s.len() / 2]) };
    if s.len() > 1 {
        format!("{med:.3} [{:.3}, {:.3}]", s[0], s[s.len() - 1])
    } else {
        format!("{med:.3}")
    }
}

fn markdown(
    table: &BTreeMap<(usize, usize, usize), Vec<[f64; 3]>>,
    floors: &[[f64; 3]],
    seeds: usize,
    n: usize,
) -> String {
    let mut out = String::from(
        "\n| sampler | model | product log-lik | product W2 | mixture log-lik | mixture W2 | negation log-lik | negation W2 | \
         negation inside |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    out += &format!(
        "| true samples | - | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |\n",
        floors[0][0], floors[0][1], floors[1][0], floors[1][1], floors[2][0], floors[2][1], floors[2][2]
    );
    for (ri, row) in ROWS.iter().enumerate() {
        for (pi, param) in PARAMS.iter().enumerate() {
            let get = |ti: usize, k: usize| {
                table.get(&(ti, pi, ri)).map(|v| cell(&v.iter().map(|m| m[k]).collect::<Vec<_>>()))
            };
            if (0..3).all(|ti| get(ti, 0).is_none()) {
                continue;
            }
            let c = |ti, k| get(ti, k).unwrap_or_else(|| "n/a".into());
            out += &format!(
                "| {} | {param} | {} | {} | {} | {} | {} | {} | {} |\n",
                row.name,
                c(0, 0),
                c(0, 1),
                c(1, 0),
                c(1, 1),
                c(2, 0),
                c(2, 1),
                c(2, 2)
            );
        }
    }
    out + &format!("\n(median over {seeds} training seeds, [lowest, highest] beside it; {n} samples each)\n")
}
