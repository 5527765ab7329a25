//! Compositions of models: scores and energies of product, negation, sum and mixture against
//! f64 evaluations of their formulas on analytic components; files, nesting and bad input.

mod common;
use common::gpu;
use scoregen::dist::Gmm;
use scoregen::model::fisher::evaluate_at;
use scoregen::model::{ComposeOp, Composition, Mixture, ScoreModel};

fn parts() -> (Gmm, Gmm) {
    let a = Gmm::new(vec![0.3, 0.7], vec![vec![1.0, -1.0], vec![-2.0, 0.5]], vec![0.5, 0.8]).unwrap();
    let b = Gmm::new(vec![1.0], vec![vec![0.5, 0.0]], vec![1.5]).unwrap();
    (a, b)
}

fn boxed(g: &Gmm) -> Box<dyn ScoreModel> {
    Box::new(Mixture::new(g.clone()))
}

/// Every operator's composed score and energy at random points against f64.
#[test]
fn composed_scores_and_energies_match_their_formulas() {
    let (a, b) = parts();
    let names = vec!["a".to_string(), "b".to_string()];
    let sigma = 0.4;
    let mut rng = scoregen::rng::HostRng::new(9);
    let pts: Vec<f32> = (0..2 * 64).map(|_| (3.0 * rng.normal()) as f32).collect();
    let cases: [(ComposeOp, Option<Vec<f64>>); 4] = [
        (ComposeOp::Product, None),
        (ComposeOp::Negation, Some(vec![1.3, -0.3])),
        (ComposeOp::Sum, Some(vec![2.5])),
        (ComposeOp::Mixture, None),
    ];
    for (op, w) in cases {
        let c = Composition::new(op, vec![boxed(&a), boxed(&b)], &names, w.clone(), None).unwrap();
        assert!(c.has_energy());
        let (s, e) = evaluate_at(gpu(), &c, &pts, sigma, 64).unwrap();
        let e = e.expect("analytic components give the composition an energy");
        for (i, x) in pts.chunks(2).enumerate() {
            let x = [x[0] as f64, x[1] as f64];
            let (sa, sb) = (a.score(&x, sigma), b.score(&x, sigma));
            let (ea, eb) = (-a.log_density(&x, sigma), -b.log_density(&x, sigma));
            let (ws, we): ([f64; 2], f64) = match op {
                ComposeOp::Product => ([1.0, 1.0], ea + eb),
                ComposeOp::Negation => ([1.3, -0.3], 1.3 * ea - 0.3 * eb),
                ComposeOp::Sum => ([1.0 - 2.5, 2.5], -1.5 * ea + 2.5 * eb),
                ComposeOp::Mixture => {
                    let t = 3.5;
                    let m = (-t * ea).max(-t * eb);
                    let lse = m + ((-t * ea - m).exp() + (-t * eb - m).exp()).ln();
                    let ra = (-t * ea - lse).exp();
                    ([t * ra, t * (1.0 - ra)], -lse)
                }
            };
            for j in 0..2 {
                let want = ws[0] * sa[j] + ws[1] * sb[j];
                let got = s[2 * i + j] as f64;
                assert!((got - want).abs() < 1e-3 * (1.0 + want.abs()), "{op:?} point {i} score[{j}]: {got} vs {want}");
            }
            let got = e[i] as f64;
            assert!((got - we).abs() < 1e-3 * (1.0 + we.abs()), "{op:?} point {i} energy: {got} vs {we}");
        }
    }
}

fn cli(args: &[&str]) -> (i32, String) {
    let (code, _, err) = common::run_cli(args);
    (code, err)
}

