//! Training speed of every objective on W1's network (the MLP 3 -> 256 -> 256 -> 256 -> 2, SiLU,
//! on the ring of 8 Gaussians, Adam; or another MLP), for the score and the energy parameterisation, in one run:
//! steps/s of the full planned step (loss, backward, Adam) with the batch uploaded each step
//! as in training, and each figure's time per step relative to DSM's (same parameterisation)
//! and, for energy models, to the score model's (same objective).

use super::{Figure, Report};
use crate::dist::{Gaussian, Gmm};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::graph::Graph;
use crate::nn::{init_params, Builder};
use crate::optim::{AdamConfig, TrainStep};
use crate::rng::HostRng;
use crate::score::objective::Nce;
use crate::score::{Activation, EnergyForm, Loss, ModelSpec, Network, Objective, Parameterisation, Projection};
use std::time::Instant;

/// The fixed level NCE's rows train at.
const NCE_SIGMA: f64 = 0.1;

/// The network timed: W1's MLP by default (hidden 256 x 3, SiLU).
#[derive(Clone, Debug)]
pub struct Net {
    /// Hidden widths.
    pub hidden: Vec<usize>,
    /// The activation.
    pub act: Activation,
}

impl Default for Net {
    fn default() -> Self {
        Net { hidden: vec![256, 256, 256], act: Activation::Silu }
    }
}

fn spec(net: &Net, param: Parameterisation) -> ModelSpec {
    ModelSpec {
        data_shape: vec![2],
        network: Network::Mlp { hidden: net.hidden.clone(), noise_features: 0, act: net.act },
        param,
        input_var: None,
        classes: None,
        context: None,
    }
}

/// Steps/s of `loss` for `spec` at batch `b` over `steps` timed steps (after a tenth as warm-up).
fn time_steps(gpu: &Gpu, spec: &ModelSpec, loss: &Loss, b: usize, steps: usize) -> Result<f64> {
    let mut g = Graph::new();
    let x0 = g.input("x0", &[b, 2]);
    let sigma = g.input("sigma", &[b]);
    let mut bld = Builder::new(&mut g);
    let l = spec.loss(&mut bld, x0, sigma, loss, 1)?;
    let specs = bld.specs.clone();
    let params = init_params(gpu, &specs, 0)?;
    let step = TrainStep::new(gpu, &mut g, l, &params, AdamConfig::default())?;
    let ring = Gmm::ring8();
    let mut rng = HostRng::new(0);
    let warm = (steps / 10).max(2);
    let mut t0 = Instant::now();
    for i in 0..steps + warm {
        if i == warm {
            gpu.wait()?;
            t0 = Instant::now();
        }
        let x = ring.sample(b, &mut rng);
        let s: Vec<f32> = match loss {
            Loss::Nce(_) => vec![NCE_SIGMA as f32; b],
            _ => (0..b).map(|_| (0.01f64.ln() + rng.uniform() * 1000f64.ln()).exp() as f32).collect(),
        };
        step.plan.feed(gpu, "x0", &x)?;
        step.plan.feed(gpu, "sigma", &s)?;
        step.run(gpu, 1)?;
    }
    gpu.wait()?;
    Ok(steps as f64 / t0.elapsed().as_secs_f64())
}

fn loss_for(obj: Objective) -> Result<Loss> {
    Ok(match obj {
        Objective::Dsm => Loss::Dsm,
        Objective::Ssm => Loss::Sliced { projections: 1, dist: Projection::Rademacher, vr: false },
        Objective::SsmVr => Loss::Sliced { projections: 1, dist: Projection::Rademacher, vr: true },
        Objective::Esm => Loss::Exact,
        Objective::Nce => {
            let xs = Gmm::ring8().sample(20_000, &mut HostRng::new(1));
            let noise = Gaussian::fit(&xs, 2, NCE_SIGMA * NCE_SIGMA, false).map_err(crate::Error::Invalid)?;
            Loss::Nce(Nce { sigma: NCE_SIGMA, ratio: 1, noise })
        }
    })
}

/// Run the benchmark, printing its figures.
pub fn run(gpu: &Gpu, net: &Net, b: usize, steps: usize, report: &Report) -> Result<()> {
    report.note(&format!(
        "adapter: {}; MLP 3 -> {:?} -> 2 ({:?}) on the ring, batch {b}, {steps} timed steps per row; SSM with 1 Rademacher \
         projection, ESM's trace by 2 VJPs (D = 2), NCE at sigma {NCE_SIGMA} with 1 noise sample per point",
        gpu.describe(),
        net.hidden,
        net.act
    ));
    let energy = Parameterisation::Energy { form: EnergyForm::Norm };
    let mut score_sps: Vec<(Objective, f64)> = Vec::new();
    for (pname, param) in [("score", Parameterisation::Score), ("energy", energy)] {
        let mut dsm = None;
        for obj in Objective::ALL {
            if obj == Objective::Nce && pname == "score" {
                continue; // NCE needs an energy
            }
            let sps = time_steps(gpu, &spec(net, param), &loss_for(obj)?, b, steps)?;
            let dsm_sps = *dsm.get_or_insert(sps);
            let fields = || {
                vec![
                    ("objective", format!("\"{}\"", obj.name())),
                    ("param", format!("\"{pname}\"")),
                    ("batch", b.to_string()),
                ]
            };
            report.emit(Figure {
                bench: "objectives",
                fields: fields(),
                imp: "scoregen".into(),
                value: sps,
                unit: "steps/s",
            });
            report.emit(Figure {
                bench: "objectives",
                fields: fields(),
                imp: "scoregen".into(),
                value: dsm_sps / sps,
                unit: "x DSM time per step",
            });
            if pname == "score" {
                score_sps.push((obj, sps));
            } else if let Some((_, s)) = score_sps.iter().find(|(o, _)| *o == obj) {
                report.emit(Figure {
                    bench: "objectives",
                    fields: fields(),
                    imp: "scoregen".into(),
                    value: s / sps,
                    unit: "x score-model time per step",
                });
            }
        }
    }
    Ok(())
}
