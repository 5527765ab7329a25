//! Conditioning and guidance: the guided combination against its formula, the batched 2B pass
//! against two separate passes, classifier gradients against finite differences, guided
//! sampling on every sampler judged on an analytic model, and the reproducibility contract with
//! labels.

mod common;
use common::{assert_close, gpu};
use scoregen::dist::gmm::Gmm;
use scoregen::dist::Moments;
use scoregen::graph::plan::{ParamStore, Plan};
use scoregen::graph::{Graph, Var};
use scoregen::model::guide::{label_conditions, LABEL};
use scoregen::model::{
    CheckpointInfo, Classifier, ClassifierGuided, CondInput, CondVars, Conditions, FreeGuided, Mixture, Probes,
    ScoreFn, ScoreModel, Trained,
};
use scoregen::nn::{init_params, Builder};
use scoregen::ops::elementwise::Unary;
use scoregen::sample::{draw, SampleRequest, SamplerKind, SamplerOpts};
use scoregen::score::{Activation, ModelSpec, Network, Parameterisation, Process};

/// A class-conditional MLP with random weights (3 classes).
fn conditional_mlp(seed: u64) -> Trained {
    let spec = ModelSpec {
        data_shape: vec![2],
        network: Network::Mlp { hidden: vec![16, 16], noise_features: 4, act: Activation::Silu },
        param: Parameterisation::Score,
        input_var: None,
        classes: Some(3),
        context: None,
    };
    with_random_weights(spec, seed)
}

/// A class-conditional U-Net with random weights (3 classes, 1x8x8 images; `images` false so
/// the scores are the network's, unclipped).
fn conditional_unet(seed: u64) -> Trained {
    let spec = ModelSpec {
        data_shape: vec![1, 8, 8],
        network: Network::UNet(unet_cfg(Some(3))),
        param: Parameterisation::Epsilon,
        input_var: Some(1.0),
        classes: Some(3),
        context: None,
    };
    with_random_weights(spec, seed)
}

/// The network of `spec` with weights drawn from `seed` (VE process, unit-variance prior).
fn with_random_weights(spec: ModelSpec, seed: u64) -> Trained {
    let params = init_params(gpu(), &spec.param_specs().unwrap(), seed).unwrap();
    let moments = Moments::centred(spec.numel(), 1.0);
    Trained {
        spec,
        params,
        process: Process::ve(0.01, 10.0),
        moments,
        images: false,
        log_z: None,
        class_names: Vec::new(),
    }
}

fn unet_cfg(classes: Option<usize>) -> scoregen::nn::unet::UNetConfig {
    scoregen::nn::unet::UNetConfig {
        in_channels: 1,
        out_channels: 1,
        base_channels: 8,
        channel_mults: vec![1, 2],
        res_blocks: 1,
        attn_resolutions: vec![],
        mid_attention: false,
        groups: 4,
        emb_dim: 16,
        num_classes: classes,
        context_dim: None,
        dropout: 0.0,
    }
}

/// The scores of `model` for x [B, ...], sigma [B] and the conditions of chains 0..B.
fn scores(model: &dyn ScoreModel, x: &[f32], sigma: &[f32], conds: &Conditions) -> Vec<f32> {
    let b = sigma.len();
    let f = ScoreFn::plan(gpu(), model, b, Probes::None).unwrap();
    f.plan.feed(gpu(), "x", x).unwrap();
    f.plan.feed(gpu(), "sigma", sigma).unwrap();
    f.set_conditions(gpu(), conds, 0, 0).unwrap();
    f.plan.run(gpu()).unwrap();
    f.score().to_vec(gpu()).unwrap()
}

/// Classifier-free guidance of `model()` (3 classes) at x [B, d]: the guided scores from one
/// 2B pass against (1 + w) s(x, y) - w s(x, null) from two separate passes.
fn check_cfg(model: impl Fn() -> Trained, d: usize, b: usize, ws: &[f32], what: &str) {
    let mut rng = common::Rng::new(11);
    let x = rng.vec(d * b, -2.0, 2.0);
    let sigma = rng.vec(b, 0.05, 5.0);
    let labels: Vec<Option<u32>> = (0..b).map(|i| Some((i % 3) as u32)).collect();
    let cond = Conditions { values: label_conditions(3, &labels).values, cycle: false };
    let null = Conditions { values: label_conditions(3, &vec![None; b]).values, cycle: false };
    let s_c = scores(&model(), &x, &sigma, &cond);
    let s_u = scores(&model(), &x, &sigma, &null);
    assert!(s_c.iter().zip(&s_u).any(|(a, b)| (a - b).abs() > 1e-3), "{what}: the label changes nothing");
    for &w in ws {
        let got = scores(&FreeGuided::new(Box::new(model()), w).unwrap(), &x, &sigma, &cond);
        let want: Vec<f32> = s_c.iter().zip(&s_u).map(|(c, u)| (1.0 + w) * c - w * u).collect();
        assert_close(&got, &want, 2e-4, 1e-3, &format!("{what}, w = {w}"));
    }
}

