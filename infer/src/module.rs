//! Any described model as a burn module ([`Net`]), and its conversion from and to host
//! tensors. The tensor names and layouts are the description's (PyTorch layouts).

use airlock_model::{Description, Folded, Params, Role, TensorDecl};
use burn::module::{Module, Param, RunningState};
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear, PaddingConfig2d};
use burn::prelude::Backend;
use burn::tensor::activation::relu;
use burn::tensor::module::max_pool2d;
use burn::tensor::{Tensor, TensorData};

/// One convolution block: `Conv2d → [batch norm] → ReLU → [max-pool]`.
#[derive(Module, Debug)]
pub struct ConvLayer<B: Backend> {
    /// The convolution.
    pub conv: Conv2d<B>,
    /// Batch normalization (absent in released models: folded into the convolution).
    pub norm: Option<BatchNorm<B>>,
    /// Max-pool window and stride (1: none).
    pub pool: usize,
}

/// Per-channel input normalization `(x − mean) / std` of a released CNN whose first block
/// pads (where folding would not be exact).
#[derive(Module, Debug)]
pub struct InputNorm<B: Backend> {
    /// `[channels]`.
    pub mean: RunningState<Tensor<B, 1>>,
    /// `[channels]`.
    pub std: RunningState<Tensor<B, 1>>,
}

/// A model of any family: convolution blocks (none for an MLP), flattened, then dense
/// layers with ReLU (and dropout in training) between them.
#[derive(Module, Debug)]
pub struct Net<B: Backend> {
    /// Input normalization (released CNNs with a padded first block only).
    pub input_norm: Option<InputNorm<B>>,
    /// Convolution blocks, input side first.
    pub convs: Vec<ConvLayer<B>>,
    /// Dense layers, the last one to the outputs.
    pub dense: Vec<Linear<B>>,
    /// `[channels, height, width]` of an image input; zeros for feature columns.
    pub image: [usize; 3],
}

fn tensor<B: Backend, const D: usize>(
    values: &[f32],
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), device)
}

/// Flat tensors on the device, by name.
type Made<B> = std::collections::HashMap<String, Tensor<B, 1>>;

/// Where a network's tensors come from: host `params` (copied to the device), else tensors
/// already on the device (`made`, shared).
struct Lookup<'a, B: Backend> {
    params: Option<&'a Params>,
    made: Option<&'a Made<B>>,
}

impl<B: Backend> Lookup<'_, B> {
    fn tensor<const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
        device: &B::Device,
    ) -> Tensor<B, D> {
        if let Some(values) = self.params.and_then(|p| p.get(name)) {
            return tensor(values, shape, device);
        }
        match self.made.and_then(|m| m.get(name)) {
            Some(t) => t.clone().reshape(shape),
            None => panic!("host params lack {name:?} (the description declares it)"),
        }
    }
}

/// The trained and the released network of a fold (see [`Folded`]): the released tensors
/// move into the device's tensors (no copy on the CPU backends), the released network is
/// made of them, and the trained one of `trained_rest` over them, sharing every released
/// tensor folding did not change (for an MLP, every layer but the first): a gigabyte
/// model is held once, not three times.
pub fn to_net_pair<B: Backend>(
    description: &Description,
    folded: Folded,
    device: &B::Device,
) -> (Net<B>, Net<B>) {
    let Folded {
        released,
        trained_rest,
    } = folded;
    let made: Made<B> = released
        .tensors
        .into_iter()
        .map(|(d, v)| {
            let n = v.len();
            (d.name, Tensor::from_data(TensorData::new(v, [n]), device))
        })
        .collect();
    let r = Lookup {
        params: None,
        made: Some(&made),
    };
    let t = Lookup {
        params: Some(&trained_rest),
        made: Some(&made),
    };
    (
        build(description, &t, false, device),
        build(description, &r, true, device),
    )
}

/// Build the burn module for `params`, which hold `description`'s trained tensors
/// (`released = false`) or its released ones (`released = true`), on `device`.
///
/// # Panics
/// When `params` do not hold the declared tensors (callers read them through the
/// description, which checks names and shapes).
pub fn to_net<B: Backend>(
    description: &Description,
    params: &Params,
    released: bool,
    device: &B::Device,
) -> Net<B> {
    let p = Lookup {
        params: Some(params),
        made: None,
    };
    build(description, &p, released, device)
}

