//! The packager's evaluations of the model, for every family and task, batched through
//! burn: the fold check (the released model computes what the trained one did) and the
//! per-row losses L3 attacks.

use airlock_infer::{Net, predict_outputs, to_net_pair};
use airlock_model::{Description, Folded, Preprocess};
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
    /// Both networks on the CPU, from the fold (its released tensors moved, not copied),
    /// the trained one sharing the released one's tensors that folding left unchanged.
    pub fn new(description: &Description, folded: Folded) -> Self {
        let device = Default::default();
        let (trained, released) = to_net_pair(description, folded, &device);
        Self {
            trained,
            released,
            device,
            width: description.input_len(),
            task: description.task.clone(),
        }
    }

    /// The released model's outputs on the rows `rows` of row-major raw inputs `x`, in one
    /// batched pass: the fold check and L3 both read them, so no row goes through the
    /// model twice.
    pub fn released_outputs(&self, x: &[f32], rows: &[usize]) -> RowOutputs {
        let w = self.width.max(1);
        let n = x.len() / w;
        let mut position = vec![usize::MAX; n];
        let mut picked = Vec::with_capacity(rows.len() * w);
        let mut count = 0;
        for &r in rows {
            if r < n && position[r] == usize::MAX {
                position[r] = count;
                count += 1;
                picked.extend_from_slice(&x[r * w..(r + 1) * w]);
            }
        }
        let values = predict_outputs(&self.released, &picked, w, &self.device);
        RowOutputs {
            per_row: values.len() / count.max(1),
            position,
            values,
        }
    }

    /// The largest absolute difference between the trained model's outputs on
    /// `standardized` rows and the released model's on the same rows (`released`, as
    /// [`Self::released_outputs`] computed them from the raw rows), a regression's in units
    /// of its target's standard deviation.
    pub fn fold_difference(&self, pre: &Preprocess, standardized: &[f32], released: &[f32]) -> f32 {
        let a = predict_outputs(&self.trained, standardized, self.width, &self.device);
        let mut b = released.to_vec();
        if let (TaskSpec::Regression, Some(t)) = (&self.task, &pre.target) {
            b.iter_mut()
                .for_each(|z| *z = ((f64::from(*z) - t.mean) / t.std) as f32);
        }
        if a.len() != b.len() {
            return f32::INFINITY;
        }
        a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(
                0.0f32,
                |m, d| if d.is_nan() { f32::INFINITY } else { m.max(d) },
            )
    }

    /// The released model's per-row loss from its outputs `out` (as
    /// [`Self::released_outputs`] computed them) against labels `y`: binary or categorical
    /// cross-entropy, or squared error (what a membership attacker scores).
    pub fn losses(&self, out: &[f32], y: &[f32]) -> Vec<f64> {
        airlock_model::row_losses(&self.task, out, y)
    }
}

/// The released model's outputs on some rows of the training data, by row.
#[derive(Debug, Clone)]
pub struct RowOutputs {
    per_row: usize,
    /// Each data row's place among the computed rows (`usize::MAX`: not computed).
    position: Vec<usize>,
    values: Vec<f32>,
}

impl RowOutputs {
    /// The outputs of `rows`, one after another; `None` if any was not computed.
    pub fn gather(&self, rows: impl IntoIterator<Item = usize>) -> Option<Vec<f32>> {
        let mut out = Vec::new();
        for r in rows {
            let p = *self.position.get(r).filter(|&&p| p != usize::MAX)?;
            out.extend_from_slice(self.values.get(p * self.per_row..(p + 1) * self.per_row)?);
        }
        Some(out)
    }
}
