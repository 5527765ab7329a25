//! Retrieval-conditioned training (Blattmann et al. 2022): every training example attends to
//! the embeddings of its k nearest other entries of the training database, found once up front
//! on the GPU (an N x N top-k, kept in the run folder) and looked up per batch; with probability
//! `retrieval.dropout` all of an example's tokens are replaced by the null context (zeros).

use crate::config::Config;
use crate::data::{Dataset, Source};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::retrieval::{Database, EncoderSpec};
use crate::rng::HostRng;
use std::path::{Path, PathBuf};

/// The neighbour table's file in the run folder.
pub const TABLE: &str = "neighbours.npy";

/// What a training batch's context is made of.
pub struct TrainContext {
    /// Neighbours per example.
    pub k: usize,
    /// Embedding width.
    pub d: usize,
    /// The probability of the null context.
    pub dropout: f32,
    /// The database's embeddings [N, d].
    embeddings: Vec<f32>,
    /// Row i's k nearest other rows [N, k].
    table: Vec<u32>,
}

impl TrainContext {
    /// Context tokens [b, k, d] of the data rows `rows`, the null context (zeros) for each
    /// example with probability `dropout` (drawn from `rng`).
    pub fn tokens(&self, rows: &[u32], rng: &mut HostRng) -> Vec<f32> {
        let (k, d) = (self.k, self.d);
        let mut out = Vec::with_capacity(rows.len() * k * d);
        for &r in rows {
            if rng.uniform() < self.dropout as f64 {
                out.resize(out.len() + k * d, 0.0);
                continue;
            }
            for &j in &self.table[r as usize * k..(r as usize + 1) * k] {
                out.extend_from_slice(&self.embeddings[j as usize * d..(j as usize + 1) * d]);
            }
        }
        out
    }
}

/// The database `retrieval.database` names, resolved from the config's folder.
pub fn database_path(database: &str, cfg_dir: &Path) -> PathBuf {
    let p = PathBuf::from(database);
    if p.exists() || p.is_absolute() {
        p
    } else {
        cfg_dir.join(p)
    }
}

/// Read the training database, check it against the config and the data, fill in the
/// config's width, encoder and metric, and find (or reload) the neighbour table. Toys train on
/// the rows the database was built from (the draw `scoregen index build` makes: train.seed).
pub fn prepare(
    gpu: &Gpu,
    cfg: &mut Config,
    data: Dataset,
    cfg_dir: &Path,
    out: &Path,
) -> Result<(Dataset, Option<TrainContext>)> {
    let Some(r) = cfg.retrieval.as_mut() else { return Ok((data, None)) };
    let path = database_path(&r.database, cfg_dir);
    let file = path.display().to_string();
    let db = Database::load(&path)?;
    r.check_database(&db, "this config", &file)?;
    if let Ok(abs) = path.canonicalize() {
        r.database = abs.display().to_string();
    }
    r.width = Some(db.info.d);
    r.encoder = Some(db.info.encoder.clone());
    r.metric = Some(db.info.metric);
    r.fitted = db.info.fitted.clone();
    let (k, dropout) = (r.k, r.dropout());
    let data = rows_of(data, &db, cfg.train.seed, &file)?;
    check_embeddings(gpu, &db, &data, &file)?;
    let table = neighbour_table(gpu, &db, k, out)?;
    let ctx = TrainContext { k, d: db.info.d, dropout, embeddings: db.embeddings, table };
    Ok((data, Some(ctx)))
}

/// The data as the database's rows: a stored set of as many rows, or a toy's draw of them.
fn rows_of(data: Dataset, db: &Database, seed: u64, file: &str) -> Result<Dataset> {
    let n = db.info.n;
    if !db.info.data_shape.is_empty() && db.info.data_shape != data.shape {
        return Err(Error::Invalid(format!(
            "{file}: built from samples of shape {:?}, the data are {:?}; build the database from the training data \
             (scoregen index build --data CONFIG)",
            db.info.data_shape, data.shape
        )));
    }
    match data.len() {
        Some(m) if m != n => Err(Error::Invalid(format!(
            "{file}: {n} entries for {m} training rows: a training database holds one entry per training row; build \
             it from the training data (scoregen index build --data CONFIG)"
        ))),
        Some(_) => Ok(data),
        None => {
            let x = data.draw(n, &mut HostRng::new(seed));
            Ok(Dataset { source: Source::Array { n, data: x }, labels: None, ..data })
        }
    }
}

/// The database's first rows re-embedded from the data must be its embeddings: a database
/// built from other data (or another seed's draw of a toy) is refused.
fn check_embeddings(gpu: &Gpu, db: &Database, data: &Dataset, file: &str) -> Result<()> {
    if matches!(db.info.encoder.parse::<EncoderSpec>(), Ok(EncoderSpec::Npy(_))) {
        return Ok(()); // embeddings made elsewhere: nothing to recompute
    }
    let Source::Array { data: x, .. } = &data.source else { return Ok(()) };
    let m = db.info.n.min(256);
    let e = db.embed(gpu, &x[..m * data.numel()])?;
    let want = &db.embeddings[..m * db.info.d];
    let scale = want.iter().fold(1e-6f32, |a, v| a.max(v.abs()));
    let worst = e.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    if worst > 1e-3 * scale {
        return Err(Error::Invalid(format!(
            "{file}: its embeddings are not those of the training data (largest difference {worst:.3e} over the \
             first {m} rows): built from other data or another seed? Rebuild it with scoregen index build --data \
             CONFIG"
        )));
    }
    Ok(())
}

/// Every row's k nearest other rows: from the run folder when a table of this shape is there
/// (a resumed run), else found on the GPU and written there.
fn neighbour_table(gpu: &Gpu, db: &Database, k: usize, out: &Path) -> Result<Vec<u32>> {
    let n = db.info.n;
    if k + 1 > n {
        return Err(Error::Invalid(format!("retrieval.k = {k}: the database holds only {n} entries")));
    }
    let path = out.join(TABLE);
    if let Ok((shape, v)) = crate::io::npy::read_npy(&path) {
        if shape == [n, k] && v.iter().all(|&i| (i as usize) < n) {
            return Ok(v.iter().map(|&i| i as u32).collect());
        }
    }
    let t0 = std::time::Instant::now();
    let table = db.index(gpu)?.neighbour_table(gpu, &db.embeddings, k)?;
    eprintln!("retrieval: {n} x {n} neighbour table (k = {k}) in {:.1} s", t0.elapsed().as_secs_f64());
    std::fs::create_dir_all(out).map_err(|e| Error::io(format!("{}: cannot create", out.display()), e))?;
    let values: Vec<f32> = table.iter().map(|&i| i as f32).collect();
    crate::io::npy::write_npy(&path, &[n, k], &values)?;
    Ok(table)
}
