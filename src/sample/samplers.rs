//! The samplers, each a short function from a noise schedule to a `Program`. They work in the
//! scaled coordinates x~ (x~ = x0 + sigma z), where every process's probability-flow ODE is
//! dx~/dsigma = -sigma score, and its reverse SDE moves x~ from sigma to sigma' < sigma by
//! adding (sigma^2 - sigma'^2) score plus noise of that variance.

use super::mcmc::{annealed, corrected, McmcMethod, McmcOpts};
use super::{Kind, Program, Row};
use crate::error::Result;

use crate::score::Process;

/// Start the chains from N(mean, std^2 I): the mean is what the runner holds in its scratch u
/// at the start (`Runner::prior_mean`, zero unless set).
fn prior(p: &mut Program, std: f64) {
    p.push(Kind::Init, Row { cz: std as f32, cu: 1.0, ..Row::default() });
}

/// One Langevin step x <- x + alpha/2 s(x, sigma) + sqrt(alpha) z.
fn langevin_step(p: &mut Program, sigma: f64, alpha: f64) {
    p.push(
        Kind::Update,
        Row { sigma: sigma as f32, cx: 1.0, cs: (alpha / 2.0) as f32, cz: alpha.sqrt() as f32, ..Row::default() },
    );
}

/// Tweedie's denoising step x <- x + sigma^2 s(x, sigma) (the posterior mean of x0).
fn denoise(p: &mut Program, sigma: f64) {
    p.push(Kind::Update, Row { sigma: sigma as f32, cx: 1.0, cs: (sigma * sigma) as f32, ..Row::default() });
}

/// L noise levels from sigma_max down to sigma_min, geometrically spaced (NCSN).
pub fn geometric_sigmas(sigma_max: f64, sigma_min: f64, levels: usize) -> Vec<f64> {
    let l = levels.max(2);
    (0..l).map(|i| sigma_max * (sigma_min / sigma_max).powf(i as f64 / (l - 1) as f64)).collect()
}

/// Langevin dynamics at one fixed noise level (Welling & Teh 2011; Song & Ermon 2019, eq. 4),
/// started from N(0, init_std^2).
pub fn langevin(sigma: f64, alpha: f64, steps: usize, init_std: f64) -> Program {
    let mut p = Program::default();
    prior(&mut p, init_std);
    for _ in 0..steps {
        langevin_step(&mut p, sigma, alpha);
    }
    p
}

/// Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1): T steps at each level sigma_i
/// with alpha_i = eps sigma_i^2 / sigma_L^2, started from the prior N(mean, prior_std^2) (the
/// paper starts from a uniform box around the data), then (optionally, as in NCSNv2) one
/// denoising step at sigma_L.
pub fn annealed_langevin(
    sigmas: &[f64],
    steps_per_level: usize,
    eps: f64,
    final_denoise: bool,
    prior_std: f64,
) -> Program {
    let mut p = Program::default();
    let last = *sigmas.last().unwrap();
    prior(&mut p, prior_std);
    for &s in sigmas {
        let alpha = eps * s * s / (last * last);
        for _ in 0..steps_per_level {
            langevin_step(&mut p, s, alpha);
        }
    }
    if final_denoise {
        denoise(&mut p, last);
    }
    p
}

/// The predictor of the predictor-corrector sampler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Predictor {
    /// score_sde's reverse-diffusion predictor: x <- x + (sigma^2 - sigma'^2) s + sqrt(..) z.
    ReverseDiffusion,
    /// Euler-Maruyama on the reverse SDE: x <- x + g^2 dt s + g sqrt(dt) z, g^2 = 2 sigma sigma'(t).
    EulerMaruyama,
}

