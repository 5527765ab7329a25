//! The scoregen command line: thin; every command is a call into the library.

use clap::{Parser, Subcommand};
use scoregen::app::shard::Shard;
use scoregen::app::{evaluate, FisherRequest, ModelSource};
use scoregen::config::Config;
use scoregen::gpu::{info::adapters_report, BackendChoice};
use scoregen::io::samples::{png_fits, write_samples};
use scoregen::model::ScoreModel;
use scoregen::sample::{draw, Probes};
use scoregen::train::{train, TrainOpts};
use scoregen::{Error, Gpu, GpuOptions, Result};
use std::path::PathBuf;

mod bench_cli;
mod classify_cli;
mod index_cli;
mod sample_cli;
use bench_cli::{cmd_bench, BenchCmd};
use classify_cli::{cmd_classify, ClassifyArgs};
use index_cli::{cmd_index, IndexCmd};
use sample_cli::{load_model, parse_model, request, source, source_name, SampleArgs};

#[derive(Parser)]
#[command(name = "scoregen", version, about = "Score-based generative models on the GPU (wgpu + WGSL)")]
struct Cli {
    /// Graphics API: auto, vulkan, metal, dx12, gl.
    #[arg(long, global = true, env = "SCOREGEN_BACKEND", default_value = "auto", value_enum, ignore_case = true)]
    backend: BackendChoice,
    /// Adapter index as listed by `scoregen info`.
    #[arg(long, global = true, env = "SCOREGEN_ADAPTER")]
    adapter: Option<usize>,
    /// Print GPU time per kernel (timestamp queries) at the end.
    #[arg(long, global = true)]
    profile: bool,
    /// No progress output (results and errors are still printed).
    #[arg(long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List every adapter with its backend, driver, limits and features.
    Info,
    /// Train a score or energy model (train.objective: dsm, ssm, ssm-vr, esm, nce) from a TOML config.
    Train(TrainArgs),
    /// Draw samples from a checkpoint or an analytic mixture.
    Sample {
        #[command(flatten)]
        src: SampleArgs,
        /// .png (image grid or 2-D density) or .npy (float32 [n, ...]).
        #[arg(long)]
        out: PathBuf,
        /// MCMC samplers: print the acceptance report as one JSON object on stdout.
        #[arg(long)]
        json: bool,
        /// Draw only shard I of N of the run: chains [I n / N, (I + 1) n / N), bit-identical to
        /// those chains of the whole run; writes <out>.run.json for `scoregen merge` (.npy only).
        #[arg(long, value_parser = |s: &str| s.parse::<scoregen::app::shard::Shard>())]
        shard: Option<scoregen::app::shard::Shard>,
    },
    /// Concatenate the .npy outputs of `sample --shard I/N` after checking they are one run.
    Merge {
        /// The shards (any order; each shard exactly once).
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Sample quality and likelihood of a checkpoint or an analytic mixture.
    Eval {
        /// (--n: samples for the sample metrics, 0 skips them)
        #[command(flatten)]
        src: SampleArgs,
        /// Data points for the PF-ODE likelihood (0: skip).
        #[arg(long, default_value_t = 1000)]
        nll_n: usize,
        /// Divergence: exact, or the number of Hutchinson probes.
        #[arg(long, default_value = "exact", value_parser = parse_probes)]
        probes: Probes,
        /// The Fisher divergence to this mixture (gmm:FILE.toml, gmm:ring8, gmm:ncsn) at --levels;
        /// default: the mixture behind the data, if --levels is given.
        #[arg(long, value_parser = parse_model)]
        reference: Option<ModelSource>,
        /// Noise levels of the Fisher divergence (default: a fixed-level model's level; else
        /// sigma_min, their geometric middle and sigma_max).
        #[arg(long, value_delimiter = ',')]
        levels: Option<Vec<f64>>,
        /// Fresh points of the noised reference per level.
        #[arg(long, default_value_t = 10000)]
        fisher_n: usize,
        /// Only log Z of the model (energy models, analytic models, compositions) by annealed
        /// importance sampling over --n chains with the MCMC sampler given (default hmc), with
        /// its standard error.
        #[arg(long)]
        log_z: bool,
        #[arg(long)]
        json: bool,
    },
    /// A 2-D model's score field and energy (or log-density) over a grid beside its samples (PNG).
    Field {
        #[command(flatten)]
        src: SampleArgs,
        /// The picture (.png).
        #[arg(long)]
        out: PathBuf,
        /// Noise level of the field (default: a fixed-level model's own, else sigma_min).
        #[arg(long)]
        level: Option<f64>,
        /// Half-width of the square shown (default: 3 standard deviations beyond the data).
        #[arg(long)]
        lim: Option<f64>,
    },
    /// A classifier's accuracy per noise level on labelled data, or per class on samples drawn
    /// with --class (their .labels.npy).
    Classify(ClassifyArgs),
    /// Retrieval databases: build one from data through an encoder, or describe one.
    Index {
        #[command(subcommand)]
        which: IndexCmd,
    },
    /// Benchmarks of the shared workloads (figures, not tests).
    Bench {
        #[command(subcommand)]
        which: BenchCmd,
    },
}

#[derive(clap::Args)]
struct TrainArgs {
    /// The run's config (see assets/configs/).
    #[arg(long)]
    config: PathBuf,
    /// Output folder (checkpoints, loss curve, samples); default runs/<config name>.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Total optimizer steps (overrides train.steps).
    #[arg(long)]
    steps: Option<usize>,
    /// Continue from the state saved in the output folder.
    #[arg(long)]
    resume: bool,
    /// Start afresh even where the output folder holds a run (its checkpoint and state are
    /// replaced); without it, such a folder is refused.
    #[arg(long, conflicts_with = "resume")]
    overwrite: bool,
    /// Skip the samples drawn at the end.
    #[arg(long)]
    no_samples: bool,
}

fn parse_probes(s: &str) -> std::result::Result<Probes, String> {
    match s {
        "exact" => Ok(Probes::Exact),
        k => k
            .parse()
            .ok()
            .filter(|&k: &usize| (1..=4096).contains(&k))
            .map(Probes::Hutchinson)
            .ok_or_else(|| format!("'{k}': use 'exact' or a number of Hutchinson probes from 1 to 4096")),
    }
}

fn open(cli: &Cli) -> Result<Gpu> {
    let backend = cli.backend;
    let gpu = Gpu::new(&GpuOptions { backend, adapter: cli.adapter, profile: cli.profile })?;
    if let Some(hint) = scoregen::gpu::context::gl_fallback_hint(backend, gpu.info.backend, &gpu.info.name) {
        eprintln!("{hint}");
    }
    Ok(gpu)
}

/// Progress on stderr (scoregen::progress: a bar on a terminal, lines in logs, none with --quiet).
fn progress(what: &'static str) -> impl FnMut(usize, usize) {
    let (mut bar, t0): (Option<scoregen::progress::Progress>, _) = (None, std::time::Instant::now());
    move |done, total| {
        let b = bar.get_or_insert_with(|| scoregen::progress::Progress::since(what, total as u64, t0));
        b.set(done as u64, "");
        if done >= total {
            b.finish();
        }
    }
}

fn cmd_info(cli: &Cli) -> Result<()> {
    let backend = cli.backend;
    let r = adapters_report(backend);
    if r.is_empty() {
        return Err(Error::NoAdapter(format!(
            "wgpu found no adapter for backend {backend:?}; {}",
            scoregen::gpu::context::NO_ADAPTER_HINT
        )));
    }
    print!("{r}");
    Ok(())
}

fn cmd_train(cli: &Cli, a: &TrainArgs) -> Result<()> {
    let TrainArgs { config, out, steps, resume, overwrite, no_samples } = a;
    let cfg = Config::load(config)?;
    let stem = config.file_stem().and_then(|s| s.to_str()).unwrap_or("run");
    let out = out.clone().unwrap_or_else(|| PathBuf::from("runs").join(stem));
    // A run already in the folder is not replaced by accident.
    let held = [scoregen::train::STATE, scoregen::train::CHECKPOINT].into_iter().find(|f| out.join(f).exists());
    if let (Some(f), false, false) = (held, *resume, *overwrite) {
        return Err(Error::Invalid(format!(
            "{}: holds a run ({f}); continue it with --resume, start over with --overwrite, or choose \
             another --out",
            out.display()
        )));
    }
    let gpu = open(cli)?;
    let dir = config.parent().unwrap_or(std::path::Path::new("."));
    eprintln!("training {} on {} -> {}", config.display(), gpu.describe(), out.display());
    let opts = TrainOpts { out: out.clone(), steps: *steps, resume: *resume, progress: true, stop_after: None };
    let r = train(&gpu, &cfg, dir, &opts)?;
    if let Some(p) = gpu.profile_report() {
        eprintln!("{p}");
    }
    if r.steps_per_sec == 0.0 {
        return Ok(()); // nothing was trained (train said why)
    }
    eprintln!(
        "step {}: loss {:.4}; {:.2} steps/s; checkpoint {}",
        r.step,
        r.losses.last().map(|l| l.1).unwrap_or(f64::NAN),
        r.steps_per_sec,
        out.join(scoregen::train::CHECKPOINT).display()
    );
    if cfg.train.objective == scoregen::score::Objective::Nce {
        let (model, _, _) = scoregen::app::load_checkpoint(&gpu, &out.join(scoregen::train::CHECKPOINT))?;
        if let Some(z) = model.log_z {
            eprintln!("learned log Z {z:.4} (stored in the checkpoint as {})", scoregen::score::objective::LOG_Z);
        }
    }
    if cfg.model.network == scoregen::score::NetworkKind::Classifier {
        let report = scoregen::app::classify::accuracy_report(&gpu, &out.join(scoregen::train::CHECKPOINT), None)?;
        eprint!("{report}");
        return Ok(());
    }
    if !no_samples {
        let (model, _, _) = scoregen::app::load_checkpoint(&gpu, &out.join(scoregen::train::CHECKPOINT))?;
        let model: &dyn ScoreModel = &model;
        let mut req = cfg.sample.request();
        req.conditions = scoregen::model::guide::unconditional(model)?;
        if model.images() {
            req.n = req.n.min(64);
        }
        let xs = draw(&gpu, model, &req, &mut progress("sampling"))?;
        let npy = out.join("samples.npy");
        write_samples(&npy, &xs, model.shape(), model.images())?;
        // Also a picture where the samples can be shown as one.
        let mut shown = npy;
        if png_fits(model.shape(), model.images()) {
            shown = out.join("samples.png");
            // 2-D data drawn beside the samples.
            let reference = r.reference.as_ref().map(|(t, r)| (t.as_str(), r.as_slice()));
            scoregen::io::samples::write_samples_with(&shown, &xs, model.shape(), model.images(), None, reference)?;
        }
        eprintln!("{} samples ({}, {} steps) -> {}", req.n, req.sampler.name(), req.steps, shown.display());
    }
    Ok(())
}

fn cmd_field(cli: &Cli, src: &SampleArgs, out: &std::path::Path, level: Option<f64>, lim: Option<f64>) -> Result<()> {
    src.retrieval.refuse_in("field")?;
    for (name, v) in [("--level", level), ("--lim", lim)] {
        if let Some(v) = v.filter(|v| !(*v > 0.0 && v.is_finite())) {
            return Err(Error::Invalid(format!("{name} {v}: must be a positive number")));
        }
    }
    if !out.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")) {
        return Err(Error::Invalid(format!("--out {}: field writes a .png", out.display())));
    }
    let gpu = open(cli)?;
    let loaded = load_model(&gpu, src)?;
    let mut req = request(&loaded, src);
    req.n = src.n.unwrap_or(req.n.min(5000));
    scoregen::app::field_picture(&gpu, loaded.model.as_ref(), &req, level, lim, out)?;
    eprintln!("field and {} samples ({}) -> {}", req.n, req.sampler.name(), out.display());
    Ok(())
}