/// Composition files: nested and relative paths sample through the CLI; a shape mismatch,
/// a score-only model in a mixture, a file naming itself and an unknown key are one-line errors.
#[test]
fn composition_files_from_the_command_line() {
    let dir = common::fresh_dir("compose");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let s = |p: &std::path::Path| p.display().to_string();
    let w = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
    w("sub/a.toml", "[[component]]\nweight = 1\nmean = [1.0, 0.0]\nstd = 0.5\n");
    w("sub/b.toml", "[[component]]\nweight = 1\nmean = [-1.0, 0.0]\nstd = 0.5\n");
    w("sub/line3.toml", "[[component]]\nweight = 1\nmean = [0.0, 0.0, 0.0]\nstd = 1.0\n");
    w("sub/inner.toml", "op = \"mixture\"\nmodels = [\"gmm:a.toml\", \"gmm:b.toml\"]\ntemperature = 1.0\n");
    w("outer.toml", "op = \"product\"\nmodels = [\"compose:sub/inner.toml\", \"gmm:ring8\"]\n");
    let out = dir.join("x.npy");
    let (code, err) = cli(&[
        "sample",
        "--model",
        &format!("compose:{}", s(&dir.join("outer.toml"))),
        "--sampler",
        "heun",
        "--steps",
        "20",
        "--n",
        "64",
        "--out",
        &s(&out),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.exists());
    // (file, text, words of the one-line error)
    let bad = [
        (
            "shape.toml",
            "op = \"product\"\nmodels = [\"gmm:sub/a.toml\", \"gmm:sub/line3.toml\"]\n",
            vec!["shape.toml", "line3.toml", "a.toml"],
        ),
        ("self.toml", "op = \"product\"\nmodels = [\"compose:self.toml\", \"gmm:ring8\"]\n", vec!["self.toml", "nest"]),
        (
            "key.toml",
            "op = \"product\"\nmodels = [\"gmm:ring8\", \"gmm:ncsn\"]\ncolour = 1\n",
            vec!["key.toml", "colour"],
        ),
        ("one.toml", "op = \"product\"\nmodels = [\"gmm:ring8\"]\n", vec!["one.toml", "at least two"]),
        (
            "w.toml",
            "op = \"negation\"\nmodels = [\"gmm:ring8\", \"gmm:ncsn\"]\nweights = [1.0]\n",
            vec!["w.toml", "weights"],
        ),
        (
            "t.toml",
            "op = \"product\"\nmodels = [\"gmm:ring8\", \"gmm:ncsn\"]\ntemperature = 2.0\n",
            vec!["t.toml", "temperature"],
        ),
        (
            "tneg.toml",
            "op = \"mixture\"\nmodels = [\"gmm:ring8\", \"gmm:ncsn\"]\ntemperature = -1.0\n",
            vec!["tneg.toml", "temperature"],
        ),
        (
            "missing.toml",
            "op = \"product\"\nmodels = [\"gmm:ring8\", \"nope/checkpoint.safetensors\"]\n",
            vec!["missing.toml", "nope/checkpoint.safetensors", "cannot read"],
        ),
        (
            "family.toml",
            "op = \"product\"\nmodels = [\"gmm:ring8\", \"vp/checkpoint.safetensors\"]\n",
            vec!["family.toml", "vp/checkpoint.safetensors", "process"],
        ),
        (
            "wnan.toml",
            "op = \"sum\"\nmodels = [\"gmm:ring8\", \"gmm:ncsn\"]\nweights = [nan]\n",
            vec!["wnan.toml", "weights"],
        ),
    ];
    // A VP checkpoint of the same shape as ring8 (a few steps are enough to have one).
    w("vp.toml", "[data]\nsource = \"toy\"\nname = \"ring8\"\n[model]\nhidden = [8]\n[process]\nkind = \"vp\"\n[train]\nsteps = 2\nbatch = 16\ncheckpoint_every = 0\n");
    let (code, err) =
        cli(&["train", "--config", &s(&dir.join("vp.toml")), "--out", &s(&dir.join("vp")), "--no-samples"]);
    assert_eq!(code, 0, "{err}");
    for (name, text, needles) in bad {
        w(name, text);
        let (code, err) = cli(&["sample", "--model", &format!("compose:{}", s(&dir.join(name))), "--out", &s(&out)]);
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
        assert!(code == 1 && lines.len() == 1 && !err.contains("panicked"), "{name}: {err}");
        for n in needles {
            assert!(lines[0].contains(n), "{name}: '{n}' missing from {}", lines[0]);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A mixture needs energies: a score network is refused, naming it; an energy network is taken.
#[test]
fn mixtures_refuse_score_only_components() {
    use scoregen::score::{Activation, EnergyForm, ModelSpec, Network, Parameterisation, Process};
    let net = |param| {
        let spec = ModelSpec {
            data_shape: vec![2],
            network: Network::Mlp { hidden: vec![8], noise_features: 0, act: Activation::Silu },
            param,
            input_var: None,
            classes: None,
            context: None,
        };
        let params = scoregen::nn::init_params(gpu(), &spec.param_specs().unwrap(), 0).unwrap();
        Box::new(scoregen::model::Trained {
            spec,
            params,
            process: Process::ve(0.01, 10.0),
            moments: scoregen::dist::Moments::centred(2, 1.0),
            images: false,
            log_z: None,
            class_names: Vec::new(),
        }) as Box<dyn ScoreModel>
    };
    let names = vec!["ring".to_string(), "net.safetensors".to_string()];
    let (a, _) = parts();
    let e = Composition::new(ComposeOp::Mixture, vec![boxed(&a), net(Parameterisation::Score)], &names, None, None);
    let e = e.err().expect("a score network in a mixture");
    assert!(e.contains("net.safetensors") && e.contains("energy"), "{e}");
    let ok = Composition::new(
        ComposeOp::Mixture,
        vec![boxed(&a), net(Parameterisation::Energy { form: EnergyForm::Norm })],
        &names,
        None,
        None,
    );
    let c = ok.unwrap();
    let (s, e) = evaluate_at(gpu(), &c, &[0.5, -0.5, 1.0, 2.0], 0.3, 2).unwrap();
    assert!(s.iter().chain(e.unwrap().iter()).all(|v| v.is_finite()));
    // A product of a score network and an analytic model has a score but no energy.
    let p = Composition::new(ComposeOp::Product, vec![boxed(&a), net(Parameterisation::Score)], &names, None, None)
        .unwrap();
    assert!(!p.has_energy());
    assert!(evaluate_at(gpu(), &p, &[0.5, -0.5], 0.3, 1).unwrap().1.is_none());
}
