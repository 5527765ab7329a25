//! Batched matmul with optional transposes, on the kernel family chosen per adapter by a short
//! autotune whose result is cached on disk (tile configurations and the autotune: matmul_config.rs;
//! kernels: shaders/matmul*.wgsl).

use super::dim;
use super::kernels::MatmulParams as Params;
pub use super::matmul_config::{autotune, tuned_config, Family, MatmulConfig, TunedMatmul, CANDIDATES, SMALL_OUTPUTS};
use crate::error::{Error, Result};
use crate::gpu::Recorder;
use crate::tensor::Tensor;

/// Options of one matmul call.
#[derive(Clone, Copy, Debug, Default)]
pub struct MatmulOpts {
    /// Transpose A's last two axes first.
    pub trans_a: bool,
    /// Transpose B's last two axes first.
    pub trans_b: bool,
    /// Use this tile configuration instead of the adapter's tuned one.
    pub config: Option<MatmulConfig>,
}

/// Shapes of a (possibly batched) matmul: returns (batch, m, k, n, a_bstride, b_bstride).
/// A is [.., M, K] (or [.., K, M] transposed), B is [.., K, N] (or [.., N, K]); a rank-2
/// operand broadcasts over the other's batch.
fn plan(a: &[usize], b: &[usize], o: &MatmulOpts) -> Result<(usize, usize, usize, usize, usize, usize, Vec<usize>)> {
    if a.len() < 2 || b.len() < 2 || a.len() > 3 || b.len() > 3 {
        return Err(Error::Shape(format!("matmul takes rank-2 or rank-3 operands, got a {a:?} and b {b:?}")));
    }
    let (ar, ac) = (a[a.len() - 2], a[a.len() - 1]);
    let (br, bc) = (b[b.len() - 2], b[b.len() - 1]);
    let (m, ka) = if o.trans_a { (ac, ar) } else { (ar, ac) };
    let (kb, n) = if o.trans_b { (bc, br) } else { (br, bc) };
    if ka != kb {
        return Err(Error::Shape(format!(
            "matmul: a {a:?}{} and b {b:?}{} disagree on the inner dimension ({ka} vs {kb})",
            if o.trans_a { "^T" } else { "" },
            if o.trans_b { "^T" } else { "" }
        )));
    }
    let ba = if a.len() == 3 { a[0] } else { 1 };
    let bb = if b.len() == 3 { b[0] } else { 1 };
    if a.len() == 3 && b.len() == 3 && ba != bb {
        return Err(Error::Shape(format!("matmul: batch sizes differ, a {a:?} and b {b:?}")));
    }
    let batch = ba.max(bb);
    let a_bs = if a.len() == 3 { ar * ac } else { 0 };
    let b_bs = if b.len() == 3 { br * bc } else { 0 };
    let out = if a.len() == 3 || b.len() == 3 { vec![batch, m, n] } else { vec![m, n] };
    Ok((batch, m, ka, n, a_bs, b_bs, out))
}

/// C = op(A) @ op(B), recorded into `rec`.
pub fn matmul(rec: &mut Recorder, a: &Tensor, b: &Tensor, o: MatmulOpts) -> Result<Tensor> {
    let (batch, m, k, n, a_bs, b_bs, out_shape) = plan(a.shape(), b.shape(), &o)?;
    let c = Tensor::empty(rec.gpu, &out_shape)?;
    matmul_into(rec, a, b, &c, o, false, (batch, m, k, n, a_bs, b_bs), Epilogue::default())?;
    Ok(c)
}

/// C = op(A) @ op(B) into an existing tensor of the product's shape.
pub fn matmul_out(rec: &mut Recorder, a: &Tensor, b: &Tensor, c: &Tensor, o: MatmulOpts) -> Result<()> {
    matmul_epilogue(rec, a, b, c, o, Epilogue::default())
}

/// What a matmul kernel may apply to its result before storing it: c = act(A B + bias).
#[derive(Clone, Copy, Default)]
pub struct Epilogue<'t> {
    /// [N], added to every row.
    pub bias: Option<&'t Tensor>,
    /// Apply SiLU after the bias.
    pub silu: bool,
}

