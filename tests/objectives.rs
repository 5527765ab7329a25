//! The training objectives against f64 CPU evaluations of their formulas on a small MLP
//! (2 -> 6 -> 2, softplus), with the GPU's random draws (z, projections, NCE noise) read back
//! so the CPU evaluates exactly the same sum; SSM's expectation against the exact trace; NCE's
//! gradient against finite differences of the f64 loss.

mod common;
use common::{gpu, run_cli as cli, Rng};
use scoregen::dist::Gaussian;
use scoregen::graph::autodiff::grad;
use scoregen::graph::plan::{ParamStore, Plan};
use scoregen::graph::{Graph, Op, Var};
use scoregen::nn::{init_params, Builder};
use scoregen::score::objective::Nce;
use scoregen::score::{Activation, EnergyForm, Loss, ModelSpec, Network, Parameterisation, Projection};

const B: usize = 16;
const H: usize = 6;

fn spec(param: Parameterisation) -> ModelSpec {
    ModelSpec {
        data_shape: vec![2],
        network: Network::Mlp { hidden: vec![H], noise_features: 0, act: Activation::Softplus },
        param,
        input_var: None,
        classes: None,
        context: None,
    }
}

/// The MLP on the host in f64: F(x, sigma) and dF/dx.
struct HostMlp {
    w1: Vec<f64>, // [H, 3]
    b1: Vec<f64>,
    w2: Vec<f64>, // [2, H]
    b2: Vec<f64>,
}

fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}
fn softplus(v: f64) -> f64 {
    v.max(0.0) + (-v.abs()).exp().ln_1p()
}

impl HostMlp {
    fn new(p: &[(String, Vec<f64>)]) -> HostMlp {
        let get = |n: &str| p.iter().find(|(k, _)| k == n).unwrap_or_else(|| panic!("no {n}")).1.clone();
        HostMlp { w1: get("net.0.weight"), b1: get("net.0.bias"), w2: get("net.2.weight"), b2: get("net.2.bias") }
    }
    /// (F, dF/dx row-major [2, 2]).
    fn f(&self, x: &[f64], sigma: f64) -> ([f64; 2], [f64; 4]) {
        let inp = [x[0], x[1], sigma.ln() / 4.0];
        let mut f = [self.b2[0], self.b2[1]];
        let mut j = [0.0; 4];
        for h in 0..H {
            let pre: f64 = self.b1[h] + (0..3).map(|i| self.w1[h * 3 + i] * inp[i]).sum::<f64>();
            let (a, da) = (softplus(pre), sigmoid(pre));
            for o in 0..2 {
                f[o] += self.w2[o * H + h] * a;
                for i in 0..2 {
                    j[o * 2 + i] += self.w2[o * H + h] * da * self.w1[h * 3 + i];
                }
            }
        }
        (f, j)
    }
}

/// One evaluation of a loss graph on the GPU: the loss, the graph's random draws (in creation
/// order), the gradients with respect to `grads_of` parameters, and the parameters.
struct Run {
    loss: f64,
    draws: Vec<Vec<f64>>,
    grads: Vec<Vec<f32>>,
    params: Vec<(String, Vec<f64>)>,
}

fn run(sp: &ModelSpec, loss: &Loss, x0: &[f32], sigma: &[f32], grads_of: &[&str]) -> Run {
    let mut g = Graph::new();
    let x = g.input("x0", &[B, 2]);
    let s = g.input("sigma", &[B]);
    let mut bld = Builder::new(&mut g);
    let l = sp.loss(&mut bld, x, s, loss, 11).unwrap();
    let specs = bld.specs.clone();
    let store: ParamStore = init_params(gpu(), &specs, 5).unwrap();
    let randoms: Vec<Var> = (0..=l.0).filter(|&i| matches!(g.nodes[i].op, Op::Random { .. })).map(Var).collect();
    let pvars: Vec<Var> = grads_of
        .iter()
        .map(|n| Var((0..g.nodes.len()).find(|&i| matches!(&g.nodes[i].op, Op::Param(p) if p == n)).unwrap()))
        .collect();
    let gs = if pvars.is_empty() { vec![] } else { grad(&mut g, l, &pvars).unwrap() };
    let mut outs = vec![l];
    outs.extend(&randoms);
    outs.extend(&gs);
    let plan = Plan::new(gpu(), &g, &outs, &store).unwrap();
    plan.feed(gpu(), "x0", x0).unwrap();
    plan.feed(gpu(), "sigma", sigma).unwrap();
    plan.run(gpu()).unwrap();
    let read = |i: usize| plan.output(i).to_vec(gpu()).unwrap();
    let f64s = |v: Vec<f32>| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
    Run {
        loss: read(0)[0] as f64,
        draws: (0..randoms.len()).map(|k| f64s(read(1 + k))).collect(),
        grads: (0..gs.len()).map(|k| read(1 + randoms.len() + k)).collect(),
        params: store.iter().map(|(k, t)| (k.clone(), f64s(t.to_vec(gpu()).unwrap()))).collect(),
    }
}

