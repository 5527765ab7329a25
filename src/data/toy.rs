//! 2-D toy distributions (the usual ones of score_sde / k-diffusion demos and NCSN's Fig. 3).

use crate::dist::gmm::Gmm;
use crate::rng::HostRng;
use std::f64::consts::PI;

/// The toys (`data.name`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Toy {
    /// 8 Gaussians on a circle of radius 4, std 0.3 (W1).
    #[serde(rename = "ring8", alias = "8gaussians")]
    Ring8,
    /// Two interleaved half circles.
    #[serde(rename = "moons", alias = "two-moons")]
    TwoMoons,
    /// A 2-D swiss roll.
    #[serde(rename = "swissroll", alias = "swiss-roll")]
    SwissRoll,
    /// A 4 x 4 checkerboard.
    #[serde(rename = "checkerboard")]
    Checkerboard,
    /// Two concentric rings (radii 2 and 4).
    #[serde(rename = "rings")]
    Rings,
    /// NCSN's 0.2 N((-5,-5), I) + 0.8 N((5,5), I).
    #[serde(rename = "ncsn", alias = "ncsn-two-modes")]
    NcsnTwoModes,
    /// Du et al.'s 2-D sets (dist::du2d): 8 Gaussians on a ring of radius 0.5, std 0.03;
    #[serde(rename = "du-ring")]
    DuRing,
    /// a bar x in [-0.2, 0.2], y in [-1, 1];
    #[serde(rename = "du-bar")]
    DuBar,
    /// the bar x = -0.2 +- 0.1;
    #[serde(rename = "du-bar-left")]
    DuBarLeft,
    /// the bar x = 0.2 +- 0.1;
    #[serde(rename = "du-bar-right")]
    DuBarRight,
    /// boxes of half-width 0.7 and 0.3.
    #[serde(rename = "du-box-outer")]
    DuBoxOuter,
    /// the box of half-width 0.3 alone.
    #[serde(rename = "du-box-inner")]
    DuBoxInner,
}

impl Toy {
    /// The name configs use (`ring8`, `moons`, ...).
    pub fn name(self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
    }

    /// The analytic mixture behind the data, where there is one.
    pub fn gmm(self) -> Option<Gmm> {
        match self {
            Toy::Ring8 => Some(Gmm::ring8()),
            Toy::NcsnTwoModes => Some(Gmm::ncsn_two_modes()),
            Toy::DuRing => Some(crate::dist::du2d::ring()),
            _ => None,
        }
    }

    /// Classes of the toy's points: its mixture's components (ring8: the mode index); None for
    /// the toys that are not mixtures.
    pub fn classes(self) -> Option<usize> {
        self.gmm().map(|g| g.weights.len())
    }

    /// n points [n * 2] and their classes (`classes`), the same points as `sample`.
    pub fn sample_labelled(self, n: usize, rng: &mut HostRng) -> Option<(Vec<f32>, Vec<u32>)> {
        self.gmm().map(|g| g.sample_labelled(n, rng))
    }

    /// n points [n * 2].
    pub fn sample(self, n: usize, rng: &mut HostRng) -> Vec<f32> {
        if let Some(g) = self.gmm() {
            return g.sample(n, rng);
        }
        use crate::dist::du2d::{BAR, BAR_LEFT, BAR_RIGHT, BOX_INNER, BOX_OUTER};
        let rect = match self {
            Toy::DuBar => Some(BAR),
            Toy::DuBarLeft => Some(BAR_LEFT),
            Toy::DuBarRight => Some(BAR_RIGHT),
            Toy::DuBoxOuter => Some(BOX_OUTER),
            Toy::DuBoxInner => Some(BOX_INNER),
            _ => None,
        };
        if let Some(r) = rect {
            return (0..n).flat_map(|_| r.sample(rng)).map(|v| v as f32).collect();
        }
        let mut out = Vec::with_capacity(2 * n);
        for _ in 0..n {
            let (x, y) = match self {
                Toy::TwoMoons => {
                    let t = PI * rng.uniform();
                    let (x, y) = if rng.uniform() < 0.5 { (t.cos(), t.sin()) } else { (1.0 - t.cos(), 0.5 - t.sin()) };
                    (2.0 * (x - 0.5) + 0.1 * rng.normal(), 2.0 * (y - 0.25) + 0.1 * rng.normal())
                }
                Toy::SwissRoll => {
                    let t = 1.5 * PI * (1.0 + 2.0 * rng.uniform());
                    (t * t.cos() / 3.0 + 0.1 * rng.normal(), t * t.sin() / 3.0 + 0.1 * rng.normal())
                }
                Toy::Checkerboard => {
                    let x1 = 4.0 * rng.uniform() - 2.0;
                    let x2 = rng.uniform() - 2.0 * rng.below(2) as f64 + (x1.floor() as i64).rem_euclid(2) as f64;
                    (2.0 * x1, 2.0 * x2)
                }
                Toy::Rings => {
                    let r = if rng.uniform() < 0.5 { 2.0 } else { 4.0 };
                    let a = 2.0 * PI * rng.uniform();
                    (r * a.cos() + 0.1 * rng.normal(), r * a.sin() + 0.1 * rng.normal())
                }
                _ => unreachable!("mixtures and boxes are drawn above"),
            };
            out.extend([x as f32, y as f32]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Du et al.'s sets are where they are said to be: the boxes' points inside their boxes and
    /// spread over them (mean near the centre, variance of a uniform), the ring's at radius 0.5.
    #[test]
    fn du_sets_fill_their_shapes() {
        use crate::dist::du2d::{BAR, BAR_LEFT, BAR_RIGHT, BOX_INNER, BOX_OUTER};
        let mut rng = HostRng::new(5);
        let boxes = [
            (Toy::DuBar, BAR),
            (Toy::DuBarLeft, BAR_LEFT),
            (Toy::DuBarRight, BAR_RIGHT),
            (Toy::DuBoxOuter, BOX_OUTER),
            (Toy::DuBoxInner, BOX_INNER),
        ];
        for (toy, r) in boxes {
            let xs = toy.sample(20000, &mut rng);
            assert!(xs.chunks(2).all(|p| r.contains(&[p[0] as f64, p[1] as f64])), "{toy:?}");
            let mx = xs.iter().step_by(2).map(|&x| x as f64).sum::<f64>() / 20000.0;
            let vx = xs.iter().step_by(2).map(|&x| (x as f64 - mx).powi(2)).sum::<f64>() / 20000.0;
            let w = r.1 - r.0;
            assert!((mx - 0.5 * (r.0 + r.1)).abs() < 0.02 * w && (vx / (w * w / 12.0) - 1.0).abs() < 0.05, "{toy:?}");
        }
        let ring = Toy::DuRing.sample(5000, &mut rng);
        let r: f64 = ring.chunks(2).map(|p| (p[0] as f64).hypot(p[1] as f64)).sum::<f64>() / 5000.0;
        assert!((r - 0.5).abs() < 0.01, "ring radius {r}");
    }
}
