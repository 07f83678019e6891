//! What a federation's site checks before an update leaves it: L0 (exactly the declared
//! tensors, finite, no metadata), L1 (PII patterns) and L2 (exact training records)
//! against the site's own data, with the packager's own layers.

use std::collections::BTreeSet;

use airlock_leak::pii::PiiScanner;
use airlock_leak::records::RecordParams;
use airlock_model::{Dataset, Params, Preprocess, Role, TensorDecl};
use airlock_safetensors as st;
use airlock_schemas::{LeakLayer, PipelineSpec, Verdict};

use crate::package::{
    Data, Files, LayerBuilder, check_checkpoint, l0_layer, l1_on_files, l2_on_files,
};

/// The file name of a weights update (in messages and statements).
pub const UPDATE_FILE: &str = "update.safetensors";
/// The file name of a statistics update.
pub const STATISTICS_FILE: &str = "statistics.safetensors";

/// The layers' outcome on one update.
#[derive(Debug, Clone)]
pub struct UpdateCheck {
    /// L0, L1, L2.
    pub layers: Vec<LeakLayer>,
    /// The update's tensors, when L0 could read them.
    pub params: Option<Params>,
}

impl UpdateCheck {
    /// Whether every layer passed.
    pub fn passed(&self) -> bool {
        self.layers.iter().all(|l| l.verdict == Verdict::Pass)
    }

    /// The first finding or error, in words, for a refusal.
    pub fn why(&self) -> Option<String> {
        self.layers
            .iter()
            .find(|l| l.verdict != Verdict::Pass)
            .map(|l| {
                let first = l
                    .error
                    .clone()
                    .or_else(|| {
                        l.findings
                            .first()
                            .map(|f| format!("{} in {}", f.kind, f.location))
                    })
                    .unwrap_or_default();
                format!("{} {} fails: {first}", l.id, l.name)
            })
    }
}

/// The tensors of a statistics update for `pre`: per-input means and standard deviations
/// (and a regression's target mean and deviation).
pub fn statistics_decls(pre: &Preprocess) -> Vec<TensorDecl> {
    let n = pre.features.len();
    let mut d = vec![
        TensorDecl {
            name: "input.mean".into(),
            shape: vec![n],
            role: Role::Aggregate,
        },
        TensorDecl {
            name: "input.std".into(),
            shape: vec![n],
            role: Role::Aggregate,
        },
    ];
    if pre.target.is_some() {
        d.push(TensorDecl {
            name: "target.mean_std".into(),
            shape: vec![2],
            role: Role::Aggregate,
        });
    }
    d
}

/// Check `bytes`, a safetensors file that must hold exactly `decls` (F32, declared shapes,
/// finite, no metadata), against the site's `dataset` standardized by `pre`.
pub fn check_update(
    spec: &PipelineSpec,
    decls: &[TensorDecl],
    dataset: &Dataset,
    pre: &Preprocess,
    bytes: &[u8],
    threads: usize,
) -> UpdateCheck {
    let mut l0 = l0_layer(decls, &[]);
    let file = match st::parse(bytes) {
        Ok(f) => Some(f),
        Err(e) => {
            l0.error(format!("the update: {e}"));
            None
        }
    };
    let params = file.as_ref().and_then(|f| {
        let names: BTreeSet<&str> = decls.iter().map(|d| d.name.as_str()).collect();
        for t in f
            .tensors
            .iter()
            .filter(|t| !names.contains(t.name.as_str()))
        {
            l0.find(
                "unexpected-tensor",
                format!("the update's tensor {:?}", t.name),
                None,
                None,
            );
        }
        for k in f.metadata.keys() {
            l0.find(
                "metadata",
                format!("the update's metadata {k:?}"),
                None,
                None,
            );
        }
        let params = check_checkpoint(f, decls, &mut l0)?;
        for (d, v) in &params.tensors {
            if v.iter().any(|x| !x.is_finite()) {
                l0.find(
                    "non-finite-value",
                    format!("the update's tensor {:?}", d.name),
                    None,
                    None,
                );
            }
        }
        Some(params)
    });
    let data = site_data(spec, dataset, pre);
    let files: Files<'_, '_> = [(file.as_ref(), UPDATE_FILE), (None, "")];
    let none = BTreeSet::new();
    let l1 = l1_on_files(
        &files,
        &none,
        &PiiScanner::new(&spec.leak.mrn_patterns),
        threads,
    );
    let mut l2 = LayerBuilder::new("L2", "exact-records");
    l2_on_files(
        &mut l2,
        &data,
        &files,
        &none,
        RecordParams::default(),
        threads,
    );
    UpdateCheck {
        layers: vec![l0.finish(), l1.finish(), l2.finish()],
        params,
    }
}

/// The site's rows as L2 reads them: raw and standardized inputs, identifier values.
fn site_data(spec: &PipelineSpec, d: &Dataset, pre: &Preprocess) -> Data {
    let rows = d.rows();
    let standardized = match &d.images {
        Some(im) => {
            let plane = im.shape.height * im.shape.width;
            pre.apply_channels(&im.pixels, plane, 0..rows)
        }
        None => pre.apply(&d.table.features, 0..rows),
    };
    Data {
        features: d.raw_inputs(0..rows),
        standardized,
        labels: d.table.labels.clone().unwrap_or_default(),
        numeric_columns: if d.images.is_some() {
            Vec::new()
        } else {
            spec.data.features.clone()
        },
        text_columns: spec.data.identifiers.clone(),
        text_values: d.identifier_values.clone(),
        rows,
        images: d.images.clone(),
        normalization: (
            pre.features.iter().map(|f| f.mean as f32).collect(),
            pre.features.iter().map(|f| f.std as f32).collect(),
        ),
    }
}