/// Predictor-corrector sampling (Song et al. 2021, Algorithms 2-3): at each time of the
/// process's grid, `corrector_steps` Langevin corrector steps, then one predictor step; the
/// last predictor step goes to sigma = 0 without noise (score_sde's denoise = True).
/// The corrector's step is the signal-to-noise rule eps = 2 (snr |z| / |s|)^2 at the norms a
/// chain has on average, |z|^2 = D and |s|^2 = D / sigma^2: eps = 2 (snr sigma)^2, one step
/// per level for every chain. score_sde uses the batch's average realised norms (a chain then
/// depends on its batch); a per-chain realised |s| makes the step depend on the position, and
/// unadjusted Langevin with such a step has the wrong stationary law (exact scores of NCSN's
/// 0.2/0.8 mixture: mode weight 0.259 after 1,000 steps, 0.275 after 3,000; now 0.21).
pub fn predictor_corrector(
    process: &Process,
    steps: usize,
    predictor: Predictor,
    corrector_steps: usize,
    snr: f64,
    prior_std: f64,
) -> Program {
    let ts = process.time_grid(steps);
    let mut p = Program::default();
    prior(&mut p, prior_std);
    for i in 0..ts.len() {
        let sigma = process.sigma(ts[i]);
        for _ in 0..corrector_steps {
            // x <- x + eps s + sqrt(2 eps) z is a Langevin step with alpha = 2 eps.
            langevin_step(&mut p, sigma, 4.0 * (snr * sigma).powi(2));
        }
        let last = i + 1 == ts.len();
        let var = match (last, predictor) {
            (true, _) => sigma * sigma,
            (false, Predictor::ReverseDiffusion) => sigma * sigma - process.sigma(ts[i + 1]).powi(2),
            (false, Predictor::EulerMaruyama) => 2.0 * sigma * process.dsigma_dt(ts[i]) * (ts[i] - ts[i + 1]),
        };
        let cz = if last { 0.0 } else { var.max(0.0).sqrt() };
        p.push(Kind::Update, Row { sigma: sigma as f32, cx: 1.0, cs: var as f32, cz: cz as f32, ..Row::default() });
    }
    p
}

/// One step of the probability-flow ODE dx/dsigma = -sigma s from sigma to sigma_next: Euler,
/// or Heun (Karras et al. 2022, Algorithm 1: a second evaluation at sigma_next unless it is 0).
fn ode_step(p: &mut Program, sigma: f64, sigma_next: f64, heun: bool) {
    let h = sigma_next - sigma;
    let row = Row { sigma: sigma as f32, cx: 1.0, cs: (-h * sigma) as f32, ..Row::default() };
    if !heun || sigma_next <= 0.0 {
        p.push(Kind::Update, row);
        return;
    }
    p.push(Kind::UpdateSave, row);
    p.push(
        Kind::Update,
        Row {
            sigma: sigma_next as f32,
            cx: 0.0,
            cu: 1.0,
            cv: (-h * sigma / 2.0) as f32,
            cs: (-h * sigma_next / 2.0) as f32,
            ..Row::default()
        },
    );
}

/// Integrate the probability-flow ODE over decreasing noise levels, from the prior at
/// sigmas[0], ending at sigma = 0 with an Euler step.
pub fn ode(sigmas: &[f64], prior_std: f64, heun: bool) -> Program {
    let mut p = Program::default();
    prior(&mut p, prior_std);
    for i in 0..sigmas.len() {
        let next = sigmas.get(i + 1).copied().unwrap_or(0.0);
        ode_step(&mut p, sigmas[i], next, heun);
    }
    p
}

/// The same ODE in the other direction, from data at sigmas[0] (small) up to the last level,
/// Heun throughout (for likelihoods): no prior draw.
pub fn ode_forward(sigmas: &[f64]) -> Program {
    let mut p = Program::default();
    for w in sigmas.windows(2) {
        ode_step(&mut p, w[0], w[1], true);
    }
    p
}

/// DDIM (Song, Meng & Ermon 2021) written in sigma (Karras et al. 2022, Sec. 4): with eta = 0
/// the deterministic update is an Euler step of the probability-flow ODE; eta > 0 adds fresh
/// noise sigma_up = eta sqrt(sigma'^2 (sigma^2 - sigma'^2) / sigma^2) after stepping to
/// sigma_down = sqrt(sigma'^2 - sigma_up^2); eta = 1 is DDPM's ancestral sampler.
pub fn ddim(sigmas: &[f64], prior_std: f64, eta: f64) -> Program {
    let mut p = Program::default();
    prior(&mut p, prior_std);
    for i in 0..sigmas.len() {
        let (s, next) = (sigmas[i], sigmas.get(i + 1).copied().unwrap_or(0.0));
        let up = (eta * (next * next * (s * s - next * next) / (s * s)).max(0.0).sqrt()).min(next);
        let down = (next * next - up * up).max(0.0).sqrt();
        let row = Row { sigma: s as f32, cx: 1.0, cs: ((s - down) * s) as f32, cz: up as f32, ..Row::default() };
        p.push(Kind::Update, row);
    }
    p
}

