// Samples shown in an application's texture (src/embed/present.rs): images by pixel, 2-D points
// as a splatted density. `Target` is aliased before this file (src/shaders.rs) to the texture's
// storage type: rgba8unorm (display: [-1, 1] mapped to [0, 1], clamped; densities through a
// colour ramp) or rgba32float (the values themselves: an image's pixel values, a density's
// counts in r and the largest count in g). CPU reference: src/embed/reference.rs.
//
//   images: texture pixel (px, py) shows pixel (px % w, py % h) of sample
//           (py / h) * cols + px / w (all channels of grey images alike); outside the samples
//           (0, 0, 0, 1).
//   clear:  counts[0 .. width * height + 1] = 0 (the last entry holds the largest count).
//   splat:  point i lands in pixel (floor((x + lim) / (2 lim) width),
//           floor((lim - y) / (2 lim) height)) when inside; counts there += 1.
//   shade:  pixel i: count c of at most m: t = ln(1 + c) / ln(1 + m) through the ramp, or the
//           background (0.02, 0.02, 0.05) where c = 0.

struct Params {
    n: u32,
    c: u32,
    h: u32,
    w: u32,
    cols: u32,
    width: u32,
    height: u32,
    raw: u32,
    lim: f32,
    p0: u32,
    p1: u32,
    p2: u32,
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> counts: array<atomic<u32>>;
@group(0) @binding(3) var dst: Target;

fn show(v: vec4<f32>) -> vec4<f32> {
    if (p.raw == 1u) {
        return v;
    }
    return vec4<f32>(clamp((v.xyz + 1.0) * 0.5, vec3<f32>(0.0), vec3<f32>(1.0)), 1.0);
}

@compute @workgroup_size(8, 8)
fn images(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= p.width || gid.y >= p.height) {
        return;
    }
    let k = (gid.y / p.h) * p.cols + gid.x / p.w;
    var v = vec4<f32>(0.0, 0.0, 0.0, 1.0);
    if (gid.x / p.w < p.cols && k < p.n) {
        let hw = p.h * p.w;
        let at = k * p.c * hw + (gid.y % p.h) * p.w + gid.x % p.w;
        if (p.c == 3u) {
            v = show(vec4<f32>(x[at], x[at + hw], x[at + 2u * hw], 1.0));
        } else {
            v = show(vec4<f32>(x[at], x[at], x[at], 1.0));
        }
    }
    textureStore(dst, vec2<i32>(i32(gid.x), i32(gid.y)), v);
}

@compute @workgroup_size(256)
fn clear(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = gid.x + gid.y * nw.x * 256u;
    if (i <= p.width * p.height) {
        atomicStore(&counts[i], 0u);
    }
}

@compute @workgroup_size(256)
fn splat(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = gid.x + gid.y * nw.x * 256u;
    if (i >= p.n) {
        return;
    }
    let fx = floor((x[2u * i] + p.lim) / (2.0 * p.lim) * f32(p.width));
    let fy = floor((p.lim - x[2u * i + 1u]) / (2.0 * p.lim) * f32(p.height));
    if (fx >= 0.0 && fy >= 0.0 && fx < f32(p.width) && fy < f32(p.height)) {
        let c = atomicAdd(&counts[u32(fy) * p.width + u32(fx)], 1u) + 1u;
        atomicMax(&counts[p.width * p.height], c);
    }
}

fn ramp(t: f32) -> vec3<f32> {
    let stops = array<vec3<f32>, 5>(
        vec3<f32>(0.267, 0.004, 0.329),
        vec3<f32>(0.231, 0.322, 0.545),
        vec3<f32>(0.129, 0.569, 0.549),
        vec3<f32>(0.369, 0.788, 0.384),
        vec3<f32>(0.992, 0.906, 0.145),
    );
    let f = clamp(t, 0.0, 1.0) * 4.0;
    let i = min(u32(floor(f)), 3u);
    return mix(stops[i], stops[i + 1u], f - f32(i));
}

@compute @workgroup_size(8, 8)
fn shade(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= p.width || gid.y >= p.height) {
        return;
    }
    let c = atomicLoad(&counts[gid.y * p.width + gid.x]);
    let m = atomicLoad(&counts[p.width * p.height]);
    var v = vec4<f32>(f32(c), f32(m), 0.0, 1.0);
    if (p.raw == 0u) {
        v = vec4<f32>(0.02, 0.02, 0.05, 1.0);
        if (c > 0u) {
            v = vec4<f32>(ramp(log(1.0 + f32(c)) / log(1.0 + f32(m))), 1.0);
        }
    }
    textureStore(dst, vec2<i32>(i32(gid.x), i32(gid.y)), v);
}