fn inputs(seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = Rng::new(seed);
    (rng.vec(B * 2, -2.0, 2.0), rng.vec(B, 0.2, 1.5))
}

/// (sigma, x~ = x0 + sigma z) of sample b, z the run's first draw.
fn noised(r: &Run, x0: &[f32], sig: &[f32], b: usize) -> (f64, [f64; 2]) {
    let sg = sig[b] as f64;
    let z = &r.draws[0][2 * b..2 * b + 2];
    (sg, [x0[2 * b] as f64 + sg * z[0], x0[2 * b + 1] as f64 + sg * z[1]])
}

/// Score and its Jacobian of the score parameterisation (s = F / sigma).
fn score(m: &HostMlp, x: &[f64], sigma: f64) -> ([f64; 2], [f64; 4]) {
    let (f, j) = m.f(x, sigma);
    (f.map(|v| v / sigma), j.map(|v| v / sigma))
}

/// Score and Jacobian of the energy parameterisation with E = 1/2 ||F||^2: s = -grad E / sigma,
/// J = -(JF^T JF + sum_o F_o hess F_o) / sigma, hess F_o = sum_h w2[o,h] sigmoid'(pre_h) w1_h w1_h^T.
fn energy_score(m: &HostMlp, x: &[f64], sigma: f64) -> ([f64; 2], [f64; 4]) {
    let (f, jf) = m.f(x, sigma);
    let inp = [x[0], x[1], sigma.ln() / 4.0];
    let mut s = [0.0; 2];
    let mut j = [0.0; 4];
    for i in 0..2 {
        s[i] = -(f[0] * jf[i] + f[1] * jf[2 + i]) / sigma;
        for k in 0..2 {
            j[i * 2 + k] = -(jf[i] * jf[k] + jf[2 + i] * jf[2 + k]) / sigma;
        }
    }
    for h in 0..H {
        let pre: f64 = m.b1[h] + (0..3).map(|i| m.w1[h * 3 + i] * inp[i]).sum::<f64>();
        let d2 = sigmoid(pre) * (1.0 - sigmoid(pre));
        let c: f64 = (0..2).map(|o| f[o] * m.w2[o * H + h]).sum::<f64>() * d2;
        for i in 0..2 {
            for k in 0..2 {
                j[i * 2 + k] -= c * m.w1[h * 3 + i] * m.w1[h * 3 + k] / sigma;
            }
        }
    }
    (s, j)
}