/// What a sampler runs: a fixed program of steps (every sampler but one), or an adaptive
/// solve whose steps depend on the chains (rk45: Dormand-Prince with error control).
#[derive(Clone, Debug)]
pub enum SamplerProgram {
    /// A fixed list of steps.
    Fixed(Program),
    /// Adaptive steps (rk45) to this tolerance.
    Adaptive {
        /// Relative and absolute tolerance.
        tol: f64,
    },
}

/// The samplers the CLI offers (`sample.sampler`, `--sampler`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SamplerKind {
    /// Annealed Langevin dynamics (Song & Ermon 2019).
    Ald,
    /// Predictor-corrector: reverse diffusion and one Langevin corrector step per level.
    Pc,
    /// Probability-flow ODE, Heun's method on the process's time grid.
    Ode,
    /// Adaptive Dormand-Prince (RK45) on the probability-flow ODE.
    Rk45,
    /// DDIM (eta = 0).
    Ddim,
    /// Ancestral sampling (DDIM with eta = 1).
    Ancestral,
    /// Heun on EDM's noise grid (Karras et al. 2022).
    Heun,
    /// Plain Langevin dynamics at sigma_min (fails on multimodal data: a baseline).
    Langevin,
    /// Annealed unadjusted Langevin over the process's levels (`--mcmc-*` options).
    Ula,
    /// Annealed Metropolis-adjusted Langevin with a per-chain test.
    Mala,
    /// Annealed unadjusted HMC (partial momentum refresh, `--leapfrog` steps).
    Uhmc,
    /// Annealed HMC with a per-chain Metropolis test.
    Hmc,
}

impl std::str::FromStr for SamplerKind {
    type Err = String;
    /// The CLI's names (`heun`, `pc`, `ode`, ...).
    fn from_str(s: &str) -> std::result::Result<SamplerKind, String> {
        <SamplerKind as clap::ValueEnum>::from_str(s, true).map_err(|_| {
            let names: Vec<&str> =
                <SamplerKind as clap::ValueEnum>::value_variants().iter().map(|k| k.name()).collect();
            format!("'{s}' is not a sampler ({})", names.join(", "))
        })
    }
}

