//! Every kernel against its plain-loop CPU reference on random shapes, including sizes that are
//! not multiples of the tile and grids folded past 65,535 workgroups.

mod common;
use common::{assert_close, gpu, Rng};
use scoregen::ops::attention::{
    attention, attention_ref, attention_with, kb_for, kernel_for, kv_chunks, tq_for, tq_plain, tq_rule, AttentionKernel,
};
use scoregen::ops::conv::{
    conv2d, conv2d_bwd_input_into, conv2d_bwd_input_ref, conv2d_bwd_weight_into, conv2d_bwd_weight_ref, conv2d_ref,
    Conv2dOpts,
};
use scoregen::ops::elementwise::{binary, binary_ref, broadcast_to, unary, Binary, Unary};
use scoregen::ops::embedding::{embed, embed_ref, Embedding};
use scoregen::ops::layout::{
    concat, concat_ref, slice_into, swap_outer_at, swap_outer_crop, swap_outer_crop_ref, swap_outer_ref, transpose,
    transpose_ref, upsample2x, upsample2x_ref,
};
use scoregen::ops::norm::{group_norm, group_norm_bwd_into, group_norm_into, group_norm_ref, softmax, softmax_ref};
use scoregen::ops::random::{random, random_ref, Dist, RngKey};
use scoregen::ops::reduce::{reduce, reduce_ref, Reduce};
use scoregen::{Error, Recorder, Tensor};

fn up(data: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(gpu(), data, shape).unwrap()
}

/// The cases `case Nu` of one switch in elementwise_ops.wgsl.
fn wgsl_cases(function: &str) -> Vec<u32> {
    let src = include_str!("../shaders/elementwise_ops.wgsl");
    let body = src.split(&format!("fn {function}(")).nth(1).unwrap().split("\n}\n").next().unwrap();
    body.split("case ").skip(1).map(|c| c.split('u').next().unwrap().trim().parse().unwrap()).collect()
}

/// Every element-wise op's code is a case of the shader's switch and every case has an op (a
/// new op on one side only fails here), and every op matches its reference on the GPU.
#[test]
fn elementwise_op_codes_match_the_shader_and_every_op_its_reference() {
    let mut u: Vec<u32> = Unary::ALL.iter().map(|o| o.op_code()).collect();
    u.sort();
    assert_eq!(u, wgsl_cases("unary_op"), "unary op codes against elementwise_ops.wgsl");
    let mut b: Vec<u32> = Binary::ALL.iter().map(|o| o.op_code()).collect();
    b.sort();
    assert_eq!(b, wgsl_cases("binary_op"), "binary op codes against elementwise_ops.wgsl");
    let g = gpu();
    let mut rng = Rng::new(11);
    let n = 1001; // the scalar kernel; unary_ops_match_reference covers the vec4 one
    let (x, pos) = (rng.vec(n, -3.0, 3.0), rng.vec(n, 0.05, 5.0));
    let mut rec = Recorder::new(g);
    let outs: Vec<_> = Unary::ALL
        .iter()
        .map(|op| unary(&mut rec, *op, &up(if op.needs_positive() { &pos } else { &x }, &[n])).unwrap())
        .collect();
    let y = rng.vec(n, -3.0, 3.0);
    let bouts: Vec<_> =
        Binary::ALL.iter().map(|op| binary(&mut rec, *op, &up(&pos, &[n]), &up(&y, &[n])).unwrap()).collect();
    rec.finish().unwrap();
    for (op, t) in Unary::ALL.iter().zip(outs) {
        let inp = if op.needs_positive() { &pos } else { &x };
        let want: Vec<f32> = inp.iter().map(|&v| op.eval(v as f64) as f32).collect();
        assert_close(&t.to_vec(g).unwrap(), &want, 1e-5, 2e-5, &format!("{op:?}"));
    }
    for (op, t) in Binary::ALL.iter().zip(bouts) {
        let want: Vec<f32> = pos.iter().zip(&y).map(|(&a, &b)| op.eval(a as f64, b as f64) as f32).collect();
        assert_close(&t.to_vec(g).unwrap(), &want, 1e-5, 2e-5, &format!("{op:?}"));
    }
}

#[test]
fn unary_ops_match_reference() {
    let g = gpu();
    let mut rng = Rng::new(10);
    // Every op over both tails (sin and cos, whose f32 argument reduction loses digits at |x| ~ 30,
    // are checked on [-3, 3] by the op-code test); those defined for positive inputs get those.
    let ops: Vec<Unary> =
        Unary::ALL.iter().copied().filter(|o| !o.needs_positive() && !matches!(o, Unary::Sin | Unary::Cos)).collect();
    // A multiple of four (vec4 kernel) and one more (scalar kernel).
    let n0 = rng.int(1000, 3000) / 4 * 4;
    for n in [n0, n0 + 1] {
        let x = rng.vec(n, -30.0, 30.0); // both tails: tanh, sigmoid, softplus must not overflow
        let pos = rng.vec(n, 0.01, 50.0);
        let mut rec = Recorder::new(g);
        let outs: Vec<_> = ops.iter().map(|op| unary(&mut rec, *op, &up(&x, &[n])).unwrap()).collect();
        let pos_ops: Vec<Unary> = Unary::ALL.iter().copied().filter(|o| o.needs_positive()).collect();
        let pos_outs: Vec<_> = pos_ops.iter().map(|op| unary(&mut rec, *op, &up(&pos, &[n])).unwrap()).collect();
        rec.finish().unwrap();
        for (op, t) in ops.iter().zip(outs) {
            let want: Vec<f32> = x.iter().map(|&v| op.eval(v as f64) as f32).collect();
            assert_close(&t.to_vec(g).unwrap(), &want, 1e-6, 2e-5, &format!("{op:?}"));
        }
        for (op, t) in pos_ops.iter().zip(pos_outs) {
            let want: Vec<f32> = pos.iter().map(|&v| op.eval(v as f64) as f32).collect();
            assert_close(&t.to_vec(g).unwrap(), &want, 1e-6, 2e-5, &format!("{op:?}"));
        }
    }
}