impl Epilogue<'_> {
    fn is_none(&self) -> bool {
        self.bias.is_none() && !self.silu
    }
}

/// C = act(op(A) @ op(B) + bias): fused into the vec4 kernels' stores, otherwise the same
/// element-wise ops after the product.
pub fn matmul_epilogue(
    rec: &mut Recorder,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    o: MatmulOpts,
    ep: Epilogue,
) -> Result<()> {
    let (batch, m, k, n, a_bs, b_bs, out_shape) = plan(a.shape(), b.shape(), &o)?;
    if c.shape() != out_shape.as_slice() {
        return Err(Error::Shape(format!("matmul: output is {:?}, expected {out_shape:?}", c.shape())));
    }
    if let Some(bias) = ep.bias {
        if bias.shape() != [n] {
            return Err(Error::Shape(format!("matmul bias {:?} should be [{n}]", bias.shape())));
        }
    }
    matmul_into(rec, a, b, c, o, false, (batch, m, k, n, a_bs, b_bs), ep)
}

/// Output shape of op(A) @ op(B).
pub fn matmul_shape(a: &[usize], b: &[usize], o: MatmulOpts) -> Result<Vec<usize>> {
    Ok(plan(a, b, &o)?.6)
}

/// C += op(A) @ op(B) into an existing tensor (gradient accumulation).
pub fn matmul_acc(rec: &mut Recorder, a: &Tensor, b: &Tensor, c: &Tensor, o: MatmulOpts) -> Result<()> {
    let (batch, m, k, n, a_bs, b_bs, out_shape) = plan(a.shape(), b.shape(), &o)?;
    if c.shape() != out_shape.as_slice() {
        return Err(Error::Shape(format!("matmul_acc: output is {:?}, expected {out_shape:?}", c.shape())));
    }
    matmul_into(rec, a, b, c, o, true, (batch, m, k, n, a_bs, b_bs), Epilogue::default())
}

fn matmul_into(
    rec: &mut Recorder,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    o: MatmulOpts,
    accumulate: bool,
    (batch, m, k, n, a_bs, b_bs): (usize, usize, usize, usize, usize, usize),
    ep: Epilogue,
) -> Result<()> {
    if m == 0 || n == 0 || batch == 0 {
        return Ok(());
    }
    if k == 0 {
        return Err(Error::Shape(format!("matmul with inner dimension 0 (a {:?}, b {:?})", a.shape(), b.shape())));
    }
    if rec.gpu.is_cpu() && k > MAX_K {
        return matmul_split_k(rec, a, b, c, o, accumulate, (batch, m, k, n), ep);
    }
    if o.config.is_none() && n < 8 && k % 4 == 0 && o.trans_b && !o.trans_a && !accumulate {
        return matmul_narrow(rec, a, b, c, (batch, m, k, n, a_bs, b_bs), ep);
    }
    let cfg = choose_config(rec, o, batch * m * n, m, n)?;
    if cfg.family != Family::Tiled && o.trans_b && n % 4 == 0 {
        // The register families read B row-major as vec4s: transposing B once (a cheap pass
        // over K x N) beats their generic path for B^T by a wide margin on CPU adapters.
        let bt = crate::ops::layout::transpose(rec, b)?;
        let b_bs = if bt.shape().len() == 3 { n * k } else { 0 };
        return matmul_into(
            rec,
            a,
            &bt,
            c,
            MatmulOpts { trans_b: false, ..o },
            accumulate,
            (batch, m, k, n, a_bs, b_bs),
            ep,
        );
    }
    let vec4 = cfg.family != Family::Tiled && cfg.tn == 16 && n % 4 == 0 && !o.trans_b;
    if !ep.is_none() && (!vec4 || accumulate) {
        // No fused epilogue in this kernel: the product, then the element-wise ops.
        if accumulate {
            return Err(Error::Invalid("a matmul epilogue cannot accumulate".into()));
        }
        let prod = Tensor::empty(rec.gpu, c.shape())?;
        matmul_into(rec, a, b, &prod, o, false, (batch, m, k, n, a_bs, b_bs), Epilogue::default())?;
        return apply_epilogue(rec, prod, ep, c);
    }
    launch(rec, (a, b, c), o, accumulate, (batch, m, k, n, a_bs, b_bs), ep, (cfg, vec4))
}

