//! The planner's stages: which nodes the outputs need, the matmul-epilogue fusion, buffer
//! liveness, and the lowering of each node to recorded kernels over pooled buffers.

use super::plan::ParamStore;
use super::{Graph, Node, Op, Var};
use crate::error::{Error, Result};
use crate::gpu::pool::{size_class, Usage};
use crate::gpu::{Gpu, PooledBuffer, Recorder};
use crate::ops::conv::{conv2d_bwd_input_into, conv2d_bwd_weight_into, conv2d_into, Conv2dOpts};
use crate::ops::elementwise::{binary_into, broadcast_to_into, unary_into, Binary, Unary};
use crate::ops::layout::{concat_into, downsample2x_sum_into, pad_into, slice_into, upsample2x_into};
use crate::ops::matmul::{matmul_out, MatmulOpts};
use crate::ops::norm::softmax_into;
use crate::ops::reduce::reduce_into;
use crate::tensor::Tensor;
use std::collections::HashMap;
use std::sync::Arc;

/// Nodes 0..=top the outputs need.
pub(super) fn needed(g: &Graph, outputs: &[Var]) -> Vec<bool> {
    let top = outputs.iter().map(|v| v.0).max().unwrap_or(0);
    let mut need = vec![false; top + 1];
    for o in outputs {
        need[o.0] = true;
    }
    for i in (0..=top).rev() {
        if need[i] {
            for v in &g.nodes[i].inputs {
                need[v.0] = true;
            }
        }
    }
    need
}

/// A matmul with its bias (and SiLU) fused into the epilogue.
#[derive(Clone, Copy)]
pub(super) struct Fused {
    a: Var,
    b: Var,
    bias: Var,
    trans_a: bool,
    trans_b: bool,
    silu: bool,
}

/// The fusion's result. `eff[i]`: the values node i actually reads; fused-away nodes (`skip`)
/// read nothing and get no buffer; `fused`: the nodes that run a matmul with an epilogue.
pub(super) struct Fusion {
    pub eff: Vec<Vec<Var>>,
    pub skip: Vec<bool>,
    pub fused: HashMap<usize, Fused>,
}

/// Matmul -> Add(bias [N]) (-> SiLU) runs as one matmul with an epilogue when each
/// intermediate has that single reader and is not an output.
pub(super) fn fuse(g: &Graph, need: &[bool], outputs: &[Var]) -> Fusion {
    let top = need.len() - 1;
    let mut readers = vec![0usize; top + 1];
    for i in (0..=top).filter(|&i| need[i]) {
        for v in &g.nodes[i].inputs {
            readers[v.0] += 1;
        }
    }
    for o in outputs {
        readers[o.0] += 1;
    }
    let mut f = Fusion {
        eff: g.nodes[..=top].iter().map(|n| n.inputs.clone()).collect(),
        skip: vec![false; top + 1],
        fused: HashMap::new(),
    };
    for i in (0..=top).filter(|&i| need[i]) {
        let Op::Binary(Binary::Add) = g.nodes[i].op else { continue };
        let (m, bias) = (g.nodes[i].inputs[0], g.nodes[i].inputs[1]);
        let Op::Matmul { trans_a, trans_b } = g.nodes[m.0].op else { continue };
        let n = *g.nodes[m.0].shape.last().unwrap();
        if readers[m.0] != 1 || g.nodes[bias.0].shape != [n] || g.nodes[i].shape != g.nodes[m.0].shape {
            continue;
        }
        let (a, b) = (g.nodes[m.0].inputs[0], g.nodes[m.0].inputs[1]);
        // The add's single reader a SiLU? Then that node is the fused one.
        let silu = (i + 1..=top).find(|&j| need[j] && g.nodes[j].inputs.contains(&Var(i)));
        let target = match silu {
            Some(j) if readers[i] == 1 && g.nodes[j].op == Op::Unary(Unary::Silu) => {
                f.skip[i] = true;
                f.eff[i].clear();
                j
            }
            _ => i,
        };
        f.skip[m.0] = true;
        f.eff[m.0].clear();
        f.eff[target] = vec![a, b, bias];
        f.fused.insert(target, Fused { a, b, bias, trans_a, trans_b, silu: target != i });
    }
    f
}

