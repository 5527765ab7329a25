//! Exact k-nearest-neighbour search on the GPU: a database of N embeddings [N, D] held in chunks
//! (each one buffer, so the database may exceed the largest binding: the device's memory is the
//! limit), queries in batches; per chunk, the tuned GEMM scores the queries against the chunk
//! and `shaders/knn.wgsl` merges the chunk's k best into each query's running k best (k <= 64).
//! Metrics: inner product, cosine (rows and queries normalised) and L2 (by 2 q.x - |x|^2; the
//! reported distance adds |q|^2 back). Ties rank the smaller index first, as the reference does.

use super::kernels::slots::knn as K;
use super::kernels::KnnParams;
use super::matmul::{matmul_out, MatmulOpts};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Recorder};
use crate::tensor::Tensor;

/// Largest k the selection keeps (its private lists).
pub const MAX_K: usize = 64;

/// Database rows per chunk: one GEMM and one selection pass each.
pub const CHUNK_ROWS: usize = 65536;

/// Queries per batch (the score buffer holds QUERY_BATCH x CHUNK_ROWS floats: 64 MiB at 256).
pub const QUERY_BATCH: usize = 256;

/// How the search ranks rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Maximum inner product.
    Ip,
    /// Cosine similarity (rows and queries L2-normalised).
    Cosine,
    /// Euclidean distance (smallest first).
    L2,
}

/// A database on the GPU.
pub struct KnnIndex {
    /// Rows.
    pub n: usize,
    /// Their width.
    pub d: usize,
    /// The ranking.
    pub metric: Metric,
    chunks: Vec<(usize, Tensor, Option<Tensor>)>,
}

/// NaN or infinite values are refused, naming what holds them.
pub fn finite(v: &[f32], what: &str) -> Result<()> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(i) => Err(Error::Invalid(format!("{what}: value {i} is {} (NaN and inf have no neighbours)", v[i]))),
        None => Ok(()),
    }
}

/// Scale each row of `d` values to unit L2 norm (zero rows stay zero): the cosine metric's form.
pub fn normalise(v: &mut [f32], d: usize) {
    for row in v.chunks_mut(d) {
        let n = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        if n > 0.0 {
            row.iter_mut().for_each(|x| *x /= n);
        }
    }
}

impl KnnIndex {
    /// Upload `data` [n, d] in chunks of `chunk_rows` (cosine: rows normalised first).
    pub fn new(gpu: &Gpu, data: &[f32], d: usize, metric: Metric, chunk_rows: usize) -> Result<KnnIndex> {
        if d == 0 || data.is_empty() || !data.len().is_multiple_of(d) {
            return Err(Error::Shape(format!("database of {} values is not rows of {d}", data.len())));
        }
        finite(data, "the database")?;
        let n = data.len() / d;
        let mut chunks = Vec::new();
        for c0 in (0..n).step_by(chunk_rows.max(1)) {
            let rows = (n - c0).min(chunk_rows.max(1));
            let mut part = data[c0 * d..(c0 + rows) * d].to_vec();
            if metric == Metric::Cosine {
                normalise(&mut part, d);
            }
            let norms = (metric == Metric::L2).then(|| part.chunks(d).map(|r| r.iter().map(|x| x * x).sum()).collect());
            let norms: Option<Vec<f32>> = norms;
            // Stored transposed [d, rows]: the GEMM reads it as it is, no transpose per search.
            let mut tr = vec![0f32; rows * d];
            for (r, row) in part.chunks(d).enumerate() {
                for (j, &v) in row.iter().enumerate() {
                    tr[j * rows + r] = v;
                }
            }
            let t = Tensor::from_slice(gpu, &tr, &[d, rows])?;
            let nt = norms.map(|v| Tensor::from_slice(gpu, &v, &[rows])).transpose()?;
            chunks.push((c0, t, nt));
        }
        Ok(KnnIndex { n, d, metric, chunks })
    }

    /// The k nearest rows of each query [m, d]: (scores [m, k], indices [m, k]), best first.
    /// Scores: inner product or cosine similarity; for L2 the squared distance.
    pub fn search(&self, gpu: &Gpu, queries: &[f32], k: usize) -> Result<(Vec<f32>, Vec<u32>)> {
        if k == 0 || k > MAX_K {
            return Err(Error::Invalid(format!("k = {k}: the search keeps 1 to {MAX_K} neighbours")));
        }
        if k > self.n {
            return Err(Error::Invalid(format!("k = {k} neighbours of a database of {} rows", self.n)));
        }
        if !queries.len().is_multiple_of(self.d) {
            return Err(Error::Shape(format!("queries of {} values are not rows of {}", queries.len(), self.d)));
        }
        finite(queries, "the queries")?;
        let mut q = queries.to_vec();
        if self.metric == Metric::Cosine {
            normalise(&mut q, self.d);
        }
        let m = q.len() / self.d;
        let (mut vals, mut idx) = (Vec::with_capacity(m * k), Vec::with_capacity(m * k));
        for q0 in (0..m).step_by(QUERY_BATCH) {
            let rows = (m - q0).min(QUERY_BATCH);
            let (v, i) = self.search_batch(gpu, &q[q0 * self.d..(q0 + rows) * self.d], k)?;
            vals.extend(v);
            idx.extend(i);
        }
        if self.metric == Metric::L2 {
            for (r, row) in vals.chunks_mut(k).enumerate() {
                let qn: f32 = q[r * self.d..(r + 1) * self.d].iter().map(|x| x * x).sum();
                row.iter_mut().for_each(|v| *v = (qn - *v).max(0.0));
            }
        }
        Ok((vals, idx))
    }

