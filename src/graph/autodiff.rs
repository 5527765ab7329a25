//! Reverse-mode differentiation. Each op's derivative is written with graph ops (next to the
//! others, below), so a gradient is itself a differentiable graph: `grad` of a scalar built
//! from gradients gives second derivatives (what the energy parameterisation needs).

use super::{Graph, Op, Var};
use crate::error::{Error, Result};
use crate::ops::elementwise::{Binary, Unary};
use crate::ops::reduce::Reduce;
use std::collections::HashMap;

/// Gradients of the scalar `y` (one element) with respect to each of `wrt`, as new nodes of
/// the graph. A variable `y` does not depend on gets zeros.
pub fn grad(g: &mut Graph, y: Var, wrt: &[Var]) -> Result<Vec<Var>> {
    if g.shape(y).iter().product::<usize>() != 1 {
        return Err(Error::Shape(format!("grad needs a scalar output, got shape {:?}", g.shape(y))));
    }
    // Which nodes depend on a `wrt` variable (only those need gradients).
    let mut needs = vec![false; y.0 + 1];
    for w in wrt {
        if w.0 <= y.0 {
            needs[w.0] = true;
        }
    }
    for i in 0..=y.0 {
        if !needs[i] && g.nodes[i].inputs.iter().any(|v| v.0 <= y.0 && needs[v.0]) {
            needs[i] = true;
        }
    }
    let mut grads: HashMap<usize, Var> = HashMap::new();
    let shape = g.shape(y).to_vec();
    let seed = g.fill(1.0, &shape);
    grads.insert(y.0, seed);
    for i in (0..=y.0).rev() {
        let Some(&gy) = grads.get(&i) else { continue };
        if !needs[i] {
            continue;
        }
        let node = g.nodes[i].clone();
        let gin = backward(g, Var(i), &node.op, &node.inputs, gy)?;
        for (inp, gi) in node.inputs.iter().zip(gin) {
            let Some(gi) = gi else { continue };
            if !needs[inp.0] {
                continue;
            }
            let total = match grads.get(&inp.0) {
                Some(&prev) => g.add(prev, gi)?,
                None => gi,
            };
            grads.insert(inp.0, total);
        }
    }
    wrt.iter()
        .map(|w| match grads.get(&w.0) {
            Some(&v) => Ok(v),
            None => {
                let shape = g.shape(*w).to_vec();
                Ok(g.fill(0.0, &shape))
            }
        })
        .collect()
}

/// Gradients of a node's inputs given the gradient `gy` of its output (None: no gradient).
fn backward(g: &mut Graph, y: Var, op: &Op, inputs: &[Var], gy: Var) -> Result<Vec<Option<Var>>> {
    let x = inputs.first().copied();
    Ok(match op {
        Op::Input(_) | Op::Param(_) | Op::Fill(_) | Op::Constant(_) | Op::Random { .. } => vec![],
        Op::Conv2d { .. } | Op::Conv2dBwdInput { .. } | Op::Conv2dBwdWeight { .. } => conv_backward(g, op, inputs, gy)?,
        Op::Upsample2x => vec![Some(g.downsample2x_sum(gy))],
        Op::Downsample2xSum => vec![Some(g.upsample2x(gy)?)],
        Op::Concat { axis } => {
            let la = g.shape(inputs[0])[*axis];
            let lb = g.shape(inputs[1])[*axis];
            vec![Some(g.slice(gy, *axis, 0, la)?), Some(g.slice(gy, *axis, la, lb)?)]
        }
        Op::Slice { axis, start } => {
            let full = g.shape(inputs[0])[*axis];
            vec![Some(g.pad(gy, *axis, *start, full))]
        }
        Op::Pad { axis, start } => {
            let len = g.shape(inputs[0])[*axis];
            vec![Some(g.slice(gy, *axis, *start, len)?)]
        }
        Op::Unary(u) => vec![unary_backward(g, *u, x.unwrap(), y, gy)?],
        Op::Binary(b) => binary_backward(g, *b, inputs[0], inputs[1], y, gy)?,
        Op::Reduce(r, axis) => reduce_backward(g, *r, *axis, x.unwrap(), y, gy)?,
        Op::Reshape => {
            let xs = g.shape(x.unwrap()).to_vec();
            vec![Some(g.reshape(gy, &xs)?)]
        }
        Op::BroadcastTo => {
            let xs = g.shape(x.unwrap()).to_vec();
            vec![Some(g.sum_to(gy, &xs)?)]
        }
        Op::Matmul { trans_a, trans_b } => matmul_backward(g, inputs[0], inputs[1], *trans_a, *trans_b, gy)?,
        Op::GroupNorm { .. } | Op::GroupNormBwd { .. } => group_norm_backward(g, op, inputs, gy)?,
        Op::Softmax => {
            // dx = y * (g - sum(g * y, last axis))
            let last = g.shape(y).len() - 1;
            let gyy = g.mul(gy, y)?;
            let s = g.reduce_keep(Reduce::Sum, gyy, last)?;
            let d = g.sub(gy, s)?;
            vec![Some(g.mul(y, d)?)]
        }
    })
}

