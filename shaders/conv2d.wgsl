// 2-D convolution, NCHW, as an implicit GEMM (no im2col buffer):
//   y[n, co, oh, ow] = bias[co] + sum_{ci, kh, kw} w[co, ci, kh, kw] * x[n, ci, ih, iw]
//   ih = oh * stride - pad + kh,  iw = ow * stride - pad + kw  (zero outside the input)
// GEMM view: M = C_out (rows of w: [C_out, C_in*KH*KW]), N = batch*H_out*W_out pixels,
// K = C_in*KH*KW. Each invocation computes TC output channels x TP consecutive pixels; the
// receptive-field origin of each pixel is computed once, then the k loop walks (ci, kh, kw).
// Bindings: 0 params, 1 x [B, C_in, H, W], 2 w [C_out, C_in, KH, KW], 3 bias [C_out]
// (ignored unless HAS_BIAS), 4 y [B, C_out, H_out, W_out].

struct Params {
    batch: u32, c_in: u32, h: u32, w: u32,
    c_out: u32, kh: u32, kw: u32, stride: u32,
    pad: u32, h_out: u32, w_out: u32, groups_x: u32,
    img0: u32, p0: u32, p1: u32, p2: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

override HAS_BIAS: bool = true;
override WG_X: u32 = 16;
override WG_Y: u32 = 4;
override TC: u32 = 4;  // output channels per invocation (<= 8)
override TP: u32 = 4;  // pixels per invocation (<= 8)

@compute @workgroup_size(WG_X, WG_Y, 1)
fn conv2d(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let n_pix = p.batch * p.h_out * p.w_out;
    let hw_out = p.h_out * p.w_out;
    let k_len = p.c_in * p.kh * p.kw;
    let co0 = (wg.y * WG_Y + lid.y) * TC;
    let px0 = (wg.z * p.groups_x + wg.x) * WG_X * TP + lid.x;
    // Pixel j of this invocation is px0 + j * WG_X (neighbouring invocations, neighbouring pixels).
    var xbase: array<u32, 8>;
    var ih0: array<i32, 8>;
    var iw0: array<i32, 8>;
    for (var j = 0u; j < TP; j++) {
        let px = min(px0 + j * WG_X, n_pix - 1u);
        let nb = px / hw_out;
        let r = px % hw_out;
        xbase[j] = nb * p.c_in * p.h * p.w;
        ih0[j] = i32((r / p.w_out) * p.stride) - i32(p.pad);
        iw0[j] = i32((r % p.w_out) * p.stride) - i32(p.pad);
    }
    var wrow: array<u32, 8>;
    for (var i = 0u; i < TC; i++) { wrow[i] = min(co0 + i, p.c_out - 1u) * k_len; }
    var acc: array<f32, 64>;
    for (var i = 0u; i < TC * TP; i++) { acc[i] = 0.0; }
    for (var ci = 0u; ci < p.c_in; ci++) {
        for (var kh = 0u; kh < p.kh; kh++) {
            for (var kw = 0u; kw < p.kw; kw++) {
                let kk = (ci * p.kh + kh) * p.kw + kw;
                var xv: array<f32, 8>;
                for (var j = 0u; j < TP; j++) {
                    let ih = ih0[j] + i32(kh);
                    let iw = iw0[j] + i32(kw);
                    let inside = ih >= 0 && ih < i32(p.h) && iw >= 0 && iw < i32(p.w);
                    let off = xbase[j] + (ci * p.h + u32(clamp(ih, 0, i32(p.h) - 1))) * p.w + u32(clamp(iw, 0, i32(p.w) - 1));
                    xv[j] = select(0.0, x[off], inside);
                }
                for (var i = 0u; i < TC; i++) {
                    let wv = wt[wrow[i] + kk];
                    for (var j = 0u; j < TP; j++) { acc[i * TP + j] = fma(wv, xv[j], acc[i * TP + j]); }
                }
            }
        }
    }
    for (var i = 0u; i < TC; i++) {
        let co = co0 + i;
        if (co >= p.c_out) { continue; }
        var b = 0.0;
        if (HAS_BIAS) { b = bias[co]; }
        for (var j = 0u; j < TP; j++) {
            let px = px0 + j * WG_X;
            if (px < n_pix) {
                let nb = px / hw_out;
                y[(nb * p.c_out + co) * hw_out + px % hw_out] = acc[i * TP + j] + b;
            }
        }
    }
}

// Adjoints of the convolution (same Params; bindings 1 gy [B, C_out, H_out, W_out], 2 w or x,
// 4 result). All three ops are derivatives of one trilinear form
//   T(x, w, y) = sum y[n, co, oh, ow] w[co, ci, kh, kw] x[n, ci, oh*s - pad + kh, ow*s - pad + kw]
// conv2d = dT/dy, conv2d_bwd_input = dT/dx, conv2d_bwd_weight = dT/dw, which is why their own
// derivatives are again these three ops (src/graph/autodiff.rs).
//   conv2d_bwd_input:  gx[n, ci, ih, iw] = sum_{co, kh, kw} gy[n, co, oh, ow] w[co, ci, kh, kw]
//                      over (oh, ow) with oh * s - pad + kh = ih (one invocation per gx element)
//   conv2d_bwd_weight: gw[co, ci, kh, kw] = sum_{n, oh, ow} gy[n, co, oh, ow] x[n, ci, ih, iw]
//                      (one invocation per gw element)
@group(0) @binding(1) var<storage, read> gy: array<f32>;
@group(0) @binding(2) var<storage, read> other: array<f32>;
@group(0) @binding(4) var<storage, read_write> res: array<f32>;

@compute @workgroup_size(64)
fn conv2d_bwd_input(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * 64u + lid.x;
    if (i >= p.batch * p.c_in * p.h * p.w) { return; }
    let iw = i % p.w;
    let ih = (i / p.w) % p.h;
    let ci = (i / (p.w * p.h)) % p.c_in;
    let nb = i / (p.w * p.h * p.c_in);
    var acc = 0.0;
    for (var kh = 0u; kh < p.kh; kh++) {
        let t = i32(ih) + i32(p.pad) - i32(kh);
        if (t < 0 || t % i32(p.stride) != 0) { continue; }
        let oh = u32(t) / p.stride;
        if (oh >= p.h_out) { continue; }
        for (var kw = 0u; kw < p.kw; kw++) {
            let u = i32(iw) + i32(p.pad) - i32(kw);
            if (u < 0 || u % i32(p.stride) != 0) { continue; }
            let ow = u32(u) / p.stride;
            if (ow >= p.w_out) { continue; }
            for (var co = 0u; co < p.c_out; co++) {
                acc = fma(gy[((nb * p.c_out + co) * p.h_out + oh) * p.w_out + ow], other[((co * p.c_in + ci) * p.kh + kh) * p.kw + kw], acc);
            }
        }
    }
    res[i] = acc;
}

@compute @workgroup_size(64)
fn conv2d_bwd_weight(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * 64u + lid.x;
    if (i >= p.c_out * p.c_in * p.kh * p.kw) { return; }
    let kw = i % p.kw;
    let kh = (i / p.kw) % p.kh;
    let ci = (i / (p.kw * p.kh)) % p.c_in;
    let co = i / (p.kw * p.kh * p.c_in);
    var acc = 0.0;
    for (var nb = 0u; nb < p.batch; nb++) {
        for (var oh = 0u; oh < p.h_out; oh++) {
            let ih = i32(oh * p.stride + kh) - i32(p.pad);
            if (ih < 0 || ih >= i32(p.h)) { continue; }
            for (var ow = 0u; ow < p.w_out; ow++) {
                let iw = i32(ow * p.stride + kw) - i32(p.pad);
                if (iw < 0 || iw >= i32(p.w)) { continue; }
                acc = fma(gy[((nb * p.c_out + co) * p.h_out + oh) * p.w_out + ow], other[((nb * p.c_in + ci) * p.h + u32(ih)) * p.w + u32(iw)], acc);
            }
        }
    }
    res[i] = acc;
}

// Lowering to GEMM (src/ops/conv/im2col.rs): the convolution's patches as a matrix.
//   im2col:  cols[b, k, q] = x[b, ci, oh*s - pad + kh, ow*s - pad + kw] (0 outside), with
//            k = (ci * KH + kh) * KW + kw and q = oh * W_out + ow; TRANSPOSED writes
//            cols[b, q, k] instead, WIDE cols[k, b, q] (the chunk's images side by side: one GEMM
//            W [C_out, K] @ cols [K, batch * H_out * W_out] for the whole chunk). Bindings 1 x,
//            4 cols.
//   col2im:  gx[b, ci, ih, iw] = sum over (kh, kw) of cols[b, k, q] at the q whose patch reads
//            (ih, iw) -- the adjoint of im2col (a gather: no atomics); WIDE reads cols[k, b, q].
//            Bindings 1 cols, 4 gx.
// Both work on a chunk of `batch` images starting at image `img0` of x (im2col) or gx
// (col2im); cols holds the chunk only.
override TRANSPOSED: bool = false;
override WIDE: bool = false; // not with TRANSPOSED
// Kernel size, stride and padding of im2col / col2im, compile-time: index arithmetic by
// constants instead of integer divisions, and the (kh, kw) loops of col2im written out.
override PKH: u32 = 3u;
override PKW: u32 = 3u;
override PS: u32 = 1u;
override PPAD: u32 = 1u;
// The shapes too (input channels, input and output height and width): every division by them
// is by a constant, a multiply and shift, where a division by a runtime value is done one lane
// at a time (8 scalar divisions per vector on lavapipe).
override PC: u32 = 1u;
override PH: u32 = 1u;
override PW: u32 = 1u;
override PHO: u32 = 1u;
override PWO: u32 = 1u;

// The input (bound at 1, read as gy) at (image nb, channel ci, row oh*S - P + kh, column
// ow*S - P + kw), 0 outside.
fn tap(nb: u32, ci: u32, oh: u32, ow: u32, kh: u32, kw: u32) -> f32 {
    let ih = i32(oh * PS + kh) - i32(PPAD);
    let iw = i32(ow * PS + kw) - i32(PPAD);
    let inside = ih >= 0 && ih < i32(PH) && iw >= 0 && iw < i32(PW);
    let off = ((nb * PC + ci) * PH + u32(clamp(ih, 0, i32(PH) - 1))) * PW + u32(clamp(iw, 0, i32(PW) - 1));
    return select(0.0, gy[off], inside);
}

@compute @workgroup_size(64)
fn im2col(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * 64u + lid.x;
    let hwo = PHO * PWO;
    let kk = PC * PKH * PKW;
    if (i >= p.batch * kk * hwo) { return; }
    var q: u32; var k: u32; var nb: u32;
    if (TRANSPOSED) {
        k = i % kk; q = (i / kk) % hwo; nb = i / (hwo * kk);
    } else if (WIDE) {
        let n = i % (p.batch * hwo); k = i / (p.batch * hwo); q = n % hwo; nb = n / hwo;
    } else {
        q = i % hwo; k = (i / hwo) % kk; nb = i / (hwo * kk);
    }
    nb += p.img0;
    res[i] = tap(nb, k / (PKW * PKH), q / PWO, q % PWO, (k / PKW) % PKH, k % PKW);
}

// im2col with four patch elements per invocation: one vec4 of cols, four consecutive q (needs
// H_out*W_out % 4 == 0; WIDE: batch*H_out*W_out % 4 == 0, the four may span two images) or,
// transposed, four consecutive k (needs C_in*KH*KW % 4 == 0). On
// lavapipe 4x faster than one element per invocation (W2: 22 ms per call against 90): a vec4
// store is one per-lane loop instead of four, and the index arithmetic (integer divisions,
// done one lane at a time on a CPU) is shared by four elements. Bindings 1 x, 4 cols (vec4).
@group(0) @binding(4) var<storage, read_write> cols4: array<vec4<f32>>;

@compute @workgroup_size(64)
fn im2col4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * 64u + lid.x;
    let hwo = PHO * PWO;
    let kk = PC * PKH * PKW;
    if (i >= p.batch * kk * hwo / 4u) { return; }
    var r: vec4<f32>;
    if (TRANSPOSED) {
        // cols[b, q, 4 k4 .. 4 k4 + 3]
        let kq = max(kk / 4u, 1u); // (max: constant operands, never a constant division by 0)
        let k0 = (i % kq) * 4u;
        let rest = i / kq;
        let q = rest % hwo;
        let nb = rest / hwo + p.img0;
        for (var e = 0u; e < 4u; e++) { // @unroll
            let k = k0 + e;
            r[e] = tap(nb, k / (PKH * PKW), q / PWO, q % PWO, (k / PKW) % PKH, k % PKW);
        }
    } else {
        // cols[b, k, 4 q4 .. 4 q4 + 3], or WIDE cols[k, 4 n4 .. 4 n4 + 3] with n = b * hwo + q
        var q0: u32; var k: u32; var nb: u32;
        if (WIDE) {
            let nq = p.batch * hwo / 4u;
            let n0 = (i % nq) * 4u;
            k = i / nq;
            q0 = n0 % hwo;
            nb = n0 / hwo;
        } else {
            let hq = max(hwo / 4u, 1u);
            q0 = (i % hq) * 4u;
            let rest = i / hq;
            k = rest % kk;
            nb = rest / kk;
        }
        nb += p.img0;
        var oh = q0 / PWO;
        var ow = q0 % PWO;
        for (var e = 0u; e < 4u; e++) { // @unroll
            r[e] = tap(nb, k / (PKH * PKW), oh, ow, (k / PKW) % PKH, k % PKW);
            ow += 1u;
            let wrap = ow == PWO;
            oh = select(oh, oh + 1u, wrap);
            ow = select(ow, 0u, wrap);
            if (WIDE) {
                let next = oh == PHO;
                nb = select(nb, nb + 1u, next);
                oh = select(oh, 0u, next);
            }
        }
    }
    cols4[i] = r;
}

