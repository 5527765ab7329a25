//! Annealed MCMC through the command line, judged on exact targets: the product of two analytic
//! Gaussian mixtures (itself a mixture, sampled exactly) by hmc and mala against reverse
//! diffusion on the summed scores; `eval --log-z` against the exact normaliser; the reports
//! beside the samples; bad options refused in one line.

mod common;
use scoregen::dist::Gmm;
use scoregen::rng::HostRng;
use std::path::Path;

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// A ring of 8 Gaussians (radius 1, std 0.25) and three along the y axis (std 0.4), written as
/// mixture files, with the composition file of their product.
fn product_files(dir: &Path) -> (Gmm, Gmm) {
    let ring = Gmm::new(
        vec![1.0; 8],
        (0..8).map(|k| (k as f64 * std::f64::consts::PI / 4.0).sin_cos()).map(|(y, x)| vec![x, y]).collect(),
        vec![0.25; 8],
    )
    .unwrap();
    let bar = Gmm::new(vec![1.0; 3], vec![vec![0.0, -1.0], vec![0.0, 0.0], vec![0.0, 1.0]], vec![0.4; 3]).unwrap();
    for (name, g) in [("ring.toml", &ring), ("bar.toml", &bar)] {
        let mut t = String::new();
        for k in 0..g.weights.len() {
            let m = &g.means[k];
            t += &format!(
                "[[component]]\nweight = {}\nmean = [{}, {}]\nstd = {}\n",
                g.weights[k], m[0], m[1], g.stds[k]
            );
        }
        std::fs::write(dir.join(name), t).unwrap();
    }
    std::fs::write(dir.join("prod.toml"), "op = \"product\"\nmodels = [\"gmm:ring.toml\", \"gmm:bar.toml\"]\n")
        .unwrap();
    (ring, bar)
}

fn sample(dir: &Path, sampler: &str, extra: &[&str]) -> Vec<f32> {
    let out = dir.join(format!("{sampler}-{}.npy", extra.len()));
    let model = format!("compose:{}", s(&dir.join("prod.toml")));
    let mut args = vec!["sample", "--model", &model, "--sampler", sampler, "--n", "2000", "--seed", "3"];
    let o = s(&out);
    args.extend(extra);
    args.extend(["--out", &o]);
    let (code, _, err) = common::run_cli(&args);
    assert_eq!(code, 0, "{err}");
    scoregen::io::npy::read_npy(&out).unwrap().1
}

