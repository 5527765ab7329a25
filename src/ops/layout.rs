//! Nearest x2 upsampling and concatenation (shaders/layout.wgsl).

use super::kernels::slots::layout as L;
use super::kernels::LayoutParams;
use super::{dim, grid};
use crate::error::{Error, Result};
use crate::gpu::Recorder;
use crate::ops::reduce::split_axis;
use crate::tensor::Tensor;

/// x [B, C, H, W] -> [B, C, 2H, 2W], each pixel repeated 2x2.
pub fn upsample2x(rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
    let s = x.shape();
    if s.len() != 4 {
        return Err(Error::Shape(format!("upsample2x wants [B, C, H, W], got {s:?}")));
    }
    let y = Tensor::empty(rec.gpu, &[s[0], s[1], 2 * s[2], 2 * s[3]])?;
    upsample2x_into(rec, x, &y)?;
    Ok(y)
}

/// Record nearest x2 upsampling of x [B, C, H, W] into y.
pub fn upsample2x_into(rec: &mut Recorder, x: &Tensor, y: &Tensor) -> Result<()> {
    let s = x.shape();
    if s.len() != 4 || y.shape() != [s[0], s[1], 2 * s[2], 2 * s[3]] {
        return Err(Error::Shape(format!("upsample2x: {s:?} -> {:?}", y.shape())));
    }
    layout_copy(rec, "upsample2x", x, y, [dim(s[2], "h")?, dim(s[3], "w")?, 0, 0])
}

/// Sum of 2x2 blocks, [B, C, 2H, 2W] -> [B, C, H, W]: the adjoint of upsample2x.
pub fn downsample2x_sum_into(rec: &mut Recorder, x: &Tensor, y: &Tensor) -> Result<()> {
    let s = y.shape();
    if s.len() != 4 || x.shape() != [s[0], s[1], 2 * s[2], 2 * s[3]] {
        return Err(Error::Shape(format!("downsample2x_sum: {:?} -> {s:?}", x.shape())));
    }
    layout_copy(rec, "downsample2x_sum", x, y, [dim(s[2], "h")?, dim(s[3], "w")?, 0, 0])
}

/// y = x[.., start..start + len, ..] along `axis` (len = y's extent there).
pub fn slice_into(rec: &mut Recorder, x: &Tensor, axis: usize, start: usize, y: &Tensor) -> Result<()> {
    let (outer, l, inner) = split_axis(x.shape(), axis)?;
    let len = *y.shape().get(axis).ok_or_else(|| Error::Shape(format!("slice: axis {axis} of {:?}", y.shape())))?;
    if start + len > l || y.numel() != outer * len * inner {
        return Err(Error::Shape(format!(
            "slice {start}..{} of axis {axis} of {:?} into {:?}",
            start + len,
            x.shape(),
            y.shape()
        )));
    }
    let entry = if inner % 4 == 0 { "slice4" } else { "slice" };
    layout_copy(rec, entry, x, y, [dim(l, "length")?, dim(len, "slice")?, dim(inner, "inner")?, dim(start, "start")?])
}

/// The adjoint of slice: y is zero except y[.., start..start + len, ..] = x.
pub fn pad_into(rec: &mut Recorder, x: &Tensor, axis: usize, start: usize, y: &Tensor) -> Result<()> {
    let (outer, l, inner) = split_axis(y.shape(), axis)?;
    let len = *x.shape().get(axis).ok_or_else(|| Error::Shape(format!("pad: axis {axis} of {:?}", x.shape())))?;
    if start + len > l || x.numel() != outer * len * inner {
        return Err(Error::Shape(format!("pad {:?} at {start} of axis {axis} into {:?}", x.shape(), y.shape())));
    }
    layout_copy(rec, "pad", x, y, [dim(l, "length")?, dim(len, "slice")?, dim(inner, "inner")?, dim(start, "start")?])
}

/// The parameters of `n` output elements and dimensions d0..d3.
fn layout_params(n: usize, d: [u32; 4]) -> Result<LayoutParams> {
    Ok(LayoutParams { n: dim(n, "elements")?, d0: d[0], d1: d[1], d2: d[2], d3: d[3], ..Default::default() })
}

/// A layout pipeline with the kernel's dimensions d0..d3 as constants D0..D3.
fn layout_pipeline(
    rec: &mut Recorder,
    entry: &'static str,
    d: [u32; 4],
) -> Result<std::sync::Arc<crate::gpu::pipeline::Pipeline>> {
    rec.pipeline("layout", entry, &[("D0", d[0] as f64), ("D1", d[1] as f64), ("D2", d[2] as f64), ("D3", d[3] as f64)])
}

