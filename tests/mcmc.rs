//! Metropolis-adjusted Langevin (MALA) with per-chain tests on the GPU: the kernels against the
//! plain-loop reference (same Philox numbers), and the outcome on a Gaussian target where
//! unadjusted Langevin with the same step is measurably wrong.

mod common;
use common::gpu;
use scoregen::dist::Gmm;
use scoregen::model::{Mixture, Probes, ScoreFn};
use scoregen::sample::{langevin, mala, run_program_ref_energy, Runner};
use scoregen::score::Process;

fn model(g: &Gmm, sigma: f64, batch: usize) -> (Mixture, ScoreFn) {
    let m = Mixture::with_process(g.clone(), Process::Fixed { sigma });
    let f = ScoreFn::plan(gpu(), &m, batch, Probes::None).unwrap();
    (m, f)
}

/// Final states and accept counts of the GPU runner against the f64 reference, chain by chain,
/// on a two-mode mixture with levels annealed from 3 to 0.3 (a few accept decisions near the
/// threshold may differ between f32 and f64: at most 1 chain in 16).
#[test]
fn mala_kernels_match_the_reference() {
    let g = Gmm::new(vec![0.3, 0.7], vec![vec![-2.0, 1.0], vec![1.5, -0.5]], vec![0.5, 0.8]).unwrap();
    let (_, f) = model(&g, 0.3, 16);
    let prog = mala(&[3.0, 1.0, 0.3], 6, 0.5, 3.0);
    let runner = Runner::new(gpu(), &f, prog.clone(), 21).unwrap();
    let xs = runner.sample(gpu(), 0, 16, &mut |_, _| {}).unwrap();
    let acc = runner.accepted.as_ref().unwrap().to_vec(gpu()).unwrap();
    let score = |x: &[f64], s: f64| g.score(x, s);
    let energy = |x: &[f64], s: f64| -g.log_density(x, s);
    let mut differ = 0;
    for c in 0..16 {
        let (want, n) = run_program_ref_energy(&prog, &score, &energy, 2, (c as u64, 21), None, &[0.0, 0.0]);
        let close = (0..2).all(|j| (xs[2 * c + j] as f64 - want[j]).abs() < 1e-3 * (1.0 + want[j].abs()));
        if !(close && acc[c] as usize == n) {
            differ += 1;
            eprintln!("chain {c}: GPU {:?} ({} accepted), reference {want:?} ({n})", &xs[2 * c..2 * c + 2], acc[c]);
        }
    }
    assert!(differ <= 1, "{differ} of 16 chains differ from the reference");
    assert!(acc.iter().any(|&a| a > 0.0) && acc.iter().any(|&a| a < 18.0), "accept counts {acc:?}");
}

/// On N(1, 1) at level 0.5 (variance 1.25) with step h = 0.8 x variance, unadjusted Langevin's
/// stationary variance is v / (1 - h / 2v) = 2.08; MALA's test brings it back to 1.25.
#[test]
fn mala_corrects_the_bias_of_unadjusted_langevin() {
    let g = Gmm::new(vec![1.0], vec![vec![1.0]], vec![1.0]).unwrap();
    let (sigma, n) = (0.5, 4000);
    let v = 1.0 + sigma * sigma;
    let h = 0.8 * v;
    let (_, f) = model(&g, sigma, n);
    let stats = |xs: &[f32]| {
        let m = xs.iter().map(|&x| x as f64).sum::<f64>() / xs.len() as f64;
        (m, xs.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64)
    };
    let run = |prog| {
        let mut r = Runner::new(gpu(), &f, prog, 5).unwrap();
        r.prior_mean = vec![1.0];
        let xs = r.sample(gpu(), 0, n, &mut |_, _| {}).unwrap();
        let acc = r.accepted.as_ref().map(|a| a.to_vec(gpu()).unwrap());
        (stats(&xs), acc)
    };
    let ((m_mala, v_mala), acc) = run(mala(&[sigma], 200, 2.0 * h, v.sqrt()));
    let ((_, v_ula), _) = run(langevin(sigma, 2.0 * h, 200, v.sqrt()));
    let rate = acc.unwrap().iter().map(|&a| a as f64).sum::<f64>() / (200 * n) as f64;
    eprintln!("variance {v:.3}: MALA {v_mala:.3} (mean {m_mala:.3}, acceptance {rate:.3}), ULA {v_ula:.3}");
    // sd of a sample variance of 4000 normals: v sqrt(2 / 4000) = 0.028
    assert!((v_mala - v).abs() < 0.1 && (m_mala - 1.0).abs() < 0.08, "MALA variance {v_mala}, mean {m_mala}");
    assert!(v_ula > v + 0.5, "ULA at this step should overshoot: {v_ula}");
    assert!((0.3..0.98).contains(&rate), "acceptance {rate}");
}

/// Through the CLI: `--sampler mala` on an analytic mixture reports its acceptance rate; on a
/// score network (no energy) it is a one-line error saying what has one.
#[test]
fn mala_from_the_command_line() {
    let dir = common::fresh_dir("mala");
    let s = |p: &std::path::Path| p.display().to_string();
    let cli = |args: &[&str]| {
        let (code, _, err) = common::run_cli(args);
        (code, err)
    };
    let out = s(&dir.join("x.npy"));
    let (code, err) =
        cli(&["sample", "--model", "gmm:ncsn", "--sampler", "mala", "--steps", "100", "--n", "64", "--out", &out]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("of proposals accepted"), "{err}");
    let cfg = dir.join("c.toml");
    std::fs::write(
        &cfg,
        "[data]\nsource = \"toy\"\nname = \"ring8\"\n[model]\nhidden = [16]\n[train]\nsteps = 5\nbatch = 64\n\
         checkpoint_every = 0\nlog_every = 5\n",
    )
    .unwrap();
    let (code, err) = cli(&["train", "--config", &s(&cfg), "--out", &s(&dir.join("run")), "--no-samples"]);
    assert_eq!(code, 0, "{err}");
    let ck = s(&dir.join("run/checkpoint.safetensors"));
    let (code, err) = cli(&["sample", "--checkpoint", &ck, "--sampler", "mala", "--n", "8", "--out", &out]);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert!(code == 1 && lines.len() == 1 && lines[0].contains("energy"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
