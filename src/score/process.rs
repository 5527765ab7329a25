//! Noise processes. Every process is written once as its marginal
//!   x_t = s(t) (x0 + sigma(t) z),   z ~ N(0, I),
//! (Karras et al. 2022, eq. 10), i.e. a scale s(t) and a noise level sigma(t). In the scaled
//! coordinates x~ = x / s every process is the variance-exploding one with noise level sigma,
//! so models and samplers work on (x~, sigma) and a process only sets the noise schedule, the
//! training distribution of noise levels and the prior. The forward SDE follows from (s, sigma):
//!   dx = f(t) x dt + g(t) dw,   f = s'/s,   g^2 = 2 s^2 sigma sigma'
//! (VE: f = 0, g^2 = d sigma^2/dt; VP: f = -beta/2, g^2 = beta; sub-VP: g^2 = beta (1 - e^{-2 int beta})),
//! and in x~ its reverse SDE and probability-flow ODE are
//!   dx~ = -2 sigma sigma' score dt + sqrt(2 sigma sigma') dw~,   dx~/dsigma = -sigma score.

use crate::dist::Moments;

/// The process families a config names (`process.kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProcessKind {
    /// Variance exploding.
    Ve,
    /// Variance preserving, linear beta.
    Vp,
    /// Variance preserving, cosine schedule.
    VpCosine,
    /// Sub-VP.
    Subvp,
    /// EDM's sigma(t) = t.
    Edm,
    /// One noise level, sigma = `process.sigma_min` (the papers' single-level toy setting).
    Fixed,
}

/// A range a process family is set by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Range {
    /// sigma_min, sigma_max
    Sigma,
    /// beta_min, beta_max
    Beta,
}

impl ProcessKind {
    /// The range this family takes, if any (vp-cosine takes none: its schedule is fixed).
    pub fn takes(self) -> Option<Range> {
        match self {
            ProcessKind::Ve | ProcessKind::Edm | ProcessKind::Fixed => Some(Range::Sigma),
            ProcessKind::Vp | ProcessKind::Subvp => Some(Range::Beta),
            ProcessKind::VpCosine => None,
        }
    }
    /// The name configs use.
    pub fn name(self) -> &'static str {
        match self {
            ProcessKind::Ve => "ve",
            ProcessKind::Vp => "vp",
            ProcessKind::VpCosine => "vp-cosine",
            ProcessKind::Subvp => "subvp",
            ProcessKind::Edm => "edm",
            ProcessKind::Fixed => "fixed",
        }
    }
}

/// A noise process: x~ = s(t) x0 + s(t) sigma(t) z, its schedule and its prior.
#[derive(Clone, Debug, PartialEq)]
pub enum Process {
    /// Variance exploding (NCSN, score_sde VE): s = 1, sigma(t) = sigma_min (sigma_max/sigma_min)^t, t in [0, 1].
    Ve {
        /// The smallest noise level.
        sigma_min: f64,
        /// The largest.
        sigma_max: f64,
    },
    /// Variance preserving (DDPM): alpha_bar(t) = exp(-int_0^t beta); linear beta(t) = b0 + t (b1 - b0).
    VpLinear {
        /// beta(0).
        beta_min: f64,
        /// beta(1).
        beta_max: f64,
    },
    /// VP with Nichol & Dhariwal's cosine schedule: alpha_bar(t) = cos^2((t + s)/(1 + s) pi/2) / cos^2(s/(1+s) pi/2).
    VpCosine {
        /// The offset s (0.008 in the paper).
        s: f64,
    },
    /// Sub-VP (Song et al. 2021): mean sqrt(alpha_bar) x0, std 1 - alpha_bar (linear beta).
    SubVp {
        /// beta(0).
        beta_min: f64,
        /// beta(1).
        beta_max: f64,
    },
    /// EDM (Karras et al. 2022): s = 1, sigma(t) = t in [sigma_min, sigma_max]; training draws
    /// ln sigma ~ N(p_mean, p_std^2).
    Edm {
        /// The smallest noise level.
        sigma_min: f64,
        /// The largest.
        sigma_max: f64,
        /// The mean of ln sigma in training.
        p_mean: f64,
        /// Its standard deviation.
        p_std: f64,
    },
    /// One noise level: s = 1, sigma(t) = sigma for every t (training draws it alone; sampling
    /// is Langevin dynamics at that level).
    Fixed {
        /// The noise level.
        sigma: f64,
    },
}

/// EDM's mean and spread of ln sigma in training (Karras et al. 2022: P_mean, P_std).
pub const EDM_P_MEAN: f64 = -1.2;
/// See `EDM_P_MEAN`.
pub const EDM_P_STD: f64 = 1.2;

/// Smallest t used by the VP-family processes (score_sde's eps = 1e-5 for sampling; 1e-3 keeps
/// sigma(t_min) from vanishing in f32).
pub const VP_T_MIN: f64 = 1e-3;