#[test]
fn binary_ops_broadcast_like_numpy() {
    let g = gpu();
    let mut rng = Rng::new(11);
    let cases: [(&[usize], &[usize]); 15] = [
        // Four elements per invocation: equal shapes, a trailing block of 8 on either side,
        // a per-channel term with 12 elements per channel on either side.
        (&[4, 6, 8], &[4, 6, 8]),
        (&[3, 5, 8], &[8]),
        (&[12], &[5, 12]),
        (&[2, 8, 3, 4], &[8, 1, 1]),
        (&[2, 4, 1, 1], &[2, 4, 2, 6]),
        (&[2, 4, 1, 1], &[2, 4, 2, 5]),
        (&[2, 3, 4, 5], &[3, 1, 1]),
        (&[2, 3, 1, 1], &[2, 3, 4, 5]),
        (&[4, 6, 7], &[4, 6, 1]),
        (&[37, 5], &[37, 5]),
        (&[3, 1, 7], &[4, 1]),
        (&[1], &[2, 3, 5]),
        (&[6, 1, 3, 1], &[5, 1, 2]),
        (&[2, 3, 4, 5, 1, 2, 1, 3], &[1, 3]),
        (&[129], &[1]),
    ];
    for (sa, sb) in cases {
        for op in [Binary::Add, Binary::Sub, Binary::Mul, Binary::Div, Binary::Max, Binary::Min] {
            let a = rng.vec(sa.iter().product(), -2.0, 2.0);
            let b = rng.vec(sb.iter().product(), 0.5, 2.0);
            let (want, shape) = binary_ref(op, &a, sa, &b, sb).unwrap();
            let mut rec = Recorder::new(g);
            let c = binary(&mut rec, op, &up(&a, sa), &up(&b, sb)).unwrap();
            rec.finish().unwrap();
            assert_eq!(c.shape(), shape.as_slice());
            assert_close(&c.to_vec(g).unwrap(), &want, 1e-6, 1e-6, &format!("{op:?} {sa:?} {sb:?}"));
        }
    }
    // Broadcast copies (`first` never reads its second operand): per-channel with 4 and 3
    // elements per channel, a trailing block, a leading one.
    let copies: [(&[usize], &[usize]); 4] =
        [(&[8, 1], &[3, 8, 4]), (&[5, 1], &[2, 5, 3]), (&[4], &[3, 2, 4]), (&[2, 1, 1], &[2, 3, 5])];
    for (sa, so) in copies {
        let a = rng.vec(sa.iter().product(), -2.0, 2.0);
        let zeros = vec![0.0; so.iter().product()];
        let (want, _) = binary_ref(Binary::First, &a, sa, &zeros, so).unwrap();
        let mut rec = Recorder::new(g);
        let c = broadcast_to(&mut rec, &up(&a, sa), so).unwrap();
        rec.finish().unwrap();
        assert_close(&c.to_vec(g).unwrap(), &want, 0.0, 0.0, &format!("broadcast {sa:?} to {so:?}"));
    }
    let mut rec = Recorder::new(g);
    let err = binary(&mut rec, Binary::Add, &up(&[0.0; 6], &[2, 3]), &up(&[0.0; 8], &[2, 4])).unwrap_err();
    assert!(matches!(&err, Error::Shape(m) if m.contains("[2, 3]") && m.contains("[2, 4]")), "{err}");
}

#[test]
fn folded_grid_beyond_65535_workgroups() {
    // 256 * 65,535 < 17.3M elements: this needs a 2-D grid.
    let g = gpu();
    let n = 256 * 65_535 + 1000;
    let x: Vec<f32> = (0..n).map(|i| (i % 1013) as f32).collect();
    let mut rec = Recorder::new(g);
    let y = unary(&mut rec, Unary::AddScalar(1.0), &up(&x, &[n])).unwrap();
    let r = random(&mut rec, &[n], RngKey { seed: 7, stream: 1, counter: 0 }, Dist::Bits).unwrap();
    rec.finish().unwrap();
    let yv = y.to_vec(g).unwrap();
    assert!(yv.iter().enumerate().all(|(i, &v)| v == (i % 1013) as f32 + 1.0), "folded elementwise");
    let rv = r.to_u32(g).unwrap();
    let want: Vec<u32> =
        random_ref(n, RngKey { seed: 7, stream: 1, counter: 0 }, Dist::Bits).into_iter().map(f32::to_bits).collect();
    assert!(rv[n - 5..] == want[n - 5..] && rv[..5] == want[..5], "folded random tail");
}

