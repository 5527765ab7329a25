//! matmul against its CPU reference on random shapes, every tile configuration, transposes,
//! batches and broadcasting, accumulation, and bad shapes.

mod common;
use common::{assert_close, gpu, Rng};
use scoregen::ops::matmul::{matmul, matmul_acc, matmul_naive, matmul_ref, MatmulOpts, CANDIDATES};
use scoregen::{Error, Recorder, Tensor};

fn check(rng: &mut Rng, a_shape: &[usize], b_shape: &[usize], o: MatmulOpts) {
    let g = gpu();
    let a: Vec<f32> = rng.vec(a_shape.iter().product(), -1.0, 1.0);
    let b: Vec<f32> = rng.vec(b_shape.iter().product(), -1.0, 1.0);
    let (want, shape) = matmul_ref(&a, a_shape, &b, b_shape, o).unwrap();
    let ta = Tensor::from_slice(g, &a, a_shape).unwrap();
    let tb = Tensor::from_slice(g, &b, b_shape).unwrap();
    let mut rec = Recorder::new(g);
    let c = matmul(&mut rec, &ta, &tb, o).unwrap();
    rec.finish().unwrap();
    assert_eq!(c.shape(), shape.as_slice());
    let k = if o.trans_a { a_shape[a_shape.len() - 2] } else { a_shape[a_shape.len() - 1] };
    assert_close(&c.to_vec(g).unwrap(), &want, 1e-5 * k as f32, 1e-4, &format!("matmul {a_shape:?} {b_shape:?} {o:?}"));
}

#[test]
fn every_config_matches_reference_on_odd_shapes() {
    let mut rng = Rng::new(1);
    for cfg in CANDIDATES.iter().filter(|c| c.fits(gpu())) {
        for _ in 0..1 {
            let (m, k, n) = (rng.int(1, 150), rng.int(1, 70), rng.int(1, 150));
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let a_shape = if ta { vec![k, m] } else { vec![m, k] };
                let b_shape = if tb { vec![n, k] } else { vec![k, n] };
                check(&mut rng, &a_shape, &b_shape, MatmulOpts { trans_a: ta, trans_b: tb, config: Some(*cfg) });
            }
        }
        // N a multiple of 4 takes the vec4 path of the register family.
        check(&mut rng, &[37, 29], &[29, 68], MatmulOpts { config: Some(*cfg), ..Default::default() });
    }
}

#[test]
fn batched_and_broadcast() {
    let mut rng = Rng::new(2);
    for cfg in [CANDIDATES[0], CANDIDATES[2], CANDIDATES[5]].into_iter().filter(|c| c.fits(gpu())) {
        let o = MatmulOpts { config: Some(cfg), ..Default::default() };
        check(&mut rng, &[3, 17, 9], &[3, 9, 20], o);
        check(&mut rng, &[4, 17, 9], &[9, 13], o);
        check(&mut rng, &[33, 9], &[5, 9, 12], o);
        check(&mut rng, &[2, 9, 17], &[2, 20, 9], MatmulOpts { trans_a: true, trans_b: true, config: Some(cfg) });
    }
}

#[test]
fn tuned_config_and_large_sizes() {
    let mut rng = Rng::new(3);
    check(&mut rng, &[257, 130], &[130, 255], MatmulOpts::default());
    check(&mut rng, &[64, 300], &[300, 64], MatmulOpts::default());
    // Narrow products (N < 8) take the swapped path.
    check(&mut rng, &[200, 70], &[70, 2], MatmulOpts::default());
    check(&mut rng, &[200, 70], &[3, 70], MatmulOpts { trans_b: true, ..Default::default() });
    check(&mut rng, &[70, 128], &[70, 5], MatmulOpts { trans_a: true, ..Default::default() });
}

#[test]
fn accumulate_adds_into_output() {
    let g = gpu();
    let mut rng = Rng::new(4);
    let (a, b, c0) = (rng.vec(6 * 5, -1.0, 1.0), rng.vec(5 * 8, -1.0, 1.0), rng.vec(6 * 8, -1.0, 1.0));
    for cfg in [CANDIDATES[0], CANDIDATES[2], CANDIDATES[5]].into_iter().filter(|c| c.fits(gpu())) {
        let (ab, _) = matmul_ref(&a, &[6, 5], &b, &[5, 8], MatmulOpts::default()).unwrap();
        let want: Vec<f32> = ab.iter().zip(&c0).map(|(x, y)| x + y).collect();
        let c = Tensor::from_slice(g, &c0, &[6, 8]).unwrap();
        let mut rec = Recorder::new(g);
        let (ta, tb) = (Tensor::from_slice(g, &a, &[6, 5]).unwrap(), Tensor::from_slice(g, &b, &[5, 8]).unwrap());
        matmul_acc(&mut rec, &ta, &tb, &c, MatmulOpts { config: Some(cfg), ..Default::default() }).unwrap();
        rec.finish().unwrap();
        assert_close(&c.to_vec(g).unwrap(), &want, 1e-5, 1e-5, "matmul_acc");
    }
}

