//! conv2d and its adjoints as implicit GEMMs (shaders/conv_gemm.wgsl): the subgroup
//! register-blocked GEMM reading the image in place, no patch matrix. `forward`, `bwd_input`
//! and `bwd_weight` return Ok(false) where they do not apply (see `implicit_cfg`; columns that
//! are not whole vec4s, a stride or kernel they do not cover, a loop past a CPU adapter's
//! budget); the caller (ops::conv) then lowers through im2col, or runs the direct kernel.

use super::{scratch, shape_consts, Conv2dOpts};
use crate::error::{Error, Result};
use crate::gpu::Recorder;
use crate::ops::dim;
use crate::ops::matmul::{Family, MatmulConfig};
use crate::tensor::Tensor;

/// The same choice for the implicit GEMM, where side by side costs only the swap pass: also
/// under 512 columns per image (docs/performance.md, "the implicit GEMM side by side").
fn implicit_wide_for(o: Conv2dOpts, hwo: usize, images: usize) -> bool {
    o.wide.unwrap_or(images > 1 && (!hwo.is_multiple_of(4) || hwo < 512))
}

/// Does a scratch tensor of `elems` floats fit one storage binding? Where the side-by-side
/// output would not, the implicit GEMM writes per image instead.
fn binds(rec: &Recorder, elems: usize) -> bool {
    let limit = rec.gpu.limits.max_storage_buffer_binding_size.min(rec.gpu.limits.max_buffer_size);
    elems as u64 * 4 <= limit
}

/// The output columns of a MODE 0 / 2 product with `rows` output channels over `images`
/// images of h x w: (side by side, columns per output row, columns). Side by side, rows are
/// padded to whole vec4s where `pad` allows (stride 1) and the [rows, images, h, wpad] result
/// must fit a binding; per image, the product has h * w columns.
fn out_columns(
    rec: &Recorder,
    o: Conv2dOpts,
    rows: usize,
    images: usize,
    (h, w): (usize, usize),
    pad: bool,
) -> (bool, usize, usize) {
    let wpad = if pad { w.next_multiple_of(4) } else { w };
    if implicit_wide_for(o, h * w, images) && binds(rec, rows * images * h * wpad) {
        (true, wpad, images * h * wpad)
    } else {
        (false, w, h * w)
    }
}

/// The blocking of the implicit GEMM (the subgroup family's, rows fitted to m) where it applies:
/// the lowering is on, not switched off, the product has whole vec4 columns (n % 4 == 0), and
/// either the adapter's tuned GEMM is the subgroup family, or the adapter has subgroups and
/// is a CPU adapter (where the implicit GEMM beats im2col + GEMM whatever the autotune chose:
/// a loaded machine can time the register family ahead) or `no_patches` (no patch matrix fits a
/// binding, so the alternative is the direct kernel). Elsewhere the subgroup blocking is
/// CANDIDATES[0]. `pad_least`: rows per invocation chosen to pad m the least
/// (`MatmulConfig::fit_rows_sg`): on for the forward pass, where it was measured (a 16-channel
/// U-Net's training step: its convolutions' GPU time fell 26%); the adjoints measured no faster
/// with it, so they keep `fit_rows`.
pub(super) fn implicit_cfg(
    rec: &Recorder,
    o: Conv2dOpts,
    (m, n, outputs): (usize, usize, usize),
    no_patches: bool,
    pad_least: bool,
) -> Option<MatmulConfig> {
    let fit = |c: MatmulConfig| if pad_least { c.fit_rows_sg(m) } else { c.fit_rows(m) };
    if !o.gemm || o.implicit == Some(false) || n % 4 != 0 {
        return None;
    }
    let t = crate::ops::matmul::tuned_config(rec.gpu).for_recording(rec, outputs);
    if t.family == Family::Subgroup {
        return Some(fit(t));
    }
    let sg = crate::ops::matmul::CANDIDATES[0];
    ((rec.gpu.is_cpu() || no_patches) && sg.family == Family::Subgroup && sg.fits(rec.gpu)).then(|| fit(sg))
}

/// Where an implicit GEMM reads and writes: `z` products; A row-major [m, k] at (img0 + z) *
/// a_bstride of `a`; C [m, n] at (c_img0 + z) * c_bstride of `c`; images img0.. of x.
pub(super) struct ImplicitGemm<'t> {
    pub(super) mode: u32,
    /// MODE 3: images per z.
    pub(super) ipz: usize,
    /// Columns per output row in C (MODE 0 / 2): W_out, or W_out rounded up to a multiple of 4
    /// (the padding columns are dropped by the caller).
    pub(super) wpad: usize,
    pub(super) a: &'t Tensor,
    pub(super) x: &'t Tensor,
    pub(super) c: &'t Tensor,
    pub(super) accumulate: bool,
    pub(super) mnk: (usize, usize, usize),
    pub(super) z: usize,
    pub(super) a_bstride: usize,
    pub(super) img0: usize,
    pub(super) c_img0: usize,
    pub(super) c_bstride: usize,
}