#[test]
fn reductions_along_every_axis() {
    let g = gpu();
    let mut rng = Rng::new(12);
    for shape in [
        vec![7, 13, 5],
        vec![3, 1000],
        vec![2000, 3],
        vec![1, 4097],
        vec![33],
        vec![1024, 40],
        vec![2, 640, 33],
        vec![40, 1024],
        vec![19, 12],
        // Rows of 300,000: one invocation per row would loop 75,000 times (past llvmpipe's
        // 65,535 per invocation); such axes take the workgroup tree.
        vec![16, 300_000],
        // One output over 2^24: the tree would loop 65,536 times per invocation; two passes.
        vec![1, 1 << 24],
    ] {
        let x = rng.vec(shape.iter().product(), -5.0, 5.0);
        for axis in 0..shape.len() {
            for op in [Reduce::Sum, Reduce::Mean, Reduce::Max, Reduce::LogSumExp] {
                let want = reduce_ref(op, &x, &shape, axis).unwrap();
                let mut rec = Recorder::new(g);
                let y = reduce(&mut rec, op, &up(&x, &shape), axis).unwrap();
                rec.finish().unwrap();
                assert_close(&y.to_vec(g).unwrap(), &want, 2e-4, 1e-5, &format!("{op:?} {shape:?} axis {axis}"));
            }
        }
    }
    let mut rec = Recorder::new(g);
    assert!(matches!(reduce(&mut rec, Reduce::Sum, &up(&[1.0; 4], &[2, 2]), 2), Err(Error::Shape(_))));
}

/// An image whose one-image patch matrix (64 x 9 rows of 256 x 256) outgrows a 128 MiB storage
/// binding: the implicit GEMM needs no patch matrix, so it still runs for the convolution and
/// both adjoints (rather than the one-thread-per-output direct kernels) wherever the adapter
/// has subgroups, whichever GEMM family its autotune chose, and matches the reference.
#[test]
fn conv2d_large_image_runs_the_implicit_gemm() {
    use scoregen::{Gpu, GpuOptions};
    let g = Gpu::new(&GpuOptions { profile: true, ..GpuOptions::from_env().unwrap() }).unwrap();
    let mut rng = Rng::new(31);
    let (xs, ws) = ([1, 64, 256, 256], [8, 64, 3, 3]);
    let o = Conv2dOpts { stride: 1, pad: 1, ..Default::default() };
    let x = rng.vec(xs.iter().product(), -1.0, 1.0);
    let w = rng.vec(ws.iter().product(), -1.0, 1.0);
    let ys = [1, 8, 256, 256];
    let gy = rng.vec(ys.iter().product(), -1.0, 1.0);
    let (gx, gw) = (Tensor::empty(&g, &xs).unwrap(), Tensor::empty(&g, &ws).unwrap());
    let mut rec = Recorder::new(&g);
    let y =
        conv2d(&mut rec, &Tensor::from_slice(&g, &x, &xs).unwrap(), &Tensor::from_slice(&g, &w, &ws).unwrap(), None, o)
            .unwrap();
    let (gyt, wt, xt) = (
        Tensor::from_slice(&g, &gy, &ys).unwrap(),
        Tensor::from_slice(&g, &w, &ws).unwrap(),
        Tensor::from_slice(&g, &x, &xs).unwrap(),
    );
    conv2d_bwd_input_into(&mut rec, &gyt, &wt, o, &gx).unwrap();
    conv2d_bwd_weight_into(&mut rec, &gyt, &xt, o, &gw).unwrap();
    rec.finish().unwrap();
    assert_close(&y.to_vec(&g).unwrap(), &conv2d_ref(&x, &xs, &w, &ws, None, o).unwrap(), 1e-5, 1e-4, "conv2d");
    assert_close(&gx.to_vec(&g).unwrap(), &conv2d_bwd_input_ref(&gy, &w, &xs, &ws, o), 1e-5, 1e-4, "input gradient");
    assert_close(&gw.to_vec(&g).unwrap(), &conv2d_bwd_weight_ref(&gy, &x, &xs, &ws, o), 1e-3, 1e-4, "weight gradient");
    let report = g.profile_report().unwrap();
    if g.features.contains(wgpu::Features::SUBGROUP) && !report.contains("no timestamp queries") {
        assert!(report.contains("conv_gemm::conv_sg"), "implicit GEMM ran:\n{report}");
        assert!(!report.contains("conv2d::conv2d"), "no direct kernel ran:\n{report}");
    }
}

