//! The planner: the nodes an output needs, in order, with intermediate buffers shared by
//! liveness, and every pipeline and bind group made once. `run` replays the steps as one
//! submission: after the plan is built, a run creates no buffer, pipeline or bind group.

use super::{lower, Graph, Var};
use crate::error::{Error, Result};
use crate::gpu::{Captured, Gpu, Recorder};
use crate::tensor::Tensor;
use std::collections::{BTreeMap, HashMap};

/// Named trainable tensors that `Param` nodes read (and optimizers update in place).
pub type ParamStore = BTreeMap<String, Tensor>;

/// A graph planned for the GPU: nodes in order, buffers shared by liveness, every pipeline
/// and bind group made once; a run replays the steps.
pub struct Plan {
    captured: Captured,
    inputs: HashMap<String, Tensor>,
    outputs: Vec<Tensor>,
    /// Bytes of the intermediate buffers, inputs and constants the plan owns.
    pub peak_bytes: u64,
    /// Dispatches per run.
    pub steps: usize,
    /// Replays so far (u32), advanced on the GPU; random draws are keyed by it, so a resumed
    /// run that restores it draws the numbers an uninterrupted run would have.
    pub replays: Tensor,
}

impl Plan {
    /// Plan the computation of `outputs`. Parameters come from `params` (by name, shapes
    /// checked); inputs get buffers of their own, filled with `feed` before a run.
    pub fn new(gpu: &Gpu, g: &Graph, outputs: &[Var], params: &ParamStore) -> Result<Plan> {
        Self::build(gpu, g, outputs, params, false)
    }

    /// The same, with kernel configurations that do not depend on the batch size (sampling
    /// plans: a chain's numbers must not change with `--batch` or `--n`).
    pub fn batch_invariant(gpu: &Gpu, g: &Graph, outputs: &[Var], params: &ParamStore) -> Result<Plan> {
        Self::build(gpu, g, outputs, params, true)
    }

    /// Need, fusion, liveness, then each needed node lowered in order: leaves take their own
    /// buffers, kernels write pooled intermediates released after their last reader.
    fn build(gpu: &Gpu, g: &Graph, outputs: &[Var], params: &ParamStore, batch_invariant: bool) -> Result<Plan> {
        let need = lower::needed(g, outputs);
        let fusion = lower::fuse(g, &need, outputs);
        let live = lower::liveness(g, &need, &fusion.eff, outputs);
        let mut lw = lower::Lowering::new(gpu, g, params, live)?;
        lw.rec.batch_invariant = batch_invariant;
        for i in (0..need.len()).filter(|&i| need[i] && !fusion.skip[i]) {
            let node = &g.nodes[i];
            let t = match lw.leaf(node)? {
                Some(t) => t,
                None => {
                    let out = lw.intermediate(&node.shape)?;
                    lw.kernel(node, fusion.fused.get(&i).copied(), &out)?;
                    out
                }
            };
            lw.vals.insert(i, t);
            lw.release(i, &fusion.eff[i]);
        }
        if lw.draws {
            crate::ops::random::plan_tick(&mut lw.rec, &lw.steps_t)?;
        }
        let outputs = outputs.iter().map(|o| lw.vals[&o.0].clone()).collect();
        let captured = lw.rec.into_captured();
        let steps = captured.steps.len();
        Ok(Plan { captured, inputs: lw.inputs, outputs, peak_bytes: lw.peak, steps, replays: lw.steps_t })
    }

    /// Upload the data of input `name` (lands before the next submission).
    pub fn feed(&self, gpu: &Gpu, name: &str, data: &[f32]) -> Result<()> {
        let t = self.inputs.get(name).ok_or_else(|| Error::Invalid(format!("the plan has no input named '{name}'")))?;
        if data.len() != t.numel() {
            return Err(Error::Shape(format!(
                "input '{name}' takes {} values ({:?}), got {}",
                t.numel(),
                t.shape(),
                data.len()
            )));
        }
        gpu.queue.write_buffer(t.buffer().buffer(), 0, bytemuck::cast_slice(data));
        Ok(())
    }

    /// The tensor fed as input `name`.
    pub fn input(&self, name: &str) -> Option<&Tensor> {
        self.inputs.get(name)
    }
    /// Output `i` (valid after a run).
    pub fn output(&self, i: usize) -> &Tensor {
        &self.outputs[i]
    }

    /// Append this plan's steps to a recording (e.g. many sampler steps per submission).
    pub fn record(&self, rec: &mut Recorder) {
        rec.replay(&self.captured.steps);
    }

    /// Run once: one submission, not waited for.
    pub fn run(&self, gpu: &Gpu) -> Result<()> {
        let mut rec = Recorder::new(gpu);
        self.record(&mut rec);
        rec.submit()
    }
}
