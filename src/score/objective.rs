//! Training objectives (`train.objective`): the score-matching family and noise-contrastive
//! estimation, each a graph from clean data x0 [B, ...] and noise levels sigma [B] to one
//! loss, planned into the training step like DSM.
//!
//! Every score-matching objective fits the score of the noised data p_sigma at each level
//! (x~ = x0 + sigma z) with DSM's weighting lambda(sigma) = sigma^2, so any of them trains a
//! noise-conditional model the annealed samplers use:
//! - `dsm`: sigma^2 || s(x~) + z / sigma ||^2 (Vincent 2011).
//! - `ssm`: sigma^2 E_v[ v^T grad_x(v^T s) + 1/2 (v^T s)^2 ] (Song et al. 2019), the first term
//!   one vector-Jacobian product per projection v; `ssm-vr` replaces the second by 1/2 ||s||^2.
//! - `esm`: sigma^2 [ tr(grad_x s) + 1/2 ||s||^2 ] (Hyvarinen 2005), the trace by one VJP per
//!   dimension (refused above [`ESM_MAX_DIM`] dimensions).
//!
//!   SSM and ESM equal 1/2 E||s - grad log p_sigma||^2 up to a constant: their values are not
//!   DSM's, their minimiser is.
//! - `nce`: noise-contrastive estimation (Gutmann & Hyvarinen 2010) for energy models at one
//!   noise level: log p(x) = -U(x) - c with a learned log-normaliser c, noise samples from a
//!   Gaussian q fitted to the noised data, `ratio` of them per data sample, and the logistic
//!   loss [sum_data softplus(-G) + sum_noise softplus(G)] / B with
//!   G(u) = log p(u) - log q(u) - log ratio.
//!
//! For energy models the score is itself a gradient, so SSM and ESM differentiate three times
//! (the graph's autodiff composes).

use super::{per_sample, ModelSpec};
use crate::dist::Gaussian;
use crate::error::{Error, Result};
use crate::graph::autodiff::grad;
use crate::graph::Var;
use crate::nn::{Builder, Init};
use crate::ops::elementwise::Unary;
use crate::ops::random::Dist;
use crate::rng::{NCE_NOISE_STREAM, PROJECTION_STREAM};

/// The objectives a config names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Objective {
    /// Denoising score matching (Vincent 2011).
    #[default]
    Dsm,
    /// Sliced score matching (Song et al. 2019).
    Ssm,
    /// Sliced score matching, variance-reduced.
    SsmVr,
    /// Exact score matching (Hyvarinen 2005), low dimensions.
    Esm,
    /// Noise-contrastive estimation (Gutmann and Hyvarinen 2010) of an energy.
    Nce,
}

impl Objective {
    /// Every objective, in the order tables list them.
    pub const ALL: [Objective; 5] = [Objective::Dsm, Objective::Ssm, Objective::SsmVr, Objective::Esm, Objective::Nce];
    /// The name configs use.
    pub fn name(self) -> &'static str {
        match self {
            Objective::Dsm => "dsm",
            Objective::Ssm => "ssm",
            Objective::SsmVr => "ssm-vr",
            Objective::Esm => "esm",
            Objective::Nce => "nce",
        }
    }
}

/// The distribution of SSM's projections v (each with E[v v^T] = I).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Projection {
    /// Entries +-1 (the lowest-variance choice; Song et al.'s default).
    #[default]
    Rademacher,
    /// Standard normal entries.
    Gaussian,
    /// Uniform on the sphere of radius sqrt(D).
    Sphere,
}

/// The covariance of NCE's Gaussian noise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NceNoise {
    /// A full-covariance Gaussian.
    #[default]
    Full,
    /// A diagonal one.
    Diagonal,
}

/// ESM's dimension bound: its trace costs one backward pass per dimension.
pub const ESM_MAX_DIM: usize = 64;

/// The name of NCE's learned log-normaliser among the parameters (and in checkpoints).
pub const LOG_Z: &str = "nce.log_z";

/// NCE's settings: the noise level, noise samples per data sample, and the noise distribution
/// (fitted to the data at that level).
#[derive(Clone, Debug, PartialEq)]
pub struct Nce {
    /// The noise level the energy is trained at.
    pub sigma: f64,
    /// Noise samples per data sample.
    pub ratio: usize,
    /// The noise distribution.
    pub noise: Gaussian,
}

