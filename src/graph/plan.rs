//! The planner: the nodes an output needs, in order, with intermediate buffers shared by
//! liveness, and every pipeline and bind group made once. `run` replays the steps as one
//! submission: after the plan is built, a run creates no buffer, pipeline or bind group.

use super::{Graph, Op, Var};
use crate::error::{Error, Result};
use crate::gpu::pool::{size_class, Usage};
use crate::gpu::{Captured, Gpu, Recorder};
use crate::ops::conv::{conv2d_bwd_input_into, conv2d_bwd_weight_into, conv2d_into, Conv2dOpts};
use crate::ops::elementwise::{binary_into, broadcast_to_into, unary_into};
use crate::ops::layout::{concat_into, downsample2x_sum_into, pad_into, slice_into, upsample2x_into};
use crate::ops::matmul::{matmul_out, MatmulOpts};
use crate::ops::norm::softmax_into;
use crate::ops::reduce::reduce_into;
use crate::tensor::Tensor;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Named trainable tensors that `Param` nodes read (and optimizers update in place).
pub type ParamStore = BTreeMap<String, Tensor>;

pub struct Plan {
    captured: Captured,
    inputs: HashMap<String, Tensor>,
    outputs: Vec<Tensor>,
    /// Bytes of the intermediate buffers, inputs and constants the plan owns.
    pub peak_bytes: u64,
    pub steps: usize,
    /// Replays so far (u32), advanced on the GPU; random draws are keyed by it, so a resumed
    /// run that restores it draws the numbers an uninterrupted run would have.
    pub replays: Tensor,
}

impl Plan {
    /// Plan the computation of `outputs`. Parameters come from `params` (by name, shapes
    /// checked); inputs get buffers of their own, filled with `feed` before a run.
    pub fn new(gpu: &Gpu, g: &Graph, outputs: &[Var], params: &ParamStore) -> Result<Plan> {
        Self::build(gpu, g, outputs, params, false)
    }

    /// The same, with kernel configurations that do not depend on the batch size (sampling
    /// plans: a chain's numbers must not change with `--batch` or `--n`).
    pub fn batch_invariant(gpu: &Gpu, g: &Graph, outputs: &[Var], params: &ParamStore) -> Result<Plan> {
        Self::build(gpu, g, outputs, params, true)
    }

