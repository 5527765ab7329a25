//! Annealed MCMC as programs: ULA, MALA, unadjusted HMC and HMC over the noise levels of a
//! process, alone or as the corrector between the steps of reverse diffusion, DDIM or ancestral
//! sampling (Du et al. 2023), with per-chain Metropolis tests by the model's energy or by the
//! trapezoid rule along the move (Sjoberg et al. 2023), step-size adaptation per chain and AIS
//! weights (shaders/mcmc.wgsl; the GPU side is mcmc_gpu.rs).
//!
//! Step sizes: every rule gives a Langevin step h (MALA's proposal N(x + h s, 2h I), ULA's
//! x + h s + sqrt(2h) z); HMC's leapfrog step is sqrt(2h), so that one leapfrog step with a full
//! momentum refresh is MALA with the same h.

use super::{Kind, Program, Row};
use crate::error::{Error, Result};

/// The MCMC method of a level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum McmcMethod {
    /// Unadjusted Langevin.
    Ula,
    /// Metropolis-adjusted Langevin.
    Mala,
    /// Unadjusted HMC (partial momentum refresh, leapfrog).
    Uhmc,
    /// HMC with a per-chain Metropolis test.
    Hmc,
}

impl McmcMethod {
    /// The CLI's name of the method.
    pub fn name(self) -> &'static str {
        match self {
            McmcMethod::Ula => "ula",
            McmcMethod::Mala => "mala",
            McmcMethod::Uhmc => "uhmc",
            McmcMethod::Hmc => "hmc",
        }
    }
    /// Whether it runs a Metropolis test.
    pub fn adjusted(self) -> bool {
        matches!(self, McmcMethod::Mala | McmcMethod::Hmc)
    }
    fn hamiltonian(self) -> bool {
        matches!(self, McmcMethod::Uhmc | McmcMethod::Hmc)
    }
}

/// The Langevin step h at each level.
#[derive(Clone, Debug, PartialEq)]
pub enum StepRule {
    /// ALD's rule: h = eps sigma^2 / sigma_L^2 / 2 (sample.eps; sigma_L the last level).
    Ald,
    /// h = c sigma^2.
    Sigma2(f64),
    /// The same h at every level.
    Const(f64),
    /// One h per level, in the order the levels run (from the top).
    Levels(Vec<f64>),
}

impl std::str::FromStr for StepRule {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let num = |v: &str| -> std::result::Result<f64, String> {
            match v.trim().parse::<f64>() {
                Ok(x) if x > 0.0 && x.is_finite() => Ok(x),
                _ => Err(format!("'{v}' is not a positive step")),
            }
        };
        let bad = || format!("'{s}': expected ald, sigma2:C, const:H or levels:H1,H2,...");
        match s.split_once(':') {
            None if s == "ald" => Ok(StepRule::Ald),
            Some(("sigma2", v)) => Ok(StepRule::Sigma2(num(v)?)),
            Some(("const", v)) => Ok(StepRule::Const(num(v)?)),
            Some(("levels", v)) => Ok(StepRule::Levels(v.split(',').map(num).collect::<std::result::Result<_, _>>()?)),
            _ => Err(bad()),
        }
    }
}

/// How a Metropolis test gets log p(x') - log p(x).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MhRule {
    /// From the model's energy (energy networks, analytic models, compositions of them).
    Energy,
    /// The trapezoid rule with n points (n >= 2) along the straight line x -> x' of the score:
    /// n - 2 evaluations more per test; works for score-only models.
    Trapezoid(usize),
}

impl std::str::FromStr for MhRule {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.split_once(':') {
            None if s == "energy" => Ok(MhRule::Energy),
            Some(("trapezoid", n)) => match n.parse::<usize>() {
                Ok(n) if (2..=64).contains(&n) => Ok(MhRule::Trapezoid(n)),
                _ => Err(format!("'{s}': trapezoid takes 2 to 64 points")),
            },
            _ => Err(format!("'{s}': expected energy or trapezoid:N")),
        }
    }
}

