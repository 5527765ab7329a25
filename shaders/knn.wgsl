// Top-k selection for exact nearest-neighbour search (src/ops/knn.rs): after a GEMM gave the
// scores S [M, NC] of M queries against a chunk of NC database rows (inner products; L2 turns
// them into 2 q.x - |x|^2 with the rows' squared norms), one workgroup per query keeps the k
// best (score descending, index ascending on ties) of the chunk merged with the k best of the
// chunks before it.
//   Each of the WG invocations scans a strided part of the row, keeping its own sorted list
//   of at most K entries in private memory (invocation 0 starts from the previous chunks'
//   list); then k rounds of a tree reduction in workgroup memory pick the best head among the
//   invocations, whose owner advances.
// Bindings: 0 params, 1 s [M, NC], 2 norms [NC] (METRIC 1), 3 top_v [M, k], 4 top_i [M, k] u32.

struct Params { m: u32, nc: u32, k: u32, base: u32, first: u32, p0: u32, p1: u32, p2: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> s: array<f32>;
@group(0) @binding(2) var<storage, read> norms: array<f32>;
@group(0) @binding(3) var<storage, read_write> top_v: array<f32>;
@group(0) @binding(4) var<storage, read_write> top_i: array<u32>;

// 0: inner product (cosine on normalised rows); 1: L2 (larger 2 q.x - |x|^2 is nearer).
override METRIC: u32 = 0u;
const WG: u32 = 32u;
const K: u32 = 64u;
const NONE: u32 = 0xffffffffu;
const NEG_INF: f32 = -3.4028235e38;

var<workgroup> red_v: array<f32, WG>;
var<workgroup> red_i: array<u32, WG>;
var<workgroup> red_lane: array<u32, WG>;

// Whether (v, i) ranks before (w, j): larger score, then smaller index.
fn better(v: f32, i: u32, w: f32, j: u32) -> bool {
    return v > w || (v == w && i < j);
}

@compute @workgroup_size(WG)
fn select_topk(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let q = wg.x + wg.y * 65535u;
    let lane = lid.x;
    var lv: array<f32, K>;
    var li: array<u32, K>;
    var len = 0u;
    if (q < p.m) {
        if (lane == 0u && p.first == 0u) {
            for (var t = 0u; t < p.k; t++) {
                lv[t] = top_v[q * p.k + t];
                li[t] = top_i[q * p.k + t];
            }
            len = p.k;
        }
        for (var j = lane; j < p.nc; j += WG) {
            var v = s[q * p.nc + j];
            if (METRIC == 1u) {
                v = 2.0 * v - norms[j];
            }
            let idx = p.base + j;
            if (len == p.k && !better(v, idx, lv[len - 1u], li[len - 1u])) {
                continue;
            }
            // Insert in order (the last entry falls off a full list).
            var at = min(len, p.k - 1u);
            while (at > 0u && better(v, idx, lv[at - 1u], li[at - 1u])) {
                lv[at] = lv[at - 1u];
                li[at] = li[at - 1u];
                at--;
            }
            lv[at] = v;
            li[at] = idx;
            len = min(len + 1u, p.k);
        }
    }
    // k rounds: the best head among the lanes goes out, its lane advances.
    var head = 0u;
    for (var r = 0u; r < p.k; r++) {
        if (head < len) {
            red_v[lane] = lv[head];
            red_i[lane] = li[head];
        } else {
            red_v[lane] = NEG_INF;
            red_i[lane] = NONE;
        }
        red_lane[lane] = lane;
        workgroupBarrier();
        for (var half = WG / 2u; half > 0u; half /= 2u) {
            if (lane < half) {
                let o = lane + half;
                if (red_i[o] != NONE && (red_i[lane] == NONE || better(red_v[o], red_i[o], red_v[lane], red_i[lane]))) {
                    red_v[lane] = red_v[o];
                    red_i[lane] = red_i[o];
                    red_lane[lane] = red_lane[o];
                }
            }
            workgroupBarrier();
        }
        let winner = red_lane[0];
        if (lane == 0u && q < p.m) {
            top_v[q * p.k + r] = red_v[0];
            top_i[q * p.k + r] = red_i[0];
        }
        if (lane == winner && red_i[0] != NONE) {
            head++;
        }
        workgroupBarrier();
    }
}
