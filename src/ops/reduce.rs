//! Reductions along one axis: sum, mean, max, logsumexp (shaders/reduce.wgsl).

use super::{dim, grid};
use crate::error::{Error, Result};
use crate::gpu::{fold_groups, Recorder};
use crate::tensor::Tensor;

/// Reductions along an axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduce {
    /// The sum.
    Sum,
    /// The mean.
    Mean,
    /// The maximum.
    Max,
    /// log sum exp, stabilised by the maximum.
    LogSumExp,
}

/// (outer, len, inner) view of `shape` around `axis`.
pub fn split_axis(shape: &[usize], axis: usize) -> Result<(usize, usize, usize)> {
    if axis >= shape.len() {
        return Err(Error::Shape(format!("axis {axis} is out of range for shape {shape:?}")));
    }
    Ok((shape[..axis].iter().product(), shape[axis], shape[axis + 1..].iter().product()))
}

/// Reduce `x` along `axis`; the axis is removed from the output shape.
pub fn reduce(rec: &mut Recorder, op: Reduce, x: &Tensor, axis: usize) -> Result<Tensor> {
    split_axis(x.shape(), axis)?;
    let mut shape = x.shape().to_vec();
    shape.remove(axis);
    let out = Tensor::empty(rec.gpu, &shape)?;
    reduce_into(rec, op, x, axis, &out)?;
    Ok(out)
}

/// Reduce into an existing tensor with outer * inner elements (any shape, e.g. keepdim).
pub fn reduce_into(rec: &mut Recorder, op: Reduce, x: &Tensor, axis: usize, out: &Tensor) -> Result<()> {
    let (outer, len, inner) = split_axis(x.shape(), axis)?;
    if len == 0 {
        return Err(Error::Shape(format!("{op:?} over an empty axis {axis} of {:?}", x.shape())));
    }
    let n_out = outer * inner;
    if out.numel() != n_out {
        return Err(Error::Shape(format!(
            "{op:?} of {:?} along {axis}: output {:?} has the wrong size",
            x.shape(),
            out.shape()
        )));
    }
    if n_out == 0 {
        return Ok(());
    }
    // Long strided axes with few outputs (a bias gradient: 4096 rows of 256): reduce chunks
    // of the axis first, then the chunk results -- every op here is associative over equal
    // chunks (the mean of equal-size means is the mean; logsumexp of logsumexps is one).
    if len >= 512 && n_out < 4096 && inner >= 32 {
        if let Some(chunks) = (8..=64).rev().find(|c| len % c == 0) {
            let part = Tensor::empty(rec.gpu, &[outer, chunks, inner])?;
            reduce_into(rec, op, &x.reshape(&[outer * chunks, len / chunks, inner])?, 1, &part)?;
            return reduce_into(rec, op, &part, 1, out);
        }
    }
    let params = super::kernels::ReduceParams {
        outer: dim(outer, "outer")?,
        len: dim(len, "axis length")?,
        inner: dim(inner, "inner")?,
        n_out: dim(n_out, "outputs")?,
    };
    // Long axes with few outputs: a workgroup per output (on a CPU adapter only for under 16
    // outputs: its barriers are costly there, and 16 rows keep its cores busy); contiguous rows
    // of whole vec4s: an invocation per row reading vec4s; otherwise an invocation per output.
    let rows4 = inner == 1 && len % 4 == 0;
    // One invocation walking the whole axis loops len / 4 (rows4) or len times; llvmpipe ends
    // an invocation's loops after 65,535 iterations, so longer axes take the tree.
    let long = if rows4 { len / 4 } else { len } > super::loop_budget(rec);
    let tree = long || (len >= 512 && n_out < 4096 && !(rec.gpu.is_cpu() && rows4 && n_out >= 16));
    // The tree's invocations loop len / 256 times: past the loop budget, split the axis
    // into equal chunks (every op here is associative over them), reduced in two passes.
    if tree && len.div_ceil(256) > super::loop_budget(rec) {
        let budget = super::loop_budget(rec);
        match (2..=len).find(|c| len % c == 0 && (len / c).div_ceil(256) <= budget) {
            Some(c) => {
                let part = Tensor::empty(rec.gpu, &[outer, c, inner])?;
                reduce_into(rec, op, &x.reshape(&[outer * c, len / c, inner])?, 1, &part)?;
                return reduce_into(rec, op, &part, 1, out);
            }
            None => super::loop_guard(rec, len.div_ceil(256), || format!("{op:?} over an axis of {len}"))?,
        }
    }
    let (entry, g) = if tree {
        ("reduce_tree", fold_groups(dim(n_out, "outputs")?, rec.gpu.max_groups_per_dim())?)
    } else if rows4 {
        ("reduce_rows4", grid(rec, n_out, 64)?)
    } else {
        ("reduce_lanes", grid(rec, n_out, 256)?)
    };
    let pipe = rec.pipeline("reduce", entry, &[("OP", op as u32 as f64)])?;
    let pi = rec.params(&params);
    rec.dispatch(&pipe, Some(pi), &[x.buffer(), out.buffer()], g)
}

/// CPU reference (f64).
pub fn reduce_ref(op: Reduce, x: &[f32], shape: &[usize], axis: usize) -> Result<Vec<f32>> {
    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    Ok(reduce_f64(op, &x64, shape, axis)?.into_iter().map(|v| v as f32).collect())
}

/// The same in f64 throughout (the graph's CPU evaluator uses it).
pub fn reduce_f64(op: Reduce, x: &[f64], shape: &[usize], axis: usize) -> Result<Vec<f64>> {
    let (outer, len, inner) = split_axis(shape, axis)?;
    let mut out = vec![0f64; outer * inner];
    for o in 0..outer {
        for j in 0..inner {
            let vals = (0..len).map(|t| x[(o * len + t) * inner + j]);
            out[o * inner + j] = match op {
                Reduce::Sum => vals.sum(),
                Reduce::Mean => vals.sum::<f64>() / len as f64,
                Reduce::Max => vals.fold(f64::NEG_INFINITY, f64::max),
                Reduce::LogSumExp => {
                    let v: Vec<f64> = vals.collect();
                    let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    m + v.iter().map(|a| (a - m).exp()).sum::<f64>().ln()
                }
            };
        }
    }
    Ok(out)
}
