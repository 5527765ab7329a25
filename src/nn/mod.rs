//! Layers as functions that add named parameters and ops to a graph. Parameter names and
//! layouts follow PyTorch (`fc.0.weight` is [out, in]), so a checkpoint maps one-to-one onto a
//! `state_dict` of the same architecture; initialisers are PyTorch's defaults.

pub mod unet;

use crate::error::Result;
use crate::gpu::Gpu;
use crate::graph::plan::ParamStore;
use crate::graph::{Graph, Var};
use crate::ops::elementwise::Unary;
use crate::tensor::Tensor;

/// How a parameter starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// U(-bound, bound): PyTorch's default for Linear and Conv weights and biases is
    /// bound = 1 / sqrt(fan_in) (kaiming_uniform with a = sqrt(5)).
    Uniform(f32),
    /// Every entry 0.
    Zeros,
    /// Every entry 1.
    Ones,
    /// Every entry this value.
    Const(f32),
}

/// A parameter a layer asked for: its name, shape and initialisation.
#[derive(Clone, Debug)]
pub struct ParamSpec {
    /// Its PyTorch-style name (`net.0.weight`).
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// How it starts.
    pub init: Init,
}

/// Builds a model into a graph, collecting its parameters under dotted names.
pub struct Builder<'g> {
    /// The graph the layers are added to.
    pub g: &'g mut Graph,
    /// The parameters asked for so far.
    pub specs: Vec<ParamSpec>,
    prefix: Vec<String>,
    /// Training graphs apply dropout; sampling graphs do not.
    pub training: bool,
    /// Seed of the dropout masks.
    pub seed: u64,
    /// The one-hot class label [B, classes + 1] of class-conditional networks (a graph input).
    pub label: Option<Var>,
    /// Context tokens [B, T, D] of retrieval-conditioned networks (a graph input): the
    /// neighbours' embeddings, or zeros for the null context.
    pub context: Option<Var>,
}

impl<'g> Builder<'g> {
    /// A builder adding layers to `g`.
    pub fn new(g: &'g mut Graph) -> Self {
        Builder { g, specs: Vec::new(), prefix: Vec::new(), training: false, seed: 0, label: None, context: None }
    }

    /// Run `f` with `name.` prepended to the parameter names it creates.
    pub fn scope<T>(&mut self, name: &str, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.prefix.push(name.to_string());
        let r = f(self);
        self.prefix.pop();
        r
    }

    /// A parameter node `name` of `shape`, recorded with its initialisation.
    pub fn param(&mut self, name: &str, shape: &[usize], init: Init) -> Var {
        let mut full = self.prefix.join(".");
        if !full.is_empty() {
            full.push('.');
        }
        full.push_str(name);
        self.specs.push(ParamSpec { name: full.clone(), shape: shape.to_vec(), init });
        self.g.param(&full, shape)
    }

    /// Total number of parameters.
    pub fn count(&self) -> usize {
        self.specs.iter().map(|s| s.shape.iter().product::<usize>()).sum()
    }
}

/// y = x W^T + b, x: [N, in] -> [N, out]; weight [out, in], bias [out].
pub fn linear(b: &mut Builder, x: Var, d_in: usize, d_out: usize, bias: bool) -> Result<Var> {
    let bound = 1.0 / (d_in as f32).sqrt();
    let w = b.param("weight", &[d_out, d_in], Init::Uniform(bound));
    let mut y = b.g.matmul(x, w, false, true)?;
    if bias {
        let bv = b.param("bias", &[d_out], Init::Uniform(bound));
        y = b.g.add(y, bv)?;
    }
    Ok(y)
}

/// An MLP with `act` between layers: sizes = [in, hidden..., out]; layers are named `net.0`,
/// `net.2`, ... as in `nn.Sequential(Linear, act, Linear, ...)`.
pub fn mlp(b: &mut Builder, x: Var, sizes: &[usize], act: Unary) -> Result<Var> {
    mlp_with_context(b, x, sizes, act, None)
}

