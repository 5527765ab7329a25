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
    /// The similarity the search ranks by.
    pub metric: Metric,
    /// Entries.
    pub n: usize,
    /// Embedding width.
    pub d: usize,
    /// Shape of one data sample the encoder takes (empty for npy: embeddings made elsewhere).
    pub data_shape: Vec<usize>,
    /// Where the data came from.
    pub source: String,
    /// A fingerprint of the fitted encoder's tensors (PCA: mean and projection), so databases
    /// embedded by different fits of one kind of encoder are told apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fitted: Option<String>,
}

/// A database in host memory (the search uploads it: `ops::knn::KnnIndex`).
pub struct Database {
    /// What the database is (encoder, metric, size, fingerprint).
    pub info: DatabaseInfo,
    /// [n, d], L2-normalised for the cosine metric.
    pub embeddings: Vec<f32>,
    /// Each entry's class, where the data had labels.
    pub labels: Option<Vec<f32>>,
    /// The encoder's tensors (PCA: mean and projection), so queries embed the same way.
    pub encoder_tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
}

impl Database {
    /// Write the database as a safetensors file (atomically).
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
    // A borrowed encoder is described as its own database describes it.
    let name = match spec {
        EncoderSpec::From(p) => Database::load(p)?.info.encoder,
        _ => spec.to_string(),
    };
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
    let tensors = enc.tensors();
    let fitted = (!tensors.is_empty()).then(|| fingerprint(&tensors));
    let info = DatabaseInfo { encoder: name, metric, n, d, data_shape: shape, source: source.into(), fitted };
    Ok(Database { info, embeddings, labels, encoder_tensors: tensors })
}

/// FNV-1a over the encoder's tensors (names, shapes, values).
fn fingerprint(t: &BTreeMap<String, (Vec<usize>, Vec<f32>)>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: &[u8]| b.iter().for_each(|&x| h = (h ^ x as u64).wrapping_mul(0x100_0000_01b3));
    for (name, (shape, v)) in t {
        eat(name.as_bytes());
        shape.iter().for_each(|s| eat(&(*s as u64).to_le_bytes()));
        v.iter().for_each(|x| eat(&x.to_le_bytes()));
    }
    format!("{h:016x}")
}

impl Database {
    /// The database on the GPU for exact search in its own metric (chunks of `CHUNK_ROWS`).
    pub fn index(&self, gpu: &crate::Gpu) -> Result<crate::ops::knn::KnnIndex> {
        let (d, m) = (self.info.d, self.info.metric);
        crate::ops::knn::KnnIndex::new(gpu, &self.embeddings, d, m, crate::ops::knn::CHUNK_ROWS)
    }

    /// The encoder that embeds queries as the database's rows were (identity, or the stored
    /// PCA); None for `npy:` databases, whose embeddings were made elsewhere.
    pub fn query_encoder(&self) -> Result<Option<Box<dyn Encoder>>> {
        let d_in: usize = self.info.data_shape.iter().product();
        let spec: EncoderSpec = self.info.encoder.parse().map_err(Error::Invalid)?;
        Ok(match spec {
            EncoderSpec::Npy(_) | EncoderSpec::From(_) => None,
            EncoderSpec::Identity => Some(Box::new(encoder::Identity(d_in))),
            EncoderSpec::Pca(k) => {
                let get = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
                    match self.encoder_tensors.get(name) {
                        Some((s, v)) if s == shape => Ok(v.clone()),
                        _ => Err(Error::Invalid(format!(
                            "the database's pca:{k} encoder has no '{name}' {shape:?} (corrupt or edited?)"
                        ))),
                    }
                };
                let (mean, proj) = (get("encoder.mean", &[d_in])?, get("encoder.proj", &[k, d_in])?);
                Some(Box::new(encoder::Pca { mean, proj, k }))
            }
        })
    }

    /// Embed data rows [n, data_shape] as the database's rows were (normalised for cosine).
    pub fn embed(&self, gpu: &crate::Gpu, rows: &[f32]) -> Result<Vec<f32>> {
        let enc = self.query_encoder()?.ok_or_else(|| {
            Error::Invalid(format!(
                "the database's encoder {} embeds no new data; give embeddings of width {}",
                self.info.encoder, self.info.d
            ))
        })?;
        let d_in: usize = self.info.data_shape.iter().product();
        let mut e = enc.encode(gpu, rows, d_in)?;
        if self.info.metric == Metric::Cosine {
            crate::ops::knn::normalise(&mut e, self.info.d);
        }
        Ok(e)
    }
}

