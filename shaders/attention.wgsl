// Fused scaled dot-product attention with an online softmax (Milakov & Gimelshein 2018;
// the FlashAttention recurrence), self or cross:
//   out[b, h, i, :] = sum_j softmax_j(scale * q[b,h,i,:] . k[b,h,j,:]) v[b,h,j,:]
//   q: [BH, Nq, D], k: [BH, Nk, D], v: [BH, Nk, DV], out: [BH, Nq, DV] (BH = batch * heads).
// Each invocation owns TQ queries of one (b, h): it keeps the scaled queries, a running max
// m, a running normaliser l and an unnormalised output row per query, and streams the keys
// once; every loaded key and value element is reused by TQ queries. Any Nq, Nk; D, DV <= 128
// and TQ * max(D, DV) <= 256 (pipeline constants). Optionally writes logsumexp [BH, Nq] for
// the backward pass.
// Bindings: 0 params, 1 q, 2 k, 3 v, 4 out, 5 lse.

struct Params { bh: u32, nq: u32, nk: u32, scale: f32, q_blocks: u32, groups_x: u32, q_chunk: u32, pad: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;

override D: u32 = 64u;
override DV: u32 = 64u;
override TQ: u32 = 2u;
const WG: u32 = 64u;
const NEG_INF: f32 = -3.4028235e38;

@compute @workgroup_size(WG)
fn attention(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = (wg.y * nwg.x + wg.x) * WG + lid.x; // (bh, query block)
    if (t >= p.bh * p.q_blocks) { return; }
    let bh = t / p.q_blocks;
    let i0 = (t % p.q_blocks) * TQ;
    var qs: array<f32, 256>;
    var acc: array<f32, 256>;
    var m: array<f32, 8>;
    var l: array<f32, 8>;
    var rows: array<u32, 8>;
    for (var a = 0u; a < TQ; a++) {
        rows[a] = min(i0 + a, p.nq - 1u);
        m[a] = NEG_INF;
        l[a] = 0.0;
        for (var d = 0u; d < D; d++) { qs[a * D + d] = q[(bh * p.nq + rows[a]) * D + d] * p.scale; }
        for (var d = 0u; d < DV; d++) { acc[a * DV + d] = 0.0; }
    }
    let kb = bh * p.nk * D;
    let vb = bh * p.nk * DV;
    for (var j = 0u; j < p.nk; j++) {
        var s: array<f32, 8>;
        for (var a = 0u; a < TQ; a++) { s[a] = 0.0; }
        for (var d = 0u; d < D; d++) {
            let kv = k[kb + j * D + d];
            for (var a = 0u; a < TQ; a++) { s[a] = fma(qs[a * D + d], kv, s[a]); }
        }
        var pj: array<f32, 8>;
        var corr: array<f32, 8>;
        for (var a = 0u; a < TQ; a++) {
            let mn = max(m[a], s[a]);
            corr[a] = exp(m[a] - mn);
            pj[a] = exp(s[a] - mn);
            l[a] = l[a] * corr[a] + pj[a];
            m[a] = mn;
        }
        for (var d = 0u; d < DV; d++) {
            let vv = v[vb + j * DV + d];
            for (var a = 0u; a < TQ; a++) { acc[a * DV + d] = fma(acc[a * DV + d], corr[a], pj[a] * vv); }
        }
    }
    for (var a = 0u; a < TQ; a++) {
        if (i0 + a >= p.nq) { break; }
        let inv = 1.0 / l[a];
        for (var d = 0u; d < DV; d++) { out[(bh * p.nq + i0 + a) * DV + d] = acc[a * DV + d] * inv; }
        lse[bh * p.nq + i0 + a] = m[a] + log(l[a]);
    }
}
