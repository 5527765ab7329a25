// Counter-based random numbers: Philox-4x32-10 (Salmon et al. 2011), with the 32x32 -> 64-bit
// products built from 16-bit halves (WGSL has no mulhi). Key = seed (64 bits); counter block
// = (c_lo, c_hi, stream_lo, stream_hi) where c = counter + i / 4 (64-bit add) for element i,
// and element i takes word i % 4 of its block. So element i depends only on
// (seed, stream, counter, i): the same numbers for every dispatch size and batch split.
//   uniform: u = (bits >> 8) * 2^-24 + 2^-25, in (0, 1), exact in f32.
//   normal:  Box-Muller on the block's word pairs (0, 1) and (2, 3):
//            z0 = r cos(2 pi u1), z1 = r sin(2 pi u1), r = sqrt(-2 ln u0).
//   bits:    the raw 32-bit words (bit-identical to src/ops/random.rs's CPU generator).
// random_stepped: the same, with the counter advanced by the step count a plan keeps on the
//   GPU: counter = ctr + step * (ceil(n / 4)) where step = steps[0] (a plan replays with no
//   host write; `plan_tick` adds 1 to steps[0] after each replay).
// Bindings: 0 params, 1 out [n] (f32, or u32 bits for MODE 2), 2 steps [1] (stepped only).

struct Params { n: u32, seed_lo: u32, seed_hi: u32, stream_lo: u32, stream_hi: u32, ctr_lo: u32, ctr_hi: u32, mode: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
override MODE: u32 = 0u; // 0 uniform, 1 normal, 2 bits
const WG: u32 = 256u;

fn mulhilo(a: u32, b: u32) -> vec2<u32> {
    let al = a & 0xffffu; let ah = a >> 16u;
    let bl = b & 0xffffu; let bh = b >> 16u;
    let ll = al * bl; let hl = ah * bl; let lh = al * bh; let hh = ah * bh;
    let cross = (ll >> 16u) + (hl & 0xffffu) + lh;
    let hi = hh + (hl >> 16u) + (cross >> 16u);
    return vec2<u32>(hi, a * b);
}

fn philox(ctr: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    var c = ctr;
    var k = key;
    for (var r = 0u; r < 10u; r++) {
        let p0 = mulhilo(0xD2511F53u, c.x);
        let p1 = mulhilo(0xCD9E8D57u, c.z);
        c = vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
        k = k + vec2<u32>(0x9E3779B9u, 0xBB67AE85u);
    }
    return c;
}

fn to_unit(x: u32) -> f32 {
    return f32(x >> 8u) * 5.9604645e-8 + 2.9802322e-8;
}

@group(0) @binding(2) var<storage, read_write> steps: array<u32>;

fn draw(i: u32, ctr_lo: u32, ctr_hi: u32) {
    let blk = i / 4u;
    let lo = ctr_lo + blk;
    let hi = ctr_hi + select(0u, 1u, lo < blk);
    let r = philox(vec4<u32>(lo, hi, p.stream_lo, p.stream_hi), vec2<u32>(p.seed_lo, p.seed_hi));
    let word = i % 4u;
    if (MODE == 2u) { out[i] = r[word]; return; }
    if (MODE == 0u) { out[i] = bitcast<u32>(to_unit(r[word])); return; }
    let pair = word / 2u;
    let u0 = to_unit(r[pair * 2u]);
    let u1 = to_unit(r[pair * 2u + 1u]);
    let rad = sqrt(-2.0 * log(u0));
    let th = 6.283185307179586 * u1;
    out[i] = bitcast<u32>(select(rad * sin(th), rad * cos(th), word % 2u == 0u));
}

@compute @workgroup_size(WG)
fn random(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * WG + lid.x;
    if (i >= p.n) { return; }
    draw(i, p.ctr_lo, p.ctr_hi);
}

@compute @workgroup_size(WG)
fn random_stepped(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * WG + lid.x;
    if (i >= p.n) { return; }
    // 32-bit step count times blocks per draw, added to the 64-bit base counter.
    let adv = steps[0] * ((p.n + 3u) / 4u);
    let lo = p.ctr_lo + adv;
    draw(i, lo, p.ctr_hi + select(0u, 1u, lo < adv));
}

@compute @workgroup_size(1)
fn plan_tick() {
    steps[0] = steps[0] + 1u;
}
