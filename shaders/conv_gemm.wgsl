// Convolution as an implicit GEMM on the subgroup register-blocked kernel (matmul_sg.wgsl):
// the same blocking and A-row sharing by subgroupShuffle, but B is never written to memory;
// each B element is read from the input image where im2col would have copied it from:
//   B(k, q) = x[img, ci, oh*S - P + kh, ow*S - P + kw]   (0 outside the image)
//   with k = (ci * KH + kh) * KW + kw and q = oh * W_out + ow.
// MODE 0, forward (and the forward of a chunk with its images side by side):
//   C[z] [C_out, N] = W [C_out, K] @ B [K, N], K steps over k, columns are output pixels
//   n = (image - first) * H_out WPAD + oh WPAD + ow: N = H_out WPAD per image (z = image in
//   the chunk) or the chunk's images side by side (one z); WPAD >= W_out (see below).
// MODE 1, weight gradient of one image per z:
//   C[z] [C_out, K] = gy[img] [C_out, H_out W_out] @ B^T, steps over the pixels q, columns k.
// MODE 3, the weight gradient with row segments (stride 1, KW <= 4): columns (ci, kh, kw')
//   with kw' < 4 (kw' >= KW: padding, dropped by the caller), so that a column group is one
//   (ci, kh); steps are the pixels of rows padded to WPAD (a multiple of 4; gy reads 0 in the
//   padding), four at a time (KWL = 4): the four steps of one row segment and one column group
//   read 4 + 3 values of x instead of 16. Each z sums over IPZ images (long K, few partial
//   products to add up afterwards).
// MODE 2, input gradient of a stride-1 convolution, a convolution of gy with the kernel
// flipped and its channel axes swapped, padding KH - 1 - P: MODE 0 with the image x = gy (the
// shape constants describe that convolution) and A[ci, (co, kh, kw)] = w[co, ci, KH-1-kh,
// KW-1-kw] read in place (p.m = C_in).
// In both the B index splits into a part per column (computed once per invocation) and a part
// per step (uniform: the same for every invocation): row = ih_col + ih_step, column = iw_col
// + iw_step, offset = base_col + base_step + row * W + column. Per step an invocation loads
// 16 scalars of x (four column groups of four) instead of four vec4s of a patch matrix; on
// lavapipe that costs less than writing and reading the patch matrix (im2col) did.
// Shapes, kernel size, stride and padding are pipeline constants (divisions by constants).
// Needs SUBGROUP (as mm_sg), N a multiple of 4.
// Bindings: 0 params, 1 a (f32: w [C_out, K] or gy [B, C_out, H_out W_out]), 2 x [B, C_in, H, W]
// (f32), 3 c (vec4, read_write: += with ACCUMULATE).