/// A loss to build.
#[derive(Clone, Debug, PartialEq)]
pub enum Loss {
    /// Denoising score matching.
    Dsm,
    /// Sliced score matching.
    Sliced {
        /// Projections per sample.
        projections: usize,
        /// Their distribution.
        dist: Projection,
        /// The variance-reduced form (the Gaussian expectation of the second term in closed form).
        vr: bool,
    },
    /// Exact score matching (the Jacobian's trace, one backward pass per dimension).
    Exact,
    /// Noise-contrastive estimation.
    Nce(Nce),
}

/// (x~ = x0 + sigma z, z, sigma broadcast against x0), z drawn on the GPU from `seed`.
fn noised(b: &mut Builder, x0: Var, sigma: Var, seed: u64) -> Result<(Var, Var, Var)> {
    let xs = b.g.shape(x0).to_vec();
    let z = b.g.random(&xs, Dist::Normal, seed, crate::rng::DSM_NOISE_STREAM);
    let sig = per_sample(b.g, sigma, &xs)?;
    let sz = b.g.mul(z, sig)?;
    Ok((b.g.add(x0, sz)?, z, sig))
}

/// sum over each sample's values of `v` [B, ...] -> [B].
fn per_sample_sum(b: &mut Builder, v: Var) -> Result<Var> {
    let xs = b.g.shape(v).to_vec();
    let d: usize = xs[1..].iter().product();
    let flat = b.g.reshape(v, &[xs[0], d])?;
    b.g.sum(flat, 1)
}

/// (v^T grad_x(v^T s), v^T s) per sample [B]: one vector-Jacobian product.
fn projected(b: &mut Builder, s: Var, x: Var, v: Var) -> Result<(Var, Var)> {
    let vs = b.g.mul(v, s)?;
    let vts = per_sample_sum(b, vs)?;
    let tot = b.g.sum_all(vts)?;
    let gx = grad(b.g, tot, &[x])?[0];
    let jv = b.g.mul(gx, v)?;
    Ok((per_sample_sum(b, jv)?, vts))
}

/// A projection [B, ...] drawn on the GPU.
fn projection(b: &mut Builder, shape: &[usize], dist: Projection, seed: u64) -> Result<Var> {
    Ok(match dist {
        Projection::Gaussian => b.g.random(shape, Dist::Normal, seed, PROJECTION_STREAM),
        Projection::Rademacher => {
            let u = b.g.random(shape, Dist::Uniform, seed, PROJECTION_STREAM);
            let c = b.g.unary(Unary::Affine(1.0, -0.5), u);
            b.g.unary(Unary::Sign, c)
        }
        Projection::Sphere => {
            let n = b.g.random(shape, Dist::Normal, seed, PROJECTION_STREAM);
            let d: usize = shape[1..].iter().product();
            let n2 = b.g.unary(Unary::Square, n);
            let r2 = per_sample_sum(b, n2)?;
            let inv = b.g.unary(Unary::Rsqrt, r2);
            let inv = b.g.scale(inv, (d as f32).sqrt());
            let inv = per_sample(b.g, inv, shape)?;
            b.g.mul(n, inv)?
        }
    })
}

impl ModelSpec {
    /// The training loss [1] of `loss` (classifiers: cross-entropy) for clean data x0 [B, ...] and levels sigma [B] (inputs);
    /// the GPU's random numbers come from `seed`.
    pub fn loss(&self, b: &mut Builder, x0: Var, sigma: Var, loss: &Loss, seed: u64) -> Result<Var> {
        if self.is_classifier() {
            return self.ce_loss(b, x0, sigma, seed);
        }
        match loss {
            Loss::Dsm => self.dsm_loss(b, x0, sigma, seed),
            Loss::Sliced { projections, dist, vr } => self.ssm_loss(b, x0, sigma, *projections, *dist, *vr, seed),
            Loss::Exact => self.esm_loss(b, x0, sigma, seed),
            Loss::Nce(n) => self.nce_loss(b, x0, sigma, n, seed),
        }
    }