#[test]
fn naive_baseline_is_correct() {
    let g = gpu();
    let mut rng = Rng::new(5);
    let (a, b) = (rng.vec(19 * 23, -1.0, 1.0), rng.vec(23 * 31, -1.0, 1.0));
    let (want, _) = matmul_ref(&a, &[19, 23], &b, &[23, 31], MatmulOpts::default()).unwrap();
    let mut rec = Recorder::new(g);
    let c = matmul_naive(
        &mut rec,
        &Tensor::from_slice(g, &a, &[19, 23]).unwrap(),
        &Tensor::from_slice(g, &b, &[23, 31]).unwrap(),
    )
    .unwrap();
    rec.finish().unwrap();
    assert_close(&c.to_vec(g).unwrap(), &want, 1e-5, 1e-4, "naive");
}

#[test]
fn mismatched_shapes_are_clear_errors() {
    let g = gpu();
    let a = Tensor::zeros(g, &[4, 5]).unwrap();
    let b = Tensor::zeros(g, &[6, 7]).unwrap();
    let mut rec = Recorder::new(g);
    match matmul(&mut rec, &a, &b, MatmulOpts::default()) {
        Err(Error::Shape(m)) => assert!(m.contains("[4, 5]") && m.contains("[6, 7]"), "{m}"),
        other => panic!("expected a shape error, got {other:?}"),
    }
    let c = Tensor::zeros(g, &[2, 5, 3]).unwrap();
    let d = Tensor::zeros(g, &[3, 3, 4]).unwrap();
    assert!(matches!(matmul(&mut rec, &c, &d, MatmulOpts::default()), Err(Error::Shape(_))));
    let too_big = Tensor::empty(g, &[g.limits.max_storage_buffer_binding_size as usize / 4 + 1]);
    assert!(matches!(too_big, Err(Error::Limit(_))), "{too_big:?}");
}

/// c = silu(A B^T + bias), fused into the vec4 kernels' stores or run as separate ops by the
/// other families: both against the reference, on shapes that are not tile multiples.
#[test]
fn epilogue_bias_and_silu_match_reference() {
    use scoregen::ops::matmul::{matmul_epilogue, Epilogue};
    let g = gpu();
    let mut rng = Rng::new(9);
    // None: the adapter's choice, which sends N < 8 with K % 4 == 0 to the narrow kernel.
    let configs: Vec<Option<_>> =
        std::iter::once(None).chain(CANDIDATES.iter().filter(|c| c.fits(g)).map(|c| Some(*c))).collect();
    for cfg in configs {
        for (m, k, n, silu) in [
            (37, 29, 68, true),
            (5, 3, 12, false),
            (70, 33, 20, true),
            (9, 8, 6, true),
            (130, 256, 2, false),
            (3, 12, 7, true),
        ] {
            let a: Vec<f32> = rng.vec(m * k, -1.0, 1.0);
            let w: Vec<f32> = rng.vec(n * k, -1.0, 1.0);
            let bias: Vec<f32> = rng.vec(n, -1.0, 1.0);
            let o = MatmulOpts { trans_a: false, trans_b: true, config: cfg };
            let (prod, _) = matmul_ref(&a, &[m, k], &w, &[n, k], o).unwrap();
            let want: Vec<f32> = prod
                .iter()
                .enumerate()
                .map(|(i, &p)| {
                    let y = p + bias[i % n];
                    if silu {
                        y / (1.0 + (-y).exp())
                    } else {
                        y
                    }
                })
                .collect();
            let (ta, tw, tb) = (
                Tensor::from_slice(g, &a, &[m, k]).unwrap(),
                Tensor::from_slice(g, &w, &[n, k]).unwrap(),
                Tensor::from_slice(g, &bias, &[n]).unwrap(),
            );
            let c = Tensor::empty(g, &[m, n]).unwrap();
            let mut rec = Recorder::new(g);
            matmul_epilogue(&mut rec, &ta, &tw, &c, o, Epilogue { bias: Some(&tb), silu }).unwrap();
            rec.finish().unwrap();
            assert_close(&c.to_vec(g).unwrap(), &want, 1e-4, 1e-4, &format!("epilogue {cfg:?} {m}x{k}x{n}"));
        }
    }
}

