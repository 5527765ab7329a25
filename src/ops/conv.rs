//! conv2d NCHW as an implicit GEMM (shaders/conv2d.wgsl).

use super::{dim, grid};
use crate::error::{Error, Result};
use crate::gpu::Recorder;
use crate::tensor::Tensor;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dOpts {
    pub stride: usize,
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
    /// (`conv_implicit::implicit_cfg`): `None` (default) or `Some(true)` use it there,
    /// `Some(false)` never.
    pub implicit: Option<bool>,
}
impl Default for Conv2dOpts {
    fn default() -> Self {
        Conv2dOpts { stride: 1, pad: 0, gemm: true, chunk: 0, wide: None, implicit: None }
    }
}

impl Conv2dOpts {
    pub fn new(stride: usize, pad: usize) -> Self {
        Conv2dOpts { stride, pad, ..Default::default() }
    }
}

/// Whether the GEMM lowering puts a chunk's images side by side (patch matrix [K, images x
/// H_out W_out], one GEMM W @ cols, then the result's [C_out, images] axes swapped) rather than
/// one GEMM per image: when an image's H_out W_out columns are not whole vec4s, which the fast
/// GEMM kernels need. W2 on lavapipe, same sitting: its 7x7 level ran the generic kernel at ~6
/// GFLOP/s; side by side, training 0.158-0.159 -> 0.175-0.176 steps/s and the forward pass at
/// batch 256 0.112-0.115 -> 0.136-0.137 batches/s. Also side by side at 14x14 (196 columns:
/// two 128-column tiles, the second 47% idle) was slightly slower (0.173-0.175), at every level
/// slower still (0.161): the swap passes cost more than the idle columns.
fn wide_for(o: Conv2dOpts, hwo: usize, images: usize) -> bool {
    o.wide.unwrap_or(images > 1 && hwo % 4 != 0)
}

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
    if conv2d_gemm(rec, x, w, bias, o, y)?.is_some() {
        return Ok(());
    }
    let (tc, tp, wx, wy) = (4u32, 4u32, 16u32, 4u32);
    let n_pix = ys[0] * ys[2] * ys[3];
    if n_pix == 0 || ys[1] == 0 {
        return Ok(());
    }
    let ws = w.shape();
    super::loop_guard(rec, ws[1] * ws[2] * (ws[3] + 1) + ws[1], || {
        format!("conv2d of x {:?} with w {ws:?} (direct kernel)", x.shape())
    })?;
    let groups = dim(n_pix.div_ceil((wx * tp) as usize), "conv2d pixel tiles")?;
    let max = rec.gpu.max_groups_per_dim();
    let (gx, gz) = if groups <= max { (groups, 1) } else { (max, groups.div_ceil(max)) };
    let gy = dim(ys[1].div_ceil((wy * tc) as usize), "conv2d channel tiles")?;
    if gy > max || gz > max {
        return Err(Error::Limit(format!("conv2d output {ys:?} exceeds the dispatch grid")));
    }
    let mut params = conv_params(x.shape(), w.shape(), &ys, o)?;
    params[11] = gx; // the direct kernel folds its pixel tiles over x and z
    let pipe = rec.pipeline(
        "conv2d",
        "conv2d",
        &[
            ("HAS_BIAS", bias.is_some() as u32 as f64),
            ("WG_X", wx as f64),
            ("WG_Y", wy as f64),
            ("TC", tc as f64),
            ("TP", tp as f64),
        ],
    )?;
    let pi = rec.params(&params);
    let b = bias.unwrap_or(w); // bound but unread without HAS_BIAS
    rec.dispatch(&pipe, Some(pi), &[x.buffer(), w.buffer(), b.buffer(), y.buffer()], [gx, gy, gz])
}

