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
// Bindings and constants: attention_io.wgsl; the online-softmax step: attention_online.wgsl.
// p.q_blocks = ceil(Nq / TQ) (TQ: src/ops/attention.rs, tq_plain).

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
        let w = online_step(s, &ml, j);
        for (var d = 0u; d < DV4; d++) { // @unroll
            var vd: array<vec4<f32>, MAX_KB>;
            for (var b = 0u; b < KB; b++) { // @unroll
                vd[b] = v[vb + min(j + b, p.nk - 1u) * DV4 + d];
            }
            for (var t = 0u; t < TQ; t++) { // @unroll
                acc[t][d] = mix_values(acc[t][d], w[t], vd);
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