fn cmd_sample(cli: &Cli, src: &SampleArgs, out: &std::path::Path, json: bool, shard: Option<Shard>) -> Result<()> {
    use scoregen::app::shard::{model_hash, run_key, write_info, RunInfo};
    if shard.is_some() && !out.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy")) {
        return Err(Error::Invalid(format!("--shard: write the shard to a .npy (--out {})", out.display())));
    }
    let gpu = open(cli)?;
    let loaded = load_model(&gpu, src)?;
    let mut req = request(&loaded, src);
    let m = loaded.model.as_ref();
    let info = match shard {
        Some(s) => {
            let (first, chains) = s.chains(req.n);
            if chains == 0 {
                return Err(Error::Invalid(format!(
                    "--shard {}/{}: --n {} leaves this shard no chains",
                    s.index, s.count, req.n
                )));
            }
            let name = source_name(src);
            let model = model_hash(&source(src)?)? + &src.guide.run_key()? + &src.retrieval.run_key(&loaded, &name)?;
            let run = run_key(&req, &model, s.count);
            let (n, seed, shape) = (req.n, req.seed, m.shape().to_vec());
            (req.first_chain, req.n) = (first, chains);
            Some(RunInfo { run, shard: s.index, shards: s.count, first_chain: first, chains, n, seed, shape })
        }
        None => None,
    };
    let whole = info.as_ref().map(|i| i.n).unwrap_or(req.n);
    let chains = (req.seed, req.first_chain, req.n, whole);
    let retrieved = src.retrieval.retrieve(&gpu, &loaded, &source_name(src), chains)?;
    if let Some(r) = &retrieved {
        req.conditions = r.conditions.clone();
    }
    let t0 = std::time::Instant::now();
    let report = scoregen::app::sample_to(&gpu, m, &req, out, &mut progress("sampling"))?;
    eprintln!("{} samples in {:.1} s -> {}", req.n, t0.elapsed().as_secs_f64(), out.display());
    if let Some(info) = &info {
        write_info(out, info)?;
    }
    if let (Some(list), true) = (&loaded.class_list, out.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy"))) {
        let p = scoregen::app::guide_cli::write_labels(out, list, req.first_chain, req.n)?;
        eprintln!("  labels -> {}", p.display());
    }
    if let Some(r) = retrieved.as_ref().filter(|_| out.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy"))) {
        let p = scoregen::app::retrieval_cli::write_neighbours(out, r)?;
        eprintln!("  neighbours -> {}", p.display());
    }
    if let Some(r) = report {
        for f in scoregen::app::mcmc_cli::report(&r, out)? {
            eprintln!("  -> {}", f.display());
        }
        if json {
            println!("{}", r.json());
        }
    }
    Ok(())
}

