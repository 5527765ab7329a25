// Shared by the vec4 attention kernels (attention_sg.wgsl, attention_kv.wgsl,
// attention_v4.wgsl; src/shaders.rs puts this part first):
//   out[b, h, i, :] = sum_j softmax_j(scale * q[b,h,i,:] . k[b,h,j,:]) v[b,h,j,:]
// Bindings: 0 params, 1 q [BH, Nq, D], 2 k [BH, Nk, D], 3 v [BH, Nk, DV] (vec4 views),
// 4 out [BH, Nq, DV], 5 lse [BH, Nq] (logsumexp, natural log). The kernels keep scores in
// base 2 (q pre-scaled by log2 e) so that every exponential is an exp2.

struct Params { bh: u32, nq: u32, nk: u32, scale: f32, q_blocks: u32, groups_x: u32, q_chunk: u32, pad: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> v: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;

override D4: u32 = 16u;   // D / 4
override DV4: u32 = 16u;  // DV / 4
const WG: u32 = 64u;
const NEG_INF: f32 = -3.4028235e38;
const LOG2E: f32 = 1.4426950408889634;
const LN2: f32 = 0.6931471805599453;
