// Fused attention over few keys (Nk <= 64), same maths, bindings and outputs as attention.wgsl:
//   out[b, h, i, :] = sum_j softmax_j(scale * q[b,h,i,:] . k[b,h,j,:]) v[b,h,j,:]
// Eight neighbouring invocations hold all keys and values of one (b, h) and walk a chunk of
// its queries. Invocation l keeps the whole key rows l, l + 8, ... ((NK + 7) / 8 slots) and,
// of every value row, the vec4s l, l + 8, ... (its share of the output row). Per query the
// eight lanes receive the query row by subgroupShuffle, score their own keys, share their
// maxima and then their probabilities by shuffles, and each forms its share of the output: an
// exact softmax, and nothing carried from one query to the next. (attention_sg.wgsl carries the
// output sums from one key step to the next; on CPU implementations every write of a
// loop-carried value is a masked blend, a load and a store. Here each element of k, v, q and
// out is loaded or stored once per (b, h) and chunk, which on lavapipe, where every storage
// access is a loop over the SIMD lanes, is most of the time.)
// Every loop over keys and head dimensions is marked `@unroll` and written out when the
// pipeline is built (src/shaders.rs, `specialise`), so that every array index is a constant;
// one pipeline per key count NK.
// Needs SUBGROUP, subgroups of >= 8 consecutive invocations, D and DV multiples of 4 (<= 128).
// SG8 = true when subgroups are exactly 8 wide: shuffle sources are then compile-time lanes.
// Bindings and constants: attention_io.wgsl. p.q_blocks = query chunks per (b, h), p.q_chunk =
// queries per chunk (src/ops/attention.rs, kv_chunks).

override SG8: bool = false;
override NK: u32 = 64u;   // keys, 1..64 (= p.nk)
const MAX_KT: u32 = 8u;   // key slots per invocation: (NK + 7) / 8 are used

@compute @workgroup_size(WG)
fn attention_kv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) flat: u32, @builtin(subgroup_invocation_id) sg_id: u32) {
    let lane = flat % 8u;
    var src0 = sg_id - lane;
    if (SG8) { src0 = 0u; }
    // Group of eight invocations = (bh, chunk of p.q_chunk queries).
    let group = (wg.y * nwg.x + wg.x) * (WG / 8u) + flat / 8u;
    let g = min(group, p.bh * p.q_blocks - 1u);
    let bh = g / p.q_blocks;
    let i_begin = (g % p.q_blocks) * p.q_chunk;
    var i_end = min(i_begin + p.q_chunk, p.nq);
    if (group >= p.bh * p.q_blocks) { i_end = i_begin; }
    // Key slots past Nk (in the last slot) load nothing; their scores are masked off.
    var kr: array<array<vec4<f32>, 32>, MAX_KT>;
    let kb = bh * NK * D4;
    for (var t = 0u; t < (NK + 7u) / 8u; t++) { // @unroll
        let row = kb + min(lane + 8u * t, NK - 1u) * D4;
        if ((t + 1u) * 8u <= NK || lane + 8u * t < NK) {
            for (var d = 0u; d < D4; d++) { // @unroll
                kr[t][d] = k[row + d];
            }
        }
    }
    // vr[j][c]: vec4 c * 8 + lane of value row j (the key of lane j % 8, slot j / 8).
    var vr: array<array<vec4<f32>, 4>, 64>;
    let vb = bh * NK * DV4;
    for (var j = 0u; j < NK; j++) { // @unroll
        let row = vb + j * DV4;
        for (var c = 0u; c < (DV4 + 7u) / 8u; c++) { // @unroll
            vr[j][c] = v[row + min(c * 8u + lane, DV4 - 1u)];
        }
    }
    let sc = p.scale * LOG2E;
    for (var i = i_begin; i < i_end; i++) {
        let qrow = (bh * p.nq + i) * D4;
        var qc: array<vec4<f32>, 4>;
        for (var c = 0u; c < (D4 + 7u) / 8u; c++) { // @unroll
            qc[c] = q[qrow + min(c * 8u + lane, D4 - 1u)] * sc;
        }
        var s: array<vec4<f32>, MAX_KT>;
        for (var d = 0u; d < D4; d++) { // @unroll
            let qd = subgroupShuffle(qc[d / 8u], src0 + d % 8u);
            for (var t = 0u; t < (NK + 7u) / 8u; t++) { // @unroll
                s[t] = fma(qd, kr[t][d], s[t]);
            }
        }
        var a: array<f32, MAX_KT>;
        var mx = NEG_INF;
        for (var t = 0u; t < (NK + 7u) / 8u; t++) { // @unroll
            a[t] = select(NEG_INF, (s[t].x + s[t].y) + (s[t].z + s[t].w), (t + 1u) * 8u <= NK || lane + 8u * t < NK);
            mx = max(mx, a[t]);
        }
        var m = NEG_INF;
        for (var l = 0u; l < 8u; l++) { // @unroll
            m = max(m, subgroupShuffle(mx, src0 + l));
        }
        for (var t = 0u; t < (NK + 7u) / 8u; t++) { // @unroll
            a[t] = exp2(a[t] - m);
        }
        var o: array<vec4<f32>, 4>;
        var z = 0.0;
        for (var j = 0u; j < NK; j++) { // @unroll
            let pj = subgroupShuffle(a[j / 8u], src0 + j % 8u);
            z += pj;
            for (var c = 0u; c < (DV4 + 7u) / 8u; c++) { // @unroll
                o[c] = fma(vec4<f32>(pj), vr[j][c], o[c]);
            }
        }
        let inv = 1.0 / z;
        let orow = (bh * p.nq + i) * DV4;
        for (var c = 0u; c < (DV4 + 7u) / 8u; c++) { // @unroll
            if ((c + 1u) * 8u <= DV4 || c * 8u + lane < DV4) {
                out[orow + c * 8u + lane] = o[c] * inv;
            }
        }
        if (lane == 0u) {
            lse[bh * p.nq + i] = (m + log2(z)) * LN2;
        }
    }
}
