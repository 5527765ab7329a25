// Fused attention without subgroup operations, for D and DV multiples of 4 (<= 128): the
// maths, bindings and outputs of attention.wgsl (which takes any D and DV),
//   out[b, h, i, :] = sum_j softmax_j(scale * q[b,h,i,:] . k[b,h,j,:]) v[b,h,j,:]
// with an online softmax over steps of KB keys. Each invocation owns TQ consecutive queries of
// one (b, h) and reads every key and value row itself, in vec4s, so each loaded element serves
// TQ queries (attention_sg.wgsl shares the loads among eight invocations by shuffles where
// subgroups exist). The per-query state (scaled q, running max and normaliser, output sums)
// stays in private arrays; every loop over queries, keys of a step and head dimensions is marked
// `@unroll` and written out when the pipeline is built (src/shaders.rs, `specialise`), so that
// each index is a constant and the arrays can live in registers (or, on a CPU, in L1).
// Bindings: 0 params, 1 q [BH, Nq, D], 2 k [BH, Nk, D], 3 v [BH, Nk, DV] (vec4 views),
// 4 out [BH, Nq, DV], 5 lse [BH, Nq]. p.q_blocks = ceil(Nq / TQ).

struct Params { bh: u32, nq: u32, nk: u32, scale: f32, q_blocks: u32, groups_x: u32, p0: u32, p1: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> v: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;

override D4: u32 = 16u;   // D / 4
override DV4: u32 = 16u;  // DV / 4
override TQ: u32 = 1u;    // queries per invocation, 1..MAX_TQ (src/ops/attention.rs, tq_plain)
const MAX_TQ: u32 = 8u;
override KB: u32 = 2u;    // keys per step, 1..MAX_KB
const MAX_KB: u32 = 2u;
const MAX_KB1: u32 = 3u;
const WG: u32 = 64u;
const NEG_INF: f32 = -3.4028235e38;
// Scores are kept in base 2 (q pre-scaled by log2 e) so that every exponential is an exp2.
const LOG2E: f32 = 1.4426950408889634;
const LN2: f32 = 0.6931471805599453;

@compute @workgroup_size(WG)
fn attention_v4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) flat: u32) {
    let inv = (wg.y * nwg.x + wg.x) * WG + flat; // (bh, block of TQ queries)
    if (inv >= p.bh * p.q_blocks) { return; }
    let bh = inv / p.q_blocks;
    let i0 = (inv % p.q_blocks) * TQ;
    let sc = p.scale * LOG2E;
    var qs: array<array<vec4<f32>, 32>, MAX_TQ>;
    var acc: array<array<vec4<f32>, 32>, MAX_TQ>;
    var ml: array<vec2<f32>, MAX_TQ>;
    for (var t = 0u; t < TQ; t++) { // @unroll
        let row = (bh * p.nq + min(i0 + t, p.nq - 1u)) * D4;
        for (var d = 0u; d < D4; d++) { // @unroll
            qs[t][d] = q[row + d] * sc;
        }
        ml[t] = vec2<f32>(NEG_INF, 0.0);
    }
    let kb = bh * p.nk * D4;
    let vb = bh * p.nk * DV4;
    for (var j = 0u; j < p.nk; j += KB) {
        // Keys past Nk repeat the last one; their weights are zero.
        var s: array<array<f32, MAX_KB>, MAX_TQ>;
        for (var b = 0u; b < KB; b++) { // @unroll
            let krow = kb + min(j + b, p.nk - 1u) * D4;
            for (var d = 0u; d < D4; d++) { // @unroll
                let kd = k[krow + d];
                for (var t = 0u; t < TQ; t++) { // @unroll
                    s[t][b] += dot(qs[t][d], kd);
                }
            }
        }
        // Online softmax: w[t][0] rescales the old sums, w[t][1 + b] weighs key j + b.
        var w: array<array<f32, MAX_KB1>, MAX_TQ>;
        for (var t = 0u; t < TQ; t++) { // @unroll
            var a: array<f32, MAX_KB>;
            var mx = ml[t].x;
            for (var b = 0u; b < KB; b++) { // @unroll
                a[b] = select(NEG_INF, s[t][b], j + b < p.nk);
                mx = max(mx, a[b]);
            }
            w[t][0] = exp2(ml[t].x - mx);
            var l = ml[t].y * w[t][0];
            for (var b = 0u; b < KB; b++) { // @unroll
                w[t][b + 1u] = exp2(a[b] - mx);
                l += w[t][b + 1u];
            }
            ml[t] = vec2<f32>(mx, l);
        }
        for (var d = 0u; d < DV4; d++) { // @unroll
            var vd: array<vec4<f32>, MAX_KB>;
            for (var b = 0u; b < KB; b++) { // @unroll
                vd[b] = v[vb + min(j + b, p.nk - 1u) * DV4 + d];
            }
            for (var t = 0u; t < TQ; t++) { // @unroll
                var sum = w[t][1] * vd[0];
                for (var b = 0u; b < KB - 1u; b++) { // @unroll
                    sum = fma(vec4<f32>(w[t][b + 2u]), vd[b + 1u], sum);
                }
                acc[t][d] = fma(acc[t][d], vec4<f32>(w[t][0]), sum);
            }
        }
    }
    for (var t = 0u; t < TQ; t++) { // @unroll
        let i = i0 + t;
        if (i < p.nq) {
            let r = 1.0 / ml[t].y;
            let orow = (bh * p.nq + i) * DV4;
            for (var d = 0u; d < DV4; d++) { // @unroll
                out[orow + d] = acc[t][d] * r;
            }
            lse[bh * p.nq + i] = (ml[t].x + log2(ml[t].y)) * LN2;
        }
    }
}