/// One input (binding 1), one output (binding 3), params (elements of y, d0..d3); entries named
/// `..4` take four elements per invocation.
fn layout_copy(rec: &mut Recorder, entry: &'static str, x: &Tensor, y: &Tensor, d: [u32; 4]) -> Result<()> {
    let n = y.numel();
    if n == 0 {
        return Ok(());
    }
    let pipe = layout_pipeline(rec, entry, d)?;
    let pi = rec.params(&layout_params(n, d)?);
    let per = if entry.ends_with('4') { 4 } else { 1 };
    let g = grid(rec, n / per, 256)?;
    rec.dispatch_at(&pipe, Some(pi), &[(L::A, x.buffer()), (L::Y, y.buffer())], g)
}

/// Its plain-loop reference.
pub fn upsample2x_ref(x: &[f32], s: &[usize]) -> Vec<f32> {
    let (h, w) = (s[2], s[3]);
    let planes = s[0] * s[1];
    let mut y = vec![0f32; planes * 4 * h * w];
    for p in 0..planes {
        for i in 0..2 * h {
            for j in 0..2 * w {
                y[(p * 2 * h + i) * 2 * w + j] = x[(p * h + i / 2) * w + j / 2];
            }
        }
    }
    y
}

/// Concatenate a and b along `axis` (all other dims equal). Channel concat of NCHW: axis 1.
pub fn concat(rec: &mut Recorder, a: &Tensor, b: &Tensor, axis: usize) -> Result<Tensor> {
    let (sa, sb) = (a.shape(), b.shape());
    let same_rest = sa.len() == sb.len() && sa.iter().zip(sb).enumerate().all(|(i, (x, y))| i == axis || x == y);
    if !same_rest || axis >= sa.len() {
        return Err(Error::Shape(format!("concat along axis {axis}: {sa:?} and {sb:?} differ elsewhere")));
    }
    let la = split_axis(sa, axis)?.1;
    let lb = sb[axis];
    let mut shape = sa.to_vec();
    shape[axis] = la + lb;
    let y = Tensor::empty(rec.gpu, &shape)?;
    concat_into(rec, a, b, axis, &y)?;
    Ok(y)
}

/// Record a and b joined along `axis` into y.
pub fn concat_into(rec: &mut Recorder, a: &Tensor, b: &Tensor, axis: usize, y: &Tensor) -> Result<()> {
    let (outer, la, inner) = split_axis(a.shape(), axis)?;
    let lb = *b.shape().get(axis).ok_or_else(|| Error::Shape(format!("concat: axis {axis} of {:?}", b.shape())))?;
    if y.numel() != outer * (la + lb) * inner || b.numel() != outer * lb * inner {
        return Err(Error::Shape(format!(
            "concat {:?} and {:?} along {axis} into {:?}",
            a.shape(),
            b.shape(),
            y.shape()
        )));
    }
    let n = y.numel();
    if n == 0 {
        return Ok(());
    }
    let d = [dim(la, "a length")?, dim(lb, "b length")?, dim(inner, "inner")?, 0];
    let (entry, per) = if inner % 4 == 0 { ("concat4", 4) } else { ("concat", 1) };
    let pipe = layout_pipeline(rec, entry, d)?;
    let pi = rec.params(&layout_params(n, d)?);
    let g = grid(rec, n / per, 256)?;
    rec.dispatch(&pipe, Some(pi), &[a.buffer(), b.buffer(), y.buffer()], g)
}

/// Its plain-loop reference.
pub fn concat_ref(a: &[f32], sa: &[usize], b: &[f32], sb: &[usize], axis: usize) -> Vec<f32> {
    let (outer, la, inner) = split_axis(sa, axis).unwrap();
    let lb = sb[axis];
    let mut y = Vec::with_capacity(a.len() + b.len());
    for o in 0..outer {
        y.extend_from_slice(&a[o * la * inner..(o + 1) * la * inner]);
        y.extend_from_slice(&b[o * lb * inner..(o + 1) * lb * inner]);
    }
    y
}

/// Swap the last two axes: [.., R, C] -> [.., C, R].
pub fn transpose(rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
    let s = x.shape();
    if s.len() < 2 {
        return Err(Error::Shape(format!("transpose wants rank >= 2, got {s:?}")));
    }
    let mut shape = s.to_vec();
    shape.swap(s.len() - 2, s.len() - 1);
    let y = Tensor::empty(rec.gpu, &shape)?;
    transpose_into(rec, x, &y)?;
    Ok(y)
}

