//! Encoders from data to embeddings, a small trait so that more can come (a network's
//! penultimate layer, say): `identity` (flat data as they are), `pca:K` (fitted on the
//! database's data: the covariance by a GEMM on the GPU, its top K eigenvectors by subspace
//! iteration; mean and projection stored in the database so queries embed the same way) and
//! `npy:FILE` (embeddings computed elsewhere, e.g. CLIP, one row per data row).

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Recorder};
use crate::ops::matmul::{matmul, MatmulOpts};
use crate::tensor::Tensor;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// How data rows become embeddings.
#[derive(Clone, Debug, PartialEq)]
pub enum EncoderSpec {
    /// The flattened rows themselves.
    Identity,
    /// Principal components: the top k.
    Pca(usize),
    /// Embeddings computed elsewhere, one row per data row (a .npy file).
    Npy(PathBuf),
    /// Another database's encoder (its stored PCA, say): `db:FILE`.
    From(PathBuf),
}

impl std::str::FromStr for EncoderSpec {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.split_once(':') {
            None if s == "identity" => Ok(EncoderSpec::Identity),
            Some(("pca", k)) => match k.parse::<usize>() {
                Ok(k) if k >= 1 => Ok(EncoderSpec::Pca(k)),
                _ => Err(format!("'{s}': pca takes a positive number of components, e.g. pca:32")),
            },
            Some(("npy", f)) if !f.is_empty() => Ok(EncoderSpec::Npy(PathBuf::from(f))),
            Some(("db", f)) if !f.is_empty() => Ok(EncoderSpec::From(PathBuf::from(f))),
            _ => Err(format!("'{s}': expected identity, pca:K, db:FILE or npy:FILE")),
        }
    }
}

impl std::fmt::Display for EncoderSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EncoderSpec::Identity => write!(f, "identity"),
            EncoderSpec::Pca(k) => write!(f, "pca:{k}"),
            EncoderSpec::Npy(p) => write!(f, "npy:{}", p.display()),
            EncoderSpec::From(p) => write!(f, "db:{}", p.display()),
        }
    }
}

/// Data rows of `d_in` values to embeddings.
pub trait Encoder {
    /// Embedding width.
    fn width(&self) -> usize;
    /// Embeddings [n, width] of data [n, d_in].
    fn encode(&self, gpu: &Gpu, data: &[f32], d_in: usize) -> Result<Vec<f32>>;
    /// The tensors a database keeps to embed queries the same way.
    fn tensors(&self) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
        BTreeMap::new()
    }
}

/// The identity over rows of this width.
pub struct Identity(pub usize);

impl Encoder for Identity {
    fn width(&self) -> usize {
        self.0
    }
    fn encode(&self, _: &Gpu, data: &[f32], _: usize) -> Result<Vec<f32>> {
        Ok(data.to_vec())
    }
}

/// Rows per GPU pass of the PCA's covariance and projection (32,768 rows of 784 values are
/// 103 MB, below the 128 MiB binding every device gives).
const PCA_ROWS: usize = 32_768;

/// Principal components: e = P (x - mean), P [k, d_in] with orthonormal rows.
pub struct Pca {
    /// The data's mean per dimension.
    pub mean: Vec<f32>,
    /// The projection [k, D] onto the top components.
    pub proj: Vec<f32>,
    /// Components kept.
    pub k: usize,
}

impl Encoder for Pca {
    fn width(&self) -> usize {
        self.k
    }
    fn encode(&self, gpu: &Gpu, data: &[f32], d_in: usize) -> Result<Vec<f32>> {
        let p = Tensor::from_slice(gpu, &self.proj, &[self.k, d_in])?;
        let mut out = Vec::with_capacity(data.len() / d_in * self.k);
        for rows in data.chunks(PCA_ROWS * d_in) {
            let n = rows.len() / d_in;
            let centred: Vec<f32> =
                rows.chunks(d_in).flat_map(|r| r.iter().zip(&self.mean).map(|(x, m)| x - m)).collect();
            let x = Tensor::from_slice(gpu, &centred, &[n, d_in])?;
            let mut rec = Recorder::new(gpu);
            let e = matmul(&mut rec, &x, &p, MatmulOpts { trans_b: true, ..Default::default() })?;
            rec.finish()?;
            out.extend(e.to_vec(gpu)?);
        }
        Ok(out)
    }
    fn tensors(&self) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
        let d = self.mean.len();
        BTreeMap::from([
            ("encoder.mean".to_string(), (vec![d], self.mean.clone())),
            ("encoder.proj".to_string(), (vec![self.k, d], self.proj.clone())),
        ])
    }
}

