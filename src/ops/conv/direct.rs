//! The direct convolution kernels (shaders/conv2d.wgsl): no scratch, one loop per output;
//! the lowering of last resort, where neither GEMM applies.

use super::{conv_params, Conv2dOpts, Shapes};
use crate::error::{Error, Result};
use crate::gpu::Recorder;
use crate::ops::kernels::slots::conv2d as C;
use crate::ops::{dim, grid};
use crate::tensor::Tensor;

/// The direct kernel: one invocation per 4 x 4 tile of (pixels, output channels).
pub(super) fn forward(
    rec: &mut Recorder,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    o: Conv2dOpts,
    y: &Tensor,
) -> Result<()> {
    let ys = y.shape().to_vec();
    let (tc, tp, wx, wy) = (4u32, 4u32, 16u32, 4u32);
    let n_pix = ys[0] * ys[2] * ys[3];
    if n_pix == 0 || ys[1] == 0 {
        return Ok(());
    }
    let ws = w.shape();
    crate::ops::loop_guard(rec, ws[1] * ws[2] * (ws[3] + 1) + ws[1], || {
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
    params.groups_x = gx; // the direct kernel folds its pixel tiles over x and z
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

/// The direct input-gradient kernel: one invocation per input element.
pub(super) fn bwd_input(
    rec: &mut Recorder,
    gy: &Tensor,
    w: &Tensor,
    o: Conv2dOpts,
    gx: &Tensor,
    (xs, ws, ys): Shapes,
) -> Result<()> {
    crate::ops::loop_guard(rec, ws[2] * ws[3] * (ws[0] + 1) + ws[2], || {
        format!("conv2d input gradient for x {xs:?}, w {ws:?} (direct kernel)")
    })?;
    let pipe = rec.pipeline("conv2d", "conv2d_bwd_input", &[])?;
    let pi = rec.params(&conv_params(xs, ws, ys, o)?);
    let g = grid(rec, gx.numel(), 64)?;
    rec.dispatch_at(&pipe, Some(pi), &[(C::GY, gy.buffer()), (C::OTHER, w.buffer()), (C::RES, gx.buffer())], g)
}

/// The direct weight-gradient kernel: one invocation per weight.
pub(super) fn bwd_weight(
    rec: &mut Recorder,
    gy: &Tensor,
    x: &Tensor,
    o: Conv2dOpts,
    gw: &Tensor,
    (xs, ws, ys): Shapes,
) -> Result<()> {
    crate::ops::loop_guard(rec, ys[0] * ys[2] * (ys[3] + 1) + ys[0], || {
        format!("conv2d weight gradient for x {xs:?}, w {ws:?} (direct kernel, one invocation per weight)")
    })?;
    let pipe = rec.pipeline("conv2d", "conv2d_bwd_weight", &[])?;
    let pi = rec.params(&conv_params(xs, ws, ys, o)?);
    let g = grid(rec, gw.numel(), 64)?;
    rec.dispatch_at(&pipe, Some(pi), &[(C::GY, gy.buffer()), (C::OTHER, x.buffer()), (C::RES, gw.buffer())], g)
}
