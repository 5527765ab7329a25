//! Every backward rule against central finite differences of the f64 CPU evaluation, and the
//! GPU plan of the same gradient graph against the CPU evaluation; second order for an MLP.

mod common;
use common::{gpu, Rng};
use scoregen::graph::autodiff::grad;
use scoregen::graph::cpu::{eval, finite_diff, Feeds};
use scoregen::graph::plan::{ParamStore, Plan};
use scoregen::graph::{Graph, Var};
use scoregen::ops::elementwise::{Binary, Unary};
use scoregen::ops::reduce::Reduce;
use scoregen::Tensor;

fn close(got: &[f64], want: &[f64], atol: f64, rtol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= atol + rtol * w.abs(), "{what}: [{i}] got {g} want {w}");
    }
}

/// Leaves are params named by `feeds`; `y` is scalar. Checks d y / d leaf three ways.
fn check(g: &mut Graph, y: Var, leaves: &[Var], feeds: &Feeds, what: &str) {
    let names: Vec<String> = leaves
        .iter()
        .map(|v| match &g.node(*v).op {
            scoregen::graph::Op::Param(n) => n.clone(),
            _ => panic!("leaves must be params"),
        })
        .collect();
    let grads = grad(g, y, leaves).unwrap();
    // 1. the gradient graph (f64) against finite differences (f64)
    let cpu = eval(g, &grads, feeds).unwrap();
    for (k, name) in names.iter().enumerate() {
        let fd = finite_diff(g, y, feeds, name, 1e-6).unwrap();
        close(&cpu[k], &fd, 1e-6, 1e-5, &format!("{what}: d/d{name} vs finite differences"));
    }
    // 2. the GPU plan of the same graph against the f64 evaluation
    let gp = gpu();
    let params: ParamStore = feeds
        .iter()
        .map(|(n, v)| {
            (
                n.clone(),
                Tensor::from_slice(gp, &v.iter().map(|&x| x as f32).collect::<Vec<_>>(), g.shape(find(g, n))).unwrap(),
            )
        })
        .collect();
    let plan = Plan::new(gp, g, &grads, &params).unwrap();
    plan.run(gp).unwrap();
    for (k, name) in names.iter().enumerate() {
        let got: Vec<f64> = plan.output(k).to_vec(gp).unwrap().into_iter().map(|x| x as f64).collect();
        close(&got, &cpu[k], 2e-4, 2e-3, &format!("{what}: GPU d/d{name} vs f64"));
    }
}

fn find(g: &Graph, name: &str) -> Var {
    Var(g.nodes.iter().position(|n| matches!(&n.op, scoregen::graph::Op::Param(p) if p == name)).unwrap())
}

fn feeds(rng: &mut Rng, items: &[(&str, usize, f32, f32)]) -> Feeds {
    items
        .iter()
        .map(|(n, len, lo, hi)| (n.to_string(), rng.vec(*len, *lo, *hi).into_iter().map(|x| x as f64).collect()))
        .collect()
}

/// y = sum(w * f), w fixed random weights so that every output element matters differently.
fn weighted_sum(g: &mut Graph, f: Var, rng: &mut Rng) -> Var {
    let s = g.shape(f).to_vec();
    let n: usize = s.iter().product();
    let w: Vec<f32> = rng.vec(n, -1.0, 1.0);
    // weights as a product of fills is awkward; use an input-free constant via params
    let wv = g.param("__w", &s);
    let _ = w;
    let p = g.mul(f, wv).unwrap();
    g.sum_all(p).unwrap()
}

fn with_w(f: &mut Feeds, g: &Graph, rng: &mut Rng) {
    let n: usize = g.shape(find(g, "__w")).iter().product();
    f.insert("__w".into(), rng.vec(n, -1.0, 1.0).into_iter().map(|x| x as f64).collect());
}