/// y = x with the last two axes swapped, into an existing tensor.
pub fn transpose_into(rec: &mut Recorder, x: &Tensor, y: &Tensor) -> Result<()> {
    let s = x.shape();
    let mut shape = s.to_vec();
    if s.len() >= 2 {
        shape.swap(s.len() - 2, s.len() - 1);
    }
    if s.len() < 2 || y.shape() != shape.as_slice() {
        return Err(Error::Shape(format!("transpose {s:?} into {:?}", y.shape())));
    }
    layout_copy(rec, "transpose", x, y, [dim(s[s.len() - 2], "rows")?, dim(s[s.len() - 1], "columns")?, 0, 0])
}

/// The plain-loop reference of the transpose of the last two axes.
pub fn transpose_ref(x: &[f32], s: &[usize]) -> Vec<f32> {
    let (r, c) = (s[s.len() - 2], s[s.len() - 1]);
    let mut y = vec![0f32; x.len()];
    for b in 0..x.len() / (r * c).max(1) {
        for i in 0..r {
            for j in 0..c {
                y[b * r * c + j * r + i] = x[b * r * c + i * c + j];
            }
        }
    }
    y
}

/// Swap the two outer axes of a [A, B, R] block: y[j, i, r] = x[i, j, r] (e.g. [N, C, HW] <->
/// [C, N, HW]). The block is read from element `x_at` of x and written from element `y_at` of y,
/// so that it can be one chunk of a larger tensor.
pub fn swap_outer_at(
    rec: &mut Recorder,
    x: &Tensor,
    x_at: usize,
    [a, b, r]: [usize; 3],
    y: &Tensor,
    y_at: usize,
) -> Result<()> {
    let n = a * b * r;
    if x_at + n > x.numel() || y_at + n > y.numel() {
        return Err(Error::Shape(format!(
            "swap_outer: block [{a}, {b}, {r}] at {x_at} of x {:?} / at {y_at} of y {:?} is out of range",
            x.shape(),
            y.shape()
        )));
    }
    if n == 0 {
        return Ok(());
    }
    let d = [dim(a, "A")?, dim(b, "B")?, dim(r, "R")?, 0];
    let pipe = layout_pipeline(rec, "swap_outer", d)?;
    let pi = rec.params(&LayoutParams {
        x_at: dim(x_at, "x offset")?,
        y_at: dim(y_at, "y offset")?,
        ..layout_params(n, d)?
    });
    let g = grid(rec, n, 256)?;
    rec.dispatch_at(&pipe, Some(pi), &[(L::A, x.buffer()), (L::Y, y.buffer())], g)
}

/// swap_outer of [A, B, H, WP] -> [B, A, H, W], dropping the columns at W.. of every row (the
/// padding of an implicit convolution's output rows). Whole tensors, no offsets.
pub fn swap_outer_crop(rec: &mut Recorder, x: &Tensor, [a, b, h, wp]: [usize; 4], w: usize, y: &Tensor) -> Result<()> {
    if w > wp || x.numel() < a * b * h * wp || y.numel() != a * b * h * w {
        return Err(Error::Shape(format!(
            "swap_outer_crop: [{a}, {b}, {h}, {wp}] -> width {w}: x {:?}, y {:?}",
            x.shape(),
            y.shape()
        )));
    }
    let n = y.numel();
    if n == 0 {
        return Ok(());
    }
    let d = [dim(a, "A")?, dim(b, "B")?, dim(h * w, "H*W")?, dim(w, "W")?];
    let pipe = layout_pipeline(rec, "swap_outer_crop", d)?;
    let pi = rec.params(&LayoutParams { wpad: dim(wp, "padded width")?, ..layout_params(n, d)? });
    let g = grid(rec, n, 256)?;
    rec.dispatch_at(&pipe, Some(pi), &[(L::A, x.buffer()), (L::Y, y.buffer())], g)
}

/// The plain-loop reference of `swap_outer_crop`.
pub fn swap_outer_crop_ref(x: &[f32], [a, b, h, wp]: [usize; 4], w: usize) -> Vec<f32> {
    let mut y = Vec::with_capacity(a * b * h * w);
    for j in 0..b {
        for i in 0..a {
            for r in 0..h {
                let at = ((i * b + j) * h + r) * wp;
                y.extend_from_slice(&x[at..at + w]);
            }
        }
    }
    y
}

/// The plain-loop reference of `swap_outer`.
pub fn swap_outer_ref(x: &[f32], [a, b, r]: [usize; 3]) -> Vec<f32> {
    let mut y = vec![0f32; a * b * r];
    for i in 0..a {
        for j in 0..b {
            y[(j * a + i) * r..(j * a + i + 1) * r].copy_from_slice(&x[(i * b + j) * r..(i * b + j + 1) * r]);
        }
    }
    y
}
