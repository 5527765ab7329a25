// Naive matmul, the benchmark baseline: one invocation per output, no tiling.
// C[M, N] = A[M, K] @ B[K, N], row-major f32.
struct Params { m: u32, n: u32, k: u32, pad: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let col = gid.x;
    let row = gid.y;
    if (row >= p.m || col >= p.n) { return; }
    var acc = 0.0;
    for (var k = 0u; k < p.k; k++) {
        acc += a[row * p.k + k] * b[k * p.n + col];
    }
    c[row * p.n + col] = acc;
}