    /// Denoising score matching (Vincent 2011) with lambda(sigma) = sigma^2 (NCSN) times
    /// `weight`: mean over the batch of w(sigma) || sigma score(x0 + sigma z, sigma) + z ||^2.
    /// For the denoiser the weight is EDM's (sigma^2 + sd^2) / sd^2, which turns this into
    /// lambda(sigma) || D - x0 ||^2 with lambda = (sigma^2 + sd^2) / (sigma sd)^2.
    /// x0 [B, ...] and sigma [B] are inputs; z is drawn on the GPU (`seed`). Returns the loss [1].
    pub fn dsm_loss(&self, b: &mut Builder, x0: Var, sigma: Var, seed: u64) -> Result<Var> {
        let (xt, z, sig) = noised(b, x0, sigma, seed)?;
        let s = self.score(b, xt, sigma)?;
        let ss = b.g.mul(s, sig)?;
        let r = b.g.add(ss, z)?;
        let r2 = b.g.unary(Unary::Square, r);
        let mut per = per_sample_sum(b, r2)?; // [B]
        if let super::Parameterisation::Denoiser { sigma_data } = self.param {
            let sd2 = sigma_data * sigma_data;
            let s2 = b.g.unary(Unary::Square, sigma);
            let w = b.g.unary(Unary::Affine(1.0 / sd2, 1.0), s2);
            per = b.g.mul(per, w)?;
        }
        b.g.mean_all(per)
    }

    /// Mean over the batch of sigma^2 times the per-sample objective [B].
    fn weighted_mean(b: &mut Builder, per: Var, sigma: Var) -> Result<Var> {
        let s2 = b.g.unary(Unary::Square, sigma);
        let w = b.g.mul(per, s2)?;
        b.g.mean_all(w)
    }

    /// Sliced score matching with `m` projections per sample (see the module).
    #[allow(clippy::too_many_arguments)]
    fn ssm_loss(
        &self,
        b: &mut Builder,
        x0: Var,
        sigma: Var,
        m: usize,
        dist: Projection,
        vr: bool,
        seed: u64,
    ) -> Result<Var> {
        let (xt, _, _) = noised(b, x0, sigma, seed)?;
        let s = self.score(b, xt, sigma)?;
        let shape = b.g.shape(x0).to_vec();
        let mut total: Option<Var> = None;
        for _ in 0..m.max(1) {
            let v = projection(b, &shape, dist, seed)?;
            let (vjv, vts) = projected(b, s, xt, v)?;
            let mut term = vjv;
            if !vr {
                let sq = b.g.unary(Unary::Square, vts);
                let half = b.g.scale(sq, 0.5);
                term = b.g.add(term, half)?;
            }
            total = Some(match total {
                Some(t) => b.g.add(t, term)?,
                None => term,
            });
        }
        let mut per = b.g.scale(total.unwrap(), 1.0 / m.max(1) as f32);
        if vr {
            per = self.plus_half_norm(b, per, s)?;
        }
        Self::weighted_mean(b, per, sigma)
    }

    /// per + 1/2 ||s||^2 per sample.
    fn plus_half_norm(&self, b: &mut Builder, per: Var, s: Var) -> Result<Var> {
        let s2 = b.g.unary(Unary::Square, s);
        let n2 = per_sample_sum(b, s2)?;
        let half = b.g.scale(n2, 0.5);
        b.g.add(per, half)
    }

    /// Exact score matching: the trace of the score's Jacobian by one VJP per dimension.
    fn esm_loss(&self, b: &mut Builder, x0: Var, sigma: Var, seed: u64) -> Result<Var> {
        let d = self.numel();
        if d > ESM_MAX_DIM {
            return Err(Error::Invalid(esm_bound_message(d)));
        }
        let (xt, _, _) = noised(b, x0, sigma, seed)?;
        let s = self.score(b, xt, sigma)?;
        let mut shape = vec![1];
        shape.extend(&self.data_shape);
        let mut trace: Option<Var> = None;
        for i in 0..d {
            let mut e = vec![0.0; d];
            e[i] = 1.0;
            let v = b.g.constant(e, &shape)?;
            let (jii, _) = projected(b, s, xt, v)?;
            trace = Some(match trace {
                Some(t) => b.g.add(t, jii)?,
                None => jii,
            });
        }
        let per = self.plus_half_norm(b, trace.unwrap(), s)?;
        Self::weighted_mean(b, per, sigma)
    }
}