/// The host's score-matching losses for the draws of `r` (z first, then the projections).
fn host_sm(r: &Run, x0: &[f32], sig: &[f32], loss: &Loss, energy: bool) -> f64 {
    let m = HostMlp::new(&r.params);
    let score = if energy { energy_score } else { score };
    let mut tot = 0.0;
    for b in 0..B {
        let (sg, xt) = noised(r, x0, sig, b);
        let z = &r.draws[0][2 * b..2 * b + 2];
        let (s, j) = score(&m, &xt, sg);
        let norm2 = s[0] * s[0] + s[1] * s[1];
        let per = match loss {
            Loss::Dsm => (sg * s[0] + z[0]).powi(2) + (sg * s[1] + z[1]).powi(2),
            Loss::Exact => sg * sg * (j[0] + j[3] + 0.5 * norm2),
            Loss::Sliced { projections, dist, vr } => {
                let mut acc = 0.0;
                for k in 0..*projections {
                    let raw = &r.draws[1 + k][2 * b..2 * b + 2];
                    let v: [f64; 2] = match dist {
                        Projection::Gaussian => [raw[0], raw[1]],
                        Projection::Rademacher => [(raw[0] - 0.5).signum(), (raw[1] - 0.5).signum()],
                        Projection::Sphere => {
                            let n = (raw[0] * raw[0] + raw[1] * raw[1]).sqrt();
                            [raw[0] / n * 2f64.sqrt(), raw[1] / n * 2f64.sqrt()]
                        }
                    };
                    let vjv = v[0] * (j[0] * v[0] + j[1] * v[1]) + v[1] * (j[2] * v[0] + j[3] * v[1]);
                    let vs = v[0] * s[0] + v[1] * s[1];
                    acc += vjv + if *vr { 0.0 } else { 0.5 * vs * vs };
                }
                sg * sg * (acc / *projections as f64 + if *vr { 0.5 * norm2 } else { 0.0 })
            }
            Loss::Nce(_) => unreachable!(),
        };
        tot += per;
    }
    tot / B as f64
}

/// Score and energy models (the latter differentiate three times in SSM and ESM).
#[test]
fn score_matching_losses_match_their_f64_formulas() {
    for energy in [false, true] {
        let param = if energy { Parameterisation::Energy { form: EnergyForm::Norm } } else { Parameterisation::Score };
        check_sm_losses(&spec(param), energy);
    }
}

fn check_sm_losses(sp: &ModelSpec, energy: bool) {
    let (x0, sig) = inputs(1);
    let cases = [
        Loss::Dsm,
        Loss::Exact,
        Loss::Sliced { projections: 3, dist: Projection::Gaussian, vr: false },
        Loss::Sliced { projections: 2, dist: Projection::Rademacher, vr: true },
        Loss::Sliced { projections: 1, dist: Projection::Sphere, vr: false },
    ];
    for loss in cases {
        let r = run(sp, &loss, &x0, &sig, &[]);
        let want = host_sm(&r, &x0, &sig, &loss, energy);
        let what = if energy { "energy" } else { "score" };
        assert!((r.loss - want).abs() <= 1e-4 * (1.0 + want.abs()), "{what} {loss:?}: GPU {} f64 {want}", r.loss);
    }
}

/// Sliced score matching is an unbiased estimate of the trace form: with many projections its
/// value approaches ESM's on the same draws, within a few standard errors of the projections'
/// spread (for Rademacher v in 2-D, v^T J v - tr J = v1 v2 (J12 + J21)); one projection does not.
#[test]
fn sliced_score_matching_expects_the_exact_trace() {
    let sp = spec(Parameterisation::Score);
    let (x0, sig) = inputs(2);
    let exact = run(&sp, &Loss::Exact, &x0, &sig, &[]);
    let m = HostMlp::new(&exact.params);
    // The per-projection standard deviation of the batch mean, from the host's Jacobians.
    let mut var = 0.0;
    for b in 0..B {
        let (sg, xt) = noised(&exact, &x0, &sig, b);
        let (_, j) = score(&m, &xt, sg);
        var += (sg * sg * (j[1] + j[2])).powi(2) / (B * B) as f64;
    }
    let k = 64;
    let ssm = run(&sp, &Loss::Sliced { projections: k, dist: Projection::Rademacher, vr: true }, &x0, &sig, &[]);
    let se = (var / k as f64).sqrt();
    eprintln!("ESM {:.5}, SSM-VR ({k} projections) {:.5}, standard error {se:.5}", exact.loss, ssm.loss);
    assert!((ssm.loss - exact.loss).abs() < 4.0 * se + 1e-4, "SSM {} ESM {} se {se}", ssm.loss, exact.loss);
    assert!(se > 1e-4, "the test needs a Jacobian with an off-diagonal part (se {se})");
}