pub(super) fn implicit_gemm(
    rec: &mut Recorder,
    g: ImplicitGemm,
    cfg: MatmulConfig,
    (xs, ws, ys): (&[usize], &[usize], &[usize]),
    o: Conv2dOpts,
) -> Result<()> {
    let (m, n, k) = g.mnk;
    // Row segments shared by the KW steps of one (ci, kh): the four pixels of a column group
    // must share a row (one image per z, W_out % 4 == 0), stride 1.
    let kwl = if g.mode == 3 {
        4
    } else if g.mode != 1 && o.stride == 1 && g.wpad.is_multiple_of(4) && ws[3] <= 9 {
        ws[3]
    } else {
        1
    };
    let (bm, bn) = cfg.tile();
    let gx = dim(n.div_ceil(bn as usize), "conv column tiles")?;
    let gy = dim(m.div_ceil(bm as usize), "conv row tiles")?;
    let gz = dim(g.z, "conv images")?;
    let max = rec.gpu.max_groups_per_dim();
    if gx > max || gy > max || gz > max {
        return Err(Error::Limit(format!(
            "conv2d x {xs:?} w {ws:?} needs a {gx} x {gy} x {gz} grid; the device allows {max}"
        )));
    }
    let pipe = rec.pipeline(
        "conv_gemm",
        "conv_sg",
        &[
            ("MODE", g.mode as f64),
            ("ACCUMULATE", g.accumulate as u32 as f64),
            ("WG_Y", cfg.wg_y as f64),
            ("RG", (cfg.tm / 8) as f64),
            ("KWL", kwl as f64),
            ("IPZ", g.ipz as f64),
            ("WPAD", g.wpad.max(1) as f64),
        ]
        .into_iter()
        .chain(shape_consts(xs, ws, ys, o))
        .collect::<Vec<_>>(),
    )?;
    let pi = rec.params(&crate::ops::kernels::ConvGemmParams {
        m: dim(m, "conv m")?,
        n: dim(n, "conv n")?,
        k: dim(k, "conv k")?,
        c_img0: dim(g.c_img0, "conv output image")?,
        a_bstride: dim(g.a_bstride, "conv a stride")?,
        img0: dim(g.img0, "conv first image")?,
        c_bstride: dim(g.c_bstride, "conv output stride")?,
        groups_x: gx,
    });
    rec.dispatch(&pipe, Some(pi), &[g.a.buffer(), g.x.buffer(), g.c.buffer()], [gx, gy, gz])
}

/// y = conv2d(x, w) (+ bias) over the whole batch: per image into y, or side by side into
/// scratch, then cropped and swapped into y.
pub(super) fn forward(
    rec: &mut Recorder,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    o: Conv2dOpts,
    y: &Tensor,
    no_patches: bool,
) -> Result<bool> {
    let (xs, ws, ys) = (x.shape(), w.shape(), y.shape());
    let (k, hwo) = (ws[1] * ws[2] * ws[3], ys[2] * ys[3]);
    let (wide, wpad, n) = out_columns(rec, o, ws[0], xs[0], (ys[2], ys[3]), o.stride == 1);
    // One invocation loops at most K times (fewer with shared row segments).
    if k > crate::ops::loop_budget(rec) {
        return Ok(false);
    }
    let Some(cfg) = implicit_cfg(rec, o, (ws[0], n, y.numel()), no_patches, true) else { return Ok(false) };
    let out = if wide { scratch(rec, 1, &[ws[0], n])? } else { y.reshape(&[ys[0], ys[1], hwo])? };
    if let Some(b) = bias {
        crate::ops::elementwise::broadcast_to_into(rec, &b.reshape(&[ws[0], 1])?, &out)?;
    }
    let g = ImplicitGemm {
        mode: 0,
        ipz: 1,
        wpad,
        a: &w.reshape(&[ws[0], k])?,
        x,
        c: &out,
        accumulate: bias.is_some(),
        mnk: (ws[0], n, k),
        z: if wide { 1 } else { xs[0] },
        a_bstride: 0,
        img0: 0,
        c_img0: 0,
        c_bstride: ws[0] * n,
    };
    implicit_gemm(rec, g, cfg, (xs, ws, ys), o)?;
    if wide {
        crate::ops::layout::swap_outer_crop(rec, &out, [ws[0], xs[0], ys[2], wpad], ys[3], y)?;
    }
    Ok(true)
}

