// Reductions along one axis. The input is viewed as [outer, len, inner] (row-major) and the
// output as [outer, inner]:
//   out[o, j] = R_{t < len} x[o, t, j]   with R = sum (OP 0), mean (1), max (2), logsumexp (3).
// logsumexp is computed online as (m, s) pairs: m = running max, s = sum exp(x - m), combined
// as m' = max(m1, m2), s' = s1 exp(m1 - m') + s2 exp(m2 - m'), so it never overflows.
//   reduce_lanes: one invocation per output, loops over len (neighbouring invocations read
//                 neighbouring j, so reads are contiguous when inner > 1).
//   reduce_tree:  one workgroup per output, WG invocations stride over len, then a tree in
//                 workgroup memory; used for long axes with few outputs.
// Bindings: 0 params, 1 x [outer*len*inner], 2 out [outer*inner].

struct Params { outer: u32, len: u32, inner: u32, n_out: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

override OP: u32 = 0u;
const WG: u32 = 256u;
const NEG_INF: f32 = -3.4028235e38;

// Accumulator (m, s): for sum/mean only s is used; for max only m.
fn acc_push(acc: vec2<f32>, v: f32) -> vec2<f32> {
    switch OP {
        case 2u: { return vec2<f32>(max(acc.x, v), 0.0); }
        case 3u: {
            let m = max(acc.x, v);
            return vec2<f32>(m, acc.y * exp(acc.x - m) + exp(v - m));
        }
        default: { return vec2<f32>(0.0, acc.y + v); }
    }
}
fn acc_merge(u: vec2<f32>, v: vec2<f32>) -> vec2<f32> {
    switch OP {
        case 2u: { return vec2<f32>(max(u.x, v.x), 0.0); }
        case 3u: {
            let m = max(u.x, v.x);
            if (m == NEG_INF) { return vec2<f32>(m, 0.0); }
            return vec2<f32>(m, u.y * exp(u.x - m) + v.y * exp(v.x - m));
        }
        default: { return vec2<f32>(0.0, u.y + v.y); }
    }
}
fn acc_final(acc: vec2<f32>) -> f32 {
    switch OP {
        case 1u: { return acc.y / f32(p.len); }
        case 2u: { return acc.x; }
        case 3u: { return acc.x + log(acc.y); }
        default: { return acc.y; }
    }
}

@compute @workgroup_size(WG)
fn reduce_lanes(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * WG + lid.x;
    if (i >= p.n_out) { return; }
    let o = i / p.inner;
    let j = i % p.inner;
    var acc = vec2<f32>(NEG_INF, 0.0);
    let base = o * p.len * p.inner + j;
    for (var t = 0u; t < p.len; t++) {
        acc = acc_push(acc, x[base + t * p.inner]);
    }
    out[i] = acc_final(acc);
}

var<workgroup> part: array<vec2<f32>, WG>;

@compute @workgroup_size(WG)
fn reduce_tree(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = wg.y * nwg.x + wg.x; // uniform across the workgroup
    let o = min(i, p.n_out - 1u) / p.inner;
    let j = min(i, p.n_out - 1u) % p.inner;
    let base = o * p.len * p.inner + j;
    var acc = vec2<f32>(NEG_INF, 0.0);
    for (var t = lid.x; t < p.len; t += WG) {
        acc = acc_push(acc, x[base + t * p.inner]);
    }
    part[lid.x] = acc;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (lid.x < s) { part[lid.x] = acc_merge(part[lid.x], part[lid.x + s]); }
        workgroupBarrier();
    }
    if (lid.x == 0u && i < p.n_out) { out[i] = acc_final(part[0]); }
}

// reduce_rows4: inner == 1 and len % 4 == 0, one invocation per output reading its row as
// vec4s (a quarter of the per-lane load loops of reduce_lanes on CPU implementations, and no
// workgroup barriers, which cost a coroutine switch per SIMD row there; W2's group-norm
// statistics: 512 rows of 3136).
@group(0) @binding(1) var<storage, read> x4: array<vec4<f32>>;
const WG4: u32 = 64u;

@compute @workgroup_size(WG4)
fn reduce_rows4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * WG4 + lid.x;
    if (i >= p.n_out) { return; }
    let l4 = p.len / 4u;
    var acc = vec2<f32>(NEG_INF, 0.0);
    for (var t = 0u; t < l4; t++) {
        let v = x4[i * l4 + t];
        acc = acc_push(acc_push(acc_push(acc_push(acc, v.x), v.y), v.z), v.w);
    }
    out[i] = acc_final(acc);
}
