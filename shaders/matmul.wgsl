// Batched matmul: C[b] = op(A[b]) @ op(B[b]) (+ C[b] when ACCUMULATE).
//   op(A): [M, K], stored [M, K] row-major, or [K, M] when TRANS_A
//   op(B): [K, N], stored [K, N] row-major, or [N, K] when TRANS_B
//   C: [M, N]. Batch b is workgroup z; per-operand batch strides in elements (0 broadcasts).
// Two kernel families, chosen per adapter by a short autotune (src/ops/matmul.rs):
//   mm_reg   (any layout; matmul_vec4.wgsl is its faster twin for row-major B, N % 4 == 0)
//            register blocking, no workgroup memory, no barriers: each invocation accumulates
//            a TM x (4*TN4) block; columns of neighbouring invocations are adjacent. Best on
//            CPU implementations (lavapipe), where barriers are expensive.
//   mm_tiled classic shared-memory tiling: a workgroup of WG_X x WG_Y invocations computes a
//            (WG_Y*TM) x (WG_X*TN) tile, staging BK-deep slices of A and B in workgroup memory;
//            each invocation owns TM x TN outputs strided by the workgroup size. Best on GPUs.
// Tile sizes are pipeline-overridable constants (part of the pipeline key). Loads use indices
// clamped into range, so any M, N, K work; out-of-range outputs are simply not stored.
// Bindings: 0 params (uniform), 1 a (read), 2 b (read), 3 c (read_write).

struct Params {
    m: u32, n: u32, k: u32, batch: u32,
    a_bstride: u32, b_bstride: u32, c_bstride: u32, groups_x: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override ACCUMULATE: bool = false;
override WG_X: u32 = 8;
override WG_Y: u32 = 8;
override TM: u32 = 4;    // rows per invocation (<= 16 for mm_reg, <= 8 for mm_tiled)
override TN4: u32 = 2;   // mm_reg: vec4 column groups per invocation (<= 4)
override TN: u32 = 4;    // mm_tiled: columns per invocation (<= 8)
override BK: u32 = 8;    // mm_tiled: k-slice depth (<= 16)

fn a_at(base: u32, row: u32, kk: u32) -> f32 {
    if (TRANS_A) { return a[base + kk * p.m + row]; }
    return a[base + row * p.k + kk];
}
fn b_at(base: u32, kk: u32, col: u32) -> f32 {
    if (TRANS_B) { return b[base + col * p.k + kk]; }
    return b[base + kk * p.n + col];
}
fn store(base: u32, row: u32, col: u32, v: f32) {
    if (row < p.m && col < p.n) {
        let i = base + row * p.n + col;
        if (ACCUMULATE) { c[i] += v; } else { c[i] = v; }
    }
}

@compute @workgroup_size(WG_X, WG_Y, 1)
fn mm_reg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let bz = wg.z;
    let a_base = bz * p.a_bstride;
    let b_base = bz * p.b_bstride;
    let c_base = bz * p.c_bstride;
    let row0 = (wg.y * WG_Y + lid.y) * TM;
    // Column groups of 4: invocation lid.x of this workgroup owns groups g0 + j*WG_X.
    let g0 = wg.x * WG_X * TN4 + lid.x;
    var rows: array<u32, 16>;
    for (var i = 0u; i < TM; i++) { rows[i] = min(row0 + i, p.m - 1u); }
    var cols: array<u32, 16>;
    for (var j = 0u; j < TN4; j++) {
        for (var q = 0u; q < 4u; q++) { cols[j * 4u + q] = min((g0 + j * WG_X) * 4u + q, p.n - 1u); }
    }
    var acc: array<vec4<f32>, 64>;
    for (var i = 0u; i < TM * TN4; i++) { acc[i] = vec4<f32>(0.0); }
    for (var kk = 0u; kk < p.k; kk++) {
        var bv: array<vec4<f32>, 4>;
        for (var j = 0u; j < TN4; j++) {
            bv[j] = vec4<f32>(b_at(b_base, kk, cols[j * 4u]), b_at(b_base, kk, cols[j * 4u + 1u]),
                              b_at(b_base, kk, cols[j * 4u + 2u]), b_at(b_base, kk, cols[j * 4u + 3u]));
        }
        for (var i = 0u; i < TM; i++) {
            let av = a_at(a_base, rows[i], kk);
            for (var j = 0u; j < TN4; j++) { acc[i * TN4 + j] = fma(vec4<f32>(av), bv[j], acc[i * TN4 + j]); }
        }
    }
    for (var i = 0u; i < TM; i++) {
        for (var j = 0u; j < TN4; j++) {
            let v = acc[i * TN4 + j];
            let col = (g0 + j * WG_X) * 4u;
            store(c_base, row0 + i, col, v.x);
            store(c_base, row0 + i, col + 1u, v.y);
            store(c_base, row0 + i, col + 2u, v.z);
            store(c_base, row0 + i, col + 3u, v.w);
        }
    }
}

const MAX_TILE: u32 = 2048u; // BK * BM and BK * BN must fit (e.g. 16 x 128)
var<workgroup> a_tile: array<f32, MAX_TILE>;
var<workgroup> b_tile: array<f32, MAX_TILE>;

@compute @workgroup_size(WG_X, WG_Y, 1)
fn mm_tiled(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let bm = WG_Y * TM;
    let bn = WG_X * TN;
    let bz = wg.z;
    let a_base = bz * p.a_bstride;
    let b_base = bz * p.b_bstride;
    let c_base = bz * p.c_bstride;
    let row0 = wg.y * bm;
    let col0 = wg.x * bn;
    let tid = lid.y * WG_X + lid.x;
    let nthreads = WG_X * WG_Y;
    var acc: array<f32, 64>;
    for (var i = 0u; i < TM * TN; i++) { acc[i] = 0.0; }
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        // Stage A[row0.., k0..] as a_tile[kk * bm + r] and B[k0.., col0..] as b_tile[kk * bn + cc].
        for (var idx = tid; idx < BK * bm; idx += nthreads) {
            // Neighbouring invocations read neighbouring addresses of the stored layout.
            var kk: u32; var r: u32;
            if (TRANS_A) { kk = idx / bm; r = idx % bm; } else { kk = idx % BK; r = idx / BK; }
            var v = 0.0;
            if (row0 + r < p.m && k0 + kk < p.k) { v = a_at(a_base, row0 + r, k0 + kk); }
            a_tile[kk * bm + r] = v;
        }
        for (var idx = tid; idx < BK * bn; idx += nthreads) {
            var kk: u32; var cc: u32;
            if (TRANS_B) { kk = idx % BK; cc = idx / BK; } else { kk = idx / bn; cc = idx % bn; }
            var v = 0.0;
            if (col0 + cc < p.n && k0 + kk < p.k) { v = b_at(b_base, k0 + kk, col0 + cc); }
            b_tile[kk * bn + cc] = v;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            var ar: array<f32, 8>;
            var br: array<f32, 8>;
            for (var i = 0u; i < TM; i++) { ar[i] = a_tile[kk * bm + lid.y + i * WG_Y]; }
            for (var j = 0u; j < TN; j++) { br[j] = b_tile[kk * bn + lid.x + j * WG_X]; }
            for (var i = 0u; i < TM; i++) {
                for (var j = 0u; j < TN; j++) { acc[i * TN + j] = fma(ar[i], br[j], acc[i * TN + j]); }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < TM; i++) {
        for (var j = 0u; j < TN; j++) {
            store(c_base, row0 + lid.y + i * WG_Y, col0 + lid.x + j * WG_X, acc[i * TN + j]);
        }
    }
}
