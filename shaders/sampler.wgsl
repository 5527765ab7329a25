// Sampler updates: every sampler step of src/sample/ is one of these fused kernels, with its
// noise drawn in the kernel and its per-step scalars read from a schedule on the GPU, so that
// thousands of steps replay from one recording with no host write between them.
//
// State of chain r (row r of x, D = p.d values): x [B, D] (the model reads it), s [B, D] the
// model's score at (x, sigma_k), u, v [B, D] scratch (Heun), sigma [B] the model's noise level.
// Step k reads row k of the schedule: sched[8k..8k+8] = (sigma, cx, cs, cz, cu, cv, -, -),
// where k = ctr[0] is advanced by `tick` after each step.
//   set_sigma: sigma[r] = sched[k].sigma
//   update:    x <- cx x + cs s + cz z + cu u + cv v        (SAVE: also u <- x, v <- s, before)
// Noise z: sampler_common.wgsl's `noise`. Params, `index`: sampler_common.wgsl.
// Bindings: 0 params, 1 sched, 2 ctr [1] u32, 3 x, 4 s, 5 u, 6 v, 7 sigma.

@group(0) @binding(1) var<storage, read> sched: array<f32>;
@group(0) @binding(2) var<storage, read_write> ctr: array<u32>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;
@group(0) @binding(4) var<storage, read> s: array<f32>;
@group(0) @binding(5) var<storage, read_write> u: array<f32>;
@group(0) @binding(6) var<storage, read_write> v: array<f32>;
@group(0) @binding(7) var<storage, read_write> sigma: array<f32>;

override SAVE: bool = false;

@compute @workgroup_size(WG)
fn set_sigma(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, lid);
    if (i >= p.b) { return; }
    sigma[i] = sched[ctr[0] * 8u];
}

@compute @workgroup_size(WG)
fn update(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, lid);
    if (i >= p.n) { return; }
    let k = ctr[0];
    let base = k * 8u;
    let cx = sched[base + 1u];
    let cs = sched[base + 2u];
    let cz = sched[base + 3u];
    let cu = sched[base + 4u];
    let cv = sched[base + 5u];
    let xi = x[i];
    let si = s[i];
    // Terms with a zero coefficient are skipped, not multiplied: a prior draw (cx = cs = 0)
    // must not turn stale NaNs of a reused buffer into NaN samples.
    var acc = 0.0;
    if (cx != 0.0) { acc += cx * xi; }
    if (cs != 0.0) { acc += cs * si; }
    if (cz != 0.0) {
        acc += cz * noise(i / p.d, i % p.d, k);
    }
    if (cu != 0.0 || cv != 0.0) {
        acc += cu * u[i] + cv * v[i];
    }
    if (SAVE) {
        u[i] = xi;
        v[i] = si;
    }
    x[i] = acc;
}

@compute @workgroup_size(1)
fn tick() {
    ctr[0] = ctr[0] + 1u;
}

// Adaptive Runge-Kutta (src/sample/rk45.rs), host-controlled step size; sched holds
// (c_0 .. c_6, j, scale, w) for the stage at hand and v holds the stage derivatives K [7, n]:
//   lincomb: u <- w x + sum_j c_j K[j]
//   store_k: K[j] <- scale * s          (the derivative dx/dsigma = -sigma s)
@compute @workgroup_size(WG)
fn lincomb(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, lid);
    if (i >= p.n) { return; }
    var acc = 0.0;
    if (sched[9] != 0.0) { acc = sched[9] * x[i]; }
    for (var j = 0u; j < 7u; j++) {
        let c = sched[j];
        if (c != 0.0) { acc += c * v[j * p.n + i]; }
    }
    u[i] = acc;
}

@compute @workgroup_size(WG)
fn store_k(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, lid);
    if (i >= p.n) { return; }
    v[u32(sched[7]) * p.n + i] = sched[8] * s[i];
}