impl Process {
    /// VE between these levels.
    pub fn ve(sigma_min: f64, sigma_max: f64) -> Process {
        Process::Ve { sigma_min, sigma_max }
    }
    /// VP with DDPM's linear beta from 0.1 to 20.
    pub fn vp() -> Process {
        Process::VpLinear { beta_min: 0.1, beta_max: 20.0 }
    }
    /// EDM with the paper's settings (sigma 0.002 to 80, ln sigma ~ N(-1.2, 1.2^2)).
    pub fn edm() -> Process {
        Process::Edm { sigma_min: 0.002, sigma_max: 80.0, p_mean: EDM_P_MEAN, p_std: EDM_P_STD }
    }

    /// The process of a config: `kind` with its noise range (ve, edm: sigma, default
    /// 0.01..10) or beta range (vp, subvp: default 0.1..20). The caller has refused ranges a
    /// kind does not take (`ProcessKind::takes`).
    pub fn from_kind(kind: ProcessKind, sigma: Option<(f64, f64)>, beta: Option<(f64, f64)>) -> Process {
        let (sigma_min, sigma_max) = sigma.unwrap_or((0.01, 10.0));
        let (beta_min, beta_max) = beta.unwrap_or((0.1, 20.0));
        match kind {
            ProcessKind::Ve => Process::ve(sigma_min, sigma_max),
            ProcessKind::Vp => Process::VpLinear { beta_min, beta_max },
            ProcessKind::VpCosine => Process::VpCosine { s: 0.008 },
            ProcessKind::Subvp => Process::SubVp { beta_min, beta_max },
            ProcessKind::Edm => Process::Edm { sigma_min, sigma_max, p_mean: EDM_P_MEAN, p_std: EDM_P_STD },
            ProcessKind::Fixed => Process::Fixed { sigma: sigma_min },
        }
    }