/// Storage roots (a reshape shares its input's buffer) and the last node reading each root
/// (outputs: never released).
pub(super) fn liveness(g: &Graph, need: &[bool], eff: &[Vec<Var>], outputs: &[Var]) -> (Vec<usize>, Vec<usize>) {
    let top = need.len() - 1;
    let mut root: Vec<usize> = (0..=top).collect();
    for i in (0..=top).filter(|&i| need[i]) {
        if g.nodes[i].op == Op::Reshape {
            root[i] = root[g.nodes[i].inputs[0].0];
        }
    }
    let mut last_use = vec![0usize; top + 1];
    for i in (0..=top).filter(|&i| need[i]) {
        for v in &eff[i] {
            last_use[root[v.0]] = last_use[root[v.0]].max(i);
        }
    }
    for o in outputs {
        last_use[root[o.0]] = usize::MAX;
    }
    (root, last_use)
}

/// The lowering's state: values made so far, free intermediate buffers by size class, and the
/// bytes the plan owns.
pub(super) struct Lowering<'a> {
    pub gpu: &'a Gpu,
    pub g: &'a Graph,
    pub params: &'a ParamStore,
    pub rec: Recorder<'a>,
    pub vals: HashMap<usize, Tensor>,
    pub inputs: HashMap<String, Tensor>,
    free: Vec<(u64, Arc<PooledBuffer>)>,
    pub peak: u64,
    root: Vec<usize>,
    last_use: Vec<usize>,
    /// Replay count for random draws, advanced on the GPU at the end of every run.
    pub steps_t: Tensor,
    pub draws: bool,
}

impl<'a> Lowering<'a> {
    pub fn new(gpu: &'a Gpu, g: &'a Graph, params: &'a ParamStore, live: (Vec<usize>, Vec<usize>)) -> Result<Self> {
        Ok(Lowering {
            gpu,
            g,
            params,
            rec: Recorder::capturing(gpu),
            vals: HashMap::new(),
            inputs: HashMap::new(),
            free: Vec::new(),
            peak: 0,
            root: live.0,
            last_use: live.1,
            steps_t: Tensor::zeros(gpu, &[1])?,
            draws: false,
        })
    }

    /// A tensor the plan owns outright (inputs, constants, random draws).
    fn owned(&mut self, shape: &[usize], data: Option<&[f32]>) -> Result<Tensor> {
        self.peak += size_class(shape.iter().product::<usize>() as u64 * 4);
        match data {
            Some(d) => Tensor::from_slice(self.gpu, d, shape),
            None => Tensor::empty(self.gpu, shape),
        }
    }

    /// Nodes that launch no kernel of their own (or, random draws, one that owns its buffer):
    /// their value, or None for a kernel node.
    pub fn leaf(&mut self, node: &Node) -> Result<Option<Tensor>> {
        let shape = &node.shape;
        Ok(Some(match &node.op {
            Op::Input(name) => {
                let t = self.owned(shape, None)?;
                if self.inputs.insert(name.clone(), t.clone()).is_some() {
                    return Err(Error::Invalid(format!("graph has two inputs named '{name}'")));
                }
                t
            }
            Op::Param(name) => {
                let t = self
                    .params
                    .get(name)
                    .ok_or_else(|| Error::Invalid(format!("parameter '{name}' is missing from the parameter store")))?;
                if t.shape() != shape.as_slice() {
                    return Err(Error::Shape(format!(
                        "parameter '{name}' is {:?}, the graph wants {shape:?}",
                        t.shape()
                    )));
                }
                t.clone()
            }
            Op::Fill(v) => self.owned(shape, Some(&vec![*v; shape.iter().product()]))?,
            Op::Reshape => self.vals[&node.inputs[0].0].reshape(shape)?,
            Op::Constant(d) => self.owned(shape, Some(d))?,
            Op::Random { dist, seed, stream } => {
                // Its own buffer: a draw is read by later steps of the same run only.
                let t = self.owned(shape, None)?;
                let key = crate::ops::random::RngKey { seed: *seed, stream: *stream, counter: 0 };
                crate::ops::random::random_stepped_into(&mut self.rec, key, *dist, &self.steps_t, &t)?;
                self.draws = true;
                t
            }
            _ => return Ok(None),
        }))
    }