#[test]
fn classifier_free_guidance_is_the_formula_from_one_batched_pass() {
    check_cfg(|| conditional_mlp(5), 2, 37, &[0.0, 1.0, 3.5, -0.5], "MLP");
    check_cfg(|| conditional_unet(2), 64, 4, &[2.0], "U-Net");
}

/// A guidance interval (lo, hi): rows whose sigma lies inside get (1 + w) s_c - w s_u, the others
/// the conditional score s_c alone, for flat and image models.
#[test]
fn guidance_interval_guides_only_the_rows_inside_it() {
    let (lo, hi, w) = (0.5f32, 2.0f32, 2.5f32);
    for (model, d, b, what) in
        [(&(|| conditional_mlp(5)) as &dyn Fn() -> Trained, 2, 29, "MLP"), (&|| conditional_unet(2), 64, 6, "U-Net")]
    {
        let mut rng = common::Rng::new(12);
        let x = rng.vec(d * b, -2.0, 2.0);
        let sigma: Vec<f32> = (0..b).map(|i| [0.1, 0.7, 1.9, 4.0, 0.49, 2.01][i % 6]).collect();
        let labels: Vec<Option<u32>> = (0..b).map(|i| Some((i % 3) as u32)).collect();
        let cond = Conditions { values: label_conditions(3, &labels).values, cycle: false };
        let null = Conditions { values: label_conditions(3, &vec![None; b]).values, cycle: false };
        let s_c = scores(&model(), &x, &sigma, &cond);
        let s_u = scores(&model(), &x, &sigma, &null);
        let guided = FreeGuided::new(Box::new(model()), w).unwrap().with_interval(lo, hi).unwrap();
        let got = scores(&guided, &x, &sigma, &cond);
        let want: Vec<f32> = (0..d * b)
            .map(|j| {
                let inside = sigma[j / d] > lo && sigma[j / d] < hi;
                if inside {
                    (1.0 + w) * s_c[j] - w * s_u[j]
                } else {
                    s_c[j]
                }
            })
            .collect();
        assert!((0..d * b).any(|j| (want[j] - s_c[j]).abs() > 1e-3), "{what}: guidance changes nothing");
        assert_close(&got, &want, 2e-4, 1e-3, &format!("{what}: guidance interval ({lo}, {hi})"));
    }
    for (lo, hi) in [(2.0, 1.0), (-0.1, 1.0), (1.0, 1.0), (f32::NAN, 1.0), (0.0, f32::NAN)] {
        assert!(FreeGuided::new(Box::new(conditional_mlp(5)), w).unwrap().with_interval(lo, hi).is_err());
    }
}

/// log p(y | x, sigma) of a classifier [B] as a plan (x, sigma, label inputs).
fn log_prob_plan(clf: &Classifier, b: usize) -> Plan {
    let mut g = Graph::new();
    let mut xs = vec![b];
    xs.extend(clf.shape());
    let x = g.input("x", &xs);
    let s = g.input("sigma", &[b]);
    let l = g.input(LABEL, &[b, clf.classes() + 1]);
    let mut bl = Builder::new(&mut g);
    let lp = clf.log_prob(&mut bl, x, s, l).unwrap();
    Plan::batch_invariant(gpu(), &g, &[lp], &clf.params).unwrap()
}

fn random_classifier(process: Process, body: Network, shape: &[usize]) -> Classifier {
    let spec = ModelSpec {
        data_shape: shape.to_vec(),
        network: Network::Classifier(Box::new(body)),
        param: Parameterisation::Score,
        input_var: None,
        classes: Some(4),
        context: None,
    };
    let params = init_params(gpu(), &spec.param_specs().unwrap(), 3).unwrap();
    // Larger logits than the initialiser's, so the gradient is not tiny.
    let mut scaled = ParamStore::new();
    for (k, v) in &params {
        let vals: Vec<f32> = v.to_vec(gpu()).unwrap().iter().map(|a| 3.0 * a).collect();
        scaled.insert(k.clone(), scoregen::Tensor::from_slice(gpu(), &vals, v.shape()).unwrap());
    }
    let info = CheckpointInfo { step: 0, config: String::new() };
    Classifier { spec, params: scaled, process, images: false, class_names: Vec::new(), info }
}

