// Row softmax: y[r, j] = exp(x[r, j] - max_r) / sum_j exp(x[r, j] - max_r), x: [rows, len].
// One workgroup per row: a strided pass for (max, sum) pairs combined online (as logsumexp),
// a tree in workgroup memory, then a strided write.
// Bindings: 0 params, 1 x, 2 y.

struct Params { rows: u32, len: u32, p0: u32, p1: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

const WG: u32 = 64u;
const NEG_INF: f32 = -3.4028235e38;
var<workgroup> part: array<vec2<f32>, WG>;

fn merge(u: vec2<f32>, v: vec2<f32>) -> vec2<f32> {
    let m = max(u.x, v.x);
    if (m == NEG_INF) { return vec2<f32>(m, 0.0); }
    return vec2<f32>(m, u.y * exp(u.x - m) + v.y * exp(v.x - m));
}

@compute @workgroup_size(WG)
fn softmax_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    let row_id = wg.y * nwg.x + wg.x;
    let row = min(row_id, p.rows - 1u);
    let base = row * p.len;
    var acc = vec2<f32>(NEG_INF, 0.0);
    for (var j = lid.x; j < p.len; j += WG) { acc = merge(acc, vec2<f32>(x[base + j], 1.0)); }
    part[lid.x] = acc;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (lid.x < s) { part[lid.x] = merge(part[lid.x], part[lid.x + s]); }
        workgroupBarrier();
    }
    let m = part[0].x;
    let inv = 1.0 / part[0].y;
    if (row_id >= p.rows) { return; }
    for (var j = lid.x; j < p.len; j += WG) { y[base + j] = exp(x[base + j] - m) * inv; }
}