    /// An intermediate buffer: a free one of the same size class, or a new one.
    pub fn intermediate(&mut self, shape: &[usize]) -> Result<Tensor> {
        let class = size_class((shape.iter().product::<usize>() as u64 * 4).max(4));
        let buf = match self.free.iter().position(|(c, _)| *c == class) {
            Some(k) => self.free.swap_remove(k).1,
            None => {
                self.peak += class;
                Arc::new(self.gpu.pool.get(&self.gpu.device, Usage::Storage, class))
            }
        };
        Tensor::view(buf, shape)
    }

    /// Release the intermediate buffers whose last reader is node i.
    pub fn release(&mut self, i: usize, inputs: &[Var]) {
        for v in inputs {
            let r = self.root[v.0];
            let owned = matches!(
                self.g.nodes[r].op,
                Op::Input(_) | Op::Param(_) | Op::Fill(_) | Op::Constant(_) | Op::Reshape | Op::Random { .. }
            );
            if self.last_use[r] == i && !owned {
                self.last_use[r] = usize::MAX - 1; // released once
                let buf = self.vals[&r].buffer().clone();
                self.free.push((size_class(buf.len), buf));
            }
        }
    }

    /// Record the kernel of node `node` (or its fused matmul) writing `out`.
    pub fn kernel(&mut self, node: &Node, fused: Option<Fused>, out: &Tensor) -> Result<()> {
        let vals = &self.vals;
        let rec = &mut self.rec;
        if let Some(f) = fused {
            let ep = crate::ops::matmul::Epilogue { bias: Some(&vals[&f.bias.0]), silu: f.silu };
            let o = MatmulOpts { trans_a: f.trans_a, trans_b: f.trans_b, config: None };
            return crate::ops::matmul::matmul_epilogue(rec, &vals[&f.a.0], &vals[&f.b.0], out, o, ep);
        }
        let x = |k: usize| &vals[&node.inputs[k].0];
        let conv = |stride: usize, pad: usize| Conv2dOpts::new(stride, pad);
        match &node.op {
            Op::Unary(u) => unary_into(rec, *u, x(0), out),
            Op::Binary(b) => binary_into(rec, *b, x(0), x(1), out),
            Op::Reduce(r, axis) => reduce_into(rec, *r, x(0), *axis, out),
            Op::BroadcastTo => broadcast_to_into(rec, x(0), out),
            Op::Matmul { trans_a, trans_b } => {
                matmul_out(rec, x(0), x(1), out, MatmulOpts { trans_a: *trans_a, trans_b: *trans_b, config: None })
            }
            Op::Softmax => softmax_into(rec, x(0), out),
            Op::GroupNorm { groups, eps } => {
                crate::ops::norm::group_norm_into(rec, x(0), x(1), x(2), *groups, *eps, out)
            }
            Op::GroupNormBwd { groups, eps } => {
                crate::ops::norm::group_norm_bwd_into(rec, x(0), x(1), x(2), *groups, *eps, out)
            }
            Op::Conv2d { stride, pad } => {
                let b = (node.inputs.len() == 3).then(|| x(2));
                conv2d_into(rec, x(0), x(1), b, conv(*stride, *pad), out)
            }
            Op::Conv2dBwdInput { stride, pad } => conv2d_bwd_input_into(rec, x(0), x(1), conv(*stride, *pad), out),
            Op::Conv2dBwdWeight { stride, pad } => conv2d_bwd_weight_into(rec, x(0), x(1), conv(*stride, *pad), out),
            Op::Upsample2x => upsample2x_into(rec, x(0), out),
            Op::Downsample2xSum => downsample2x_sum_into(rec, x(0), out),
            Op::Concat { axis } => concat_into(rec, x(0), x(1), *axis, out),
            Op::Slice { axis, start } => slice_into(rec, x(0), *axis, *start, out),
            Op::Pad { axis, start } => pad_into(rec, x(0), *axis, *start, out),
            Op::Input(_) | Op::Param(_) | Op::Fill(_) | Op::Reshape | Op::Constant(_) | Op::Random { .. } => {
                Err(Error::Invalid(format!("planner: {:?} is not a kernel node", node.op)))
            }
        }
    }
}
