//! Element-wise unary and binary ops with NumPy broadcasting (shaders/elementwise.wgsl).

pub use super::broadcast::{broadcast_shape, broadcast_strides};
use super::broadcast::{contiguous_strides, middle_block, trailing_block};
use super::kernels::slots::elementwise as E;
use super::kernels::ElementwiseParams as Params;
use super::{dim, grid};
use crate::error::{Error, Result};
use crate::gpu::Recorder;
use crate::tensor::Tensor;

/// The most axes a broadcast handles.
pub const MAX_RANK: usize = 8;

/// Element-wise functions of one input (shaders/elementwise_ops.wgsl).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unary {
    /// -x.
    Neg,
    /// e^x.
    Exp,
    /// ln x.
    Log,
    /// sqrt x.
    Sqrt,
    /// 1 / sqrt x.
    Rsqrt,
    /// x^2.
    Square,
    /// x sigmoid(x).
    Silu,
    /// tanh x.
    Tanh,
    /// 1 / (1 + e^-x).
    Sigmoid,
    /// ln(1 + e^x).
    Softplus,
    /// x clamped to [lo, hi].
    Clamp(f32, f32),
    /// x + c.
    AddScalar(f32),
    /// c x.
    MulScalar(f32),
    /// |x|.
    Abs,
    /// max(x, 0).
    Relu,
    /// x^p for x > 0.
    PowScalar(f32),
    /// s * x + t.
    Affine(f32, f32),
    /// 1 where x > 0, else 0 (zero derivative).
    Step,
    /// -1, 0 or 1 (zero derivative).
    Sign,
    /// 1 where lo < x < hi, else 0 (zero derivative).
    InRange(f32, f32),
    /// sin x.
    Sin,
    /// cos x.
    Cos,
    /// 1 / x.
    Recip,
    /// silu'(x) = s (1 + x (1 - s)), s = sigmoid(x): SiLU's derivative in one pass.
    SiluPrime,
    /// silu''(x) = s (1 - s) (2 + x (1 - 2 s)).
    SiluSecond,
    /// silu'''(x) = q ((1 - 2 s)(3 + x (1 - 2 s)) - 2 x q), q = s (1 - s).
    SiluThird,
}

impl Unary {
    /// Every op (with sample operands): tests run each against its reference and pin the op
    /// codes to the cases of elementwise_ops.wgsl.
    pub const ALL: [Unary; 26] = [
        Unary::Neg,
        Unary::Exp,
        Unary::Log,
        Unary::Sqrt,
        Unary::Rsqrt,
        Unary::Square,
        Unary::Silu,
        Unary::Tanh,
        Unary::Sigmoid,
        Unary::Softplus,
        Unary::Clamp(-0.5, 0.25),
        Unary::AddScalar(1.5),
        Unary::MulScalar(-2.0),
        Unary::Abs,
        Unary::Relu,
        Unary::PowScalar(1.7),
        Unary::Affine(3.0, -1.0),
        Unary::Step,
        Unary::Sign,
        Unary::InRange(-0.5, 2.0),
        Unary::Sin,
        Unary::Cos,
        Unary::Recip,
        Unary::SiluPrime,
        Unary::SiluSecond,
        Unary::SiluThird,
    ];

    /// Whether the op is defined only for positive inputs (tests feed it those).
    pub fn needs_positive(self) -> bool {
        matches!(self, Unary::Log | Unary::Sqrt | Unary::Rsqrt | Unary::PowScalar(_) | Unary::Recip)
    }

    /// The shader's OP code.
    pub fn op_code(self) -> u32 {
        self.code().0
    }

    fn code(self) -> (u32, f32, f32) {
        use Unary::*;
        match self {
            Neg => (0, 0.0, 0.0),
            Exp => (1, 0.0, 0.0),
            Log => (2, 0.0, 0.0),
            Sqrt => (3, 0.0, 0.0),
            Rsqrt => (4, 0.0, 0.0),
            Square => (5, 0.0, 0.0),
            Silu => (6, 0.0, 0.0),
            Tanh => (7, 0.0, 0.0),
            Sigmoid => (8, 0.0, 0.0),
            Softplus => (9, 0.0, 0.0),
            Clamp(lo, hi) => (10, lo, hi),
            AddScalar(s) => (11, s, 0.0),
            MulScalar(s) => (12, s, 0.0),
            Abs => (13, 0.0, 0.0),
            Relu => (14, 0.0, 0.0),
            PowScalar(s) => (15, s, 0.0),
            Affine(s, t) => (16, s, t),
            Step => (17, 0.0, 0.0),
            Sign => (18, 0.0, 0.0),
            InRange(lo, hi) => (19, lo, hi),
            Sin => (20, 0.0, 0.0),
            Cos => (21, 0.0, 0.0),
            Recip => (22, 0.0, 0.0),
            SiluPrime => (23, 0.0, 0.0),
            SiluSecond => (24, 0.0, 0.0),
            SiluThird => (25, 0.0, 0.0),
        }
    }

