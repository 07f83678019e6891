//! The MLP classifier as a burn module, and its conversion from and to host parameters.

use airlock_model::{DenseLayer, MlpParams};
use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::prelude::Backend;
use burn::tensor::activation::relu;
use burn::tensor::{Tensor, TensorData};

/// Multi-layer perceptron: `Linear → ReLU → dropout` per hidden layer, then a linear
/// layer to one logit.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// Hidden layers, input side first, then the output layer (one unit).
    pub layers: Vec<Linear<B>>,
}

/// Build the burn module for `params` on `device`.
pub fn to_module<B: Backend>(params: &MlpParams, device: &B::Device) -> Mlp<B> {
    Mlp {
        layers: params
            .layers
            .iter()
            .map(|l| {
                // burn stores linear weights as [d_in, d_out].
                let w = Tensor::<B, 2>::from_data(
                    TensorData::new(l.weight.clone(), [l.d_out, l.d_in]),
                    device,
                )
                .transpose();
                let b =
                    Tensor::<B, 1>::from_data(TensorData::new(l.bias.clone(), [l.d_out]), device);
                Linear {
                    weight: Param::from_tensor(w),
                    bias: Some(Param::from_tensor(b)),
                }
            })
            .collect(),
    }
}

/// Read a `[d_in, d_out]` burn weight into PyTorch's row-major `[d_out, d_in]`.
pub fn weight_to_host<B: Backend>(w: Tensor<B, 2>) -> Vec<f32> {
    tensor_to_vec(w.transpose())
}

/// A tensor's values on the host, as f32.
pub fn tensor_to_vec<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .unwrap_or_else(|e| panic!("f32 tensor data expected: {e:?}"))
}

impl<B: Backend> Mlp<B> {
    /// Logits for a batch.
    ///
    /// - `x`: `[batch, d_input]`, standardized features.
    /// - `masks`: one dropout mask per hidden layer, `[batch, width]`, already scaled by
    ///   `1 / (1 - p)`; `None` in evaluation.
    /// - returns `[batch]`.
    pub fn forward(&self, x: Tensor<B, 2>, masks: Option<Vec<Tensor<B, 2>>>) -> Tensor<B, 1> {
        let last = self.layers.len() - 1;
        let mut masks = masks.map(Vec::into_iter);
        let mut h = x;
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward(h);
            if i != last {
                h = relu(h);
                if let Some(m) = masks.as_mut().and_then(Iterator::next) {
                    h = h * m;
                }
            }
        }
        let [batch, _] = h.dims();
        h.reshape([batch])
    }

    /// Copy the parameters to the host.
    pub fn to_params(&self) -> MlpParams {
        MlpParams {
            layers: self
                .layers
                .iter()
                .map(|l| {
                    let [d_in, d_out] = l.weight.val().dims();
                    DenseLayer {
                        d_in,
                        d_out,
                        weight: weight_to_host(l.weight.val()),
                        bias: l
                            .bias
                            .as_ref()
                            .map_or_else(|| vec![0.0; d_out], |b| tensor_to_vec(b.val())),
                    }
                })
                .collect(),
        }
    }
}