/// The three convolution ops are the partial derivatives of one trilinear form T(x, w, y) (see
/// shaders/conv2d.wgsl), so each one's derivatives are the other two.
fn conv_backward(g: &mut Graph, op: &Op, inputs: &[Var], gy: Var) -> Result<Vec<Option<Var>>> {
    Ok(match op {
        Op::Conv2d { stride, pad } => {
            let (x, w) = (inputs[0], inputs[1]);
            let (xs, ws) = (g.shape(x).to_vec(), g.shape(w).to_vec());
            let gx = g.conv2d_bwd_input(gy, w, &xs, *stride, *pad);
            let gw = g.conv2d_bwd_weight(gy, x, &ws, *stride, *pad);
            let mut v = vec![Some(gx), Some(gw)];
            if inputs.len() == 3 {
                let c = ws[0];
                let gb = g.sum_to(gy, &[1, c, 1, 1])?;
                v.push(Some(g.reshape(gb, &[c])?));
            }
            v
        }
        Op::Conv2dBwdInput { stride, pad } => {
            // z = dT/dx (g, w): dz/dg -> conv2d(gz, w); dz/dw -> dT/dw (g, gz)
            let (gg, w) = (inputs[0], inputs[1]);
            let ws = g.shape(w).to_vec();
            let d_g = g.conv2d(gy, w, None, *stride, *pad)?;
            let d_w = g.conv2d_bwd_weight(gg, gy, &ws, *stride, *pad);
            vec![Some(d_g), Some(d_w)]
        }
        Op::Conv2dBwdWeight { stride, pad } => {
            // u = dT/dw (g, x): du/dg -> conv2d(x, gu); du/dx -> dT/dx (g, gu)
            let (gg, x) = (inputs[0], inputs[1]);
            let xs = g.shape(x).to_vec();
            let d_g = g.conv2d(x, gy, None, *stride, *pad)?;
            let d_x = g.conv2d_bwd_input(gg, gy, &xs, *stride, *pad);
            vec![Some(d_g), Some(d_x)]
        }
        _ => unreachable!("conv_backward takes convolution ops"),
    })
}

fn reduce_backward(g: &mut Graph, r: Reduce, axis: usize, x: Var, y: Var, gy: Var) -> Result<Vec<Option<Var>>> {
    let xs = g.shape(x).to_vec();
    let gb = g.broadcast_to(gy, &xs)?;
    let gx = match r {
        Reduce::Sum => gb,
        Reduce::Mean => g.scale(gb, 1.0 / xs[axis] as f32),
        Reduce::Max => {
            // Every maximal element gets the gradient (ties share it fully).
            let yb = g.broadcast_to(y, &xs)?;
            let hit = g.binary(Binary::Equal, x, yb)?;
            g.mul(gb, hit)?
        }
        Reduce::LogSumExp => {
            let yb = g.broadcast_to(y, &xs)?;
            let d = g.sub(x, yb)?;
            let p = g.unary(Unary::Exp, d);
            g.mul(gb, p)?
        }
    };
    Ok(vec![Some(gx)])
}

/// Group norm and its fused adjoint (second order through the adjoint's composed expansion).
fn group_norm_backward(g: &mut Graph, op: &Op, inputs: &[Var], gy: Var) -> Result<Vec<Option<Var>>> {
    Ok(match op {
        Op::GroupNorm { groups, eps } => {
            // gx by the fused adjoint; dgamma = sum over (b, spatial) of gy * xhat, dbeta = sum of gy.
            let (x, gamma) = (inputs[0], inputs[1]);
            let c = g.shape(gamma)[0];
            let gx = g.group_norm_bwd(gy, x, gamma, *groups, *eps)?;
            let (ones, zeros) = (g.fill(1.0, &[c]), g.fill(0.0, &[c]));
            let xhat = g.group_norm(x, ones, zeros, *groups, *eps)?;
            let gxh = g.mul(gy, xhat)?;
            let dgamma = per_channel_sum(g, gxh)?;
            let dbeta = per_channel_sum(g, gy)?;
            vec![Some(gx), Some(dgamma), Some(dbeta)]
        }
        Op::GroupNormBwd { groups, eps } => {
            // Differentiate the composed expansion of the adjoint (second order), built on
            // fresh copies of the inputs: partial derivatives only, nothing flows on into the
            // inputs' own ancestors (the outer pass does that).
            let leaves: Vec<Var> = inputs.iter().map(|&v| g.identity(v)).collect();
            let gx = group_norm_bwd_composed(g, leaves[0], leaves[1], leaves[2], *groups, *eps)?;
            let w = g.mul(gx, gy)?;
            let l = g.sum_all(w)?;
            grad(g, l, &leaves)?.into_iter().map(Some).collect()
        }
        _ => unreachable!("group_norm_backward takes group norm ops"),
    })
}