    /// CPU reference (f64).
    pub fn eval(self, x: f64) -> f64 {
        use Unary::*;
        let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        match self {
            Neg => -x,
            Exp => x.exp(),
            Log => x.ln(),
            Sqrt => x.sqrt(),
            Rsqrt => 1.0 / x.sqrt(),
            Square => x * x,
            Silu => x * sig(x),
            Tanh => x.tanh(),
            Sigmoid => sig(x),
            Softplus => x.max(0.0) + (-x.abs()).exp().ln_1p(),
            Clamp(lo, hi) => x.clamp(lo as f64, hi as f64),
            AddScalar(s) => x + s as f64,
            MulScalar(s) => x * s as f64,
            Abs => x.abs(),
            Relu => x.max(0.0),
            PowScalar(s) => x.powf(s as f64),
            Affine(s, t) => s as f64 * x + t as f64,
            Step => (x > 0.0) as u8 as f64,
            Sign => (x > 0.0) as u8 as f64 - (x < 0.0) as u8 as f64,
            InRange(lo, hi) => (x > lo as f64 && x < hi as f64) as u8 as f64,
            Sin => x.sin(),
            Cos => x.cos(),
            Recip => 1.0 / x,
            SiluPrime => sig(x) * (1.0 + x * (1.0 - sig(x))),
            SiluSecond => sig(x) * (1.0 - sig(x)) * (2.0 + x * (1.0 - 2.0 * sig(x))),
            SiluThird => {
                let (q, a) = (sig(x) * (1.0 - sig(x)), 1.0 - 2.0 * sig(x));
                q * (a * (3.0 + x * a) - 2.0 * x * q)
            }
        }
    }
}

/// Element-wise functions of two inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    /// x + y.
    Add,
    /// x - y.
    Sub,
    /// x y.
    Mul,
    /// x / y.
    Div,
    /// max(x, y).
    Max,
    /// min(x, y).
    Min,
    /// a, broadcast to the output shape (b only contributes its shape).
    First,
    /// 1 where a == b, else 0 (zero derivative).
    Equal,
    /// a * silu'(b): SiLU's backward in one pass (its own derivative is composed in autodiff).
    SiluGrad,
}

impl Binary {
    /// Every op, as `Unary::ALL`.
    pub const ALL: [Binary; 9] = [
        Binary::Add,
        Binary::Sub,
        Binary::Mul,
        Binary::Div,
        Binary::Max,
        Binary::Min,
        Binary::First,
        Binary::Equal,
        Binary::SiluGrad,
    ];

    /// The shader's OP code.
    pub fn op_code(self) -> u32 {
        self.code()
    }

    fn code(self) -> u32 {
        self as u32
    }
    /// The plain-loop reference in f64.
    pub fn eval(self, x: f64, y: f64) -> f64 {
        match self {
            Binary::Add => x + y,
            Binary::Sub => x - y,
            Binary::Mul => x * y,
            Binary::Div => x / y,
            Binary::Max => x.max(y),
            Binary::Min => x.min(y),
            Binary::First => x,
            Binary::Equal => (x == y) as u8 as f64,
            Binary::SiluGrad => {
                let s = 1.0 / (1.0 + (-y).exp());
                x * s * (1.0 + y * (1.0 - s))
            }
        }
    }
}

/// out = f(a), same shape.
pub fn unary(rec: &mut Recorder, op: Unary, a: &Tensor) -> Result<Tensor> {
    let out = Tensor::empty(rec.gpu, a.shape())?;
    unary_into(rec, op, a, &out)?;
    Ok(out)
}