#[test]
fn unary_rules() {
    let mut rng = Rng::new(20);
    let ops: Vec<(Unary, f32, f32)> = vec![
        (Unary::Neg, -2.0, 2.0),
        (Unary::Exp, -2.0, 2.0),
        (Unary::Log, 0.2, 3.0),
        (Unary::Sqrt, 0.2, 3.0),
        (Unary::Rsqrt, 0.2, 3.0),
        (Unary::Square, -2.0, 2.0),
        (Unary::Silu, -4.0, 4.0),
        (Unary::Tanh, -3.0, 3.0),
        (Unary::Sigmoid, -4.0, 4.0),
        (Unary::Softplus, -4.0, 4.0),
        (Unary::Clamp(-0.5, 0.7), -1.0, 1.0),
        (Unary::AddScalar(0.3), -1.0, 1.0),
        (Unary::MulScalar(-1.7), -1.0, 1.0),
        (Unary::Abs, -1.0, 1.0),
        (Unary::Relu, -1.0, 1.0),
        (Unary::PowScalar(2.5), 0.2, 2.0),
        (Unary::Affine(2.0, -1.0), -1.0, 1.0),
        (Unary::Sin, -3.0, 3.0),
        (Unary::Cos, -3.0, 3.0),
        (Unary::Recip, 0.3, 2.0),
        (Unary::SiluPrime, -4.0, 4.0),
        (Unary::SiluSecond, -4.0, 4.0),
        (Unary::SiluThird, -4.0, 4.0),
    ];
    for (op, lo, hi) in ops {
        let mut g = Graph::new();
        let x = g.param("x", &[3, 7]);
        let f = g.unary(op, x);
        let y = weighted_sum(&mut g, f, &mut rng);
        let mut fd = feeds(&mut rng, &[("x", 21, lo, hi)]);
        with_w(&mut fd, &g, &mut rng);
        check(&mut g, y, &[x], &fd, &format!("{op:?}"));
    }
}

#[test]
fn binary_rules_with_broadcasting() {
    let mut rng = Rng::new(21);
    let shapes: [(&[usize], &[usize]); 4] =
        [(&[4, 5], &[4, 5]), (&[4, 5], &[5]), (&[3, 1, 4], &[2, 1]), (&[1], &[2, 3])];
    for op in [Binary::Add, Binary::Sub, Binary::Mul, Binary::Div, Binary::Max, Binary::Min, Binary::SiluGrad] {
        for (sa, sb) in shapes {
            let mut g = Graph::new();
            let a = g.param("a", sa);
            let b = g.param("b", sb);
            let f = g.binary(op, a, b).unwrap();
            let y = weighted_sum(&mut g, f, &mut rng);
            let (na, nb) = (sa.iter().product(), sb.iter().product());
            let mut fd = feeds(&mut rng, &[("a", na, -2.0, 2.0), ("b", nb, 0.5, 2.0)]);
            with_w(&mut fd, &g, &mut rng);
            check(&mut g, y, &[a, b], &fd, &format!("{op:?} {sa:?} {sb:?}"));
        }
    }
}

#[test]
fn reduction_reshape_broadcast_rules() {
    let mut rng = Rng::new(22);
    for op in [Reduce::Sum, Reduce::Mean, Reduce::Max, Reduce::LogSumExp] {
        for axis in 0..3 {
            let mut g = Graph::new();
            let x = g.param("x", &[3, 4, 5]);
            let r = g.reduce(op, x, axis).unwrap();
            let y = weighted_sum(&mut g, r, &mut rng);
            let mut fd = feeds(&mut rng, &[("x", 60, -2.0, 2.0)]);
            with_w(&mut fd, &g, &mut rng);
            check(&mut g, y, &[x], &fd, &format!("{op:?} axis {axis}"));
        }
    }
    let mut g = Graph::new();
    let x = g.param("x", &[3, 4]);
    let r = g.reshape(x, &[2, 6]).unwrap();
    let t = g.reshape(r, &[12, 1]).unwrap();
    let b = g.broadcast_to(t, &[2, 12, 3]).unwrap();
    let y = weighted_sum(&mut g, b, &mut rng);
    let mut fd = feeds(&mut rng, &[("x", 12, -2.0, 2.0)]);
    with_w(&mut fd, &g, &mut rng);
    check(&mut g, y, &[x], &fd, "reshape + broadcast");
}

