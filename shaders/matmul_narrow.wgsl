// Narrow products: C = act(A B^T + bias) for N < 8 outputs per row (a network's last layer,
// e.g. the 2-D score), where the tiled kernels waste most of a 4- or 16-wide register tile.
//   a: [batch?, M, K] as vec4 (K a multiple of 4); b: W [batch?, N, K] as vec4 (B^T, rows
//   contiguous in k, as nn::linear stores weights); c: [batch, M, N]; bias: [N] (BIAS).
// One invocation per row: per 4 k it loads one vec4 of A and N vec4s of W for 4 N
// multiply-adds, against one load per multiply-add for a 4 x 4 register tile at N = 2.
// Bindings: 0 params, 1 a, 2 b, 3 c, 4 bias (always bound; read only when BIAS).

struct Params {
    m: u32, n: u32, k: u32, batch: u32,
    a_bstride: u32, b_bstride: u32, c_bstride: u32, groups_x: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

// BIAS, ACT: matmul_epilogue.wgsl.
const WG: u32 = 64u;

@compute @workgroup_size(WG)
fn mm_narrow(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = (wg.y * p.groups_x + wg.x) * WG + lid.x;
    if (row >= p.m) { return; }
    let k4 = p.k / 4u;
    let a0 = (wg.z * p.a_bstride) / 4u + row * k4;
    let b0 = (wg.z * p.b_bstride) / 4u;
    var acc: array<vec4<f32>, 8>;
    for (var j = 0u; j < 8u; j++) { acc[j] = vec4<f32>(0.0); }
    for (var kk = 0u; kk < k4; kk++) {
        let av = a[a0 + kk];
        for (var j = 0u; j < 8u; j++) {
            if (j < p.n) { acc[j] = fma(av, b[b0 + j * k4 + kk], acc[j]); }
        }
    }
    let c0 = wg.z * p.c_bstride + row * p.n;
    for (var j = 0u; j < p.n; j++) {
        var y = acc[j].x + acc[j].y + acc[j].z + acc[j].w;
        if (BIAS) { y += bias[j]; }
        y = act1(y);
        c[c0 + j] = y;
    }
}