/// `mlp`, and with context tokens [B, T, D] a cross-attention block (`xattn`,
/// `token_cross_attention`) after the first hidden layer: the retrieval-conditioned MLP.
pub fn mlp_with_context(b: &mut Builder, x: Var, sizes: &[usize], act: Unary, context: Option<Var>) -> Result<Var> {
    let mut h = x;
    for (i, w) in sizes.windows(2).enumerate() {
        h = b.scope("net", |b| b.scope(&(2 * i).to_string(), |b| linear(b, h, w[0], w[1], true)))?;
        if i + 2 < sizes.len() {
            h = b.g.unary(act, h);
            if let (0, Some(c)) = (i, context) {
                h = b.scope("xattn", |b| token_cross_attention(b, h, c))?;
            }
        }
    }
    Ok(h)
}

/// A residual MLP: `in_proj`, then `blocks` blocks h <- h + W2 act(W1 act(h)) of `width`
/// (`block{i}.0`, `block{i}.1`), then `out` after act.
/// With context tokens [B, T, D], a cross-attention block (`xattn`) follows `in_proj`.
pub fn res_mlp(
    b: &mut Builder,
    x: Var,
    (width, blocks, d_out): (usize, usize, usize),
    act: Unary,
    context: Option<Var>,
) -> Result<Var> {
    let d_in = b.g.shape(x)[1];
    let mut h = b.scope("in_proj", |b| linear(b, x, d_in, width, true))?;
    if let Some(c) = context {
        h = b.scope("xattn", |b| token_cross_attention(b, h, c))?;
    }
    for i in 0..blocks {
        let r = b.scope(&format!("block{i}"), |b| {
            let a = b.g.unary(act, h);
            let r = b.scope("0", |b| linear(b, a, width, width, true))?;
            let r = b.g.unary(act, r);
            b.scope("1", |b| linear(b, r, width, width, true))
        })?;
        h = b.g.add(h, r)?;
    }
    let a = b.g.unary(act, h);
    b.scope("out", |b| linear(b, a, width, d_out, true))
}

/// Create the parameters on the GPU, drawn from a seeded generator (SplitMix64 -> uniform).
pub fn init_params(gpu: &Gpu, specs: &[ParamSpec], seed: u64) -> Result<ParamStore> {
    let mut rng = crate::rng::SplitMix64::new(seed);
    let mut next = || rng.unit_f32();
    let mut store = ParamStore::new();
    for s in specs {
        let n: usize = s.shape.iter().product();
        let data: Vec<f32> = match s.init {
            Init::Uniform(b) => (0..n).map(|_| (2.0 * next() - 1.0) * b).collect(),
            Init::Zeros => vec![0.0; n],
            Init::Ones => vec![1.0; n],
            Init::Const(c) => vec![c; n],
        };
        store.insert(s.name.clone(), Tensor::from_slice(gpu, &data, &s.shape)?);
    }
    Ok(store)
}

/// Conv2d with bias; weight [out, in, k, k], PyTorch's default init.
pub fn conv2d(b: &mut Builder, x: Var, c_in: usize, c_out: usize, k: usize, stride: usize, pad: usize) -> Result<Var> {
    let bound = 1.0 / ((c_in * k * k) as f32).sqrt();
    let w = b.param("weight", &[c_out, c_in, k, k], Init::Uniform(bound));
    let bias = b.param("bias", &[c_out], Init::Uniform(bound));
    b.g.conv2d(x, w, Some(bias), stride, pad)
}

/// GroupNorm (Wu & He 2018) over x [B, C, H, W]: weight (ones) and bias (zeros) are [C]. One
/// fused graph op (a coefficient kernel and one element-wise pass each way); its adjoint is a
/// fused op too, whose own derivative comes from its composed expansion (second order).
pub fn group_norm(b: &mut Builder, x: Var, channels: usize, groups: usize, eps: f32) -> Result<Var> {
    let s = b.g.shape(x).to_vec();
    if s.len() != 4 || s[1] != channels {
        return Err(crate::Error::Shape(format!("group_norm({channels} channels) of {s:?}")));
    }
    if groups == 0 || !channels.is_multiple_of(groups) {
        return Err(crate::Error::Shape(format!(
            "group_norm: {channels} channels do not split into {groups} equal groups (input {s:?}); the group \
             count must divide the channels of every normalised layer"
        )));
    }
    let gamma = b.param("weight", &[channels], Init::Ones);
    let beta = b.param("bias", &[channels], Init::Zeros);
    b.g.group_norm(x, gamma, beta, groups, eps)
}