    /// Every row's k nearest other rows [n, k] (`rows`: the data the index holds, [n, d]).
    pub fn neighbour_table(&self, gpu: &Gpu, rows: &[f32], k: usize) -> Result<Vec<u32>> {
        let own: Vec<u32> = (0..self.n as u32).collect();
        self.search_excluding(gpu, rows, &own, k)
    }

    /// The k nearest entries [m, k] of queries that are entries themselves (query i is entry
    /// own[i]): one search with k + 1, the entry itself dropped (where a duplicate ranks before
    /// it, the last).
    pub fn search_excluding(&self, gpu: &Gpu, queries: &[f32], own: &[u32], k: usize) -> Result<Vec<u32>> {
        if k + 1 > self.n {
            return Err(Error::Invalid(format!("k = {k} other rows of a database of {} rows", self.n)));
        }
        let (_, idx) = self.search(gpu, queries, k + 1)?;
        let mut out = Vec::with_capacity(own.len() * k);
        for (row, &me) in idx.chunks(k + 1).zip(own) {
            let at = row.iter().position(|&i| i == me).unwrap_or(k);
            out.extend(row.iter().enumerate().filter(|&(j, _)| j != at).map(|(_, &i)| i));
        }
        Ok(out)
    }

    fn search_batch(&self, gpu: &Gpu, q: &[f32], k: usize) -> Result<(Vec<f32>, Vec<u32>)> {
        let m = q.len() / self.d;
        let qt = Tensor::from_slice(gpu, q, &[m, self.d])?;
        let top_v = Tensor::zeros(gpu, &[m * k])?;
        let top_i = Tensor::zeros(gpu, &[m * k])?;
        let widest = self.chunks.iter().map(|c| c.1.shape()[1]).max().unwrap_or(1);
        let scores = Tensor::empty(gpu, &[m * widest])?;
        let dummy = Tensor::zeros(gpu, &[1])?;
        let mut rec = Recorder::new(gpu);
        let pipe =
            rec.pipeline("knn", "select_topk", &[("METRIC", if self.metric == Metric::L2 { 1.0 } else { 0.0 })])?;
        for (ci, (c0, chunk, norms)) in self.chunks.iter().enumerate() {
            let rows = chunk.shape()[1];
            let s = Tensor::view(scores.buffer().clone(), &[m, rows])?;
            matmul_out(&mut rec, &qt, chunk, &s, MatmulOpts::default())?;
            let (m32, first) = (m as u32, (ci == 0) as u32);
            let params =
                KnnParams { m: m32, nc: rows as u32, k: k as u32, base: *c0 as u32, first, ..Default::default() };
            let pi = rec.params(&params);
            let nb = norms.as_ref().unwrap_or(&dummy);
            let bind =
                [(K::S, s.buffer()), (K::NORMS, nb.buffer()), (K::TOP_V, top_v.buffer()), (K::TOP_I, top_i.buffer())];
            rec.dispatch_at(&pipe, Some(pi), &bind, [m32.min(65535), m32.div_ceil(65535), 1])?;
        }
        rec.finish()?;
        Ok((top_v.to_vec(gpu)?, top_i.to_u32(gpu)?))
    }
}

/// The plain-loop reference (f64 scores, the same order and ties): (scores, indices) [m, k].
pub fn knn_ref(data: &[f32], d: usize, queries: &[f32], k: usize, metric: Metric) -> (Vec<f64>, Vec<u32>) {
    let (mut db, mut q) = (data.to_vec(), queries.to_vec());
    if metric == Metric::Cosine {
        normalise(&mut db, d);
        normalise(&mut q, d);
    }
    let mut vals = Vec::new();
    let mut idx = Vec::new();
    for qr in q.chunks(d) {
        let mut all: Vec<(f64, u32)> = db
            .chunks(d)
            .enumerate()
            .map(|(i, x)| {
                let dot: f64 = qr.iter().zip(x).map(|(a, b)| *a as f64 * *b as f64).sum();
                let s = match metric {
                    Metric::L2 => -x.iter().zip(qr).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum::<f64>(),
                    _ => dot,
                };
                (s, i as u32)
            })
            .collect();
        all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        for &(s, i) in &all[..k] {
            vals.push(if metric == Metric::L2 { -s } else { s });
            idx.push(i);
        }
    }
    (vals, idx)
}