/// The tile configuration of one product: the forced one (checked), else the tuned one for
/// this recording, a small register tile for narrow products, and rows fitted to short ones.
fn choose_config(rec: &Recorder, o: MatmulOpts, outputs: usize, m: usize, n: usize) -> Result<MatmulConfig> {
    let cfg = match o.config {
        Some(c) => {
            c.validate()?;
            if !c.fits(rec.gpu) {
                return Err(Error::Invalid(format!(
                    "matmul config {} does not fit this adapter ({})",
                    c.name(),
                    rec.gpu.describe()
                )));
            }
            c
        }
        None => {
            let t = tuned_config(rec.gpu).for_recording(rec, outputs);
            // A register tile much wider than the product (e.g. N = 2, a network's last layer)
            // wastes nearly all its work: take a 4 x 4 tile for narrow products.
            if t.family != Family::Tiled && n < 8 {
                MatmulConfig::reg(8, 8, 4, 4)
            } else {
                t
            }
        }
    };
    // A workgroup of the register families covers wg_y * tm rows; for short products (a
    // convolution's C_out of 32 or 64 against a 128-row tile) most of it would recompute
    // clamped copies of the last row (4x slower: docs/performance.md, "rows fitted").
    let cfg = if o.config.is_none() && cfg.family != Family::Tiled { cfg.fit_rows(m) } else { cfg };
    Ok(cfg)
}

/// Record the tiled/register/subgroup kernel for a product whose configuration is chosen.
#[allow(clippy::too_many_arguments)]
fn launch(
    rec: &mut Recorder,
    (a, b, c): (&Tensor, &Tensor, &Tensor),
    o: MatmulOpts,
    accumulate: bool,
    (batch, m, k, n, a_bs, b_bs): (usize, usize, usize, usize, usize, usize),
    ep: Epilogue,
    (cfg, vec4): (MatmulConfig, bool),
) -> Result<()> {
    // The subgroup kernel covers the vec4 layout only; elsewhere mm_reg runs with an 8 x 8
    // block, the largest whose loops compilers still unroll in the generic kernel.
    let cfg = if cfg.family == Family::Subgroup && !vec4 { MatmulConfig::reg(8, 8, 8, 8) } else { cfg };
    let (bm, bn) = cfg.tile();
    let gx = dim(n.div_ceil(bn as usize), "matmul column tiles")?;
    let gy = dim(m.div_ceil(bm as usize), "matmul row tiles")?;
    let gz = dim(batch, "matmul batch")?;
    let max = rec.gpu.max_groups_per_dim();
    if gx > max || gy > max || gz > max {
        return Err(Error::Limit(format!(
            "matmul [{batch}, {m}, {n}] needs a {gx} x {gy} x {gz} grid; the device allows {max} per dimension"
        )));
    }
    let params = Params {
        m: dim(m, "matmul m")?,
        n: dim(n, "matmul n")?,
        k: dim(k, "matmul k")?,
        batch: gz,
        a_bstride: dim(a_bs, "matmul a batch stride")?,
        b_bstride: dim(b_bs, "matmul b batch stride")?,
        c_bstride: dim(m * n, "matmul c batch stride")?,
        groups_x: gx,
    };
    let (shader, entry, tn_name, tn_val) = match cfg.family {
        Family::Subgroup => ("matmul_sg", "mm_sg", "RG", cfg.tm / 8),
        Family::Reg if vec4 => ("matmul_vec4", "mm_reg4", "", 0),
        Family::Reg => ("matmul", "mm_reg", "TN4", cfg.tn / 4),
        Family::Tiled => ("matmul", "mm_tiled", "TN", cfg.tn),
    };
    let mut consts =
        vec![("TRANS_A", o.trans_a as u32 as f64), ("ACCUMULATE", accumulate as u32 as f64), ("WG_Y", cfg.wg_y as f64)];
    if cfg.family != Family::Subgroup {
        consts.extend([("WG_X", cfg.wg_x as f64), ("TM", cfg.tm as f64)]);
    }
    if !vec4 {
        consts.push(("TRANS_B", o.trans_b as u32 as f64));
    }
    if !tn_name.is_empty() {
        consts.push((tn_name, tn_val as f64));
    }
    if ep.bias.is_some() {
        consts.push(("BIAS", 1.0));
    }
    if ep.silu {
        consts.push(("ACT", 1.0));
    }
    if cfg.family == Family::Tiled {
        consts.push(("BK", cfg.bk as f64));
    }
    let pipe = rec.pipeline(shader, entry, &consts)?;
    let pi = rec.params(&params);
    if vec4 {
        // The vec4 kernels declare the bias binding; without a bias B stands in (never read).
        let bias = ep.bias.map(|t| t.buffer()).unwrap_or(b.buffer());
        rec.dispatch(&pipe, Some(pi), &[a.buffer(), b.buffer(), c.buffer(), bias], [gx, gy, gz])
    } else {
        rec.dispatch(&pipe, Some(pi), &[a.buffer(), b.buffer(), c.buffer()], [gx, gy, gz])
    }
}

