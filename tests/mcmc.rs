//! Annealed MCMC with per-chain tests on the GPU (ULA, MALA, uHMC, HMC; energy and trapezoid
//! tests; adaptation; AIS weights): each kernel against the f64 reference with the same Philox
//! numbers, detailed balance measured on a 1-D target, chains independent of their batch, and
//! MALA's correction of unadjusted Langevin's bias.

mod common;
use common::gpu;
use scoregen::dist::Gmm;
use scoregen::model::{Mixture, Probes, ScoreFn};
use scoregen::sample::mcmc::annealed;
use scoregen::sample::{run_program_ref_mcmc, McmcMethod, McmcOpts, MhRule, Program, Runner, StepRule};
use scoregen::score::Process;

fn plan(g: &Gmm, process: Process, batch: usize) -> ScoreFn {
    ScoreFn::plan(gpu(), &Mixture::with_process(g.clone(), process), batch, Probes::None).unwrap()
}

fn two_modes() -> Gmm {
    Gmm::new(vec![0.3, 0.7], vec![vec![-2.0, 1.0], vec![1.5, -0.5]], vec![0.5, 0.8]).unwrap()
}

/// Run `prog` on `n` chains; (samples, the chains' MCMC rows [n, 4 + levels]).
fn run(f: &ScoreFn, prog: &Program, seed: u64, n: usize) -> (Vec<f32>, Vec<f32>) {
    let runner = Runner::new(gpu(), f, prog.clone(), seed).unwrap();
    let xs = runner.sample(gpu(), 0, n, &mut |_, _| {}).unwrap();
    let rows = runner.chain.as_ref().unwrap().to_vec(gpu()).unwrap();
    (xs, rows)
}

/// Final states, per-level accept counts, step multipliers and AIS weights of the GPU runner
/// against the f64 reference, chain by chain, for every method and test (a few accept decisions
/// near the threshold may differ between f32 and f64, and a chain then diverges: at most 1 in 16).
#[test]
fn every_mcmc_kernel_matches_the_reference() {
    let g = two_modes();
    let f = plan(&g, Process::ve(0.3, 3.0), 16);
    let score = |x: &[f64], s: f64| g.score(x, s);
    let energy = |x: &[f64], s: f64| -g.log_density(x, s);
    let cases = [
        (McmcMethod::Mala, McmcOpts::default()),
        (McmcMethod::Mala, McmcOpts { mh: MhRule::Trapezoid(4), adapt: Some(0.57), ..McmcOpts::default() }),
        (McmcMethod::Hmc, McmcOpts { damping: 0.6, mass: 1.5, ais: true, ..McmcOpts::default() }),
        (McmcMethod::Hmc, McmcOpts { mh: MhRule::Trapezoid(3), leapfrog: 2, adapt: Some(0.7), ..McmcOpts::default() }),
        (McmcMethod::Uhmc, McmcOpts { leapfrog: 4, ais: true, ..McmcOpts::default() }),
        (McmcMethod::Ula, McmcOpts { ais: true, step: StepRule::Sigma2(0.05), ..McmcOpts::default() }),
    ];
    for (method, opts) in cases {
        let prog = annealed(method, &[3.0, 1.0, 0.3], 6, 0.5, 3.0, &opts).unwrap();
        let (xs, rows) = run(&f, &prog, 21, 16);
        let cols = rows.len() / 16;
        let mut differ = 0;
        for c in 0..16 {
            let want = run_program_ref_mcmc(&prog, &score, &energy, 2, (c as u64, 21), None, &[0.0, 0.0]);
            let row = &rows[c * cols..(c + 1) * cols];
            let close = |a: f64, b: f64| (a - b).abs() < 2e-3 * (1.0 + b.abs());
            let same = (0..2).all(|j| close(xs[2 * c + j] as f64, want.x[j]))
                && want.accepted.iter().zip(&row[4..]).all(|(&a, &b)| a as f32 == b)
                && close(row[2] as f64, want.scale)
                && (!opts.ais || close(row[3] as f64, want.log_w));
            if !same {
                differ += 1;
                eprintln!("{method:?} chain {c}: GPU {:?} row {row:?}, reference {want:?}", &xs[2 * c..2 * c + 2]);
            }
        }
        assert!(differ <= 1, "{method:?} {opts:?}: {differ} of 16 chains differ from the reference");
        if method.adjusted() {
            let acc: f32 = (0..16).map(|c| rows[c * cols + 4..(c + 1) * cols].iter().sum::<f32>()).sum();
            assert!(acc > 0.0 && acc < (16 * 18) as f32, "{method:?}: {acc} of 288 accepted");
        }
    }
}

