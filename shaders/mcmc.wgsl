// Metropolis-adjusted Langevin (MALA) with a per-chain accept/reject test on the GPU, for models
// with an energy U (score = -grad U): energy networks, analytic mixtures, compositions of them.
// The program (src/sample/samplers.rs, `mala`) is rows of the sampler schedule; at a level
// sigma with step h = sched[8k + 2]:
//   cache:   after the model ran at x: xc <- x, sc <- s, ec <- e (the chain's current state)
//   propose: x <- xc + h sc + sqrt(2 h) z                     (no model evaluation)
//   accept:  after the model ran at the proposal x (s, e), per chain:
//            log a = -(e - ec) - |xc - x - h s|^2 / 4h + |x - xc - h sc|^2 / 4h
//            (the target's ratio times q(xc | x) / q(x | xc) for q(y | x) = N(x + h s(x), 2h I));
//            with u ~ U(0, 1) from the chain's stream, accept if log u < log a:
//            xc, sc, ec <- x, s, e and stats += 1; else x <- xc.
// Noise: z is sampler_common.wgsl's `noise` (as sampler.wgsl's); u is
// word 0 of the block with counter (k, 1) of the chain's stream, so chain i's numbers depend
// only on (seed, i, k). Bindings: 0 params, 1 sched, 2 ctr [1] u32, 3 x, 4 s [B, D], 5 e [B],
// 6 xc, 7 sc [B, D], 8 ec [B], 9 stats [B] (accepted proposals).

@group(0) @binding(1) var<storage, read> sched: array<f32>;
@group(0) @binding(2) var<storage, read_write> ctr: array<u32>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;
@group(0) @binding(4) var<storage, read> s: array<f32>;
@group(0) @binding(5) var<storage, read> e: array<f32>;
@group(0) @binding(6) var<storage, read_write> xc: array<f32>;
@group(0) @binding(7) var<storage, read_write> sc: array<f32>;
@group(0) @binding(8) var<storage, read_write> ec: array<f32>;
@group(0) @binding(9) var<storage, read_write> stats: array<f32>;

@compute @workgroup_size(WG)
fn cache(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, lid);
    if (i >= p.n) { return; }
    xc[i] = x[i];
    sc[i] = s[i];
    if (i % p.d == 0u) {
        ec[i / p.d] = e[i / p.d];
    }
}

@compute @workgroup_size(WG)
fn propose(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, lid);
    if (i >= p.n) { return; }
    let k = ctr[0];
    let h = sched[k * 8u + 2u];
    x[i] = xc[i] + h * sc[i] + sqrt(2.0 * h) * noise(i / p.d, i % p.d, k);
}

@compute @workgroup_size(WG)
fn accept(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = index(wg, lid);
    if (r >= p.b) { return; }
    let k = ctr[0];
    let h = sched[k * 8u + 2u];
    var fwd = 0.0;
    var bwd = 0.0;
    for (var j = 0u; j < p.d; j++) {
        let i = r * p.d + j;
        let a = x[i] - xc[i] - h * sc[i];
        let c = xc[i] - x[i] - h * s[i];
        fwd += a * a;
        bwd += c * c;
    }
    let log_a = -(e[r] - ec[r]) + (fwd - bwd) / (4.0 * h);
    let w = philox(vec4<u32>(k, 1u, p.chain0 + r, p.stream_hi), vec2<u32>(p.seed_lo, p.seed_hi));
    // A NaN energy or proposal is never accepted.
    let ok = log(to_unit(w.x)) < log_a;
    for (var j = 0u; j < p.d; j++) {
        let i = r * p.d + j;
        if (ok) {
            xc[i] = x[i];
            sc[i] = s[i];
        } else {
            x[i] = xc[i];
        }
    }
    if (ok) {
        ec[r] = e[r];
        stats[r] = stats[r] + 1.0;
    }
}
