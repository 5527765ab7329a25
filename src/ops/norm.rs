//! Group normalisation and row softmax (shaders/groupnorm.wgsl, shaders/softmax.wgsl).

use super::dim;
use super::kernels::slots::groupnorm as G;
use super::kernels::{GroupNormParams, SoftmaxParams};
use crate::error::{Error, Result};
use crate::gpu::{fold_groups, Recorder};
use crate::tensor::Tensor;

/// y = group_norm(x) * gamma + beta over x: [B, C, ...]; returns (y, stats [B, G, 2] = mean, rstd).
pub fn group_norm(
    rec: &mut Recorder,
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    groups: usize,
    eps: f32,
) -> Result<(Tensor, Tensor)> {
    let s = x.shape();
    if s.len() < 2 {
        return Err(Error::Shape(format!("group_norm wants x [B, C, ...], got {s:?}")));
    }
    let (b, c) = (s[0], s[1]);
    if groups == 0 || c % groups != 0 {
        return Err(Error::Shape(format!("group_norm: {c} channels of x {s:?} do not split into {groups} groups")));
    }
    if gamma.shape() != [c] || beta.shape() != [c] {
        return Err(Error::Shape(format!(
            "group_norm: gamma {:?} and beta {:?} should be [{c}]",
            gamma.shape(),
            beta.shape()
        )));
    }
    let sp: usize = s[2..].iter().product();
    let y = Tensor::empty(rec.gpu, s)?;
    let stats = Tensor::empty(rec.gpu, &[b, groups, 2])?;
    let n_wg = dim(b * groups, "group_norm groups")?;
    if n_wg == 0 || sp == 0 {
        return Ok((y, stats));
    }
    let params = GroupNormParams {
        batch: dim(b, "batch")?,
        c: dim(c, "channels")?,
        s: dim(sp, "spatial")?,
        groups: dim(groups, "groups")?,
        eps,
        count: n_wg,
        ..Default::default()
    };
    // A workgroup of 256 per (b, group): each invocation walks count / 256 elements 3 times.
    super::loop_guard(rec, 3 * (c / groups * sp).div_ceil(256) + 16, || format!("group_norm of x {s:?}"))?;
    let pipe = rec.pipeline("groupnorm", "group_norm", &[])?;
    let pi = rec.params(&params);
    let g = fold_groups(n_wg, rec.gpu.max_groups_per_dim())?;
    rec.dispatch(&pipe, Some(pi), &[x.buffer(), gamma.buffer(), beta.buffer(), y.buffer(), stats.buffer()], g)?;
    Ok((y, stats))
}

/// CPU reference: (y, stats).
pub fn group_norm_ref(
    x: &[f32],
    s: &[usize],
    gamma: &[f32],
    beta: &[f32],
    groups: usize,
    eps: f32,
) -> (Vec<f32>, Vec<f32>) {
    let (b, c) = (s[0], s[1]);
    let sp: usize = s[2..].iter().product();
    let cpg = c / groups;
    let mut y = vec![0f32; x.len()];
    let mut stats = vec![0f32; b * groups * 2];
    for n in 0..b {
        for g in 0..groups {
            let base = (n * c + g * cpg) * sp;
            let vals = &x[base..base + cpg * sp];
            let mean = vals.iter().map(|&v| v as f64).sum::<f64>() / vals.len() as f64;
            let var = vals.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / vals.len() as f64;
            let rstd = 1.0 / (var + eps as f64).sqrt();
            for (i, &v) in vals.iter().enumerate() {
                let ch = g * cpg + i / sp;
                y[base + i] = ((v as f64 - mean) * rstd * gamma[ch] as f64 + beta[ch] as f64) as f32;
            }
            stats[(n * groups + g) * 2] = mean as f32;
            stats[(n * groups + g) * 2 + 1] = rstd as f32;
        }
    }
    (y, stats)
}

/// Softmax over the last axis.
pub fn softmax(rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
    let y = Tensor::empty(rec.gpu, x.shape())?;
    softmax_into(rec, x, &y)?;
    Ok(y)
}

/// Record the softmax of x over its last axis into y.
pub fn softmax_into(rec: &mut Recorder, x: &Tensor, y: &Tensor) -> Result<()> {
    let len = *x.shape().last().ok_or_else(|| Error::Shape("softmax of a scalar".into()))?;
    if y.shape() != x.shape() {
        return Err(Error::Shape(format!("softmax: output {:?} differs from input {:?}", y.shape(), x.shape())));
    }
    let rows = x.numel() / len.max(1);
    if rows == 0 || len == 0 {
        return Ok(());
    }
    // A workgroup of 64 per row: each invocation loops over len / 64 elements twice.
    super::loop_guard(rec, 2 * len.div_ceil(64) + 8, || format!("softmax over rows of {len}"))?;
    let pipe = rec.pipeline("softmax", "softmax_rows", &[])?;
    let pi =
        rec.params(&SoftmaxParams { rows: dim(rows, "rows")?, len: dim(len, "row length")?, ..Default::default() });
    let g = fold_groups(dim(rows, "rows")?, rec.gpu.max_groups_per_dim())?;
    rec.dispatch(&pipe, Some(pi), &[x.buffer(), y.buffer()], g)
}