#[test]
fn conv2d_matches_reference() {
    let g = gpu();
    let mut rng = Rng::new(13);
    let cases = [
        ([2, 3, 9, 11], [5, 3, 3, 3], 1, 1, true),
        ([1, 1, 28, 28], [32, 1, 3, 3], 1, 1, true),
        ([3, 7, 14, 14], [9, 7, 3, 3], 2, 1, false),
        ([2, 6, 5, 7], [4, 6, 1, 1], 1, 0, true),
        ([1, 2, 4, 4], [3, 2, 4, 4], 1, 0, true),
        ([2, 5, 13, 6], [17, 5, 3, 2], 3, 2, true),
        // im2col four elements at a time (H_out*W_out or C_in*KH*KW a multiple of 4): quads
        // that wrap rows, stride 2, a non-square kernel on the transposed side only.
        ([2, 4, 6, 6], [5, 4, 3, 3], 1, 1, true),
        ([3, 8, 16, 16], [6, 8, 3, 3], 2, 1, false),
        ([2, 4, 10, 9], [3, 4, 2, 3], 1, 0, true),
        // Images side by side (wide): 4 x 49 columns in whole quads that span two images; in
        // chunks of 2, 98 columns (scalar im2col); 4 x 25 with stride 1.
        ([4, 6, 7, 7], [5, 6, 3, 3], 1, 1, true),
        ([4, 3, 5, 5], [6, 3, 3, 3], 1, 1, false),
        // Implicit GEMM with row segments shared by the KW steps (W_out % 4 == 0, stride 1):
        // 3x3 and 5x5 kernels, forward and input gradient.
        ([2, 5, 8, 12], [7, 5, 3, 3], 1, 1, true),
        ([2, 3, 8, 8], [4, 3, 5, 5], 1, 2, false),
        // A 1x1 convolution of 2x3 images (an attention block's projection): pipelines of every
        // mode with rows narrower than one vec4.
        ([2, 4, 2, 3], [5, 4, 1, 1], 1, 0, true),
        // The weight gradient summing several images per workgroup column (batch 64: 2 and 4).
        ([64, 2, 4, 4], [3, 2, 3, 3], 1, 1, false),
        ([64, 8, 4, 6], [40, 8, 3, 3], 1, 1, true),
    ];
    // Direct kernels; GEMM lowering with patch matrices (implicit off) in one chunk (per image,
    // side by side, chosen) and in chunks of 1, 2 and 3 images; implicit GEMM (where the adapter
    // has subgroups and the columns are whole vec4s) per image and side by side, and chosen.
    let modes = [
        (false, 0, None, Some(false)),
        (true, 0, Some(false), Some(false)),
        (true, 0, Some(true), Some(false)),
        (true, 0, None, Some(false)),
        (true, 1, None, Some(false)),
        (true, 2, Some(true), Some(false)),
        (true, 3, Some(true), Some(false)),
        (true, 2, Some(false), Some(false)),
        (true, 0, Some(false), Some(true)),
        (true, 0, Some(true), Some(true)),
        (true, 2, None, None),
    ];
    for ((xs, ws, stride, pad, with_bias), (gemm, chunk, wide, implicit)) in
        cases.into_iter().flat_map(|c| modes.map(|m| (c, m)))
    {
        let o = Conv2dOpts { stride, pad, gemm, chunk, wide, implicit };
        let x = rng.vec(xs.iter().product(), -1.0, 1.0);
        let w = rng.vec(ws.iter().product(), -1.0, 1.0);
        let b = rng.vec(ws[0], -1.0, 1.0);
        let want = conv2d_ref(&x, &xs, &w, &ws, with_bias.then_some(&b[..]), o).unwrap();
        let mut rec = Recorder::new(g);
        let bt = up(&b, &[ws[0]]);
        let y = conv2d(&mut rec, &up(&x, &xs), &up(&w, &ws), with_bias.then_some(&bt), o).unwrap();
        rec.finish().unwrap();
        assert_close(
            &y.to_vec(g).unwrap(),
            &want,
            1e-5,
            1e-4,
            &format!("conv2d x {xs:?} w {ws:?} s{stride} p{pad} gemm {gemm} chunk {chunk} wide {wide:?} implicit {implicit:?}"),
        );
        // The two adjoints, direct and lowered to GEMM.
        let ys = y.shape().to_vec();
        let gy = rng.vec(ys.iter().product(), -1.0, 1.0);
        let (gx, gw) = (Tensor::empty(g, &xs).unwrap(), Tensor::empty(g, &ws).unwrap());
        let mut rec = Recorder::new(g);
        conv2d_bwd_input_into(&mut rec, &up(&gy, &ys), &up(&w, &ws), o, &gx).unwrap();
        conv2d_bwd_weight_into(&mut rec, &up(&gy, &ys), &up(&x, &xs), o, &gw).unwrap();
        rec.finish().unwrap();
        assert_close(
            &gx.to_vec(g).unwrap(),
            &conv2d_bwd_input_ref(&gy, &w, &xs, &ws, o),
            1e-5,
            1e-4,
            &format!("conv2d_bwd_input {xs:?} {ws:?} gemm {gemm} chunk {chunk} wide {wide:?} implicit {implicit:?}"),
        );
        assert_close(
            &gw.to_vec(g).unwrap(),
            &conv2d_bwd_weight_ref(&gy, &x, &xs, &ws, o),
            1e-4,
            1e-4,
            &format!("conv2d_bwd_weight {xs:?} {ws:?} gemm {gemm}"),
        );
    }
    let mut rec = Recorder::new(g);
    let err =
        conv2d(&mut rec, &up(&[0.0; 16], &[1, 1, 4, 4]), &up(&[0.0; 36], &[1, 1, 6, 6]), None, Conv2dOpts::default())
            .unwrap_err();
    assert!(matches!(&err, Error::Shape(m) if m.contains("6x6")), "{err}");
    let err =
        conv2d(&mut rec, &up(&[0.0; 32], &[1, 2, 4, 4]), &up(&[0.0; 27], &[1, 3, 3, 3]), None, Conv2dOpts::default())
            .unwrap_err();
    assert!(matches!(err, Error::Shape(_)));
    // The direct weight gradient sums over batch x H x W in one invocation: past the loop
    // budget of a CPU adapter, a clear error.
    if g.is_cpu() {
        let o = Conv2dOpts { pad: 1, gemm: false, ..Default::default() };
        let (x, gy) = (up(&vec![0.0; 256 * 256], &[1, 1, 256, 256]), up(&vec![0.0; 256 * 256], &[1, 1, 256, 256]));
        let gw = Tensor::empty(g, &[1, 1, 3, 3]).unwrap();
        let err = conv2d_bwd_weight_into(&mut rec, &gy, &x, o, &gw).unwrap_err();
        assert!(matches!(&err, Error::Limit(m) if m.contains("weight gradient")), "{err}");
    }
}