/// out = f(a) into an existing tensor of the same element count.
pub fn unary_into(rec: &mut Recorder, op: Unary, a: &Tensor, out: &Tensor) -> Result<()> {
    if out.numel() != a.numel() {
        return Err(Error::Shape(format!("{op:?}: output {:?} does not match input {:?}", out.shape(), a.shape())));
    }
    let n = a.numel();
    if n == 0 {
        return Ok(());
    }
    let (code, s0, s1) = op.code();
    // Four elements per invocation when the tensors hold whole vec4s (elementwise4.wgsl).
    let (shader, entry, count) =
        if n.is_multiple_of(4) { ("elementwise4", "unary_v4", n / 4) } else { ("elementwise", "unary", n) };
    let params =
        Params { n: dim(count, "elements")?, rank: 0, s0, s1, shape: [0; 8], a_stride: [0; 8], b_stride: [0; 8] };
    let pipe = rec.pipeline(shader, entry, &[("OP", code as f64)])?;
    let pi = rec.params(&params);
    let g = grid(rec, count, 256)?;
    rec.dispatch_at(&pipe, Some(pi), &[(E::A, a.buffer()), (E::OUT, out.buffer())], g)
}

/// out = g(a, b) with broadcasting.
pub fn binary(rec: &mut Recorder, op: Binary, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let shape = broadcast_shape(a.shape(), b.shape())?;
    let out = Tensor::empty(rec.gpu, &shape)?;
    binary_into(rec, op, a, b, &out)?;
    Ok(out)
}

/// Broadcast `a` to `shape` (a copy).
pub fn broadcast_to(rec: &mut Recorder, a: &Tensor, shape: &[usize]) -> Result<Tensor> {
    let out = Tensor::empty(rec.gpu, shape)?;
    broadcast_to_into(rec, a, &out)?;
    Ok(out)
}

/// Record `a` broadcast into `out` (whose shape `a` must broadcast to).
pub fn broadcast_to_into(rec: &mut Recorder, a: &Tensor, out: &Tensor) -> Result<()> {
    if broadcast_shape(a.shape(), out.shape())? != out.shape() {
        return Err(Error::Shape(format!("cannot broadcast {:?} to {:?}", a.shape(), out.shape())));
    }
    // `first` never reads b: bind a in its place with zero strides.
    let zero = vec![0; out.shape().len()];
    binary_launch(rec, Binary::First, a, &broadcast_strides(a.shape(), out.shape()), a, &zero, out)
}

/// out = g(a, b) with broadcasting, into an existing tensor of the broadcast shape.
pub fn binary_into(rec: &mut Recorder, op: Binary, a: &Tensor, b: &Tensor, out: &Tensor) -> Result<()> {
    let shape = broadcast_shape(a.shape(), b.shape())?;
    if shape.len() > MAX_RANK {
        return Err(Error::Shape(format!("{op:?}: rank {} exceeds {MAX_RANK}", shape.len())));
    }
    if out.shape() != shape.as_slice() {
        return Err(Error::Shape(format!("{op:?}: output {:?} is not the broadcast shape {shape:?}", out.shape())));
    }
    let (sa, sb) = (broadcast_strides(a.shape(), &shape), broadcast_strides(b.shape(), &shape));
    binary_launch(rec, op, a, &sa, b, &sb, out)
}

