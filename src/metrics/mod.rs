//! Sample metrics (host, f64): sliced and exact Wasserstein-2, MMD, mean log-density under an
//! analytic target, fraction of samples per mode. Points are flat [n * d] arrays.

use crate::dist::gmm::Gmm;
use crate::error::{Error, Result};
use crate::rng::HostRng;

/// Sliced Wasserstein-2: sqrt of the mean over `directions` random unit directions of the
/// squared W2 between the two projected samples (equal sizes: sorted matching; otherwise the
/// quantile functions on a common grid). Directions from `seed`.
/// How many samples of `d` numbers hold a NaN or an infinity.
pub fn count_non_finite(xs: &[f32], d: usize) -> usize {
    xs.chunks(d.max(1)).filter(|p| p.iter().any(|v| !v.is_finite())).count()
}

/// Metrics are undefined on non-finite samples (the optimal assignment would never end):
/// a one-line error counting them.
pub fn check_finite(xs: &[f32], d: usize, what: &str) -> Result<()> {
    let bad = count_non_finite(xs, d);
    if bad > 0 {
        return Err(Error::Invalid(format!(
            "{what}: {bad} of {} samples have NaN or infinite values; metrics need finite samples",
            xs.len() / d.max(1)
        )));
    }
    Ok(())
}

/// Sliced 2-Wasserstein distance between point sets `a` and `b` of dimension `d` over
/// `directions` random directions (`seed`).
pub fn sliced_w2(a: &[f32], b: &[f32], d: usize, directions: usize, seed: u64) -> f64 {
    let mut rng = HostRng::new(seed);
    let mut total = 0.0;
    for _ in 0..directions {
        let mut dir: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
        let norm = dir.iter().map(|v| v * v).sum::<f64>().sqrt();
        dir.iter_mut().for_each(|v| *v /= norm);
        let proj = |x: &[f32]| -> Vec<f64> {
            let mut p: Vec<f64> = x.chunks(d).map(|p| p.iter().zip(&dir).map(|(a, b)| *a as f64 * b).sum()).collect();
            p.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
            p
        };
        let (pa, pb) = (proj(a), proj(b));
        let m = pa.len().max(pb.len());
        let q = |p: &[f64], i: usize| p[((i as f64 + 0.5) / m as f64 * p.len() as f64) as usize];
        total += (0..m).map(|i| (q(&pa, i) - q(&pb, i)).powi(2)).sum::<f64>() / m as f64;
    }
    (total / directions as f64).sqrt()
}