#[test]
fn group_norm_and_softmax_match_reference() {
    let g = gpu();
    let mut rng = Rng::new(14);
    for (shape, groups) in [(vec![2, 32, 7, 7], 8), (vec![3, 6, 5], 3), (vec![1, 64, 28, 28], 8), (vec![4, 4], 2)] {
        let c = shape[1];
        let x: Vec<f32> = rng.vec(shape.iter().product(), -3.0, 5.0);
        let (gm, bt) = (rng.vec(c, 0.5, 1.5), rng.vec(c, -0.5, 0.5));
        let (want, want_stats) = group_norm_ref(&x, &shape, &gm, &bt, groups, 1e-5);
        let mut rec = Recorder::new(g);
        let (y, stats) = group_norm(&mut rec, &up(&x, &shape), &up(&gm, &[c]), &up(&bt, &[c]), groups, 1e-5).unwrap();
        rec.finish().unwrap();
        assert_close(&y.to_vec(g).unwrap(), &want, 1e-4, 1e-4, &format!("group_norm {shape:?}"));
        assert_close(&stats.to_vec(g).unwrap(), &want_stats, 1e-4, 1e-4, "group_norm stats");
        // The fused kernels of the graph op: the forward against the same reference.
        let mut rec = Recorder::new(g);
        let yf = Tensor::empty(g, &shape).unwrap();
        group_norm_into(&mut rec, &up(&x, &shape), &up(&gm, &[c]), &up(&bt, &[c]), groups, 1e-5, &yf).unwrap();
        rec.finish().unwrap();
        assert_close(&yf.to_vec(g).unwrap(), &want, 1e-4, 1e-4, &format!("fused group_norm {shape:?}"));
    }
    // Long rows (one group of 8 x 128 x 128 = 131,072 elements, and a tail past whole 64s):
    // one invocation per row must loop far fewer than llvmpipe's 65,535 times (a loop per
    // element ran 262,144 and stopped early); the fused gradient against an f64 reference.
    for (shape, groups) in [(vec![1, 8, 128, 128], 1), (vec![2, 6, 7, 13], 2)] {
        let c = shape[1];
        let n: usize = shape.iter().product();
        let per = n / shape[0] / groups;
        let x: Vec<f32> = rng.vec(n, -3.0, 5.0);
        let gy: Vec<f32> = rng.vec(n, -1.0, 1.0);
        let (gm, bt) = (rng.vec(c, 0.5, 1.5), rng.vec(c, -0.5, 0.5));
        let (want, _) = group_norm_ref(&x, &shape, &gm, &bt, groups, 1e-5);
        let sp = per * groups / c;
        let mut want_gx = vec![0f32; n];
        for row in 0..shape[0] * groups {
            let idx = |t: usize| row * per + t;
            let ch = |t: usize| (row % groups) * (c / groups) + t / sp;
            let xr: Vec<f64> = (0..per).map(|t| x[idx(t)] as f64).collect();
            let mean = xr.iter().sum::<f64>() / per as f64;
            let rstd = 1.0 / (xr.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / per as f64 + 1e-5).sqrt();
            let gg: Vec<f64> = (0..per).map(|t| gy[idx(t)] as f64 * gm[ch(t)] as f64).collect();
            let m1 = gg.iter().sum::<f64>() / per as f64;
            let m2 = (0..per).map(|t| gg[t] * (xr[t] - mean) * rstd).sum::<f64>() / per as f64;
            for t in 0..per {
                want_gx[idx(t)] = (rstd * (gg[t] - m1 - (xr[t] - mean) * rstd * m2)) as f32;
            }
        }
        let (yf, gxf) = (Tensor::empty(g, &shape).unwrap(), Tensor::empty(g, &shape).unwrap());
        let mut rec = Recorder::new(g);
        let (xt, gmt) = (up(&x, &shape), up(&gm, &[c]));
        group_norm_into(&mut rec, &xt, &gmt, &up(&bt, &[c]), groups, 1e-5, &yf).unwrap();
        group_norm_bwd_into(&mut rec, &up(&gy, &shape), &xt, &gmt, groups, 1e-5, &gxf).unwrap();
        rec.finish().unwrap();
        assert_close(&yf.to_vec(g).unwrap(), &want, 1e-4, 1e-4, &format!("fused group_norm, long rows {shape:?}"));
        assert_close(&gxf.to_vec(g).unwrap(), &want_gx, 1e-4, 1e-3, &format!("fused group_norm gradient {shape:?}"));
    }
    if g.is_cpu() {
        let mut rec = Recorder::new(g);
        let long = Tensor::empty(g, &[1, 2_000_000]).unwrap();
        let err = softmax(&mut rec, &long).unwrap_err();
        assert!(matches!(&err, Error::Limit(m) if m.contains("2000000")), "{err}");
        let big = Tensor::empty(g, &[1, 32, 256, 256]).unwrap();
        let (gm, bt) = (up(&[1.0; 32], &[32]), up(&[0.0; 32], &[32]));
        let err = group_norm_into(&mut rec, &big, &gm, &bt, 1, 1e-5, &big.clone()).unwrap_err();
        assert!(matches!(&err, Error::Limit(m) if m.contains("2097152")), "{err}");
    }
    let mut rec = Recorder::new(g);
    assert!(matches!(
        group_norm(&mut rec, &up(&[0.0; 12], &[1, 6, 2]), &up(&[1.0; 6], &[6]), &up(&[0.0; 6], &[6]), 4, 1e-5),
        Err(Error::Shape(_))
    ));
    for shape in [vec![5, 7], vec![3, 1000], vec![2, 3, 65], vec![1, 1]] {
        let x = rng.vec(shape.iter().product(), -20.0, 20.0);
        let want = softmax_ref(&x, *shape.last().unwrap());
        let mut rec = Recorder::new(g);
        let y = softmax(&mut rec, &up(&x, &shape)).unwrap();
        rec.finish().unwrap();
        assert_close(&y.to_vec(g).unwrap(), &want, 1e-6, 1e-4, &format!("softmax {shape:?}"));
    }
}

