// The epilogue of the tuned matmul kernels (ops::matmul::Epilogue), written once:
// c = act(A B + bias), stored or (vec4 kernels) accumulated. Prepended to matmul_sg.wgsl,
// matmul_vec4.wgsl and matmul_narrow.wgsl; matmul_put4.wgsl stores vec4 columns with it.
override ACCUMULATE: bool = false; // c += result instead of c = result (vec4 kernels)
override BIAS: bool = false;       // + bias[column] (binding 4, always bound, read only when BIAS)
override ACT: u32 = 0u;            // 0 none, 1 SiLU, applied after the bias

fn act4(y: vec4<f32>) -> vec4<f32> {
    if (ACT == 1u) { return y / (1.0 + exp(-y)); }
    return y;
}

fn act1(y: f32) -> f32 {
    if (ACT == 1u) { return y / (1.0 + exp(-y)); }
    return y;
}