/// gx = conv2d_bwd_input(gy, w) for stride 1 and a square kernel: a convolution of gy with w
/// flipped and transposed, padding KH - 1 - P (MODE 2, w read in place), over the whole batch.
pub(super) fn bwd_input(
    rec: &mut Recorder,
    gy: &Tensor,
    w: &Tensor,
    o: Conv2dOpts,
    gx: &Tensor,
    no_patches: bool,
) -> Result<bool> {
    let (xs, ws, ys) = (gx.shape(), w.shape(), gy.shape());
    if o.stride != 1 || ws[2] != ws[3] || o.pad >= ws[2] {
        return Ok(false);
    }
    let (wide, wpad, n) = out_columns(rec, o, xs[1], xs[0], (xs[2], xs[3]), true);
    if ws[0] * ws[2] * ws[3] > crate::ops::loop_budget(rec) {
        return Ok(false);
    }
    let Some(cfg) = implicit_cfg(rec, o, (xs[1], n, gx.numel()), no_patches, false) else { return Ok(false) };
    let out = if wide { scratch(rec, 1, &[xs[1], n])? } else { gx.clone() };
    let g = ImplicitGemm {
        mode: 2,
        ipz: 1,
        wpad,
        a: w,
        x: gy,
        c: &out,
        accumulate: false,
        mnk: (xs[1], n, ws[0] * ws[2] * ws[3]),
        z: if wide { 1 } else { xs[0] },
        a_bstride: 0,
        img0: 0,
        c_img0: 0,
        c_bstride: xs[1] * n,
    };
    let flipped = Conv2dOpts { pad: ws[2] - 1 - o.pad, ..o };
    implicit_gemm(rec, g, cfg, (ys, ws, xs), flipped)?;
    if wide {
        crate::ops::layout::swap_outer_crop(rec, &out, [xs[1], xs[0], xs[2], wpad], xs[3], gx)?;
    }
    Ok(true)
}

/// gw = conv2d_bwd_weight(gy, x) for stride 1 and KW 3 or 4 (MODE 3): columns (ci, kh, kw < 4),
/// steps along output rows padded to whole vec4s, four steps of one row segment sharing its
/// loads; several images per z, the z partial products summed, the padding columns dropped.
pub(super) fn bwd_weight(
    rec: &mut Recorder,
    gy: &Tensor,
    x: &Tensor,
    o: Conv2dOpts,
    gw: &Tensor,
    no_patches: bool,
) -> Result<bool> {
    let (xs, ws, ys) = (x.shape(), gw.shape(), gy.shape());
    if o.stride != 1 || !(ws[3] == 3 || ws[3] == 4) {
        return Ok(false);
    }
    let co = ws[0];
    let (kh_rows, wpad) = (ws[1] * ws[2], ys[3].next_multiple_of(4));
    let n = kh_rows * 4;
    let Some(cfg) = implicit_cfg(rec, o, (co, n, xs[0] * co * n), no_patches, false) else { return Ok(false) };
    // Images per z: the largest divisor of the batch that still leaves 32 workgroups
    // (docs/performance.md, "images per z"), and whose ipz * H_out * Wpad / 4 steps stay
    // within one invocation's loop budget (MAX_LOOP).
    let (bm, bn) = cfg.tile();
    let tiles = n.div_ceil(bn as usize) * co.div_ceil(bm as usize);
    let steps = |d: usize| d * ys[2] * wpad / 4;
    let budget = crate::ops::loop_budget(rec);
    if steps(1) > budget {
        return Ok(false);
    }
    let ipz = (1..=xs[0]).rev().find(|&d| xs[0] % d == 0 && xs[0] / d * tiles >= 32 && steps(d) <= budget).unwrap_or(1);
    let z = xs[0] / ipz;
    if !binds(rec, z * co * n) {
        return Ok(false);
    }
    let per = scratch(rec, 1, &[z, co, n])?;
    let g = ImplicitGemm {
        mode: 3,
        ipz,
        wpad,
        a: gy,
        x,
        c: &per,
        accumulate: false,
        mnk: (co, n, ipz * ys[2] * wpad),
        z,
        a_bstride: 0,
        img0: 0,
        c_img0: 0,
        c_bstride: co * n,
    };
    implicit_gemm(rec, g, cfg, (xs, ws, ys), o)?;
    let sum = scratch(rec, 4, &[co * kh_rows, 4])?;
    crate::ops::reduce::reduce_into(rec, crate::ops::reduce::Reduce::Sum, &per, 0, &sum)?;
    crate::ops::layout::slice_into(rec, &sum, 1, 0, &gw.reshape(&[co * kh_rows, ws[3]])?)?;
    Ok(true)
}