/// The `[retrieval]` section of a run config: the training database and how the network is
/// conditioned on it. `width`, `encoder` and `metric` are the database's; training fills them in
/// (checked where given), so checkpoints carry them and a swapped database is checked against them.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrievalConfig {
    /// The training database (`scoregen index build`), relative to the config's folder.
    pub database: String,
    /// Neighbours per example: the context tokens (1 to 64).
    pub k: usize,
    /// The probability of the null context (all tokens zero) in training, for guidance over the
    /// retrieval [default: 0.1].
    #[serde(default)]
    pub dropout: Option<f32>,
    /// The database's encoder (identity, pca:K, npy:FILE).
    #[serde(default)]
    pub encoder: Option<String>,
    /// The embedding width.
    #[serde(default)]
    pub width: Option<usize>,
    /// The database's metric.
    #[serde(default)]
    pub metric: Option<Metric>,
    /// The fingerprint of the database's fitted encoder (PCA), where it has one.
    #[serde(default)]
    pub fitted: Option<String>,
}

impl RetrievalConfig {
    /// Values out of range, named.
    pub fn check(&self) -> std::result::Result<(), String> {
        if !(1..=crate::ops::knn::MAX_K).contains(&self.k) {
            return Err(format!("retrieval.k = {} must be from 1 to {}", self.k, crate::ops::knn::MAX_K));
        }
        if let Some(p) = self.dropout.filter(|p| !(0.0..1.0).contains(p)) {
            return Err(format!("retrieval.dropout = {p} must be in [0, 1)"));
        }
        if let Some(e) = &self.encoder {
            e.parse::<EncoderSpec>().map_err(|m| format!("retrieval.encoder = {m}"))?;
        }
        if self.width == Some(0) {
            return Err("retrieval.width = 0: the database's embeddings have a positive width".into());
        }
        Ok(())
    }

    /// The label-dropout rate (default 0.1).
    pub fn dropout(&self) -> f32 {
        self.dropout.unwrap_or(0.1)
    }

    /// Check a database against what this section (a model's) says: width, encoder, metric.
    /// `model` and `file` name the two sides in the error.
    pub fn check_database(&self, db: &Database, model: &str, file: &str) -> Result<()> {
        let i = &db.info;
        let bad = |what: &str, want: String, have: String| {
            Err(Error::Invalid(format!(
                "{file}: a database of {what} {have}, but {model} was trained on one of {what} {want}; use a database \
                 built with the same encoder (scoregen index build --encoder {})",
                self.encoder.as_deref().unwrap_or("?")
            )))
        };
        if let Some(w) = self.width.filter(|w| *w != i.d) {
            return bad("width", w.to_string(), i.d.to_string());
        }
        if let Some(e) = self.encoder.as_ref().filter(|e| !same_encoder(e, &i.encoder)) {
            return bad("encoder", e.clone(), i.encoder.clone());
        }
        if let Some(m) = self.metric.filter(|m| *m != i.metric) {
            return bad("metric", format!("{m:?}"), format!("{:?}", i.metric));
        }
        if let (Some(a), Some(b)) = (&self.fitted, &i.fitted) {
            if a != b {
                return Err(Error::Invalid(format!(
                    "{file}: its {} encoder was fitted on other data than {model}'s (fingerprint {b}, the model's {a}); \
                     build it with the training database's encoder: scoregen index build --encoder db:TRAINING_DB",
                    i.encoder
                )));
            }
        }
        if self.k > i.n {
            return Err(Error::Invalid(format!(
                "{file}: {} entries, fewer than the k = {} neighbours {model} attends to",
                i.n, self.k
            )));
        }
        Ok(())
    }
}

/// Encoders agree: the same kind and size (npy: embeddings made elsewhere, any file).
fn same_encoder(a: &str, b: &str) -> bool {
    match (a.parse::<EncoderSpec>(), b.parse::<EncoderSpec>()) {
        (Ok(EncoderSpec::Npy(_)), Ok(EncoderSpec::Npy(_))) => true,
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}
