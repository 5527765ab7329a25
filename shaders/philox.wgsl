// Philox-4x32-10 (Salmon et al. 2011) with the 32x32 -> 64-bit products built from 16-bit halves
// (WGSL has no mulhi), shared by every kernel that draws random numbers: this file is prepended
// to random.wgsl and sampler.wgsl (src/shaders.rs). Words map to floats as
//   uniform: u = (bits >> 8) * 2^-24 + 2^-25, in (0, 1), exact in f32;
//   normal:  Box-Muller on the word pairs (0, 1) and (2, 3) of a block.

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

// Standard normal number `word` (0..3) of the block r.
fn box_muller(r: vec4<u32>, word: u32) -> f32 {
    let pair = word / 2u;
    let u0 = to_unit(r[pair * 2u]);
    let u1 = to_unit(r[pair * 2u + 1u]);
    let rad = sqrt(-2.0 * log(u0));
    let th = 6.283185307179586 * u1;
    return select(rad * sin(th), rad * cos(th), word % 2u == 0u);
}
