// Annealed MCMC steps with a per-chain Metropolis test on the GPU (src/sample/mcmc.rs builds the
// programs): MALA, HMC and unadjusted HMC, the test by the model's energy or, for score-only
// models, by the trapezoid rule along x -> x' (Sjoberg et al. 2023); AIS weights per chain.
//
// Per-chain state: state = [xc | sc] (the current point and its score, [B, D] each), mom = [v | vr]
// (momentum and the refreshed momentum of the trajectory), xp [B, D] (the proposal while the line
// integral runs), chain [B, CH] with CH = 4 + LEVELS: (ec: current energy, line: the line
// integral so far, scale: the chain's step multiplier (adaptation), logw: AIS log weight, then the
// accepted proposals at each MCMC level). Row k of the schedule: sched[8k ..] = (sigma, -, h,
// level, a, b, -, -); a chain's step is h * scale.
//   cache (after the model ran at x, sigma): AIS (a = 1: logw += ec - e, the new level's energy
//          against the old one's at the same point; a = 2: logw = -e - log N(x; u, b^2 I), the
//          first level against the prior, u its mean); then xc, sc, ec <- x, s, e.
//   propose (MALA, no evaluation): x <- xc + h sc + sqrt(2 h) z.
//   hmc_start (no evaluation): v <- k v + sqrt(1 - k^2) sqrt(MASS) z with k = DAMP (a = 1, the
//          level's first transition: k = 0, a fresh momentum as in Du et al.), vr <- v,
//          v <- v + h/2 sc, x <- xc + h v / MASS.
//   hmc_leap (after an evaluation at x): v <- v + h s, x <- x + h v / MASS.
//   line_start (no evaluation): xp <- x, line <- 0, x <- xc + a (xp - xc).
//   line_step (after an evaluation at x): line += b s . (xp - xc); x <- xc + a (xp - xc).
//   mala_accept / hmc_accept (after the model ran at the proposal x; one thread per chain):
//          d = log p(x') - log p(xc) = -(e - ec), or (TRAPEZOID) line + b (sc + s) . (x - xc);
//          MALA: log a = d - |xc - x - h s|^2 / 4h + |x - xc - h sc|^2 / 4h (the proposal
//          N(x + h s(x), 2h I) both ways); HMC: v <- v + h/2 s, log a = d - (|v|^2 - |vr|^2) / 2 MASS.
//          Accepted when log u < log a (u ~ U(0, 1): word 0 of the block with counter (k, 1) of
//          the chain's stream; UNADJUSTED: always): xc, sc, ec <- x, s, e and the level's count
//          += 1; else x <- xc and (HMC) v <- -vr (the refreshed momentum, negated: Horowitz's
//          generalised HMC, exact with partial refresh; Du et al. keep vr unnegated, which biases
//          the chain when DAMP > 0).
//          TARGET > 0: scale <- scale (1 + 0.02 (min(1, a) - TARGET)) (per chain, so a chain
//          never depends on the others).
// Noise z: sampler_common.wgsl's `noise`, so chain i's numbers depend only on (seed, i, k).
// Bindings: 0 params, 1 sched, 2 ctr [1] u32, 3 x, 4 s [B, D], 5 e [B], 6 state, 7 chain,
// 8 mom, 9 xp, 10 u [B, D]; each entry point binds at most 8 storage buffers.

@group(0) @binding(1) var<storage, read> sched: array<f32>;
@group(0) @binding(2) var<storage, read_write> ctr: array<u32>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;
@group(0) @binding(4) var<storage, read> s: array<f32>;
@group(0) @binding(5) var<storage, read> e: array<f32>;
@group(0) @binding(6) var<storage, read_write> state: array<f32>;
@group(0) @binding(7) var<storage, read_write> chain: array<f32>;
@group(0) @binding(8) var<storage, read_write> mom: array<f32>;
@group(0) @binding(9) var<storage, read_write> xp: array<f32>;
@group(0) @binding(10) var<storage, read> u: array<f32>;

override LEVELS: u32 = 1u;
override DAMP: f32 = 0.0;
override MASS: f32 = 1.0;
override TARGET: f32 = 0.0;
override UNADJUSTED: bool = false;
override TRAPEZOID: bool = false;

const EC: u32 = 0u;
const LINE: u32 = 1u;
const SCALE: u32 = 2u;
const LOGW: u32 = 3u;

fn ch(r: u32, col: u32) -> u32 {
    return r * (4u + LEVELS) + col;
}

fn row(k: u32, col: u32) -> f32 {
    return sched[k * 8u + col];
}

// The chain's step at row k.
fn step_of(k: u32, r: u32) -> f32 {
    return row(k, 2u) * chain[ch(r, SCALE)];
}

// One thread per chain: AIS weight, then the chain's current state.
@compute @workgroup_size(WG)
fn cache(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = index(wg, lid);
    if (r >= p.b) { return; }
    let k = ctr[0];
    let mode = row(k, 4u);
    if (mode == 1.0) {
        chain[ch(r, LOGW)] += chain[ch(r, EC)] - e[r];
    } else if (mode == 2.0) {
        let sd = row(k, 5u);
        var q = 0.0;
        for (var j = 0u; j < p.d; j++) {
            let t = (x[r * p.d + j] - u[r * p.d + j]) / sd;
            q += t * t;
        }
        let log_q = -0.5 * q - f32(p.d) * (log(sd) + 0.9189385);
        chain[ch(r, LOGW)] = -e[r] - log_q;
    }
    for (var j = 0u; j < p.d; j++) {
        let i = r * p.d + j;
        state[i] = x[i];
        state[p.n + i] = s[i];
    }
    chain[ch(r, EC)] = e[r];
}