fn build<B: Backend>(
    description: &Description,
    p: &Lookup<'_, B>,
    released: bool,
    device: &B::Device,
) -> Net<B> {
    let image = match description.input {
        airlock_model::InputKind::Image(i) => [i.channels, i.height, i.width],
        airlock_model::InputKind::Features(_) => [0, 0, 0],
    };
    let input_norm = (released && description.releases_input_normalization()).then(|| {
        let c = image[0];
        InputNorm {
            mean: RunningState::new(p.tensor("input.mean", [c], device)),
            std: RunningState::new(p.tensor("input.std", [c], device)),
        }
    });
    let mut c_in = image[0];
    let convs = description
        .conv()
        .iter()
        .enumerate()
        .map(|(k, b)| {
            let c_out = b.channels;
            let conv = Conv2d {
                weight: Param::from_tensor(p.tensor(
                    &format!("conv.{k}.weight"),
                    [c_out, c_in, b.kernel, b.kernel],
                    device,
                )),
                bias: Some(Param::from_tensor(p.tensor(
                    &format!("conv.{k}.bias"),
                    [c_out],
                    device,
                ))),
                stride: [b.stride, b.stride],
                kernel_size: [b.kernel, b.kernel],
                dilation: [1, 1],
                groups: 1,
                padding: PaddingConfig2d::Explicit(b.padding, b.padding, b.padding, b.padding),
            };
            let norm = (b.batch_norm && !released).then(|| {
                let get = |part: &str| p.tensor(&format!("conv.{k}.norm.{part}"), [c_out], device);
                BatchNorm {
                    gamma: Param::from_tensor(get("gamma")),
                    beta: Param::from_tensor(get("beta")),
                    running_mean: RunningState::new(get("running_mean")),
                    running_var: RunningState::new(get("running_var")),
                    momentum: 0.1,
                    epsilon: airlock_model::BATCH_NORM_EPSILON,
                }
            });
            c_in = c_out;
            ConvLayer {
                conv,
                norm,
                pool: b.pool.unwrap_or(1).max(1),
            }
        })
        .collect();
    let widths = description.dense_widths();
    let dense = widths
        .windows(2)
        .enumerate()
        .map(|(i, w)| {
            let (d_in, d_out) = (w[0], w[1]);
            // burn stores linear weights as [d_in, d_out].
            let weight = p
                .tensor::<2>(&format!("layers.{i}.weight"), [d_out, d_in], device)
                .transpose();
            Linear {
                weight: Param::from_tensor(weight),
                bias: Some(Param::from_tensor(p.tensor(
                    &format!("layers.{i}.bias"),
                    [d_out],
                    device,
                ))),
            }
        })
        .collect();
    Net {
        input_norm,
        convs,
        dense,
        image,
    }
}

/// A tensor's values on the host, as f32.
pub fn tensor_to_vec<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .unwrap_or_else(|e| panic!("f32 tensor data expected: {e:?}"))
}

impl<B: Backend> Net<B> {
    /// Outputs for a batch.
    ///
    /// - `x`: `[batch, input_len]`: standardized features, or images (channel-major)
    ///   normalized as training saw them (released models: raw features, or pixels in
    ///   [0, 1]).
    /// - `masks`: one dropout mask per hidden dense layer, `[batch, width]`, already scaled
    ///   by `1 / (1 - p)`; `None` in evaluation.
    /// - returns `[batch, outputs]`.
    pub fn forward(&self, x: Tensor<B, 2>, masks: Option<Vec<Tensor<B, 2>>>) -> Tensor<B, 2> {
        let [batch, _] = x.dims();
        let mut h = x;
        if !self.convs.is_empty() {
            let [c, height, width] = self.image;
            let mut img = h.reshape([batch, c, height, width]);
            if let Some(n) = &self.input_norm {
                let mean = n.mean.value().reshape([1, c, 1, 1]);
                let std = n.std.value().reshape([1, c, 1, 1]);
                img = (img - mean) / std;
            }
            for layer in &self.convs {
                img = layer.conv.forward(img);
                if let Some(norm) = &layer.norm {
                    img = batch_norm(norm, img);
                }
                img = relu(img);
                if layer.pool > 1 {
                    let p = layer.pool;
                    img = max_pool2d(img, [p, p], [p, p], [0, 0], [1, 1], false);
                }
            }
            let [b, c, hh, ww] = img.dims();
            h = img.reshape([b, c * hh * ww]);
        }
        let last = self.dense.len() - 1;
        let mut masks = masks.map(Vec::into_iter);
        for (i, layer) in self.dense.iter().enumerate() {
            h = layer.forward(h);
            if i != last {
                h = relu(h);
                if let Some(m) = masks.as_mut().and_then(Iterator::next) {
                    h = h * m;
                }
            }
        }
        h
    }

    /// Copy the trained tensors to the host, as `description` declares them.
    pub fn to_params(&self, description: &Description) -> Params {
        let tensors = description
            .trained()
            .into_iter()
            .map(|d| {
                let v = self.host_tensor(&d);
                (d, v)
            })
            .collect();
        Params { tensors }
    }