fn unary_backward(g: &mut Graph, u: Unary, x: Var, y: Var, gy: Var) -> Result<Option<Var>> {
    use Unary::*;
    let d = match u {
        Neg => return Ok(Some(g.neg(gy))),
        AddScalar(_) => return Ok(Some(gy)),
        MulScalar(s) | Affine(s, _) => return Ok(Some(g.scale(gy, s))),
        Step | Sign | InRange(..) => return Ok(None),
        Exp => y,
        Log => g.unary(Recip, x),
        Sqrt => {
            let r = g.unary(Recip, y);
            g.scale(r, 0.5)
        }
        Rsqrt => {
            // d/dx x^(-1/2) = -1/2 y^3
            let y2 = g.mul(y, y)?;
            let y3 = g.mul(y2, y)?;
            g.scale(y3, -0.5)
        }
        Square => g.scale(x, 2.0),
        // One fused kernel for g * silu'(x); its own derivative is composed (silu_grad_backward).
        Silu => return Ok(Some(g.binary(Binary::SiluGrad, gy, x)?)),
        Tanh => {
            let y2 = g.mul(y, y)?;
            g.unary(Affine(-1.0, 1.0), y2)
        }
        Sigmoid => {
            let one_minus = g.unary(Affine(-1.0, 1.0), y);
            g.mul(y, one_minus)?
        }
        Softplus => g.unary(Sigmoid, x),
        Clamp(lo, hi) => g.unary(InRange(lo, hi), x),
        Abs => g.unary(Sign, x),
        Relu => g.unary(Step, x),
        PowScalar(p) => {
            let t = g.unary(PowScalar(p - 1.0), x);
            g.scale(t, p)
        }
        Sin => g.unary(Cos, x),
        Cos => {
            let s = g.unary(Sin, x);
            g.neg(s)
        }
        SiluPrime => g.unary(SiluSecond, x),
        SiluSecond => g.unary(SiluThird, x),
        SiluThird => silu_fourth(g, x)?,
        Recip => {
            let y2 = g.mul(y, y)?;
            g.neg(y2)
        }
    };
    Ok(Some(g.mul(gy, d)?))
}

fn binary_backward(g: &mut Graph, op: Binary, a: Var, b: Var, y: Var, gy: Var) -> Result<Vec<Option<Var>>> {
    let (sa, sb) = (g.shape(a).to_vec(), g.shape(b).to_vec());
    let (ga, gb) = match op {
        Binary::Add => (Some(gy), Some(gy)),
        Binary::Sub => (Some(gy), Some(g.neg(gy))),
        Binary::Mul => (Some(g.mul(gy, b)?), Some(g.mul(gy, a)?)),
        Binary::Div => {
            // d/da = 1/b, d/db = -a/b^2 = -y/b
            let ga = g.div(gy, b)?;
            let t = g.mul(gy, y)?;
            let t = g.div(t, b)?;
            (Some(ga), Some(g.neg(t)))
        }
        Binary::Max | Binary::Min => {
            let ha = g.binary(Binary::Equal, a, y)?;
            let hb = g.binary(Binary::Equal, b, y)?;
            (Some(g.mul(gy, ha)?), Some(g.mul(gy, hb)?))
        }
        Binary::First => (Some(gy), None),
        Binary::Equal => (None, None),
        Binary::SiluGrad => {
            // y = a silu'(b): dy/da = silu'(b), dy/db = a silu''(b)
            let d1 = g.unary(Unary::SiluPrime, b);
            let d2 = g.unary(Unary::SiluSecond, b);
            let ga = g.mul(gy, d1)?;
            let t = g.mul(gy, a)?;
            (Some(ga), Some(g.mul(t, d2)?))
        }
    };
    let ga = match ga {
        Some(v) => Some(g.sum_to(v, &sa)?),
        None => None,
    };
    let gb = match gb {
        Some(v) => Some(g.sum_to(v, &sb)?),
        None => None,
    };
    Ok(vec![ga, gb])
}

