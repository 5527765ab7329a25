// Element-wise kernels, one element per invocation (after elementwise_ops.wgsl).
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn dim_of(v: array<vec4<u32>, 2>, d: u32) -> u32 {
    return v[d / 4u][d % 4u];
}

@compute @workgroup_size(WG)
fn unary(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear(wg, nwg, lid);
    if (i >= p.n) { return; }
    out[i] = unary_op(a[i]);
}

@compute @workgroup_size(WG)
fn binary(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear(wg, nwg, lid);
    if (i >= p.n) { return; }
    // `first` (a broadcast copy) never reads b: b is bound to a then, which may be shorter
    // than the output (the general path below reads it with zero strides, at 0).
    if (OP == 6u && BCAST != 3u) {
        var ia = i;
        if (BCAST == 2u) { ia = i % p.shape[0].x; }
        if (BCAST == 5u) { ia = (i / p.shape[0].y) % p.shape[0].x; }
        out[i] = a[ia];
        return;
    }
    switch BCAST {
        case 0u: { out[i] = binary_op(a[i], b[i]); return; }
        case 1u: { out[i] = binary_op(a[i], b[i % p.shape[0].x]); return; }
        case 2u: { out[i] = binary_op(a[i % p.shape[0].x], b[i]); return; }
        case 4u: { out[i] = binary_op(a[i], b[(i / p.shape[0].y) % p.shape[0].x]); return; }
        case 5u: { out[i] = binary_op(a[(i / p.shape[0].y) % p.shape[0].x], b[i]); return; }
        default: {}
    }
    // Peel coordinates from the last dimension; accumulate each operand's offset.
    var rem = i;
    var ia = 0u;
    var ib = 0u;
    for (var d = p.rank; d > 0u; d--) {
        let extent = dim_of(p.shape, d - 1u);
        let coord = rem % extent;
        rem = rem / extent;
        ia += coord * dim_of(p.a_stride, d - 1u);
        ib += coord * dim_of(p.b_stride, d - 1u);
    }
    out[i] = binary_op(a[ia], b[ib]);
}
