//! Adam, step for step burn's, in place over host memory on the CPU backends.
//!
//! burn's `Adam` builds each step from whole-tensor operations (weight decay, both moment
//! updates, the bias-corrected ratio, `param − delta`), and the ones whose input is still
//! shared allocate a new tensor each: for the largest parameter, four or five tensors of its
//! size are alive at once. Training a 1 GiB model then peaks at six times its parameters.
//! On a backend whose tensors live in host memory (flex, ndarray), [`TrainerAdam`] instead
//! takes the parameter, its gradient and both moments as host buffers (without copying on
//! flex, whose uniquely owned tensors hand over their buffer) and updates them in one pass,
//! element by element, with the same `f32` operations in the same order as burn's: the same
//! weights to the bit (tested against burn's `Adam`). The peak is then the parameters, the
//! gradients and the two moments: four times the parameters. On a GPU backend it is
//! burn's `Adam` (host round trips would cost more than the memory saves).

use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamConfig, AdamState, AdaptiveMomentumState, SimpleOptimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};

/// A backend the trainer trains on, and whether its tensors live in host memory.
pub trait TrainBackend: AutodiffBackend {
    /// Tensors live in host memory: [`TrainerAdam`] steps them in place.
    const HOST_MEMORY: bool;
}

impl TrainBackend for burn::backend::Autodiff<burn::backend::Flex> {
    const HOST_MEMORY: bool = true;
}

impl TrainBackend for burn::backend::Autodiff<burn::backend::NdArray> {
    const HOST_MEMORY: bool = true;
}

#[cfg(feature = "cuda")]
impl TrainBackend for burn::backend::Autodiff<burn::backend::Cuda> {
    const HOST_MEMORY: bool = false;
}

/// Adam's settings, as the trainer configures it (PyTorch's defaults but for the rate).
#[derive(Debug, Clone, Copy)]
pub struct AdamSettings {
    /// Exponential decay of the first moment.
    pub beta_1: f32,
    /// Exponential decay of the second moment.
    pub beta_2: f32,
    /// Added to the second moment's root.
    pub epsilon: f32,
    /// L2 penalty added to the gradient (PyTorch `Adam(weight_decay=...)`), if any.
    pub weight_decay: Option<f32>,
}

impl AdamSettings {
    /// burn's `AdamConfig` with these settings.
    pub fn burn_config(&self) -> AdamConfig {
        AdamConfig::new()
            .with_beta_1(self.beta_1)
            .with_beta_2(self.beta_2)
            .with_epsilon(self.epsilon)
            .with_weight_decay(
                self.weight_decay
                    .map(burn::optim::decay::WeightDecayConfig::new),
            )
    }
}

/// Adam that steps in place on host-memory backends and is burn's `Adam` elsewhere; its
/// state is burn's `AdamState`, so records and moments read the same either way.
#[derive(Clone)]
pub struct TrainerAdam {
    settings: AdamSettings,
    burn: burn::optim::Adam,
    in_place: bool,
}

impl std::fmt::Debug for TrainerAdam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainerAdam")
            .field("settings", &self.settings)
            .field("in_place", &self.in_place)
            .finish_non_exhaustive()
    }
}

impl TrainerAdam {
    /// Adam with `settings`, stepping in place over host buffers when `in_place` (only for
    /// tensors whose backend keeps them in host memory), else burn's `Adam`.
    pub fn new(settings: AdamSettings, in_place: bool) -> Self {
        Self {
            settings,
            burn: settings.burn_config().build(),
            in_place,
        }
    }

    /// The optimizer for backend `B`, in place exactly when `B` keeps tensors in host
    /// memory, as burn's module adaptor.
    pub fn init<B: TrainBackend, M: burn::module::AutodiffModule<B>>(
        settings: AdamSettings,
    ) -> OptimizerAdaptor<Self, M, B> {
        OptimizerAdaptor::from(Self::new(settings, B::HOST_MEMORY))
    }
}

impl<B: Backend> SimpleOptimizer<B> for TrainerAdam {
    type State<const D: usize> = AdamState<B, D>;

    fn step<const D: usize>(
        &self,
        lr: burn::optim::LearningRate,
        tensor: Tensor<B, D>,
        grad: Tensor<B, D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<B, D>, Option<Self::State<D>>) {
        if !self.in_place || tensor.dtype() != burn::tensor::DType::F32 {
            return SimpleOptimizer::<B>::step(&self.burn, lr, tensor, grad, state);
        }
        let device = tensor.device();
        let shape = tensor.shape();
        let n = shape.num_elements();
        let (time, m, v) = match state {
            Some(s) => {
                let s = s.momentum;
                (s.time + 1, s.moment_1.into_data(), s.moment_2.into_data())
            }
            None => {
                let zeros = || TensorData::new(vec![0.0f32; n], shape.clone());
                (1, zeros(), zeros())
            }
        };
        let mut theta = tensor.into_data();
        let g = grad.into_data();
        let (mut m, mut v) = (m, v);
        let slices = (
            theta.as_mut_slice::<f32>(),
            g.as_slice::<f32>(),
            m.as_mut_slice::<f32>(),
            v.as_mut_slice::<f32>(),
        );
        let (Ok(theta_s), Ok(g_s), Ok(m_s), Ok(v_s)) = slices else {
            unreachable!("f32 tensors (checked above) give f32 host buffers");
        };
        adam_step(&self.settings, lr as f32, time, theta_s, g_s, m_s, v_s);
        drop(g);
        let moment = AdaptiveMomentumState::new(
            time,
            Tensor::from_data(m, &device),
            Tensor::from_data(v, &device),
        );
        (
            Tensor::from_data(theta, &device),
            Some(AdamState::new(moment)),
        )
    }

    fn to_device<const D: usize>(
        state: Self::State<D>,
        device: &burn::tensor::Device<B>,
    ) -> Self::State<D> {
        <burn::optim::Adam as SimpleOptimizer<B>>::to_device(state, device)
    }
}

/// One Adam step (step number `time`, from 1) over the parameter `theta`, its gradient and
/// both moments, in place: burn 0.21's `Adam` element by element (its weight decay adds
/// `theta · decay` to the gradient; the update is
/// `m · c / (√v + ε · √(1 − β₂ᵗ))` with `c = √(1 − β₂ᵗ) / (1 − β₁ᵗ)`).
pub fn adam_step(
    s: &AdamSettings,
    lr: f32,
    time: usize,
    theta: &mut [f32],
    grad: &[f32],
    m: &mut [f32],
    v: &mut [f32],
) {
    let t = i32::try_from(time).unwrap_or(i32::MAX);
    let bias_correction2_sqrt = (1.0 - s.beta_2.powi(t)).sqrt();
    let combined_factor = bias_correction2_sqrt / (1.0 - s.beta_1.powi(t));
    let eps = s.epsilon * bias_correction2_sqrt;
    let (f1, f2) = (1.0 - s.beta_1, 1.0 - s.beta_2);
    let decay = s.weight_decay.unwrap_or(0.0);
    let with_decay = s.weight_decay.is_some();
    for (((p, &g), m), v) in theta
        .iter_mut()
        .zip(grad)
        .zip(m.iter_mut())
        .zip(v.iter_mut())
    {
        let g = if with_decay { *p * decay + g } else { g };
        *m = *m * s.beta_1 + g * f1;
        *v = *v * s.beta_2 + (g * g) * f2;
        let delta = (*m * combined_factor) / (v.sqrt() + eps);
        *p -= delta * lr;
    }
}
