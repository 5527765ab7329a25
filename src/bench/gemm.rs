//! W3: fp32 C = A B for square n; our tuned kernel beside the naive one-invocation-per-output
//! kernel, measured in the same run, and the same product with the fused bias + SiLU epilogue
//! of the networks' linear layers (its time against the plain product's: the epilogue should
//! cost next to nothing; rolled store loops once made it 3-4x).

use super::{best_time, Figure, Report};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::ops::matmul::{matmul, matmul_epilogue, matmul_naive, tuned_config, Epilogue, MatmulOpts};
use crate::tensor::Tensor;

/// Run the benchmark, printing its figures.
pub fn run(gpu: &Gpu, sizes: &[usize], naive_max: usize, report: &Report) -> Result<()> {
    let cfg = tuned_config(gpu);
    report.note(&format!(
        "adapter: {}; matmul tiles (small,large): {} (autotuned, cached)",
        gpu.describe(),
        cfg.name()
    ));
    for &n in sizes {
        if n == 0 {
            return Err(Error::Invalid("bench gemm --sizes: every size must be at least 1".into()));
        }
        // Within the device's binding size before the host data is built.
        drop(Tensor::empty(gpu, &[n, n])?);
        let data: Vec<f32> = (0..n * n).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
        let a = Tensor::from_slice(gpu, &data, &[n, n])?;
        let b = Tensor::from_slice(gpu, &data, &[n, n])?;
        let flop = 2.0 * (n as f64).powi(3);
        let t = best_time(gpu, 5, |rec| matmul(rec, &a, &b, MatmulOpts::default()).map(|_| ()))?;
        let ours = flop / t / 1e9;
        let field = || vec![("n", n.to_string())];
        report.emit(Figure { bench: "gemm", fields: field(), imp: "scoregen".into(), value: ours, unit: "GFLOP/s" });
        let bias = Tensor::from_slice(gpu, &data[..n], &[n])?;
        let c = Tensor::empty(gpu, &[n, n])?;
        let ep = Epilogue { bias: Some(&bias), silu: true };
        let te = best_time(gpu, 5, |rec| matmul_epilogue(rec, &a, &b, &c, MatmulOpts::default(), ep))?;
        report.emit(Figure {
            bench: "gemm",
            fields: field(),
            imp: "scoregen+bias+silu/scoregen".into(),
            value: te / t,
            unit: "x time",
        });
        if n <= naive_max {
            let tn = best_time(gpu, 2, |rec| matmul_naive(rec, &a, &b).map(|_| ()))?;
            let naive = flop / tn / 1e9;
            report.emit(Figure {
                bench: "gemm",
                fields: field(),
                imp: "naive-wgsl".into(),
                value: naive,
                unit: "GFLOP/s",
            });
            report.emit(Figure {
                bench: "gemm",
                fields: field(),
                imp: "scoregen/naive".into(),
                value: ours / naive,
                unit: "x",
            });
        }
    }
    if let Some(p) = gpu.profile_report() {
        report.note(&p);
    }
    Ok(())
}
