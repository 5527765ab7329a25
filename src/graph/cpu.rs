//! Plain-loop f64 evaluation of a graph: the executable spec the GPU plan is tested against,
//! and the function the finite-difference checks differentiate.

use super::{Graph, Node, Op, Var};
use crate::error::{Error, Result};
use crate::ops::elementwise::broadcast_strides;
use crate::ops::matmul::MatmulOpts;
use crate::ops::reduce::split_axis;
use std::collections::{BTreeMap, HashMap};

/// Values by name for `Param` and `Input` nodes.
pub type Feeds = BTreeMap<String, Vec<f64>>;

/// Evaluate `outputs` of `g` in f64 on the host (the executable spec of every op).
pub fn eval(g: &Graph, outputs: &[Var], feeds: &Feeds) -> Result<Vec<Vec<f64>>> {
    let top = outputs.iter().map(|v| v.0).max().unwrap_or(0);
    let mut vals: HashMap<usize, Vec<f64>> = HashMap::new();
    for i in 0..=top {
        let n = &g.nodes[i];
        let v = {
            let x = |k: usize| &vals[&n.inputs[k].0][..];
            let shp = |k: usize| g.shape(n.inputs[k]);
            node_f64(n, &x, &shp, feeds)?
        };
        vals.insert(i, v);
    }
    Ok(outputs.iter().map(|o| vals[&o.0].clone()).collect())
}

type Inputs<'a> = dyn Fn(usize) -> &'a [f64] + 'a;
type Shapes<'a> = dyn Fn(usize) -> &'a [usize] + 'a;

/// One node's value from its inputs' (`x(k)`, shapes `shp(k)`).
fn node_f64<'a>(n: &Node, x: &Inputs<'a>, shp: &Shapes<'a>, feeds: &Feeds) -> Result<Vec<f64>> {
    let numel: usize = n.shape.iter().product();
    Ok(match &n.op {
        Op::Input(name) | Op::Param(name) => {
            let v = feeds.get(name).ok_or_else(|| Error::Invalid(format!("no value for '{name}'")))?.clone();
            if v.len() != numel {
                return Err(Error::Shape(format!("'{name}' has {} values, shape {:?}", v.len(), n.shape)));
            }
            v
        }
        Op::Fill(c) => vec![*c as f64; numel],
        Op::Unary(u) => x(0).iter().map(|&a| u.eval(a)).collect(),
        Op::Binary(b) => crate::ops::elementwise::binary_f64(*b, x(0), shp(0), x(1), shp(1))?.0,
        Op::Reduce(r, axis) => crate::ops::reduce::reduce_f64(*r, x(0), shp(0), *axis)?,
        Op::Reshape => x(0).to_vec(),
        Op::BroadcastTo => {
            let st = broadcast_strides(shp(0), &n.shape);
            (0..numel)
                .map(|i| {
                    let (mut rem, mut ia) = (i, 0);
                    for d in (0..n.shape.len()).rev() {
                        ia += (rem % n.shape[d]) * st[d];
                        rem /= n.shape[d];
                    }
                    x(0)[ia]
                })
                .collect()
        }
        Op::Matmul { trans_a, trans_b } => {
            let o = MatmulOpts { trans_a: *trans_a, trans_b: *trans_b, config: None };
            crate::ops::matmul::matmul_f64(x(0), shp(0), x(1), shp(1), o)?.0
        }
        Op::Constant(d) => d.iter().map(|&v| v as f64).collect(),
        // The first draw (a plan's first run).
        Op::Random { dist, seed, stream } => {
            let key = crate::ops::random::RngKey { seed: *seed, stream: *stream, counter: 0 };
            crate::ops::random::random_ref(numel, key, *dist).into_iter().map(|v| v as f64).collect()
        }
        Op::Conv2d { .. } | Op::Conv2dBwdInput { .. } | Op::Conv2dBwdWeight { .. } => conv_node(n, x, shp),
        Op::Upsample2x | Op::Downsample2xSum | Op::Concat { .. } | Op::Slice { .. } | Op::Pad { .. } => {
            layout_node(n, x, shp)?
        }
        Op::GroupNorm { groups, eps } => gn_f64(x(0), shp(0), x(1), Some(x(2)), None, *groups, *eps),
        Op::GroupNormBwd { groups, eps } => gn_f64(x(1), shp(1), x(2), None, Some(x(0)), *groups, *eps),
        Op::Softmax => {
            let len = *n.shape.last().unwrap();
            let mut out = vec![0.0; numel];
            for (xr, yr) in x(0).chunks(len).zip(out.chunks_mut(len)) {
                let m = xr.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = xr.iter().map(|a| (a - m).exp()).sum();
                for (y, a) in yr.iter_mut().zip(xr) {
                    *y = (a - m).exp() / z;
                }
            }
            out
        }
    })
}

/// conv2d and its two adjoints by the convolution's loops.
fn conv_node<'a>(n: &Node, x: &Inputs<'a>, shp: &Shapes<'a>) -> Vec<f64> {
    let numel: usize = n.shape.iter().product();
    let (Op::Conv2d { stride, pad } | Op::Conv2dBwdInput { stride, pad } | Op::Conv2dBwdWeight { stride, pad }) = &n.op
    else {
        unreachable!("conv_node takes convolution nodes")
    };
    let o = crate::ops::conv::Conv2dOpts::new(*stride, *pad);
    let mut out = vec![0.0; numel];
    match &n.op {
        Op::Conv2d { .. } => {
            let (xs, ws) = (shp(0), shp(1));
            crate::ops::conv::conv_loops(xs, ws, &n.shape, o, |xi, wi, yi| out[yi] += x(0)[xi] * x(1)[wi]);
            if n.inputs.len() == 3 {
                let hw = n.shape[2] * n.shape[3];
                for (i, v) in out.iter_mut().enumerate() {
                    *v += x(2)[(i / hw) % n.shape[1]];
                }
            }
        }
        Op::Conv2dBwdInput { .. } => {
            let ys = shp(0);
            crate::ops::conv::conv_loops(&n.shape, shp(1), ys, o, |xi, wi, yi| out[xi] += x(0)[yi] * x(1)[wi]);
        }
        _ => {
            let ys = shp(0);
            crate::ops::conv::conv_loops(shp(1), &n.shape, ys, o, |xi, wi, yi| out[wi] += x(0)[yi] * x(1)[xi]);
        }
    }
    out
}

