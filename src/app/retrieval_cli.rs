//! `sample`'s retrieval options: the database whose neighbours condition the chains
//! (`--database`, default the training one) and the chains' queries (`--query`, default a
//! database entry drawn per chain from (seed, chain)), for retrieval-conditioned models.

use super::shard::file_hash;
use super::Loaded;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::guide::{context_shape, CONTEXT};
use crate::model::Conditions;
use crate::retrieval::{Database, RetrievalConfig};
use crate::rng::{HostRng, Stream};
use std::path::{Path, PathBuf};

/// `sample`'s retrieval flags.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct RetrievalArgs {
    /// Retrieval-conditioned models: the database the chains' neighbours come from (any built
    /// with the training database's encoder) [default: the training database].
    #[arg(long)]
    pub database: Option<PathBuf>,
    /// One query per chain (or one for all): a .npy of embeddings [n, width] or of data samples
    /// [n, ...] (embedded by the database's encoder). Default: a database entry drawn per chain
    /// from (seed, chain), its k nearest other entries the context.
    #[arg(long)]
    pub query: Option<PathBuf>,
}

/// The chains' conditioning: the context rows and each chain's neighbours [n, k].
pub struct Retrieved {
    /// The context rows of the chains.
    pub conditions: Conditions,
    /// Each chain's neighbours (database rows) [n * k].
    pub neighbours: Vec<u32>,
    /// Neighbours per chain.
    pub k: usize,
}

impl RetrievalArgs {
    /// `eval` and `field` use the null context: the flags are refused there, not ignored.
    pub fn refuse_in(&self, command: &str) -> Result<()> {
        match self.database.as_ref().or(self.query.as_ref()) {
            Some(f) => Err(Error::Invalid(format!(
                "{}: {command} uses the null context of retrieval-conditioned models; --database and --query are \
                 sample's",
                f.display()
            ))),
            None => Ok(()),
        }
    }

    /// The model's `[retrieval]` and the database to use, checked against each other; None for
    /// models without retrieval (the flags are refused there).
    fn database(&self, m: &Loaded, model_name: &str) -> Result<Option<(RetrievalConfig, Database, PathBuf)>> {
        let r = m.config.as_ref().and_then(|c| c.retrieval.clone());
        let (Some(r), true) = (r, context_shape(m.model.as_ref()).is_some()) else {
            if let Some(f) = self.database.as_ref().or(self.query.as_ref()) {
                return Err(Error::Invalid(format!(
                    "{}: the model is not retrieval-conditioned (train it with a [retrieval] section)",
                    f.display()
                )));
            }
            return Ok(None);
        };
        let path = self.database.clone().unwrap_or_else(|| PathBuf::from(&r.database));
        if self.database.is_none() && !path.exists() {
            return Err(Error::Invalid(format!(
                "{}: the training database of {model_name} is not there; give --database FILE",
                path.display()
            )));
        }
        let db = Database::load(&path)?;
        r.check_database(&db, model_name, &path.display().to_string())?;
        Ok(Some((r, db, path)))
    }

    /// What a sharded run's key adds: the database's and the query file's hashes.
    pub fn run_key(&self, m: &Loaded, model_name: &str) -> Result<String> {
        let Some((_, _, path)) = self.database(m, model_name)? else { return Ok(String::new()) };
        let mut key = format!(" database {}", file_hash(&path)?);
        if let Some(q) = &self.query {
            key += &format!(" query {}", file_hash(q)?);
        }
        Ok(key)
    }

    /// The context of chains first .. first + n of a run of `total` chains drawn with `seed`.
    pub fn retrieve(
        &self,
        gpu: &Gpu,
        m: &Loaded,
        model_name: &str,
        (seed, first, n, total): (u64, usize, usize, usize),
    ) -> Result<Option<Retrieved>> {
        let Some((r, db, _)) = self.database(m, model_name)? else { return Ok(None) };
        let (k, d) = (r.k, db.info.d);
        let index = db.index(gpu)?;
        let neighbours = match &self.query {
            None => {
                let own: Vec<u32> = (first..first + n)
                    .map(|i| HostRng::stream(seed, Stream::Query(i as u64)).below(db.info.n) as u32)
                    .collect();
                let q: Vec<f32> = own.iter().flat_map(|&e| db.embeddings[e as usize * d..][..d].to_vec()).collect();
                index.search_excluding(gpu, &q, &own, k)?
            }
            Some(file) => {
                let q = queries(gpu, file, &db, first, n, total)?;
                index.search(gpu, &q, k)?.1
            }
        };
        let ctx: Vec<f32> =
            neighbours.iter().flat_map(|&j| db.embeddings[j as usize * d..(j as usize + 1) * d].to_vec()).collect();
        let conditions = Conditions { values: vec![(CONTEXT.into(), ctx)], cycle: false };
        Ok(Some(Retrieved { conditions, neighbours, k }))
    }
}

/// Query embeddings [n, d] for chains first .. first + n from a .npy of one row per chain of the
/// run (or one row for all): embeddings of the database's width, or data samples its encoder
/// embeds.
fn queries(gpu: &Gpu, file: &Path, db: &Database, first: usize, n: usize, total: usize) -> Result<Vec<f32>> {
    let name = file.display();
    let (shape, v) = crate::io::npy::read_npy(file)?;
    let rows = shape.first().copied().unwrap_or(0);
    if rows != total && rows != 1 {
        return Err(Error::Invalid(format!(
            "--query {name}: {rows} queries for {total} chains; give one per chain (or one for all)"
        )));
    }
    crate::ops::knn::finite(&v, &format!("--query {name}"))?;
    let per = v.len() / rows.max(1);
    let pick = |i: usize| if rows == 1 { 0 } else { i };
    let take: Vec<f32> = (first..first + n).flat_map(|i| v[pick(i) * per..(pick(i) + 1) * per].to_vec()).collect();
    let (d, data_shape) = (db.info.d, &db.info.data_shape);
    if shape.len() == 2 && shape[1] == d {
        let mut e = take;
        if db.info.metric == crate::ops::knn::Metric::Cosine {
            crate::ops::knn::normalise(&mut e, d);
        }
        return Ok(e);
    }
    if !data_shape.is_empty() && shape[1..] == data_shape[..] {
        return db.embed(gpu, &take);
    }
    Err(Error::Invalid(format!(
        "--query {name}: rows of shape {:?}; give embeddings of width {d} or data samples of shape {data_shape:?}",
        &shape[1..]
    )))
}

/// Each chain's neighbours as `<stem>.neighbours.npy` [n, k] beside `out` (database rows).
pub fn write_neighbours(out: &Path, r: &Retrieved) -> Result<PathBuf> {
    let path = out.with_extension("neighbours.npy");
    let v: Vec<f32> = r.neighbours.iter().map(|&i| i as f32).collect();
    crate::io::npy::write_npy(&path, &[r.neighbours.len() / r.k.max(1), r.k], &v)?;
    Ok(path)
}
