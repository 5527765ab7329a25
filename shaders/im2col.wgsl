// im2col with four patch elements per invocation (the vec4 form of conv2d.wgsl's im2col; see
// there for the layouts), for the GEMM lowering of convolutions (src/ops/conv.rs):
//   cols[b, k, q]  = x[b, ci, oh*S - P + kh, ow*S - P + kw]  (0 outside the image), or
//   cols[b, q, k]  (TRANSPOSED), with k = (ci * KH + kh) * KW + kw and q = oh * W_out + ow.
// An invocation writes one vec4 of cols: four consecutive q (needs H_out*W_out % 4 == 0) or,
// transposed, four consecutive k (needs C_in*KH*KW % 4 == 0). Kernel size, stride and padding
// are compile-time, so splitting k into (ci, kh, kw) costs multiplications, not divisions.
// On lavapipe this is 3x faster than one element per invocation: a vec4 store is one per-lane
// loop instead of four, and the index arithmetic (integer divisions, which a CPU does one lane
// at a time) is shared by four elements.
// Bindings: 0 params (conv2d.wgsl's; batch = images in this chunk, groups_x = first image),
// 1 x [B, C_in, H, W], 4 cols (vec4 view).

struct Params {
    batch: u32, c_in: u32, h: u32, w: u32,
    c_out: u32, kh: u32, kw: u32, stride: u32,
    pad: u32, h_out: u32, w_out: u32, groups_x: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> cols: array<vec4<f32>>;

override KH: u32 = 3u;
override KW: u32 = 3u;
override STRIDE: u32 = 1u;
override PAD: u32 = 1u;
override TRANSPOSED: bool = false;

// x at (image nb, channel ci, row oh*S - P + kh, column ow*S - P + kw), 0 outside.
fn tap(nb: u32, ci: u32, oh: u32, ow: u32, kh: u32, kw: u32) -> f32 {
    let ih = i32(oh * STRIDE + kh) - i32(PAD);
    let iw = i32(ow * STRIDE + kw) - i32(PAD);
    let inside = ih >= 0 && ih < i32(p.h) && iw >= 0 && iw < i32(p.w);
    let off = ((nb * p.c_in + ci) * p.h + u32(clamp(ih, 0, i32(p.h) - 1))) * p.w + u32(clamp(iw, 0, i32(p.w) - 1));
    return select(0.0, x[off], inside);
}

@compute @workgroup_size(64)
fn im2col4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * 64u + lid.x;
    let hwo = p.h_out * p.w_out;
    let kk = p.c_in * KH * KW;
    if (i >= p.batch * kk * hwo / 4u) { return; }
    var r: vec4<f32>;
    if (TRANSPOSED) {
        // cols[b, q, 4 k4 .. 4 k4 + 3]
        let kq = kk / 4u;
        let k0 = (i % kq) * 4u;
        let rest = i / kq;
        let q = rest % hwo;
        let nb = rest / hwo + p.groups_x;
        let oh = q / p.w_out;
        let ow = q % p.w_out;
        for (var e = 0u; e < 4u; e++) { // @unroll
            let k = k0 + e;
            r[e] = tap(nb, k / (KH * KW), oh, ow, (k / KW) % KH, k % KW);
        }
    } else {
        // cols[b, k, 4 q4 .. 4 q4 + 3]
        let hq = hwo / 4u;
        let q0 = (i % hq) * 4u;
        let rest = i / hq;
        let k = rest % kk;
        let nb = rest / kk + p.groups_x;
        let ci = k / (KH * KW);
        let kh = (k / KW) % KH;
        let kw = k % KW;
        var oh = q0 / p.w_out;
        var ow = q0 % p.w_out;
        for (var e = 0u; e < 4u; e++) { // @unroll
            r[e] = tap(nb, ci, oh, ow, kh, kw);
            ow += 1u;
            let wrap = ow == p.w_out;
            oh = select(oh, oh + 1u, wrap);
            ow = select(ow, 0u, wrap);
        }
    }
    cols[i] = r;
}