/// Acceptance point 2: on the exact product (sigma_min = 0.01), hmc and mala come within 1.5x
/// of the exact W2 between two independent true samples of 2,000; reverse diffusion (ancestral,
/// as many evaluations as hmc) on the summed scores does measurably worse, and an HMC corrector
/// between its steps repairs much of that.
#[test]
fn mcmc_samples_the_exact_product_and_reverse_diffusion_does_not() {
    let dir = common::fresh_dir("mcmc-product");
    let (ring, bar) = product_files(&dir);
    let (truth, _) = ring.product(&bar, 0.01).unwrap();
    let mut rng = HostRng::new(17);
    let (t1, t2) = (truth.sample(2000, &mut rng), truth.sample(2000, &mut rng));
    let floor = scoregen::metrics::exact_w2(&t1, &t2, 2).unwrap();
    let w2 = |xs: &[f32]| scoregen::metrics::exact_w2(xs, &t1, 2).unwrap();
    let hmc = w2(&sample(&dir, "hmc", &["--steps", "300", "--mcmc-levels", "20", "--mcmc-step", "sigma2:0.5"]));
    let mala = w2(&sample(&dir, "mala", &["--steps", "600", "--mcmc-levels", "20", "--mcmc-step", "sigma2:0.5"]));
    let rd = w2(&sample(&dir, "ancestral", &["--steps", "900"]));
    let corrected = ["--steps", "50", "--corrector", "hmc", "--mcmc-steps", "2", "--mcmc-step", "sigma2:0.5"];
    let rd_hmc = w2(&sample(&dir, "ancestral", &corrected));
    eprintln!(
        "exact W2 to the product: truth {floor:.4}, hmc {hmc:.4}, mala {mala:.4}, reverse diffusion {rd:.4}, with an \
         hmc corrector {rd_hmc:.4}"
    );
    assert!(rd_hmc < 0.75 * rd, "an HMC corrector should improve reverse diffusion: {rd_hmc} against {rd}");
    assert!(hmc < 1.5 * floor && mala < 1.5 * floor, "hmc {hmc}, mala {mala}, truth vs truth {floor}");
    assert!(rd > 2.0 * floor && rd > 1.5 * hmc.max(mala), "reverse diffusion {rd}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Acceptance point 3: `eval --log-z` on the product of two analytic Gaussians matches the exact
/// log Z (of the two densities at sigma_min) within three standard errors, and the standard
/// error is small enough for that to mean something.
#[test]
fn log_z_of_a_product_of_gaussians() {
    let dir = common::fresh_dir("mcmc-logz");
    std::fs::write(dir.join("a.toml"), "[[component]]\nweight = 1\nmean = [0, 0]\nstd = 0.5\n").unwrap();
    std::fs::write(dir.join("b.toml"), "[[component]]\nweight = 1\nmean = [1, 0.5]\nstd = 0.7\n").unwrap();
    std::fs::write(dir.join("p.toml"), "op = \"product\"\nmodels = [\"gmm:a.toml\", \"gmm:b.toml\"]\n").unwrap();
    let a = Gmm::new(vec![1.0], vec![vec![0.0, 0.0]], vec![0.5]).unwrap();
    let b = Gmm::new(vec![1.0], vec![vec![1.0, 0.5]], vec![0.7]).unwrap();
    let exact = a.product(&b, 0.01).unwrap().1;
    let model = format!("compose:{}", s(&dir.join("p.toml")));
    let (code, out, err) = common::run_cli(&[
        "eval",
        "--model",
        &model,
        "--log-z",
        "--n",
        "4000",
        "--steps",
        "600",
        "--mcmc-levels",
        "30",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let (lz, se) = (v["value"].as_f64().unwrap(), v["se"].as_f64().unwrap());
    eprintln!("log Z: AIS {lz:.4} +- {se:.4}, exact {exact:.4}");
    assert!((lz - exact).abs() < 3.0 * se && se < 0.03, "AIS {lz} +- {se}, exact {exact}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The reports beside the samples, and options refused in one line before any sampling.
#[test]
fn reports_and_refusals() {
    let dir = common::fresh_dir("mcmc-cli");
    product_files(&dir);
    let model = format!("compose:{}", s(&dir.join("prod.toml")));
    let out = s(&dir.join("x.png"));
    let base = ["sample", "--model", &model, "--n", "64", "--steps", "40", "--out", &out];
    let (code, stdout, err) = common::run_cli(&[&base[..], &["--sampler", "hmc", "--adapt", "--json"]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("per chain group"), "{err}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["levels"].as_array().unwrap().len(), 10);
    assert!(dir.join("x.acceptance.png").exists() && dir.join("x.acceptance.json").exists());
    let refused = [
        (vec!["--sampler", "ula", "--adapt"], "--adapt"),
        (vec!["--sampler", "hmc", "--damping", "1"], "--damping"),
        (vec!["--sampler", "ald", "--corrector", "hmc"], "--corrector"),
        (vec!["--sampler", "mala", "--mcmc-step", "levels:0.1,0.2"], "levels"),
        (vec!["--sampler", "mala", "--mcmc-steps", "0"], "--mcmc-steps"),
        (vec!["--sampler", "hmc", "--mh", "trapezoid:1"], "trapezoid"),
        (vec!["--sampler", "hmc", "--leapfrog", "0"], "--leapfrog"),
        (vec!["--sampler", "hmc", "--mass", "NaN"], "--mass"),
        (vec!["--sampler", "hmc", "--mcmc-levels", "0"], "--mcmc-levels"),
        (vec!["--sampler", "ancestral", "--corrector", "mala", "--corrector-fraction", "0"], "--corrector-fraction"),
        (vec!["--sampler", "mala", "--mcmc-step", "const:-1"], "positive step"),
        (vec!["--sampler", "mala", "--mcmc-step", "const:inf"], "positive step"),
    ];
    for (extra, what) in refused {
        let (code, _, err) = common::run_cli(&[&base[..], &extra[..]].concat());
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(code != 0 && lines.len() <= 2 && err.contains(what), "{extra:?}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
