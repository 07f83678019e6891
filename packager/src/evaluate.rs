//! The packager's evaluations of the model, for every family and task, batched through
//! burn: the fold check (the released model computes what the trained one did) and the
//! per-row losses L3 attacks.

use airlock_infer::{Net, predict_outputs, to_net};
use airlock_model::{Description, Params, Preprocess};
use airlock_schemas::TaskSpec;
use burn::backend::Flex;

/// Most rows the fold check compares.
pub const FOLD_CHECK_ROWS: usize = 2000;

/// Largest difference the fold check accepts between the trained and released models'
/// outputs (logits, or values relative to the target's scale).
pub const FOLD_TOLERANCE: f32 = 1e-3;

/// The trained network (standardized inputs) and the released one (raw inputs).
pub struct Nets {
    trained: Net<Flex>,
    released: Net<Flex>,
    device: burn::tensor::Device<Flex>,
    width: usize,
    task: TaskSpec,
}

impl std::fmt::Debug for Nets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nets").field("width", &self.width).finish()
    }
}

impl Nets {
    /// Both networks on the CPU.
    pub fn new(description: &Description, trained: &Params, released: &Params) -> Self {
        let device = Default::default();
        Self {
            trained: to_net(description, trained, false, &device),
            released: to_net(description, released, true, &device),
            device,
            width: description.input_len(),
            task: description.task.clone(),
        }
    }

    /// The largest absolute difference between the trained model's outputs on
    /// `standardized` rows and the released model's on the same rows `raw`, a regression's
    /// in units of its target's standard deviation.
    pub fn fold_difference(&self, pre: &Preprocess, standardized: &[f32], raw: &[f32]) -> f32 {
        let a = predict_outputs(&self.trained, standardized, self.width, &self.device);
        let mut b = predict_outputs(&self.released, raw, self.width, &self.device);
        if let (TaskSpec::Regression, Some(t)) = (&self.task, &pre.target) {
            b.iter_mut()
                .for_each(|z| *z = ((f64::from(*z) - t.mean) / t.std) as f32);
        }
        a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(
                0.0f32,
                |m, d| if d.is_nan() { f32::INFINITY } else { m.max(d) },
            )
    }

    /// The released model's per-row loss on raw rows `x` with labels `y`: binary or
    /// categorical cross-entropy, or squared error (what a membership attacker scores).
    pub fn losses(&self, x: &[f32], y: &[f32]) -> Vec<f64> {
        let out = predict_outputs(&self.released, x, self.width, &self.device);
        airlock_model::row_losses(&self.task, &out, y)
    }
}