/// ESM's refusal above its dimension bound.
pub fn esm_bound_message(d: usize) -> String {
    format!(
        "train.objective = \"esm\": the data have {d} dimensions and exact score matching costs one backward pass \
         per dimension; it is limited to {ESM_MAX_DIM}. Use \"ssm\" or \"ssm-vr\" (sliced, any dimension) or \"dsm\""
    )
}

impl ModelSpec {
    /// Noise-contrastive estimation at the fixed level `nce.sigma` (see the module). The
    /// energy network sees the noised data and the noise samples in one batch.
    pub fn nce_loss(&self, b: &mut Builder, x0: Var, sigma: Var, nce: &Nce, seed: u64) -> Result<Var> {
        let d = self.numel();
        if nce.noise.dim() != d {
            return Err(Error::Shape(format!("NCE noise has {} dimensions, the data {d}", nce.noise.dim())));
        }
        let bsz = b.g.shape(x0)[0];
        let m = bsz * nce.ratio;
        let (xt, _, _) = noised(b, x0, sigma, seed)?;
        let xf = b.g.reshape(xt, &[bsz, d])?;
        // Noise y = mu + L e; data whitened as L^-1 (x - mu).
        let e = b.g.random(&[m, d], Dist::Normal, seed, NCE_NOISE_STREAM);
        let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        let transpose = |a: &[f64]| (0..d * d).map(|k| a[(k % d) * d + k / d]).collect::<Vec<f64>>();
        let lt = b.g.constant(f32s(&transpose(&nce.noise.chol)), &[d, d])?;
        let linv_t = b.g.constant(f32s(&transpose(&nce.noise.inverse_chol())), &[d, d])?;
        let mu = b.g.constant(f32s(&nce.noise.mean), &[1, d])?;
        let le = b.g.matmul(e, lt, false, false)?;
        let y = b.g.add(le, mu)?;
        let xc = b.g.sub(xf, mu)?;
        let wx = b.g.matmul(xc, linv_t, false, false)?;
        // Energies of data and noise together.
        let all = b.g.concat(xf, y, 0)?;
        let mut shape = vec![bsz + m];
        shape.extend(&self.data_shape);
        let all = b.g.reshape(all, &shape)?;
        let sig_all = b.g.fill(nce.sigma as f32, &[bsz + m]);
        let u = self.energy(b, all, sig_all)?.ok_or_else(|| Error::Invalid(nce_needs_energy(self.param.name())))?;
        // log q up to its constant, which G absorbs with c and log ratio.
        let w = b.g.concat(wx, e, 0)?;
        let w2 = b.g.unary(Unary::Square, w);
        let half = b.g.sum(w2, 1)?;
        let log_q = b.g.scale(half, -0.5);
        let c0 = nce.noise.log_det_chol() + 0.5 * d as f64 * (2.0 * std::f64::consts::PI).ln();
        let log_z = b.param(LOG_Z, &[1], Init::Const(c0 as f32));
        // G = -u - c - (log_q - c0) - log ratio
        let nu = b.g.neg(u);
        let gq = b.g.sub(nu, log_q)?;
        let lz = b.g.broadcast_to(log_z, &[bsz + m])?;
        let gz = b.g.sub(gq, lz)?;
        let g = b.g.unary(Unary::AddScalar((c0 - (nce.ratio as f64).ln()) as f32), gz);
        let gd = b.g.slice(g, 0, 0, bsz)?;
        let gn = b.g.slice(g, 0, bsz, m)?;
        let ngd = b.g.neg(gd);
        let ld = b.g.unary(Unary::Softplus, ngd);
        let ln = b.g.unary(Unary::Softplus, gn);
        let sd = b.g.sum_all(ld)?;
        let sn = b.g.sum_all(ln)?;
        let tot = b.g.add(sd, sn)?;
        Ok(b.g.scale(tot, 1.0 / bsz as f32))
    }
}

/// The refusal of an objective that needs an energy model.
pub fn nce_needs_energy(param: &str) -> String {
    format!(
        "train.objective = \"nce\" fits a normalised density and needs an energy model: set model.param = \"energy\" \
         (model.param is \"{param}\")"
    )
}
