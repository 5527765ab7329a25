// Fused attention, subgroup variant (same maths, bindings and outputs as attention.wgsl):
//   out[b, h, i, :] = sum_j softmax_j(scale * q[b,h,i,:] . k[b,h,j,:]) v[b,h,j,:]
// Eight neighbouring invocations own 8 * TQ queries of the same (b, h) (invocation l has
// queries l, l + 8, ..., TQ of them) and walk the keys together, two per step (one rescale of
// the running sums per pair). For key j, invocation l loads the vec4s l, l + 8, ... of k_j and
// v_j, and every invocation receives the others by subgroupShuffle: per key and invocation
// (D + DV) / 32 vec4 loads instead of (D + DV) / 4. On CPU implementations (lavapipe) each
// per-invocation load is a loop over the SIMD lanes with a bounds check, ~100 instructions, so
// loads set the speed and each loaded element should serve as many queries as possible; on
// GPUs a key row is read once per 8 * TQ queries.
// The per-query state (scaled q, running max m, normaliser l, output row) stays in registers:
// each of the TQ queries has its own arrays (qs0..qs3, acc0..acc3), and the loops over head
// dimensions are marked `@unroll`, written out in full when the pipeline is built
// (src/shaders.rs, `specialise`), so that every array index is a constant. Left to Mesa's
// heuristics, a loop body over ~50 scalar operations stays rolled, its arrays go to scratch
// memory, and W4 (64,1,49,64) ran 5.6 ms at TQ = 4 instead of 1.2.
// Needs SUBGROUP, subgroups of >= 8 consecutive invocations, D and DV multiples of 4 (<= 128).
// SG8 = true when subgroups are exactly 8 wide: shuffle sources are then compile-time lanes.
// Bindings: 0 params, 1 q [BH, Nq, D], 2 k [BH, Nk, D], 3 v [BH, Nk, DV] (vec4 views),
// 4 out [BH, Nq, DV], 5 lse [BH, Nq].