/// Exact W2 between two equal-size point sets (optimal assignment, Hungarian algorithm with
/// potentials, O(n^3)); meant for n up to ~2,000.
pub fn exact_w2(a: &[f32], b: &[f32], d: usize) -> Result<f64> {
    check_finite(a, d, "exact W2: the first set")?;
    check_finite(b, d, "exact W2: the second set")?;
    let n = a.len() / d;
    if b.len() / d != n || n == 0 {
        return Err(Error::Invalid(format!(
            "exact W2 needs two non-empty sets of equal size ({n} and {})",
            b.len() / d
        )));
    }
    let cost =
        |i: usize, j: usize| -> f64 { (0..d).map(|k| (a[i * d + k] as f64 - b[j * d + k] as f64).powi(2)).sum() };
    // e-maxx Hungarian: rows 1..=n, columns 1..=n, p[j] = row matched to column j.
    let inf = f64::INFINITY;
    let (mut u, mut v) = (vec![0.0; n + 1], vec![0.0; n + 1]);
    let (mut p, mut way) = (vec![0usize; n + 1], vec![0usize; n + 1]);
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0;
        let mut minv = vec![inf; n + 1];
        let mut used = vec![false; n + 1];
        loop {
            used[j0] = true;
            let (i0, mut delta, mut j1) = (p[j0], inf, 0);
            for j in 1..=n {
                if !used[j] {
                    let cur = cost(i0 - 1, j - 1) - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=n {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let total: f64 = (1..=n).map(|j| cost(p[j] - 1, j - 1)).sum();
    Ok((total / n as f64).sqrt())
}

/// Squared MMD (unbiased) with a Gaussian kernel of bandwidth `h` (None: the median pairwise
/// distance of the pooled sample, on at most 1,000 points).
pub fn mmd2(a: &[f32], b: &[f32], d: usize, h: Option<f64>) -> f64 {
    let (na, nb) = (a.len() / d, b.len() / d);
    let dist2 = |x: &[f32], i: usize, y: &[f32], j: usize| -> f64 {
        (0..d).map(|k| (x[i * d + k] as f64 - y[j * d + k] as f64).powi(2)).sum()
    };
    let h = h.unwrap_or_else(|| {
        let m = na.min(500);
        let mut ds: Vec<f64> =
            (0..m).flat_map(|i| (0..nb.min(500)).map(move |j| (i, j))).map(|(i, j)| dist2(a, i, b, j)).collect();
        ds.sort_by(|x, y| x.partial_cmp(y).unwrap());
        ds.get(ds.len() / 2).copied().unwrap_or(1.0).sqrt().max(1e-12)
    });
    let k = |d2: f64| (-d2 / (2.0 * h * h)).exp();
    let mean_within = |x: &[f32], n: usize| -> f64 {
        let mut s = 0.0;
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    s += k(dist2(x, i, x, j));
                }
            }
        }
        s / (n * (n - 1)).max(1) as f64
    };
    let mut cross = 0.0;
    for i in 0..na {
        for j in 0..nb {
            cross += k(dist2(a, i, b, j));
        }
    }
    mean_within(a, na) + mean_within(b, nb) - 2.0 * cross / (na * nb) as f64
}

/// Mean of log p(x) over the samples under the (noise-free) mixture.
pub fn mean_log_density(g: &Gmm, xs: &[f32]) -> f64 {
    let d = g.dim();
    let n = xs.len() / d;
    xs.chunks(d).map(|p| g.log_density(&p.iter().map(|&v| v as f64).collect::<Vec<_>>(), 0.0)).sum::<f64>() / n as f64
}

/// Fraction of the samples nearest (by responsibility) to each mixture component.
pub fn mode_fractions(g: &Gmm, xs: &[f32]) -> Vec<f64> {
    let d = g.dim();
    let mut c = vec![0usize; g.weights.len()];
    for p in xs.chunks(d) {
        c[g.nearest_mode(&p.iter().map(|&v| v as f64).collect::<Vec<_>>())] += 1;
    }
    c.iter().map(|&k| k as f64 / (xs.len() / d).max(1) as f64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_w2_of_a_shift_and_sliced_bounds() {
        // A set against itself shifted by (3, 4): W2 = 5 exactly; sliced W2 = 5 / sqrt(2) in 2-D.
        let mut rng = HostRng::new(1);
        let a: Vec<f32> = (0..200).map(|_| rng.normal() as f32).collect();
        let b: Vec<f32> = a.chunks(2).flat_map(|p| [p[0] + 3.0, p[1] + 4.0]).collect();
        assert!((exact_w2(&a, &b, 2).unwrap() - 5.0).abs() < 1e-5);
        let s = sliced_w2(&a, &b, 2, 512, 3);
        assert!((s - 5.0 / 2f64.sqrt()).abs() < 0.1, "{s}");
        // A permutation costs nothing.
        let mut c = a.chunks(2).map(|p| [p[0], p[1]]).collect::<Vec<_>>();
        c.reverse();
        let c: Vec<f32> = c.into_iter().flatten().collect();
        assert!(exact_w2(&a, &c, 2).unwrap() < 1e-6);
        assert!(mmd2(&a, &b, 2, None) > 10.0 * mmd2(&a, &c, 2, None).abs().max(1e-3));
    }
}