/// Its plain-loop reference.
pub fn softmax_ref(x: &[f32], len: usize) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    for (xr, yr) in x.chunks(len).zip(y.chunks_mut(len)) {
        let m = xr.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(v as f64));
        let z: f64 = xr.iter().map(|&v| (v as f64 - m).exp()).sum();
        for (o, &v) in yr.iter_mut().zip(xr) {
            *o = ((v as f64 - m).exp() / z) as f32;
        }
    }
    y
}

/// Fused group norm for the graph: y = (x - mean) rstd gamma + beta per (b, group) of x [B, C,
/// ...] (shaders/groupnorm.wgsl: a coefficient kernel with one invocation per (b, g), then one
/// element-wise pass).
pub fn group_norm_into(
    rec: &mut Recorder,
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    groups: usize,
    eps: f32,
    y: &Tensor,
) -> Result<()> {
    gn_fused(rec, "gn_coef", x, gamma, beta, groups, eps, y)
}

/// Its gradient with respect to x: gx = rstd (gy gamma - mean(gy gamma) - xhat mean(gy gamma
/// xhat)) per (b, group), means over the group's elements.
pub fn group_norm_bwd_into(
    rec: &mut Recorder,
    gy: &Tensor,
    x: &Tensor,
    gamma: &Tensor,
    groups: usize,
    eps: f32,
    gx: &Tensor,
) -> Result<()> {
    gn_fused(rec, "gn_bwd_coef", x, gamma, gy, groups, eps, gx)
}

#[allow(clippy::too_many_arguments)]
fn gn_fused(
    rec: &mut Recorder,
    entry: &'static str,
    x: &Tensor,
    gamma: &Tensor,
    third: &Tensor,
    groups: usize,
    eps: f32,
    out: &Tensor,
) -> Result<()> {
    let s = x.shape();
    if s.len() < 2 || groups == 0 || !s[1].is_multiple_of(groups) || gamma.shape() != [s[1]] {
        return Err(Error::Shape(format!(
            "group norm of x {s:?} in {groups} groups with gamma {:?}: needs x [B, C, ...], C a multiple of the groups, gamma [C]",
            gamma.shape()
        )));
    }
    let bwd = entry == "gn_bwd_coef";
    let want3: Vec<usize> = if bwd { s.to_vec() } else { vec![s[1]] };
    if third.shape() != want3.as_slice() || out.shape() != s {
        return Err(Error::Shape(format!(
            "group norm of x {s:?}: {} {:?} and output {:?}",
            if bwd { "gy" } else { "beta" },
            third.shape(),
            out.shape()
        )));
    }
    let (b, c) = (s[0], s[1]);
    let sp: usize = s[2..].iter().product();
    let n = x.numel();
    if n == 0 {
        return Ok(());
    }
    // One invocation walks a (b, group) row: two passes of n / 64 loop iterations (plus tails)
    // and a loop over the group's channels, which with the gradient walks each channel's
    // S elements 64 at a time.
    let (cpg, per) = (c / groups, c / groups * sp);
    let iters = 2 * (per / 64 + 64) + cpg * if bwd { sp / 64 + sp % 64 + 2 } else { 1 };
    super::loop_guard(rec, iters, || format!("group norm of x {s:?} in {groups} groups (rows of {per} elements)"))?;
    let rows = dim(b * groups, "group norm rows")?;
    let coef = Tensor::view(rec.gpu.scratch(7, (b * c * 16) as u64), &[b * c, 4])?;
    let base = GroupNormParams {
        batch: dim(b, "batch")?,
        c: c as u32,
        s: sp as u32,
        groups: groups as u32,
        eps,
        ..Default::default()
    };
    let params = |count: u32| GroupNormParams { count, ..base };
    let pipe = rec.pipeline("groupnorm", entry, &[])?;
    let pi = rec.params(&params(rows));
    let g = crate::ops::grid(rec, rows as usize, 64)?;
    rec.dispatch_at(
        &pipe,
        Some(pi),
        &[(G::X, x.buffer()), (G::GAMMA, gamma.buffer()), (G::GY_IN, third.buffer()), (G::COEF, coef.buffer())],
        g,
    )?;
    let gy = if bwd { third } else { x };
    let (apply, count, wg) = if n.is_multiple_of(4) { ("gn_apply4", n / 4, 256) } else { ("gn_apply", n, 256) };
    let pipe = rec.pipeline("groupnorm", apply, &[("BWD", bwd as u32 as f64), ("GHW", sp.max(1) as f64)])?;
    let pi = rec.params(&params(dim(count, "group norm elements")?));
    let g = crate::ops::grid(rec, count, wg)?;
    rec.dispatch_at(
        &pipe,
        Some(pi),
        &[(G::X4, x.buffer()), (G::COEF_R, coef.buffer()), (G::GY4, gy.buffer()), (G::OUT4, out.buffer())],
        g,
    )
}
