//! `--model compose:FILE.toml`: a composition of models loaded by what the file names.
//!
//! ```toml
//! op = "product"                      # product | mixture | negation | sum
//! models = ["ring/checkpoint.safetensors", "gmm:bar.toml", "compose:inner.toml"]
//! weights = [1.3, -0.3]               # negation (one per model), sum (one per model after the first)
//! temperature = 3.5                   # mixture
//! ```
//! Paths are taken from the file's folder. Each entry is a checkpoint, `gmm:` (ring8, ncsn or a
//! mixture file) or another composition (nested at most [`MAX_DEPTH`] deep).

use super::{load_checkpoint, MixtureSource, ModelSource};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::{ComposeOp, Composition, Mixture, ScoreModel};
use std::path::{Path, PathBuf};

/// How deep compositions may nest (a file that names itself stops here).
pub const MAX_DEPTH: usize = 8;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ComposeFile {
    op: ComposeOp,
    models: Vec<String>,
    weights: Option<Vec<f64>>,
    temperature: Option<f64>,
}

/// The composition in `path`, with the config of its first checkpoint (sampler defaults), if any.
pub fn load_composition(gpu: &Gpu, path: &Path, depth: usize) -> Result<(Composition, Option<Config>)> {
    let file = path.display().to_string();
    if depth >= MAX_DEPTH {
        return Err(Error::Invalid(format!(
            "{file}: compositions nest more than {MAX_DEPTH} deep (does a file name itself?)"
        )));
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::io(format!("{file}: cannot read the composition file"), e))?;
    let f: ComposeFile =
        toml::from_str(&text).map_err(|e| Error::Invalid(format!("{file}: {}", e.message().trim())))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let (mut parts, mut config): (Vec<Box<dyn ScoreModel>>, Option<Config>) = (Vec::new(), None);
    for m in &f.models {
        let src = ModelSource::parse(m).map_err(|e| Error::Invalid(format!("{file}: models: {}", e.message())))?;
        let part: Box<dyn ScoreModel> = match src.relative_to(dir) {
            ModelSource::Checkpoint(p) => {
                let (model, cfg, _) = load_checkpoint(gpu, &p).map_err(|e| e.context(format!("{file}: models")))?;
                config.get_or_insert(cfg);
                Box::new(model)
            }
            ModelSource::Mixture(g) => Box::new(Mixture::new(g.load()?)),
            ModelSource::Compose(p) => {
                let (c, cfg) = load_composition(gpu, &p, depth + 1)?;
                if let Some(cfg) = cfg {
                    config.get_or_insert(cfg);
                }
                Box::new(c)
            }
        };
        parts.push(part);
    }
    let c = Composition::new(f.op, parts, &f.models, f.weights, f.temperature)
        .map_err(|e| Error::Invalid(format!("{file}: {e}")))?;
    Ok((c, config))
}

impl ModelSource {
    /// A relative path taken from `dir`.
    fn relative_to(self, dir: &Path) -> ModelSource {
        let fix = |p: PathBuf| if p.is_absolute() { p } else { dir.join(p) };
        match self {
            ModelSource::Checkpoint(p) => ModelSource::Checkpoint(fix(p)),
            ModelSource::Compose(p) => ModelSource::Compose(fix(p)),
            ModelSource::Mixture(MixtureSource::File(p)) => ModelSource::Mixture(MixtureSource::File(fix(p))),
            m => m,
        }
    }
}
