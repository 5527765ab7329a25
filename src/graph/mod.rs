//! Computation graphs with static shapes. A `Graph` is an append-only list of nodes, so node
//! ids are already a topological order; `Var` is a node id. Reverse-mode differentiation
//! (`autodiff::grad`) appends the backward pass to the same graph, built from the same ops, so
//! the gradient of a gradient is just another call to `grad`. `plan::Plan` turns the nodes an
//! output needs into GPU steps that replay as one submission.

pub mod autodiff;
pub mod cpu;
mod lower;
pub mod plan;

use crate::error::{Error, Result};
use crate::ops::elementwise::{broadcast_shape, Binary, Unary};
use crate::ops::matmul::{matmul_shape, MatmulOpts};
use crate::ops::reduce::Reduce;

/// A node of a graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Var(pub usize);

/// A node's operation (inputs in `Node::inputs`).
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Fed before each run (data, noise levels).
    Input(String),
    /// A trainable tensor held by a `ParamStore`.
    Param(String),
    /// A tensor filled with one value.
    Fill(f32),
    /// An element-wise function of one input.
    Unary(Unary),
    /// An element-wise function of two inputs, NumPy-broadcast.
    Binary(Binary),
    /// Reduce along an axis, keeping it with size 1 (keepdim).
    Reduce(Reduce, usize),
    /// Same data, new shape.
    Reshape,
    /// NumPy broadcast of the input to this node's shape.
    BroadcastTo,
    /// A batched matrix product of inputs [a, b].
    Matmul {
        /// Transpose a's last two axes first.
        trans_a: bool,
        /// Transpose b's last two axes first.
        trans_b: bool,
    },
    /// Softmax over the last axis.
    Softmax,
    /// Group normalisation of x [B, C, ...] with inputs [x, gamma [C], beta [C]].
    GroupNorm {
        /// Channel groups.
        groups: usize,
        /// Added to the variance.
        eps: f32,
    },
    /// Its gradient with respect to x: inputs [gy, x, gamma], this node's shape is x's.
    GroupNormBwd {
        /// Channel groups.
        groups: usize,
        /// Added to the variance.
        eps: f32,
    },
    /// A constant tensor with the given data (e.g. embedding frequencies).
    Constant(Vec<f32>),
    /// NCHW convolution of inputs [x, w] or [x, w, bias].
    Conv2d {
        /// The stride.
        stride: usize,
        /// Zero padding on every side.
        pad: usize,
    },
    /// Its adjoint in x: inputs [gy, w], this node's shape is x's.
    Conv2dBwdInput {
        /// The forward convolution's stride.
        stride: usize,
        /// The forward convolution's padding.
        pad: usize,
    },
    /// Its adjoint in w: inputs [gy, x], this node's shape is w's.
    Conv2dBwdWeight {
        /// The forward convolution's stride.
        stride: usize,
        /// The forward convolution's padding.
        pad: usize,
    },
    /// Nearest x2 upsampling of [B, C, H, W].
    Upsample2x,
    /// Sum of 2x2 blocks (the adjoint of Upsample2x).
    Downsample2xSum,
    /// Inputs [a, b] joined along an axis.
    Concat {
        /// The axis.
        axis: usize,
    },
    /// x[.., start..start + len, ..] along axis (len from this node's shape).
    Slice {
        /// The axis.
        axis: usize,
        /// The first index taken.
        start: usize,
    },
    /// Zero tensor with x placed at `start` along axis (the adjoint of Slice).
    Pad {
        /// The axis.
        axis: usize,
        /// Where x starts along it.
        start: usize,
    },
    /// Counter-based random numbers, a fresh draw each time a plan runs (the counter advances
    /// on the GPU). A leaf: nothing flows back through it.
    Random {
        /// The distribution (uniform, normal, raw bits).
        dist: crate::ops::random::Dist,
        /// The run's seed.
        seed: u64,
        /// The stream of the seed this node draws from.
        stream: u64,
    },
}

/// One node: its operation, inputs and output shape.
#[derive(Clone, Debug)]
pub struct Node {
    /// The operation.
    pub op: Op,
    /// Its inputs.
    pub inputs: Vec<Var>,
    /// The shape of its output.
    pub shape: Vec<usize>,
}

/// A static-shape computation graph; nodes are appended in order (inputs before users).
#[derive(Clone, Debug, Default)]
pub struct Graph {
    /// The nodes, in order.
    pub nodes: Vec<Node>,
}

