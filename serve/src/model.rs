//! The served model, built from the very bytes that were verified (`Verification::files`:
//! each bundle file read once): the model card through the strict JSON reader, the model
//! through the strict safetensors reader, into the scorer. A file swapped on disk after
//! verification is never served.

use airlock_model::{Checkpoint, DenseLayer, MlpParams};
use airlock_safetensors::{self as st, Dtype};
use airlock_schemas::ModelCard;

/// What the card says about how to run the model, checked.
#[derive(Debug)]
pub(super) struct CardModel {
    /// The card as signed.
    pub card: ModelCard,
    /// Input feature names, in the order the model takes them.
    pub features: Vec<String>,
    /// Output class names, negative first.
    pub classes: [String; 2],
}

/// Parse the verified card bytes and check that they describe a model `serve` can run
/// exactly as written: an MLP with ReLU between layers and a sigmoid on one logit, whose
/// first width is the number of (distinct) input features.
pub(super) fn card_from_bytes(bytes: &[u8]) -> Result<CardModel, String> {
    let card: ModelCard = airlock_schemas::strict_json::from_slice(bytes)
        .map_err(|e| format!("invalid model card: {e}"))?;
    let a = &card.architecture;
    if a.kind != "mlp" || a.activation != "relu" {
        return Err(format!(
            "the model card describes a {:?} with {:?} activations; serve runs an \"mlp\" with \"relu\"",
            a.kind, a.activation
        ));
    }
    if card.output.transform != "sigmoid" {
        return Err(format!(
            "the model card's output transform is {:?}; serve applies \"sigmoid\"",
            card.output.transform
        ));
    }
    let w = &a.layer_widths;
    if w.len() < 2 || w.contains(&0) || w.last() != Some(&1) {
        return Err(format!(
            "the model card's layer widths {w:?} are not an MLP with one output"
        ));
    }
    let features: Vec<String> = card.inputs.iter().map(|i| i.name.clone()).collect();
    if features.len() != w[0] {
        return Err(format!(
            "the model takes {} inputs but the card lists {} features",
            w[0],
            features.len()
        ));
    }
    if let Some((i, f)) = features
        .iter()
        .enumerate()
        .find(|(i, f)| features[..*i].contains(f))
    {
        return Err(format!(
            "the model card lists feature {f:?} twice (input {i})"
        ));
    }
    let classes = match card.output.classes.as_slice() {
        [a, b] => [a.clone(), b.clone()],
        [] => ["0".to_owned(), "1".to_owned()],
        other => {
            return Err(format!(
                "the model card lists {} output classes; a binary classifier has 2",
                other.len()
            ));
        }
    };
    Ok(CardModel {
        card,
        features,
        classes,
    })
}

/// The MLP parameters in the verified `model.safetensors` bytes, read by the strict
/// reader: the file must hold exactly `layers.{i}.weight` (`F32 [out, in]`) and
/// `layers.{i}.bias` (`F32 [out]`) for the card's `widths`, and nothing else.
pub(super) fn params_from_bytes(bytes: &[u8], widths: &[usize]) -> Result<MlpParams, String> {
    let file = st::parse(bytes).map_err(|e| format!("model.safetensors: {e}"))?;
    let expected = 2 * widths.len().saturating_sub(1);
    if file.tensors.len() != expected {
        return Err(format!(
            "model.safetensors holds {} tensors; an MLP of widths {widths:?} has {expected}",
            file.tensors.len()
        ));
    }
    let get = |name: &str, shape: &[usize]| -> Result<Vec<f32>, String> {
        let t = file
            .tensor(name)
            .ok_or_else(|| format!("model.safetensors: tensor {name:?} is missing"))?;
        if t.dtype != Dtype::F32 || t.shape != shape {
            return Err(format!(
                "model.safetensors: tensor {name:?} is {} {:?}, expected F32 {shape:?}",
                t.dtype.name(),
                t.shape
            ));
        }
        Ok(file
            .data(t)
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    };
    let layers = widths
        .windows(2)
        .enumerate()
        .map(|(i, w)| {
            let (d_in, d_out) = (w[0], w[1]);
            Ok(DenseLayer {
                d_in,
                d_out,
                weight: get(&Checkpoint::param_name(i, "weight"), &[d_out, d_in])?,
                bias: get(&Checkpoint::param_name(i, "bias"), &[d_out])?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(MlpParams { layers })
}

#[cfg(test)]
mod tests {
    use super::*;
    use st::OwnedTensor;

    fn tensor(name: &str, shape: &[usize], dtype: Dtype) -> OwnedTensor {
        let n: usize = shape.iter().product();
        OwnedTensor {
            name: name.into(),
            dtype,
            shape: shape.to_vec(),
            data: (0..n)
                .flat_map(|i| (i as f32 * 0.5).to_le_bytes())
                .take(n * dtype.size())
                .collect(),
        }
    }

    fn file(tensors: Vec<OwnedTensor>) -> Vec<u8> {
        let meta = [("format".to_owned(), "pt".to_owned())]
            .into_iter()
            .collect();
        st::write_canonical(&tensors, &meta).expect("write")
    }

    #[test]
    fn exactly_the_declared_tensors_are_read() {
        let good = vec![
            tensor("layers.0.weight", &[2, 3], Dtype::F32),
            tensor("layers.0.bias", &[2], Dtype::F32),
            tensor("layers.1.weight", &[1, 2], Dtype::F32),
            tensor("layers.1.bias", &[1], Dtype::F32),
        ];
        let p = params_from_bytes(&file(good.clone()), &[3, 2, 1]).expect("params");
        assert_eq!(p.layers.len(), 2);
        assert_eq!(p.layers[0].weight, [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]);
        assert_eq!(p.layers[1].bias, [0.0]);

        let mut extra = good.clone();
        extra.push(tensor("layers.0.weight_hidden", &[2], Dtype::F32));
        let e = params_from_bytes(&file(extra), &[3, 2, 1]).expect_err("extra tensor");
        assert!(e.contains("holds 5 tensors"), "{e}");

        let mut f16 = good.clone();
        f16[1] = tensor("layers.0.bias", &[2], Dtype::F16);
        let e = params_from_bytes(&file(f16), &[3, 2, 1]).expect_err("dtype");
        assert!(
            e.contains("\"layers.0.bias\" is F16 [2], expected F32 [2]"),
            "{e}"
        );

        let e = params_from_bytes(&file(good.clone()), &[2, 3, 1]).expect_err("shape");
        assert!(e.contains("expected F32 [3, 2]"), "{e}");

        // Trailing bytes after the data buffer: the lenient reader took them, the strict
        // one refuses.
        let mut trailing = file(good);
        trailing.extend_from_slice(&[0; 8]);
        let e = params_from_bytes(&trailing, &[3, 2, 1]).expect_err("trailing");
        assert!(e.starts_with("model.safetensors: "), "{e}");
    }
}
