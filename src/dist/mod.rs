//! Distributions the engine knows exactly: analytic Gaussian mixtures (toys, exact scores,
//! ground truth for metrics) and the data moments that set the sampling prior. Below both
//! `data` and `score`, which use them.

pub mod du2d;
pub mod gaussian;
pub mod gmm;
mod moments;

pub use gaussian::Gaussian;
pub use gmm::Gmm;
pub use moments::Moments;
