// Data movement kernels (no arithmetic):
//   upsample2x: y[n, c, i, j] = x[n, c, i / 2, j / 2]     x: [NC, H, W] -> y: [NC, 2H, 2W]
//   concat:     y[o, t, r] = t < la ? a[o, t, r] : b[o, t - la, r]
//               a: [outer, la, inner], b: [outer, lb, inner] -> y: [outer, la + lb, inner]
//               (channel concat of NCHW tensors is outer = N, inner = H*W)
//   transpose:  y[b, j, i] = x[b, i, j]      x: [batch, R, C] -> y: [batch, C, R]
//   swap_outer: y[j, i, r] = x[i, j, r]      x: [A, B, R] -> y: [B, A, R] (NCHW <-> CNHW), x read
//               from element p0 on, y written from element p1 on
//   swap_outer_crop: the same for x [A, B, H, WP] -> y [B, A, H, W], dropping columns >= W
//   downsample2x_sum: y[p, i, j] = sum of the 2x2 block x[p, 2i..2i+2, 2j..2j+2] (the adjoint
//               of upsample2x)
//   slice:      y[o, t, r] = x[o, start + t, r]  x: [outer, L, inner] -> y: [outer, len, inner]
//   pad:        y[o, t, r] = x[o, t - start, r] for start <= t < start + len, else 0 (the
//               adjoint of slice)
// One invocation per output element, folded 2-D grid.
// Bindings: 0 params, then inputs, then output.

struct Params { n: u32, d0: u32, d1: u32, d2: u32, d3: u32, x_at: u32, y_at: u32, wpad: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
const WG: u32 = 256u;
// d0..d3 again as pipeline constants (src/ops/layout.rs passes both): the index arithmetic
// divides by constants (multiply and shift) instead of runtime values, which CPU
// implementations divide one lane at a time (concat in W2: 23 ms per call before).
override D0: u32 = 1u;
override D1: u32 = 1u;
override D2: u32 = 1u;
override D3: u32 = 1u;

// d0 = H, d1 = W.
@compute @workgroup_size(WG)
fn upsample2x(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * WG + lid.x;
    if (i >= p.n) { return; }
    let w2 = D1 * 2u;
    let plane = i / (4u * D0 * D1);
    let r = i % (4u * D0 * D1);
    let yy = r / w2;
    let xx = r % w2;
    y[i] = a[(plane * D0 + yy / 2u) * D1 + xx / 2u];
}

// d0 = la, d1 = lb, d2 = inner.
@compute @workgroup_size(WG)
fn concat(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * WG + lid.x;
    if (i >= p.n) { return; }
    let len = D0 + D1;
    let o = i / (len * D2);
    let r = i % (len * D2);
    let t = r / D2;
    let c = r % D2;
    if (t < D0) {
        y[i] = a[(o * D0 + t) * D2 + c];
    } else {
        y[i] = b[(o * D1 + t - D0) * D2 + c];
    }
}

// d0 = R, d1 = C (of the input).
@compute @workgroup_size(WG)
fn transpose(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * WG + lid.x;
    if (i >= p.n) { return; }
    let plane = D0 * D1;
    let b = i / plane;
    let r = i % plane;
    let j = r / D0; // output row = input column
    let k = r % D0; // output column = input row
    y[i] = a[b * plane + k * D1 + j];
}

// d0 = A, d1 = B, d2 = R (of the input), p0 / p1 = offsets of x / y; n = A * B * R.
@compute @workgroup_size(WG)
fn swap_outer(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * WG + lid.x;
    if (i >= p.n) { return; }
    let r = i % D2;
    let rest = i / D2;
    let ia = rest % D0; // output [B, A, R]: rest = j * A + ia
    let j = rest / D0;
    y[p.y_at + i] = a[p.x_at + (ia * D1 + j) * D2 + r];
}

// swap_outer dropping padding columns: x [A, B, H, WP] -> y [B, A, H, W] (W <= WP): d0 = A,
// d1 = B, d2 = H * W, d3 = W, p2 = WP; p0 / p1 = offsets of x / y; n = A * B * H * W.
@compute @workgroup_size(WG)
fn swap_outer_crop(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * WG + lid.x;
    if (i >= p.n) { return; }
    let r = i % D2;
    let rest = i / D2;
    let ia = rest % D0;
    let j = rest / D0;
    let rs = (r / D3) * p.wpad + r % D3;
    y[p.y_at + i] = a[p.x_at + (ia * D1 + j) * (D2 / D3) * p.wpad + rs];
}

// d0 = H, d1 = W (of the output).
@compute @workgroup_size(WG)
fn downsample2x_sum(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * WG + lid.x;
    if (i >= p.n) { return; }
    let plane = i / (D0 * D1);
    let r = i % (D0 * D1);
    let yy = r / D1;
    let xx = r % D1;
    let w2 = 2u * D1;
    let base = (plane * 2u * D0 + 2u * yy) * w2 + 2u * xx;
    y[i] = (a[base] + a[base + 1u]) + (a[base + w2] + a[base + w2 + 1u]);
}

// d0 = L (of x), d1 = len, d2 = inner, d3 = start.
@compute @workgroup_size(WG)
fn slice(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * WG + lid.x;
    if (i >= p.n) { return; }
    let o = i / (D1 * D2);
    let r = i % (D1 * D2);
    y[i] = a[(o * D0 + D3 + r / D2) * D2 + r % D2];
}

// d0 = L (of y), d1 = len (of x), d2 = inner, d3 = start.
@compute @workgroup_size(WG)
fn pad(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * WG + lid.x;
    if (i >= p.n) { return; }
    let o = i / (D0 * D2);
    let r = i % (D0 * D2);
    let t = r / D2;
    var v = 0.0;
    if (t >= D3 && t < D3 + D1) { v = a[(o * D1 + t - D3) * D2 + r % D2]; }
    y[i] = v;
}

// concat and slice four elements per invocation, for inner % 4 == 0 (same D0..D3; p.n counts
// scalar elements): a vec4 load and store is one per-lane loop where four scalars are four.
@group(0) @binding(1) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y4: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn concat4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * WG + lid.x;
    if (i >= p.n / 4u) { return; }
    let in4 = max(D2 / 4u, 1u); // (max: never a constant division by 0 where D2 < 4)
    let len = D0 + D1;
    let o = i / (len * in4);
    let r = i % (len * in4);
    let t = r / in4;
    let c = r % in4;
    if (t < D0) {
        y4[i] = a4[(o * D0 + t) * in4 + c];
    } else {
        y4[i] = b4[(o * D1 + t - D0) * in4 + c];
    }
}

@compute @workgroup_size(WG)
fn slice4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * WG + lid.x;
    if (i >= p.n / 4u) { return; }
    let in4 = max(D2 / 4u, 1u);
    let o = i / (D1 * in4);
    let r = i % (D1 * in4);
    y4[i] = a4[(o * D0 + D3 + r / in4) * in4 + r % in4];
}
