//! conv2d and its adjoints lowered to the tuned GEMM through patch matrices (im2col /
//! col2im in shaders/conv2d.wgsl), a chunk of images at a time.

use super::{conv_params, scratch, shape_consts, Conv2dOpts, Shapes};
use crate::error::Result;
use crate::gpu::Recorder;
use crate::ops::kernels::slots::conv2d as C;
use crate::ops::{dim, grid};
use crate::tensor::Tensor;

/// Whether the GEMM lowering puts a chunk's images side by side (patch matrix [K, images x
/// H_out W_out], one GEMM W @ cols, then the result's [C_out, images] axes swapped) rather than
/// one GEMM per image: when an image's H_out W_out columns are not whole vec4s, which the fast
/// GEMM kernels need (measured on W2: docs/performance.md, "images side by side").
pub(super) fn wide_for(o: Conv2dOpts, hwo: usize, images: usize) -> bool {
    o.wide.unwrap_or(images > 1 && !hwo.is_multiple_of(4))
}

/// Images per GEMM chunk: the chunk's patch matrix [chunk, C_in KH KW, H_out W_out] fits one
/// binding and 64 MiB of scratch. None when the lowering is off or one image does not fit.
pub(super) fn gemm_chunk(rec: &Recorder, xs: &[usize], ws: &[usize], ys: &[usize], o: Conv2dOpts) -> Option<usize> {
    if !o.gemm {
        return None;
    }
    let per_image = (ws[1] * ws[2] * ws[3] * ys[2] * ys[3]) as u64 * 4;
    let limit = rec.gpu.limits.max_storage_buffer_binding_size.min(rec.gpu.limits.max_buffer_size);
    if per_image == 0 || per_image > limit {
        return None;
    }
    let fit = (limit.min(64 << 20) / per_image).max(1) as usize;
    let chunk = if o.chunk > 0 { o.chunk.min(fit) } else { fit };
    Some(chunk.min(xs[0]).max(1))
}

/// Chunks of the batch: (first image, images).
fn chunks(batch: usize, chunk: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..batch).step_by(chunk).map(move |c0| (c0, chunk.min(batch - c0)))
}

/// im2col / col2im on images c0..c0+cb (params: batch = cb, groups_x = c0).
fn patches(
    rec: &mut Recorder,
    entry: &'static str,
    transposed: bool,
    wide: bool,
    src: &Tensor,
    dst: &Tensor,
    xs: &[usize],
    ws: &[usize],
    ys: &[usize],
    o: Conv2dOpts,
    (c0, cb): (usize, usize),
    n: usize,
) -> Result<()> {
    let mut params = conv_params(xs, ws, ys, o)?;
    params.batch = dim(cb, "chunk")?;
    params.img0 = dim(c0, "chunk start")?;
    // Four elements per invocation where the written rows are whole vec4s (im2col4).
    let vec4_rows = if transposed {
        xs[1] * ws[2] * ws[3]
    } else if wide {
        cb * ys[2] * ys[3]
    } else {
        ys[2] * ys[3]
    };
    let (entry, n) = if entry == "im2col" && vec4_rows % 4 == 0 { ("im2col4", n / 4) } else { (entry, n) };
    let pipe = rec.pipeline(
        "conv2d",
        entry,
        &[("TRANSPOSED", transposed as u32 as f64), ("WIDE", wide as u32 as f64)]
            .into_iter()
            .chain(shape_consts(xs, ws, ys, o))
            .collect::<Vec<_>>(),
    )?;
    let pi = rec.params(&params);
    let g = grid(rec, n, 64)?;
    rec.dispatch_at(&pipe, Some(pi), &[(C::X, src.buffer()), (C::RES, dst.buffer())], g)
}

/// Rows c0..c0+cb of a [B, C, HW] tensor as a [cb, C, HW] tensor: the tensor itself when it is
/// one chunk, else a copy into scratch `slot`.
fn rows(rec: &mut Recorder, t: &Tensor, (c0, cb): (usize, usize), whole: bool, slot: usize) -> Result<Tensor> {
    let s = t.shape();
    if whole {
        return Ok(t.clone());
    }
    let per = s[1] * s[2];
    let out = scratch(rec, slot, &[cb, s[1], s[2]])?;
    rec.copy_buffers(t.buffer(), (c0 * per * 4) as u64, out.buffer(), 0, (cb * per * 4) as u64);
    Ok(out)
}

