// Data movement kernels (no arithmetic):
//   upsample2x: y[n, c, i, j] = x[n, c, i / 2, j / 2]     x: [NC, H, W] -> y: [NC, 2H, 2W]
//   concat:     y[o, t, r] = t < la ? a[o, t, r] : b[o, t - la, r]
//               a: [outer, la, inner], b: [outer, lb, inner] -> y: [outer, la + lb, inner]
//               (channel concat of NCHW tensors is outer = N, inner = H*W)
//   transpose:  y[b, j, i] = x[b, i, j]      x: [batch, R, C] -> y: [batch, C, R]
//   swap_outer: y[j, i, r] = x[i, j, r]      x: [A, B, R] -> y: [B, A, R] (NCHW <-> CNHW), x read
//               from element p0 on, y written from element p1 on
//   downsample2x_sum: y[p, i, j] = sum of the 2x2 block x[p, 2i..2i+2, 2j..2j+2] (the adjoint
//               of upsample2x)
//   slice:      y[o, t, r] = x[o, start + t, r]  x: [outer, L, inner] -> y: [outer, len, inner]
//   pad:        y[o, t, r] = x[o, t - start, r] for start <= t < start + len, else 0 (the
//               adjoint of slice)
// One invocation per output element, folded 2-D grid.
// Bindings: 0 params, then inputs, then output.

struct Params { n: u32, d0: u32, d1: u32, d2: u32, d3: u32, p0: u32, p1: u32, p2: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
const WG: u32 = 256u;

// d0 = H, d1 = W.
@compute @workgroup_size(WG)
fn upsample2x(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * WG + lid.x;
    if (i >= p.n) { return; }
    let w2 = p.d1 * 2u;
    let plane = i / (4u * p.d0 * p.d1);
    let r = i % (4u * p.d0 * p.d1);
    let yy = r / w2;
    let xx = r % w2;
    y[i] = a[(plane * p.d0 + yy / 2u) * p.d1 + xx / 2u];
}

// d0 = la, d1 = lb, d2 = inner.
@compute @workgroup_size(WG)
fn concat(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * WG + lid.x;
    if (i >= p.n) { return; }
    let len = p.d0 + p.d1;
    let o = i / (len * p.d2);
    let r = i % (len * p.d2);
    let t = r / p.d2;
    let c = r % p.d2;
    if (t < p.d0) {
        y[i] = a[(o * p.d0 + t) * p.d2 + c];
    } else {
        y[i] = b[(o * p.d1 + t - p.d0) * p.d2 + c];
    }
}

// d0 = R, d1 = C (of the input).
@compute @workgroup_size(WG)
fn transpose(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * WG + lid.x;
    if (i >= p.n) { return; }
    let plane = p.d0 * p.d1;
    let b = i / plane;
    let r = i % plane;
    let j = r / p.d0; // output row = input column
    let k = r % p.d0; // output column = input row
    y[i] = a[b * plane + k * p.d1 + j];
}

// d0 = A, d1 = B, d2 = R (of the input), p0 / p1 = offsets of x / y; n = A * B * R.
@compute @workgroup_size(WG)
fn swap_outer(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * WG + lid.x;
    if (i >= p.n) { return; }
    let r = i % p.d2;
    let rest = i / p.d2;
    let ia = rest % p.d0; // output [B, A, R]: rest = j * A + ia
    let j = rest / p.d0;
    y[p.p1 + i] = a[p.p0 + (ia * p.d1 + j) * p.d2 + r];
}

// d0 = H, d1 = W (of the output).
@compute @workgroup_size(WG)
fn downsample2x_sum(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * WG + lid.x;
    if (i >= p.n) { return; }
    let plane = i / (p.d0 * p.d1);
    let r = i % (p.d0 * p.d1);
    let yy = r / p.d1;
    let xx = r % p.d1;
    let w2 = 2u * p.d1;
    let base = (plane * 2u * p.d0 + 2u * yy) * w2 + 2u * xx;
    y[i] = (a[base] + a[base + 1u]) + (a[base + w2] + a[base + w2 + 1u]);
}

// d0 = L (of x), d1 = len, d2 = inner, d3 = start.
@compute @workgroup_size(WG)
fn slice(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * WG + lid.x;
    if (i >= p.n) { return; }
    let o = i / (p.d1 * p.d2);
    let r = i % (p.d1 * p.d2);
    y[i] = a[(o * p.d0 + p.d3 + r / p.d2) * p.d2 + r % p.d2];
}

// d0 = L (of y), d1 = len (of x), d2 = inner, d3 = start.
@compute @workgroup_size(WG)
fn pad(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * WG + lid.x;
    if (i >= p.n) { return; }
    let o = i / (p.d0 * p.d2);
    let r = i % (p.d0 * p.d2);
    let t = r / p.d2;
    var v = 0.0;
    if (t >= p.d3 && t < p.d3 + p.d1) { v = a[(o * p.d1 + t - p.d3) * p.d2 + r % p.d2]; }
    y[i] = v;
}
