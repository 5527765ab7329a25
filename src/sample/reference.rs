//! Plain-loop references of programs for one chain (f64, the same Philox numbers as the GPU):
//! the executable specs of shaders/sampler.wgsl and shaders/mcmc.wgsl.

use super::{Kind, Program};
use crate::ops::random::{random_ref, Dist, RngKey};

/// A program for one chain: `score(x, sigma)` is the model; `prior_mean` is what the runner
/// puts in u before the program (`Runner::prior_mean`).
pub fn run_program_ref(
    program: &Program,
    score: &dyn Fn(&[f64], f64) -> Vec<f64>,
    d: usize,
    chain: u64,
    seed: u64,
    x0: Option<&[f64]>,
    prior_mean: &[f64],
) -> Vec<f64> {
    run_program_ref_mcmc(program, score, &|_, _| f64::NAN, d, (chain, seed), x0, prior_mean).x
}

/// The end of a chain under the reference.
#[derive(Clone, Debug, PartialEq)]
pub struct McmcRef {
    /// The chain's end point.
    pub x: Vec<f64>,
    /// Accepted proposals per MCMC level.
    pub accepted: Vec<usize>,
    /// The chain's AIS log weight.
    pub log_w: f64,
    /// The chain's step multiplier (adaptation).
    pub scale: f64,
}

/// The chain's MCMC state (shaders/mcmc.wgsl's state, mom, xp and chain row).
struct Chain {
    xc: Vec<f64>,
    sc: Vec<f64>,
    ec: f64,
    v: Vec<f64>,
    vr: Vec<f64>,
    xp: Vec<f64>,
    line: f64,
    out: McmcRef,
}

/// The same with the model's energy, for programs with MCMC rows.
pub fn run_program_ref_mcmc(
    program: &Program,
    score: &dyn Fn(&[f64], f64) -> Vec<f64>,
    energy: &dyn Fn(&[f64], f64) -> f64,
    d: usize,
    (chain, seed): (u64, u64),
    x0: Option<&[f64]>,
    prior_mean: &[f64],
) -> McmcRef {
    let blocks = d.div_ceil(4) as u64;
    let mut x = x0.map(|v| v.to_vec()).unwrap_or_else(|| vec![0.0; d]);
    let (mut u, mut v) = (prior_mean.to_vec(), vec![0.0; d]);
    let levels = program.mcmc.as_ref().map_or(0, |c| c.levels.len());
    let zero = vec![0.0; d];
    let out = McmcRef { x: vec![], accepted: vec![0; levels], log_w: 0.0, scale: 1.0 };
    let mut c =
        Chain { xc: x.clone(), sc: zero.clone(), ec: 0.0, v: zero.clone(), vr: zero.clone(), xp: zero, line: 0.0, out };
    for (k, (kind, r)) in program.steps.iter().enumerate() {
        let z: Vec<f64> = random_ref(d, RngKey { seed, stream: chain, counter: k as u64 * blocks }, Dist::Normal)
            .iter()
            .map(|&z| z as f64)
            .collect();
        if kind.mcmc() {
            let uni = random_ref(1, RngKey { seed, stream: chain, counter: (1u64 << 32) + k as u64 }, Dist::Uniform)[0];
            mcmc_step(program, *kind, r, (&mut x, &mut c), (&z, uni as f64, &u), score, energy);
            continue;
        }
        let s = if *kind == Kind::Init { vec![0.0; d] } else { score(&x, r.sigma as f64) };
        for j in 0..d {
            let new =
                r.cx as f64 * x[j] + r.cs as f64 * s[j] + r.cz as f64 * z[j] + r.cu as f64 * u[j] + r.cv as f64 * v[j];
            if *kind == Kind::UpdateSave {
                u[j] = x[j];
                v[j] = s[j];
            }
            x[j] = new;
        }
    }
    c.out.x = x;
    c.out
}