/// Detailed balance, measured: from exact draws x of a 1-D two-mode target, one transition of
/// MALA or HMC (full refresh) gives pairs (x, x') whose joint histogram must be symmetric,
/// P(x in A, x' in B) = P(x in B, x' in A). The statistic sums (N_ab - N_ba)^2 / (N_ab + N_ba)
/// over bin pairs (chi-square with one degree of freedom per pair under balance). Unadjusted
/// Langevin with the same step breaks it, so the check can fail.
#[test]
fn mala_and_hmc_keep_detailed_balance() {
    let g = Gmm::new(vec![0.35, 0.65], vec![vec![-1.5], vec![1.0]], vec![0.4, 0.7]).unwrap();
    let (n, sigma) = (200_000, 0.2);
    let f = plan(&g, Process::Fixed { sigma }, n);
    let noised = Gmm::new(g.weights.clone(), g.means.clone(), g.stds.iter().map(|s| s.hypot(sigma)).collect());
    let x0 = noised.unwrap().sample(n, &mut scoregen::rng::HostRng::new(3));
    let chi = |method: McmcMethod| {
        let opts = McmcOpts { step: StepRule::Const(0.5), leapfrog: 3, damping: 0.0, ..McmcOpts::default() };
        let mut prog = annealed(method, &[sigma], 1, 1.0, 1.0, &opts).unwrap();
        prog.steps.remove(0); // start from x0, not the prior
        let r = Runner::new(gpu(), &f, prog, 9).unwrap();
        r.run_batch(gpu(), 0, Some(&x0), 64, &mut |_, _| {}).unwrap();
        let x1 = f.x().to_vec(gpu()).unwrap();
        let bin = |x: f32| ((x + 3.5) / 7.0 * 12.0).floor().clamp(0.0, 11.0) as usize;
        let mut h = [[0f64; 12]; 12];
        for (a, b) in x0.iter().zip(&x1) {
            h[bin(*a)][bin(*b)] += 1.0;
        }
        let (mut stat, mut dof) = (0.0, 0);
        for a in 0..12 {
            for b in a + 1..12 {
                if h[a][b] + h[b][a] >= 20.0 {
                    stat += (h[a][b] - h[b][a]).powi(2) / (h[a][b] + h[b][a]);
                    dof += 1;
                }
            }
        }
        (stat, dof)
    };
    for m in [McmcMethod::Mala, McmcMethod::Hmc, McmcMethod::Ula] {
        let (stat, dof) = chi(m);
        // chi-square: mean dof, sd sqrt(2 dof); the limit is mean + 5 sd
        let limit = dof as f64 + 5.0 * (2.0 * dof as f64).sqrt();
        eprintln!("{m:?}: chi-square {stat:.1} on {dof} pairs (limit {limit:.1})");
        if m == McmcMethod::Ula {
            assert!(stat > 2.0 * limit, "unadjusted Langevin at this step should break the balance: {stat}");
        } else {
            assert!(dof >= 15 && stat < limit, "{m:?}: chi-square {stat} on {dof} pairs");
        }
    }
}

/// Chain i's result depends only on (seed, i): the same chains drawn in batches of 7 and 64,
/// and as chains 40.. of a run, are bit-identical (HMC with adaptation and a trapezoid test).
#[test]
fn a_chain_does_not_depend_on_its_batch() {
    let g = two_modes();
    let opts = McmcOpts { mh: MhRule::Trapezoid(3), adapt: Some(0.6), ..McmcOpts::default() };
    let prog = annealed(McmcMethod::Hmc, &[3.0, 1.0, 0.3], 5, 0.5, 3.0, &opts).unwrap();
    let draw = |batch: usize, first: usize, n: usize| {
        let f = plan(&g, Process::ve(0.3, 3.0), batch);
        let r = Runner::new(gpu(), &f, prog.clone(), 4).unwrap();
        r.sample(gpu(), first, n, &mut |_, _| {}).unwrap()
    };
    let (a, b) = (draw(7, 0, 64), draw(64, 0, 64));
    assert_eq!(a, b);
    assert_eq!(&draw(13, 40, 24)[..], &a[80..]);
}