@compute @workgroup_size(64)
fn col2im(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * 64u + lid.x;
    if (i >= p.batch * PC * PH * PW) { return; }
    let iw = i % PW;
    let ih = (i / PW) % PH;
    let ci = (i / (PW * PH)) % PC;
    let nb = i / (PW * PH * PC);
    let hwo = PHO * PWO;
    let kk = PC * PKH * PKW;
    var acc = 0.0;
    for (var kh = 0u; kh < PKH; kh++) { // @unroll
        let t = i32(ih) + i32(PPAD) - i32(kh);
        let oh = u32(max(t, 0)) / PS;
        let row_ok = t >= 0 && u32(t) % PS == 0u && oh < PHO;
        for (var kw = 0u; kw < PKW; kw++) { // @unroll
            let u = i32(iw) + i32(PPAD) - i32(kw);
            let ow = u32(max(u, 0)) / PS;
            if (row_ok && u >= 0 && u32(u) % PS == 0u && ow < PWO) {
                let k = (ci * PKH + kh) * PKW + kw;
                var at = (nb * kk + k) * hwo;
                if (WIDE) { at = (k * p.batch + nb) * hwo; }
                acc += gy[at + oh * PWO + ow];
            }
        }
    }
    res[i + p.img0 * PC * PH * PW] = acc;
}