fn cmd_eval(
    cli: &Cli,
    src: &SampleArgs,
    nll_n: usize,
    probes: Probes,
    fisher: Option<&FisherRequest>,
    json: bool,
) -> Result<()> {
    src.retrieval.refuse_in("eval")?;
    let gpu = open(cli)?;
    // A classifier's evaluation is its accuracy per noise level on its training data.
    if let Some(c) = src.checkpoint.as_ref().filter(|c| scoregen::model::Classifier::load(&gpu, c).is_ok()) {
        print!("{}", scoregen::app::classify::accuracy_report(&gpu, c, None)?);
        return Ok(());
    }
    let m = load_model(&gpu, src)?;
    let req = request(&m, src);
    let dir = src.checkpoint.as_ref().and_then(|c| c.parent()).unwrap_or(std::path::Path::new("."));
    for (name, v, unit) in evaluate(&gpu, &m, &req, nll_n, probes, dir, fisher)? {
        if json {
            println!("{}", serde_json::json!({"eval": name, "value": v, "unit": unit}));
        } else {
            println!("{name:<28} {v:>12.5} {unit}");
        }
    }
    Ok(())
}

fn cmd_log_z(cli: &Cli, src: &SampleArgs, json: bool) -> Result<()> {
    let gpu = open(cli)?;
    let m = load_model(&gpu, src)?;
    let req = request(&m, src);
    let (lz, se, r) = scoregen::app::mcmc_cli::log_z(&gpu, m.model.as_ref(), &req, &mut progress("AIS"))?;
    if json {
        println!(
            "{}",
            serde_json::json!({"eval": "log_z", "value": lz, "se": se, "sampler": r.method, "chains": req.n})
        );
    } else {
        eprintln!();
        println!("log Z (AIS, {}, {} chains)  {lz:.5} +- {se:.5}", r.method, req.n);
    }
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    scoregen::progress::set_quiet(cli.quiet);
    match &cli.command {
        Command::Info => cmd_info(&cli),
        Command::Field { src, out, level, lim } => cmd_field(&cli, src, out, *level, *lim),
        Command::Bench { which } => cmd_bench(&cli, which),
        Command::Index { which } => cmd_index(&cli, which),
        Command::Train(a) => cmd_train(&cli, a),
        Command::Sample { src, out, json, shard } => cmd_sample(&cli, src, out, *json, *shard),
        Command::Classify(a) => cmd_classify(&cli, a),
        Command::Merge { inputs, out } => {
            scoregen::app::shard::merge(inputs, out)?;
            eprintln!("{} shards -> {}", inputs.len(), out.display());
            Ok(())
        }
        Command::Eval { src, log_z: true, json, .. } => cmd_log_z(&cli, src, *json),
        Command::Eval { src, nll_n, probes, reference, levels, fisher_n, json, .. } => {
            let fisher = FisherRequest::from_flags(reference, levels, *fisher_n)?;
            cmd_eval(&cli, src, *nll_n, *probes, fisher.as_ref(), *json)
        }
    }
}

fn main() {
    // A bug must still end in one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        eprintln!("error: internal error{at}: {msg} (please report this)");
    }));
    // Mesa's Vulkan device-select layer probes for a Wayland display and prints "error:
    // XDG_RUNTIME_DIR is invalid" twice on headless machines; scoregen picks adapters itself.
    if std::env::var_os("NODEVICE_SELECT").is_none() {
        std::env::set_var("NODEVICE_SELECT", "1");
    }
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}