/// conv2d as im2col + batched GEMM (the tuned matmul), `chunk` images at a time:
/// y[b] = W [C_out, K] @ cols[b].
pub(super) fn forward(
    rec: &mut Recorder,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    o: Conv2dOpts,
    y: &Tensor,
    chunk: usize,
) -> Result<()> {
    let (xs, ws, ys) = (x.shape().to_vec(), w.shape().to_vec(), y.shape().to_vec());
    let (k, hwo) = (ws[1] * ws[2] * ws[3], ys[2] * ys[3]);
    let w2 = w.reshape(&[ws[0], k])?;
    let whole = chunk >= xs[0];
    for (c0, cb) in chunks(xs[0], chunk) {
        if wide_for(o, hwo, cb) {
            // cols [K, cb * hwo]; yw = W @ cols [C_out, cb, hwo]; y[c0..] = yw with axes swapped.
            let cols = scratch(rec, 0, &[k, cb * hwo])?;
            patches(rec, "im2col", false, true, x, &cols, &xs, &ws, &ys, o, (c0, cb), cols.numel())?;
            let yw = scratch(rec, 1, &[ws[0], cb * hwo])?;
            match bias {
                Some(b) => {
                    crate::ops::elementwise::broadcast_to_into(rec, &b.reshape(&[ws[0], 1])?, &yw)?;
                    crate::ops::matmul::matmul_acc(rec, &w2, &cols, &yw, Default::default())?;
                }
                None => crate::ops::matmul::matmul_out(rec, &w2, &cols, &yw, Default::default())?,
            }
            crate::ops::layout::swap_outer_at(rec, &yw, 0, [ws[0], cb, hwo], y, c0 * ys[1] * hwo)?;
            continue;
        }
        let cols = scratch(rec, 0, &[cb, k, hwo])?;
        patches(rec, "im2col", false, false, x, &cols, &xs, &ws, &ys, o, (c0, cb), cols.numel())?;
        let yc = if whole { y.reshape(&[ys[0], ys[1], hwo])? } else { scratch(rec, 1, &[cb, ys[1], hwo])? };
        match bias {
            Some(b) => {
                crate::ops::elementwise::broadcast_to_into(rec, &b.reshape(&[ws[0], 1])?, &yc)?;
                crate::ops::matmul::matmul_acc(rec, &w2, &cols, &yc, Default::default())?;
            }
            None => crate::ops::matmul::matmul_out(rec, &w2, &cols, &yc, Default::default())?,
        }
        if !whole {
            let per = ys[1] * hwo * 4;
            rec.copy_buffers(yc.buffer(), 0, y.buffer(), (c0 * per) as u64, (cb * per) as u64);
        }
    }
    Ok(())
}

/// The input gradient through GEMMs: per chunk, cols = W^T gy (a batched GEMM), then col2im,
/// the gather adjoint of im2col.
pub(super) fn bwd_input(
    rec: &mut Recorder,
    gy: &Tensor,
    w: &Tensor,
    o: Conv2dOpts,
    gx: &Tensor,
    (xs, ws, ys): Shapes,
    chunk: usize,
) -> Result<()> {
    // Per chunk: cols = W^T gy (a batched GEMM), then col2im, the gather adjoint of im2col.
    let (k, hwo) = (ws[1] * ws[2] * ws[3], ys[2] * ys[3]);
    let gy3 = gy.reshape(&[ys[0], ys[1], hwo])?;
    let wt = crate::ops::matmul::MatmulOpts { trans_a: true, ..Default::default() };
    let w2 = w.reshape(&[ws[0], k])?;
    for (c0, cb) in chunks(xs[0], chunk) {
        let n_gx = cb * xs[1] * xs[2] * xs[3];
        if wide_for(o, hwo, cb) {
            // gyw = gy[c0..] with axes swapped [C_out, cb * hwo]; cols = W^T gyw [K, cb * hwo].
            let gyw = scratch(rec, 2, &[ws[0], cb * hwo])?;
            crate::ops::layout::swap_outer_at(rec, gy, c0 * ys[1] * hwo, [cb, ws[0], hwo], &gyw, 0)?;
            let cols = scratch(rec, 0, &[k, cb * hwo])?;
            crate::ops::matmul::matmul_out(rec, &w2, &gyw, &cols, wt)?;
            patches(rec, "col2im", false, true, &cols, gx, xs, ws, ys, o, (c0, cb), n_gx)?;
            continue;
        }
        let gyc = rows(rec, &gy3, (c0, cb), chunk >= xs[0], 2)?;
        let cols = scratch(rec, 0, &[cb, k, hwo])?;
        crate::ops::matmul::matmul_out(rec, &w2, &gyc, &cols, wt)?;
        patches(rec, "col2im", false, false, &cols, gx, xs, ws, ys, o, (c0, cb), n_gx)?;
    }
    Ok(())
}

