//! Nearest x2 upsampling and concatenation (shaders/layout.wgsl).

use super::{dim, grid};
use crate::error::{Error, Result};
use crate::gpu::Recorder;
use crate::ops::reduce::split_axis;
use crate::tensor::Tensor;

/// x [B, C, H, W] -> [B, C, 2H, 2W], each pixel repeated 2x2.
pub fn upsample2x(rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
    let s = x.shape();
    if s.len() != 4 {
        return Err(Error::Shape(format!("upsample2x wants [B, C, H, W], got {s:?}")));
    }
    let y = Tensor::empty(rec.gpu, &[s[0], s[1], 2 * s[2], 2 * s[3]])?;
    let n = y.numel();
    if n == 0 {
        return Ok(y);
    }
    let pipe = rec.pipeline("layout", "upsample2x", &[])?;
    let pi = rec.params(&[dim(n, "elements")?, dim(s[2], "h")?, dim(s[3], "w")?, 0u32]);
    let g = grid(rec, n, 256)?;
    rec.dispatch_at(&pipe, Some(pi), &[(1, x.buffer()), (3, y.buffer())], g)?;
    Ok(y)
}

pub fn upsample2x_ref(x: &[f32], s: &[usize]) -> Vec<f32> {
    let (h, w) = (s[2], s[3]);
    let planes = s[0] * s[1];
    let mut y = vec![0f32; planes * 4 * h * w];
    for p in 0..planes {
        for i in 0..2 * h {
            for j in 0..2 * w {
                y[(p * 2 * h + i) * 2 * w + j] = x[(p * h + i / 2) * w + j / 2];
            }
        }
    }
    y
}

/// Concatenate a and b along `axis` (all other dims equal). Channel concat of NCHW: axis 1.
pub fn concat(rec: &mut Recorder, a: &Tensor, b: &Tensor, axis: usize) -> Result<Tensor> {
    let (sa, sb) = (a.shape(), b.shape());
    let same_rest = sa.len() == sb.len() && sa.iter().zip(sb).enumerate().all(|(i, (x, y))| i == axis || x == y);
    if !same_rest || axis >= sa.len() {
        return Err(Error::Shape(format!("concat along axis {axis}: {sa:?} and {sb:?} differ elsewhere")));
    }
    let (outer, la, inner) = split_axis(sa, axis)?;
    let lb = sb[axis];
    let mut shape = sa.to_vec();
    shape[axis] = la + lb;
    let y = Tensor::empty(rec.gpu, &shape)?;
    let n = y.numel();
    if n == 0 {
        return Ok(y);
    }
    let _ = outer;
    let pipe = rec.pipeline("layout", "concat", &[])?;
    let pi = rec.params(&[dim(n, "elements")?, dim(la, "a length")?, dim(lb, "b length")?, dim(inner, "inner")?]);
    let g = grid(rec, n, 256)?;
    rec.dispatch(&pipe, Some(pi), &[a.buffer(), b.buffer(), y.buffer()], g)?;
    Ok(y)
}

pub fn concat_ref(a: &[f32], sa: &[usize], b: &[f32], sb: &[usize], axis: usize) -> Vec<f32> {
    let (outer, la, inner) = split_axis(sa, axis).unwrap();
    let lb = sb[axis];
    let mut y = Vec::with_capacity(a.len() + b.len());
    for o in 0..outer {
        y.extend_from_slice(&a[o * la * inner..(o + 1) * la * inner]);
        y.extend_from_slice(&b[o * lb * inner..(o + 1) * lb * inner]);
    }
    y
}

/// Swap the last two axes: [.., R, C] -> [.., C, R].
pub fn transpose(rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
    let s = x.shape();
    if s.len() < 2 {
        return Err(Error::Shape(format!("transpose wants rank >= 2, got {s:?}")));
    }
    let mut shape = s.to_vec();
    shape.swap(s.len() - 2, s.len() - 1);
    let y = Tensor::empty(rec.gpu, &shape)?;
    let n = y.numel();
    if n == 0 {
        return Ok(y);
    }
    let pipe = rec.pipeline("layout", "transpose", &[])?;
    let pi = rec.params(&[dim(n, "elements")?, dim(s[s.len() - 2], "rows")?, dim(s[s.len() - 1], "columns")?, 0u32]);
    let g = grid(rec, n, 256)?;
    rec.dispatch_at(&pipe, Some(pi), &[(1, x.buffer()), (3, y.buffer())], g)?;
    Ok(y)
}

pub fn transpose_ref(x: &[f32], s: &[usize]) -> Vec<f32> {
    let (r, c) = (s[s.len() - 2], s[s.len() - 1]);
    let mut y = vec![0f32; x.len()];
    for b in 0..x.len() / (r * c).max(1) {
        for i in 0..r {
            for j in 0..c {
                y[b * r * c + j * r + i] = x[b * r * c + i * c + j];
            }
        }
    }
    y
}