impl Graph {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// The shape of `v`.
    pub fn shape(&self, v: Var) -> &[usize] {
        &self.nodes[v.0].shape
    }
    /// The node behind `v`.
    pub fn node(&self, v: Var) -> &Node {
        &self.nodes[v.0]
    }

    fn push(&mut self, op: Op, inputs: Vec<Var>, shape: Vec<usize>) -> Var {
        self.nodes.push(Node { op, inputs, shape });
        Var(self.nodes.len() - 1)
    }

    /// An input fed before each run.
    pub fn input(&mut self, name: &str, shape: &[usize]) -> Var {
        self.push(Op::Input(name.into()), vec![], shape.to_vec())
    }
    /// A trainable parameter (held by a `ParamStore` under `name`).
    pub fn param(&mut self, name: &str, shape: &[usize]) -> Var {
        self.push(Op::Param(name.into()), vec![], shape.to_vec())
    }
    /// A tensor of `shape` filled with `value`.
    pub fn fill(&mut self, value: f32, shape: &[usize]) -> Var {
        self.push(Op::Fill(value), vec![], shape.to_vec())
    }

    /// `op` applied to every element of `a`.
    pub fn unary(&mut self, op: Unary, a: Var) -> Var {
        let s = self.shape(a).to_vec();
        self.push(Op::Unary(op), vec![a], s)
    }
    /// `op` of `a` and `b`, NumPy-broadcast.
    pub fn binary(&mut self, op: Binary, a: Var, b: Var) -> Result<Var> {
        let s = broadcast_shape(self.shape(a), self.shape(b))?;
        Ok(self.push(Op::Binary(op), vec![a, b], s))
    }
    /// a + b (broadcast).
    pub fn add(&mut self, a: Var, b: Var) -> Result<Var> {
        self.binary(Binary::Add, a, b)
    }
    /// a - b (broadcast).
    pub fn sub(&mut self, a: Var, b: Var) -> Result<Var> {
        self.binary(Binary::Sub, a, b)
    }
    /// a * b (broadcast).
    pub fn mul(&mut self, a: Var, b: Var) -> Result<Var> {
        self.binary(Binary::Mul, a, b)
    }
    /// a / b (broadcast).
    pub fn div(&mut self, a: Var, b: Var) -> Result<Var> {
        self.binary(Binary::Div, a, b)
    }
    /// s a.
    pub fn scale(&mut self, a: Var, s: f32) -> Var {
        self.unary(Unary::MulScalar(s), a)
    }
    /// -a.
    pub fn neg(&mut self, a: Var) -> Var {
        self.unary(Unary::Neg, a)
    }

    /// Reduce along `axis`, keeping it with size 1.
    pub fn reduce_keep(&mut self, op: Reduce, a: Var, axis: usize) -> Result<Var> {
        let mut s = self.shape(a).to_vec();
        if axis >= s.len() {
            return Err(Error::Shape(format!("{op:?}: axis {axis} out of range for {s:?}")));
        }
        s[axis] = 1;
        Ok(self.push(Op::Reduce(op, axis), vec![a], s))
    }
    /// Reduce along `axis`, removing it.
    pub fn reduce(&mut self, op: Reduce, a: Var, axis: usize) -> Result<Var> {
        let k = self.reduce_keep(op, a, axis)?;
        let mut s = self.shape(a).to_vec();
        s.remove(axis);
        self.reshape(k, &s)
    }
    /// The sum along `axis`, removing it.
    pub fn sum(&mut self, a: Var, axis: usize) -> Result<Var> {
        self.reduce(Reduce::Sum, a, axis)
    }
    /// The mean along `axis`, removing it.
    pub fn mean(&mut self, a: Var, axis: usize) -> Result<Var> {
        self.reduce(Reduce::Mean, a, axis)
    }
    /// Sum of every element, shape [1].
    pub fn sum_all(&mut self, a: Var) -> Result<Var> {
        let n = self.shape(a).iter().product();
        let flat = self.reshape(a, &[n])?;
        self.reduce_keep(Reduce::Sum, flat, 0)
    }
    /// Mean of every element, shape [1].
    pub fn mean_all(&mut self, a: Var) -> Result<Var> {
        let n: usize = self.shape(a).iter().product();
        let s = self.sum_all(a)?;
        Ok(self.scale(s, 1.0 / n as f32))
    }