#[test]
fn attention_self_and_cross_match_reference() {
    let g = gpu();
    let mut rng = Rng::new(15);
    // (batch*heads, Nq, Nk, D, DV): self-attention has Nq == Nk; cross-attention does not.
    let shapes = [
        (2, 49, 49, 64, 64),
        (3, 17, 5, 32, 16),
        (1, 1, 300, 8, 8),
        (4, 33, 33, 3, 5),
        (1, 7, 2, 128, 128),
        (2, 70, 9, 16, 32),
        (1, 40, 3, 128, 4),
        // Enough (b, h) for several queries per invocation in the subgroup kernel (2, 7, 3, 8
        // on a 2-core CPU adapter).
        (160, 12, 5, 16, 8),
        (64, 49, 49, 64, 64),
        (48, 33, 20, 128, 32),
        (16, 64, 20, 32, 32),
        // The few-keys kernel: 64 keys (every slot), one, eight, 57; value rows of 1, 5, 9
        // vec4s (lanes without a share, a partial second share); chunked queries.
        (3, 10, 64, 16, 36),
        (2, 9, 1, 8, 20),
        (5, 21, 8, 128, 4),
        (1, 500, 57, 32, 32),
        // The scalar kernel without subgroups (head dims not multiples of 4).
        (2, 20, 70, 6, 10),
    ];
    if g.is_cpu() && g.features.contains(wgpu::Features::SUBGROUP) {
        let tqs: std::collections::BTreeSet<usize> =
            shapes.iter().map(|&(bh, nq, _, d, dv)| tq_for(g, bh, d.max(dv), nq)).collect();
        assert!(tqs.len() >= 3, "queries per invocation covered on this adapter: {tqs:?}");
        // The rule itself, whatever the host: on a 2-core CPU adapter these shapes take
        // 1, 2, 3, 7 and 8 queries per invocation; on a GPU, never more per-query state than
        // 128 floats per invocation (registers).
        let rule = |cores| shapes.iter().map(move |&(bh, nq, _, d, dv)| tq_rule(cores, bh, d.max(dv), nq));
        let two: std::collections::BTreeSet<usize> = rule(Some(2)).collect();
        assert!([1, 2, 3, 7, 8].iter().all(|t| two.contains(t)), "2 cores: {two:?}");
        for (&(bh, nq, _, d, dv), tq) in shapes.iter().zip(rule(None)) {
            assert!(tq == 1 || tq * d.max(dv) <= 128, "GPU: TQ {tq} for {:?}", (bh, nq, d, dv));
        }
        // Both step lengths, and four-key steps over key counts that are not multiples of 4.
        let kbs: Vec<(usize, usize)> = shapes
            .iter()
            .map(|&(bh, nq, nk, d, dv)| (kb_for(g, tq_for(g, bh, d.max(dv), nq), d.max(dv)), nk))
            .collect();
        assert!(kbs.iter().any(|&(kb, _)| kb == 2), "two keys per step covered: {kbs:?}");
        assert!(kbs.iter().any(|&(kb, nk)| kb == 4 && nk % 4 != 0), "four keys per step covered: {kbs:?}");
    }
    use AttentionKernel::{FewKeys, Plain, Subgroup};
    if g.features.contains(wgpu::Features::SUBGROUP) && g.info.subgroup_min_size >= 8 {
        // What runs: the few-keys kernel up to 64 keys (by default on CPU adapters), with
        // queries split into chunks somewhere.
        let few: Vec<_> = shapes.iter().filter(|s| kernel_for(g, FewKeys, s.2, s.3, s.4) == FewKeys).collect();
        assert!(few.len() >= 10 && kernel_for(g, FewKeys, 65, 16, 16) == Subgroup, "{few:?}");
        assert!(few.iter().any(|s| s.2 == 64) && few.iter().any(|s| kv_chunks(g, s.0, s.1) > 1));
        let auto = if g.is_cpu() { FewKeys } else { Subgroup };
        assert_eq!(kernel_for(g, AttentionKernel::Auto, 49, 64, 64), auto);
        assert_eq!(kernel_for(g, FewKeys, 49, 3, 5), Plain);
    }
    // Queries per invocation of the vec4 kernel without subgroups: several values covered.
    let tqs: std::collections::BTreeSet<usize> = shapes
        .iter()
        .filter(|s| s.3 % 4 == 0 && s.4 % 4 == 0)
        .map(|&(bh, nq, _, d, dv)| tq_plain(g, bh, d.max(dv), nq))
        .collect();
    assert!(tqs.len() >= 3, "{tqs:?}");
    for ((bh, nq, nk, d, dv), kernel) in shapes.into_iter().flat_map(|s| [(s, FewKeys), (s, Subgroup), (s, Plain)]) {
        if kernel_for(g, kernel, nk, d, dv) != kernel {
            continue;
        }
        let q = rng.vec(bh * nq * d, -2.0, 2.0);
        let k = rng.vec(bh * nk * d, -2.0, 2.0);
        let v = rng.vec(bh * nk * dv, -1.0, 1.0);
        let scale = 1.0 / (d as f32).sqrt();
        let (want, want_lse) = attention_ref(&q, &k, &v, bh, nq, nk, d, dv, scale);
        let mut rec = Recorder::new(g);
        let (o, lse) = attention_with(
            &mut rec,
            &up(&q, &[bh, nq, d]),
            &up(&k, &[bh, nk, d]),
            &up(&v, &[bh, nk, dv]),
            None,
            kernel,
        )
        .unwrap();
        rec.finish().unwrap();
        assert_eq!(o.shape(), &[bh, nq, dv]);
        assert_close(
            &o.to_vec(g).unwrap(),
            &want,
            1e-5,
            1e-4,
            &format!("attention {bh} {nq} {nk} {d} {dv} {kernel:?}"),
        );
        assert_close(&lse.to_vec(g).unwrap(), &want_lse, 1e-5, 1e-5, "attention logsumexp");
    }
    let mut rec = Recorder::new(g);
    let err =
        attention(&mut rec, &up(&[0.0; 8], &[1, 2, 4]), &up(&[0.0; 6], &[1, 2, 3]), &up(&[0.0; 6], &[1, 2, 3]), None)
            .unwrap_err();
    assert!(matches!(err, Error::Shape(_)));
    // Past one invocation's loop budget on a CPU adapter (lavapipe cuts loops after 65,535
    // iterations): a clear error, not a wrong result; both kernels.
    if g.is_cpu() {
        // (keys, head dim, kernel): the subgroup and vec4 kernels take two keys per step, the
        // scalar one (head dim 3) loops over D and DV per key.
        for (nk, d, kernel) in [(250_000, 4, Subgroup), (250_000, 4, Plain), (5000, 3, Plain)] {
            let (q, kv) = (up(&vec![0.0; 4 * d], &[1, 4, d]), up(&vec![0.0; nk * d], &[1, nk, d]));
            let err = attention_with(&mut rec, &q, &kv, &kv, None, kernel).unwrap_err();
            assert!(matches!(&err, Error::Limit(m) if m.contains(&format!("{nk} keys"))), "{err}");
        }
    }
}

