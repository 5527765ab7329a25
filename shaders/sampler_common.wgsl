// Shared by sampler.wgsl and mcmc.wgsl (prepended after philox.wgsl): the parameter block
// (binding 0), the flat index of a folded grid, and a chain's normal noise at step k: number
// j % 4 of Philox block (counter = k * ceil(D/4) + j/4, stream = (chain0 + r, stream_hi),
// key = seed), so chain i's numbers depend only on (seed, i, k): the same for any batch split.

struct Params { n: u32, d: u32, b: u32, chain0: u32, seed_lo: u32, seed_hi: u32, stream_hi: u32, groups_x: u32 }
@group(0) @binding(0) var<uniform> p: Params;

const WG: u32 = 256u;

fn noise(r: u32, j: u32, k: u32) -> f32 {
    let blocks = (p.d + 3u) / 4u;
    let blk = k * blocks + j / 4u;
    let w = philox(vec4<u32>(blk, 0u, p.chain0 + r, p.stream_hi), vec2<u32>(p.seed_lo, p.seed_hi));
    return box_muller(w, j % 4u);
}

fn index(wg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wg.y * p.groups_x + wg.x) * WG + lid.x;
}