#[test]
fn matmul_and_softmax_rules() {
    let mut rng = Rng::new(23);
    let cases: [(&[usize], &[usize], bool, bool); 7] = [
        (&[5, 3], &[3, 4], false, false),
        (&[3, 5], &[3, 4], true, false),
        (&[5, 3], &[4, 3], false, true),
        (&[3, 5], &[4, 3], true, true),
        (&[2, 5, 3], &[2, 3, 4], false, false),
        (&[2, 5, 3], &[3, 4], false, false),
        (&[5, 3], &[2, 4, 3], false, true),
    ];
    for (sa, sb, ta, tb) in cases {
        let mut g = Graph::new();
        let a = g.param("a", sa);
        let b = g.param("b", sb);
        let c = g.matmul(a, b, ta, tb).unwrap();
        let y = weighted_sum(&mut g, c, &mut rng);
        let mut fd = feeds(&mut rng, &[("a", sa.iter().product(), -1.0, 1.0), ("b", sb.iter().product(), -1.0, 1.0)]);
        with_w(&mut fd, &g, &mut rng);
        check(&mut g, y, &[a, b], &fd, &format!("matmul {sa:?} {sb:?} {ta} {tb}"));
    }
    let mut g = Graph::new();
    let x = g.param("x", &[3, 6]);
    let s = g.softmax(x);
    let y = weighted_sum(&mut g, s, &mut rng);
    let mut fd = feeds(&mut rng, &[("x", 18, -3.0, 3.0)]);
    with_w(&mut fd, &g, &mut rng);
    check(&mut g, y, &[x], &fd, "softmax");
}

/// MLP f(x) = w2 . silu(W1 x + b1) + b2 per sample; h = sum over samples of ||d f / d x||^2.
/// d h / d theta needs the gradient of a gradient.
#[test]
fn second_order_mlp_gradient_of_input_gradient_norm() {
    let mut rng = Rng::new(24);
    let (n, d, hdim) = (4, 3, 8);
    let mut g = Graph::new();
    let x = g.param("x", &[n, d]);
    let w1 = g.param("w1", &[hdim, d]);
    let b1 = g.param("b1", &[hdim]);
    let w2 = g.param("w2", &[1, hdim]);
    let b2 = g.param("b2", &[1]);
    let h = g.matmul(x, w1, false, true).unwrap();
    let h = g.add(h, b1).unwrap();
    let h = g.unary(Unary::Silu, h);
    let f = g.matmul(h, w2, false, true).unwrap();
    let f = g.add(f, b2).unwrap();
    let fsum = g.sum_all(f).unwrap();
    let gx = grad(&mut g, fsum, &[x]).unwrap()[0];
    let sq = g.unary(Unary::Square, gx);
    let hval = g.sum_all(sq).unwrap();
    let fd = feeds(
        &mut rng,
        &[
            ("x", n * d, -1.0, 1.0),
            ("w1", hdim * d, -1.0, 1.0),
            ("b1", hdim, -0.5, 0.5),
            ("w2", hdim, -1.0, 1.0),
            ("b2", 1, -0.5, 0.5),
        ],
    );
    check(&mut g, hval, &[w1, b1, w2, b2, x], &fd, "d/dtheta ||grad_x f||^2");
}

