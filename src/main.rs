//! The scoregen command line: thin; every command is a call into the library.

use clap::{Parser, Subcommand};
use scoregen::bench::{self, Report};
use scoregen::gpu::{info::adapters_report, BackendChoice};
use scoregen::{Error, Gpu, GpuOptions, Result};

#[derive(Parser)]
#[command(name = "scoregen", version, about = "Score-based generative models on the GPU (wgpu + WGSL)")]
struct Cli {
    /// Graphics API: auto, vulkan, metal, dx12, gl.
    #[arg(long, global = true, env = "SCOREGEN_BACKEND", default_value = "auto")]
    backend: String,
    /// Adapter index as listed by `scoregen info`.
    #[arg(long, global = true, env = "SCOREGEN_ADAPTER")]
    adapter: Option<usize>,
    /// Print GPU time per kernel (timestamp queries) at the end.
    #[arg(long, global = true)]
    profile: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List every adapter with its backend, driver, limits and features.
    Info,
    /// Benchmarks of the shared workloads (figures, not tests).
    Bench {
        #[command(subcommand)]
        which: BenchCmd,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
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

fn open(cli: &Cli) -> Result<Gpu> {
    let backend: BackendChoice = cli.backend.parse()?;
    Gpu::new(&GpuOptions { backend, adapter: cli.adapter, profile: cli.profile })
}

fn run(cli: Cli) -> Result<()> {
    match &cli.command {
        Command::Info => {
            let backend: BackendChoice = cli.backend.parse()?;
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
        Command::Bench { which } => {
            let gpu = open(&cli)?;
            match which {
                BenchCmd::Gemm { sizes, naive_max, json } => {
                    bench::gemm::run(&gpu, sizes, *naive_max, &Report { json: *json })
                }
                BenchCmd::Attention { json } => bench::attention::run(&gpu, &Report { json: *json }),
                BenchCmd::Unet { from, to, json } => {
                    if from >= to {
                        return Err(Error::Invalid(format!("--from {from} must be below --to {to}")));
                    }
                    bench::unet::run(&gpu, *from, *to, &Report { json: *json })
                }
                BenchCmd::Mlp { steps, json } => bench::mlp::run(&gpu, *steps, &Report { json: *json }),
            }
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
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}