struct Params { bh: u32, nq: u32, nk: u32, scale: f32, q_blocks: u32, groups_x: u32, p0: u32, p1: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> v: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;

override D4: u32 = 16u;   // D / 4
override DV4: u32 = 16u;  // DV / 4
override SG8: bool = false;
override TQ: u32 = 1u;    // queries per invocation (1..4)
const WG: u32 = 64u;
const NEG_INF: f32 = -3.4028235e38;
// Scores are kept in base 2 (q pre-scaled by log2 e) so that every exponential is an exp2.
const LOG2E: f32 = 1.4426950408889634;
const LN2: f32 = 0.6931471805599453;

fn load_q(qs: ptr<function, array<vec4<f32>, 32>>, row: u32, s: f32) {
    for (var d = 0u; d < D4; d++) { // @unroll
        (*qs)[d] = q[row + d] * s;
    }
}

// One query's online-softmax step given its base-2 scores (as vec4 partial sums) against the
// step's two keys; ml = (running max, normaliser). Returns (rescale of the old sums, p0, p1).
fn softmax_step(s0: vec4<f32>, s1: vec4<f32>, ml: ptr<function, vec2<f32>>, has1: bool) -> vec3<f32> {
    let m = (*ml).x;
    let a0 = (s0.x + s0.y) + (s0.z + s0.w);
    let a1 = select(NEG_INF, (s1.x + s1.y) + (s1.z + s1.w), has1);
    let mn = max(m, max(a0, a1));
    let r = vec3<f32>(exp2(m - mn), exp2(a0 - mn), exp2(a1 - mn));
    *ml = vec2<f32>(mn, (*ml).y * r.x + r.y + r.z);
    return r;
}

fn store_row(acc: ptr<function, array<vec4<f32>, 32>>, ml: vec2<f32>, bh: u32, i: u32, live: bool) {
    if (live && i < p.nq) {
        let inv = 1.0 / ml.y;
        let orow = (bh * p.nq + i) * DV4;
        for (var d = 0u; d < DV4; d++) { // @unroll
            out[orow + d] = (*acc)[d] * inv;
        }
        lse[bh * p.nq + i] = (ml.x + log2(ml.y)) * LN2;
    }
}

@compute @workgroup_size(WG)
fn attention_sg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) flat: u32, @builtin(subgroup_invocation_id) sg_id: u32) {
    let lane = flat % 8u;
    var src0 = sg_id - lane;
    if (SG8) { src0 = 0u; }
    // Group of eight invocations = (bh, block of 8 * TQ queries); p.q_blocks = ceil(Nq / (8 TQ)).
    let group = (wg.y * nwg.x + wg.x) * (WG / 8u) + flat / 8u;
    let live = group < p.bh * p.q_blocks;
    let g = min(group, p.bh * p.q_blocks - 1u);
    let bh = g / p.q_blocks;
    let i0 = (g % p.q_blocks) * 8u * TQ + lane; // query t of this invocation: i0 + 8 t
    let sc = p.scale * LOG2E;
    let last = p.nq - 1u;
    var qs0: array<vec4<f32>, 32>;
    var qs1: array<vec4<f32>, 32>;
    var qs2: array<vec4<f32>, 32>;
    var qs3: array<vec4<f32>, 32>;
    var acc0: array<vec4<f32>, 32>;
    var acc1: array<vec4<f32>, 32>;
    var acc2: array<vec4<f32>, 32>;
    var acc3: array<vec4<f32>, 32>;
    var ml0 = vec2<f32>(NEG_INF, 0.0);
    var ml1 = ml0;
    var ml2 = ml0;
    var ml3 = ml0;
    load_q(&qs0, (bh * p.nq + min(i0, last)) * D4, sc);
    if (TQ > 1u) { load_q(&qs1, (bh * p.nq + min(i0 + 8u, last)) * D4, sc); }
    if (TQ > 2u) { load_q(&qs2, (bh * p.nq + min(i0 + 16u, last)) * D4, sc); }
    if (TQ > 3u) { load_q(&qs3, (bh * p.nq + min(i0 + 24u, last)) * D4, sc); }
    let kb = bh * p.nk * D4;
    let vb = bh * p.nk * DV4;
    for (var j = 0u; j < p.nk; j += 2u) {
        let j1 = min(j + 1u, p.nk - 1u);
        let has1 = j + 1u < p.nk;
        // This invocation's eighth of the two key and value rows.
        var kc0: array<vec4<f32>, 4>;
        var kc1: array<vec4<f32>, 4>;
        var vc0: array<vec4<f32>, 4>;
        var vc1: array<vec4<f32>, 4>;
        for (var c = 0u; c < (D4 + 7u) / 8u; c++) {
            let o = min(c * 8u + lane, D4 - 1u);
            kc0[c] = k[kb + j * D4 + o];
            kc1[c] = k[kb + j1 * D4 + o];
        }
        for (var c = 0u; c < (DV4 + 7u) / 8u; c++) {
            let o = min(c * 8u + lane, DV4 - 1u);
            vc0[c] = v[vb + j * DV4 + o];
            vc1[c] = v[vb + j1 * DV4 + o];
        }
        // Scores: every invocation receives the key rows' vec4 d by shuffle and uses it at once.
        var t00 = vec4<f32>(0.0);
        var t01 = t00; var t10 = t00; var t11 = t00;
        var t20 = t00; var t21 = t00; var t30 = t00; var t31 = t00;
        for (var d = 0u; d < D4; d++) { // @unroll
            let k0 = subgroupShuffle(kc0[d / 8u], src0 + d % 8u);
            let k1 = subgroupShuffle(kc1[d / 8u], src0 + d % 8u);
            t00 = fma(qs0[d], k0, t00);
            t01 = fma(qs0[d], k1, t01);
            if (TQ > 1u) { t10 = fma(qs1[d], k0, t10); t11 = fma(qs1[d], k1, t11); }
            if (TQ > 2u) { t20 = fma(qs2[d], k0, t20); t21 = fma(qs2[d], k1, t21); }
            if (TQ > 3u) { t30 = fma(qs3[d], k0, t30); t31 = fma(qs3[d], k1, t31); }
        }
        let r0 = softmax_step(t00, t01, &ml0, has1);
        var r1 = r0;
        var r2 = r0;
        var r3 = r0;
        if (TQ > 1u) { r1 = softmax_step(t10, t11, &ml1, has1); }
        if (TQ > 2u) { r2 = softmax_step(t20, t21, &ml2, has1); }
        if (TQ > 3u) { r3 = softmax_step(t30, t31, &ml3, has1); }
        for (var d = 0u; d < DV4; d++) { // @unroll
            let v0 = subgroupShuffle(vc0[d / 8u], src0 + d % 8u);
            let v1 = subgroupShuffle(vc1[d / 8u], src0 + d % 8u);
            acc0[d] = fma(acc0[d], vec4<f32>(r0.x), fma(vec4<f32>(r0.y), v0, r0.z * v1));
            if (TQ > 1u) { acc1[d] = fma(acc1[d], vec4<f32>(r1.x), fma(vec4<f32>(r1.y), v0, r1.z * v1)); }
            if (TQ > 2u) { acc2[d] = fma(acc2[d], vec4<f32>(r2.x), fma(vec4<f32>(r2.y), v0, r2.z * v1)); }
            if (TQ > 3u) { acc3[d] = fma(acc3[d], vec4<f32>(r3.x), fma(vec4<f32>(r3.y), v0, r3.z * v1)); }
        }
    }
    store_row(&acc0, ml0, bh, i0, live);
    if (TQ > 1u) { store_row(&acc1, ml1, bh, i0 + 8u, live); }
    if (TQ > 2u) { store_row(&acc2, ml2, bh, i0 + 16u, live); }
    if (TQ > 3u) { store_row(&acc3, ml3, bh, i0 + 24u, live); }
}