    fn build(gpu: &Gpu, g: &Graph, outputs: &[Var], params: &ParamStore, batch_invariant: bool) -> Result<Plan> {
        // Nodes the outputs need.
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
        // Fusion: Matmul -> Add(bias [N]) (-> SiLU) runs as one matmul with an epilogue when
        // each intermediate has that single reader and is not an output. `eff[i]`: the values
        // node i actually reads; fused-away nodes read nothing and get no buffer.
        let mut readers = vec![0usize; top + 1];
        for i in 0..=top {
            if need[i] {
                for v in &g.nodes[i].inputs {
                    readers[v.0] += 1;
                }
            }
        }
        for o in outputs {
            readers[o.0] += 1;
        }
        let mut eff: Vec<Vec<Var>> = g.nodes[..=top].iter().map(|n| n.inputs.clone()).collect();
        let mut skip = vec![false; top + 1];
        let mut fused: HashMap<usize, (Var, Var, Var, bool, bool, bool)> = HashMap::new(); // node -> (a, b, bias, ta, tb, silu)
        for i in 0..=top {
            let Op::Binary(crate::ops::elementwise::Binary::Add) = g.nodes[i].op else { continue };
            if !need[i] {
                continue;
            }
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
                Some(j) if readers[i] == 1 && g.nodes[j].op == Op::Unary(crate::ops::elementwise::Unary::Silu) => {
                    skip[i] = true;
                    eff[i].clear();
                    j
                }
                _ => i,
            };
            skip[m.0] = true;
            eff[m.0].clear();
            eff[target] = vec![a, b, bias];
            fused.insert(target, (a, b, bias, trans_a, trans_b, target != i));
        }
        // Storage roots: a reshape shares its input's buffer.
        let mut root: Vec<usize> = (0..=top).collect();
        for i in 0..=top {
            if need[i] && g.nodes[i].op == Op::Reshape {
                root[i] = root[g.nodes[i].inputs[0].0];
            }
        }
        // Last step reading each root; outputs live forever.
        let mut last_use = vec![0usize; top + 1];
        for i in 0..=top {
            if need[i] {
                for v in &eff[i] {
                    last_use[root[v.0]] = last_use[root[v.0]].max(i);
                }
            }
        }
        for o in outputs {
            last_use[root[o.0]] = usize::MAX;
        }
        // Release intermediate buffers whose last reader was node i.
        let release = |i: usize,
                       inputs: &[Var],
                       last_use: &mut Vec<usize>,
                       vals: &HashMap<usize, Tensor>,
                       free: &mut Vec<(u64, Arc<crate::gpu::PooledBuffer>)>| {
            for v in inputs {
                let r = root[v.0];
                if last_use[r] == i
                    && !matches!(
                        g.nodes[r].op,
                        Op::Input(_) | Op::Param(_) | Op::Fill(_) | Op::Constant(_) | Op::Reshape | Op::Random { .. }
                    )
                {
                    last_use[r] = usize::MAX - 1; // released once
                    let buf = vals[&r].buffer().clone();
                    free.push((size_class(buf.len), buf));
                }
            }
        };
        let mut vals: HashMap<usize, Tensor> = HashMap::new();
        let mut inputs = HashMap::new();
        let mut free: Vec<(u64, Arc<crate::gpu::PooledBuffer>)> = Vec::new();
        let mut peak = 0u64;
        let mut rec = Recorder::capturing(gpu);
        rec.batch_invariant = batch_invariant;
        // Replay count for random draws, advanced on the GPU at the end of every run.
        let steps_t = Tensor::zeros(gpu, &[1])?;
        let mut draws = false;
        for i in 0..=top {
            if !need[i] || skip[i] {
                continue;
            }
            let node = &g.nodes[i];
            let shape = node.shape.clone();
            let t = match &node.op {
                Op::Input(name) => {
                    let t = Tensor::empty(gpu, &shape)?;
                    peak += size_class(t.numel() as u64 * 4);
                    if inputs.insert(name.clone(), t.clone()).is_some() {
                        return Err(Error::Invalid(format!("graph has two inputs named '{name}'")));
                    }
                    t
                }
                Op::Param(name) => {
                    let t = params.get(name).ok_or_else(|| {
                        Error::Invalid(format!("parameter '{name}' is missing from the parameter store"))
                    })?;
                    if t.shape() != shape.as_slice() {
                        return Err(Error::Shape(format!(
                            "parameter '{name}' is {:?}, the graph wants {shape:?}",
                            t.shape()
                        )));
                    }
                    t.clone()
                }
                Op::Fill(v) => {
                    peak += size_class(shape.iter().product::<usize>() as u64 * 4);
                    Tensor::from_slice(gpu, &vec![*v; shape.iter().product()], &shape)?
                }
                Op::Reshape => vals[&node.inputs[0].0].reshape(&shape)?,
                Op::Constant(d) => {
                    peak += size_class(d.len() as u64 * 4);
                    Tensor::from_slice(gpu, d, &shape)?
                }
                Op::Random { dist, seed, stream } => {
                    // Its own buffer: a draw is read by later steps of the same run only.
                    let t = Tensor::empty(gpu, &shape)?;
                    peak += size_class(t.numel() as u64 * 4);
                    let key = crate::ops::random::RngKey { seed: *seed, stream: *stream, counter: 0 };
                    crate::ops::random::random_stepped_into(&mut rec, key, *dist, &steps_t, &t)?;
                    draws = true;
                    t
                }
                op => {
                    let bytes = (shape.iter().product::<usize>() as u64 * 4).max(4);
                    let class = size_class(bytes);
                    let buf = match free.iter().position(|(c, _)| *c == class) {
                        Some(k) => free.swap_remove(k).1,
                        None => {
                            peak += class;
                            Arc::new(gpu.pool.get(&gpu.device, Usage::Storage, class))
                        }
                    };
                    let out = Tensor::view(buf, &shape)?;
                    let x = |k: usize| &vals[&node.inputs[k].0];
                    if let Some(&(a, b, bias, trans_a, trans_b, silu)) = fused.get(&i) {
                        let ep = crate::ops::matmul::Epilogue { bias: Some(&vals[&bias.0]), silu };
                        let o = MatmulOpts { trans_a, trans_b, config: None };
                        crate::ops::matmul::matmul_epilogue(&mut rec, &vals[&a.0], &vals[&b.0], &out, o, ep)?;
                        vals.insert(i, out);
                        release(i, &eff[i], &mut last_use, &vals, &mut free);
                        continue;
                    }
                    match op {
                        Op::Unary(u) => unary_into(&mut rec, *u, x(0), &out)?,
                        Op::Binary(b) => binary_into(&mut rec, *b, x(0), x(1), &out)?,
                        Op::Reduce(r, axis) => reduce_into(&mut rec, *r, x(0), *axis, &out)?,
                        Op::BroadcastTo => broadcast_to_into(&mut rec, x(0), &out)?,
                        Op::Matmul { trans_a, trans_b } => matmul_out(
                            &mut rec,
                            x(0),
                            x(1),
                            &out,
                            MatmulOpts { trans_a: *trans_a, trans_b: *trans_b, config: None },
                        )?,
                        Op::Softmax => softmax_into(&mut rec, x(0), &out)?,
                        Op::GroupNorm { groups, eps } => {
                            crate::ops::norm::group_norm_into(&mut rec, x(0), x(1), x(2), *groups, *eps, &out)?
                        }
                        Op::GroupNormBwd { groups, eps } => {
                            crate::ops::norm::group_norm_bwd_into(&mut rec, x(0), x(1), x(2), *groups, *eps, &out)?
                        }
                        Op::Conv2d { stride, pad } => {
                            let b = (node.inputs.len() == 3).then(|| x(2));
                            conv2d_into(&mut rec, x(0), x(1), b, Conv2dOpts::new(*stride, *pad), &out)?
                        }
                        Op::Conv2dBwdInput { stride, pad } => {
                            conv2d_bwd_input_into(&mut rec, x(0), x(1), Conv2dOpts::new(*stride, *pad), &out)?
                        }
                        Op::Conv2dBwdWeight { stride, pad } => {
                            conv2d_bwd_weight_into(&mut rec, x(0), x(1), Conv2dOpts::new(*stride, *pad), &out)?
                        }
                        Op::Upsample2x => upsample2x_into(&mut rec, x(0), &out)?,
                        Op::Downsample2xSum => downsample2x_sum_into(&mut rec, x(0), &out)?,
                        Op::Concat { axis } => concat_into(&mut rec, x(0), x(1), *axis, &out)?,
                        Op::Slice { axis, start } => slice_into(&mut rec, x(0), *axis, *start, &out)?,
                        Op::Pad { axis, start } => pad_into(&mut rec, x(0), *axis, *start, &out)?,
                        Op::Input(_)
                        | Op::Param(_)
                        | Op::Fill(_)
                        | Op::Reshape
                        | Op::Constant(_)
                        | Op::Random { .. } => unreachable!(),
                    }
                    out
                }
            };
            vals.insert(i, t);
            release(i, &eff[i], &mut last_use, &vals, &mut free);
        }
        if draws {
            crate::ops::random::plan_tick(&mut rec, &steps_t)?;
        }
        let outputs = outputs.iter().map(|o| vals[&o.0].clone()).collect();
        let captured = rec.into_captured();
        let steps = captured.steps.len();
        Ok(Plan { captured, inputs, outputs, peak_bytes: peak, steps, replays: steps_t })
    }

    /// Upload the data of input `name` (lands before the next submission).
    pub fn feed(&self, gpu: &Gpu, name: &str, data: &[f32]) -> Result<()> {
        let t = self.inputs.get(name).ok_or_else(|| Error::Invalid(format!("the plan has no input named '{name}'")))?;
        if data.len() != t.numel() {
            return Err(Error::Shape(format!(
                "input '{name}' takes {} values ({:?}), got {}",
                t.numel(),
                t.shape(),
                data.len()
            )));
        }
        gpu.queue.write_buffer(t.buffer().buffer(), 0, bytemuck::cast_slice(data));
        Ok(())
    }

    pub fn input(&self, name: &str) -> Option<&Tensor> {
        self.inputs.get(name)
    }
    pub fn output(&self, i: usize) -> &Tensor {
        &self.outputs[i]
    }

    /// Append this plan's steps to a recording (e.g. many sampler steps per submission).
    pub fn record(&self, rec: &mut Recorder) {
        rec.replay(&self.captured.steps);
    }

    /// Run once: one submission, not waited for.
    pub fn run(&self, gpu: &Gpu) -> Result<()> {
        let mut rec = Recorder::new(gpu);
        self.record(&mut rec);
        rec.submit()
    }
}
