//! Plain-loop CPU references of conv2d and its adjoints (f64 accumulation): the executable
//! spec every lowering is tested against.

use super::{conv2d_shape, Conv2dOpts};
use crate::error::Result;

/// CPU references of the two adjoints (f64 accumulation).
pub fn conv2d_bwd_input_ref(gy: &[f32], w: &[f32], xs: &[usize], ws: &[usize], o: Conv2dOpts) -> Vec<f32> {
    let ys = conv2d_shape(xs, ws, o).unwrap();
    let mut gx = vec![0f64; xs.iter().product()];
    conv_loops(xs, ws, &ys, o, |xi, wi, yi| gx[xi] += gy[yi] as f64 * w[wi] as f64);
    gx.into_iter().map(|v| v as f32).collect()
}

/// The plain-loop reference of the convolution's adjoint in its weight.
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
    let hw = ys[2] * ys[3];
    let mut y: Vec<f64> =
        (0..ys.iter().product::<usize>()).map(|i| bias.map(|b| b[(i / hw) % ys[1]] as f64).unwrap_or(0.0)).collect();
    conv_loops(xs, ws, &ys, o, |xi, wi, yi| y[yi] += x[xi] as f64 * w[wi] as f64);
    Ok(y.into_iter().map(|v| v as f32).collect())
}
