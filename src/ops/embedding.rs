//! Sinusoidal and Gaussian-Fourier embeddings of a per-sample scalar (shaders/embedding.wgsl).

use super::{dim, grid};
use crate::error::{Error, Result};
use crate::gpu::Recorder;
use crate::tensor::Tensor;

/// Noise-level embeddings.
#[derive(Clone, Debug)]
pub enum Embedding {
    /// DDPM / transformer sinusoids with the given max period (10,000 is usual).
    Sinusoidal {
        /// The longest period.
        max_period: f32,
    },
    /// Gaussian Fourier features with fixed frequencies `w` ([dim / 2]).
    Fourier {
        /// The frequencies.
        w: Tensor,
    },
}

/// t: [N] -> [N, dim].
pub fn embed(rec: &mut Recorder, t: &Tensor, dim_out: usize, kind: &Embedding) -> Result<Tensor> {
    if t.shape().len() != 1 {
        return Err(Error::Shape(format!("embedding wants t [N], got {:?}", t.shape())));
    }
    if dim_out < 2 {
        return Err(Error::Shape(format!("embedding dimension {dim_out} must be at least 2")));
    }
    let n = t.shape()[0];
    let out = Tensor::empty(rec.gpu, &[n, dim_out])?;
    if n == 0 {
        return Ok(out);
    }
    let (fourier, w, max_period) = match kind {
        Embedding::Sinusoidal { max_period } => (false, t, *max_period),
        Embedding::Fourier { w } => {
            if w.shape() != [dim_out / 2] {
                return Err(Error::Shape(format!("fourier embedding: w {:?} should be [{}]", w.shape(), dim_out / 2)));
            }
            (true, w, 0.0)
        }
    };
    let pipe = rec.pipeline("embedding", "embed", &[("FOURIER", fourier as u32 as f64)])?;
    let pi =
        rec.params(&super::kernels::EmbeddingParams { n: dim(n, "n")?, dim: dim(dim_out, "dim")?, max_period, p0: 0 });
    let g = grid(rec, n * dim_out, 256)?;
    rec.dispatch(&pipe, Some(pi), &[t.buffer(), w.buffer(), out.buffer()], g)?;
    Ok(out)
}

/// CPU reference; `w` is Some for Fourier features.
pub fn embed_ref(t: &[f32], dim_out: usize, max_period: f32, w: Option<&[f32]>) -> Vec<f32> {
    let half = dim_out / 2;
    let mut out = vec![0f32; t.len() * dim_out];
    for (n, &tn) in t.iter().enumerate() {
        for k in 0..half {
            let arg = match w {
                Some(w) => 2.0 * std::f64::consts::PI * tn as f64 * w[k] as f64,
                None => tn as f64 * (-(max_period as f64).ln() * k as f64 / half as f64).exp(),
            };
            out[n * dim_out + k] = arg.sin() as f32;
            out[n * dim_out + half + k] = arg.cos() as f32;
        }
    }
    out
}