#[test]
fn upsample_concat_embedding_match_reference() {
    let g = gpu();
    let mut rng = Rng::new(16);
    let xs = [2, 3, 7, 5];
    let x = rng.vec(xs.iter().product(), -1.0, 1.0);
    let y2 = rng.vec(2 * 4 * 7 * 5, -1.0, 1.0);
    let t = rng.vec(37, 0.0, 5.0);
    let w = rng.vec(16, -3.0, 3.0);
    let mut rec = Recorder::new(g);
    let u = upsample2x(&mut rec, &up(&x, &xs)).unwrap();
    let c = concat(&mut rec, &up(&x, &xs), &up(&y2, &[2, 4, 7, 5]), 1).unwrap();
    let c0 = concat(&mut rec, &up(&x, &xs), &up(&x, &xs), 0).unwrap();
    let e = embed(&mut rec, &up(&t, &[37]), 33, &Embedding::Sinusoidal { max_period: 10_000.0 }).unwrap();
    let f = embed(&mut rec, &up(&t, &[37]), 32, &Embedding::Fourier { w: up(&w, &[16]) }).unwrap();
    let tr = transpose(&mut rec, &up(&x, &[6, 7, 5])).unwrap();
    // Four elements per invocation where the inner block is whole vec4s: concat of [2, 3, 4, 2]
    // and [2, 2, 4, 2] along 1; slice 1..4 of axis 1 of that.
    let c4 = concat(&mut rec, &up(&x[..48], &[2, 3, 4, 2]), &up(&x[48..80], &[2, 2, 4, 2]), 1).unwrap();
    let s4 = Tensor::empty(g, &[2, 3, 4, 2]).unwrap();
    slice_into(&mut rec, &c4, 1, 1, &s4).unwrap();
    // swap_outer on a block [3, 5, 7] read from element 4 of x and written from element 9 of sw.
    let sw = Tensor::from_slice(g, &vec![-9.0; 9 + 105 + 3], &[117]).unwrap();
    swap_outer_at(&mut rec, &up(&x, &[210]), 4, [3, 5, 7], &sw, 9).unwrap();
    rec.finish().unwrap();
    let mut want_sw = vec![-9.0; 9];
    want_sw.extend(swap_outer_ref(&x[4..4 + 105], [3, 5, 7]));
    want_sw.extend([-9.0; 3]);
    assert_close(&sw.to_vec(g).unwrap(), &want_sw, 0.0, 0.0, "swap_outer");
    // swap_outer_crop: [3, 2, 5, 7] -> [2, 3, 5, 4], dropping three columns of every row.
    let mut rec = Recorder::new(g);
    let cr = Tensor::empty(g, &[2, 3, 5, 4]).unwrap();
    swap_outer_crop(&mut rec, &up(&x, &[210]), [3, 2, 5, 7], 4, &cr).unwrap();
    rec.finish().unwrap();
    assert_close(&cr.to_vec(g).unwrap(), &swap_outer_crop_ref(&x, [3, 2, 5, 7], 4), 0.0, 0.0, "swap_outer_crop");
    let mut rec = Recorder::new(g);
    assert!(matches!(swap_outer_at(&mut rec, &up(&x, &[210]), 110, [3, 5, 7], &sw, 0), Err(Error::Shape(_))));
    assert!(matches!(swap_outer_crop(&mut rec, &up(&x, &[210]), [3, 2, 5, 7], 8, &cr), Err(Error::Shape(_))));
    assert_eq!(tr.shape(), &[6, 5, 7]);
    assert_close(&tr.to_vec(g).unwrap(), &transpose_ref(&x, &[6, 7, 5]), 0.0, 0.0, "transpose");
    assert_eq!(u.shape(), &[2, 3, 14, 10]);
    assert_close(&u.to_vec(g).unwrap(), &upsample2x_ref(&x, &xs), 0.0, 0.0, "upsample2x");
    let want_c4 = concat_ref(&x[..48], &[2, 3, 4, 2], &x[48..80], &[2, 2, 4, 2], 1);
    assert_close(&c4.to_vec(g).unwrap(), &want_c4, 0.0, 0.0, "concat, vec4");
    let want_s4: Vec<f32> = (0..2).flat_map(|o| want_c4[(o * 5 + 1) * 8..(o * 5 + 4) * 8].to_vec()).collect();
    assert_close(&s4.to_vec(g).unwrap(), &want_s4, 0.0, 0.0, "slice, vec4");
    assert_eq!(c.shape(), &[2, 7, 7, 5]);
    assert_close(&c.to_vec(g).unwrap(), &concat_ref(&x, &xs, &y2, &[2, 4, 7, 5], 1), 0.0, 0.0, "concat axis 1");
    assert_close(&c0.to_vec(g).unwrap(), &concat_ref(&x, &xs, &x, &xs, 0), 0.0, 0.0, "concat axis 0");
    assert_close(&e.to_vec(g).unwrap(), &embed_ref(&t, 33, 10_000.0, None), 2e-5, 1e-4, "sinusoidal");
    assert_close(&f.to_vec(g).unwrap(), &embed_ref(&t, 32, 0.0, Some(&w)), 1e-4, 1e-4, "fourier");
    let mut rec = Recorder::new(g);
    assert!(matches!(concat(&mut rec, &up(&x, &xs), &up(&[0.0; 10], &[2, 5]), 1), Err(Error::Shape(_))));
}

