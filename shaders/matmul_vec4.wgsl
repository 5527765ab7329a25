// Batched matmul fast path for row-major B and C whose column count N is a multiple of 4:
// C[b] = op(A[b]) @ B[b] (+ C[b] when ACCUMULATE), op(A) = A or A^T (TRANS_A).
//   a: [batch?, M, K] (or [batch?, K, M]) f32; b: [batch?, K, N/4] vec4; c: [batch, M, N/4] vec4.
// Register blocking with no workgroup memory and no barriers: each invocation accumulates a
// TM x 16 block; the column groups of neighbouring invocations are adjacent, so B and C
// accesses of a workgroup row are contiguous. Per k-step an invocation loads TM + 16 floats
// for 16*TM multiply-adds; on CPU implementations (lavapipe), where every per-invocation
// load is a gather, that ratio is what sets the speed, so large blocks (16 x 16) win there.
// TM and the workgroup shape are overridable constants (pipeline key).
// Bindings: 0 params (uniform), 1 a (read), 2 b (read, vec4), 3 c (read_write, vec4),
// 4 bias (read, vec4; when BIAS). Epilogue: c = act(A B + bias) (ops::matmul::Epilogue).

struct Params {
    m: u32, n: u32, k: u32, batch: u32,
    a_bstride: u32, b_bstride: u32, c_bstride: u32, groups_x: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> bias: array<vec4<f32>>;

override TRANS_A: bool = false;
// ACCUMULATE, BIAS, ACT and `put`: matmul_epilogue.wgsl and matmul_put4.wgsl.
override WG_X: u32 = 8;
override WG_Y: u32 = 8;
override TM: u32 = 16;  // rows per invocation (<= 16)

@compute @workgroup_size(WG_X, WG_Y, 1)
fn mm_reg4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let n4 = p.n / 4u;
    let a_base = wg.z * p.a_bstride;
    let b_base = wg.z * (p.b_bstride / 4u);
    let c_base = wg.z * (p.c_bstride / 4u);
    let row0 = (wg.y * WG_Y + lid.y) * TM;
    let g0 = wg.x * WG_X * 4u + lid.x;
    // Clamped row offsets and column groups: every load is in range for any M, N, K.
    var arow: array<u32, 16>;
    for (var i = 0u; i < TM; i++) {
        let r = min(row0 + i, p.m - 1u);
        if (TRANS_A) { arow[i] = a_base + r; } else { arow[i] = a_base + r * p.k; }
    }
    // Four column groups per invocation, written out: NIR unrolls the TM loop only when its
    // body is small, and the accumulators must end up in registers, not in indexed memory.
    let c0 = b_base + min(g0, n4 - 1u);
    let c1 = b_base + min(g0 + WG_X, n4 - 1u);
    let c2 = b_base + min(g0 + 2u * WG_X, n4 - 1u);
    let c3 = b_base + min(g0 + 3u * WG_X, n4 - 1u);
    var acc0: array<vec4<f32>, 16>;
    var acc1: array<vec4<f32>, 16>;
    var acc2: array<vec4<f32>, 16>;
    var acc3: array<vec4<f32>, 16>;
    for (var i = 0u; i < TM; i++) {
        acc0[i] = vec4<f32>(0.0); acc1[i] = vec4<f32>(0.0); acc2[i] = vec4<f32>(0.0); acc3[i] = vec4<f32>(0.0);
    }
    for (var kk = 0u; kk < p.k; kk++) {
        let bk = kk * n4;
        let b0 = b[bk + c0];
        let b1 = b[bk + c1];
        let b2 = b[bk + c2];
        let b3 = b[bk + c3];
        for (var i = 0u; i < TM; i++) {
            var av: f32;
            if (TRANS_A) { av = a[arow[i] + kk * p.m]; } else { av = a[arow[i] + kk]; }
            let a4 = vec4<f32>(av);
            acc0[i] = fma(a4, b0, acc0[i]);
            acc1[i] = fma(a4, b1, acc1[i]);
            acc2[i] = fma(a4, b2, acc2[i]);
            acc3[i] = fma(a4, b3, acc3[i]);
        }
    }
    // Written out (specialise): with the epilogue (SiLU's exp) the body is past what NIR
    // unrolls, and a rolled loop indexing the accumulators keeps them in scratch memory through
    // the whole k loop (3-4x slower on lavapipe).
    for (var i = 0u; i < TM; i++) { // @unroll
        let r = row0 + i;
        if (r < p.m) {
            let o = c_base + r * n4 + g0;
            put(o, g0, acc0[i]);
            put(o + WG_X, g0 + WG_X, acc1[i]);
            put(o + 2u * WG_X, g0 + 2u * WG_X, acc2[i]);
            put(o + 3u * WG_X, g0 + 3u * WG_X, acc3[i]);
        }
    }
}