/// C = op(A) op(B): dA and dB as matmuls with the transposes folded in; a rank-2 operand
/// broadcast over a batch gets its gradient summed over the batch.
fn matmul_backward(g: &mut Graph, a: Var, b: Var, ta: bool, tb: bool, gy: Var) -> Result<Vec<Option<Var>>> {
    let ga = if ta { g.matmul(b, gy, tb, true)? } else { g.matmul(gy, b, false, !tb)? };
    let gb = if tb { g.matmul(gy, a, true, ta)? } else { g.matmul(a, gy, !ta, false)? };
    let (sa, sb) = (g.shape(a).to_vec(), g.shape(b).to_vec());
    let ga = if g.shape(ga).len() > sa.len() { g.sum(ga, 0)? } else { ga };
    let gb = if g.shape(gb).len() > sb.len() { g.sum(gb, 0)? } else { gb };
    Ok(vec![Some(ga), Some(gb)])
}

/// silu''''(x) = q (a T + a^2 - 8 q - 6 x q a), T = 3 a + x a^2 - 2 x q, q = s (1 - s),
/// a = 1 - 2 s, from primitive ops (SiluThird's derivative; higher orders compose from here).
fn silu_fourth(g: &mut Graph, x: Var) -> Result<Var> {
    let s = g.unary(Unary::Sigmoid, x);
    let one_minus = g.unary(Unary::Affine(-1.0, 1.0), s);
    let q = g.mul(s, one_minus)?;
    let a = g.unary(Unary::Affine(-2.0, 1.0), s);
    let a2 = g.mul(a, a)?;
    let xq = g.mul(x, q)?;
    // T = 3a + x a^2 - 2 x q
    let xa2 = g.mul(x, a2)?;
    let a3 = g.scale(a, 3.0);
    let t = g.add(a3, xa2)?;
    let xq2 = g.scale(xq, 2.0);
    let t = g.sub(t, xq2)?;
    // a T + a^2 - 8 q - 6 x q a
    let at = g.mul(a, t)?;
    let inner = g.add(at, a2)?;
    let q8 = g.scale(q, 8.0);
    let inner = g.sub(inner, q8)?;
    let xqa = g.mul(xq, a)?;
    let xqa6 = g.scale(xqa, 6.0);
    let inner = g.sub(inner, xqa6)?;
    g.mul(q, inner)
}

/// Sum of t [B, C, ...] over every axis but 1: [C].
fn per_channel_sum(g: &mut Graph, t: Var) -> Result<Var> {
    let s = g.shape(t).to_vec();
    let sp: usize = s[2..].iter().product();
    let t3 = g.reshape(t, &[s[0], s[1], sp])?;
    let a = g.reduce(Reduce::Sum, t3, 2)?;
    g.reduce(Reduce::Sum, a, 0)
}

/// The group norm adjoint written with primitive ops: rstd (gg - mean(gg) - xhat mean(gg
/// xhat)), gg = gy gamma, means over each (b, group).
fn group_norm_bwd_composed(g: &mut Graph, gy: Var, x: Var, gamma: Var, groups: usize, eps: f32) -> Result<Var> {
    let s = g.shape(x).to_vec();
    let sp: usize = s[2..].iter().product();
    let per = s[1] / groups * sp;
    let gm = g.reshape(gamma, &[s[1], 1])?;
    let gy3 = g.reshape(gy, &[s[0], s[1], sp])?;
    let gg = g.mul(gy3, gm)?;
    let gg = g.reshape(gg, &[s[0], groups, per])?;
    let xg = g.reshape(x, &[s[0], groups, per])?;
    let mean = g.reduce_keep(Reduce::Mean, xg, 2)?;
    let xc = g.sub(xg, mean)?;
    let sq = g.unary(Unary::Square, xc);
    let var = g.reduce_keep(Reduce::Mean, sq, 2)?;
    let ve = g.unary(Unary::AddScalar(eps), var);
    let rstd = g.unary(Unary::Rsqrt, ve);
    let xhat = g.mul(xc, rstd)?;
    let m1 = g.reduce_keep(Reduce::Mean, gg, 2)?;
    let ggx = g.mul(gg, xhat)?;
    let m2 = g.reduce_keep(Reduce::Mean, ggx, 2)?;
    let t = g.mul(xhat, m2)?;
    let d = g.sub(gg, m1)?;
    let d = g.sub(d, t)?;
    let gx = g.mul(d, rstd)?;
    g.reshape(gx, &s)
}
