//! `scoregen bench`: the benchmark programs' options and their dispatch.

use crate::{open, Cli};
use clap::Subcommand;
use scoregen::bench::{self, Report};
use scoregen::{Error, Result};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum BenchCmd {
    /// W3: square fp32 GEMM, ours beside the naive kernel.
    Gemm {
        /// Sizes to run.
        #[arg(long, value_delimiter = ',', default_value = "256,512,1024,2048")]
        sizes: Vec<usize>,
        /// Largest n for the (slow) naive baseline.
        #[arg(long, default_value_t = 1024)]
        naive_max: usize,
        /// One JSON object per figure.
        #[arg(long)]
        json: bool,
    },
    /// W4: fused attention forward.
    Attention {
        #[arg(long)]
        json: bool,
    },
    /// W2: the 28x28 U-Net: parameters, training steps/s at batch 64, forward batches/s at 256.
    Unet {
        /// First timed training step (earlier ones are warm-up).
        #[arg(long, default_value_t = 5)]
        from: usize,
        /// Steps run in all.
        #[arg(long, default_value_t = 25)]
        to: usize,
        /// Time the U-Net of this training config (28x28 images) at its train.batch instead of W2's.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// W1 sampling: annealed Langevin, 10,000 chains x 1,000 steps of the W1 network.
    Sample {
        #[arg(long, default_value_t = 10000)]
        chains: usize,
        #[arg(long, default_value_t = 100)]
        steps_per_level: usize,
        /// Train the W1 network this many steps first (0: random weights, speed only).
        #[arg(long, default_value_t = 0)]
        train_steps: usize,
        /// Seed of the training run (weights, batches) and of the sampler.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Instead: the cost of guidance per PF-ODE step (conditional, classifier-free,
        /// classifier-guided, the classifier alone) on W1's network, --steps-per-level steps.
        #[arg(long)]
        guidance: bool,
        /// Rounds of the guidance figures (medians).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        #[arg(long)]
        json: bool,
    },
    /// The guidance trade-off on the 8-Gaussian ring: classifier-free guidance of a conditional
    /// model and classifier guidance of an unconditional one over --weights (docs/guidance/ring8.sh).
    Guide2d {
        #[arg(long)]
        conditional: PathBuf,
        #[arg(long)]
        unconditional: PathBuf,
        #[arg(long)]
        classifier: PathBuf,
        #[arg(long, value_delimiter = ',', allow_hyphen_values = true, default_value = "0,1,3,8")]
        weights: Vec<f32>,
        #[arg(long, default_value_t = 4000)]
        n: usize,
        /// Folder for the pictures.
        #[arg(long, default_value = ".")]
        out: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// The database swap on the 8-Gaussian ring: one retrieval-conditioned model sampled with
    /// each database (fractions near each mode, sliced W2 to the ring, one picture).
    Retrieval2d {
        #[arg(long)]
        checkpoint: PathBuf,
        /// An unconditional model of the ring, for comparison.
        #[arg(long)]
        unconditional: Option<PathBuf>,
        #[arg(long, value_delimiter = ',', required = true)]
        databases: Vec<PathBuf>,
        #[arg(long, default_value_t = 4000)]
        n: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Folder for the picture.
        #[arg(long, default_value = ".")]
        out: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Du et al.'s 2-D composition table from the models docs/du2d/table.sh trains.
    Du2d {
        /// The folder with one subfolder per seed.
        #[arg(long)]
        models: PathBuf,
        #[arg(long, value_delimiter = ',', default_value = "0,1")]
        seeds: Vec<u64>,
        /// Samples per run (and true samples for W2).
        #[arg(long, default_value_t = 1000)]
        n: usize,
        /// Print the table from the JSON lines of earlier runs (--json) in this file instead.
        #[arg(long)]
        table: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Sampler steps inside an application's frames (embed) against the CLI's batched
    /// submission: the same plan and steps, per-frame encoders against 256 steps per submission.
    Embed {
        #[arg(long, default_value = "gmm:ring8")]
        model: String,
        #[arg(long, default_value = "heun")]
        sampler: String,
        #[arg(long, default_value_t = 100)]
        steps: usize,
        #[arg(long, default_value_t = 10000)]
        batch: usize,
        #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
        per_frame: Vec<usize>,
        #[arg(long, default_value_t = 5)]
        repeats: usize,
        #[arg(long)]
        json: bool,
    },
    /// Exact kNN search: N rows x D dims, Q queries, k neighbours (compare src/bench/knn_numpy.py).
    Knn {
        #[arg(long, default_value_t = 1_000_000)]
        n: usize,
        #[arg(long, value_delimiter = ',', default_value = "64,512")]
        dims: Vec<usize>,
        #[arg(long, default_value_t = 256)]
        queries: usize,
        #[arg(long, default_value_t = 10)]
        k: usize,
        #[arg(long)]
        json: bool,
    },
    /// MCMC cost per score evaluation (langevin, ula, mala, hmc) on W1's network as an energy
    /// model, and its ratio to plain Langevin's.
    Mcmc {
        #[arg(long, default_value_t = 10000)]
        chains: usize,
        /// Network evaluations per chain of each sampler.
        #[arg(long, default_value_t = 100)]
        evals: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        json: bool,
    },
    /// Training steps/s of every objective (dsm, ssm, ssm-vr, esm, nce) on W1's MLP, score and
    /// energy parameterisations, relative to DSM and to the score model in the same run.
    Objectives {
        #[arg(long, default_value_t = 4096)]
        batch: usize,
        /// Timed steps per row (after a tenth as warm-up).
        #[arg(long, default_value_t = 40)]
        steps: usize,
        /// MLP hidden widths (default W1's).
        #[arg(long, value_delimiter = ',', default_value = "256,256,256")]
        hidden: Vec<usize>,
        /// MLP nonlinearity: silu (W1's) or softplus.
        #[arg(long, value_enum, default_value = "silu")]
        activation: scoregen::score::Activation,
        #[arg(long)]
        json: bool,
    },
    /// W1: training steps per second of the score MLP (forward, backward, Adam).
    Mlp {
        /// Timed steps (after 50 warm-up steps).
        #[arg(long, default_value_t = 500)]
        steps: usize,
        #[arg(long)]
        json: bool,
    },
}

pub fn cmd_bench(cli: &Cli, which: &BenchCmd) -> Result<()> {
    let gpu = open(cli)?;
    match which {
        BenchCmd::Gemm { sizes, naive_max, json } => bench::gemm::run(&gpu, sizes, *naive_max, &Report { json: *json }),
        BenchCmd::Attention { json } => bench::attention::run(&gpu, &Report { json: *json }),
        BenchCmd::Unet { from, to, config, json } => {
            if from >= to {
                return Err(Error::Invalid(format!("--from {from} must be below --to {to}")));
            }
            let cfg = config
                .as_ref()
                .map(|p| Ok::<_, Error>((p.display().to_string(), scoregen::config::Config::load(p)?)))
                .transpose()?;
            bench::unet::run(&gpu, *from, *to, cfg.as_ref().map(|(f, c)| (f.as_str(), c)), &Report { json: *json })
        }
        BenchCmd::Mlp { steps: 0, .. } => Err(Error::Invalid("--steps 0: time at least 1 step".into())),
        BenchCmd::Sample { steps_per_level: 0, .. } | BenchCmd::Sample { chains: 0, .. } => {
            Err(Error::Invalid("--steps-per-level and --chains must be at least 1".into()))
        }
        BenchCmd::Guide2d { conditional, unconditional, classifier, weights, n, out, json } => {
            let sweep = bench::guide2d::Sweep {
                conditional: conditional.clone(),
                unconditional: unconditional.clone(),
                classifier: classifier.clone(),
                weights: weights.clone(),
                n: (*n).max(8),
                out: out.clone(),
            };
            bench::guide2d::check(&sweep)?;
            bench::guide2d::run(&gpu, &sweep, *json)
        }
        BenchCmd::Retrieval2d { checkpoint, unconditional, databases, n, seed, out, json } => {
            let swap = bench::retrieval2d::Swap {
                checkpoint: checkpoint.clone(),
                unconditional: unconditional.clone(),
                databases: databases.clone(),
                n: (*n).max(8),
                seed: *seed,
                out: out.clone(),
            };
            bench::retrieval2d::run(&gpu, &swap, *json)
        }
        BenchCmd::Du2d { n, .. } if *n < 2 => Err(Error::Invalid("--n: at least 2 samples".into())),
        BenchCmd::Du2d { table: Some(t), n, .. } => {
            let text = std::fs::read_to_string(t).map_err(|e| Error::io(format!("{}: cannot read", t.display()), e))?;
            print!("{}", bench::du2d::table_from_lines(&text, *n)?);
            Ok(())
        }
        BenchCmd::Du2d { models, seeds, n, json, .. } => bench::du2d::run(&gpu, models, seeds, *n, *json),
        BenchCmd::Embed { per_frame, .. } if per_frame.contains(&0) => {
            Err(Error::Invalid("--per-frame: at least 1 step per frame".into()))
        }
        BenchCmd::Embed { model, sampler, steps, batch, per_frame, repeats, json } => {
            let (model, sampler, per_frame) = (model.clone(), sampler.clone(), per_frame.clone());
            let setup =
                bench::embed::Setup { model, sampler, steps: *steps, batch: *batch, per_frame, repeats: *repeats };
            bench::embed::run(&gpu, &setup, &Report { json: *json })
        }
        BenchCmd::Knn { n, dims, queries, k, json } => {
            if *n == 0 || *queries == 0 || dims.contains(&0) {
                return Err(Error::Invalid("--n, --queries and --dims must be at least 1".into()));
            }
            bench::knn::run(&gpu, *n, dims, *queries, *k, &Report { json: *json })
        }
        BenchCmd::Mcmc { chains: 0, .. } | BenchCmd::Mcmc { evals: 0, .. } => {
            Err(Error::Invalid("--chains and --evals must be at least 1".into()))
        }
        BenchCmd::Mcmc { chains, evals, seed, json } => {
            bench::mcmc::run(&gpu, *chains, *evals, *seed, &Report { json: *json })
        }
        BenchCmd::Objectives { batch: 0, .. } | BenchCmd::Objectives { steps: 0, .. } => {
            Err(Error::Invalid("--batch and --steps must be at least 1".into()))
        }
        BenchCmd::Objectives { batch, steps, hidden, activation, json } => {
            if hidden.is_empty() || hidden.contains(&0) {
                return Err(Error::Invalid(format!("--hidden {hidden:?}: every layer needs at least one unit")));
            }
            let net = bench::objectives::Net { hidden: hidden.clone(), act: *activation };
            bench::objectives::run(&gpu, &net, *batch, *steps, &Report { json: *json })
        }
        BenchCmd::Mlp { steps, json } => bench::mlp::run(&gpu, *steps, &Report { json: *json }),
        BenchCmd::Sample { chains, steps_per_level, guidance: true, rounds, json, .. } => {
            bench::guidance::run(&gpu, *chains, *steps_per_level, (*rounds).max(1), &Report { json: *json })
        }
        BenchCmd::Sample { chains, steps_per_level, train_steps, seed, json, .. } => {
            bench::sample::run(&gpu, *chains, *steps_per_level, *train_steps, *seed, &Report { json: *json })
        }
    }
}
