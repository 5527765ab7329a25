//! conv2d NCHW and its adjoints. Each pass has three lowerings ([`Strategy`]), tried in order:
//! the implicit GEMM (`implicit.rs`: the subgroup GEMM reading the image in place), im2col +
//! the tuned GEMM (`im2col.rs`: patch matrices in scratch, a chunk of images at a time), and
//! the direct kernels (`direct.rs`). The first that applies to the shapes and the adapter runs.

mod direct;
mod im2col;
mod implicit;
mod reference;

pub use reference::{conv2d_bwd_input_ref, conv2d_bwd_weight_ref, conv2d_ref, conv_loops};

use crate::error::{Error, Result};
use crate::gpu::Recorder;
use crate::ops::dim;
use crate::ops::kernels::ConvParams;
use crate::tensor::Tensor;

/// A convolution's stride and padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dOpts {
    /// The stride.
    pub stride: usize,
    /// Zero padding on every side.
    pub pad: usize,
    /// Lower to im2col + GEMM (default); false forces the direct kernels (tests run both).
    pub gemm: bool,
    /// Images per GEMM chunk (0: as many as fit one binding and 64 MiB of scratch).
    pub chunk: usize,
    /// Lowering of the forward pass and the input gradient: one GEMM per chunk with the chunk's
    /// images side by side (`Some(true)`), one GEMM per image (`Some(false)`), or chosen from the
    /// shapes (`None`, see `wide_for`).
    pub wide: Option<bool>,
    /// Implicit GEMM (shaders/conv_gemm.wgsl: no patch matrix) for the forward pass, the
    /// weight gradient and (stride 1, square kernel) the input gradient, where it applies
    /// (`implicit::implicit_cfg`): `None` (default) or `Some(true)` use it there,
    /// `Some(false)` never.
    pub implicit: Option<bool>,
}
impl Default for Conv2dOpts {
    fn default() -> Self {
        Conv2dOpts { stride: 1, pad: 0, gemm: true, chunk: 0, wide: None, implicit: None }
    }
}

impl Conv2dOpts {
    /// Stride and padding.
    pub fn new(stride: usize, pad: usize) -> Self {
        Conv2dOpts { stride, pad, ..Default::default() }
    }
}

/// A lowering of one convolution pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// The implicit GEMM: no patch matrix (where its blocking and the adapter allow).
    Implicit,
    /// im2col / col2im and the tuned GEMM (where one image's patch matrix fits a binding).
    Im2col,
    /// The direct kernels (always apply, slowest).
    Direct,
}