#[test]
fn plan_replay_creates_nothing_and_reuses_buffers() {
    // A device of its own, so that the counters see this test's work only.
    let own = scoregen::Gpu::new(&scoregen::GpuOptions::from_env().unwrap()).unwrap();
    let gp = &own;
    let mut rng = Rng::new(25);
    let mut g = Graph::new();
    let x = g.input("x", &[64, 32]);
    let w = g.param("w", &[32, 32]);
    let mut h = x;
    for _ in 0..6 {
        let t = g.matmul(h, w, false, false).unwrap();
        h = g.unary(Unary::Tanh, t);
    }
    let y = g.mean_all(h).unwrap();
    let gw = grad(&mut g, y, &[w]).unwrap()[0];
    let mut params = ParamStore::new();
    params.insert("w".into(), Tensor::from_slice(gp, &rng.vec(32 * 32, -0.3, 0.3), &[32, 32]).unwrap());
    let plan = Plan::new(gp, &g, &[y, gw], &params).unwrap();
    // 6 layers forward and their backward: 13 activations of 8 KiB if nothing were shared.
    assert!(plan.peak_bytes < 13 * 8192, "peak {} bytes: buffers are not shared", plan.peak_bytes);
    let xs = rng.vec(64 * 32, -1.0, 1.0);
    plan.feed(gp, "x", &xs).unwrap();
    plan.run(gp).unwrap();
    let first = plan.output(1).to_vec(gp).unwrap();
    let (b, p, bg) = (gp.pool_stats().buffers_created, gp.pipelines_created(), gp.bind_groups_created());
    assert!(bg > 0 && p > 0 && b > 0);
    for _ in 0..3 {
        plan.feed(gp, "x", &rng.vec(64 * 32, -1.0, 1.0)).unwrap();
        plan.run(gp).unwrap();
    }
    let mut rec = scoregen::Recorder::new(gp);
    plan.record(&mut rec);
    plan.record(&mut rec);
    rec.finish().unwrap();
    // Readbacks make staging buffers outside the pool; runs themselves create nothing.
    assert_eq!(gp.pool_stats().buffers_created, b, "replay created buffers");
    assert_eq!(gp.pipelines_created(), p, "replay created pipelines");
    assert_eq!(gp.bind_groups_created(), bg, "replay created bind groups");
    plan.feed(gp, "x", &xs).unwrap();
    plan.run(gp).unwrap();
    assert_eq!(plan.output(1).to_vec(gp).unwrap(), first, "replay is deterministic");
    assert!(matches!(plan.feed(gp, "nope", &[1.0]), Err(scoregen::Error::Invalid(_))));
    assert!(matches!(plan.feed(gp, "x", &[1.0]), Err(scoregen::Error::Shape(_))));
}

#[test]
fn conv_upsample_concat_slice_rules() {
    let mut rng = Rng::new(26);
    for (xs, ws, stride, pad, bias) in [
        ([2, 3, 5, 6], [4, 3, 3, 3], 1, 1, true),
        ([1, 2, 7, 7], [3, 2, 3, 3], 2, 1, false),
        ([2, 2, 4, 4], [2, 2, 1, 1], 1, 0, true),
    ] {
        let mut g = Graph::new();
        let x = g.param("x", &xs);
        let w = g.param("w", &ws);
        let b = bias.then(|| g.param("b", &[ws[0]]));
        let y = g.conv2d(x, w, b, stride, pad).unwrap();
        let y2 = g.unary(Unary::Tanh, y); // a non-linearity so second derivatives matter below
        let l = weighted_sum(&mut g, y2, &mut rng);
        let mut leaves = vec![x, w];
        let mut items = vec![("x", xs.iter().product(), -1.0, 1.0), ("w", ws.iter().product(), -0.5, 0.5)];
        if let Some(b) = b {
            leaves.push(b);
            items.push(("b", ws[0], -0.5, 0.5));
        }
        let mut fd = feeds(&mut rng, &items);
        with_w(&mut fd, &g, &mut rng);
        check(&mut g, l, &leaves, &fd, &format!("conv2d x {xs:?} w {ws:?} s{stride} p{pad}"));
    }
    let mut g = Graph::new();
    let a = g.param("a", &[2, 3, 2, 3]);
    let b = g.param("b", &[2, 1, 2, 3]);
    let c = g.concat(a, b, 1).unwrap();
    let u = g.upsample2x(c).unwrap();
    let s = g.slice(u, 1, 1, 2).unwrap();
    let l = weighted_sum(&mut g, s, &mut rng);
    let mut fd = feeds(&mut rng, &[("a", 36, -1.0, 1.0), ("b", 12, -1.0, 1.0)]);
    with_w(&mut fd, &g, &mut rng);
    check(&mut g, l, &[a, b], &fd, "concat + upsample + slice");
}

