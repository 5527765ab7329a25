//! W4: softmax(Q K^T / sqrt(d)) V forward for (batch, heads, tokens, d) = (64, 1, 49, 64) and
//! (16, 4, 256, 32), best of 10 after warm-up, beside PyTorch CPU's figure on the reference
//! machine (the README's Performance section).

use super::{best_time, Figure, Report};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::ops::attention::attention;
use crate::tensor::Tensor;

/// (batch, heads, tokens, d, PyTorch CPU forward ms on the reference machine, median).
pub const SHAPES: [(usize, usize, usize, usize, f64); 2] = [(64, 1, 49, 64, 0.445), (16, 4, 256, 32, 5.375)];

/// Run the benchmark, printing its figures.
pub fn run(gpu: &Gpu, report: &Report) -> Result<()> {
    report.note(&format!("adapter: {}", gpu.describe()));
    for (b, h, n, d, torch_ms) in SHAPES {
        let len = b * h * n * d;
        let data: Vec<f32> = (0..len).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
        let q = Tensor::from_slice(gpu, &data, &[b, h, n, d])?;
        let k = Tensor::from_slice(gpu, &data[..], &[b, h, n, d])?;
        let v = Tensor::from_slice(gpu, &data[..], &[b, h, n, d])?;
        let t = best_time(gpu, 10, |rec| attention(rec, &q, &k, &v, None).map(|_| ()))?;
        let ms = t * 1e3;
        let shape = format!("\"{b}x{h}x{n}x{d}\"");
        let flop = 4.0 * (b * h) as f64 * (n * n * d) as f64;
        report.emit(Figure {
            bench: "attention",
            fields: vec![("shape", shape.clone()), ("pass", "\"forward\"".into())],
            imp: "scoregen".into(),
            value: ms,
            unit: "ms",
        });
        report.emit(Figure {
            bench: "attention",
            fields: vec![("shape", shape.clone()), ("pass", "\"forward\"".into())],
            imp: "scoregen".into(),
            value: flop / t / 1e9,
            unit: "GFLOP/s",
        });
        report.emit(Figure {
            bench: "attention",
            fields: vec![("shape", shape), ("pass", "\"forward\"".into())],
            imp: "scoregen/pytorch-cpu-ref".into(),
            value: ms / torch_ms,
            unit: "x time",
        });
    }
    report.note("forward+backward: the backward pass comes with the autodiff issue (#3)");
    if let Some(p) = gpu.profile_report() {
        report.note(&p);
    }
    Ok(())
}