    /// The name configs use.
    pub fn name(&self) -> &'static str {
        match self {
            Process::Ve { .. } => "ve",
            Process::VpLinear { .. } => "vp",
            Process::VpCosine { .. } => "vp-cosine",
            Process::SubVp { .. } => "subvp",
            Process::Edm { .. } => "edm",
            Process::Fixed { .. } => "fixed",
        }
    }

    /// Time interval [t_min, t_max] of the process.
    pub fn t_range(&self) -> (f64, f64) {
        match *self {
            Process::Ve { .. } | Process::Fixed { .. } => (0.0, 1.0),
            Process::VpLinear { .. } | Process::VpCosine { .. } | Process::SubVp { .. } => (VP_T_MIN, 1.0),
            Process::Edm { sigma_min, sigma_max, .. } => (sigma_min, sigma_max),
        }
    }

    /// alpha_bar(t) of the VP family.
    fn alpha_bar(&self, t: f64) -> f64 {
        match *self {
            Process::VpLinear { beta_min, beta_max } | Process::SubVp { beta_min, beta_max } => {
                (-(beta_min * t + 0.5 * (beta_max - beta_min) * t * t)).exp()
            }
            Process::VpCosine { s } => {
                let f = |t: f64| ((t + s) / (1.0 + s) * std::f64::consts::FRAC_PI_2).cos().powi(2);
                (f(t) / f(0.0)).max(1e-12)
            }
            _ => 1.0,
        }
    }

    /// Scale s(t).
    pub fn scale(&self, t: f64) -> f64 {
        match self {
            Process::Ve { .. } | Process::Edm { .. } | Process::Fixed { .. } => 1.0,
            _ => self.alpha_bar(t).sqrt(),
        }
    }

    /// Noise level sigma(t) in scaled coordinates.
    pub fn sigma(&self, t: f64) -> f64 {
        match *self {
            Process::Ve { sigma_min, sigma_max } => sigma_min * (sigma_max / sigma_min).powf(t),
            Process::Edm { .. } => t,
            Process::Fixed { sigma } => sigma,
            Process::VpLinear { .. } | Process::VpCosine { .. } => {
                let a = self.alpha_bar(t);
                ((1.0 - a) / a).sqrt()
            }
            Process::SubVp { .. } => {
                let a = self.alpha_bar(t);
                (1.0 - a) / a.sqrt()
            }
        }
    }

    /// sigma'(t), by a central difference (every sigma here is smooth).
    pub fn dsigma_dt(&self, t: f64) -> f64 {
        if let Process::Fixed { .. } = self {
            return 0.0;
        }
        let (lo, hi) = self.t_range();
        let h = 1e-6 * (hi - lo).max(1e-12);
        let (a, b) = ((t - h).max(lo * 0.5), t + h);
        (self.sigma(b) - self.sigma(a)) / (b - a)
    }

    /// f(t) and g(t)^2 of the forward SDE dx = f x dt + g dw.
    pub fn drift_diffusion(&self, t: f64) -> (f64, f64) {
        let h = 1e-6;
        let ds = (self.scale(t + h) - self.scale(t - h)) / (2.0 * h);
        let s = self.scale(t);
        (ds / s, 2.0 * s * s * self.sigma(t) * self.dsigma_dt(t))
    }

    /// The smallest noise level the process reaches.
    pub fn sigma_min(&self) -> f64 {
        self.sigma(self.t_range().0)
    }
    /// The largest.
    pub fn sigma_max(&self) -> f64 {
        self.sigma(self.t_range().1)
    }

    /// t with sigma(t) = sigma (sigma is increasing in t), by bisection.
    pub fn t_of_sigma(&self, sigma: f64) -> f64 {
        let (mut lo, mut hi) = self.t_range();
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if self.sigma(mid) < sigma {
                lo = mid
            } else {
                hi = mid
            }
        }
        0.5 * (lo + hi)
    }

    /// Variance of the prior in scaled coordinates, per dimension, for data of variance
    /// `data_var` per dimension (about their mean): the marginal at sigma_max has exactly this
    /// variance for every process, sigma_max^2 + data_var (in x~ = x0 + sigma z); for the VP
    /// family 1/s(T)^2 = 1 + sigma_max^2, whose data variance 1 is swamped by sigma_max^2 anyway.
    pub fn prior_var_with(&self, data_var: f64) -> f64 {
        self.sigma_max().powi(2) + data_var
    }

    /// The prior in scaled coordinates for data with these moments: N(mean, std^2 I), the
    /// Gaussian with the first two moments of the marginal at sigma_max (its mean is the data's
    /// mean for every process: x~ = x0 + sigma z). A zero-mean prior biases the samples of data
    /// whose mean is far from zero (a chain starts on the wrong side of the modes).
    pub fn prior(&self, m: &Moments) -> (Vec<f64>, f64) {
        (m.mean.clone(), self.prior_var_with(m.var).sqrt())
    }

    /// A training noise level from a uniform u in (0, 1) (and a second one for EDM's normal):
    /// VE: log-uniform in [sigma_min, sigma_max]; VP family: t ~ U(t_min, 1); EDM: log-normal.
    pub fn train_sigma(&self, u: f64, u2: f64) -> f64 {
        match *self {
            Process::Edm { p_mean, p_std, .. } => {
                let n = (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                (p_mean + p_std * n).exp()
            }
            _ => {
                let (lo, hi) = self.t_range();
                self.sigma(lo + u * (hi - lo))
            }
        }
    }

    /// Sampling times t_0 > t_1 > ... > t_{n-1} (n >= 2): uniform in t from t_max to t_min for
    /// score_sde's processes, EDM's rho = 7 spacing in sigma for EDM.
    pub fn time_grid(&self, n: usize) -> Vec<f64> {
        let (lo, hi) = self.t_range();
        let n = n.max(2);
        (0..n)
            .map(|i| {
                let f = i as f64 / (n - 1) as f64;
                match self {
                    Process::Edm { .. } => {
                        let rho = 7.0;
                        let (a, b) = (hi.powf(1.0 / rho), lo.powf(1.0 / rho));
                        (a + f * (b - a)).powf(rho)
                    }
                    _ => hi + f * (lo - hi),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sde_coefficients_match_the_closed_forms() {
        // VP: f = -beta/2, g^2 = beta; sub-VP: g^2 = beta (1 - alpha_bar^2); VE: g^2 = d sigma^2/dt.
        for t in [0.05, 0.3, 0.7, 0.95] {
            let beta = 0.1 + t * (20.0 - 0.1);
            let (f, g2) = Process::vp().drift_diffusion(t);
            assert!((f + beta / 2.0).abs() < 1e-4 * beta, "{t}: f {f}");
            assert!((g2 - beta).abs() < 1e-4 * beta, "{t}: g2 {g2}");
            let sub = Process::SubVp { beta_min: 0.1, beta_max: 20.0 };
            let a = sub.alpha_bar(t);
            let (_, g2) = sub.drift_diffusion(t);
            assert!((g2 - beta * (1.0 - a * a)).abs() < 1e-4 * beta, "{t}: sub-VP g2 {g2}");
            let ve = Process::ve(0.01, 50.0);
            let (f, g2) = ve.drift_diffusion(t);
            let s = ve.sigma(t);
            assert!(f.abs() < 1e-9 && (g2 - 2.0 * s * s * (5000f64).ln()).abs() < 1e-4 * g2);
        }
    }

    #[test]
    fn marginals_and_inverse() {
        for p in [Process::vp(), Process::VpCosine { s: 0.008 }, Process::ve(0.01, 50.0), Process::edm()] {
            let (lo, hi) = p.t_range();
            for f in [0.1, 0.5, 0.9] {
                let t = lo + f * (hi - lo);
                assert!((p.t_of_sigma(p.sigma(t)) - t).abs() < 1e-6 * hi, "{p:?} at {t}");
            }
        }
        // VP: total variance of x_t for unit-variance data is 1.
        let p = Process::vp();
        let (s, sg) = (p.scale(0.4), p.sigma(0.4));
        assert!((s * s * (1.0 + sg * sg) - 1.0).abs() < 1e-12);
    }
}
