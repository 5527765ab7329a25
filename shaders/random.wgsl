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
// The generator itself is shaders/philox.wgsl, prepended to this file.
// Bindings: 0 params, 1 out [n] (f32, or u32 bits for MODE 2), 2 steps [1] (stepped only).

struct Params { n: u32, seed_lo: u32, seed_hi: u32, stream_lo: u32, stream_hi: u32, ctr_lo: u32, ctr_hi: u32, mode: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
override MODE: u32 = 0u; // 0 uniform, 1 normal, 2 bits
const WG: u32 = 256u;

@group(0) @binding(2) var<storage, read_write> steps: array<u32>;

fn draw(i: u32, ctr_lo: u32, ctr_hi: u32) {
    let blk = i / 4u;
    let lo = ctr_lo + blk;
    let hi = ctr_hi + select(0u, 1u, lo < blk);
    let r = philox(vec4<u32>(lo, hi, p.stream_lo, p.stream_hi), vec2<u32>(p.seed_lo, p.seed_hi));
    let word = i % 4u;
    if (MODE == 2u) { out[i] = r[word]; return; }
    if (MODE == 0u) { out[i] = bitcast<u32>(to_unit(r[word])); return; }
    out[i] = bitcast<u32>(box_muller(r, word));
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
