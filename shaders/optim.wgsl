// Optimizer kernels. Per-step scalars live in a small GPU buffer, `state`, so a training step
// replays with no host round trip:
//   state[0] = t (steps taken, f32), state[1] = lr of this step, state[2] = gradient scale
//   from global-norm clipping, state[3] = sum of squared gradients (scratch).
//   tick:       t += 1; lr = schedule(t); clears the squared-gradient sum.
//               schedule: linear warm-up to lr_max over `warmup` steps, then cosine decay to
//               lr_min at `total` steps (total = 0: constant after warm-up).
//   sumsq:      state[3] += sum(g^2) over one gradient (one workgroup; tree in workgroup memory).
//   clip_scale: state[2] = max_norm > 0 ? min(1, max_norm / (sqrt(state[3]) + 1e-6)) : 1.
//   adam:       Adam (Kingma & Ba 2015) with bias correction; AdamW's decoupled weight decay
//               p -= lr * wd * p when wd > 0 (Loshchilov & Hutter 2019). g is scaled by state[2].
//   ema:        e = decay * e + (1 - decay) * p.
//   loss_acc:   w[0] += g[0], w[1] += 1 (training loss summed on the GPU between readbacks).
// Bindings: 0 params, 1 state (read_write), then per kernel: sumsq 2 g; adam 2 p, 3 g, 4 m, 5 v;
// ema 2 p, 6 e.

struct Params {
    n: u32, warmup: f32, total: f32, lr_max: f32,
    lr_min: f32, beta1: f32, beta2: f32, eps: f32,
    weight_decay: f32, max_norm: f32, decay: f32, p0: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> state: array<f32>;
@group(0) @binding(2) var<storage, read_write> w: array<f32>;
@group(0) @binding(3) var<storage, read> g: array<f32>;
@group(0) @binding(4) var<storage, read_write> m: array<f32>;
@group(0) @binding(5) var<storage, read_write> v: array<f32>;
@group(0) @binding(6) var<storage, read_write> e: array<f32>;
const WG: u32 = 256u;
const PI: f32 = 3.141592653589793;

@compute @workgroup_size(1)
fn tick() {
    let t = state[0] + 1.0;
    state[0] = t;
    var lr = p.lr_max;
    if (t <= p.warmup) {
        lr = p.lr_max * t / max(p.warmup, 1.0);
    } else if (p.total > p.warmup) {
        let prog = clamp((t - p.warmup) / (p.total - p.warmup), 0.0, 1.0);
        lr = p.lr_min + 0.5 * (p.lr_max - p.lr_min) * (1.0 + cos(PI * prog));
    }
    state[1] = lr;
    state[3] = 0.0;
}

var<workgroup> part: array<f32, WG>;

@compute @workgroup_size(WG)
fn sumsq(@builtin(local_invocation_id) lid: vec3<u32>) {
    // Eight elements per invocation and loop iteration (written out when the pipeline is
    // built): llvmpipe ends an invocation's loops after 65,535 iterations, which one element
    // per iteration passed at 16.8M elements.
    var s = 0.0;
    for (var i0 = lid.x; i0 < p.n; i0 += 8u * WG) {
        for (var u = 0u; u < 8u; u++) { // @unroll
            let i = min(i0 + u * WG, p.n - 1u);
            let x = select(0.0, g[i], i0 + u * WG < p.n);
            s = fma(x, x, s);
        }
    }
    part[lid.x] = s;
    workgroupBarrier();
    for (var k = WG / 2u; k > 0u; k = k / 2u) {
        if (lid.x < k) { part[lid.x] += part[lid.x + k]; }
        workgroupBarrier();
    }
    if (lid.x == 0u) { state[3] += part[0]; }
}

@compute @workgroup_size(1)
fn clip_scale() {
    var s = 1.0;
    if (p.max_norm > 0.0) { s = min(1.0, p.max_norm / (sqrt(state[3]) + 1e-6)); }
    state[2] = s;
}

@compute @workgroup_size(WG)
fn adam(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * WG + lid.x;
    if (i >= p.n) { return; }
    let t = state[0];
    let lr = state[1];
    let gi = g[i] * state[2];
    let mi = p.beta1 * m[i] + (1.0 - p.beta1) * gi;
    let vi = p.beta2 * v[i] + (1.0 - p.beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    let mhat = mi / (1.0 - pow(p.beta1, t));
    let vhat = vi / (1.0 - pow(p.beta2, t));
    var wi = w[i];
    if (p.weight_decay > 0.0) { wi -= lr * p.weight_decay * wi; }
    w[i] = wi - lr * mhat / (sqrt(vhat) + p.eps);
}

@compute @workgroup_size(WG)
fn ema(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wg.y * nwg.x + wg.x) * WG + lid.x;
    if (i >= p.n) { return; }
    e[i] = p.decay * e[i] + (1.0 - p.decay) * w[i];
}

@compute @workgroup_size(1)
fn loss_acc() {
    w[0] = w[0] + g[0];
    w[1] = w[1] + 1.0;
}
