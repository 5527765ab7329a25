//! Exact k-nearest-neighbour search on the GPU (ops::knn) against the plain-loop reference: random
//! shapes (sizes that are not tile multiples, several chunks, more queries than one batch), every
//! metric; ties and duplicate rows in index order; impossible requests refused.

mod common;
use common::{gpu, Rng};
use scoregen::ops::knn::{knn_ref, KnnIndex, Metric};

/// GPU and reference agree: the same score at every rank (f32 against f64), and the same index
/// wherever the reference's neighbouring scores are not within rounding of each other.
fn check(data: &[f32], d: usize, q: &[f32], k: usize, metric: Metric, chunk: usize) {
    let idx = KnnIndex::new(gpu(), data, d, metric, chunk).unwrap();
    let (v, i) = idx.search(gpu(), q, k).unwrap();
    let (rv, ri) = knn_ref(data, d, q, k, metric);
    for t in 0..rv.len() {
        let tol = 1e-4 * (1.0 + rv[t].abs());
        assert!((v[t] as f64 - rv[t]).abs() < tol, "{metric:?} d {d} k {k} rank {t}: {} vs {}", v[t], rv[t]);
        let r = t % k;
        let near = |o: usize| o < rv.len() && o / k == t / k && (rv[o] - rv[t]).abs() < tol;
        let tied = (r > 0 && near(t - 1)) || near(t + 1);
        assert!(tied || i[t] == ri[t], "{metric:?} d {d} k {k} rank {t}: index {} vs {}", i[t], ri[t]);
    }
}

#[test]
fn knn_matches_the_reference_on_random_shapes() {
    let mut rng = Rng::new(11);
    for (n, d, m, k, chunk) in [
        (1, 3, 2, 1, 65536),
        (37, 17, 5, 10, 65536),
        (300, 64, 300, 64, 65536),
        (1000, 5, 7, 33, 129),
        (513, 1, 3, 8, 100),
    ] {
        let data = rng.vec(n * d, -1.0, 1.0);
        let q = rng.vec(m * d, -1.0, 1.0);
        for metric in [Metric::Ip, Metric::Cosine, Metric::L2] {
            check(&data, d, &q, k, metric, chunk);
        }
    }
}

/// Exact ties (small integers) and duplicate rows: the smaller index first, across chunks.
#[test]
fn ties_and_duplicates_rank_by_index() {
    let mut rng = Rng::new(3);
    let d = 4;
    let data: Vec<f32> = (0..400 * d).map(|_| rng.int(0, 3) as f32).collect();
    let q: Vec<f32> = (0..6 * d).map(|_| rng.int(0, 3) as f32).collect();
    for metric in [Metric::Ip, Metric::L2] {
        let idx = KnnIndex::new(gpu(), &data, d, metric, 64).unwrap();
        let (_, i) = idx.search(gpu(), &q, 20).unwrap();
        assert_eq!(i, knn_ref(&data, d, &q, 20, metric).1, "{metric:?}");
    }
    let same = vec![0.5f32; 90 * d];
    let idx = KnnIndex::new(gpu(), &same, d, Metric::L2, 32).unwrap();
    let (v, i) = idx.search(gpu(), &[0.5; 4], 12).unwrap();
    assert_eq!(i, (0..12).collect::<Vec<u32>>());
    assert!(v.iter().all(|&v| v == 0.0));
}

#[test]
fn impossible_requests_are_refused() {
    let data = vec![0.0f32; 10 * 3];
    let idx = KnnIndex::new(gpu(), &data, 3, Metric::Ip, 65536).unwrap();
    for (k, q, words) in [
        (11, vec![0.0; 3], "database of 10"),
        (0, vec![0.0; 3], "1 to 64"),
        (65, vec![0.0; 3], "1 to 64"),
        (1, vec![0.0; 4], "rows of 3"),
        (1, vec![f32::NAN, 0.0, 0.0], "queries"),
    ] {
        let e = idx.search(gpu(), &q, k).err().unwrap().to_string();
        assert!(e.contains(words), "{e}");
    }
    assert!(KnnIndex::new(gpu(), &[1.0; 7], 3, Metric::Ip, 10).is_err());
}

/// The neighbour table (each row's k nearest other rows) against the reference with k + 1,
/// the row itself removed.
#[test]
fn neighbour_table_excludes_each_row_itself() {
    let mut rng = Rng::new(21);
    let (n, d, k) = (150, 5, 6);
    let data = rng.vec(n * d, -1.0, 1.0);
    let idx = KnnIndex::new(gpu(), &data, d, Metric::L2, 64).unwrap();
    let table = idx.neighbour_table(gpu(), &data, k).unwrap();
    let (_, want) = knn_ref(&data, d, &data, k + 1, Metric::L2);
    for r in 0..n {
        let row: Vec<u32> = want[r * (k + 1)..(r + 1) * (k + 1)].iter().copied().filter(|&i| i as usize != r).collect();
        assert_eq!(&table[r * k..(r + 1) * k], &row[..k], "row {r}");
    }
    assert!(idx.neighbour_table(gpu(), &data, n).is_err());
}