/// Run the first lowering that applies, in `Strategy`'s order: the implicit GEMM where it
/// accepts (it is told whether a patch matrix would fit), im2col where one image's patch matrix
/// fits (`chunk`), else the direct kernels. Returns the one that ran.
fn lower<'g>(
    rec: &mut Recorder<'g>,
    chunk: Option<usize>,
    implicit: impl FnOnce(&mut Recorder<'g>, bool) -> Result<bool>,
    im2col: impl FnOnce(&mut Recorder<'g>, usize) -> Result<()>,
    direct: impl FnOnce(&mut Recorder<'g>) -> Result<()>,
) -> Result<Strategy> {
    if implicit(rec, chunk.is_none())? {
        return Ok(Strategy::Implicit);
    }
    match chunk {
        Some(c) => im2col(rec, c).map(|_| Strategy::Im2col),
        None => direct(rec).map(|_| Strategy::Direct),
    }
}

/// Shapes of x, w and y.
type Shapes<'a> = (&'a [usize], &'a [usize], &'a [usize]);

/// Output shape of conv2d, or a clear error naming the shapes.
pub fn conv2d_shape(x: &[usize], w: &[usize], o: Conv2dOpts) -> Result<[usize; 4]> {
    if x.len() != 4 || w.len() != 4 {
        return Err(Error::Shape(format!(
            "conv2d wants x [B, C, H, W] and w [C_out, C_in, KH, KW], got {x:?} and {w:?}"
        )));
    }
    if x[1] != w[1] {
        return Err(Error::Shape(format!("conv2d: x {x:?} has {} channels, w {w:?} expects {}", x[1], w[1])));
    }
    if o.stride == 0 {
        return Err(Error::Shape("conv2d: stride 0".into()));
    }
    let (hp, wp) = (x[2] + 2 * o.pad, x[3] + 2 * o.pad);
    if w[2] > hp || w[3] > wp || w[2] == 0 || w[3] == 0 {
        return Err(Error::Shape(format!(
            "conv2d: kernel {}x{} does not fit the padded input {hp}x{wp} (x {x:?}, pad {})",
            w[2], w[3], o.pad
        )));
    }
    Ok([x[0], w[0], (hp - w[2]) / o.stride + 1, (wp - w[3]) / o.stride + 1])
}

/// y = conv2d(x, w) + bias.
pub fn conv2d(rec: &mut Recorder, x: &Tensor, w: &Tensor, bias: Option<&Tensor>, o: Conv2dOpts) -> Result<Tensor> {
    let ys = conv2d_shape(x.shape(), w.shape(), o)?;
    if let Some(b) = bias {
        if b.shape() != [w.shape()[0]] {
            return Err(Error::Shape(format!("conv2d: bias {:?} should be [{}]", b.shape(), w.shape()[0])));
        }
    }
    let y = Tensor::empty(rec.gpu, &ys)?;
    conv2d_into(rec, x, w, bias, o, &y)?;
    Ok(y)
}

/// conv2d into an existing output of the right shape.
pub fn conv2d_into(
    rec: &mut Recorder,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    o: Conv2dOpts,
    y: &Tensor,
) -> Result<()> {
    let ys = conv2d_shape(x.shape(), w.shape(), o)?;
    if y.shape() != ys {
        return Err(Error::Shape(format!("conv2d: output {:?}, expected {ys:?}", y.shape())));
    }
    // The implicit GEMM builds no patch matrix, so it comes before the check that one fits.
    let chunk = im2col::gemm_chunk(rec, x.shape(), w.shape(), &ys, o);
    lower(
        rec,
        chunk,
        |r, no_patches| implicit::forward(r, x, w, bias, o, y, no_patches),
        |r, c| im2col::forward(r, x, w, bias, o, y, c),
        |r| direct::forward(r, x, w, bias, o, y),
    )?;
    Ok(())
}

/// The convolution's shapes as the pipeline constants of conv2d.wgsl's patch kernels and of
/// conv_gemm.wgsl: input channels and size, output size, kernel size, stride, padding.
fn shape_consts(xs: &[usize], ws: &[usize], ys: &[usize], o: Conv2dOpts) -> [(&'static str, f64); 9] {
    [
        ("PC", xs[1] as f64),
        ("PH", xs[2] as f64),
        ("PW", xs[3] as f64),
        ("PHO", ys[2] as f64),
        ("PWO", ys[3] as f64),
        ("PKH", ws[2] as f64),
        ("PKW", ws[3] as f64),
        ("PS", o.stride as f64),
        ("PPAD", o.pad as f64),
    ]
}

fn scratch(rec: &Recorder, slot: usize, shape: &[usize]) -> Result<Tensor> {
    let bytes = shape.iter().product::<usize>() as u64 * 4;
    Tensor::view(rec.gpu.scratch(slot, bytes), shape)
}

fn conv_params(xs: &[usize], ws: &[usize], ys: &[usize], o: Conv2dOpts) -> Result<ConvParams> {
    Ok(ConvParams {
        batch: dim(xs[0], "batch")?,
        c_in: dim(xs[1], "c_in")?,
        h: dim(xs[2], "h")?,
        w: dim(xs[3], "w")?,
        c_out: dim(ws[0], "c_out")?,
        kh: dim(ws[2], "kh")?,
        kw: dim(ws[3], "kw")?,
        stride: dim(o.stride, "stride")?,
        pad: dim(o.pad, "pad")?,
        h_out: dim(ys[2], "h_out")?,
        w_out: dim(ys[3], "w_out")?,
        ..Default::default()
    })
}

/// Shapes of x, w and y for an adjoint, checking that gy has y's shape.
fn adjoint_shapes(
    op: &str,
    gy: &Tensor,
    x: &Tensor,
    w: &Tensor,
    o: Conv2dOpts,
) -> Result<(Vec<usize>, Vec<usize>, Vec<usize>)> {
    let (xs, ws) = (x.shape().to_vec(), w.shape().to_vec());
    let ys = conv2d_shape(&xs, &ws, o)?.to_vec();
    if gy.shape() != ys {
        return Err(Error::Shape(format!("{op}: gy {:?} does not match x {xs:?}, w {ws:?} ({ys:?})", gy.shape())));
    }
    Ok((xs, ws, ys))
}

/// gx = conv2d_bwd_input(gy, w): the gradient of conv2d with respect to its input x, whose
/// shape `gx` gives (a transposed convolution).
pub fn conv2d_bwd_input_into(rec: &mut Recorder, gy: &Tensor, w: &Tensor, o: Conv2dOpts, gx: &Tensor) -> Result<()> {
    let (xs, ws, ys) = adjoint_shapes("conv2d_bwd_input", gy, gx, w, o)?;
    if gx.numel() == 0 {
        return Ok(());
    }
    let shapes = (&xs[..], &ws[..], &ys[..]);
    let chunk = im2col::gemm_chunk(rec, &xs, &ws, &ys, o);
    lower(
        rec,
        chunk,
        |r, no_patches| implicit::bwd_input(r, gy, w, o, gx, no_patches),
        |r, c| im2col::bwd_input(r, gy, w, o, gx, shapes, c),
        |r| direct::bwd_input(r, gy, w, o, gx, shapes),
    )?;
    Ok(())
}

/// gw = conv2d_bwd_weight(gy, x): the gradient of conv2d with respect to its weight (shape
/// given by `gw`).
pub fn conv2d_bwd_weight_into(rec: &mut Recorder, gy: &Tensor, x: &Tensor, o: Conv2dOpts, gw: &Tensor) -> Result<()> {
    let (xs, ws, ys) = adjoint_shapes("conv2d_bwd_weight", gy, x, gw, o)?;
    if gw.numel() == 0 {
        return Ok(());
    }
    let shapes = (&xs[..], &ws[..], &ys[..]);
    let chunk = im2col::gemm_chunk(rec, &xs, &ws, &ys, o);
    lower(
        rec,
        chunk,
        |r, no_patches| implicit::bwd_weight(r, gy, x, o, gw, no_patches),
        |r, c| im2col::bwd_weight(r, gy, x, o, gw, shapes, c),
        |r| direct::bwd_weight(r, gy, x, o, gw, shapes),
    )?;
    Ok(())
}