impl SamplerKind {
    /// The CLI's name of the sampler.
    pub fn name(self) -> &'static str {
        match self {
            SamplerKind::Ald => "ald",
            SamplerKind::Pc => "pc",
            SamplerKind::Ode => "ode",
            SamplerKind::Rk45 => "rk45",
            SamplerKind::Ddim => "ddim",
            SamplerKind::Ancestral => "ancestral",
            SamplerKind::Heun => "heun",
            SamplerKind::Langevin => "langevin",
            SamplerKind::Ula => "ula",
            SamplerKind::Mala => "mala",
            SamplerKind::Uhmc => "uhmc",
            SamplerKind::Hmc => "hmc",
        }
    }

    /// The MCMC method of the annealed MCMC samplers.
    pub fn mcmc(self) -> Option<McmcMethod> {
        match self {
            SamplerKind::Ula => Some(McmcMethod::Ula),
            SamplerKind::Mala => Some(McmcMethod::Mala),
            SamplerKind::Uhmc => Some(McmcMethod::Uhmc),
            SamplerKind::Hmc => Some(McmcMethod::Hmc),
            _ => None,
        }
    }

    /// The program for `steps` (noise levels or grid points; ALD: total Langevin steps, split
    /// over `opts.levels` levels) with the default settings of each method.
    pub fn program(self, process: &Process, steps: usize, opts: &SamplerOpts) -> Result<SamplerProgram> {
        match self {
            SamplerKind::Rk45 => Ok(SamplerProgram::Adaptive { tol: opts.tol }),
            _ => Ok(SamplerProgram::Fixed(self.fixed_program(process, steps, opts)?)),
        }
    }

    /// The fixed-step program (rk45: the Heun program on its grid, for comparisons).
    pub fn fixed_program(self, process: &Process, steps: usize, opts: &SamplerOpts) -> Result<Program> {
        let base = self.base_program(process, steps, opts)?;
        match (opts.mcmc.corrector, self) {
            (Some(m), SamplerKind::Pc | SamplerKind::Ddim | SamplerKind::Ancestral) => {
                let per = opts.mcmc.steps_per_level.unwrap_or(1);
                corrected(base, m, per, opts.eps, &opts.mcmc)
            }
            _ => Ok(base),
        }
    }

    fn base_program(self, process: &Process, steps: usize, opts: &SamplerOpts) -> Result<Program> {
        let (smin, smax) = (process.sigma_min(), process.sigma_max());
        let grid = |n: usize| -> Vec<f64> { process.time_grid(n).iter().map(|&t| process.sigma(t)).collect() };
        let prior_std = process.prior_var_with(opts.data_var).sqrt();
        Ok(match self {
            SamplerKind::Ald => {
                let levels = opts.levels.max(2);
                annealed_langevin(
                    &geometric_sigmas(smax, smin, levels),
                    (steps / levels).max(1),
                    opts.eps,
                    true,
                    prior_std,
                )
            }
            SamplerKind::Langevin => langevin(smin, opts.eps, steps, prior_std),
            SamplerKind::Ula | SamplerKind::Mala | SamplerKind::Uhmc | SamplerKind::Hmc => {
                // The process's own levels (VE: geometric; VP: its time grid), from the top.
                let levels = if smax > smin { grid(opts.levels.max(2)) } else { vec![smin] };
                let per = opts.mcmc.steps_per_level.unwrap_or((steps / levels.len()).max(1));
                return annealed(self.mcmc().unwrap(), &levels, per, opts.eps, prior_std, &opts.mcmc);
            }
            SamplerKind::Pc => {
                let corrector = if opts.mcmc.corrector.is_some() { 0 } else { 1 };
                predictor_corrector(process, steps, Predictor::ReverseDiffusion, corrector, opts.snr, prior_std)
            }
            SamplerKind::Ode | SamplerKind::Rk45 => ode(&grid(steps), prior_std, true),
            SamplerKind::Ddim => ddim(&grid(steps), prior_std, 0.0),
            SamplerKind::Ancestral => ddim(&grid(steps), prior_std, 1.0),
            SamplerKind::Heun => {
                let edm = Process::Edm { sigma_min: smin, sigma_max: smax, p_mean: 0.0, p_std: 1.0 };
                ode(&grid_of(&edm, steps), prior_std, true)
            }
        })
    }
}

fn grid_of(p: &Process, n: usize) -> Vec<f64> {
    p.time_grid(n).iter().map(|&t| p.sigma(t)).collect()
}

/// Method settings (defaults: W1's ALD, score_sde's snr 0.16 for PC).
#[derive(Clone, Debug, PartialEq)]
pub struct SamplerOpts {
    /// ALD / Langevin step scale.
    pub eps: f64,
    /// ALD noise levels.
    pub levels: usize,
    /// PC corrector signal-to-noise ratio.
    pub snr: f64,
    /// The data's variance per dimension about its mean (widens the prior to the true
    /// marginal's; the mean is the runner's `prior_mean`).
    pub data_var: f64,
    /// RK45's relative and absolute tolerance.
    pub tol: f64,
    /// The MCMC samplers' and correctors' settings.
    pub mcmc: McmcOpts,
    /// Image models: clip the denoised estimate to [-1, 1] at every step (DDPM's
    /// clip_denoised; diffusers' clip_sample). Ignored for other models.
    pub clip_denoised: bool,
}

impl Default for SamplerOpts {
    fn default() -> Self {
        SamplerOpts {
            eps: 5e-5,
            levels: 10,
            snr: 0.16,
            data_var: 0.0,
            tol: 1e-5,
            mcmc: McmcOpts::default(),
            clip_denoised: true,
        }
    }
}
