// Element-wise kernels, four elements per invocation (after elementwise_ops.wgsl): the same
// operations and BCAST modes 0, 1, 2, 4 and 5 as elementwise.wgsl, for tensors whose element
// counts are multiples of four (p.n counts vec4s here; EB and EI below are the block and
// inner sizes of the broadcast operand, in elements, p.shape[0].x / .y there). Needs, for modes 1/2, a block
// that is a multiple of four (then the operand is read as vec4s too) and, for modes 4/5, an
// inner size that is a multiple of four (the four elements share one operand element).
// On lavapipe a vec4 load or store is one per-lane loop where four scalars are four, and the
// index arithmetic is shared: in W2 a binary op's mean time per call fell from 12 ms to 2.5.
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>;

fn unary4(x: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(unary_op(x.x), unary_op(x.y), unary_op(x.z), unary_op(x.w));
}

fn binary4(x: vec4<f32>, y: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(binary_op(x.x, y.x), binary_op(x.y, y.y), binary_op(x.z, y.z), binary_op(x.w, y.w));
}

// The broadcast operand's block and inner sizes as pipeline constants for modes 1, 2, 4 and 5
// (src/ops/elementwise.rs): the index arithmetic divides by constants, a multiply and shift,
// instead of runtime values, which CPU implementations divide one lane at a time (W2: 2.07 ->
// 1.89 ms per call on average).
override EB: u32 = 4u;
override EI: u32 = 4u;

// Element e of a vec4 view (for an operand broadcast over four outputs).
fn elem_a(e: u32) -> f32 { return a[e / 4u][e % 4u]; }
fn elem_b(e: u32) -> f32 { return b[e / 4u][e % 4u]; }

@compute @workgroup_size(WG)
fn unary_v4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear(wg, nwg, lid);
    if (i >= p.n) { return; }
    out[i] = unary4(a[i]);
}

@compute @workgroup_size(WG)
fn binary_v4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear(wg, nwg, lid);
    if (i >= p.n) { return; }
    // `first` (a broadcast copy) never reads b, which is bound to a and may be shorter.
    if (OP == 6u) {
        switch BCAST {
            case 2u: { out[i] = a[i % (max(EB / 4u, 1u))]; }
            case 5u: { out[i] = vec4<f32>(elem_a((4u * i / EI) % EB)); }
            default: { out[i] = a[i]; }
        }
        return;
    }
    switch BCAST {
        case 0u: { out[i] = binary4(a[i], b[i]); }
        case 1u: { out[i] = binary4(a[i], b[i % (max(EB / 4u, 1u))]); }
        case 2u: { out[i] = binary4(a[i % (max(EB / 4u, 1u))], b[i]); }
        case 4u: { out[i] = binary4(a[i], vec4<f32>(elem_b((4u * i / EI) % EB))); }
        case 5u: { out[i] = binary4(vec4<f32>(elem_a((4u * i / EI) % EB)), b[i]); }
        default: {}
    }
}
