//! Fused scaled-dot-product attention: four kernels with one maths and one set of bindings
//! (shaders/attention_kv.wgsl, attention_sg.wgsl, attention_v4.wgsl, attention.wgsl; which
//! one runs: `AttentionKernel`, `kernel_for`).

use super::kernels::AttentionParams;
use super::{dim, grid};
use crate::error::{Error, Result};
use crate::gpu::Recorder;
use crate::tensor::Tensor;

/// The widest head the fused kernels take.
pub const MAX_HEAD_DIM: usize = 128;

/// out = softmax(scale q k^T) v for q [.., Nq, D], k [.., Nk, D], v [.., Nk, DV] with the
/// same leading (batch, heads) dims; returns (out [.., Nq, DV], logsumexp [.., Nq]).
/// `scale` defaults to 1/sqrt(D). Self-attention is q, k, v from one sequence; cross-attention
/// takes k, v from another (Nk != Nq).
pub fn attention(
    rec: &mut Recorder,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: Option<f32>,
) -> Result<(Tensor, Tensor)> {
    attention_with(rec, q, k, v, scale, AttentionKernel::Auto)
}

/// The fused attention kernels (one maths, bindings and outputs; tests run each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttentionKernel {
    /// The one `kernel_for` picks for the adapter and shape.
    Auto,
    /// attention_kv.wgsl: eight invocations hold all keys and values of a (b, h) and take an
    /// exact softmax per query (Nk <= 64; subgroups).
    FewKeys,
    /// attention_sg.wgsl: online softmax over key steps, key rows shared by shuffles (subgroups).
    Subgroup,
    /// No subgroup operations, online softmax: attention_v4.wgsl (vec4 rows, every loop written
    /// out) where D and DV are multiples of 4, else attention.wgsl.
    Plain,
}

/// Most keys the few-keys kernel holds (8 invocations x 8 key slots).
pub const FEW_KEYS: usize = 64;

/// The kernel that runs for a request: `Auto` takes the few-keys kernel on CPU adapters for
/// Nk <= 64 (faster there: docs/performance.md, "the few-keys kernel") and the subgroup kernel
/// elsewhere where subgroups are available; a
/// kernel that does not apply falls back along FewKeys -> Subgroup -> Plain. GPUs keep the
/// subgroup kernel until the few-keys one is measured there: it gives each (b, h) only eight
/// invocations.
pub fn kernel_for(gpu: &crate::gpu::Gpu, want: AttentionKernel, nk: usize, d: usize, dv: usize) -> AttentionKernel {
    use AttentionKernel::*;
    let subgroups = gpu.features.contains(wgpu::Features::SUBGROUP)
        && gpu.info.subgroup_min_size >= 8
        && d.is_multiple_of(4)
        && dv.is_multiple_of(4)
        && d <= MAX_HEAD_DIM
        && dv <= MAX_HEAD_DIM;
    let few = subgroups && nk <= FEW_KEYS;
    match want {
        Auto if few && gpu.is_cpu() => FewKeys,
        FewKeys if few => FewKeys,
        Auto | FewKeys | Subgroup if subgroups => Subgroup,
        _ => Plain,
    }
}