/// One MCMC row: `z` the step's normals, `uni` its uniform, `u` the prior's mean.
fn mcmc_step(
    program: &Program,
    kind: Kind,
    r: &super::Row,
    (x, c): (&mut Vec<f64>, &mut Chain),
    (z, uni, u): (&[f64], f64, &[f64]),
    score: &dyn Fn(&[f64], f64) -> Vec<f64>,
    energy: &dyn Fn(&[f64], f64) -> f64,
) {
    let k = program.mcmc.as_ref().expect("MCMC rows come with their settings");
    let d = x.len();
    let (sig, h, level, a, b) = (r.sigma as f64, r.cs as f64 * c.out.scale, r.cz as usize, r.cu as f64, r.cv as f64);
    let dot = |p: &[f64], q: &[f64]| p.iter().zip(q).map(|(p, q)| p * q).sum::<f64>();
    let sub = |p: &[f64], q: &[f64]| p.iter().zip(q).map(|(p, q)| p - q).collect::<Vec<f64>>();
    match kind {
        Kind::McmcCache => {
            let e = energy(x, sig);
            if a == 1.0 {
                c.out.log_w += c.ec - e;
            } else if a == 2.0 {
                let q: f64 = (0..d).map(|j| ((x[j] - u[j]) / b).powi(2)).sum();
                let log_q = -0.5 * q - d as f64 * (b.ln() + 0.5 * (2.0 * std::f64::consts::PI).ln());
                c.out.log_w = -e - log_q;
            }
            (c.xc, c.sc, c.ec) = (x.clone(), score(x, sig), e);
        }
        Kind::McmcPropose => *x = (0..d).map(|j| c.xc[j] + h * c.sc[j] + (2.0 * h).sqrt() * z[j]).collect(),
        Kind::HmcStart => {
            let (m, keep) = (k.mass, if a == 1.0 { 0.0 } else { k.damping });
            c.vr = (0..d).map(|j| keep * c.v[j] + ((1.0 - keep * keep) * m).sqrt() * z[j]).collect();
            c.v = (0..d).map(|j| c.vr[j] + 0.5 * h * c.sc[j]).collect();
            *x = (0..d).map(|j| c.xc[j] + h * c.v[j] / m).collect();
        }
        Kind::HmcLeap => {
            let s = score(x, sig);
            for j in 0..d {
                c.v[j] += h * s[j];
                x[j] += h * c.v[j] / k.mass;
            }
        }
        Kind::LineStart => {
            c.xp = x.clone();
            c.line = 0.0;
            *x = (0..d).map(|j| c.xc[j] + a * (c.xp[j] - c.xc[j])).collect();
        }
        Kind::LineStep => {
            c.line += b * dot(&score(x, sig), &sub(&c.xp, &c.xc));
            *x = (0..d).map(|j| c.xc[j] + a * (c.xp[j] - c.xc[j])).collect();
        }
        Kind::MalaAccept | Kind::HmcAccept => {
            let (s, e) = (score(x, sig), energy(x, sig));
            accept(k, kind, (x, c), (h, level, b, uni), s, e)
        }
        _ => unreachable!("not an MCMC row"),
    }
}

/// A Metropolis test (or, unadjusted, the end of a move) of the reference: `s`, `e` at the
/// proposal x.
fn accept(
    k: &super::mcmc::McmcConsts,
    kind: Kind,
    (x, c): (&mut Vec<f64>, &mut Chain),
    (h, level, b, uni): (f64, usize, f64, f64),
    s: Vec<f64>,
    e: f64,
) {
    let d = x.len();
    let dot = |p: &[f64], q: &[f64]| p.iter().zip(q).map(|(p, q)| p * q).sum::<f64>();
    let sub = |p: &[f64], q: &[f64]| p.iter().zip(q).map(|(p, q)| p - q).collect::<Vec<f64>>();
    let ratio = if k.trapezoid {
        let ends: Vec<f64> = (0..d).map(|j| c.sc[j] + s[j]).collect();
        c.line + b * dot(&ends, &sub(x, &c.xc))
    } else {
        -(e - c.ec)
    };
    let log_a = if kind == Kind::MalaAccept {
        let fwd: f64 = (0..d).map(|j| (x[j] - c.xc[j] - h * c.sc[j]).powi(2)).sum();
        let bwd: f64 = (0..d).map(|j| (c.xc[j] - x[j] - h * s[j]).powi(2)).sum();
        ratio + (fwd - bwd) / (4.0 * h)
    } else {
        (0..d).for_each(|j| c.v[j] += 0.5 * h * s[j]);
        let kin = dot(&c.v, &c.v) - dot(&c.vr, &c.vr);
        if k.method.adjusted() {
            ratio - kin / (2.0 * k.mass)
        } else {
            0.0
        }
    };
    let ok = !k.method.adjusted() || uni.ln() < log_a;
    if k.target > 0.0 {
        let acc = if log_a.is_nan() { 0.0 } else { log_a.exp().min(1.0) };
        c.out.scale *= 1.0 + 0.02 * (acc - k.target);
    }
    if ok {
        (c.xc, c.sc, c.ec) = (x.clone(), s, if e.is_nan() { 0.0 } else { e });
        c.out.accepted[level] += 1;
    } else {
        *x = c.xc.clone();
        if kind == Kind::HmcAccept {
            c.v = c.vr.iter().map(|v| -v).collect();
        }
    }
}