/// c = act(prod + bias) as element-wise ops (kernels without a fused epilogue).
fn apply_epilogue(rec: &mut Recorder, prod: Tensor, ep: Epilogue, c: &Tensor) -> Result<()> {
    let mut cur = prod;
    if let Some(bias) = ep.bias {
        let dst = if ep.silu { Tensor::empty(rec.gpu, c.shape())? } else { c.clone() };
        crate::ops::elementwise::binary_into(rec, crate::ops::elementwise::Binary::Add, &cur, bias, &dst)?;
        cur = dst;
    }
    if ep.silu {
        crate::ops::elementwise::unary_into(rec, crate::ops::elementwise::Unary::Silu, &cur, c)?;
    }
    Ok(())
}

/// Longest inner dimension one matmul dispatch takes on a CPU adapter: every kernel loops about
/// once per k in one invocation, the tiled one ~2.7 times (its tile loads and k-steps; on
/// lavapipe its 8x8 tiles came out wrong from K = 24,000-28,000, the register and subgroup
/// families were right at 32,768), and llvmpipe ends an invocation's loops after 65,535
/// iterations (super::MAX_LOOP).
pub const MAX_K: usize = 16_384;

/// C (+)= op(A) @ op(B) as a sum over chunks of K of at most MAX_K: each chunk's slices of A
/// and B copied out, the products accumulated into C; an epilogue applied once at the end.
#[allow(clippy::too_many_arguments)]
fn matmul_split_k(
    rec: &mut Recorder,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    o: MatmulOpts,
    accumulate: bool,
    (batch, m, k, n): (usize, usize, usize, usize),
    ep: Epilogue,
) -> Result<()> {
    if !ep.is_none() {
        if accumulate {
            return Err(Error::Invalid("a matmul epilogue cannot accumulate".into()));
        }
        let prod = Tensor::empty(rec.gpu, c.shape())?;
        matmul_split_k(rec, a, b, &prod, o, false, (batch, m, k, n), Epilogue::default())?;
        return apply_epilogue(rec, prod, ep, c);
    }
    let (ra, rb) = (a.shape().len(), b.shape().len());
    let ka = if o.trans_a { ra - 2 } else { ra - 1 };
    let kb = if o.trans_b { rb - 1 } else { rb - 2 };
    let part = |rec: &mut Recorder, t: &Tensor, axis: usize, k0: usize, kc: usize| -> Result<Tensor> {
        let mut s = t.shape().to_vec();
        s[axis] = kc;
        let dst = Tensor::empty(rec.gpu, &s)?;
        crate::ops::layout::slice_into(rec, t, axis, k0, &dst)?;
        Ok(dst)
    };
    for (i, k0) in (0..k).step_by(MAX_K).enumerate() {
        let kc = MAX_K.min(k - k0);
        let (ac, bc) = (part(rec, a, ka, k0, kc)?, part(rec, b, kb, k0, kc)?);
        let a_bs = if ra == 3 { m * kc } else { 0 };
        let b_bs = if rb == 3 { kc * n } else { 0 };
        matmul_into(rec, &ac, &bc, c, o, accumulate || i > 0, (batch, m, kc, n, a_bs, b_bs), Epilogue::default())?;
    }
    Ok(())
}

