// Store four columns of C with the epilogue (matmul_epilogue.wgsl): o indexes c and g the
// column group (bias[g]); groups past N / 4 are dropped. Appended to matmul_sg.wgsl and
// matmul_vec4.wgsl, which declare p, c and bias as vec4 arrays.

fn put(o: u32, g: u32, v: vec4<f32>) {
    if (g < p.n / 4u) {
        var y = v;
        if (BIAS) { y += bias[g]; }
        y = act4(y);
        if (ACCUMULATE) { c[o] += y; } else { c[o] = y; }
    }
}
