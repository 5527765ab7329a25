// Fused attention, subgroup variant (same maths, bindings and outputs as attention.wgsl):
//   out[b, h, i, :] = sum_j softmax_j(scale * q[b,h,i,:] . k[b,h,j,:]) v[b,h,j,:]
// Eight neighbouring invocations own 8 * TQ queries of the same (b, h) (invocation l has
// queries l, l + 8, ..., TQ of them) and walk the keys together, KB (2 or 4) per step: one
// rescale and one write-back of the running output sums per step (src/ops/attention.rs,
// kb_for). For key j, invocation l loads the vec4s l, l + 8, ... of k_j and
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
// Bindings and constants: attention_io.wgsl; the online-softmax step: attention_online.wgsl.

override SG8: bool = false;

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
    for (var j = 0u; j < p.nk; j += KB) {
        // This invocation's eighth of the step's key and value rows (keys past Nk repeat the
        // last one; their weights are zero).
        var kc: array<array<vec4<f32>, 4>, MAX_KB>;
        var vc: array<array<vec4<f32>, 4>, MAX_KB>;
        for (var b = 0u; b < KB; b++) { // @unroll
            let jb = min(j + b, p.nk - 1u);
            for (var c = 0u; c < (D4 + 7u) / 8u; c++) { // @unroll
                kc[b][c] = k[kb + jb * D4 + min(c * 8u + lane, D4 - 1u)];
            }
            for (var c = 0u; c < (DV4 + 7u) / 8u; c++) { // @unroll
                vc[b][c] = v[vb + jb * DV4 + min(c * 8u + lane, DV4 - 1u)];
            }
        }
        // Scores: every invocation receives the key rows' vec4 d by shuffle and uses it at once.
        var s: array<array<f32, MAX_KB>, MAX_TQ>;
        for (var d = 0u; d < D4; d++) { // @unroll
            var kd: array<vec4<f32>, MAX_KB>;
            for (var b = 0u; b < KB; b++) { // @unroll
                kd[b] = subgroupShuffle(kc[b][d / 8u], src0 + d % 8u);
            }
            for (var t = 0u; t < TQ; t++) { // @unroll
                for (var b = 0u; b < KB; b++) { // @unroll
                    s[t][b] += dot(qs[t][d], kd[b]);
                }
            }
        }
        let w = online_step(s, &ml, j);
        for (var d = 0u; d < DV4; d++) { // @unroll
            var vd: array<vec4<f32>, MAX_KB>;
            for (var b = 0u; b < KB; b++) { // @unroll
                vd[b] = subgroupShuffle(vc[b][d / 8u], src0 + d % 8u);
            }
            for (var t = 0u; t < TQ; t++) { // @unroll
                acc[t][d] = mix_values(acc[t][d], w[t], vd);
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
