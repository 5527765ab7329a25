//! Retrieval databases (Blattmann et al. 2022): embeddings of a data set, stored as a
//! safetensors file (`embeddings` [N, D], optional `labels` [N], the encoder's own tensors) with
//! the encoder's description in the metadata; `scoregen index build` writes one and `scoregen
//! index info` tells what it holds. Neighbours are found by `ops::knn` on the GPU.

pub mod encoder;

use crate::error::{Error, Result};
use crate::io::checkpoint::Checkpoint;
use crate::ops::knn::Metric;
pub use encoder::{Encoder, EncoderSpec};
use std::collections::BTreeMap;
use std::path::Path;

/// Metadata key of the database's description (JSON).
pub const META: &str = "scoregen.database";

/// What the metadata says.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DatabaseInfo {
    /// The encoder, as `EncoderSpec` prints it (identity, pca:K, npy:FILE).
    pub encoder: String,
    pub metric: Metric,
    pub n: usize,
    /// Embedding width.
    pub d: usize,
    /// Shape of one data sample the encoder takes (empty for npy: embeddings made elsewhere).
    pub data_shape: Vec<usize>,
    /// Where the data came from.
    pub source: String,
}

/// A database in host memory (the search uploads it: `ops::knn::KnnIndex`).
pub struct Database {
    pub info: DatabaseInfo,
    /// [n, d], L2-normalised for the cosine metric.
    pub embeddings: Vec<f32>,
    pub labels: Option<Vec<f32>>,
    /// The encoder's tensors (PCA: mean and projection), so queries embed the same way.
    pub encoder_tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
}

impl Database {
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors = self.encoder_tensors.clone();
        tensors.insert("embeddings".into(), (vec![self.info.n, self.info.d], self.embeddings.clone()));
        if let Some(l) = &self.labels {
            tensors.insert("labels".into(), (vec![self.info.n], l.clone()));
        }
        let meta = serde_json::to_string(&self.info).expect("database info serialises");
        Checkpoint { tensors, metadata: BTreeMap::from([(META.to_string(), meta)]) }.save(path)
    }

    /// Load and check a database file: one-line errors naming the file.
    pub fn load(path: &Path) -> Result<Database> {
        let file = path.display().to_string();
        let mut ck = Checkpoint::load(path)?;
        let meta = ck.metadata.get(META).ok_or_else(|| {
            Error::Invalid(format!(
                "{file}: not a scoregen database (no {META} metadata; build one with `scoregen index build`)"
            ))
        })?;
        let info: DatabaseInfo = serde_json::from_str(meta)
            .map_err(|e| Error::Invalid(format!("{file}: the {META} metadata is not readable: {e}")))?;
        let (shape, embeddings) =
            ck.tensors.remove("embeddings").ok_or_else(|| Error::Invalid(format!("{file}: no 'embeddings' tensor")))?;
        if shape != [info.n, info.d] || info.n == 0 || info.d == 0 {
            return Err(Error::Invalid(format!(
                "{file}: embeddings of shape {shape:?}, the metadata says [{}, {}] (corrupt or edited?)",
                info.n, info.d
            )));
        }
        crate::ops::knn::finite(&embeddings, &format!("{file}: embeddings"))?;
        let labels = match ck.tensors.remove("labels") {
            Some((s, l)) if s == [info.n] => Some(l),
            Some((s, _)) => return Err(Error::Invalid(format!("{file}: labels of shape {s:?} for {} rows", info.n))),
            None => None,
        };
        Ok(Database { info, embeddings, labels, encoder_tensors: ck.tensors })
    }

    /// One paragraph for `scoregen index info`.
    pub fn describe(&self) -> String {
        let i = &self.info;
        let mut s = format!(
            "{} embeddings of width {} ({:?} metric), encoder {}, data samples of shape {:?}, from {}",
            i.n, i.d, i.metric, i.encoder, i.data_shape, i.source
        );
        if let Some(l) = &self.labels {
            let mut classes: Vec<i64> = l.iter().map(|&v| v as i64).collect();
            classes.sort_unstable();
            classes.dedup();
            s += &format!("; labels: {} classes", classes.len());
        }
        let norms: Vec<f32> =
            self.embeddings.chunks(i.d).map(|r| r.iter().map(|x| x * x).sum::<f32>().sqrt()).collect();
        let mean = norms.iter().sum::<f32>() / norms.len().max(1) as f32;
        s + &format!("; mean row norm {mean:.4}")
    }
}

/// Build a database: the data [n, data_shape] through the encoder (fitted on these data where it
/// learns, e.g. PCA), normalised for the cosine metric.
pub fn build(
    gpu: &crate::Gpu,
    data: &[f32],
    data_shape: &[usize],
    spec: &EncoderSpec,
    metric: Metric,
    labels: Option<Vec<f32>>,
    source: &str,
) -> Result<Database> {
    let d_in: usize = data_shape.iter().product();
    let enc = encoder::fit(gpu, spec, data, d_in)?;
    let mut embeddings = enc.encode(gpu, data, d_in)?;
    let d = enc.width();
    let n = embeddings.len() / d.max(1);
    if labels.as_ref().is_some_and(|l| l.len() != n) {
        return Err(Error::Invalid(format!("{source}: {} labels for {n} rows", labels.map_or(0, |l| l.len()))));
    }
    if metric == Metric::Cosine {
        crate::ops::knn::normalise(&mut embeddings, d);
    }
    let shape = if matches!(spec, EncoderSpec::Npy(_)) { vec![] } else { data_shape.to_vec() };
    let info = DatabaseInfo { encoder: spec.to_string(), metric, n, d, data_shape: shape, source: source.into() };
    Ok(Database { info, embeddings, labels, encoder_tensors: enc.tensors() })
}
