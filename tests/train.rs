//! Optimizer kernels against a CPU Adam/AdamW with schedule, clipping and EMA; a small
//! regression problem trained to a loss threshold through the planned training step.

mod common;
use common::{gpu, Rng};
use scoregen::graph::plan::ParamStore;
use scoregen::graph::Graph;
use scoregen::nn::{init_params, mlp, Builder};
use scoregen::ops::elementwise::Unary;
use scoregen::optim::{AdamConfig, Optimizer, TrainStep};
use scoregen::{Recorder, Tensor};

/// Plain Adam/AdamW with warm-up + cosine schedule, global-norm clipping, EMA (f64).
fn cpu_adam(cfg: &AdamConfig, p: &mut [f64], grads: &[Vec<f64>], ema: &mut [f64]) {
    let (mut m, mut v) = (vec![0.0; p.len()], vec![0.0; p.len()]);
    for (t, g) in grads.iter().enumerate() {
        let t = (t + 1) as f64;
        let (w, tot) = (cfg.warmup_steps as f64, cfg.total_steps as f64);
        let lr = if t <= w {
            cfg.lr as f64 * t / w.max(1.0)
        } else if tot > w {
            let prog = ((t - w) / (tot - w)).clamp(0.0, 1.0);
            cfg.lr_min as f64 + 0.5 * (cfg.lr - cfg.lr_min) as f64 * (1.0 + (std::f64::consts::PI * prog).cos())
        } else {
            cfg.lr as f64
        };
        let norm = g.iter().map(|x| x * x).sum::<f64>().sqrt();
        let scale = if cfg.clip_norm > 0.0 { (cfg.clip_norm as f64 / (norm + 1e-6)).min(1.0) } else { 1.0 };
        for i in 0..p.len() {
            let gi = g[i] * scale;
            m[i] = cfg.beta1 as f64 * m[i] + (1.0 - cfg.beta1 as f64) * gi;
            v[i] = cfg.beta2 as f64 * v[i] + (1.0 - cfg.beta2 as f64) * gi * gi;
            let mh = m[i] / (1.0 - (cfg.beta1 as f64).powf(t));
            let vh = v[i] / (1.0 - (cfg.beta2 as f64).powf(t));
            if cfg.weight_decay > 0.0 {
                p[i] -= lr * cfg.weight_decay as f64 * p[i];
            }
            p[i] -= lr * mh / (vh.sqrt() + cfg.eps as f64);
            if let Some(d) = cfg.ema_decay {
                ema[i] = d as f64 * ema[i] + (1.0 - d as f64) * p[i];
            }
        }
    }
}

#[test]
fn adam_adamw_schedule_clipping_ema_match_cpu() {
    let g = gpu();
    let mut rng = Rng::new(30);
    let cfgs = [
        AdamConfig::default(),
        AdamConfig {
            lr: 0.05,
            weight_decay: 0.1,
            warmup_steps: 2,
            total_steps: 5,
            lr_min: 0.001,
            clip_norm: 0.5,
            ema_decay: Some(0.9),
            ..Default::default()
        },
    ];
    for cfg in cfgs {
        let n = 300;
        let p0 = rng.vec(n, -1.0, 1.0);
        let grads: Vec<Vec<f32>> = (0..6).map(|_| rng.vec(n, -2.0, 2.0)).collect();
        let mut params = ParamStore::new();
        params.insert("w".into(), Tensor::from_slice(g, &p0, &[n]).unwrap());
        let gt = Tensor::zeros(g, &[n]).unwrap();
        let opt = Optimizer::new(g, cfg, &params, &[("w".into(), gt.clone())]).unwrap();
        for gr in &grads {
            g.queue.write_buffer(gt.buffer().buffer(), 0, bytemuck::cast_slice(gr));
            let mut rec = Recorder::new(g);
            opt.record(&mut rec);
            rec.finish().unwrap();
        }
        let mut want: Vec<f64> = p0.iter().map(|&x| x as f64).collect();
        let mut ema = want.clone();
        let g64: Vec<Vec<f64>> = grads.iter().map(|v| v.iter().map(|&x| x as f64).collect()).collect();
        cpu_adam(&cfg, &mut want, &g64, &mut ema);
        let got = params["w"].to_vec(g).unwrap();
        for i in 0..n {
            assert!((got[i] as f64 - want[i]).abs() < 1e-4, "{cfg:?}: w[{i}] {} vs {}", got[i], want[i]);
        }
        if cfg.ema_decay.is_some() {
            let e = opt.ema("w").unwrap().to_vec(g).unwrap();
            for i in 0..n {
                assert!((e[i] as f64 - ema[i]).abs() < 1e-4, "ema[{i}] {} vs {}", e[i], ema[i]);
            }
        }
        let (t, _, _) = opt.read_state(g).unwrap();
        assert_eq!(t, 6.0);
    }
}