struct Npy {
    path: PathBuf,
    width: usize,
    rows: Vec<f32>,
}

impl Encoder for Npy {
    fn width(&self) -> usize {
        self.width
    }
    fn encode(&self, _: &Gpu, data: &[f32], d_in: usize) -> Result<Vec<f32>> {
        let (n, m) = (data.len() / d_in.max(1), self.rows.len() / self.width);
        if n != m {
            return Err(Error::Invalid(format!(
                "--encoder npy:{}: {m} embeddings for {n} data rows (one row per data row)",
                self.path.display()
            )));
        }
        Ok(self.rows.clone())
    }
}

/// The encoder `spec` names, fitted on `data` [n, d_in] where it learns.
pub fn fit(gpu: &Gpu, spec: &EncoderSpec, data: &[f32], d_in: usize) -> Result<Box<dyn Encoder>> {
    if d_in == 0 || data.is_empty() || !data.len().is_multiple_of(d_in) {
        return Err(Error::Shape(format!("{} data values are not rows of {d_in}", data.len())));
    }
    crate::ops::knn::finite(data, "the database's data")?;
    match spec {
        EncoderSpec::Identity => Ok(Box::new(Identity(d_in))),
        EncoderSpec::Pca(k) if *k > d_in => {
            Err(Error::Invalid(format!("--encoder pca:{k}: the data have only {d_in} dimensions")))
        }
        EncoderSpec::Pca(k) => Ok(Box::new(fit_pca(gpu, data, d_in, *k)?)),
        EncoderSpec::From(path) => {
            let db = super::Database::load(path)?;
            if db.info.data_shape.iter().product::<usize>() != d_in {
                return Err(Error::Invalid(format!(
                    "--encoder db:{}: its encoder takes samples of shape {:?}, these have {d_in} values",
                    path.display(),
                    db.info.data_shape
                )));
            }
            db.query_encoder()?.ok_or_else(|| {
                Error::Invalid(format!(
                    "--encoder db:{}: its embeddings were made elsewhere ({}); it has no encoder to reuse",
                    path.display(),
                    db.info.encoder
                ))
            })
        }
        EncoderSpec::Npy(path) => {
            let (shape, rows) = crate::io::npy::read_npy(path)?;
            if shape.len() != 2 || shape[1] == 0 {
                return Err(Error::Invalid(format!("{}: embeddings must be [N, D], got {shape:?}", path.display())));
            }
            crate::ops::knn::finite(&rows, &path.display().to_string())?;
            Ok(Box::new(Npy { path: path.clone(), width: shape[1], rows }))
        }
    }
}

/// PCA: the covariance on the GPU (one GEMM over all rows), its top k eigenvectors by subspace
/// iteration with Rayleigh-Ritz on the host (d_in x d_in is small beside n x d_in).
pub fn fit_pca(gpu: &Gpu, data: &[f32], d: usize, k: usize) -> Result<Pca> {
    let n = data.len() / d;
    let mut mean = vec![0f64; d];
    for r in data.chunks(d) {
        mean.iter_mut().zip(r).for_each(|(m, x)| *m += *x as f64);
    }
    let mean: Vec<f32> = mean.iter().map(|m| (m / n as f64) as f32).collect();
    // Sum X_c^T X_c over chunks of rows: the data need not fit one binding.
    let mut cov = vec![0f64; d * d];
    for rows in data.chunks(PCA_ROWS * d) {
        let m = rows.len() / d;
        let centred: Vec<f32> = rows.chunks(d).flat_map(|r| r.iter().zip(&mean).map(|(x, m)| x - m)).collect();
        let x = Tensor::from_slice(gpu, &centred, &[m, d])?;
        let mut rec = Recorder::new(gpu);
        let c = matmul(&mut rec, &x, &x, MatmulOpts { trans_a: true, ..Default::default() })?;
        rec.finish()?;
        cov.iter_mut().zip(c.to_vec(gpu)?).for_each(|(a, v)| *a += v as f64 / n as f64);
    }
    let proj = top_eigenvectors(&cov, d, k);
    Ok(Pca { mean, proj: proj.iter().map(|&v| v as f32).collect(), k })
}