/// C = act(A B^T + bias) for N < 8 (shaders/matmul_narrow.wgsl), K a multiple of 4.
fn matmul_narrow(
    rec: &mut Recorder,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    (batch, m, k, n, a_bs, b_bs): (usize, usize, usize, usize, usize, usize),
    ep: Epilogue,
) -> Result<()> {
    let rows = dim(m.div_ceil(64), "matmul rows")?;
    let g = crate::gpu::record::fold_groups(rows, rec.gpu.max_groups_per_dim())?;
    let params = Params {
        m: dim(m, "matmul m")?,
        n: n as u32,
        k: dim(k, "matmul k")?,
        batch: dim(batch, "matmul batch")?,
        a_bstride: dim(a_bs, "matmul a batch stride")?,
        b_bstride: dim(b_bs, "matmul b batch stride")?,
        c_bstride: dim(m * n, "matmul c batch stride")?,
        groups_x: g[0],
    };
    let consts = [("BIAS", ep.bias.is_some() as u32 as f64), ("ACT", ep.silu as u32 as f64)];
    let pipe = rec.pipeline("matmul_narrow", "mm_narrow", &consts)?;
    let pi = rec.params(&params);
    let bias = ep.bias.map(|t| t.buffer()).unwrap_or(b.buffer());
    rec.dispatch(&pipe, Some(pi), &[a.buffer(), b.buffer(), c.buffer(), bias], [g[0], g[1], params.batch])
}

/// CPU reference: plain loops, f64 accumulation. Same shape rules as `matmul`.
pub fn matmul_ref(
    a: &[f32],
    a_shape: &[usize],
    b: &[f32],
    b_shape: &[usize],
    o: MatmulOpts,
) -> Result<(Vec<f32>, Vec<usize>)> {
    let f = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
    let (c, out) = matmul_f64(&f(a), a_shape, &f(b), b_shape, o)?;
    Ok((c.into_iter().map(|x| x as f32).collect(), out))
}

/// The same in f64 throughout (the graph's CPU evaluator uses it).
pub fn matmul_f64(
    a: &[f64],
    a_shape: &[usize],
    b: &[f64],
    b_shape: &[usize],
    o: MatmulOpts,
) -> Result<(Vec<f64>, Vec<usize>)> {
    let (batch, m, k, n, a_bs, b_bs, out) = plan(a_shape, b_shape, &o)?;
    let mut c = vec![0f64; batch * m * n];
    for bi in 0..batch {
        for i in 0..m {
            for j in 0..n {
                let mut s = 0f64;
                for kk in 0..k {
                    let av = if o.trans_a { a[bi * a_bs + kk * m + i] } else { a[bi * a_bs + i * k + kk] };
                    let bv = if o.trans_b { b[bi * b_bs + j * k + kk] } else { b[bi * b_bs + kk * n + j] };
                    s += av * bv;
                }
                c[bi * m * n + i * n + j] = s;
            }
        }
    }
    Ok((c, out))
}

/// The naive one-invocation-per-output kernel, kept as the benchmark baseline.
pub fn matmul_naive(rec: &mut Recorder, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (_, m, k, n, _, _, out) = plan(a.shape(), b.shape(), &MatmulOpts::default())?;
    if out.len() != 2 {
        return Err(Error::Shape("matmul_naive takes rank-2 operands".into()));
    }
    super::loop_guard(rec, k, || format!("naive matmul with K = {k}"))?;
    let c = Tensor::empty(rec.gpu, &out)?;
    let pipe = rec.pipeline("matmul_naive", "main", &[])?;
    let pi = rec.params(&super::kernels::NaiveMatmulParams { m: m as u32, n: n as u32, k: k as u32, pad: 0 });
    let gx = dim(n.div_ceil(16), "naive tiles")?;
    let gy = dim(m.div_ceil(16), "naive tiles")?;
    rec.dispatch(&pipe, Some(pi), &[a.buffer(), b.buffer(), c.buffer()], [gx, gy, 1])?;
    Ok(c)
}