/// The clipping norm of a gradient of 17M numbers: one workgroup sums it, and with one
/// element per loop iteration its invocations ran 66,407 iterations, past the 65,535 after
/// which llvmpipe ends an invocation's loops.
#[test]
fn clipping_norm_of_a_large_gradient() {
    let g = gpu();
    let n = 17_000_000;
    let grad: Vec<f32> = (0..n).map(|i| ((i * 7919) % 2001) as f32 / 1000.0 - 1.0).collect();
    let norm = grad.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
    let mut params = ParamStore::new();
    params.insert("w".into(), Tensor::zeros(g, &[n]).unwrap());
    let gt = Tensor::from_slice(g, &grad, &[n]).unwrap();
    let cfg = AdamConfig { clip_norm: 1.0, ..Default::default() };
    let opt = Optimizer::new(g, cfg, &params, &[("w".into(), gt)]).unwrap();
    let mut rec = Recorder::new(g);
    opt.record(&mut rec);
    rec.finish().unwrap();
    let (_, _, scale) = opt.read_state(g).unwrap();
    let want = 1.0 / (norm + 1e-6);
    assert!((scale as f64 - want).abs() < 1e-4 * want, "clip scale {scale} vs {want} (norm {norm})");
}

#[test]
fn mlp_regression_trains_below_threshold() {
    let gp = gpu();
    let mut rng = Rng::new(31);
    let n = 256;
    let mut g = Graph::new();
    let x = g.input("x", &[n, 2]);
    let y = g.input("y", &[n, 1]);
    let mut b = Builder::new(&mut g);
    let out = mlp(&mut b, x, &[2, 64, 64, 1], Unary::Silu).unwrap();
    let specs = b.specs.clone();
    assert_eq!(b.count(), 2 * 64 + 64 + 64 * 64 + 64 + 64 + 1);
    let d = g.sub(out, y).unwrap();
    let sq = g.unary(Unary::Square, d);
    let loss = g.mean_all(sq).unwrap();
    let params = init_params(gp, &specs, 7).unwrap();
    assert!(params.contains_key("net.0.weight") && params.contains_key("net.4.bias"));
    let step = TrainStep::new(gp, &mut g, loss, &params, AdamConfig { lr: 3e-3, ..Default::default() }).unwrap();
    let xs = rng.vec(2 * n, -2.0, 2.0);
    let ys: Vec<f32> = xs.chunks(2).map(|p| (2.0 * p[0]).sin() * p[1].cos()).collect();
    step.plan.feed(gp, "x", &xs).unwrap();
    step.plan.feed(gp, "y", &ys).unwrap();
    step.run(gp, 1).unwrap();
    let first = step.loss().to_vec(gp).unwrap()[0];
    step.run(gp, 400).unwrap();
    let last = step.loss().to_vec(gp).unwrap()[0];
    let var = ys.iter().map(|v| v * v).sum::<f32>() / n as f32;
    assert!(last < 0.01 && last < first / 10.0, "loss {first} -> {last} (target variance {var})");
}

#[test]
fn w2_unet_parameter_count_matches_the_workload() {
    use scoregen::nn::unet::{unet, UNetConfig};
    let mut g = Graph::new();
    let x = g.input("x", &[2, 1, 28, 28]);
    let t = g.input("t", &[2]);
    let mut b = Builder::new(&mut g);
    let y = unet(&mut b, x, t, None, None, &UNetConfig::w2()).unwrap();
    println!("W2 parameters: {}", b.count());
    assert_eq!(b.g.shape(y), &[2, 1, 28, 28]);
    assert_eq!(b.count(), 1_074_785, "PyTorch's W2 network in PEERS.md has 1,074,785 parameters");
}

