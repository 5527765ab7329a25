//! `scoregen classify`: a classifier's accuracy per noise level, or its judgement of guided samples.

use crate::{open, Cli};
use scoregen::app::classify;
use scoregen::Result;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ClassifyArgs {
    /// A checkpoint of model.network = "classifier".
    #[arg(long)]
    classifier: PathBuf,
    /// Labelled data (idx images or .npy; default: the classifier's training data).
    #[arg(long, requires = "labels", conflicts_with = "samples")]
    data: Option<PathBuf>,
    /// The labels of --data (idx or integer .npy), or of --samples (default: <samples>.labels.npy).
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Samples written by `sample --class ... --out FILE.npy`.
    #[arg(long)]
    samples: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

pub fn cmd_classify(cli: &Cli, a: &ClassifyArgs) -> Result<()> {
    let gpu = open(cli)?;
    let Some(s) = &a.samples else {
        let sel = a
            .data
            .as_ref()
            .map(|d| classify::LabelledFile { data: d.clone(), labels: a.labels.clone().unwrap_or_else(|| d.clone()) });
        print!("{}", classify::accuracy_report(&gpu, &a.classifier, sel.as_ref())?);
        return Ok(());
    };
    let labels = a.labels.clone().unwrap_or_else(|| classify::labels_beside(s));
    let per = classify::judge_samples(&gpu, &a.classifier, s, &labels)?;
    let (right, all) = per.iter().fold((0, 0), |acc, c| (acc.0 + c.0, acc.1 + c.1));
    let line = |class: serde_json::Value, name: String, r: usize, t: usize| {
        let f = r as f64 / t.max(1) as f64;
        if a.json {
            println!("{}", serde_json::json!({"class": class, "as_class": f, "samples": t}));
        } else {
            println!("{name:<10} {f:.4}  ({r} of {t})");
        }
    };
    for (c, (r, t)) in per.iter().enumerate().filter(|(_, c)| c.1 > 0) {
        line(c.into(), format!("class {c}"), *r, *t);
    }
    line("all".into(), "all".into(), right, all);
    Ok(())
}