/// The weight gradient through GEMMs: per chunk, sum_b gy[b] [C_out, HW] @ cols[b]^T [HW, K]
/// (cols written transposed, or read in place by the implicit GEMM's MODE 1); chunk sums land
/// in rows of a scratch matrix, summed at the end.
pub(super) fn bwd_weight(
    rec: &mut Recorder,
    gy: &Tensor,
    x: &Tensor,
    o: Conv2dOpts,
    gw: &Tensor,
    (xs, ws, ys): Shapes,
    chunk: usize,
) -> Result<()> {
    // Per chunk: sum_b gy[b] [C_out, HW] @ cols[b]^T [HW, K] (cols written transposed);
    // chunk sums land in rows of a scratch matrix, summed at the end.
    let (k, hwo, co) = (ws[1] * ws[2] * ws[3], ys[2] * ys[3], ws[0]);
    let gy3 = gy.reshape(&[ys[0], ys[1], hwo])?;
    let n_chunks = xs[0].div_ceil(chunk);
    let sums = if n_chunks > 1 { Some(scratch(rec, 3, &[n_chunks, co * k])?) } else { None };
    // MODE 1 loops once per output pixel; longer images take im2col and a split-K GEMM.
    let implicit = super::implicit::implicit_cfg(rec, o, (co, k, chunk * co * k), false, false)
        .filter(|_| hwo <= crate::ops::loop_budget(rec));
    for (i, (c0, cb)) in chunks(xs[0], chunk).enumerate() {
        let per = scratch(rec, 1, &[cb, co, k])?;
        if let Some(cfg) = implicit {
            // per[b] = gy[c0 + b] [C_out, hwo] @ patches(x[c0 + b]) [hwo, K], implicitly.
            let g = super::implicit::ImplicitGemm {
                mode: 1,
                ipz: 1,
                wpad: ys[3],
                a: gy,
                x,
                c: &per,
                accumulate: false,
                mnk: (co, k, hwo),
                z: cb,
                a_bstride: co * hwo,
                img0: c0,
                c_img0: 0,
                c_bstride: co * k,
            };
            super::implicit::implicit_gemm(rec, g, cfg, (xs, ws, ys), o)?;
        } else {
            let cols_t = scratch(rec, 0, &[cb, hwo, k])?;
            patches(rec, "im2col", true, false, x, &cols_t, xs, ws, ys, o, (c0, cb), cols_t.numel())?;
            let gyc = rows(rec, &gy3, (c0, cb), n_chunks == 1, 2)?;
            crate::ops::matmul::matmul_out(rec, &gyc, &cols_t, &per, Default::default())?;
        }
        match &sums {
            None => crate::ops::reduce::reduce_into(rec, crate::ops::reduce::Reduce::Sum, &per, 0, gw)?,
            Some(sums) => {
                let part = scratch(rec, 4, &[co * k])?;
                crate::ops::reduce::reduce_into(rec, crate::ops::reduce::Reduce::Sum, &per, 0, &part)?;
                rec.copy_buffers(part.buffer(), 0, sums.buffer(), (i * co * k * 4) as u64, (co * k * 4) as u64);
            }
        }
    }
    if let Some(sums) = sums {
        crate::ops::reduce::reduce_into(rec, crate::ops::reduce::Reduce::Sum, &sums, 0, gw)?;
    }
    Ok(())
}