/// The classifier's part of the guided score, S grad_x log p(y | x, sigma), against central
/// finite differences of log p, for classifier `clf` over inputs of `d` values per sample.
fn check_classifier_gradient(base: Box<dyn ScoreModel>, clf: Classifier, d: usize, b: usize, what: &str) {
    let scale = 2.5f32;
    let mut rng = common::Rng::new(4);
    let x = rng.vec(d * b, -1.5, 1.5);
    let sigma = rng.vec(b, 0.1, 2.0);
    let labels: Vec<Option<u32>> = (0..b).map(|i| Some((i % 4) as u32)).collect();
    let cond = Conditions { values: label_conditions(4, &labels).values, cycle: false };
    let plan = log_prob_plan(&clf, b);
    let onehot = cond.get(LABEL).unwrap().to_vec();
    let lp = |x: &[f32]| -> Vec<f32> {
        plan.feed(gpu(), "x", x).unwrap();
        plan.feed(gpu(), "sigma", &sigma).unwrap();
        plan.feed(gpu(), LABEL, &onehot).unwrap();
        plan.run(gpu()).unwrap();
        plan.output(0).to_vec(gpu()).unwrap()
    };
    // Every coordinate of every sample perturbed at once per j (samples are independent).
    let h = 1e-2f32;
    let mut fd = vec![0f32; d * b];
    for j in 0..d {
        let (mut xp, mut xm) = (x.clone(), x.clone());
        for i in 0..b {
            xp[d * i + j] += h;
            xm[d * i + j] -= h;
        }
        let (p, m) = (lp(&xp), lp(&xm));
        for i in 0..b {
            fd[d * i + j] = scale * (p[i] - m[i]) / (2.0 * h);
        }
    }
    let unguided = scores(base.as_ref(), &x, &sigma, &Conditions::default());
    let guided = ClassifierGuided::new(base, clf, scale, "clf").unwrap();
    let got: Vec<f32> = scores(&guided, &x, &sigma, &cond).iter().zip(&unguided).map(|(g, s)| g - s).collect();
    assert!(fd.iter().map(|v| v.abs()).fold(0.0, f32::max) > 0.1, "{what}: the gradient is too small to test");
    assert_close(&got, &fd, 3e-3, 3e-2, &format!("{what}: classifier guidance against finite differences"));
}

#[test]
fn classifier_guidance_adds_the_classifier_input_gradient() {
    let mix = Mixture::new(Gmm::ring8());
    let body = Network::Mlp { hidden: vec![24, 24], noise_features: 0, act: Activation::Silu };
    let clf = random_classifier(mix.process().clone(), body, &[2]);
    check_classifier_gradient(Box::new(mix), clf, 2, 16, "MLP classifier");
    // The U-Net encoder's classifier on images, guiding an (unconditional) U-Net.
    let spec = ModelSpec { classes: None, network: Network::UNet(unet_cfg(None)), ..conditional_unet(1).spec };
    let model = with_random_weights(spec, 1);
    let clf = random_classifier(model.process.clone(), Network::UNet(unet_cfg(None)), &[1, 8, 8]);
    check_classifier_gradient(Box::new(model), clf, 64, 3, "U-Net encoder classifier");
}

/// Three classes N(mu_k, s^2 I) whose null label is the broad N(0, V I): the guided score at
/// sigma -> 0 is that of a Gaussian about mu_k with precision (1 + w) / s^2 - w / V, so the
/// within-class spread falls with w (halves at w = 3 for Langevin dynamics) while every chain
/// stays in its class.
struct AnalyticClasses {
    means: [[f32; 2]; 3],
    s2: f32,
    v: f32,
    process: Process,
}

impl ScoreModel for AnalyticClasses {
    fn shape(&self) -> &[usize] {
        &[2]
    }
    fn process(&self) -> &Process {
        &self.process
    }
    fn moments(&self) -> Moments {
        Moments::centred(2, self.v as f64)
    }
    fn conditioning(&self) -> Vec<CondInput> {
        vec![CondInput { name: LABEL.into(), shape: vec![4] }]
    }
    fn params(&self) -> ParamStore {
        ParamStore::new()
    }
    fn score(&self, b: &mut Builder, x: Var, sigma: Var, cond: &CondVars) -> scoregen::Result<Var> {
        let g = &mut *b.g;
        let n = g.shape(x)[0];
        let l = cond[LABEL];
        let sig = g.reshape(sigma, &[n, 1])?;
        let s2 = g.unary(Unary::Square, sig);
        // Per class (and the null): mean [4, 2] and variance [4] selected by the label.
        let mut mu: Vec<f32> = self.means.iter().flatten().copied().collect();
        mu.extend([0.0, 0.0]);
        let mu = g.constant(mu, &[4, 2])?;
        let var = g.constant(vec![self.s2, self.s2, self.s2, self.v], &[4, 1])?;
        let m = g.matmul(l, mu, false, false)?;
        let v = g.matmul(l, var, false, false)?;
        let tot = g.add(v, s2)?;
        let r = g.sub(m, x)?;
        g.div(r, tot)
    }
}