/// A small conv net with group norm and attention: second derivatives through every rule.
#[test]
fn second_order_conv_net_with_group_norm_and_attention() {
    use scoregen::nn::{attention_block, conv2d, group_norm, Builder};
    let mut rng = Rng::new(27);
    let mut g = Graph::new();
    let x = g.param("x", &[2, 1, 4, 4]);
    let mut b = Builder::new(&mut g);
    let h = b.scope("conv", |b| conv2d(b, x, 1, 4, 3, 1, 1)).unwrap();
    let h = b.scope("norm", |b| group_norm(b, h, 4, 2, 1e-5)).unwrap();
    let h = b.g.unary(Unary::Silu, h);
    let h = b.scope("attn", |b| attention_block(b, h, 4, 2)).unwrap();
    let specs = b.specs.clone();
    let f = g.sum_all(h).unwrap();
    let gx = grad(&mut g, f, &[x]).unwrap()[0];
    let sq = g.unary(Unary::Square, gx);
    let hv = g.sum_all(sq).unwrap();
    let mut fd = feeds(&mut rng, &[("x", 32, -1.0, 1.0)]);
    let mut leaves = vec![];
    for s in &specs {
        let n: usize = s.shape.iter().product();
        let (lo, hi) = if s.name.ends_with("weight") && s.shape.len() == 1 { (0.5, 1.5) } else { (-0.5, 0.5) };
        fd.insert(s.name.clone(), rng.vec(n, lo, hi).into_iter().map(|v| v as f64).collect());
        leaves.push(find(&g, &s.name));
    }
    check(&mut g, hv, &leaves, &fd, "d/dtheta ||grad_x convnet||^2");
}

#[test]
fn cross_attention_block_gradients() {
    use scoregen::nn::{cross_attention_block, Builder};
    let mut rng = Rng::new(28);
    let mut g = Graph::new();
    let x = g.param("x", &[2, 4, 2, 3]);
    let c = g.param("ctx", &[2, 3, 5]);
    let mut b = Builder::new(&mut g);
    let y = b.scope("xattn", |b| cross_attention_block(b, x, c, 4, 2)).unwrap();
    let specs = b.specs.clone();
    let l = weighted_sum(&mut g, y, &mut rng);
    let mut fd = feeds(&mut rng, &[("x", 48, -1.0, 1.0), ("ctx", 30, -1.0, 1.0)]);
    with_w(&mut fd, &g, &mut rng);
    let mut leaves = vec![x, c];
    for s in &specs {
        let n: usize = s.shape.iter().product();
        fd.insert(s.name.clone(), rng.vec(n, -0.7, 0.7).into_iter().map(|v| v as f64).collect());
        leaves.push(find(&g, &s.name));
    }
    check(&mut g, l, &leaves, &fd, "cross-attention block");
}

/// The MLPs' retrieval block: h [B, H] attending to context tokens [B, T, D]; gradients with
/// respect to the hidden state, the context (the neighbours' embeddings) and every weight.
#[test]
fn token_cross_attention_gradients() {
    use scoregen::nn::{token_cross_attention, Builder};
    let mut rng = Rng::new(31);
    let mut g = Graph::new();
    let h = g.param("h", &[3, 5]);
    let c = g.param("ctx", &[3, 4, 2]);
    let mut b = Builder::new(&mut g);
    let y = b.scope("xattn", |b| token_cross_attention(b, h, c)).unwrap();
    let specs = b.specs.clone();
    let l = weighted_sum(&mut g, y, &mut rng);
    let mut fd = feeds(&mut rng, &[("h", 15, -1.0, 1.0), ("ctx", 24, -1.5, 1.5)]);
    with_w(&mut fd, &g, &mut rng);
    let mut leaves = vec![h, c];
    for s in &specs {
        let n: usize = s.shape.iter().product();
        fd.insert(s.name.clone(), rng.vec(n, -0.7, 0.7).into_iter().map(|v| v as f64).collect());
        leaves.push(find(&g, &s.name));
    }
    check(&mut g, l, &leaves, &fd, "token cross-attention");
}

