//! The served model, built from the very bytes that were verified (`Verification::files`:
//! each bundle file read once): the model card through the strict JSON reader, the model
//! through the strict safetensors reader, into the scorer. A file swapped on disk after
//! verification is never served.

use airlock_model::Description;
use airlock_schemas::ModelCard;

/// What the card says about how to run the model, checked.
#[derive(Debug)]
pub(super) struct CardModel {
    /// The card as signed.
    pub card: ModelCard,
    /// Input feature names, in the order the model takes them (none for images).
    pub features: Vec<String>,
    /// The released model the card describes.
    pub description: Description,
}

/// Parse the verified card bytes and check that they describe a model `serve` can run
/// exactly as written (see [`Description::from_card`]), whose inputs are distinct
/// features.
pub(super) fn card_from_bytes(bytes: &[u8]) -> Result<CardModel, String> {
    let card: ModelCard = airlock_schemas::strict_json::from_slice(bytes)
        .map_err(|e| format!("invalid model card: {e}"))?;
    let description = Description::from_card(&card)?;
    let features: Vec<String> = card.inputs.iter().map(|i| i.name.clone()).collect();
    if let Some((i, f)) = features
        .iter()
        .enumerate()
        .find(|(i, f)| features[..*i].contains(f))
    {
        return Err(format!(
            "the model card lists feature {f:?} twice (input {i})"
        ));
    }
    Ok(CardModel {
        card,
        features,
        description,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_safetensors::{self as st, Dtype, OwnedTensor};
    use airlock_schemas::{MlpSpec, ModelSpec, TaskSpec};

    fn params_from_bytes(bytes: &[u8], widths: &[usize]) -> Result<airlock_model::Params, String> {
        let model = ModelSpec::Mlp(MlpSpec {
            hidden: widths[1..widths.len() - 1].to_vec(),
            dropout: 0.0,
        });
        Description::new(&model, &TaskSpec::Binary, widths[0])?.read_released(bytes)
    }

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
        assert_eq!(p.tensors.len(), 4);
        assert_eq!(
            p.get("layers.0.weight").expect("w"),
            [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
        );
        assert_eq!(p.get("layers.1.bias").expect("b"), [0.0]);

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