/// Self-attention over the H*W positions of x [B, C, H, W] with one head and a residual:
/// x + proj(softmax(q^T k / sqrt(C)) applied to v), q, k, v from a 1x1 conv after GroupNorm.
pub fn attention_block(b: &mut Builder, x: Var, channels: usize, groups: usize) -> Result<Var> {
    let s = b.g.shape(x).to_vec();
    let (bs, hw) = (s[0], s[2] * s[3]);
    let h = b.scope("norm", |b| group_norm(b, x, channels, groups, 1e-5))?;
    let qkv = b.scope("qkv", |b| conv2d(b, h, channels, 3 * channels, 1, 1, 0))?;
    let g = &mut *b.g;
    let qkv = g.reshape(qkv, &[bs, 3 * channels, hw])?;
    let q = g.slice(qkv, 1, 0, channels)?;
    let k = g.slice(qkv, 1, channels, channels)?;
    let v = g.slice(qkv, 1, 2 * channels, channels)?;
    // scores[b, i, j] = q[:, i] . k[:, j] / sqrt(C)
    let sc = g.matmul(q, k, true, false)?;
    let sc = g.scale(sc, 1.0 / (channels as f32).sqrt());
    let p = g.softmax(sc);
    // out[b, c, i] = sum_j v[c, j] p[i, j]
    let o = g.matmul(v, p, false, true)?;
    let o = g.reshape(o, &s)?;
    let o = b.scope("proj_out", |b| conv2d(b, o, channels, channels, 1, 1, 0))?;
    b.g.add(x, o)
}

/// Sinusoidal embedding [N] -> [N, dim] ([sin, cos], max period 10,000), from graph ops.
pub fn sinusoidal(g: &mut Graph, t: Var, dim: usize) -> Result<Var> {
    let n = g.shape(t)[0];
    let half = dim / 2;
    let freqs: Vec<f32> = (0..half).map(|k| (-(10_000f32).ln() * k as f32 / half as f32).exp()).collect();
    let f = g.constant(freqs, &[1, half])?;
    let tt = g.reshape(t, &[n, 1])?;
    let arg = g.mul(tt, f)?;
    let s = g.unary(Unary::Sin, arg);
    let c = g.unary(Unary::Cos, arg);
    g.concat(s, c, 1)
}

/// Cross-attention from the positions of x [B, C, H, W] to context tokens [B, T, D_ctx]
/// (retrieved neighbours, text, labels as tokens), one head, with a residual:
/// q = 1x1 conv of GroupNorm(x), k and v = Linear(context); x + proj(softmax(q k^T / sqrt(C)) v).
pub fn cross_attention_block(b: &mut Builder, x: Var, context: Var, channels: usize, groups: usize) -> Result<Var> {
    let s = b.g.shape(x).to_vec();
    let cs = b.g.shape(context).to_vec();
    if cs.len() != 3 || cs[0] != s[0] {
        return Err(crate::Error::Shape(format!("cross-attention context {cs:?} must be [B, T, D] with B = {}", s[0])));
    }
    let (bs, hw, t, dc) = (s[0], s[2] * s[3], cs[1], cs[2]);
    let h = b.scope("norm", |b| group_norm(b, x, channels, groups, 1e-5))?;
    let q = b.scope("to_q", |b| conv2d(b, h, channels, channels, 1, 1, 0))?;
    let c2 = b.g.reshape(context, &[bs * t, dc])?;
    let k = b.scope("to_k", |b| linear(b, c2, dc, channels, true))?;
    let v = b.scope("to_v", |b| linear(b, c2, dc, channels, true))?;
    let g = &mut *b.g;
    let q = g.reshape(q, &[bs, channels, hw])?;
    let k = g.reshape(k, &[bs, t, channels])?;
    let v = g.reshape(v, &[bs, t, channels])?;
    // scores[b, i, j] = q[:, i] . k[j, :] / sqrt(C): [B, HW, T]
    let sc = g.matmul(q, k, true, true)?;
    let sc = g.scale(sc, 1.0 / (channels as f32).sqrt());
    let p = g.softmax(sc);
    // out[b, c, i] = sum_j v[j, c] p[i, j]: [B, C, HW]
    let o = g.matmul(v, p, true, true)?;
    let o = g.reshape(o, &s)?;
    let o = b.scope("proj_out", |b| conv2d(b, o, channels, channels, 1, 1, 0))?;
    b.g.add(x, o)
}

