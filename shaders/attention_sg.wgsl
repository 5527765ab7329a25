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
// The per-query state (scaled q, running max m, normaliser l, output row) stays in registers
// (qs, acc: [TQ][D4] arrays; a CPU implementation keeps them in L1). Every loop over queries
// and head dimensions is marked `@unroll` and written out in full when the pipeline is built
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
override TQ: u32 = 1u;    // queries per invocation, 1..MAX_TQ (src/ops/attention.rs, tq_for)
const MAX_TQ: u32 = 8u;
const WG: u32 = 64u;
const NEG_INF: f32 = -3.4028235e38;
// Scores are kept in base 2 (q pre-scaled by log2 e) so that every exponential is an exp2.
const LOG2E: f32 = 1.4426950408889634;
const LN2: f32 = 0.6931471805599453;

// One query's online-softmax step given its base-2 scores (as vec4 partial sums) against the
// step's two keys and its state ml = (running max, normaliser): the new state, and the
// rescale of the old sums with the two keys' weights.
struct Step { ml: vec2<f32>, r: vec3<f32> }
fn softmax_step(s0: vec4<f32>, s1: vec4<f32>, ml: vec2<f32>, has1: bool) -> Step {
    let a0 = (s0.x + s0.y) + (s0.z + s0.w);
    let a1 = select(NEG_INF, (s1.x + s1.y) + (s1.z + s1.w), has1);
    let mn = max(ml.x, max(a0, a1));
    let r = vec3<f32>(exp2(ml.x - mn), exp2(a0 - mn), exp2(a1 - mn));
    return Step(vec2<f32>(mn, ml.y * r.x + r.y + r.z), r);
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
    var qs: array<array<vec4<f32>, 32>, MAX_TQ>;
    var acc: array<array<vec4<f32>, 32>, MAX_TQ>;
    var ml: array<vec2<f32>, MAX_TQ>;
    for (var t = 0u; t < TQ; t++) { // @unroll
        let row = (bh * p.nq + min(i0 + 8u * t, p.nq - 1u)) * D4;
        for (var d = 0u; d < D4; d++) { // @unroll
            qs[t][d] = q[row + d] * sc;
        }
        ml[t] = vec2<f32>(NEG_INF, 0.0);
    }
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
        for (var c = 0u; c < (D4 + 7u) / 8u; c++) { // @unroll
            let o = min(c * 8u + lane, D4 - 1u);
            kc0[c] = k[kb + j * D4 + o];
            kc1[c] = k[kb + j1 * D4 + o];
        }
        for (var c = 0u; c < (DV4 + 7u) / 8u; c++) { // @unroll
            let o = min(c * 8u + lane, DV4 - 1u);
            vc0[c] = v[vb + j * DV4 + o];
            vc1[c] = v[vb + j1 * DV4 + o];
        }
        // Scores: every invocation receives the key rows' vec4 d by shuffle and uses it at once.
        var s0: array<vec4<f32>, MAX_TQ>;
        var s1: array<vec4<f32>, MAX_TQ>;
        for (var d = 0u; d < D4; d++) { // @unroll
            let k0 = subgroupShuffle(kc0[d / 8u], src0 + d % 8u);
            let k1 = subgroupShuffle(kc1[d / 8u], src0 + d % 8u);
            for (var t = 0u; t < TQ; t++) { // @unroll
                s0[t] = fma(qs[t][d], k0, s0[t]);
                s1[t] = fma(qs[t][d], k1, s1[t]);
            }
        }
        var r: array<vec3<f32>, MAX_TQ>;
        for (var t = 0u; t < TQ; t++) { // @unroll
            let st = softmax_step(s0[t], s1[t], ml[t], has1);
            ml[t] = st.ml;
            r[t] = st.r;
        }
        for (var d = 0u; d < DV4; d++) { // @unroll
            let v0 = subgroupShuffle(vc0[d / 8u], src0 + d % 8u);
            let v1 = subgroupShuffle(vc1[d / 8u], src0 + d % 8u);
            for (var t = 0u; t < TQ; t++) { // @unroll
                acc[t][d] = fma(acc[t][d], vec4<f32>(r[t].x), fma(vec4<f32>(r[t].y), v0, r[t].z * v1));
            }
        }
    }
    for (var t = 0u; t < TQ; t++) { // @unroll
        let i = i0 + 8u * t;
        if (live && i < p.nq) {
            let inv = 1.0 / ml[t].y;
            let orow = (bh * p.nq + i) * DV4;
            for (var d = 0u; d < DV4; d++) { // @unroll
                out[orow + d] = acc[t][d] * inv;
            }
            lse[bh * p.nq + i] = (ml[t].x + log2(ml[t].y)) * LN2;
        }
    }
}
