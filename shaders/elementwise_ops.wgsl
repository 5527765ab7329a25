// Element-wise ops. One invocation per output element (four in elementwise4.wgsl); the linear index comes from a folded
// 2-D grid (wg.y * num_workgroups.x + wg.x) so > 65,535 workgroups work.
//   unary:  out[i] = f(a[i])                      (OP selects f; s0, s1 are scalar operands)
//   binary: out[i] = g(a[ia(i)], b[ib(i)])        with NumPy broadcasting: a and b carry one
//           stride per output dimension (0 where that operand broadcasts). BCAST selects the
//           indexing: 0 equal shapes; 1 b is a trailing block repeated over leading dims
//           (b[i % nb], e.g. a bias); 2 the same for a (a[i % na]); 3 general strides;
//           4 b is a contiguous block of middle dims, b[(i / inner) % nb] (e.g. a per-channel
//           [C, 1, 1] or per-sample [B, C, 1, 1] term of an NCHW tensor); 5 the same for a.
// Unary OP: 0 neg, 1 exp, 2 log, 3 sqrt, 4 rsqrt, 5 square, 6 silu, 7 tanh, 8 sigmoid,
//   9 softplus, 10 clamp(s0, s1), 11 x + s0, 12 x * s0, 13 abs, 14 relu, 15 x^s0 (x > 0),
//   16 s0 * x + s1, 17 step (x > 0 ? 1 : 0), 18 sign, 19 in_range (s0 < x < s1 ? 1 : 0),
//   20 sin, 21 cos, 22 1 / x.
// Binary OP: 0 add, 1 sub, 2 mul, 3 div, 4 max, 5 min, 6 first (x: broadcast copy of a),
//   7 equal (x == y ? 1 : 0), 8 silu_grad (x * silu'(y): gradient of SiLU at y, fused).
// Bindings: 0 params, 1 a, 2 b (binary only), 3 out. Shapes: rank <= 8, strides in elements.
// This file holds the parameters and the operations; elementwise.wgsl (one element per
// invocation) and elementwise4.wgsl (four) follow it with their bindings and kernels.

struct Params {
    n: u32, rank: u32, s0: f32, s1: f32,
    shape: array<vec4<u32>, 2>,
    a_stride: array<vec4<u32>, 2>,
    b_stride: array<vec4<u32>, 2>,
}
@group(0) @binding(0) var<uniform> p: Params;
override OP: u32 = 0u;
override BCAST: u32 = 3u;
const WG: u32 = 256u;

fn sigmoid(x: f32) -> f32 {
    // Stable on both tails: exp of a non-positive number only.
    let e = exp(-abs(x));
    return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= 0.0);
}

fn unary_op(x: f32) -> f32 {
    switch OP {
        case 0u: { return -x; }
        case 1u: { return exp(x); }
        case 2u: { return log(x); }
        case 3u: { return sqrt(x); }
        case 4u: { return inverseSqrt(x); }
        case 5u: { return x * x; }
        case 6u: { return x * sigmoid(x); }
        case 7u: {
            let e = exp(-2.0 * abs(x));
            return sign(x) * (1.0 - e) / (1.0 + e);
        }
        case 8u: { return sigmoid(x); }
        case 9u: { return max(x, 0.0) + log(1.0 + exp(-abs(x))); }
        case 10u: { return clamp(x, p.s0, p.s1); }
        case 11u: { return x + p.s0; }
        case 12u: { return x * p.s0; }
        case 13u: { return abs(x); }
        case 14u: { return max(x, 0.0); }
        case 15u: { return pow(x, p.s0); }
        case 16u: { return fma(p.s0, x, p.s1); }
        case 17u: { return select(0.0, 1.0, x > 0.0); }
        case 18u: { return sign(x); }
        case 19u: { return select(0.0, 1.0, x > p.s0 && x < p.s1); }
        case 20u: { return sin(x); }
        case 21u: { return cos(x); }
        case 22u: { return 1.0 / x; }
        case 23u: {
            let sg = sigmoid(x);
            return sg * (1.0 + x * (1.0 - sg));
        }
        case 24u: {
            let sg = sigmoid(x);
            return sg * (1.0 - sg) * (2.0 + x * (1.0 - 2.0 * sg));
        }
        case 25u: {
            let sg = sigmoid(x);
            let q = sg * (1.0 - sg);
            let a = 1.0 - 2.0 * sg;
            return q * (a * (3.0 + x * a) - 2.0 * x * q);
        }
        default: { return x; }
    }
}

fn binary_op(x: f32, y: f32) -> f32 {
    switch OP {
        case 0u: { return x + y; }
        case 1u: { return x - y; }
        case 2u: { return x * y; }
        case 3u: { return x / y; }
        case 4u: { return max(x, y); }
        case 5u: { return min(x, y); }
        case 6u: { return x; }
        case 7u: { return select(0.0, 1.0, x == y); }
        case 8u: {
            let s = sigmoid(y);
            return x * s * (1.0 + y * (1.0 - s));
        }
        default: { return x; }
    }
}

// The invocation's linear index on the folded grid.
fn linear(wg: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wg.y * nwg.x + wg.x) * WG + lid.x;
}
