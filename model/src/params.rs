//! An MLP classifier's parameters in a backend-independent host form, and a reference
//! forward pass on the host.

use airlock_safetensors::{Dtype, OwnedTensor};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// One dense layer on the host, PyTorch layout: `weight` is `[d_out, d_in]` row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseLayer {
    /// Inputs.
    pub d_in: usize,
    /// Outputs.
    pub d_out: usize,
    /// `d_out × d_in`, row-major.
    pub weight: Vec<f32>,
    /// `d_out`.
    pub bias: Vec<f32>,
}

/// All parameters of an MLP on the host, layers input side first.
#[derive(Debug, Clone, PartialEq)]
pub struct MlpParams {
    /// The layers; the last has one output.
    pub layers: Vec<DenseLayer>,
}

impl MlpParams {
    /// Initial weights drawn from `rng` (PyTorch's default for linear layers:
    /// `U(-1/√fan_in, 1/√fan_in)` for weights and biases). Drawing them here rather than
    /// from the backend's global generator makes a run depend on its seed alone.
    pub fn init(d_input: usize, hidden: &[usize], rng: &mut ChaCha8Rng) -> Self {
        let mut dims = vec![d_input];
        dims.extend_from_slice(hidden);
        dims.push(1);
        let layers = dims
            .windows(2)
            .map(|w| {
                let (d_in, d_out) = (w[0], w[1]);
                let k = 1.0 / (d_in as f32).sqrt();
                DenseLayer {
                    d_in,
                    d_out,
                    weight: (0..d_in * d_out).map(|_| rng.random_range(-k..k)).collect(),
                    bias: (0..d_out).map(|_| rng.random_range(-k..k)).collect(),
                }
            })
            .collect();
        Self { layers }
    }

    /// The tensors of a released `model.safetensors`: each layer's `layers.{i}.weight`
    /// (`[d_out, d_in]`) and `layers.{i}.bias` (`[d_out]`), F32 little-endian: the layout
    /// the packager writes and verification and serving expect.
    pub fn release_tensors(&self) -> Vec<OwnedTensor> {
        let le = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(i, l)| {
                [
                    OwnedTensor {
                        name: format!("layers.{i}.weight"),
                        dtype: Dtype::F32,
                        shape: vec![l.d_out, l.d_in],
                        data: le(&l.weight),
                    },
                    OwnedTensor {
                        name: format!("layers.{i}.bias"),
                        dtype: Dtype::F32,
                        shape: vec![l.d_out],
                        data: le(&l.bias),
                    },
                ]
            })
            .collect()
    }

    /// Input width.
    pub fn d_input(&self) -> usize {
        self.layers.first().map_or(0, |l| l.d_in)
    }

    /// Logits for row-major `x` (`rows × d_input`), in f64 on the host. Slow but
    /// independent of any backend: a reference to check other paths against.
    ///
    /// Rows go through in blocks, so each weight row is read once per block rather than
    /// once per row (a 200 MB model is otherwise re-streamed from memory for every row),
    /// and each layer's outputs are split across the machine's cores.
    pub fn forward_host(&self, x: &[f32]) -> Vec<f32> {
        const BLOCK: usize = 32;
        let d = self.d_input();
        if d == 0 {
            return Vec::new();
        }
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let last = self.layers.len().saturating_sub(1);
        let mut logits = Vec::with_capacity(x.len() / d);
        for block in x.chunks(BLOCK * d) {
            let rows = block.len() / d;
            let mut h: Vec<f64> = block.iter().map(|&v| f64::from(v)).collect();
            let mut width = d;
            for (li, l) in self.layers.iter().enumerate() {
                let d_out = l.bias.len();
                // out is row-major rows × d_out; threads take disjoint ranges of outputs.
                let mut out_t = vec![0.0f64; d_out * rows];
                let per = d_out.div_ceil(threads.min(d_out).max(1));
                let h_ref = &h;
                std::thread::scope(|scope| {
                    for (t, chunk) in out_t.chunks_mut(per * rows).enumerate() {
                        scope.spawn(move || {
                            // chunk is output-major: (o - o0) * rows + r.
                            for (k, acc) in chunk.chunks_mut(rows).enumerate() {
                                let o = t * per + k;
                                let w = &l.weight[o * l.d_in..(o + 1) * l.d_in];
                                let b = f64::from(l.bias[o]);
                                for (r, a) in acc.iter_mut().enumerate() {
                                    *a = b + dot(w, &h_ref[r * width..(r + 1) * width]);
                                }
                            }
                        });
                    }
                });
                let mut next = vec![0.0f64; rows * d_out];
                for o in 0..d_out {
                    for r in 0..rows {
                        let v = out_t[o * rows + r];
                        next[r * d_out + o] = if li != last { v.max(0.0) } else { v };
                    }
                }
                h = next;
                width = d_out;
            }
            logits.extend((0..rows).map(|r| h[r * width] as f32));
        }
        logits
    }
}

/// f64 dot product of f32 weights and f64 activations, in four lanes (vectorizable; the
/// order of additions is fixed, so results are reproducible).
fn dot(w: &[f32], x: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let (wc, wr) = w.split_at(w.len() - w.len() % 4);
    let (xc, xr) = x.split_at(wc.len());
    for (w4, x4) in wc.chunks_exact(4).zip(xc.chunks_exact(4)) {
        for i in 0..4 {
            acc[i] += f64::from(w4[i]) * x4[i];
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (&w, &x) in wr.iter().zip(xr) {
        s += f64::from(w) * x;
    }
    s
}

impl MlpParams {
    /// The dense layers `layers.{i}.weight` / `layers.{i}.bias` of described tensors (an
    /// MLP's), for the host reference forward pass; `None` when there are none.
    pub fn from_dense(params: &crate::Params) -> Option<Self> {
        let mut layers = Vec::new();
        for i in 0.. {
            let Some((d, weight)) = params
                .tensors
                .iter()
                .find(|(d, _)| d.name == format!("layers.{i}.weight"))
            else {
                break;
            };
            let bias = params.get(&format!("layers.{i}.bias"))?.to_vec();
            layers.push(DenseLayer {
                d_in: d.shape[1],
                d_out: d.shape[0],
                weight: weight.clone(),
                bias,
            });
        }
        (!layers.is_empty()).then_some(Self { layers })
    }
}