struct Params {
    m: u32, n: u32, k: u32, c_img0: u32,
    a_bstride: u32, img0: u32, c_bstride: u32, groups_x: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;

override MODE: u32 = 0u;
override ACCUMULATE: bool = false;
const WG_X: u32 = 8u;
override WG_Y: u32 = 8;
override RG: u32 = 4;   // row groups of 8: TM = 8 * RG rows per invocation (<= 32)
override WG_T: u32 = 8u * WG_Y;
override PC: u32 = 1u;
override PH: u32 = 1u;
override PW: u32 = 1u;
override PHO: u32 = 1u;
override PWO: u32 = 1u;
override PKH: u32 = 3u;
override PKW: u32 = 3u;
override PS: u32 = 1u;
override PPAD: u32 = 1u;
// Steps sharing one row segment (see the main loop): KW, or 1. <= 9.
override KWL: u32 = 1u;
// MODE 3: images per z (each z sums over IPZ images).
override IPZ: u32 = 1u;
// MODE 0 / 2: columns per output row in C (W_out, or W_out rounded up to a multiple of 4 so
// that each column group's pixels share a row; the padding columns are dropped by the caller).
override WPAD: u32 = 1u;

// The per-column part of four columns 4 g .. 4 g + 3 (clamped to N - 1): row, column, offset.
struct Cols { ih: vec4<i32>, iw: vec4<i32>, base: vec4<u32> }

fn cols_of(g: u32, z: u32) -> Cols {
    var r: Cols;
    for (var e = 0u; e < 4u; e++) { // @unroll
        let n = min(4u * g + e, p.n - 1u);
        if (MODE == 0u || MODE == 2u) {
            // Column = output pixel (oh, ow) of image img0 + z + n / (H_out WPAD), rows of
            // WPAD >= W_out columns (ow >= W_out: padding, computed and dropped later).
            let q = n % (PHO * WPAD);
            let img = p.img0 + z + n / (PHO * WPAD);
            r.ih[e] = i32((q / WPAD) * PS) - i32(PPAD);
            r.iw[e] = i32((q % WPAD) * PS) - i32(PPAD);
            r.base[e] = img * PC * PH * PW;
        } else if (MODE == 3u) {
            // Column = (ci, kh, kw') with kw' < 4: a column group is one (ci, kh).
            r.ih[e] = i32((n / 4u) % PKH);
            r.iw[e] = i32(n % 4u);
            r.base[e] = (n / (4u * PKH)) * PH * PW;
        } else {
            // Column = patch index k = (ci, kh, kw).
            r.ih[e] = i32((n / PKW) % PKH);
            r.iw[e] = i32(n % PKW);
            r.base[e] = (n / (PKH * PKW)) * PH * PW;
        }
    }
    return r;
}

// B at step kk for four columns.
fn load_b(cl: Cols, sih: i32, siw: i32, sbase: u32) -> vec4<f32> {
    let ih = cl.ih + vec4<i32>(sih);
    let iw = cl.iw + vec4<i32>(siw);
    let inside = (ih >= vec4<i32>(0)) & (ih < vec4<i32>(i32(PH))) & (iw >= vec4<i32>(0)) & (iw < vec4<i32>(i32(PW)));
    let off = cl.base + vec4<u32>(sbase) + vec4<u32>(clamp(ih, vec4<i32>(0), vec4<i32>(i32(PH) - 1))) * PW
        + vec4<u32>(clamp(iw, vec4<i32>(0), vec4<i32>(i32(PW) - 1)));
    let v = vec4<f32>(x[off.x], x[off.y], x[off.z], x[off.w]);
    return select(vec4<f32>(0.0), v, inside);
}

// x at column t of a row segment of a column group (KWL > 1): the group's row ih.x + dih,
// columns from its iw.x + diw on, channel block base.x + dbase; 0 outside the image.
fn row_tap(cl: Cols, dbase: u32, dih: i32, diw: i32, t: u32) -> f32 {
    let ih = cl.ih.x + dih;
    let iw = cl.iw.x + diw + i32(t);
    let inside = ih >= 0 && ih < i32(PH) && iw >= 0 && iw < i32(PW);
    let off = cl.base.x + dbase + u32(clamp(ih, 0, i32(PH) - 1)) * PW + u32(clamp(iw, 0, i32(PW) - 1));
    return select(0.0, x[off], inside);
}

@compute @workgroup_size(WG_T, 1, 1)
fn conv_sg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) flat: u32,
           @builtin(subgroup_invocation_id) sg_id: u32) {
    let lid = vec2<u32>(flat % WG_X, flat / WG_X);
    let TM = 8u * RG;
    let src0 = sg_id - lid.x; // subgroup lane of this row's invocation 0
    let n4 = p.n / 4u;
    let a_base = (p.img0 + wg.z) * p.a_bstride;
    let c_base = (p.c_img0 + wg.z) * (p.c_bstride / 4u);
    let row0 = (wg.y * WG_Y + lid.y) * TM;
    let g0 = wg.x * WG_X * 4u + lid.x;
    var arow: array<u32, 4>;
    for (var r = 0u; r < RG; r++) {
        let row = min(row0 + lid.x + 8u * r, p.m - 1u);
        if (MODE == 2u) {
            arow[r] = row * PKH * PKW;
        } else if (MODE == 3u) {
            arow[r] = row * PHO * PWO;
        } else {
            arow[r] = a_base + row * p.k;
        }
    }
    let cl0 = cols_of(min(g0, n4 - 1u), wg.z);
    let cl1 = cols_of(min(g0 + WG_X, n4 - 1u), wg.z);
    let cl2 = cols_of(min(g0 + 2u * WG_X, n4 - 1u), wg.z);
    let cl3 = cols_of(min(g0 + 3u * WG_X, n4 - 1u), wg.z);
    // MODE 1 and 3: every step reads image img0 + z.
    var img_base = 0u;
    if (MODE == 1u || MODE == 3u) { img_base = (p.img0 + wg.z) * PC * PH * PW; }
    var acc0: array<vec4<f32>, 32>;
    var acc1: array<vec4<f32>, 32>;
    var acc2: array<vec4<f32>, 32>;
    var acc3: array<vec4<f32>, 32>;
    // The row-block loops are written out (specialise), as in matmul_sg.wgsl: a loop left
    // rolled indexes the accumulators, which then live in scratch memory.
    for (var i = 0u; i < 8u * RG; i++) { // @unroll
        acc0[i] = vec4<f32>(0.0); acc1[i] = vec4<f32>(0.0); acc2[i] = vec4<f32>(0.0); acc3[i] = vec4<f32>(0.0);
    }
    // With KWL = KW > 1 (MODE 0 or 2, stride 1, each column group's four pixels in one row):
    // the steps of one (ci, kh) share a row segment of x, 4 + KW - 1 values per column group,
    // loaded once for the KW steps (6 loads instead of 12 for 3x3).
    for (var k3 = 0u; k3 < p.k / KWL; k3++) {
        var r0: array<f32, 12>;
        var r1: array<f32, 12>;
        var r2: array<f32, 12>;
        var r3: array<f32, 12>;
        if (KWL > 1u) {
            // MODE 0 / 2: k3 = (ci, kh); MODE 3: k3 = four pixels (oh, ow0 ..) of a padded row.
            var dbase = (k3 / PKH) * PH * PW;
            var dih = i32(k3 % PKH);
            var diw = 0;
            if (MODE == 3u) {
                // Image img0 + z IPZ + k3 / (H_out WPAD / 4), then (oh, ow0) in it.
                // (max: WPAD < 4 only in pipelines of other modes, where this is dead code
                // that must still not divide by a constant 0)
                let w4 = max(WPAD / 4u, 1u);
                let per_img = PHO * w4;
                dbase = (p.img0 + wg.z * IPZ + k3 / per_img) * PC * PH * PW;
                let k4 = k3 % per_img;
                dih = i32(k4 / w4) - i32(PPAD);
                diw = i32((k4 % w4) * 4u) - i32(PPAD);
            }
            for (var t = 0u; t < KWL + 3u; t++) { // @unroll
                r0[t] = row_tap(cl0, dbase, dih, diw, t);
                r1[t] = row_tap(cl1, dbase, dih, diw, t);
                r2[t] = row_tap(cl2, dbase, dih, diw, t);
                r3[t] = row_tap(cl3, dbase, dih, diw, t);
            }
        }
        for (var kw = 0u; kw < KWL; kw++) { // @unroll
            let kk = k3 * KWL + kw;
            var sih: i32; var siw: i32; var sbase: u32;
            var a_step = kk;
            if (MODE == 2u) {
                let khf = PKH - 1u - (kk / PKW) % PKH;
                let kwf = PKW - 1u - kk % PKW;
                a_step = (kk / (PKH * PKW)) * p.m * PKH * PKW + khf * PKW + kwf;
            }
            if (MODE == 0u || MODE == 2u) {
                sih = i32((kk / PKW) % PKH);
                siw = i32(kk % PKW);
                sbase = (kk / (PKH * PKW)) * PH * PW;
            } else {
                sih = i32((kk / PWO) * PS) - i32(PPAD);
                siw = i32((kk % PWO) * PS) - i32(PPAD);
                sbase = img_base;
            }
            var b0: vec4<f32>; var b1: vec4<f32>; var b2: vec4<f32>; var b3: vec4<f32>;
            if (KWL > 1u) {
                b0 = vec4<f32>(r0[kw], r0[kw + 1u], r0[kw + 2u], r0[kw + 3u]);
                b1 = vec4<f32>(r1[kw], r1[kw + 1u], r1[kw + 2u], r1[kw + 3u]);
                b2 = vec4<f32>(r2[kw], r2[kw + 1u], r2[kw + 2u], r2[kw + 3u]);
                b3 = vec4<f32>(r3[kw], r3[kw + 1u], r3[kw + 2u], r3[kw + 3u]);
            } else {
                b0 = load_b(cl0, sih, siw, sbase);
                b1 = load_b(cl1, sih, siw, sbase);
                b2 = load_b(cl2, sih, siw, sbase);
                b3 = load_b(cl3, sih, siw, sbase);
            }
            // MODE 3: step kk is pixel (oh, ow) of a padded row of image img0 + z IPZ + kk /
            // (H_out WPAD); gy [B, C_out, H_out W_out] (p.m = C_out) is 0 in the padding.
            var a_ok = true;
            if (MODE == 3u) {
                let img = p.img0 + wg.z * IPZ + kk / (PHO * WPAD);
                let q = kk % (PHO * WPAD);
                let ow = q % WPAD;
                a_ok = ow < PWO;
                a_step = img * p.m * PHO * PWO + (q / WPAD) * PWO + min(ow, PWO - 1u);
            }
            var ag: array<f32, 4>;
            for (var r = 0u; r < RG; r++) {
                ag[r] = select(0.0, a[arow[r] + a_step], a_ok);
            }
            for (var i = 0u; i < 8u * RG; i++) { // @unroll
                let a4 = vec4<f32>(subgroupShuffle(ag[i / 8u], src0 + i % 8u));
                acc0[i] = fma(a4, b0, acc0[i]);
                acc1[i] = fma(a4, b1, acc1[i]);
                acc2[i] = fma(a4, b2, acc2[i]);
                acc3[i] = fma(a4, b3, acc3[i]);
            }
        }
    }
    for (var i = 0u; i < 8u * RG; i++) { // @unroll
        let r = row0 + i;
        if (r < p.m) {
            let o = c_base + r * n4 + g0;
            put(o, g0, acc0[i]);
            put(o + WG_X, g0 + WG_X, acc1[i]);
            put(o + 2u * WG_X, g0 + 2u * WG_X, acc2[i]);
            put(o + 3u * WG_X, g0 + 3u * WG_X, acc3[i]);
        }
    }
}

fn put(o: u32, g: u32, v: vec4<f32>) {
    if (g < p.n / 4u) {
        if (ACCUMULATE) { c[o] += v; } else { c[o] = v; }
    }
}