#[test]
fn rng_is_bit_identical_to_cpu_and_independent_of_split() {
    let g = gpu();
    let key = RngKey { seed: 0x1234_5678_9abc_def0, stream: 42, counter: (1u64 << 32) - 3 }; // crosses a 32-bit carry
    let n = 10_001;
    let mut rec = Recorder::new(g);
    let bits = random(&mut rec, &[n], key, Dist::Bits).unwrap();
    let uni = random(&mut rec, &[n], key, Dist::Uniform).unwrap();
    let nor = random(&mut rec, &[n], key, Dist::Normal).unwrap();
    // The second half drawn on its own: counter advanced by the blocks of the first half.
    let half = 5000; // multiple of 4
    let tail =
        random(&mut rec, &[n - half], RngKey { counter: key.counter + half as u64 / 4, ..key }, Dist::Bits).unwrap();
    rec.finish().unwrap();
    let want_bits: Vec<u32> = random_ref(n, key, Dist::Bits).into_iter().map(f32::to_bits).collect();
    assert_eq!(bits.to_u32(g).unwrap(), want_bits, "raw bits");
    let want_uni: Vec<u32> = random_ref(n, key, Dist::Uniform).into_iter().map(f32::to_bits).collect();
    assert_eq!(uni.to_u32(g).unwrap(), want_uni, "uniform bits");
    assert_eq!(tail.to_u32(g).unwrap(), want_bits[half..].to_vec(), "split draw");
    let z = nor.to_vec(g).unwrap();
    assert_close(&z, &random_ref(n, key, Dist::Normal), 2e-5, 2e-5, "normal");
    let mean = z.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    let var = z.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
    assert!(mean.abs() < 0.05 && (var - 1.0).abs() < 0.05, "normal moments {mean} {var}");
    let u = uni.to_vec(g).unwrap();
    assert!(u.iter().all(|&v| v > 0.0 && v < 1.0));
}
