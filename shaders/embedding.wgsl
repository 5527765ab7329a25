// Noise-level embeddings of a scalar per sample, t: [N] -> out: [N, DIM], HALF = DIM / 2:
//   sinusoidal (Vaswani et al.; DDPM): f_k = exp(-ln(max_period) * k / HALF),
//       out[n, k] = sin(t_n f_k), out[n, HALF + k] = cos(t_n f_k)
//   fourier (Gaussian Fourier features, Tancik et al.; score_sde): w: [HALF] fixed random,
//       out[n, k] = sin(2 pi t_n w_k), out[n, HALF + k] = cos(2 pi t_n w_k)
// An odd DIM leaves the last column zero.
// Bindings: 0 params, 1 t, 2 w (fourier only), 3 out.

struct Params { n: u32, dim: u32, max_period: f32, p0: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> t: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
override FOURIER: bool = false;
const WG: u32 = 256u;
const TWO_PI: f32 = 6.283185307179586;

@compute @workgroup_size(WG)
fn embed(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * WG + lid.x;
    if (i >= p.n * p.dim) { return; }
    let n = i / p.dim;
    let c = i % p.dim;
    let half = p.dim / 2u;
    if (c >= 2u * half) { out[i] = 0.0; return; }
    let kk = c % half;
    var arg: f32;
    if (FOURIER) {
        arg = TWO_PI * t[n] * w[kk];
    } else {
        arg = t[n] * exp(-log(p.max_period) * f32(kk) / f32(half));
    }
    out[i] = select(cos(arg), sin(arg), c < half);
}
