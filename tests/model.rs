//! The model abstraction from outside the crate, as an application embedding scoregen writes
//! it: a class-conditional Gaussian mixture (its own parameters, a one-hot label input) drawn
//! through the same `sample::draw` the CLI uses, with every sampler.

mod common;
use common::gpu;
use scoregen::dist::Moments;
use scoregen::graph::plan::ParamStore;
use scoregen::graph::Var;
use scoregen::model::{CondInput, CondVars, Conditions, ScoreModel};
use scoregen::nn::Builder;
use scoregen::ops::elementwise::Unary;
use scoregen::sample::{draw, SampleRequest, SamplerKind, SamplerOpts};
use scoregen::score::Process;
use scoregen::Tensor;

/// p(x | y = k) = N(mu_k, s_k^2 I); the score under noise sigma is -(x - mu_k) / (s_k^2 + sigma^2),
/// with mu and s^2 selected by the one-hot label through a matmul.
struct ClassMixture {
    means: Vec<[f32; 2]>,
    vars: Vec<f32>,
    process: Process,
    params: ParamStore,
}

impl ClassMixture {
    fn new(means: Vec<[f32; 2]>, vars: Vec<f32>) -> ClassMixture {
        let k = means.len();
        let flat: Vec<f32> = means.iter().flatten().copied().collect();
        let mut params = ParamStore::new();
        params.insert("means".into(), Tensor::from_slice(gpu(), &flat, &[k, 2]).unwrap());
        params.insert("vars".into(), Tensor::from_slice(gpu(), &vars, &[k, 1]).unwrap());
        ClassMixture { means, vars, process: Process::ve(0.01, 20.0), params }
    }
}

impl ScoreModel for ClassMixture {
    fn shape(&self) -> &[usize] {
        &[2]
    }
    fn process(&self) -> &Process {
        &self.process
    }
    fn moments(&self) -> Moments {
        // Equal class weights.
        let k = self.means.len() as f64;
        let mean: Vec<f64> = (0..2).map(|j| self.means.iter().map(|m| m[j] as f64).sum::<f64>() / k).collect();
        let var = self
            .means
            .iter()
            .zip(&self.vars)
            .map(|(m, v)| (*v as f64) + ((m[0] as f64 - mean[0]).powi(2) + (m[1] as f64 - mean[1]).powi(2)) / 2.0)
            .sum::<f64>()
            / k;
        Moments { mean, var }
    }
    fn conditioning(&self) -> Vec<CondInput> {
        vec![CondInput { name: "label".into(), shape: vec![self.means.len()] }]
    }
    fn params(&self) -> ParamStore {
        self.params.clone()
    }
    fn score(&self, b: &mut Builder, x: Var, sigma: Var, cond: &CondVars) -> scoregen::Result<Var> {
        let k = self.means.len();
        let label = cond["label"];
        let means = b.g.param("means", &[k, 2]);
        let vars = b.g.param("vars", &[k, 1]);
        let mu = b.g.matmul(label, means, false, false)?; // [B, 2]
        let v = b.g.matmul(label, vars, false, false)?; // [B, 1]
        let bsz = b.g.shape(x)[0];
        let s = b.g.reshape(sigma, &[bsz, 1])?;
        let s2 = b.g.unary(Unary::Square, s);
        let tot = b.g.add(v, s2)?;
        let r = b.g.sub(mu, x)?;
        b.g.div(r, tot)
    }
}

fn one_hot(labels: &[usize], k: usize) -> Vec<f32> {
    labels.iter().flat_map(|&y| (0..k).map(move |j| if j == y { 1.0 } else { 0.0 })).collect()
}