/// Images per GEMM chunk: the chunk's patch matrix [chunk, C_in KH KW, H_out W_out] fits one
/// binding and 64 MiB of scratch. None when the lowering is off or one image does not fit.
fn gemm_chunk(rec: &Recorder, xs: &[usize], ws: &[usize], ys: &[usize], o: Conv2dOpts) -> Option<usize> {
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

/// The convolution's shapes as the pipeline constants of conv2d.wgsl's patch kernels and of
/// conv_gemm.wgsl: input channels and size, output size, kernel size, stride, padding.
pub(super) fn shape_consts(xs: &[usize], ws: &[usize], ys: &[usize], o: Conv2dOpts) -> [(&'static str, f64); 9] {
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

pub(super) fn scratch(rec: &Recorder, slot: usize, shape: &[usize]) -> Result<Tensor> {
    let bytes = shape.iter().product::<usize>() as u64 * 4;
    Tensor::view(rec.gpu.scratch(slot, bytes), shape)
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
    params[0] = dim(cb, "chunk")?;
    params[11] = dim(c0, "chunk start")?;
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
    rec.dispatch_at(&pipe, Some(pi), &[(1, src.buffer()), (4, dst.buffer())], g)
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

/// conv2d as im2col + batched GEMM (the tuned matmul), a chunk of images at a time:
/// y[b] = W [C_out, K] @ cols[b]. None when the direct kernel must run instead.
fn conv2d_gemm(
    rec: &mut Recorder,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    o: Conv2dOpts,
    y: &Tensor,
) -> Result<Option<()>> {
    let (xs, ws, ys) = (x.shape().to_vec(), w.shape().to_vec(), y.shape().to_vec());
    // The implicit GEMM builds no patch matrix, so it comes before the check that one fits.
    let chunk = gemm_chunk(rec, &xs, &ws, &ys, o);
    if super::conv_implicit::forward(rec, x, w, bias, o, y, chunk.is_none())? {
        return Ok(Some(()));
    }
    let Some(chunk) = chunk else { return Ok(None) };
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
    Ok(Some(()))
}

fn conv_params(xs: &[usize], ws: &[usize], ys: &[usize], o: Conv2dOpts) -> Result<[u32; 12]> {
    Ok([
        dim(xs[0], "batch")?,
        dim(xs[1], "c_in")?,
        dim(xs[2], "h")?,
        dim(xs[3], "w")?,
        dim(ws[0], "c_out")?,
        dim(ws[2], "kh")?,
        dim(ws[3], "kw")?,
        dim(o.stride, "stride")?,
        dim(o.pad, "pad")?,
        dim(ys[2], "h_out")?,
        dim(ys[3], "w_out")?,
        0,
    ])
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
    let chunk = gemm_chunk(rec, &xs, &ws, &ys, o);
    if super::conv_implicit::bwd_input(rec, gy, w, o, gx, chunk.is_none())? {
        return Ok(());
    }
    if let Some(chunk) = chunk {
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
                patches(rec, "col2im", false, true, &cols, gx, &xs, &ws, &ys, o, (c0, cb), n_gx)?;
                continue;
            }
            let gyc = rows(rec, &gy3, (c0, cb), chunk >= xs[0], 2)?;
            let cols = scratch(rec, 0, &[cb, k, hwo])?;
            crate::ops::matmul::matmul_out(rec, &w2, &gyc, &cols, wt)?;
            patches(rec, "col2im", false, false, &cols, gx, &xs, &ws, &ys, o, (c0, cb), n_gx)?;
        }
        return Ok(());
    }
    super::loop_guard(rec, ws[2] * ws[3] * (ws[0] + 1) + ws[2], || {
        format!("conv2d input gradient for x {xs:?}, w {ws:?} (direct kernel)")
    })?;
    let pipe = rec.pipeline("conv2d", "conv2d_bwd_input", &[])?;
    let pi = rec.params(&conv_params(&xs, &ws, &ys, o)?);
    let g = grid(rec, gx.numel(), 64)?;
    rec.dispatch_at(&pipe, Some(pi), &[(1, gy.buffer()), (2, w.buffer()), (4, gx.buffer())], g)
}

/// gw = conv2d_bwd_weight(gy, x): the gradient of conv2d with respect to its weight (shape
/// given by `gw`).
pub fn conv2d_bwd_weight_into(rec: &mut Recorder, gy: &Tensor, x: &Tensor, o: Conv2dOpts, gw: &Tensor) -> Result<()> {
    let (xs, ws, ys) = adjoint_shapes("conv2d_bwd_weight", gy, x, gw, o)?;
    if gw.numel() == 0 {
        return Ok(());
    }
    let chunk = gemm_chunk(rec, &xs, &ws, &ys, o);
    if super::conv_implicit::bwd_weight(rec, gy, x, o, gw, chunk.is_none())? {
        return Ok(());
    }
    if let Some(chunk) = chunk {
        // Per chunk: sum_b gy[b] [C_out, HW] @ cols[b]^T [HW, K] (cols written transposed);
        // chunk sums land in rows of a scratch matrix, summed at the end.
        let (k, hwo, co) = (ws[1] * ws[2] * ws[3], ys[2] * ys[3], ws[0]);
        let gy3 = gy.reshape(&[ys[0], ys[1], hwo])?;
        let n_chunks = xs[0].div_ceil(chunk);
        let sums = if n_chunks > 1 { Some(scratch(rec, 3, &[n_chunks, co * k])?) } else { None };
        // MODE 1 loops once per output pixel; longer images take im2col and a split-K GEMM.
        let implicit = super::conv_implicit::implicit_cfg(rec, o, (co, k, chunk * co * k), false)
            .filter(|_| hwo <= super::loop_budget(rec));
        for (i, (c0, cb)) in chunks(xs[0], chunk).enumerate() {
            let per = scratch(rec, 1, &[cb, co, k])?;
            if let Some(cfg) = implicit {
                // per[b] = gy[c0 + b] [C_out, hwo] @ patches(x[c0 + b]) [hwo, K], implicitly.
                let g = super::conv_implicit::ImplicitGemm {
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
                super::conv_implicit::implicit_gemm(rec, g, cfg, (&xs, &ws, &ys), o)?;
            } else {
                let cols_t = scratch(rec, 0, &[cb, hwo, k])?;
                patches(rec, "im2col", true, false, x, &cols_t, &xs, &ws, &ys, o, (c0, cb), cols_t.numel())?;
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
        return Ok(());
    }
    super::loop_guard(rec, ys[0] * ys[2] * (ys[3] + 1) + ys[0], || {
        format!("conv2d weight gradient for x {xs:?}, w {ws:?} (direct kernel, one invocation per weight)")
    })?;
    let pipe = rec.pipeline("conv2d", "conv2d_bwd_weight", &[])?;
    let pi = rec.params(&conv_params(&xs, &ws, &ys, o)?);
    let g = grid(rec, gw.numel(), 64)?;
    rec.dispatch_at(&pipe, Some(pi), &[(1, gy.buffer()), (2, x.buffer()), (4, gw.buffer())], g)
}

/// CPU references of the two adjoints (f64 accumulation).
pub fn conv2d_bwd_input_ref(gy: &[f32], w: &[f32], xs: &[usize], ws: &[usize], o: Conv2dOpts) -> Vec<f32> {
    let ys = conv2d_shape(xs, ws, o).unwrap();
    let mut gx = vec![0f64; xs.iter().product()];
    conv_loops(xs, ws, &ys, o, |xi, wi, yi| gx[xi] += gy[yi] as f64 * w[wi] as f64);
    gx.into_iter().map(|v| v as f32).collect()
}

pub fn conv2d_bwd_weight_ref(gy: &[f32], x: &[f32], xs: &[usize], ws: &[usize], o: Conv2dOpts) -> Vec<f32> {
    let ys = conv2d_shape(xs, ws, o).unwrap();
    let mut gw = vec![0f64; ws.iter().product()];
    conv_loops(xs, ws, &ys, o, |xi, wi, yi| gw[wi] += gy[yi] as f64 * x[xi] as f64);
    gw.into_iter().map(|v| v as f32).collect()
}

/// Visit every (x index, w index, y index) triple of the convolution's trilinear form.
pub fn conv_loops(xs: &[usize], ws: &[usize], ys: &[usize], o: Conv2dOpts, mut f: impl FnMut(usize, usize, usize)) {
    for n in 0..ys[0] {
        for co in 0..ys[1] {
            for oh in 0..ys[2] {
                for ow in 0..ys[3] {
                    for ci in 0..xs[1] {
                        for kh in 0..ws[2] {
                            for kw in 0..ws[3] {
                                let ih = (oh * o.stride + kh) as isize - o.pad as isize;
                                let iw = (ow * o.stride + kw) as isize - o.pad as isize;
                                if ih < 0 || iw < 0 || ih >= xs[2] as isize || iw >= xs[3] as isize {
                                    continue;
                                }
                                f(
                                    ((n * xs[1] + ci) * xs[2] + ih as usize) * xs[3] + iw as usize,
                                    ((co * ws[1] + ci) * ws[2] + kh) * ws[3] + kw,
                                    ((n * ys[1] + co) * ys[2] + oh) * ys[3] + ow,
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

/// CPU reference (f64 accumulation).
pub fn conv2d_ref(
    x: &[f32],
    xs: &[usize],
    w: &[f32],
    ws: &[usize],
    bias: Option<&[f32]>,
    o: Conv2dOpts,
) -> Result<Vec<f32>> {
    let ys = conv2d_shape(xs, ws, o)?;
    let mut y = vec![0f32; ys.iter().product()];
    for n in 0..ys[0] {
        for co in 0..ys[1] {
            for oh in 0..ys[2] {
                for ow in 0..ys[3] {
                    let mut s = bias.map(|b| b[co] as f64).unwrap_or(0.0);
                    for ci in 0..xs[1] {
                        for kh in 0..ws[2] {
                            for kw in 0..ws[3] {
                                let ih = (oh * o.stride + kh) as isize - o.pad as isize;
                                let iw = (ow * o.stride + kw) as isize - o.pad as isize;
                                if ih < 0 || iw < 0 || ih >= xs[2] as isize || iw >= xs[3] as isize {
                                    continue;
                                }
                                let xv = x[((n * xs[1] + ci) * xs[2] + ih as usize) * xs[3] + iw as usize];
                                let wv = w[((co * ws[1] + ci) * ws[2] + kh) * ws[3] + kw];
                                s += xv as f64 * wv as f64;
                            }
                        }
                    }
                    y[((n * ys[1] + co) * ys[2] + oh) * ys[3] + ow] = s as f32;
                }
            }
        }
    }
    Ok(y)
}