/// The settings of the MCMC samplers and correctors (`--mcmc-*` options).
#[derive(Clone, Debug, PartialEq)]
pub struct McmcOpts {
    /// Transitions per level (default: the sampler's steps over its levels).
    pub steps_per_level: Option<usize>,
    /// How the step size follows sigma.
    pub step: StepRule,
    /// Leapfrog steps per HMC transition.
    pub leapfrog: usize,
    /// Momentum kept at each refresh: v' = k v + sqrt(1 - k^2) sqrt(M) z.
    pub damping: f64,
    /// The (scalar) mass M.
    pub mass: f64,
    /// Adapt each chain's step toward this acceptance (Du et al.: 0.57).
    pub adapt: Option<f64>,
    /// The Metropolis-Hastings rule (exact energies or the line integral of the score).
    pub mh: MhRule,
    /// Accumulate AIS log weights (needs an energy).
    pub ais: bool,
    /// MCMC between the steps of pc, ddim and ancestral.
    pub corrector: Option<McmcMethod>,
    /// The fraction of those steps, from the top of the noise range, that get a corrector.
    pub corrector_fraction: f64,
}

impl Default for McmcOpts {
    fn default() -> Self {
        McmcOpts {
            steps_per_level: None,
            step: StepRule::Ald,
            leapfrog: 3,
            damping: 0.5,
            mass: 1.0,
            adapt: None,
            mh: MhRule::Energy,
            ais: false,
            corrector: None,
            corrector_fraction: 1.0,
        }
    }
}

impl McmcOpts {
    /// Refuse settings no program can run, naming the option.
    pub fn check(&self, method: McmcMethod) -> Result<()> {
        let bad = |m: String| Err(Error::Invalid(m));
        if self.steps_per_level == Some(0) {
            return bad("--mcmc-steps must be at least 1".into());
        }
        if self.leapfrog == 0 || self.leapfrog > 1000 {
            return bad(format!("--leapfrog {}: must be 1 to 1000", self.leapfrog));
        }
        if !(0.0..1.0).contains(&self.damping) {
            return bad(format!("--damping {}: the momentum kept must be in [0, 1)", self.damping));
        }
        if !(self.mass > 0.0 && self.mass.is_finite()) {
            return bad(format!("--mass {}: must be positive", self.mass));
        }
        if let Some(t) = self.adapt {
            if !(t > 0.0 && t < 1.0) {
                return bad(format!("--adapt {t}: the target acceptance must be in (0, 1)"));
            }
            if !method.adjusted() {
                return bad(format!("--adapt: {} has no acceptance to adapt to; use mala or hmc", method.name()));
            }
        }
        if !(self.corrector_fraction > 0.0 && self.corrector_fraction <= 1.0) {
            return bad(format!("--corrector-fraction {}: must be in (0, 1]", self.corrector_fraction));
        }
        Ok(())
    }
}

/// What the GPU kernels of a program's MCMC rows need (pipeline constants).
#[derive(Clone, Debug, PartialEq)]
pub struct McmcConsts {
    /// The MCMC method.
    pub method: McmcMethod,
    /// The noise level of each MCMC level, in the order they run.
    pub levels: Vec<f64>,
    /// Metropolis tests per chain at each level.
    pub tests: Vec<usize>,
    /// Momentum kept at each refresh.
    pub damping: f64,
    /// The (scalar) mass.
    pub mass: f64,
    /// Target acceptance (0: no adaptation).
    pub target: f64,
    /// The energy difference from the score by the trapezoid rule (no energy head).
    pub trapezoid: bool,
    /// Accumulate AIS log weights.
    pub ais: bool,
}

/// Builds the MCMC levels of a program.
struct Levels<'a> {
    method: McmcMethod,
    opts: &'a McmcOpts,
    consts: McmcConsts,
}