#[test]
fn a_conditional_model_written_outside_the_crate_samples_each_class() {
    let model = ClassMixture::new(vec![[-6.0, 0.0], [6.0, 0.0], [0.0, 7.0]], vec![0.25, 0.5, 0.25]);
    let n = 300;
    let labels: Vec<usize> = (0..n).map(|i| (i * 7) % 3).collect();
    let conditions = Conditions { values: vec![("label".into(), one_hot(&labels, 3))], cycle: false };
    for (sampler, steps) in
        [(SamplerKind::Heun, 40), (SamplerKind::Pc, 200), (SamplerKind::Ald, 500), (SamplerKind::Rk45, 1)]
    {
        let req = SampleRequest {
            sampler,
            steps,
            n,
            batch: 128,
            seed: 3,
            opts: SamplerOpts { eps: 2e-4, ..SamplerOpts::default() },
            conditions: conditions.clone(),
            first_chain: 0,
        };
        let xs = draw(gpu(), &model, &req, &mut |_, _| {}).unwrap();
        // Every chain ends in its own class: nearest mean = its label, and the spread of each
        // class about its mean matches its variance (within 25% on ~100 samples).
        for c in 0..3 {
            let pts: Vec<[f32; 2]> = (0..n).filter(|&i| labels[i] == c).map(|i| [xs[2 * i], xs[2 * i + 1]]).collect();
            let m = model.means[c];
            let far = pts.iter().filter(|p| (p[0] - m[0]).powi(2) + (p[1] - m[1]).powi(2) > 9.0).count();
            assert_eq!(far, 0, "{sampler:?}: {far} chains of class {c} away from its mean");
            let var = pts.iter().map(|p| (p[0] - m[0]).powi(2) + (p[1] - m[1]).powi(2)).sum::<f32>()
                / (2.0 * pts.len() as f32);
            let want = model.vars[c];
            assert!((var / want - 1.0).abs() < 0.25, "{sampler:?}: class {c} variance {var}, want {want}");
        }
        // The conditioning follows the chain, not the batch: the same chains in batches of 7.
        if sampler != SamplerKind::Rk45 {
            let first = Conditions { values: vec![("label".into(), one_hot(&labels[..20], 3))], cycle: false };
            let small = SampleRequest { batch: 7, n: 20, conditions: first, ..req.clone() };
            let small = draw(gpu(), &model, &small, &mut |_, _| {}).unwrap();
            assert_eq!(small[..], xs[..40], "{sampler:?}: samples depend on the batch");
        }
    }
}

#[test]
fn conditioning_values_are_checked_against_the_model() {
    let model = ClassMixture::new(vec![[-6.0, 0.0], [6.0, 0.0]], vec![0.25, 0.25]);
    let base = SampleRequest {
        sampler: SamplerKind::Heun,
        steps: 10,
        n: 4,
        batch: 4,
        seed: 0,
        opts: SamplerOpts::default(),
        conditions: Conditions::default(),
        first_chain: 0,
    };
    let e = draw(gpu(), &model, &base, &mut |_, _| {}).unwrap_err().to_string();
    assert!(e.contains("'label'") && e.contains("none given"), "{e}");
    let short = Conditions { values: vec![("label".into(), one_hot(&[0, 1, 0], 2))], cycle: false };
    let e = draw(gpu(), &model, &SampleRequest { conditions: short, ..base.clone() }, &mut |_, _| {}).unwrap_err();
    assert!(e.to_string().contains("6 values for 4 samples"), "{e}");
    let extra = Conditions {
        values: vec![("label".into(), one_hot(&[0, 1, 0, 1], 2)), ("context".into(), vec![0.0; 4])],
        cycle: false,
    };
    let e = draw(gpu(), &model, &SampleRequest { conditions: extra, ..base }, &mut |_, _| {}).unwrap_err();
    assert!(e.to_string().contains("'context'") && e.to_string().contains("does not take"), "{e}");
}