/// On N(1, 1) at level 0.5 (variance 1.25) with step h = 0.8 x variance, unadjusted Langevin's
/// stationary variance is v / (1 - h / 2v) = 2.08; MALA's test brings it back to 1.25.
#[test]
fn mala_corrects_the_bias_of_unadjusted_langevin() {
    let g = Gmm::new(vec![1.0], vec![vec![1.0]], vec![1.0]).unwrap();
    let (sigma, n) = (0.5, 4000);
    let v = 1.0 + sigma * sigma;
    let f = plan(&g, Process::Fixed { sigma }, n);
    let stats = |xs: &[f32]| {
        let m = xs.iter().map(|&x| x as f64).sum::<f64>() / xs.len() as f64;
        (m, xs.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64)
    };
    let go = |method| {
        let opts = McmcOpts { step: StepRule::Const(0.8 * v), ..McmcOpts::default() };
        let mut r = Runner::new(gpu(), &f, annealed(method, &[sigma], 200, 1.0, v.sqrt(), &opts).unwrap(), 5).unwrap();
        r.prior_mean = vec![1.0];
        let xs = r.sample(gpu(), 0, n, &mut |_, _| {}).unwrap();
        (stats(&xs), r.mcmc_report())
    };
    let ((m_mala, v_mala), rep) = go(McmcMethod::Mala);
    let ((_, v_ula), _) = go(McmcMethod::Ula);
    let rate = rep.unwrap().overall;
    eprintln!("variance {v:.3}: MALA {v_mala:.3} (mean {m_mala:.3}, acceptance {rate:.3}), ULA {v_ula:.3}");
    // sd of a sample variance of 4000 normals: v sqrt(2 / 4000) = 0.028
    assert!((v_mala - v).abs() < 0.1 && (m_mala - 1.0).abs() < 0.08, "MALA variance {v_mala}, mean {m_mala}");
    assert!(v_ula > v + 0.5, "ULA at this step should overshoot: {v_ula}");
    assert!((0.3..0.98).contains(&rate), "acceptance {rate}");
}

/// Adaptation moves each chain's step toward the target acceptance: with h = 4 sigma^2 (too large
/// at the top levels, too small at the bottom ones), every level after the first has its
/// acceptance nearer 0.57 with adaptation than without.
#[test]
fn adaptation_approaches_the_target_acceptance() {
    let g = two_modes();
    let n = 2000;
    let f = plan(&g, Process::ve(0.3, 3.0), n);
    let sig: Vec<f64> = (0..8).map(|i| 3.0 * 0.1f64.powf(i as f64 / 7.0)).collect();
    let levels = |adapt: Option<f64>| {
        let opts = McmcOpts { step: StepRule::Sigma2(16.0), adapt, ..McmcOpts::default() };
        let r = Runner::new(gpu(), &f, annealed(McmcMethod::Mala, &sig, 60, 1.0, 3.0, &opts).unwrap(), 2).unwrap();
        r.sample(gpu(), 0, n, &mut |_, _| {}).unwrap();
        r.mcmc_report().unwrap().levels
    };
    let (plain, adapted) = (levels(None), levels(Some(0.57)));
    eprintln!("acceptance per level without adaptation {plain:?}\nwith {adapted:?}");
    for (p, a) in plain.iter().zip(&adapted).skip(1) {
        assert!((a.1 - 0.57).abs() < (p.1 - 0.57).abs(), "sigma {}: adapted {} plain {}", p.0, a.1, p.1);
    }
    let dev = |l: &[(f64, f64)]| l.iter().map(|a| (a.1 - 0.57).abs()).sum::<f64>() / l.len() as f64;
    assert!(
        dev(&adapted) * 1.5 < dev(&plain),
        "mean distance to the target: {} adapted, {} plain",
        dev(&adapted),
        dev(&plain)
    );
}