fn nce_setup() -> (ModelSpec, Loss, Vec<f32>, Vec<f32>) {
    let sp = spec(Parameterisation::Energy { form: EnergyForm::Norm });
    let mut rng = Rng::new(3);
    let data: Vec<f32> = rng.vec(400, -1.0, 1.0).chunks(2).flat_map(|p| [p[0] * 2.0 + 0.5, p[0] + p[1]]).collect();
    let sigma = 0.4;
    let noise = Gaussian::fit(&data, 2, sigma * sigma, false).unwrap();
    let loss = Loss::Nce(Nce { sigma, ratio: 3, noise });
    let (x0, _) = inputs(4);
    (sp, loss, x0, vec![sigma as f32; B])
}

/// The host's NCE loss for parameters `p` (as named) and the draws of `r` (z, then e).
fn host_nce(p: &[(String, Vec<f64>)], r: &Run, x0: &[f32], loss: &Loss) -> f64 {
    let Loss::Nce(nce) = loss else { unreachable!() };
    let m = HostMlp::new(p);
    let log_z = p.iter().find(|(k, _)| k == "nce.log_z").unwrap().1[0];
    let sg = nce.sigma;
    let u = |x: &[f64]| {
        let (f, _) = m.f(x, sg);
        0.5 * (f[0] * f[0] + f[1] * f[1]) / sg
    };
    let g = |x: &[f64]| -u(x) - log_z - nce.noise.log_density(x) - (nce.ratio as f64).ln();
    let mut tot = 0.0;
    let sig = vec![sg as f32; B];
    for b in 0..B {
        tot += softplus(-g(&noised(r, x0, &sig, b).1));
    }
    let l = &nce.noise.chol;
    for e in r.draws[1].chunks(2) {
        let y = [nce.noise.mean[0] + l[0] * e[0], nce.noise.mean[1] + l[2] * e[0] + l[3] * e[1]];
        tot += softplus(g(&y));
    }
    tot / B as f64
}

#[test]
fn nce_loss_and_gradient_match_f64_and_finite_differences() {
    let (sp, loss, x0, sig) = nce_setup();
    let names = ["nce.log_z", "net.0.weight", "net.2.bias"];
    let r = run(&sp, &loss, &x0, &sig, &names);
    assert_eq!(r.draws[1].len(), 2 * B * 3, "ratio 3: three noise samples per data sample");
    let want = host_nce(&r.params, &r, &x0, &loss);
    assert!((r.loss - want).abs() <= 1e-4 * (1.0 + want.abs()), "NCE: GPU {} f64 {want}", r.loss);
    // Central differences of the f64 loss in every entry of the three parameters.
    let h = 1e-5;
    for (name, gpu_grad) in names.iter().zip(&r.grads) {
        let idx = r.params.iter().position(|(k, _)| k == name).unwrap();
        for i in 0..r.params[idx].1.len() {
            let mut p = r.params.clone();
            p[idx].1[i] += h;
            let up = host_nce(&p, &r, &x0, &loss);
            p[idx].1[i] -= 2.0 * h;
            let down = host_nce(&p, &r, &x0, &loss);
            let fd = (up - down) / (2.0 * h);
            let got = gpu_grad[i] as f64;
            assert!(
                (got - fd).abs() <= 1e-4 + 1e-3 * fd.abs(),
                "d loss / d {name}[{i}]: GPU {got}, finite differences {fd}"
            );
        }
    }
}

/// `eval --json` lines as name -> value.
fn figures(stdout: &str) -> std::collections::BTreeMap<String, f64> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|j| (j["eval"].as_str().unwrap().to_string(), j["value"].as_f64().unwrap_or(f64::NAN)))
        .collect()
}

