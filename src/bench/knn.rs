//! Exact kNN search (ops::knn): N database rows of D random values, Q queries, k neighbours,
//! inner product; the time of one search of all the queries (best of 3, after a warm-up
//! search), beside NumPy/OpenBLAS's brute force (matrix product + argpartition + a sort of the
//! k) measured on the same machine by src/bench/knn_numpy.py.

use super::{Figure, Report};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::ops::knn::{KnnIndex, Metric, CHUNK_ROWS};
use std::time::Instant;

/// Run the benchmark, printing its figures.
pub fn run(gpu: &Gpu, n: usize, dims: &[usize], queries: usize, k: usize, report: &Report) -> Result<()> {
    report.note(&format!("adapter: {}; exact kNN, {n} rows, {queries} queries, k = {k}", gpu.describe()));
    for &d in dims {
        let mut rng = crate::rng::HostRng::new(d as u64);
        let data: Vec<f32> = (0..n * d).map(|_| rng.uniform() as f32 * 2.0 - 1.0).collect();
        let q: Vec<f32> = (0..queries * d).map(|_| rng.uniform() as f32 * 2.0 - 1.0).collect();
        let index = KnnIndex::new(gpu, &data, d, Metric::Ip, CHUNK_ROWS)?;
        drop(data);
        index.search(gpu, &q, k)?;
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let t0 = Instant::now();
            index.search(gpu, &q, k)?;
            best = best.min(t0.elapsed().as_secs_f64());
        }
        let fields =
            || vec![("n", n.to_string()), ("d", d.to_string()), ("queries", queries.to_string()), ("k", k.to_string())];
        report.emit(Figure { bench: "knn", fields: fields(), imp: "scoregen".into(), value: best * 1e3, unit: "ms" });
        let gflops = 2.0 * (n * d * queries) as f64 / best / 1e9;
        report.emit(Figure { bench: "knn", fields: fields(), imp: "scoregen".into(), value: gflops, unit: "GFLOP/s" });
    }
    if let Some(p) = gpu.profile_report() {
        report.note(&p);
    }
    report.note("compare: python3 src/bench/knn_numpy.py (the same sizes, NumPy's matmul + argpartition)");
    Ok(())
}
