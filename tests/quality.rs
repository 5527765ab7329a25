//! Slow statistical test (about half a minute on lavapipe): a small score model trained on the
//! 8-Gaussian ring reaches a sliced-W2 threshold that its untrained self is far from.

mod common;
use common::gpu;
use scoregen::app::load_checkpoint;
use scoregen::config::Config;
use scoregen::sample::draw;
use scoregen::train::{train, TrainOpts, CHECKPOINT};
use std::path::Path;

#[test]
fn slow_trained_toy_model_reaches_sliced_w2_threshold() {
    let dir = std::env::temp_dir().join(format!("scoregen-quality-{}", std::process::id()));
    let cfg = "[data]\nsource = \"toy\"\nname = \"ring8\"\n[model]\nhidden = [128, 128]\n[train]\nsteps = 1500\n\
               batch = 1024\nlr = 3e-3\nwarmup = 50\ncosine = true\nema = 0.99\nlog_every = 100\ncheckpoint_every = 0\n\
               [sample]\nsampler = \"heun\"\nsteps = 60\nn = 3000\nbatch = 3000\n";
    let cfg = Config::from_toml(cfg, "quality").unwrap();
    let eval = |steps: usize| -> f64 {
        let mut c = cfg.clone();
        c.train.steps = steps.max(1);
        let out = dir.join(format!("s{steps}"));
        let opts = TrainOpts { out: out.clone(), steps: None, resume: false, progress: false, stop_after: None };
        train(gpu(), &c, Path::new("."), &opts).unwrap();
        let (model, _, _) = load_checkpoint(gpu(), &out.join(CHECKPOINT)).unwrap();
        let req = c.sample.request();
        let xs = draw(gpu(), &model, &req, &mut |_, _| {}).unwrap();
        let gt = scoregen::dist::gmm::Gmm::ring8().sample(3000, &mut scoregen::rng::HostRng::new(5));
        scoregen::metrics::sliced_w2(&xs, &gt, 2, 256, 1)
    };
    let (untrained, trained) = (eval(1), eval(1500));
    eprintln!("sliced W2: 1 step {untrained:.3}, 1500 steps {trained:.3}");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(trained < 0.35, "trained model: sliced W2 {trained}");
    assert!(untrained > 1.0, "untrained model: sliced W2 {untrained}");
}
