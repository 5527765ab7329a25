// Group normalisation (Wu & He 2018) over x: [B, C, S] (S = product of spatial dims):
//   for each (b, g): mean = E[x], var = E[(x - mean)^2] over the C/G channels of group g and
//   all S positions; y = (x - mean) * rstd * gamma[c] + beta[c], rstd = 1 / sqrt(var + eps).
// One workgroup per (b, g); two passes over the group (mean, then centred variance) for
// accuracy; mean and rstd are also written ([B, G]) for the backward pass.
// Bindings: 0 params, 1 x, 2 gamma [C], 3 beta [C], 4 y, 5 stats [B*G*2] (mean, rstd).

struct Params { batch: u32, c: u32, s: u32, groups: u32, eps: f32, n_wg: u32, p1: u32, p2: u32 }
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
    let id = min(wg.y * nwg.x + wg.x, p.n_wg - 1u); // (b, g), uniform
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
    if (lid.x == 0u && wg.y * nwg.x + wg.x < p.n_wg) {
        stats[id * 2u] = mean;
        stats[id * 2u + 1u] = rstd;
    }
}