/// An application loads a checkpoint with the library alone (no config, app or train code)
/// and samples it; the same samples as the CLI's path.
#[test]
fn a_checkpoint_loads_and_samples_through_the_library_alone() {
    use scoregen::model::Trained;
    let dir = std::env::temp_dir().join(format!("scoregen-embed-{}", std::process::id()));
    let cfg = "[data]\nsource = \"toy\"\nname = \"ring8\"\n[model]\nhidden = [32]\n[train]\nsteps = 30\nbatch = 64\n\
               log_every = 10\ncheckpoint_every = 0\n[sample]\nsampler = \"heun\"\nsteps = 20\nn = 50\nbatch = 50\n";
    let cfg = scoregen::config::Config::from_toml(cfg, "embed").unwrap();
    let opts =
        scoregen::train::TrainOpts { out: dir.clone(), steps: None, resume: false, progress: false, stop_after: None };
    scoregen::train::train(gpu(), &cfg, std::path::Path::new("."), &opts).unwrap();
    let path = dir.join(scoregen::train::CHECKPOINT);
    let (model, info) = Trained::load(gpu(), &path).unwrap();
    assert_eq!((info.step, model.shape().to_vec()), (30, vec![2]));
    let req =
        SampleRequest { sampler: SamplerKind::Heun, steps: 20, n: 50, batch: 50, seed: 0, ..cfg.sample.request() };
    let xs = draw(gpu(), &model, &req, &mut |_, _| {}).unwrap();
    let (cli_model, _, _) = scoregen::app::load_checkpoint(gpu(), &path).unwrap();
    assert_eq!(xs, draw(gpu(), &cli_model, &req, &mut |_, _| {}).unwrap());
    assert!(xs.iter().all(|v| v.is_finite()));
    let _ = std::fs::remove_dir_all(&dir);
}

/// An "image" whose pixels all sit at the range's edge: p(x) = N(-1, s^2 I) on [1, 4, 4], exact
/// scores. Clipping the denoised estimate to [-1, 1] (the default) keeps the half of it above
/// -1 at every step and lifts the samples (MNIST's background haze); with `clip_denoised` off
/// the samples keep the data's mean and spread.
struct EdgeImage {
    process: Process,
}

const EDGE_S: f32 = 0.05;

impl ScoreModel for EdgeImage {
    fn shape(&self) -> &[usize] {
        &[1, 4, 4]
    }
    fn process(&self) -> &Process {
        &self.process
    }
    fn moments(&self) -> Moments {
        Moments { mean: vec![-1.0; 16], var: (EDGE_S * EDGE_S) as f64 }
    }
    fn images(&self) -> bool {
        true
    }
    fn params(&self) -> ParamStore {
        ParamStore::new()
    }
    fn score(&self, b: &mut Builder, x: Var, sigma: Var, _: &CondVars) -> scoregen::Result<Var> {
        // -(x + 1) / (s^2 + sigma^2)
        let bsz = b.g.shape(x)[0];
        let s = b.g.reshape(sigma, &[bsz, 1, 1, 1])?;
        let s2 = b.g.unary(Unary::Square, s);
        let tot = b.g.unary(Unary::AddScalar(EDGE_S * EDGE_S), s2);
        let r = b.g.unary(Unary::AddScalar(1.0), x);
        let r = b.g.scale(r, -1.0);
        b.g.div(r, tot)
    }
}

#[test]
fn clipping_the_denoised_estimate_lifts_data_at_the_edge_and_can_be_turned_off() {
    let model = EdgeImage { process: Process::edm() };
    let n = 256;
    let stats = |clip: bool, sampler: SamplerKind| {
        let req = SampleRequest {
            sampler,
            steps: 50,
            n,
            batch: n,
            seed: 5,
            opts: SamplerOpts { clip_denoised: clip, ..SamplerOpts::default() },
            conditions: Conditions::default(),
            first_chain: 0,
        };
        let xs = draw(gpu(), &model, &req, &mut |_, _| {}).unwrap();
        let m = xs.iter().map(|&v| v as f64).sum::<f64>() / xs.len() as f64;
        let sd = (xs.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / xs.len() as f64).sqrt();
        (m, sd, xs.iter().cloned().fold(f32::INFINITY, f32::min))
    };
    // 4,096 values of spread 0.05: the mean's standard error is 0.0008.
    for sampler in [SamplerKind::Ancestral, SamplerKind::Heun] {
        let (m, sd, _) = stats(false, sampler);
        assert!((m + 1.0).abs() < 0.004, "{sampler:?} unclipped: mean {m}, want -1");
        assert!((sd / EDGE_S as f64 - 1.0).abs() < 0.2, "{sampler:?} unclipped: spread {sd}, want {EDGE_S}");
        let (mc, _, lowest) = stats(true, sampler);
        assert!(lowest >= -1.0 - 1e-6 && mc > -1.0 + 0.01, "{sampler:?} clipped: mean {mc}, lowest {lowest}");
    }
}
