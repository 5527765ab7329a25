//! Energy-parameterised models (`model.param = "energy"`): the score is -grad_x E / sigma, by
//! autodiff through the network; checked against finite differences of the energy, on the GPU
//! against the f64 CPU evaluation, and trained by DSM (a gradient of a gradient).

mod common;
use common::{assert_close, gpu, Rng};
use scoregen::graph::cpu::{eval, finite_diff, Feeds};
use scoregen::graph::plan::Plan;
use scoregen::graph::Graph;
use scoregen::nn::{init_params, Builder};
use scoregen::score::{EnergyForm, ModelSpec, Network, Parameterisation};

fn spec(form: EnergyForm) -> ModelSpec {
    ModelSpec {
        data_shape: vec![3],
        network: Network::Mlp { hidden: vec![8, 8], noise_features: 0, act: Default::default() },
        param: Parameterisation::Energy { form },
        input_var: Some(1.0),
        classes: None,
        context: None,
    }
}

/// The score of both energy forms equals -d(E / sigma)/dx by central differences (f64), and the
/// GPU plan of the score matches the f64 CPU evaluation of the same graph.
#[test]
fn energy_scores_are_minus_the_gradient_of_the_energy() {
    for form in [EnergyForm::Norm, EnergyForm::Dae] {
        let sp = spec(form);
        let b = 4;
        let mut g = Graph::new();
        let x = g.input("x", &[b, 3]);
        let sigma = g.input("sigma", &[b]);
        let mut bld = Builder::new(&mut g);
        let s = sp.score(&mut bld, x, sigma).unwrap();
        let u = sp.energy(&mut bld, x, sigma).unwrap().expect("an energy model has an energy");
        let specs = bld.specs.clone();
        let total_u = g.sum_all(u).unwrap();
        let mut rng = Rng::new(70);
        let params = init_params(gpu(), &specs, 5).unwrap();
        let mut feeds: Feeds = params
            .iter()
            .map(|(k, t)| (k.clone(), t.to_vec(gpu()).unwrap().iter().map(|&v| v as f64).collect()))
            .collect();
        let xv = rng.vec(b * 3, -2.0, 2.0);
        let sv = rng.vec(b, 0.3, 2.0);
        feeds.insert("x".into(), xv.iter().map(|&v| v as f64).collect());
        feeds.insert("sigma".into(), sv.iter().map(|&v| v as f64).collect());
        let cpu = eval(&g, &[s], &feeds).unwrap().remove(0);
        let fd: Vec<f64> = finite_diff(&g, total_u, &feeds, "x", 1e-6).unwrap().iter().map(|v| -v).collect();
        for (i, (a, w)) in cpu.iter().zip(&fd).enumerate() {
            assert!((a - w).abs() <= 1e-6 + 1e-5 * w.abs(), "{form:?} [{i}]: score {a}, -dU/dx {w}");
        }
        // The GPU plan of the same graph (second-order ops included in training, first here).
        let plan = Plan::new(gpu(), &g, &[s], &params).unwrap();
        plan.feed(gpu(), "x", &xv).unwrap();
        plan.feed(gpu(), "sigma", &sv).unwrap();
        plan.run(gpu()).unwrap();
        let got = plan.output(0).to_vec(gpu()).unwrap();
        let want: Vec<f32> = cpu.iter().map(|&v| v as f32).collect();
        assert_close(&got, &want, 1e-5, 1e-4, &format!("{form:?}: GPU score against the f64 evaluation"));
    }
}

/// `model.param = "energy"` trains by DSM through the config path and samples the ring: its loss
/// falls and ends within 10% of a score model's trained the same way (the loss has a floor near
/// 1.27 on this data), samples are finite, and the checkpoint records the form.
#[test]
fn energy_models_train_by_dsm_and_sample() {
    let dir = std::env::temp_dir().join(format!("scoregen-energy-{}", std::process::id()));
    let run = |param: &str, form: Option<&str>| {
        let energy = form.map(|f| format!("energy = \"{f}\"\n")).unwrap_or_default();
        let text = format!(
            "[data]\nsource = \"toy\"\nname = \"ring8\"\n[model]\nhidden = [64, 64]\nparam = \"{param}\"\n{energy}\
             [train]\nsteps = 300\nbatch = 256\nlr = 3e-3\nlog_every = 50\ncheckpoint_every = 0\n\
             [sample]\nsampler = \"heun\"\nsteps = 30\nn = 500\nbatch = 500\n"
        );
        let cfg = scoregen::config::Config::from_toml(&text, "energy.toml").unwrap();
        let out = dir.join(form.unwrap_or(param));
        let opts = scoregen::train::TrainOpts {
            out: out.clone(),
            steps: None,
            resume: false,
            progress: false,
            stop_after: None,
        };
        let r = scoregen::train::train(gpu(), &cfg, std::path::Path::new("."), &opts).unwrap();
        (cfg, out, r.losses.first().unwrap().1, r.losses.last().unwrap().1)
    };
    let (_, _, _, score_last) = run("score", None);
    for form in ["norm", "dae"] {
        let (cfg, out, first, last) = run("energy", Some(form));
        eprintln!("{form}: DSM loss {first:.3} -> {last:.3} (score model {score_last:.3})");
        assert!(
            last < first - 0.1 && last < 1.1 * score_last,
            "{form}: DSM loss {first} -> {last}, score model {score_last}"
        );
        let (model, info) = scoregen::model::Trained::load(gpu(), &out.join(scoregen::train::CHECKPOINT)).unwrap();
        assert!(info.config.contains(&format!("energy = \"{form}\"")), "{}", info.config);
        let xs = scoregen::sample::draw(gpu(), &model, &cfg.sample.request(), &mut |_, _| {}).unwrap();
        assert!(xs.iter().all(|v| v.is_finite()), "{form}: non-finite samples");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