/// The binary kernel with explicit per-output-dimension strides for a and b.
fn binary_launch(
    rec: &mut Recorder,
    op: Binary,
    a: &Tensor,
    sa: &[usize],
    b: &Tensor,
    sb: &[usize],
    out: &Tensor,
) -> Result<()> {
    let shape = out.shape();
    if shape.len() > MAX_RANK {
        return Err(Error::Shape(format!("{op:?}: rank {} exceeds {MAX_RANK}", shape.len())));
    }
    let n = out.numel();
    if n == 0 {
        return Ok(());
    }
    let mut params = Params {
        n: dim(n, "elements")?,
        rank: shape.len() as u32,
        s0: 0.0,
        s1: 0.0,
        shape: [1; 8],
        a_stride: [0; 8],
        b_stride: [0; 8],
    };
    for i in 0..shape.len() {
        params.shape[i] = dim(shape[i], "dimension")?;
        params.a_stride[i] = sa[i] as u32;
        params.b_stride[i] = sb[i] as u32;
    }
    // Cheaper indexing for the common patterns (the general path divides per dimension).
    // `first` never reads b, so b counts as dense there.
    let dense = |st: &[usize]| st == contiguous_strides(shape).as_slice();
    let dense_b = op == Binary::First || dense(sb);
    let mode = if dense(sa) && dense_b {
        0
    } else if dense(sa) && trailing_block(sb, shape).is_some() {
        params.shape[0] = trailing_block(sb, shape).unwrap() as u32;
        1
    } else if dense_b && trailing_block(sa, shape).is_some() {
        params.shape[0] = trailing_block(sa, shape).unwrap() as u32;
        2
    } else if let (true, Some((block, inner))) = (dense(sa), middle_block(sb, shape)) {
        params.shape[0] = block as u32;
        params.shape[1] = inner as u32;
        4
    } else if let (true, Some((block, inner))) = (dense_b, middle_block(sa, shape)) {
        params.shape[0] = block as u32;
        params.shape[1] = inner as u32;
        5
    } else {
        3
    };
    // Four elements per invocation where every buffer holds whole vec4s and a broadcast
    // operand's pattern repeats in whole vec4s (elementwise4.wgsl).
    let (block, inner) = (params.shape[0] as usize, params.shape[1] as usize);
    let vec4_ok = n.is_multiple_of(4)
        && a.numel().is_multiple_of(4)
        && b.numel().is_multiple_of(4)
        && match mode {
            0 => true,
            1 | 2 => block % 4 == 0,
            4 | 5 => inner % 4 == 0,
            _ => false,
        };
    let (shader, entry, count) =
        if vec4_ok { ("elementwise4", "binary_v4", n / 4) } else { ("elementwise", "binary", n) };
    params.n = dim(count, "elements")?;
    let pipe = if vec4_ok && mode != 0 {
        let (eb, ei) = (block.max(1) as f64, inner.max(1) as f64);
        rec.pipeline(shader, entry, &[("OP", op.code() as f64), ("BCAST", mode as f64), ("EB", eb), ("EI", ei)])?
    } else {
        rec.pipeline(shader, entry, &[("OP", op.code() as f64), ("BCAST", mode as f64)])?
    };
    let pi = rec.params(&params);
    let g = grid(rec, count, 256)?;
    rec.dispatch(&pipe, Some(pi), &[a.buffer(), b.buffer(), out.buffer()], g)
}

/// CPU reference for `binary`.
pub fn binary_ref(
    op: Binary,
    a: &[f32],
    a_shape: &[usize],
    b: &[f32],
    b_shape: &[usize],
) -> Result<(Vec<f32>, Vec<usize>)> {
    let f = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
    let (out, shape) = binary_f64(op, &f(a), a_shape, &f(b), b_shape)?;
    Ok((out.into_iter().map(|x| x as f32).collect(), shape))
}

/// The same in f64 throughout (the graph's CPU evaluator uses it).
pub fn binary_f64(
    op: Binary,
    a: &[f64],
    a_shape: &[usize],
    b: &[f64],
    b_shape: &[usize],
) -> Result<(Vec<f64>, Vec<usize>)> {
    // NumPy's rule, written independently of the launcher's `broadcast_shape`/`_strides`
    // (this is their spec): shapes right-aligned, a size-1 dimension repeats.
    let rank = a_shape.len().max(b_shape.len());
    let dim = |s: &[usize], d: usize| if d + s.len() >= rank { s[d + s.len() - rank] } else { 1 };
    let mut shape = Vec::with_capacity(rank);
    for d in 0..rank {
        let (x, y) = (dim(a_shape, d), dim(b_shape, d));
        shape.push(match (x, y) {
            _ if x == y => x,
            (1, _) => y,
            (_, 1) => x,
            _ => return Err(Error::Shape(format!("cannot broadcast {a_shape:?} with {b_shape:?}"))),
        });
    }
    // The element of an input at output coordinate `c`.
    let at = |s: &[usize], c: &[usize]| {
        let mut i = 0;
        for d in 0..rank {
            let n = dim(s, d);
            if d + s.len() >= rank {
                i = i * n + if n == 1 { 0 } else { c[d] };
            }
        }
        i
    };
    let n: usize = shape.iter().product();
    let mut c = vec![0usize; rank];
    let out = (0..n)
        .map(|i| {
            let mut rem = i;
            for d in (0..rank).rev() {
                c[d] = rem % shape[d];
                rem /= shape[d];
            }
            let (ia, ib) = (at(a_shape, &c), at(b_shape, &c));
            op.eval(a[ia], b[ib])
        })
        .collect();
    Ok((out, shape))
}