impl Levels<'_> {
    /// One level at `sigma`: re-read the chain's state (with the AIS weight `ais_mode`: 0 none,
    /// 1 against the previous level, 2 against the prior N(mean, prior_std^2)), then `steps`
    /// transitions of Langevin step h.
    fn level(&mut self, p: &mut Program, sigma: f64, h: f64, steps: usize, ais_mode: u8, prior_std: f64) {
        let lv = self.consts.levels.len();
        self.consts.levels.push(sigma);
        self.consts.tests.push(if self.method.adjusted() { steps } else { 0 });
        let (s, level) = (sigma as f32, lv as f32);
        let ula = self.method == McmcMethod::Ula;
        if !ula || self.consts.ais {
            p.push(
                Kind::McmcCache,
                Row { sigma: s, cz: level, cu: ais_mode as f32, cv: prior_std as f32, ..Row::default() },
            );
        }
        let row = |h: f64| Row { sigma: s, cs: h as f32, cz: level, ..Row::default() };
        for t in 0..steps {
            match self.method {
                McmcMethod::Ula => p.push(
                    Kind::Update,
                    Row { sigma: s, cx: 1.0, cs: h as f32, cz: (2.0 * h).sqrt() as f32, ..Row::default() },
                ),
                McmcMethod::Mala => {
                    p.push(Kind::McmcPropose, row(h));
                    let end = self.line(p, sigma);
                    p.push(Kind::MalaAccept, Row { cv: end, ..row(h) });
                }
                McmcMethod::Uhmc | McmcMethod::Hmc => {
                    let eps = (2.0 * h).sqrt();
                    // The level's first transition draws a fresh momentum.
                    p.push(Kind::HmcStart, Row { cu: if t == 0 { 1.0 } else { 0.0 }, ..row(eps) });
                    for _ in 1..self.opts.leapfrog {
                        p.push(Kind::HmcLeap, row(eps));
                    }
                    let end = if self.method.adjusted() { self.line(p, sigma) } else { 0.0 };
                    p.push(Kind::HmcAccept, Row { cv: end, ..row(eps) });
                }
            }
        }
        // ULA's chains moved without evaluations at their end points: the energy there, for AIS.
        if ula && self.consts.ais {
            p.push(Kind::McmcCache, Row { sigma: s, cz: level, ..Row::default() });
        }
    }

    /// The trapezoid rule's interior points (with n points: n - 2 evaluations); returns the
    /// weight of the end points.
    fn line(&self, p: &mut Program, sigma: f64) -> f32 {
        let MhRule::Trapezoid(n) = self.opts.mh else { return 0.0 };
        let seg = 1.0 / (n - 1) as f32;
        p.push(Kind::LineStart, Row { sigma: sigma as f32, cu: seg.min(1.0), ..Row::default() });
        for j in 1..n - 1 {
            let next = if j + 1 == n - 1 { 1.0 } else { (j + 1) as f32 * seg };
            p.push(Kind::LineStep, Row { sigma: sigma as f32, cu: next, cv: seg, ..Row::default() });
        }
        seg / 2.0
    }
}

fn builder(method: McmcMethod, opts: &McmcOpts) -> Levels<'_> {
    let consts = McmcConsts {
        method,
        levels: vec![],
        tests: vec![],
        damping: if method.hamiltonian() { opts.damping } else { 0.0 },
        mass: if method.hamiltonian() { opts.mass } else { 1.0 },
        target: opts.adapt.unwrap_or(0.0),
        trapezoid: method.adjusted() && matches!(opts.mh, MhRule::Trapezoid(_)),
        ais: opts.ais,
    };
    Levels { method, opts, consts }
}

/// The Langevin steps of `sigmas` under the rule (`eps`: ALD's scale).
pub fn step_sizes(rule: &StepRule, sigmas: &[f64], eps: f64) -> Result<Vec<f64>> {
    let last = sigmas.last().copied().unwrap_or(1.0);
    match rule {
        StepRule::Ald => Ok(sigmas.iter().map(|s| eps * s * s / (last * last) / 2.0).collect()),
        StepRule::Sigma2(c) => Ok(sigmas.iter().map(|s| c * s * s).collect()),
        StepRule::Const(h) => Ok(vec![*h; sigmas.len()]),
        StepRule::Levels(hs) if hs.len() == sigmas.len() => Ok(hs.clone()),
        StepRule::Levels(hs) => Err(Error::Invalid(format!(
            "--mcmc-step levels:...: {} step sizes for {} MCMC levels; give one per level",
            hs.len(),
            sigmas.len()
        ))),
    }
}

