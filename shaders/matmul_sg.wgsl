// Subgroup twin of matmul_vec4.wgsl (same maths, bindings and layout): row-major B and C with
// N a multiple of 4:
// C[b] = op(A[b]) @ B[b] (+ C[b] when ACCUMULATE), op(A) = A or A^T (TRANS_A).
//   a: [batch?, M, K] (or [batch?, K, M]) f32; b: [batch?, K, N/4] vec4; c: [batch, M, N/4] vec4.
// Register blocking with no workgroup memory and no barriers: each invocation accumulates a
// TM x 16 block; the column groups of neighbouring invocations are adjacent, so B and C
// accesses of a workgroup row are contiguous. Per k-step an invocation loads TM + 16 floats
// for 16*TM multiply-adds; on CPU implementations (lavapipe), where every per-invocation
// load is a gather, that ratio is what sets the speed, so large blocks (16 x 16) win there.
// Difference: the TM rows of A an invocation needs are the same for the 8 invocations of a
// workgroup row, so each of them loads TM / 8 of those values and the rest arrive by
// subgroupShuffle: per k-step 16 + TM/8 loads instead of 16 + TM, which lets TM grow to 32.
// Needs the SUBGROUP feature, WG_X = 8 and subgroups of at least 8 invocations made of
// consecutive invocations (src/ops/matmul.rs offers it only then). RG = TM / 8 (<= 4).
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
const WG_X: u32 = 8u;
override WG_Y: u32 = 8;
override RG: u32 = 4;   // row groups of 8: TM = 8 * RG rows per invocation (<= 32)

// Subgroup built-ins need a one-dimensional workgroup: WG_Y rows of 8 invocations, flattened.
override WG_T: u32 = 8u * WG_Y;

@compute @workgroup_size(WG_T, 1, 1)
fn mm_sg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) flat: u32,
         @builtin(subgroup_invocation_id) sg_id: u32) {
    let lid = vec2<u32>(flat % WG_X, flat / WG_X);
    let TM = 8u * RG;
    let src0 = sg_id - lid.x; // subgroup lane of this row's invocation 0
    let n4 = p.n / 4u;
    let a_base = wg.z * p.a_bstride;
    let b_base = wg.z * (p.b_bstride / 4u);
    let c_base = wg.z * (p.c_bstride / 4u);
    let row0 = (wg.y * WG_Y + lid.y) * TM;
    let g0 = wg.x * WG_X * 4u + lid.x;
    // Clamped row offsets and column groups: every load is in range for any M, N, K.
    // This invocation loads rows row0 + lid.x + 8 r of A for every k.
    var arow: array<u32, 4>;
    for (var r = 0u; r < RG; r++) {
        let row = min(row0 + lid.x + 8u * r, p.m - 1u);
        if (TRANS_A) { arow[r] = a_base + row; } else { arow[r] = a_base + row * p.k; }
    }
    // Four column groups per invocation, written out: NIR unrolls the TM loop only when its
    // body is small, and the accumulators must end up in registers, not in indexed memory.
    let c0 = b_base + min(g0, n4 - 1u);
    let c1 = b_base + min(g0 + WG_X, n4 - 1u);
    let c2 = b_base + min(g0 + 2u * WG_X, n4 - 1u);
    let c3 = b_base + min(g0 + 3u * WG_X, n4 - 1u);
    var acc0: array<vec4<f32>, 32>;
    var acc1: array<vec4<f32>, 32>;
    var acc2: array<vec4<f32>, 32>;
    var acc3: array<vec4<f32>, 32>;
    for (var i = 0u; i < TM; i++) {
        acc0[i] = vec4<f32>(0.0); acc1[i] = vec4<f32>(0.0); acc2[i] = vec4<f32>(0.0); acc3[i] = vec4<f32>(0.0);
    }
    for (var kk = 0u; kk < p.k; kk++) {
        let bk = kk * n4;
        let b0 = b[bk + c0];
        let b1 = b[bk + c1];
        let b2 = b[bk + c2];
        let b3 = b[bk + c3];
        var ag: array<f32, 4>;
        for (var r = 0u; r < RG; r++) {
            if (TRANS_A) { ag[r] = a[arow[r] + kk * p.m]; } else { ag[r] = a[arow[r] + kk]; }
        }
        for (var i = 0u; i < TM; i++) {
            let a4 = vec4<f32>(subgroupShuffle(ag[i / 8u], src0 + i % 8u));
            acc0[i] = fma(a4, b0, acc0[i]);
            acc1[i] = fma(a4, b1, acc1[i]);
            acc2[i] = fma(a4, b2, acc2[i]);
            acc3[i] = fma(a4, b3, acc3[i]);
        }
    }
    // Written out (specialise): with the epilogue (SiLU's exp) the body is past what NIR
    // unrolls, and a rolled loop indexing the accumulators keeps them in scratch memory through
    // the whole k loop (3-4x slower on lavapipe).
    for (var i = 0u; i < 8u * RG; i++) { // @unroll
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