/// `attention` with a chosen kernel (see `kernel_for` for the fallbacks).
pub fn attention_with(
    rec: &mut Recorder,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: Option<f32>,
    kernel: AttentionKernel,
) -> Result<(Tensor, Tensor)> {
    let (qs, ks, vs) = (q.shape(), k.shape(), v.shape());
    let r = qs.len();
    let (nq, d, nk, dv) = check_shapes(qs, ks, vs)?;
    let bh: usize = qs[..r - 2].iter().product();
    let mut os = qs.to_vec();
    os[r - 1] = dv;
    let out = Tensor::empty(rec.gpu, &os)?;
    let lse = Tensor::empty(rec.gpu, &qs[..r - 1])?;
    if bh * nq == 0 {
        return Ok((out, lse));
    }
    let scale = scale.unwrap_or(1.0 / (d as f32).sqrt());
    let g = rec.gpu;
    let sg8 = (g.info.subgroup_max_size == 8) as u32 as f64;
    // Each kernel: its shader, pipeline constants, parameter block and invocation count.
    let (shader, constants, params, invocations) = match kernel_for(g, kernel, nk, d, dv) {
        AttentionKernel::FewKeys => {
            // Eight invocations per (b, h) and chunk of queries, holding all keys and values.
            let per = nq.div_ceil(kv_chunks(g, bh, nq)).min(super::loop_budget(rec) - 8);
            let chunks = nq.div_ceil(per);
            let mut params = attention_params(bh, nq, nk, scale, chunks)?;
            params.q_chunk = dim(per, "queries per chunk")?;
            let c = vec![("D4", (d / 4) as f64), ("DV4", (dv / 4) as f64), ("SG8", sg8), ("NK", nk as f64)];
            ("attention_kv", c, params, bh * chunks * 8)
        }
        AttentionKernel::Subgroup | AttentionKernel::Auto /* kernel_for resolves Auto */ => {
            // Eight invocations per block of 8 * TQ queries, sharing key/value loads by shuffles.
            let tq = tq_for(g, bh, d.max(dv), nq);
            let kb = kb_for(g, tq, d.max(dv));
            super::loop_guard(rec, nk.div_ceil(kb) + 8, || format!("attention over {nk} keys"))?;
            let q_blocks = nq.div_ceil(8 * tq);
            let params = attention_params(bh, nq, nk, scale, q_blocks)?;
            let c = vec![
                ("D4", (d / 4) as f64),
                ("DV4", (dv / 4) as f64),
                ("SG8", sg8),
                ("TQ", tq as f64),
                ("KB", kb as f64),
            ];
            ("attention_sg", c, params, bh * q_blocks * 8)
        }
        AttentionKernel::Plain if d % 4 == 0 && dv % 4 == 0 => {
            // Vec4 rows, TQ queries per invocation, every loop written out.
            // Two keys per step (docs/performance.md, "two keys per step").
            let (tq, kb) = (tq_plain(g, bh, d.max(dv), nq), 2);
            super::loop_guard(rec, nk.div_ceil(kb) + 8, || format!("attention over {nk} keys"))?;
            let q_blocks = nq.div_ceil(tq);
            let params = attention_params(bh, nq, nk, scale, q_blocks)?;
            let c = vec![("D4", (d / 4) as f64), ("DV4", (dv / 4) as f64), ("TQ", tq as f64), ("KB", kb as f64)];
            ("attention_v4", c, params, bh * q_blocks)
        }
        AttentionKernel::Plain => {
            // Queries per invocation: reuse each loaded key/value TQ times, within the private arrays.
            let tq = (256 / d.max(dv)).clamp(1, 8).min(4);
            // Per key, loops over D, DV and the queries (not all unrolled by every compiler).
            super::loop_guard(rec, nk * (d + dv + 2 * tq + 2) + tq * (d + dv), || {
                format!("attention over {nk} keys of head dims {d}, {dv} (kernel without subgroups)")
            })?;
            let q_blocks = nq.div_ceil(tq);
            let params = attention_params(bh, nq, nk, scale, q_blocks)?;
            ("attention", vec![("D", d as f64), ("DV", dv as f64), ("TQ", tq as f64)], params, bh * q_blocks)
        }
    };
    let pipe = rec.pipeline(shader, shader, &constants)?;
    let pi = rec.params(&params);
    let groups = grid(rec, invocations, 64)?;
    rec.dispatch(&pipe, Some(pi), &[q.buffer(), k.buffer(), v.buffer(), out.buffer(), lse.buffer()], groups)?;
    Ok((out, lse))
}

/// (Nq, D, Nk, DV) of q [.., Nq, D], k [.., Nk, D], v [.., Nk, DV], or an error naming them.
fn check_shapes(qs: &[usize], ks: &[usize], vs: &[usize]) -> Result<(usize, usize, usize, usize)> {
    let r = qs.len();
    if r < 2 || ks.len() != r || vs.len() != r || qs[..r - 2] != ks[..r - 2] || ks[..r - 2] != vs[..r - 2] {
        return Err(Error::Shape(format!(
            "attention: q {qs:?}, k {ks:?}, v {vs:?} must share leading dims [.., N, D]"
        )));
    }
    let (nq, d, nk, dv) = (qs[r - 2], qs[r - 1], ks[r - 2], vs[r - 1]);
    if ks[r - 1] != d || vs[r - 2] != nk {
        return Err(Error::Shape(format!(
            "attention: q {qs:?} and k {ks:?} need the same D, k and v {vs:?} the same N"
        )));
    }
    if d == 0 || dv == 0 || d > MAX_HEAD_DIM || dv > MAX_HEAD_DIM {
        return Err(Error::Shape(format!("attention: head dims D={d}, DV={dv} must be in 1..={MAX_HEAD_DIM}")));
    }
    if nk == 0 {
        return Err(Error::Shape(format!("attention: no keys (k {ks:?})")));
    }
    Ok((nq, d, nk, dv))
}

/// The parameter block the attention kernels read.
fn attention_params(bh: usize, nq: usize, nk: usize, scale: f32, q_blocks: usize) -> Result<AttentionParams> {
    Ok(AttentionParams {
        bh: dim(bh, "batch*heads")?,
        nq: dim(nq, "queries")?,
        nk: dim(nk, "keys")?,
        scale,
        q_blocks: dim(q_blocks, "query blocks")?,
        ..Default::default()
    })
}

/// Queries per invocation (TQ, 1..=8) for the subgroup kernel. Each loaded and shuffled key
/// and value element serves 8 * TQ queries, and a block of 8 * TQ queries costs about
/// TQ + 1.5 query-walks over the keys (docs/performance.md, "queries per invocation"), so TQ minimises ceil(Nq / (8 TQ)) * (TQ + 1.5): W4's Nq = 49 takes TQ = 7 (56 slots)
/// rather than 8 (64 slots). Bounded by
/// - registers: a GPU keeps TQ * (D + DV) floats of per-query state per invocation, so there
///   TQ * max(D, DV) <= 128; a CPU adapter keeps that state in cache memory anyway, and takes
///   TQ * max(D, DV) <= 512 (beyond it the state outgrows L1);
/// - on a CPU adapter, one workgroup per core at least.
pub fn tq_for(gpu: &crate::gpu::Gpu, bh: usize, head_dim: usize, nq: usize) -> usize {
    tq_rule(gpu.is_cpu().then(cpu_cores), bh, head_dim, nq)
}