/// Inner dimensions past 65,535 (llvmpipe ends an invocation's loops there, and each matmul
/// kernel loops once per k): on a CPU adapter the product is summed over chunks of K. Every
/// transpose, a batched product, the narrow kernel's shape, accumulation and an epilogue.
#[test]
fn long_inner_dimension_matches_reference() {
    use scoregen::ops::matmul::{matmul_epilogue, Epilogue};
    let g = gpu();
    let mut rng = Rng::new(21);
    let k = 70_001;
    let cases: [(&[usize], &[usize], bool, bool); 5] = [
        (&[3, k], &[k, 8], false, false),
        (&[k, 5], &[k, 12], true, false),
        (&[2, 4, k], &[2, 16, k], false, true),
        (&[9, k], &[6, k], false, true),
        (&[2, k, 3], &[k, 4], true, false),
    ];
    for (a_shape, b_shape, trans_a, trans_b) in cases {
        let o = MatmulOpts { trans_a, trans_b, config: None };
        let a: Vec<f32> = rng.vec(a_shape.iter().product(), -1.0, 1.0);
        let b: Vec<f32> = rng.vec(b_shape.iter().product(), -1.0, 1.0);
        let (want, shape) = matmul_ref(&a, a_shape, &b, b_shape, o).unwrap();
        let (ta, tb) = (Tensor::from_slice(g, &a, a_shape).unwrap(), Tensor::from_slice(g, &b, b_shape).unwrap());
        let c0: Vec<f32> = rng.vec(want.len(), -1.0, 1.0);
        let acc = Tensor::from_slice(g, &c0, &shape).unwrap();
        let mut rec = Recorder::new(g);
        let c = matmul(&mut rec, &ta, &tb, o).unwrap();
        matmul_acc(&mut rec, &ta, &tb, &acc, o).unwrap();
        rec.finish().unwrap();
        let what = format!("matmul {a_shape:?} {b_shape:?} {o:?}");
        assert_close(&c.to_vec(g).unwrap(), &want, 2e-2, 1e-4, &what);
        let want_acc: Vec<f32> = want.iter().zip(&c0).map(|(w, c)| w + c).collect();
        assert_close(&acc.to_vec(g).unwrap(), &want_acc, 2e-2, 1e-4, &format!("accumulated {what}"));
    }
    // Every candidate configuration at K = 30,000 (the tiled kernel loops ~2.7 times per k:
    // its 8x8 tiles came out wrong from K = 24,000-28,000 before chunks of 16,384).
    for cfg in CANDIDATES.iter().filter(|c| c.fits(g)) {
        let (m, k, n) = (9, 30_000, 12);
        let o = MatmulOpts { config: Some(*cfg), ..Default::default() };
        let (a, b) = (rng.vec(m * k, -1.0, 1.0), rng.vec(k * n, -1.0, 1.0));
        let (want, _) = matmul_ref(&a, &[m, k], &b, &[k, n], o).unwrap();
        let (ta, tb) = (Tensor::from_slice(g, &a, &[m, k]).unwrap(), Tensor::from_slice(g, &b, &[k, n]).unwrap());
        let mut rec = Recorder::new(g);
        let c = matmul(&mut rec, &ta, &tb, o).unwrap();
        rec.finish().unwrap();
        assert_close(&c.to_vec(g).unwrap(), &want, 2e-2, 1e-4, &format!("{} with K = {k}", cfg.name()));
    }
    // An epilogue applied once after the chunks: c = SiLU(a w^T + bias).
    let (m, n) = (5, 12);
    let (a, w, bias) = (rng.vec(m * k, -1.0, 1.0), rng.vec(n * k, -1.0, 1.0), rng.vec(n, -1.0, 1.0));
    let o = MatmulOpts { trans_a: false, trans_b: true, config: None };
    let (prod, _) = matmul_ref(&a, &[m, k], &w, &[n, k], o).unwrap();
    let want: Vec<f32> =
        prod.iter().enumerate().map(|(i, &p)| (p + bias[i % n]) / (1.0 + (-(p + bias[i % n])).exp())).collect();
    let c = Tensor::empty(g, &[m, n]).unwrap();
    let mut rec = Recorder::new(g);
    let (ta, tw, tb) = (
        Tensor::from_slice(g, &a, &[m, k]).unwrap(),
        Tensor::from_slice(g, &w, &[n, k]).unwrap(),
        Tensor::from_slice(g, &bias, &[n]).unwrap(),
    );
    matmul_epilogue(&mut rec, &ta, &tw, &c, o, Epilogue { bias: Some(&tb), silu: true }).unwrap();
    rec.finish().unwrap();
    assert_close(&c.to_vec(g).unwrap(), &want, 2e-2, 1e-4, "epilogue after chunks of K");
}