/// The k leading eigenvectors (rows, [k, d]) of the symmetric d x d matrix `a`: subspace
/// iteration (deterministic start), then the k x k projected matrix diagonalised by Jacobi and
/// each vector's sign fixed (largest component positive).
pub fn top_eigenvectors(a: &[f64], d: usize, k: usize) -> Vec<f64> {
    let mut v: Vec<Vec<f64>> =
        (0..k).map(|j| (0..d).map(|i| 1.0 / (1.0 + ((i * 7 + j * 13) % 17) as f64)).collect()).collect();
    let mul = |x: &[f64]| -> Vec<f64> { (0..d).map(|i| (0..d).map(|j| a[i * d + j] * x[j]).sum()).collect() };
    for _ in 0..200 {
        v = v.iter().map(|x| mul(x)).collect();
        orthonormalise(&mut v);
    }
    // Rayleigh-Ritz: T = V A V^T (k x k), T = Q L Q^T; the eigenvectors are Q^T V.
    let av: Vec<Vec<f64>> = v.iter().map(|x| mul(x)).collect();
    let mut t: Vec<f64> = (0..k * k).map(|ij| dot(&v[ij / k], &av[ij % k])).collect();
    let q = jacobi(&mut t, k);
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&x, &y| t[y * k + y].total_cmp(&t[x * k + x]));
    let mut out = Vec::with_capacity(k * d);
    for &c in &order {
        let mut e: Vec<f64> = (0..d).map(|i| (0..k).map(|r| q[r * k + c] * v[r][i]).sum()).collect();
        let big = e.iter().copied().fold(0.0, |m: f64, x| if x.abs() > m.abs() { x } else { m });
        if big < 0.0 {
            e.iter_mut().for_each(|x| *x = -*x);
        }
        out.extend(e);
    }
    out
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn orthonormalise(v: &mut [Vec<f64>]) {
    for i in 0..v.len() {
        for j in 0..i {
            let p = dot(&v[i], &v[j]);
            let vj = v[j].clone();
            v[i].iter_mut().zip(&vj).for_each(|(x, y)| *x -= p * y);
        }
        let n = dot(&v[i], &v[i]).sqrt().max(1e-300);
        v[i].iter_mut().for_each(|x| *x /= n);
    }
}

/// Cyclic Jacobi on the symmetric k x k `t` (left diagonal); returns Q (columns: eigenvectors).
fn jacobi(t: &mut [f64], k: usize) -> Vec<f64> {
    let mut q: Vec<f64> = (0..k * k).map(|ij| if ij / k == ij % k { 1.0 } else { 0.0 }).collect();
    for _ in 0..100 {
        let off: f64 = (0..k * k).filter(|ij| ij / k != ij % k).map(|ij| t[ij] * t[ij]).sum();
        if off < 1e-24 {
            break;
        }
        for p in 0..k {
            for r in p + 1..k {
                if t[p * k + r].abs() < 1e-300 {
                    continue;
                }
                let theta = (t[r * k + r] - t[p * k + p]) / (2.0 * t[p * k + r]);
                let tn = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let (c, s) = (1.0 / (tn * tn + 1.0).sqrt(), tn / (tn * tn + 1.0).sqrt());
                for i in 0..k {
                    let (a, b) = (t[i * k + p], t[i * k + r]);
                    t[i * k + p] = c * a - s * b;
                    t[i * k + r] = s * a + c * b;
                }
                for i in 0..k {
                    let (a, b) = (t[p * k + i], t[r * k + i]);
                    t[p * k + i] = c * a - s * b;
                    t[r * k + i] = s * a + c * b;
                }
                for i in 0..k {
                    let (a, b) = (q[i * k + p], q[i * k + r]);
                    q[i * k + p] = c * a - s * b;
                    q[i * k + r] = s * a + c * b;
                }
            }
        }
    }
    q
}