/// Annealed MCMC from the prior N(mean, prior_std^2) over `sigmas` (from the top), `per_level`
/// transitions at each.
pub fn annealed(
    method: McmcMethod,
    sigmas: &[f64],
    per_level: usize,
    eps: f64,
    prior_std: f64,
    opts: &McmcOpts,
) -> Result<Program> {
    let hs = step_sizes(&opts.step, sigmas, eps)?;
    let mut p = Program::default();
    p.push(Kind::Init, Row { cz: prior_std as f32, cu: 1.0, ..Row::default() });
    let mut b = builder(method, opts);
    for (i, (&s, &h)) in sigmas.iter().zip(&hs).enumerate() {
        b.level(
            &mut p,
            s,
            h,
            per_level,
            if !opts.ais {
                0
            } else if i == 0 {
                2
            } else {
                1
            },
            prior_std,
        );
    }
    p.mcmc = Some(b.consts);
    Ok(p)
}

/// `base` (a reverse-diffusion, DDIM or ancestral program) with MCMC levels of `per_level`
/// transitions before its first `opts.corrector_fraction` of steps, each at that step's level.
pub fn corrected(base: Program, method: McmcMethod, per_level: usize, eps: f64, opts: &McmcOpts) -> Result<Program> {
    let steps: Vec<usize> = (0..base.steps.len()).filter(|&i| base.steps[i].0 != Kind::Init).collect();
    let take = ((steps.len() as f64 * opts.corrector_fraction).ceil() as usize).min(steps.len());
    let sigmas: Vec<f64> = steps[..take].iter().map(|&i| base.steps[i].1.sigma as f64).collect();
    let hs = step_sizes(&opts.step, &sigmas, eps)?;
    let mut p = Program::default();
    let mut b = builder(method, opts);
    for (i, step) in base.steps.into_iter().enumerate() {
        if let Some(k) = steps[..take].iter().position(|&j| j == i) {
            b.level(&mut p, sigmas[k], hs[k], per_level, 0, 1.0);
        }
        p.steps.push(step);
    }
    p.mcmc = Some(b.consts);
    Ok(p)
}

/// Acceptance and AIS weights of an MCMC run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct McmcReport {
    /// The method's name.
    pub method: String,
    /// (sigma, fraction of proposals accepted) per level, levels without tests left out.
    pub levels: Vec<(f64, f64)>,
    /// The fraction of all proposals accepted.
    pub overall: f64,
    /// The acceptance of each of (up to) 8 equal groups of chains, in chain order.
    pub groups: Vec<f64>,
    /// AIS log weights, one per chain (when asked).
    pub log_w: Vec<f64>,
}

impl McmcReport {
    /// log Z = log mean w and its standard error (delta method: sd(w) / (sqrt(n) mean(w))).
    pub fn log_z(&self) -> Option<(f64, f64)> {
        let n = self.log_w.len();
        if n < 2 {
            return None;
        }
        let m = self.log_w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let w: Vec<f64> = self.log_w.iter().map(|l| (l - m).exp()).collect();
        let mean = w.iter().sum::<f64>() / n as f64;
        let var = w.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        Some((m + mean.ln(), var.sqrt() / (n as f64).sqrt() / mean))
    }

    /// One JSON object.
    pub fn json(&self) -> String {
        let levels: Vec<String> =
            self.levels.iter().map(|(s, a)| format!("{{\"sigma\":{s:.6e},\"acceptance\":{a:.4}}}")).collect();
        let groups: Vec<String> = self.groups.iter().map(|g| format!("{g:.4}")).collect();
        let mut out = format!(
            "{{\"sampler\":\"{}\",\"acceptance\":{:.4},\"levels\":[{}],\"chain_groups\":[{}]",
            self.method,
            self.overall,
            levels.join(","),
            groups.join(",")
        );
        if let Some((lz, se)) = self.log_z() {
            out += &format!(",\"log_z\":{lz:.6},\"log_z_se\":{se:.6}");
        }
        out + "}"
    }
}