/// The fused group-norm op and its fused adjoint: first derivatives (x, gamma, beta) of a
/// weighted sum, on shapes whose element-wise pass runs per vec4 with one channel per vec4
/// (H*W = 8), per vec4 across channels (H*W = 6) and per element (18 elements); second
/// derivatives through the adjoint's composed expansion.
#[test]
fn group_norm_rules() {
    let mut rng = Rng::new(29);
    for (shape, groups) in [([2, 4, 2, 4], 2), ([2, 4, 2, 3], 4), ([1, 2, 3, 3], 1)] {
        let mut g = Graph::new();
        let c = shape[1];
        let x = g.param("x", &shape);
        let gamma = g.param("gamma", &[c]);
        let beta = g.param("beta", &[c]);
        let y = g.group_norm(x, gamma, beta, groups, 1e-5).unwrap();
        let l = weighted_sum(&mut g, y, &mut rng);
        let n: usize = shape.iter().product();
        let mut fd = feeds(&mut rng, &[("x", n, -1.0, 1.0), ("gamma", c, 0.5, 1.5), ("beta", c, -0.5, 0.5)]);
        with_w(&mut fd, &g, &mut rng);
        check(&mut g, l, &[x, gamma, beta], &fd, &format!("group norm {shape:?} / {groups}"));
        // Second order: d/d(x, gamma) of ||d l / d x||^2.
        let gx = grad(&mut g, l, &[x]).unwrap()[0];
        let sq = g.unary(Unary::Square, gx);
        let h = g.sum_all(sq).unwrap();
        check(&mut g, h, &[x, gamma], &fd, &format!("group norm {shape:?} / {groups}, second order"));
    }
}

/// A conv net on 128x128 images (group norm over rows of 4 x 16,384 numbers, convolution
/// weight gradients over 32,768 pixels, bias gradients summing 32,768 numbers): the GPU plan's
/// gradients against the f64 evaluator. On lavapipe every one of these once walked a long axis
/// in one invocation, past the 65,535 loop iterations after which llvmpipe stops.
#[test]
fn conv_net_on_large_images_matches_f64() {
    use scoregen::nn::{conv2d, group_norm, Builder};
    let mut rng = Rng::new(41);
    let mut g = Graph::new();
    let x = g.param("x", &[2, 1, 128, 128]);
    let mut b = Builder::new(&mut g);
    let h = b.scope("conv1", |b| conv2d(b, x, 1, 8, 3, 1, 1)).unwrap();
    let h = b.scope("norm", |b| group_norm(b, h, 8, 2, 1e-5)).unwrap();
    let h = b.g.unary(Unary::Silu, h);
    let h = b.scope("conv2", |b| conv2d(b, h, 8, 4, 3, 1, 1)).unwrap();
    let specs = b.specs.clone();
    let y = weighted_sum(&mut g, h, &mut rng);
    let mut fd = feeds(&mut rng, &[("x", 2 * 128 * 128, -1.0, 1.0)]);
    with_w(&mut fd, &g, &mut rng);
    let mut leaves = vec![find(&g, "x")];
    for s in &specs {
        let n: usize = s.shape.iter().product();
        let (lo, hi) = if s.name.ends_with("weight") && s.shape.len() == 1 { (0.5, 1.5) } else { (-0.5, 0.5) };
        fd.insert(s.name.clone(), rng.vec(n, lo, hi).into_iter().map(|v| v as f64).collect());
        leaves.push(find(&g, &s.name));
    }
    let grads = grad(&mut g, y, &leaves).unwrap();
    let cpu = eval(&g, &grads, &fd).unwrap();
    let gp = gpu();
    let params: ParamStore = fd
        .iter()
        .map(|(n, v)| {
            let t = Tensor::from_slice(gp, &v.iter().map(|&x| x as f32).collect::<Vec<_>>(), g.shape(find(&g, n)));
            (n.clone(), t.unwrap())
        })
        .collect();
    let plan = Plan::new(gp, &g, &grads, &params).unwrap();
    plan.run(gp).unwrap();
    for (k, leaf) in leaves.iter().enumerate() {
        let got: Vec<f64> = plan.output(k).to_vec(gp).unwrap().into_iter().map(|x| x as f64).collect();
        let scale = cpu[k].iter().fold(0f64, |m, v| m.max(v.abs()));
        close(&got, &cpu[k], 1e-4 * scale.max(1.0), 2e-3, &format!("GPU gradient {leaf:?} vs f64"));
    }
}