/// Cross-attention from a flat hidden state h [B, H] to context tokens c_j [B, T, D] (the
/// MLPs' retrieval block), one head, with a residual, in folded form: single-head attention
/// scores (W_q h + b_q) . (W_k c_j + b_k) are, up to a term constant over j that the softmax
/// drops, (A h + u) . c_j with A = W_k^T W_q [D, H], u = W_k^T b_q; and
/// W_o (sum_j p_j (W_v c_j + b_v)) + b_o is P (sum_j p_j c_j) + b with P = W_o W_v [H, D]. So the block learns `to_a`
/// (A, u) and `proj_out` (P, b): h + P softmax_j((A h + u) . c_j / sqrt(D)) c + b, the same
/// functions as the textbook block, with every product on B rows instead of B T (the key and
/// value projections of the tokens, and their weight gradients over B T rows, are gone). A
/// context of zeros (the null context) attends evenly and gives h + b.
pub fn token_cross_attention(b: &mut Builder, h: Var, context: Var) -> Result<Var> {
    let hs = b.g.shape(h).to_vec();
    let cs = b.g.shape(context).to_vec();
    if hs.len() != 2 || cs.len() != 3 || cs[0] != hs[0] {
        return Err(crate::Error::Shape(format!(
            "cross-attention of {hs:?} to a context {cs:?}: need [B, H], [B, T, D]"
        )));
    }
    let (bs, w, t, dc) = (hs[0], hs[1], cs[1], cs[2]);
    let a = b.scope("to_a", |b| linear(b, h, w, dc, true))?;
    let g = &mut *b.g;
    let a = g.reshape(a, &[bs, 1, dc])?;
    let sc = g.mul(a, context)?; // [B, T, D]
    let sc = g.sum(sc, 2)?; // [B, T]
    let sc = g.scale(sc, 1.0 / (dc as f32).sqrt());
    let p = g.softmax(sc);
    let p = g.reshape(p, &[bs, t, 1])?;
    let pooled = g.mul(p, context)?;
    let pooled = g.sum(pooled, 1)?; // [B, D]
    let o = b.scope("proj_out", |b| linear(b, pooled, dc, w, true))?;
    b.g.add(h, o)
}

/// Inverted dropout: in training graphs each element is kept with probability 1 - p and scaled
/// by 1 / (1 - p); a fresh mask is drawn on the GPU at every run. Identity otherwise.
pub fn dropout(b: &mut Builder, x: Var, p: f32) -> Result<Var> {
    if !b.training || p <= 0.0 {
        return Ok(x);
    }
    if p >= 1.0 {
        return Err(crate::Error::Invalid(format!("dropout probability {p} must be below 1")));
    }
    let s = b.g.shape(x).to_vec();
    let u = b.g.random(&s, crate::ops::random::Dist::Uniform, b.seed, crate::rng::DROPOUT_STREAM);
    // keep where u > p
    let shifted = b.g.unary(Unary::AddScalar(-p), u);
    let keep = b.g.unary(Unary::Step, shifted);
    let mask = b.g.scale(keep, 1.0 / (1.0 - p));
    b.g.mul(x, mask)
}

#[cfg(test)]
mod res_mlp_tests {
    use super::*;

    /// A residual MLP has the parameters its description says: the input projection, two
    /// width x width layers per block and the output layer, each with a bias.
    #[test]
    fn res_mlp_parameters() {
        let mut g = Graph::new();
        let x = g.input("x", &[5, 3]);
        let mut b = Builder::new(&mut g);
        let y = res_mlp(&mut b, x, (16, 4, 2), Unary::Silu, None).unwrap();
        let (w, d_in, d_out) = (16, 3, 2);
        assert_eq!(b.count(), d_in * w + w + 4 * 2 * (w * w + w) + w * d_out + d_out);
        assert!(b.specs.iter().any(|s| s.name == "block3.1.weight"));
        assert_eq!(g.shape(y), &[5, 2]);
    }
}