    /// A new node with a's value (a Reshape to the same shape): a leaf of its own for `grad`.
    pub fn identity(&mut self, a: Var) -> Var {
        let s = self.shape(a).to_vec();
        self.push(Op::Reshape, vec![a], s)
    }

    /// The same data in another shape of as many elements.
    pub fn reshape(&mut self, a: Var, shape: &[usize]) -> Result<Var> {
        let n: usize = self.shape(a).iter().product();
        if n != shape.iter().product::<usize>() {
            return Err(Error::Shape(format!("cannot reshape {:?} to {shape:?}", self.shape(a))));
        }
        if self.shape(a) == shape {
            return Ok(a);
        }
        Ok(self.push(Op::Reshape, vec![a], shape.to_vec()))
    }

    /// `a` broadcast (NumPy's rules) to `shape`.
    pub fn broadcast_to(&mut self, a: Var, shape: &[usize]) -> Result<Var> {
        if broadcast_shape(self.shape(a), shape)? != shape {
            return Err(Error::Shape(format!("cannot broadcast {:?} to {shape:?}", self.shape(a))));
        }
        if self.shape(a) == shape {
            return Ok(a);
        }
        Ok(self.push(Op::BroadcastTo, vec![a], shape.to_vec()))
    }

    /// Sum `a` down to `shape` (the adjoint of broadcasting `shape` up to `a`'s shape).
    pub fn sum_to(&mut self, a: Var, shape: &[usize]) -> Result<Var> {
        let from = self.shape(a).to_vec();
        if from == shape {
            return Ok(a);
        }
        let lead = from.len() - shape.len();
        let mut v = a;
        for ax in 0..from.len() {
            let target = if ax < lead { 1 } else { shape[ax - lead] };
            if from[ax] != target {
                v = self.reduce_keep(Reduce::Sum, v, ax)?;
            }
        }
        self.reshape(v, shape)
    }

    /// The batched matrix product of `a` and `b`, either transposed first.
    pub fn matmul(&mut self, a: Var, b: Var, trans_a: bool, trans_b: bool) -> Result<Var> {
        let s = matmul_shape(self.shape(a), self.shape(b), MatmulOpts { trans_a, trans_b, config: None })?;
        Ok(self.push(Op::Matmul { trans_a, trans_b }, vec![a, b], s))
    }

    /// A constant tensor of `shape` holding `data`.
    pub fn constant(&mut self, data: Vec<f32>, shape: &[usize]) -> Result<Var> {
        if data.len() != shape.iter().product::<usize>() {
            return Err(Error::Shape(format!("constant of {} values for shape {shape:?}", data.len())));
        }
        Ok(self.push(Op::Constant(data), vec![], shape.to_vec()))
    }

    /// y = conv2d(x, w) (+ bias [C_out]), NCHW.
    pub fn conv2d(&mut self, x: Var, w: Var, bias: Option<Var>, stride: usize, pad: usize) -> Result<Var> {
        let o = crate::ops::conv::Conv2dOpts::new(stride, pad);
        let ys = crate::ops::conv::conv2d_shape(self.shape(x), self.shape(w), o)?;
        let mut inputs = vec![x, w];
        if let Some(b) = bias {
            if self.shape(b) != [ys[1]] {
                return Err(Error::Shape(format!("conv2d bias {:?} should be [{}]", self.shape(b), ys[1])));
            }
            inputs.push(b);
        }
        Ok(self.push(Op::Conv2d { stride, pad }, inputs, ys.to_vec()))
    }
    pub(crate) fn conv2d_bwd_input(&mut self, gy: Var, w: Var, x_shape: &[usize], stride: usize, pad: usize) -> Var {
        self.push(Op::Conv2dBwdInput { stride, pad }, vec![gy, w], x_shape.to_vec())
    }
    pub(crate) fn conv2d_bwd_weight(&mut self, gy: Var, x: Var, w_shape: &[usize], stride: usize, pad: usize) -> Var {
        self.push(Op::Conv2dBwdWeight { stride, pad }, vec![gy, x], w_shape.to_vec())
    }