/// `tq_for`'s rule for an adapter that is a CPU with `cpu_cores` cores (None: a GPU).
pub fn tq_rule(cpu_cores: Option<usize>, bh: usize, head_dim: usize, nq: usize) -> usize {
    queries_per_invocation(cpu_cores, bh, head_dim, nq, 8, 1.5)
}

/// Queries per invocation (TQ, 1..=8) for the vec4 kernel without subgroups
/// (attention_v4.wgsl): every invocation reads each key and value row itself, which costs about
/// as much as 2.5 queries' arithmetic on it (lavapipe), so TQ minimises
/// ceil(Nq / TQ) * (TQ + 2.5), within the same register budget as `tq_for` and, on a CPU
/// adapter, 64 invocations per core at least.
pub fn tq_plain(gpu: &crate::gpu::Gpu, bh: usize, head_dim: usize, nq: usize) -> usize {
    queries_per_invocation(gpu.is_cpu().then(cpu_cores), bh, head_dim, nq, 1, 2.5)
}

/// The TQ model of `tq_for` and `tq_plain`: blocks of `lanes` x TQ queries, each costing
/// TQ + `load_cost` query-walks over the keys; registers bound TQ x head dim (512 floats on a
/// CPU adapter, 128 elsewhere); a CPU adapter keeps 64 invocations per core at least.
fn queries_per_invocation(
    cpu_cores: Option<usize>,
    bh: usize,
    head_dim: usize,
    nq: usize,
    lanes: usize,
    load_cost: f64,
) -> usize {
    let budget = if cpu_cores.is_some() { 512 } else { 128 };
    let max_tq = (budget / head_dim).clamp(1, 8);
    let cost = |t: usize| nq.div_ceil(lanes * t) as f64 * (t as f64 + load_cost);
    let mut tq = (1..=max_tq).rev().min_by(|&a, &b| cost(a).total_cmp(&cost(b))).unwrap_or(1);
    if let Some(cores) = cpu_cores {
        while tq > 1 && bh * nq.div_ceil(lanes * tq) * lanes < cores * 64 {
            tq = tq.div_ceil(2);
        }
    }
    tq
}

/// Cores the CPU adapter's threads share (this process's available parallelism).
fn cpu_cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Keys per step (KB) of the subgroup kernel: each step rescales the running output sums once
/// and writes them back once, for KB keys. Four keys halve that traffic but grow the unrolled
/// step (and, on a GPU, the registers holding the step's key and value rows), so four only on
/// a CPU adapter and only while TQ * max(D, DV) / 4 <= 64, the size up to which the longer
/// step measured faster on lavapipe (docs/performance.md, "four keys per step").
pub fn kb_for(gpu: &crate::gpu::Gpu, tq: usize, head_dim: usize) -> usize {
    if gpu.is_cpu() && tq * head_dim.div_ceil(4) <= 64 {
        4
    } else {
        2
    }
}

/// Query chunks per (b, h) for the few-keys kernel. Each chunk loads its (b, h)'s keys and
/// values once (on lavapipe about as long as 20-25 queries take), so chunks hold at least 16
/// queries; within that, enough chunks for four workgroups of eight groups per core (on a GPU,
/// per 64 "cores").
pub fn kv_chunks(gpu: &crate::gpu::Gpu, bh: usize, nq: usize) -> usize {
    let cores = if gpu.is_cpu() { cpu_cores() } else { 64 };
    (cores * 4 * 8).div_ceil(bh).clamp(1, nq.div_ceil(16).max(1))
}

/// CPU reference (explicit softmax, f64): (out, logsumexp).
pub fn attention_ref(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    bh: usize,
    nq: usize,
    nk: usize,
    d: usize,
    dv: usize,
    scale: f32,
) -> (Vec<f32>, Vec<f32>) {
    let mut out = vec![0f32; bh * nq * dv];
    let mut lse = vec![0f32; bh * nq];
    for b in 0..bh {
        for i in 0..nq {
            let s: Vec<f64> = (0..nk)
                .map(|j| {
                    (0..d).map(|t| q[(b * nq + i) * d + t] as f64 * k[(b * nk + j) * d + t] as f64).sum::<f64>()
                        * scale as f64
                })
                .collect();
            let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = s.iter().map(|x| (x - m).exp()).sum();
            for t in 0..dv {
                let acc: f64 = (0..nk).map(|j| (s[j] - m).exp() / z * v[(b * nk + j) * dv + t] as f64).sum();
                out[(b * nq + i) * dv + t] = acc as f32;
            }
            lse[b * nq + i] = (m + z.ln()) as f32;
        }
    }
    (out, lse)
}
