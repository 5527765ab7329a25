// Group normalisation (Wu & He 2018) over x: [B, C, S] (S = product of spatial dims):
//   for each (b, g): mean = E[x], var = E[(x - mean)^2] over the C/G channels of group g and
//   all S positions; y = (x - mean) * rstd * gamma[c] + beta[c], rstd = 1 / sqrt(var + eps).
// One workgroup per (b, g); two passes over the group (mean, then centred variance) for
// accuracy; mean and rstd are also written ([B, G]) for the backward pass.
// Bindings: 0 params, 1 x, 2 gamma [C], 3 beta [C], 4 y, 5 stats [B*G*2] (mean, rstd).

struct Params { batch: u32, c: u32, s: u32, groups: u32, eps: f32, count: u32, p1: u32, p2: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;

const WG: u32 = 256u;
var<workgroup> part: array<f32, WG>;

fn tree_sum(v: f32, l: u32) -> f32 {
    part[l] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (l < s) { part[l] += part[l + s]; }
        workgroupBarrier();
    }
    let total = part[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(WG)
fn group_norm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let id = min(wg.y * nwg.x + wg.x, p.count - 1u); // (b, g), uniform
    let cpg = p.c / p.groups;
    let count = cpg * p.s;
    let base = id * count; // channels of a group are contiguous in NCHW
    var s = 0.0;
    for (var i = lid.x; i < count; i += WG) { s += x[base + i]; }
    let mean = tree_sum(s, lid.x) / f32(count);
    var v = 0.0;
    for (var i = lid.x; i < count; i += WG) { let d = x[base + i] - mean; v += d * d; }
    let rstd = inverseSqrt(tree_sum(v, lid.x) / f32(count) + p.eps);
    let c0 = (id % p.groups) * cpg;
    for (var i = lid.x; i < count; i += WG) {
        let c = c0 + i / p.s;
        y[base + i] = (x[base + i] - mean) * rstd * gamma[c] + beta[c];
    }
    if (lid.x == 0u && wg.y * nwg.x + wg.x < p.count) {
        stats[id * 2u] = mean;
        stats[id * 2u + 1u] = rstd;
    }
}

// Fused group norm of the graph (ops GroupNorm and GroupNormBwd, src/ops/norm.rs): a
// coefficient kernel with one invocation per (b, g) row (no workgroup tree: a barrier is a
// coroutine switch per SIMD row on CPU implementations), then one element-wise pass.
//   gn_coef:     coef[b, c] = (a, s, mean, rstd) with a = rstd gamma[c], s = beta[c] - mean a,
//                so that y = x a + s.
//   gn_bwd_coef: with s1 = sum gy gamma, s2 = sum gy gamma xhat over the row (n elements),
//                gx = rstd (gy gamma - s1 / n - xhat s2 / n) = gy A + x B + C: coef[b, c] =
//                (A = rstd gamma[c], B = -rstd^2 s2 / n, C = -rstd s1 / n + mean rstd^2 s2 / n).
//   gn_apply4:   out = x k.x + k.y (forward) or gy k.x + x k.y + k.z (BWD), k = coef[i / HW],
//                four elements per invocation.
// Bindings: 0 params (batch, c, s = H*W, groups, eps, rows = B*G), coefficient kernels: 1 x,
// 2 gamma, 3 beta or gy, 4 coef; gn_apply4: 1 x, 2 coef, 3 gy (x when not BWD), 5 out.
@group(0) @binding(3) var<storage, read> gy_in: array<f32>;
@group(0) @binding(4) var<storage, read_write> coef: array<vec4<f32>>;

// Mean and rstd of row `id` (two passes: the centred sum of squares stays accurate).
// The row loops take 64 elements per iteration (written out when the pipeline is built):
// llvmpipe ends every loop of an invocation once all its loops together have run 65,535
// iterations, so a row of n elements must cost well under that (2n / 64 forward, 3n / 64 with
// the gradient; src/ops/norm.rs refuses what would still loop too long on a CPU adapter).
fn row_stats(base: u32, n: u32) -> vec2<f32> {
    let n64 = n / 64u * 64u;
    var s = 0.0;
    for (var t = 0u; t < n64; t += 64u) {
        for (var u = 0u; u < 64u; u++) { // @unroll
            s += x[base + t + u];
        }
    }
    for (var t = n64; t < n; t++) { s += x[base + t]; }
    let mean = s / f32(n);
    var v = 0.0;
    for (var t = 0u; t < n64; t += 64u) {
        for (var u = 0u; u < 64u; u++) { // @unroll
            let d = x[base + t + u] - mean;
            v += d * d;
        }
    }
    for (var t = n64; t < n; t++) { let d = x[base + t] - mean; v += d * d; }
    return vec2<f32>(mean, inverseSqrt(v / f32(n) + p.eps));
}

// Row `id` = (b, group) of the fused kernels: its first element and length (the group's
// channels are contiguous in NCHW), channels per group, first channel, batch index and
// statistics (mean, rstd).
struct GnRow { base: u32, n: u32, cpg: u32, c0: u32, b: u32, ms: vec2<f32> }
fn gn_row(id: u32) -> GnRow {
    let cpg = p.c / p.groups;
    let n = cpg * p.s;
    return GnRow(id * n, n, cpg, (id % p.groups) * cpg, id / p.groups, row_stats(id * n, n));
}

@compute @workgroup_size(64)
fn gn_coef(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
    let id = (wg.y * nwg.x + wg.x) * 64u + lid.x;
    if (id >= p.count) { return; }
    let r = gn_row(id);
    for (var j = 0u; j < r.cpg; j++) {
        let c = r.c0 + j;
        let a = r.ms.y * gamma[c];
        coef[r.b * p.c + c] = vec4<f32>(a, beta[c] - r.ms.x * a, r.ms.x, r.ms.y);
    }
}

@compute @workgroup_size(64)
fn gn_bwd_coef(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let id = (wg.y * nwg.x + wg.x) * 64u + lid.x;
    if (id >= p.count) { return; }
    let r = gn_row(id);
    var s1 = 0.0;
    var s2 = 0.0;
    let s64 = p.s / 64u * 64u;
    for (var j = 0u; j < r.cpg; j++) {
        let gm = gamma[r.c0 + j];
        let row = r.base + j * p.s;
        for (var t = 0u; t < s64; t += 64u) {
            for (var u = 0u; u < 64u; u++) { // @unroll
                let gg = gy_in[row + t + u] * gm;
                s1 += gg;
                s2 += gg * (x[row + t + u] - r.ms.x);
            }
        }
        for (var t = s64; t < p.s; t++) {
            let gg = gy_in[row + t] * gm;
            s1 += gg;
            s2 += gg * (x[row + t] - r.ms.x);
        }
    }
    let rstd = r.ms.y;
    s2 *= rstd; // sum gy gamma xhat
    let nf = f32(r.n);
    let bx = -rstd * rstd * s2 / nf;
    let cc = -rstd * s1 / nf + r.ms.x * rstd * rstd * s2 / nf;
    for (var j = 0u; j < r.cpg; j++) {
        let c = r.c0 + j;
        coef[r.b * p.c + c] = vec4<f32>(rstd * gamma[c], bx, cc, 0.0);
    }
}

@group(0) @binding(1) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> coef_r: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> gy4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> out4: array<vec4<f32>>;
override BWD: bool = false;
override GHW: u32 = 4u; // H * W: element i has coefficients coef[i / GHW]

fn gn_one(k: vec4<f32>, xv: f32, gv: f32) -> f32 {
    if (BWD) { return gv * k.x + xv * k.y + k.z; }
    return xv * k.x + k.y;
}

@compute @workgroup_size(256)
fn gn_apply4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * 256u + lid.x;
    if (i >= p.count) { return; } // count = elements / 4 here
    let xv = x4[i];
    let gv = gy4[i];
    var r: vec4<f32>;
    if (GHW % 4u == 0u) {
        let k = coef_r[4u * i / GHW];
        if (BWD) { r = gv * k.x + xv * k.y + k.z; } else { r = xv * k.x + k.y; }
    } else {
        for (var e = 0u; e < 4u; e++) { // @unroll
            r[e] = gn_one(coef_r[(4u * i + e) / GHW], xv[e], gv[e]);
        }
    }
    out4[i] = r;
}

// gn_apply4 one element per invocation, for element counts that are not whole vec4s
// (bindings 1 x, 2 coef, 3 gy, 5 out, all f32 but coef).
@compute @workgroup_size(256)
fn gn_apply(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * 256u + lid.x;
    if (i >= p.count) { return; }
    stats[i] = gn_one(coef_r[i / GHW], x[i], gy_in[i]);
}