    fn host_tensor(&self, d: &TensorDecl) -> Vec<f32> {
        let parts: Vec<&str> = d.name.split('.').collect();
        match parts.as_slice() {
            ["layers", i, part] => {
                let l = &self.dense[parse(i)];
                match *part {
                    "weight" => tensor_to_vec(l.weight.val().transpose()),
                    _ => bias_of(l.bias.as_ref()),
                }
            }
            ["conv", k, part] => {
                let c = &self.convs[parse(k)].conv;
                match *part {
                    "weight" => tensor_to_vec(c.weight.val()),
                    _ => bias_of(c.bias.as_ref()),
                }
            }
            ["conv", k, "norm", part] => {
                let n = self.convs[parse(k)]
                    .norm
                    .as_ref()
                    .unwrap_or_else(|| panic!("block {k} has no batch norm"));
                match *part {
                    "gamma" => tensor_to_vec(n.gamma.val()),
                    "beta" => tensor_to_vec(n.beta.val()),
                    "running_mean" => tensor_to_vec(n.running_mean.value()),
                    _ => tensor_to_vec(n.running_var.value()),
                }
            }
            _ => panic!("no tensor {:?} in the network", d.name),
        }
    }

    /// The parameters (not the aggregates) in declaration order, with their burn ids:
    /// what the optimizer's state is keyed by.
    pub fn param_ids(&self, description: &Description) -> Vec<(String, burn::module::ParamId)> {
        description
            .trained()
            .into_iter()
            .filter(|d| d.role == Role::Parameter)
            .filter_map(|d| {
                let parts: Vec<&str> = d.name.split('.').collect();
                let id = match parts.as_slice() {
                    ["layers", i, "weight"] => self.dense[parse(i)].weight.id,
                    ["layers", i, _] => self.dense[parse(i)].bias.as_ref()?.id,
                    ["conv", k, "weight"] => self.convs[parse(k)].conv.weight.id,
                    ["conv", k, "bias"] => self.convs[parse(k)].conv.bias.as_ref()?.id,
                    ["conv", k, "norm", "gamma"] => self.convs[parse(k)].norm.as_ref()?.gamma.id,
                    ["conv", k, "norm", "beta"] => self.convs[parse(k)].norm.as_ref()?.beta.id,
                    _ => return None,
                };
                Some((d.name, id))
            })
            .collect()
    }
}

/// `norm` applied to `x` `[batch, channels, height, width]`: burn's [`BatchNorm`] in
/// evaluation; in training, the same statistics (biased batch variance, running averages
/// with `norm.momentum`) in a formulation whose full-size operations are all fast on
/// burn-flex.
///
/// burn's own training forward broadcasts `[1, C, 1, 1]` statistics against
/// `[B, C, H, W]` activations, a stride pattern burn-flex walks element by element (and
/// its channel means transpose the activations first): on scan-triage's CNN that was
/// most of a training step. Here the activations are viewed as `[B, C, H·W]` and every
/// per-channel operand is materialized as a contiguous `[B, C, 1]` (a few hundred
/// values), which burn-flex broadcasts with its per-row SIMD kernel, in the forward pass
/// and in the backward pass alike.
pub fn batch_norm<B: Backend>(norm: &BatchNorm<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    if !B::ad_enabled(&x.device()) {
        return norm.forward(x);
    }
    let [batch, channels, height, width] = x.dims();
    let x = x.reshape([batch, channels, height * width]);
    // Per-channel means over batch and pixels: [1, C, 1] (rows of equal length, so the
    // mean of the row means is the mean).
    let channel_mean = |t: Tensor<B, 3>| t.mean_dim(2).mean_dim(0);
    let per_row = |t: Tensor<B, 3>| t.repeat_dim(0, batch);
    let mean = channel_mean(x.clone());
    let centered = x - per_row(mean.clone());
    let var = channel_mean(centered.clone().square());
    update_running(norm, &mean, &var);

    let column = |t: Tensor<B, 1>| t.reshape([1, channels, 1]);
    let scale = column(norm.gamma.val()) / var.add_scalar(norm.epsilon).sqrt();
    let y = centered * per_row(scale) + per_row(column(norm.beta.val()));
    y.reshape([batch, channels, height, width])
}

/// Running averages as burn's [`BatchNorm`] keeps them: `(1 − m)·running + m·batch`,
/// with the biased batch variance.
fn update_running<B: Backend>(norm: &BatchNorm<B>, mean: &Tensor<B, 3>, var: &Tensor<B, 3>) {
    let m = norm.momentum;
    let blend = |running: &RunningState<Tensor<B, 1>>, batch: &Tensor<B, 3>| {
        let [_, channels, _] = batch.dims();
        let batch = batch.clone().detach().mul_scalar(m).reshape([channels]);
        let old = running.value_sync().to_device(&batch.device());
        running.update(old.mul_scalar(1.0 - m).add(batch).detach());
    };
    blend(&norm.running_mean, mean);
    blend(&norm.running_var, var);
}

fn parse(s: &str) -> usize {
    s.parse()
        .unwrap_or_else(|_| panic!("tensor index {s:?} is not a number"))
}

fn bias_of<B: Backend>(b: Option<&Param<Tensor<B, 1>>>) -> Vec<f32> {
    b.map(|b| tensor_to_vec(b.val())).unwrap_or_default()
}