/// The layout ops: nearest upsampling, its adjoint, concatenation, slicing and padding.
fn layout_node<'a>(n: &Node, x: &Inputs<'a>, shp: &Shapes<'a>) -> Result<Vec<f64>> {
    let numel: usize = n.shape.iter().product();
    Ok(match &n.op {
        Op::Upsample2x => {
            let (h, w) = (n.shape[2], n.shape[3]);
            (0..numel)
                .map(|i| {
                    let (p, r) = (i / (h * w), i % (h * w));
                    x(0)[(p * (h / 2) + (r / w) / 2) * (w / 2) + (r % w) / 2]
                })
                .collect()
        }
        Op::Downsample2xSum => {
            let mut out = vec![0.0; numel];
            let (h, w) = (n.shape[2], n.shape[3]);
            for (i, v) in x(0).iter().enumerate() {
                let (p, r) = (i / (4 * h * w), i % (4 * h * w));
                out[(p * h + (r / (2 * w)) / 2) * w + (r % (2 * w)) / 2] += v;
            }
            out
        }
        Op::Concat { axis } => {
            let (outer, la, inner) = split_axis(shp(0), *axis)?;
            let lb = shp(1)[*axis];
            let mut out = Vec::with_capacity(numel);
            for o in 0..outer {
                out.extend_from_slice(&x(0)[o * la * inner..(o + 1) * la * inner]);
                out.extend_from_slice(&x(1)[o * lb * inner..(o + 1) * lb * inner]);
            }
            out
        }
        Op::Slice { axis, start } => {
            let (outer, l, inner) = split_axis(shp(0), *axis)?;
            let len = n.shape[*axis];
            let mut out = Vec::with_capacity(numel);
            for o in 0..outer {
                out.extend_from_slice(&x(0)[(o * l + start) * inner..(o * l + start + len) * inner]);
            }
            out
        }
        Op::Pad { axis, start } => {
            let (outer, l, inner) = split_axis(&n.shape, *axis)?;
            let len = shp(0)[*axis];
            let mut out = vec![0.0; numel];
            for o in 0..outer {
                out[(o * l + start) * inner..(o * l + start + len) * inner]
                    .copy_from_slice(&x(0)[o * len * inner..(o + 1) * len * inner]);
            }
            out
        }
        _ => unreachable!("layout_node takes layout nodes"),
    })
}

/// Central finite differences of the scalar output `y` with respect to the feed `name`.
pub fn finite_diff(g: &Graph, y: Var, feeds: &Feeds, name: &str, eps: f64) -> Result<Vec<f64>> {
    let base = feeds.get(name).ok_or_else(|| Error::Invalid(format!("no feed '{name}'")))?;
    let mut out = Vec::with_capacity(base.len());
    let mut f = feeds.clone();
    for i in 0..base.len() {
        f.get_mut(name).unwrap()[i] = base[i] + eps;
        let up = eval(g, &[y], &f)?[0][0];
        f.get_mut(name).unwrap()[i] = base[i] - eps;
        let down = eval(g, &[y], &f)?[0][0];
        f.get_mut(name).unwrap()[i] = base[i];
        out.push((up - down) / (2.0 * eps));
    }
    Ok(out)
}

/// Group norm in f64: y = xhat gamma + beta (beta given), or the x-gradient given gy:
/// rstd (gy gamma - mean(gy gamma) - xhat mean(gy gamma xhat)) over each (b, group).
fn gn_f64(
    x: &[f64],
    s: &[usize],
    gamma: &[f64],
    beta: Option<&[f64]>,
    gy: Option<&[f64]>,
    groups: usize,
    eps: f32,
) -> Vec<f64> {
    let (c, sp) = (s[1], s[2..].iter().product::<usize>());
    let n = c / groups * sp;
    let mut out = vec![0.0; x.len()];
    for (r, row) in x.chunks(n).enumerate() {
        let mean = row.iter().sum::<f64>() / n as f64;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
        let rstd = 1.0 / (var + eps as f64).sqrt();
        let ch = |t: usize| (r % groups) * (c / groups) + t / sp;
        let xhat = |t: usize| (row[t] - mean) * rstd;
        match (beta, gy) {
            (Some(beta), _) => {
                for t in 0..n {
                    out[r * n + t] = xhat(t) * gamma[ch(t)] + beta[ch(t)];
                }
            }
            (_, Some(gy)) => {
                let gg = |t: usize| gy[r * n + t] * gamma[ch(t)];
                let m1 = (0..n).map(gg).sum::<f64>() / n as f64;
                let m2 = (0..n).map(|t| gg(t) * xhat(t)).sum::<f64>() / n as f64;
                for t in 0..n {
                    out[r * n + t] = rstd * (gg(t) - m1 - xhat(t) * m2);
                }
            }
            _ => unreachable!(),
        }
    }
    out
}