@compute @workgroup_size(WG)
fn propose(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, lid);
    if (i >= p.n) { return; }
    let k = ctr[0];
    let h = step_of(k, i / p.d);
    x[i] = state[i] + h * state[p.n + i] + sqrt(2.0 * h) * noise(i / p.d, i % p.d, k);
}

@compute @workgroup_size(WG)
fn hmc_start(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, lid);
    if (i >= p.n) { return; }
    let k = ctr[0];
    let h = step_of(k, i / p.d);
    let keep = select(DAMP, 0.0, row(k, 4u) == 1.0);
    let fresh = keep * mom[i] + sqrt((1.0 - keep * keep) * MASS) * noise(i / p.d, i % p.d, k);
    mom[p.n + i] = fresh;
    let v = fresh + 0.5 * h * state[p.n + i];
    mom[i] = v;
    x[i] = state[i] + h * v / MASS;
}

@compute @workgroup_size(WG)
fn hmc_leap(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, lid);
    if (i >= p.n) { return; }
    let h = step_of(ctr[0], i / p.d);
    let v = mom[i] + h * s[i];
    mom[i] = v;
    x[i] = x[i] + h * v / MASS;
}

@compute @workgroup_size(WG)
fn line_start(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, lid);
    if (i >= p.n) { return; }
    let t = row(ctr[0], 4u);
    let to = x[i];
    xp[i] = to;
    x[i] = state[i] + t * (to - state[i]);
    if (i % p.d == 0u) {
        chain[ch(i / p.d, LINE)] = 0.0;
    }
}

// One thread per chain (the dot product over D, then the next point).
@compute @workgroup_size(WG)
fn line_step(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = index(wg, lid);
    if (r >= p.b) { return; }
    let k = ctr[0];
    let t = row(k, 4u);
    var dot = 0.0;
    for (var j = 0u; j < p.d; j++) {
        let i = r * p.d + j;
        let dx = xp[i] - state[i];
        dot += s[i] * dx;
        x[i] = state[i] + t * dx;
    }
    chain[ch(r, LINE)] += row(k, 5u) * dot;
}

// log p(x') - log p(xc) for chain r, the model having run at x = x'.
fn log_ratio(r: u32, k: u32) -> f32 {
    if (!TRAPEZOID) {
        return -(e[r] - chain[ch(r, EC)]);
    }
    var ends = 0.0;
    for (var j = 0u; j < p.d; j++) {
        let i = r * p.d + j;
        ends += (state[p.n + i] + s[i]) * (x[i] - state[i]);
    }
    return chain[ch(r, LINE)] + row(k, 5u) * ends;
}

// The test's outcome for chain r at row k, with the step adaptation and the level's count.
fn decide(r: u32, k: u32, log_a: f32) -> bool {
    let w = philox(vec4<u32>(k, 1u, p.chain0 + r, p.stream_hi), vec2<u32>(p.seed_lo, p.seed_hi));
    // A NaN energy or proposal is never accepted.
    let ok = UNADJUSTED || log(to_unit(w.x)) < log_a;
    if (TARGET > 0.0) {
        var a = min(1.0, exp(log_a));
        if (!(a >= 0.0)) { a = 0.0; }
        chain[ch(r, SCALE)] *= 1.0 + 0.02 * (a - TARGET);
    }
    if (ok) {
        let at = ch(r, 4u + u32(row(k, 3u)));
        chain[at] = chain[at] + 1.0;
        // (e is a zero buffer for models without an energy.)
        chain[ch(r, EC)] = e[r];
    }
    return ok;
}

@compute @workgroup_size(WG)
fn mala_accept(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = index(wg, lid);
    if (r >= p.b) { return; }
    let k = ctr[0];
    let h = step_of(k, r);
    var fwd = 0.0;
    var bwd = 0.0;
    for (var j = 0u; j < p.d; j++) {
        let i = r * p.d + j;
        let a = x[i] - state[i] - h * state[p.n + i];
        let c = state[i] - x[i] - h * s[i];
        fwd += a * a;
        bwd += c * c;
    }
    let ok = decide(r, k, log_ratio(r, k) + (fwd - bwd) / (4.0 * h));
    for (var j = 0u; j < p.d; j++) {
        let i = r * p.d + j;
        if (ok) {
            state[i] = x[i];
            state[p.n + i] = s[i];
        } else {
            x[i] = state[i];
        }
    }
}

@compute @workgroup_size(WG)
fn hmc_accept(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = index(wg, lid);
    if (r >= p.b) { return; }
    let k = ctr[0];
    let h = step_of(k, r);
    var kin = 0.0;
    for (var j = 0u; j < p.d; j++) {
        let i = r * p.d + j;
        let v = mom[i] + 0.5 * h * s[i];
        mom[i] = v;
        kin += v * v - mom[p.n + i] * mom[p.n + i];
    }
    var log_a = 0.0;
    if (!UNADJUSTED) {
        log_a = log_ratio(r, k) - kin / (2.0 * MASS);
    }
    let ok = decide(r, k, log_a);
    for (var j = 0u; j < p.d; j++) {
        let i = r * p.d + j;
        if (ok) {
            state[i] = x[i];
            state[p.n + i] = s[i];
        } else {
            x[i] = state[i];
            mom[i] = -mom[p.n + i];
        }
    }
}