    /// Nearest-neighbour x2 upsampling of [B, C, H, W].
    pub fn upsample2x(&mut self, x: Var) -> Result<Var> {
        let s = self.shape(x).to_vec();
        if s.len() != 4 {
            return Err(Error::Shape(format!("upsample2x wants [B, C, H, W], got {s:?}")));
        }
        Ok(self.push(Op::Upsample2x, vec![x], vec![s[0], s[1], 2 * s[2], 2 * s[3]]))
    }
    pub(crate) fn downsample2x_sum(&mut self, x: Var) -> Var {
        let s = self.shape(x).to_vec();
        self.push(Op::Downsample2xSum, vec![x], vec![s[0], s[1], s[2] / 2, s[3] / 2])
    }

    /// `a` and `b` joined along `axis`.
    pub fn concat(&mut self, a: Var, b: Var, axis: usize) -> Result<Var> {
        let (sa, sb) = (self.shape(a).to_vec(), self.shape(b).to_vec());
        if sa.len() != sb.len()
            || axis >= sa.len()
            || sa.iter().zip(&sb).enumerate().any(|(i, (x, y))| i != axis && x != y)
        {
            return Err(Error::Shape(format!("concat along {axis}: {sa:?} and {sb:?} differ elsewhere")));
        }
        let mut s = sa.clone();
        s[axis] += sb[axis];
        Ok(self.push(Op::Concat { axis }, vec![a, b], s))
    }

    /// `len` entries of `x` from `start` along `axis`.
    pub fn slice(&mut self, x: Var, axis: usize, start: usize, len: usize) -> Result<Var> {
        let mut s = self.shape(x).to_vec();
        if axis >= s.len() || start + len > s[axis] {
            return Err(Error::Shape(format!("slice {start}..{} of axis {axis} of {s:?}", start + len)));
        }
        s[axis] = len;
        Ok(self.push(Op::Slice { axis, start }, vec![x], s))
    }
    pub(crate) fn pad(&mut self, x: Var, axis: usize, start: usize, full: usize) -> Var {
        let mut s = self.shape(x).to_vec();
        s[axis] = full;
        self.push(Op::Pad { axis, start }, vec![x], s)
    }

    /// Random numbers of `shape`; each node draws from its own stream (its node id mixed into
    /// `stream`), and each plan run takes the next counter block.
    pub fn random(&mut self, shape: &[usize], dist: crate::ops::random::Dist, seed: u64, stream: u64) -> Var {
        let id = self.nodes.len() as u64;
        self.push(Op::Random { dist, seed, stream: stream ^ (id << 32) }, vec![], shape.to_vec())
    }

    /// Softmax over the last axis.
    pub fn softmax(&mut self, a: Var) -> Var {
        let s = self.shape(a).to_vec();
        self.push(Op::Softmax, vec![a], s)
    }

    /// Group normalisation (one fused op): (x - mean) / sqrt(var + eps) * gamma + beta, mean
    /// and variance over each (b, group of C / groups channels) of x [B, C, ...].
    pub fn group_norm(&mut self, x: Var, gamma: Var, beta: Var, groups: usize, eps: f32) -> Result<Var> {
        let s = self.shape(x).to_vec();
        if s.len() < 2 || groups == 0 || !s[1].is_multiple_of(groups) {
            return Err(Error::Shape(format!("group_norm of {s:?} in {groups} groups")));
        }
        for v in [gamma, beta] {
            if self.shape(v) != [s[1]] {
                return Err(Error::Shape(format!(
                    "group_norm of {s:?}: gamma/beta {:?} should be [{}]",
                    self.shape(v),
                    s[1]
                )));
            }
        }
        Ok(self.push(Op::GroupNorm { groups, eps }, vec![x, gamma, beta], s))
    }

    /// The gradient of `group_norm` with respect to x given gy (also a differentiable op).
    pub fn group_norm_bwd(&mut self, gy: Var, x: Var, gamma: Var, groups: usize, eps: f32) -> Result<Var> {
        let s = self.shape(x).to_vec();
        if self.shape(gy) != s.as_slice()
            || s.len() < 2
            || groups == 0
            || !s[1].is_multiple_of(groups)
            || self.shape(gamma) != [s[1]]
        {
            return Err(Error::Shape(format!(
                "group_norm_bwd: gy {:?}, x {s:?}, gamma {:?}, {groups} groups",
                self.shape(gy),
                self.shape(gamma)
            )));
        }
        Ok(self.push(Op::GroupNormBwd { groups, eps }, vec![gy, x, gamma], s))
    }
}