#[test]
fn guided_sampling_sharpens_each_class_on_every_sampler() {
    let model = AnalyticClasses {
        means: [[-6.0, 0.0], [6.0, 0.0], [0.0, 6.0]],
        s2: 0.09,
        v: 16.0,
        process: Process::ve(0.01, 12.0),
    };
    let n = 600;
    let labels: Vec<Option<u32>> = (0..3).map(Some).collect();
    let cond = label_conditions(3, &labels);
    let samplers = [
        (SamplerKind::Ald, 600),
        (SamplerKind::Pc, 300),
        (SamplerKind::Ode, 100),
        (SamplerKind::Rk45, 1),
        (SamplerKind::Ddim, 100),
        (SamplerKind::Ancestral, 200),
        (SamplerKind::Heun, 60),
    ];
    for (sampler, steps) in samplers {
        let mut spread = Vec::new();
        for w in [0.0f32, 3.0] {
            let guided = FreeGuided::new(Box::new(model_copy(&model)), w).unwrap();
            let req = SampleRequest {
                sampler,
                steps,
                n,
                batch: 256,
                seed: 9,
                // ALD's step (eps sigma^2 / sigma_min^2) is sized for the unguided score: the
                // guided one is stiffer, so the default eps (5e-5) rather than a larger one.
                opts: SamplerOpts::default(),
                conditions: cond.clone(),
                first_chain: 0,
            };
            let xs = draw(gpu(), &guided, &req, &mut |_, _| {}).unwrap();
            let mut sq = 0.0;
            for i in 0..n {
                let m = model.means[i % 3];
                let d2 = (xs[2 * i] - m[0]).powi(2) + (xs[2 * i + 1] - m[1]).powi(2);
                assert!(
                    d2 < 9.0,
                    "{sampler:?} w {w}: chain {i} of class {} ends at {:?}",
                    i % 3,
                    &xs[2 * i..2 * i + 2]
                );
                sq += d2 as f64;
            }
            spread.push((sq / (2 * n) as f64).sqrt());
        }
        // Langevin dynamics at the last level reach the guided density there: spreads 0.30 and
        // 1 / sqrt(4 / 0.09 - 3 / 16) = 0.150. Deterministic and ancestral samplers follow the
        // guided field, whose intermediate densities are not the noised guided density
        // (Ho & Salimans' guidance is no exact score): they sharpen, more than that.
        let ratio = spread[1] / spread[0];
        eprintln!("{sampler:?}: spread w=0 {:.4}, w=3 {:.4}", spread[0], spread[1]);
        let langevin = [SamplerKind::Ald, SamplerKind::Pc].contains(&sampler);
        let ok = if langevin { (0.35..0.65).contains(&ratio) } else { ratio < 0.65 };
        assert!(ok, "{sampler:?}: spread {spread:?} (ratio {ratio:.3}; exact 0.50 for Langevin)");
        assert!((spread[0] / 0.3 - 1.0).abs() < 0.2, "{sampler:?}: unguided spread {} (exact 0.30)", spread[0]);
    }
}

fn model_copy(m: &AnalyticClasses) -> AnalyticClasses {
    AnalyticClasses { means: m.means, s2: m.s2, v: m.v, process: m.process.clone() }
}

#[test]
fn a_chain_depends_on_seed_index_and_label_only() {
    let model = FreeGuided::new(Box::new(conditional_mlp(8)), 2.0).unwrap();
    let base = SampleRequest {
        sampler: SamplerKind::Heun,
        steps: 12,
        n: 12,
        batch: 5,
        seed: 21,
        opts: SamplerOpts::default(),
        conditions: label_conditions(3, &[Some(0), Some(1), Some(2)]),
        first_chain: 0,
    };
    let all = draw(gpu(), &model, &base, &mut |_, _| {}).unwrap();
    // Another batch size, and a shard of the run (chains 4..9).
    let other = draw(gpu(), &model, &SampleRequest { batch: 12, ..base.clone() }, &mut |_, _| {}).unwrap();
    assert_eq!(all, other, "samples depend on the batch size");
    let shard = SampleRequest { first_chain: 4, n: 5, ..base.clone() };
    let shard = draw(gpu(), &model, &shard, &mut |_, _| {}).unwrap();
    assert_eq!(shard[..], all[8..18], "a shard's chains differ from the run's");
    // One class for every chain: the chains of that class in the cycling run are the same.
    for c in 0..3u32 {
        let one = SampleRequest { conditions: label_conditions(3, &[Some(c)]), ..base.clone() };
        let one = draw(gpu(), &model, &one, &mut |_, _| {}).unwrap();
        for i in (c as usize..12).step_by(3) {
            assert_eq!(one[2 * i..2 * i + 2], all[2 * i..2 * i + 2], "chain {i} of class {c}");
        }
        assert_ne!(one[..], all[..], "class {c}: the label changes nothing");
    }
}
