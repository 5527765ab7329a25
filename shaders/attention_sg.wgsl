// Fused attention, subgroup variant (same maths, bindings and outputs as attention.wgsl):
//   out[b, h, i, :] = sum_j softmax_j(scale * q[b,h,i,:] . k[b,h,j,:]) v[b,h,j,:]
// Eight neighbouring invocations own 8 * TQ queries of the same (b, h) (invocation l has
// queries l, l + 8, ..., TQ of them) and walk the keys together. For key j, invocation l loads the vec4s l, l + 8, ... of k_j and v_j, and every
// invocation receives the others by subgroupShuffle: per key and invocation (D + DV) / 32
// vec4 loads instead of (D + DV) / 4. On CPU implementations (lavapipe) each per-invocation
// load is a loop over the SIMD lanes with a bounds check, ~100 instructions, so loads set the
// speed; on GPUs a key row is read once per eight queries.
// The per-query state (scaled q, running max m, normaliser l, output row) stays in registers:
// every loop over head dimensions has a constant trip count <= 32 (D4 = D / 4), so compilers
// unroll it and index the arrays with constants.
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
override TQ: u32 = 1u;    // queries per invocation (<= 4)
override KB: u32 = 1u;    // keys per step, 1 or 2 (one rescale of the running sums per step)
const WG: u32 = 64u;
const NEG_INF: f32 = -3.4028235e38;
// Scores are kept in base 2 (q pre-scaled by log2 e) so that every exponential is an exp2.
const LOG2E: f32 = 1.4426950408889634;
const LN2: f32 = 0.6931471805599453;

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
    var qs: array<vec4<f32>, 64>;   // [TQ][D4]
    var acc: array<vec4<f32>, 64>;  // [TQ][DV4]
    var m: array<f32, 4>;
    var l: array<f32, 4>;
    for (var t = 0u; t < TQ; t++) {
        let qrow = (bh * p.nq + min(i0 + 8u * t, p.nq - 1u)) * D4;
        for (var d = 0u; d < D4; d++) { qs[t * D4 + d] = q[qrow + d] * (p.scale * LOG2E); }
        for (var d = 0u; d < DV4; d++) { acc[t * DV4 + d] = vec4<f32>(0.0); }
        m[t] = NEG_INF;
        l[t] = 0.0;
    }
    let kb = bh * p.nk * D4;
    let vb = bh * p.nk * DV4;
    if (KB == 2u) {
        // Keys two at a time: one rescale of the running sums per pair.
        for (var j = 0u; j < p.nk; j += 2u) {
            let j1 = min(j + 1u, p.nk - 1u);
            let has1 = j + 1u < p.nk;
            var kc0: array<vec4<f32>, 4>;
            var kc1: array<vec4<f32>, 4>;
            for (var c = 0u; c < (D4 + 7u) / 8u; c++) {
                let o = min(c * 8u + lane, D4 - 1u);
                kc0[c] = k[kb + j * D4 + o];
                kc1[c] = k[kb + j1 * D4 + o];
            }
            var vc0: array<vec4<f32>, 4>;
            var vc1: array<vec4<f32>, 4>;
            for (var c = 0u; c < (DV4 + 7u) / 8u; c++) {
                let o = min(c * 8u + lane, DV4 - 1u);
                vc0[c] = v[vb + j * DV4 + o];
                vc1[c] = v[vb + j1 * DV4 + o];
            }
            var sv0: array<vec4<f32>, 4>;
            var sv1: array<vec4<f32>, 4>;
            for (var t = 0u; t < TQ; t++) { sv0[t] = vec4<f32>(0.0); sv1[t] = vec4<f32>(0.0); }
            for (var d = 0u; d < D4; d++) {
                let k0 = subgroupShuffle(kc0[d / 8u], src0 + d % 8u);
                let k1 = subgroupShuffle(kc1[d / 8u], src0 + d % 8u);
                for (var t = 0u; t < TQ; t++) {
                    sv0[t] = fma(qs[t * D4 + d], k0, sv0[t]);
                    sv1[t] = fma(qs[t * D4 + d], k1, sv1[t]);
                }
            }
            var corr: array<f32, 4>;
            var p0: array<f32, 4>;
            var p1: array<f32, 4>;
            for (var t = 0u; t < TQ; t++) {
                let s0 = (sv0[t].x + sv0[t].y) + (sv0[t].z + sv0[t].w);
                let s1 = select(NEG_INF, (sv1[t].x + sv1[t].y) + (sv1[t].z + sv1[t].w), has1);
                let mn = max(m[t], max(s0, s1));
                corr[t] = exp2(m[t] - mn);
                p0[t] = exp2(s0 - mn);
                p1[t] = exp2(s1 - mn);
                l[t] = l[t] * corr[t] + p0[t] + p1[t];
                m[t] = mn;
            }
            for (var d = 0u; d < DV4; d++) {
                let v0 = subgroupShuffle(vc0[d / 8u], src0 + d % 8u);
                let v1 = subgroupShuffle(vc1[d / 8u], src0 + d % 8u);
                for (var t = 0u; t < TQ; t++) {
                    acc[t * DV4 + d] = fma(acc[t * DV4 + d], vec4<f32>(corr[t]), fma(vec4<f32>(p0[t]), v0, p1[t] * v1));
                }
            }
        }
    } else {
        for (var j = 0u; j < p.nk; j++) {
            var kc: array<vec4<f32>, 4>;
            for (var c = 0u; c < (D4 + 7u) / 8u; c++) { kc[c] = k[kb + j * D4 + min(c * 8u + lane, D4 - 1u)]; }
            var vc: array<vec4<f32>, 4>;
            for (var c = 0u; c < (DV4 + 7u) / 8u; c++) { vc[c] = v[vb + j * DV4 + min(c * 8u + lane, DV4 - 1u)]; }
            var sv: array<vec4<f32>, 4>;
            for (var t = 0u; t < TQ; t++) { sv[t] = vec4<f32>(0.0); }
            for (var d = 0u; d < D4; d++) {
                let kv = subgroupShuffle(kc[d / 8u], src0 + d % 8u);
                for (var t = 0u; t < TQ; t++) { sv[t] = fma(qs[t * D4 + d], kv, sv[t]); }
            }
            var corr: array<f32, 4>;
            var pj: array<f32, 4>;
            for (var t = 0u; t < TQ; t++) {
                let s = (sv[t].x + sv[t].y) + (sv[t].z + sv[t].w);
                let mn = max(m[t], s);
                corr[t] = exp2(m[t] - mn);
                pj[t] = exp2(s - mn);
                l[t] = l[t] * corr[t] + pj[t];
                m[t] = mn;
            }
            for (var d = 0u; d < DV4; d++) {
                let vv = subgroupShuffle(vc[d / 8u], src0 + d % 8u);
                for (var t = 0u; t < TQ; t++) { acc[t * DV4 + d] = fma(acc[t * DV4 + d], vec4<f32>(corr[t]), pj[t] * vv); }
            }
        }
    }
    for (var t = 0u; t < TQ; t++) {
        let i = i0 + 8u * t;
        if (live && i < p.nq) {
            let inv = 1.0 / l[t];
            let orow = (bh * p.nq + i) * DV4;
            for (var d = 0u; d < DV4; d++) { out[orow + d] = acc[t * DV4 + d] * inv; }
            lse[bh * p.nq + i] = (m[t] + log2(l[t])) * LN2;
        }
    }
}
