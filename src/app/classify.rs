//! `scoregen classify`: a trained classifier's accuracy per noise level on labelled data, or
//! the fraction of generated samples it assigns to the class they were drawn for.

use crate::data::{DataConfig, Dataset, SourceKind};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::{per_class, Classifier};
use crate::rng::HostRng;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Labelled data to measure on: a file (idx images or .npy) and its labels.
#[derive(Clone, Debug)]
pub struct LabelledFile {
    /// The samples (idx images or .npy).
    pub data: PathBuf,
    /// Their labels (idx or integer .npy).
    pub labels: PathBuf,
}

/// Samples and labels: `sel`'s files, or the classifier's training data (its config's).
fn load_labelled(clf: &Classifier, clf_path: &Path, sel: Option<&LabelledFile>) -> Result<(Vec<f32>, Vec<u32>)> {
    let cfg = match sel {
        Some(f) => {
            let npy = std::fs::read(&f.data).map(|b| b.starts_with(b"\x93NUMPY")).unwrap_or(false);
            DataConfig {
                source: if npy { SourceKind::Npy } else { SourceKind::Idx },
                path: Some(f.data.display().to_string()),
                labels: Some(f.labels.display().to_string()),
                name: None,
                size: None,
                channels: None,
                limit: None,
            }
        }
        None => {
            crate::config::Config::from_metadata(&clf.info.config, &format!("{} (metadata)", clf_path.display()))?.data
        }
    };
    let data = Dataset::load(&cfg, Path::new("."))?;
    if data.shape != clf.shape() {
        return Err(Error::Invalid(format!(
            "{}: samples of {:?}; the classifier {} takes {:?}",
            cfg.path.as_deref().unwrap_or("the data"),
            data.shape,
            clf_path.display(),
            clf.shape()
        )));
    }
    let n = data.len().unwrap_or(10_000).min(10_000);
    let mut rng = HostRng::new(0);
    match (&data.source, &data.labels) {
        (crate::data::Source::Array { data: xs, .. }, Some(l)) => {
            Ok((xs[..n * data.numel()].to_vec(), l.of[..n].to_vec()))
        }
        (crate::data::Source::Toy(t), Some(_)) => {
            let (x, y) = t.sample_labelled(n, &mut rng).expect("toys with labels are mixtures");
            Ok((x, y))
        }
        _ => Err(Error::Invalid(format!("{}: the data have no labels", cfg.path.as_deref().unwrap_or("data")))),
    }
}

/// Accuracy per noise level (5 levels from the process's lowest to its highest, geometric; one
/// for a fixed level)
/// on up to 10,000 labelled samples; the report as text lines.
pub fn accuracy_report(gpu: &Gpu, clf_path: &Path, sel: Option<&LabelledFile>) -> Result<String> {
    let clf = Classifier::load(gpu, clf_path)?;
    let (xs, ys) = load_labelled(&clf, clf_path, sel)?;
    let (lo, hi) = (clf.process.sigma_min(), clf.process.sigma_max());
    let mut out = String::new();
    let levels = if hi > lo { 5 } else { 1 };
    for j in 0..levels {
        let sigma = if hi > lo { lo * (hi / lo).powf(j as f64 / 4.0) } else { lo };
        let pred = clf.predict(gpu, &xs, sigma, &mut HostRng::new(j as u64), 1000)?;
        let right = pred.iter().zip(&ys).filter(|(p, y)| p == y).count();
        let _ = writeln!(
            out,
            "accuracy at sigma {sigma:<10.4}  {:.4}  ({right} of {})",
            right as f64 / ys.len() as f64,
            ys.len()
        );
    }
    Ok(out)
}

/// Per class: the fraction of samples drawn for it that the classifier (at its lowest level)
/// assigns to it. `labels`: float class numbers (`sample`'s `.labels.npy`).
pub fn judge_samples(gpu: &Gpu, clf_path: &Path, samples: &Path, labels: &Path) -> Result<Vec<(usize, usize)>> {
    let clf = Classifier::load(gpu, clf_path)?;
    let (shape, xs) = crate::io::npy::read_npy(samples)?;
    if shape.len() < 2 || shape[1..] != *clf.shape() {
        return Err(Error::Invalid(format!(
            "{}: samples of {:?}; the classifier {} takes [N, {:?}]",
            samples.display(),
            shape,
            clf_path.display(),
            clf.shape()
        )));
    }
    let (_, ys) = crate::io::npy::read_npy_numbers(labels)?;
    if ys.len() != shape[0] {
        return Err(Error::Invalid(format!(
            "{}: {} labels for the {} samples of {}",
            labels.display(),
            ys.len(),
            shape[0],
            samples.display()
        )));
    }
    let ys = crate::data::Labels::numbered(&ys, labels)?.of;
    let pred = clf.predict(gpu, &xs, 0.0, &mut HostRng::new(0), 1000)?;
    Ok(per_class(&pred, &ys, clf.classes()))
}

/// `<stem>.labels.npy` beside a samples file.
pub fn labels_beside(samples: &Path) -> PathBuf {
    let stem = samples.file_stem().and_then(|s| s.to_str()).unwrap_or("samples");
    samples.with_file_name(format!("{stem}.labels.npy"))
}
