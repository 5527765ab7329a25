
// The online-softmax step shared by attention_sg.wgsl and attention_v4.wgsl (after
// attention_io.wgsl): TQ queries per invocation, KB keys per step, their per-query state in
// private arrays.
override TQ: u32 = 1u;    // queries per invocation, 1..MAX_TQ
const MAX_TQ: u32 = 8u;
override KB: u32 = 2u;    // keys per step, 1..MAX_KB
const MAX_KB: u32 = 4u;
const MAX_KB1: u32 = 5u;

// Scores s[t][b] (base 2) of keys j + b for the invocation's queries t: updates each query's
// running maximum and normaliser ml[t] and returns the weights: w[t][0] rescales the old output
// sums, w[t][1 + b] weighs key j + b (zero past Nk).
fn online_step(s: array<array<f32, MAX_KB>, MAX_TQ>, ml: ptr<function, array<vec2<f32>, MAX_TQ>>,
               j: u32) -> array<array<f32, MAX_KB1>, MAX_TQ> {
    var w: array<array<f32, MAX_KB1>, MAX_TQ>;
    for (var t = 0u; t < TQ; t++) { // @unroll
        var a: array<f32, MAX_KB>;
        var mx = (*ml)[t].x;
        for (var b = 0u; b < KB; b++) { // @unroll
            a[b] = select(NEG_INF, s[t][b], j + b < p.nk);
            mx = max(mx, a[b]);
        }
        w[t][0] = exp2((*ml)[t].x - mx);
        var l = (*ml)[t].y * w[t][0];
        for (var b = 0u; b < KB; b++) { // @unroll
            w[t][b + 1u] = exp2(a[b] - mx);
            l += w[t][b + 1u];
        }
        (*ml)[t] = vec2<f32>(mx, l);
    }
    return w;
}

// One output vec4 after a step: old sums rescaled by w[0], plus the step's KB value vec4s vd
// weighed by w[1..].
fn mix_values(old: vec4<f32>, w: array<f32, MAX_KB1>, vd: array<vec4<f32>, MAX_KB>) -> vec4<f32> {
    var sum = w[1] * vd[0];
    for (var b = 0u; b < KB - 1u; b++) { // @unroll
        sum = fma(vec4<f32>(w[b + 2u]), vd[b + 1u], sum);
    }
    return fma(old, vec4<f32>(w[0]), sum);
}