#[test]
fn conditional_unet_with_labels_and_context_trains_a_step_and_round_trips_its_config() {
    use scoregen::io::checkpoint::Checkpoint;
    use scoregen::nn::unet::{unet, UNetConfig};
    let gp = gpu();
    let cfg = UNetConfig {
        base_channels: 8,
        channel_mults: vec![1, 2],
        groups: 4,
        emb_dim: 16,
        attn_resolutions: vec![4],
        num_classes: Some(3),
        context_dim: Some(5),
        dropout: 0.1,
        ..UNetConfig::w2()
    };
    let mut g = Graph::new();
    let x = g.input("x", &[2, 1, 8, 8]);
    let t = g.input("t", &[2]);
    let l = g.input("label", &[2, 4]);
    let c = g.input("context", &[2, 3, 5]);
    let mut b = Builder::new(&mut g);
    b.training = true;
    let y = unet(&mut b, x, t, Some(l), Some(c), &cfg).unwrap();
    let specs = b.specs.clone();
    assert!(specs.iter().any(|s| s.name == "label_emb.weight" && s.shape == [4, 16]));
    assert!(specs.iter().any(|s| s.name.ends_with("cross.to_k.weight")));
    let sq = g.unary(Unary::Square, y);
    let loss = g.mean_all(sq).unwrap();
    let params = init_params(gp, &specs, 3).unwrap();
    let step = TrainStep::new(gp, &mut g, loss, &params, AdamConfig::default()).unwrap();
    let mut rng = Rng::new(32);
    step.plan.feed(gp, "x", &rng.vec(128, -1.0, 1.0)).unwrap();
    step.plan.feed(gp, "t", &[0.1, -0.3]).unwrap();
    step.plan.feed(gp, "label", &[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]).unwrap();
    step.plan.feed(gp, "context", &rng.vec(30, -1.0, 1.0)).unwrap();
    step.run(gp, 1).unwrap();
    let l0 = step.loss().to_vec(gp).unwrap()[0];
    step.run(gp, 30).unwrap();
    let l1 = step.loss().to_vec(gp).unwrap()[0];
    assert!(l1.is_finite() && l1 < l0, "loss {l0} -> {l1}");
    // The config travels in the checkpoint's metadata.
    let meta = [("model".to_string(), cfg.to_json())].into();
    let ck = Checkpoint::from_params(gp, &params, meta).unwrap();
    let back = Checkpoint::from_bytes(&ck.to_bytes()).unwrap();
    assert_eq!(UNetConfig::from_json(&back.metadata["model"]).unwrap(), cfg);
    assert!(
        matches!(UNetConfig::from_json("{\"base_chanels\": 3}"), Err(scoregen::Error::Invalid(m)) if m.contains("base_chanels"))
    );
}

#[test]
fn dropout_draws_a_fresh_mask_each_run_and_keeps_the_mean() {
    use scoregen::graph::plan::Plan;
    use scoregen::nn::dropout;
    let gp = gpu();
    let n = 20_000;
    let mut g = Graph::new();
    let x = g.input("x", &[n]);
    let mut b = Builder::new(&mut g);
    b.training = true;
    b.seed = 9;
    let y = dropout(&mut b, x, 0.25).unwrap();
    let plan = Plan::new(gp, &g, &[y], &ParamStore::new()).unwrap();
    plan.feed(gp, "x", &vec![2.0; n]).unwrap();
    plan.run(gp).unwrap();
    let a = plan.output(0).to_vec(gp).unwrap();
    plan.run(gp).unwrap();
    let c = plan.output(0).to_vec(gp).unwrap();
    let zeros = a.iter().filter(|&&v| v == 0.0).count() as f64 / n as f64;
    assert!((zeros - 0.25).abs() < 0.015, "dropped fraction {zeros}");
    assert!(a.iter().all(|&v| v == 0.0 || (v - 2.0 / 0.75).abs() < 1e-5));
    let mean = a.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    assert!((mean - 2.0).abs() < 0.05, "mean {mean}");
    assert_ne!(a, c, "the second run must draw a new mask");
    // Without training, dropout is the identity.
    let mut g2 = Graph::new();
    let x2 = g2.input("x", &[4]);
    let mut b2 = Builder::new(&mut g2);
    assert_eq!(dropout(&mut b2, x2, 0.5).unwrap(), x2);
}