/// What a user runs: a fixed-level energy model trained by SSM-VR and one by NCE through the
/// CLI; `eval --levels` reports the Fisher divergence (below the zero score's), the energy's
/// correlation with the true log-density, NCE's log Z beside its quadrature; `field` draws the
/// picture; a sampler that needs a noise range is refused for a one-level model.
#[test]
fn objectives_train_and_evaluate_from_the_command_line() {
    let dir = common::fresh_dir("objectives-cli");
    let s = |p: &std::path::Path| p.display().to_string();
    for (obj, extra) in [("ssm-vr", ""), ("nce", "nce_ratio = 4\n")] {
        let cfg = dir.join(format!("{obj}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "[data]\nsource = \"toy\"\nname = \"ncsn\"\n[model]\nhidden = [32, 32]\nactivation = \"softplus\"\n\
                 param = \"energy\"\n[process]\nkind = \"fixed\"\nsigma_min = 0.5\n[train]\nsteps = 200\nbatch = 128\n\
                 lr = 3e-3\nobjective = \"{obj}\"\n{extra}log_every = 50\ncheckpoint_every = 0\n\
                 [sample]\nsampler = \"langevin\"\nsteps = 50\nn = 200\nbatch = 200\n"
            ),
        )
        .unwrap();
        let out = dir.join(obj);
        let (code, _, err) = cli(&["train", "--config", &s(&cfg), "--out", &s(&out)]);
        assert_eq!(code, 0, "{obj}: {err}");
        let ck = s(&out.join("checkpoint.safetensors"));
        let (code, stdout, err) = cli(&[
            "eval",
            "--checkpoint",
            &ck,
            "--n",
            "0",
            "--nll-n",
            "500",
            "--levels",
            "0.5",
            "--fisher-n",
            "2000",
            "--json",
        ]);
        assert_eq!(code, 0, "{obj}: {err}");
        let f = figures(&stdout);
        let (rel, corr) = (f["fisher@0.5_relative"], f["energy_corr@0.5"]);
        eprintln!("{obj}: Fisher {} (relative {rel:.3}), energy correlation {corr:.3}", f["fisher@0.5"]);
        assert!(rel < 0.5 && f["fisher@0.5_se"] > 0.0, "{obj}: relative Fisher divergence {rel}");
        assert!(corr > 0.6, "{obj}: energy correlation {corr}");
        if obj == "nce" {
            let (lz, q, nll) = (f["log_z"], f["log_z_quadrature"], f["nll"]);
            eprintln!(
                "nce: log Z {lz:.3}, by quadrature {q:.3}; NLL {nll:.3} (exact {:.3})",
                f["nll_exact_of_data_density"]
            );
            assert!((lz - q).abs() < 0.5 && nll.is_finite(), "NCE: log Z {lz}, quadrature {q}");
        }
    }
    let png = dir.join("field.png");
    let ck = s(&dir.join("ssm-vr/checkpoint.safetensors"));
    let (code, _, err) = cli(&["field", "--checkpoint", &ck, "--out", &s(&png)]);
    assert_eq!(code, 0, "{err}");
    let b = std::fs::read(&png).unwrap();
    assert_eq!(
        (u32::from_be_bytes(b[16..20].try_into().unwrap()), u32::from_be_bytes(b[20..24].try_into().unwrap())),
        (1000, 520)
    );
    let (code, _, err) = cli(&["sample", "--checkpoint", &ck, "--sampler", "heun", "--out", &s(&dir.join("x.npy"))]);
    assert!(
        code == 1 && err.lines().filter(|l| l.starts_with("error:")).count() == 1 && err.contains("langevin"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The Fisher divergence of the exact mixture to itself is zero to f32 rounding, its energy
/// (-log p, normalised) correlates perfectly with the truth and gives the same mean
/// log-density; a shifted mixture is far.
#[test]
fn fisher_divergence_of_the_truth_is_zero() {
    use scoregen::dist::Gmm;
    use scoregen::model::fisher::fisher;
    use scoregen::model::Mixture;
    let ring = Gmm::ring8();
    for sigma in [0.1, 1.0] {
        let f = fisher(gpu(), &Mixture::new(ring.clone()), &ring, sigma, 4000, 1000, 7).unwrap();
        assert!(f.divergence < 1e-6 * f.truth_norm, "sigma {sigma}: {f:?}");
        assert!((f.energy_corr.unwrap() - 1.0).abs() < 1e-6, "{f:?}");
        assert!((f.model_mean_log_density.unwrap() - f.mean_log_density).abs() < 1e-4, "{f:?}");
    }
    let mut shifted = ring.clone();
    shifted.means.iter_mut().for_each(|m| m[0] += 0.3);
    let f = fisher(gpu(), &Mixture::new(shifted), &ring, 0.1, 4000, 1000, 7).unwrap();
    assert!(f.divergence > 0.2 * f.truth_norm && f.std_error > 0.0, "{f:?}");
}
