//! A signed release bundle and its trust policy, built in a temporary folder without
//! training: what `airlock package` writes for a small MLP with seeded initial weights.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use airlock_model::{GroupColumn, GroupValues, MlpParams, SubgroupInput};
use airlock_safetensors::{OwnedTensor, write_canonical};
use airlock_schemas::{
    APPROVAL_PREDICATE_TYPE, ApprovalPredicate, Architecture, BUNDLE_FORMAT_VERSION,
    BandedSubgroup, BinaryCardMetrics, CardConfiguration, CardDataFile, CardMetrics, CardSource,
    Decision, EpochMetrics, Evaluation, EvaluationSpec, Finding, Hyperparameters,
    IN_TOTO_PAYLOAD_TYPE, InputFeature, LEAK_LAYERS, LeakLayer, LeakReport, MlpSpec, ModelCard,
    ModelOutput, ModelSpec, OptimizerKind, OptimizerSpec, RELEASE_PREDICATE_TYPE, ReleasePredicate,
    ReportInput, RocPoint, SLSA_PROVENANCE_TYPE, STATEMENT_TYPE, Statement, SubgroupSpec, Subject,
    TensorSpec, TrainingSummary, Verdict,
};
use airlock_trust::approvals::{ApprovalError, DecisionRequest, decide};
use airlock_trust::bundle::{
    APPROVALS_DIR, LEAK_REPORT_FILE, MODEL_CARD_FILE, MODEL_FILE, MODEL_METADATA,
    PROVENANCE_DSSE_FILE, SHARD_SIZE, STATEMENT_DSSE_FILE, STATEMENT_FILE,
};
use airlock_trust::keys::{GeneratedKey, Signer, drop_group_other_write, generate};
use airlock_trust::shards::{sha256_hex, whole_and_shard_digests};
use airlock_trust::{
    Admitted, GateOptions, Refusal, Trust, Verification, admit, dsse, pretty, verify_bundle,
};
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The features of the shipped fraud pipeline (`pipelines/fraud-detector.toml`): the
/// default inputs of a kit model.
pub const FRAUD_FEATURES: [&str; 12] = airlock_model::demo::DEMO_FEATURES;

/// The reason officers give in the kit's decisions.
pub const REASON: &str = "reviewed the card and the leak report";

/// The policy's name for the builder key (its files are `keys/builder.*`).
const BUILDER_NAME: &str = "ci";

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Now, to the second (as `airlock approve` dates its decisions).
fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(0).unwrap_or(t)
}

/// What the kit builds: set with the builder methods, then [`KitBuilder::build`].
#[derive(Debug, Clone)]
pub struct KitBuilder {
    seed: u64,
    name: String,
    version: String,
    features: Vec<String>,
    hidden: Vec<usize>,
    officers: Vec<String>,
    approvals_required: u32,
    publisher: bool,
    builder_not_before: Option<String>,
    builder_not_after: Option<String>,
    finished_on: Option<OffsetDateTime>,
    shard_size: u64,
    failing_layer: Option<String>,
}

impl Default for KitBuilder {
    fn default() -> Self {
        Self {
            seed: 42,
            name: "fraud-detector".into(),
            version: "1.0.0".into(),
            features: FRAUD_FEATURES.iter().map(|f| (*f).to_owned()).collect(),
            hidden: vec![64, 32],
            officers: vec!["alice".into()],
            approvals_required: 1,
            publisher: false,
            builder_not_before: None,
            builder_not_after: None,
            finished_on: None,
            shard_size: SHARD_SIZE,
            failing_layer: None,
        }
    }
}

impl KitBuilder {
    /// Seed of the model's weights (ChaCha8, as training draws its initial weights): two
    /// seeds, two different releases of the same model.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Model name and version (default `fraud-detector` `1.0.0`).
    pub fn model(mut self, name: &str, version: &str) -> Self {
        name.clone_into(&mut self.name);
        version.clone_into(&mut self.version);
        self
    }

    /// Input feature names (default [`FRAUD_FEATURES`]).
    pub fn features(mut self, features: &[&str]) -> Self {
        self.features = features.iter().map(|f| (*f).to_owned()).collect();
        self
    }

    /// Hidden layer widths (default `[64, 32]`, as the shipped pipeline).
    pub fn hidden(mut self, hidden: &[usize]) -> Self {
        self.hidden = hidden.to_vec();
        self
    }

    /// Officers of the trust policy, by name; their keys are `keys/<name>.*` (default
    /// `alice`).
    pub fn officers(mut self, names: &[&str]) -> Self {
        self.officers = names.iter().map(|n| (*n).to_owned()).collect();
        self
    }

    /// k: the approvals the policy requires (default 1).
    pub fn approvals_required(mut self, k: u32) -> Self {
        self.approvals_required = k;
        self
    }

    /// Also make a publisher key (`keys/publisher.*`, named `cd` in the policy).
    pub fn publisher(mut self) -> Self {
        self.publisher = true;
        self
    }

    /// The builder key's validity window in the policy (RFC 3339 times).
    pub fn builder_window(mut self, not_before: Option<&str>, not_after: Option<&str>) -> Self {
        self.builder_not_before = not_before.map(str::to_owned);
        self.builder_not_after = not_after.map(str::to_owned);
        self
    }

    /// When the provenance says the build finished (default: now).
    pub fn finished_on(mut self, t: OffsetDateTime) -> Self {
        self.finished_on = Some(t);
        self
    }

    /// Shard size of the statement's model digests (default the packager's; at least 4096
    /// for the bundle to verify).
    pub fn shard_size(mut self, bytes: u64) -> Self {
        self.shard_size = bytes;
        self
    }

    /// Sign a leak report in which `layer` (`L0`..`L4`) failed: a bundle the packager
    /// would never write, whose signatures all hold.
    pub fn failing_layer(mut self, layer: &str) -> Self {
        self.failing_layer = Some(layer.to_owned());
        self
    }

    /// Build in a new temporary folder, removed when the [`Kit`] is dropped.
    pub fn build(self) -> Kit {
        let tmp = tempfile::tempdir().expect("create a temporary folder for the kit");
        let root = tmp.path().to_owned();
        self.build_at(root, Some(tmp))
    }

    /// Build in `dir` (an existing folder, say a test's sandbox): `keys/`, `trust.toml`
    /// and `bundle/` are written there, laid out as the CLI tests expect.
    pub fn build_in(self, dir: &Path) -> Kit {
        self.build_at(dir.to_owned(), None)
    }

    fn build_at(self, root: PathBuf, tmp: Option<tempfile::TempDir>) -> Kit {
        let keys = root.join("keys");
        std::fs::create_dir_all(&keys).expect("create keys/");
        // Trust::load refuses policy and key folders others may write to, whatever the umask.
        for d in [&root, &keys] {
            drop_group_other_write(d).expect("clear group and other write bits");
        }
        let key = |name: &str| generate(&keys.join(name)).expect("generate a key pair");
        let builder = key("builder");
        let officers = self.officers.iter().map(|n| (n.clone(), key(n))).collect();
        let publisher = self.publisher.then(|| key("publisher"));
        let kit = Kit {
            bundle: root.join("bundle"),
            trust_file: root.join("trust.toml"),
            root,
            _tmp: tmp,
            builder,
            officers,
            publisher,
            revoked: Vec::new(),
            approvals_required: self.approvals_required,
            model_sha256: String::new(),
            spec: self,
        };
        kit.write_policy();
        let signer = kit.builder_signer();
        let model_sha256 = write_bundle(&kit.spec, &signer, &kit.bundle);
        Kit {
            model_sha256,
            ..kit
        }
    }
}

/// A signed bundle (`bundle/`), its keys (`keys/`) and trust policy (`trust.toml`) in one
/// folder. See [`Kit::builder`].
#[derive(Debug)]
pub struct Kit {
    root: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    /// The bundle folder.
    pub bundle: PathBuf,
    /// The trust policy file.
    pub trust_file: PathBuf,
    /// The builder's key pair (`keys/builder.*`, `ci` in the policy).
    pub builder: GeneratedKey,
    officers: Vec<(String, GeneratedKey)>,
    publisher: Option<GeneratedKey>,
    revoked: Vec<String>,
    approvals_required: u32,
    model_sha256: String,
    spec: KitBuilder,
}

impl Kit {
    /// What to build; the defaults: the fraud detector's inputs, a 12-64-32-1 MLP, one
    /// officer (`alice`), 1 of 1.
    pub fn builder() -> KitBuilder {
        KitBuilder::default()
    }

    /// The folder holding everything.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `rel` under [`Kit::root`].
    pub fn join(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// The trust policy, loaded afresh (after [`Kit::revoke`], say).
    pub fn trust(&self) -> Trust {
        Trust::load(&self.trust_file).expect("the kit's trust policy loads")
    }

    /// SHA-256 of the bundle's model, as signed.
    pub fn model_sha256(&self) -> &str {
        &self.model_sha256
    }

    /// The key pair called `name`: `builder`, `publisher`, or an officer's name.
    pub fn key(&self, name: &str) -> &GeneratedKey {
        match name {
            "builder" => &self.builder,
            "publisher" => self
                .publisher
                .as_ref()
                .expect("the kit has no publisher key"),
            _ => self
                .officers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, k)| k)
                .unwrap_or_else(|| panic!("the kit has no key called {name:?}")),
        }
    }

    /// The key id of [`Kit::key`].
    pub fn key_id(&self, name: &str) -> String {
        self.key(name).key_id.clone()
    }

    /// The builder's signer.
    pub fn builder_signer(&self) -> Signer {
        Signer::load(&self.builder.private_key).expect("load the builder key")
    }

    /// Where `name`'s decision on the bundle is (or would be) written.
    pub fn decision_file(&self, name: &str) -> PathBuf {
        self.bundle
            .join(APPROVALS_DIR)
            .join(format!("{}.dsse.json", self.key_id(name)))
    }

    /// Record `name`'s decision on the bundle with `airlock_trust::approvals::decide` (what
    /// `airlock approve` / `reject` run), `expires` as `--expires` takes it.
    pub fn decide(
        &self,
        name: &str,
        decision: Decision,
        expires: Option<&str>,
    ) -> Result<PathBuf, ApprovalError> {
        decide(
            &DecisionRequest {
                bundle: self.bundle.clone(),
                key: self.key(name).private_key.clone(),
                name: name.to_owned(),
                reason: REASON.into(),
                decision,
                expires: expires.map(str::to_owned),
            },
            &self.trust(),
            2,
        )
    }

    /// `name` approves the bundle.
    pub fn approve(&self, name: &str) -> PathBuf {
        self.decide(name, Decision::Approve, None)
            .unwrap_or_else(|e| panic!("{name} approves: {e}"))
    }

    /// `name` rejects the bundle.
    pub fn reject(&self, name: &str) -> PathBuf {
        self.decide(name, Decision::Reject, None)
            .unwrap_or_else(|e| panic!("{name} rejects: {e}"))
    }

    /// Make a key pair `keys/<name>.*` that the policy does not list.
    pub fn stranger(&self, name: &str) -> GeneratedKey {
        generate(&self.join("keys").join(name)).expect("generate a key pair")
    }

    /// Write, bypassing every check `decide` makes, a decision on the bundle signed by the
    /// private key at `key` (any key: a stranger's, the builder's, a revoked officer's),
    /// made at `at` and expiring at `expires`. The statement is the one `decide` signs.
    pub fn forge_decision(
        &self,
        key: &Path,
        decision: Decision,
        at: OffsetDateTime,
        expires: Option<OffsetDateTime>,
    ) -> PathBuf {
        let signer = Signer::load(key).expect("load the signing key");
        let statement_bytes =
            std::fs::read(self.bundle.join(STATEMENT_FILE)).expect("read statement.json");
        let digest = |name: &str, sha: String| Subject {
            name: name.into(),
            digest: [("sha256".to_owned(), sha)].into_iter().collect(),
        };
        let statement = Statement {
            type_: STATEMENT_TYPE.into(),
            subject: vec![
                digest(STATEMENT_FILE, sha256_hex(&statement_bytes)),
                digest(MODEL_FILE, self.model_sha256.clone()),
            ],
            predicate_type: APPROVAL_PREDICATE_TYPE.into(),
            predicate: ApprovalPredicate {
                decision,
                officer: "forger".into(),
                reason: REASON.into(),
                time: rfc3339(at),
                expires: expires.map(rfc3339),
                model_name: self.spec.name.clone(),
                model_version: self.spec.version.clone(),
            },
        };
        let env = dsse::sign(IN_TOTO_PAYLOAD_TYPE, &pretty(&statement), &signer);
        let dir = self.bundle.join(APPROVALS_DIR);
        std::fs::create_dir_all(&dir).expect("create approvals/");
        let path = dir.join(format!("{}.dsse.json", signer.key_id()));
        std::fs::write(&path, pretty(&env)).expect("write the decision");
        path
    }

    /// Flip the lowest bit of byte `offset` of the bundle file `name` (the last byte when
    /// `None`).
    pub fn flip_byte(&self, name: &str, offset: Option<usize>) {
        let path = self.bundle.join(name);
        let mut bytes = std::fs::read(&path).expect("read the file to tamper with");
        let i = offset.unwrap_or(bytes.len().saturating_sub(1));
        let b = bytes.get_mut(i).expect("offset inside the file");
        *b ^= 1;
        std::fs::write(&path, bytes).expect("write the tampered file");
    }

    /// Write `bytes` at `rel` inside the bundle (an extra file, or a replaced one).
    pub fn write_file(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let path = self.bundle.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create the folder");
        }
        std::fs::write(&path, bytes).expect("write the file");
        path
    }

    /// Revoke `name`'s key in the trust policy (rewritten on disk).
    pub fn revoke(&mut self, name: &str) {
        self.revoked.push(self.key_id(name));
        self.write_policy();
    }

    /// Set k in the trust policy (rewritten on disk).
    pub fn set_approvals_required(&mut self, k: u32) {
        self.approvals_required = k;
        self.write_policy();
    }

    /// `verify_bundle` of the bundle (keeping the model, full digest) against the policy.
    pub fn verify(&self) -> Verification {
        verify_bundle(&self.bundle, &self.trust(), 2, true)
    }

    /// The gate on the bundle, against the policy, with `opts`.
    pub fn admit(&self, opts: &GateOptions) -> Result<Admitted, Refusal> {
        admit(&self.bundle, &self.trust(), opts)
    }

    /// Another release of the same model (weights drawn with `seed`), signed by the same
    /// builder, at `rel` under the root; its SHA-256 of the model.
    pub fn another_release(&self, seed: u64, rel: &str) -> String {
        let spec = KitBuilder {
            seed,
            ..self.spec.clone()
        };
        write_bundle(&spec, &self.builder_signer(), &self.join(rel))
    }

    /// The trust policy as the kit writes it: k, revocations, then one `[[keys]]` table
    /// per key (builder `ci`, the officers, publisher `cd`), each after a blank line.
    fn policy_text(&self) -> String {
        let mut p = format!("approvals_required = {}\n", self.approvals_required);
        if !self.revoked.is_empty() {
            p.push_str(&format!("revoked = {:?}\n", self.revoked));
        }
        let mut table = |name: &str, role: &str, file: &str, window: [&Option<String>; 2]| {
            p.push_str(&format!(
                "\n[[keys]]\nname = \"{name}\"\nrole = \"{role}\"\npublic_key = \"keys/{file}.pub\"\n"
            ));
            for (k, v) in ["not_before", "not_after"].iter().zip(window) {
                if let Some(v) = v {
                    p.push_str(&format!("{k} = \"{v}\"\n"));
                }
            }
        };
        let spec = &self.spec;
        table(
            BUILDER_NAME,
            "builder",
            "builder",
            [&spec.builder_not_before, &spec.builder_not_after],
        );
        for (name, _) in &self.officers {
            table(name, "officer", name, [&None, &None]);
        }
        if self.publisher.is_some() {
            table("cd", "publisher", "publisher", [&None, &None]);
        }
        p
    }

    fn write_policy(&self) {
        std::fs::write(&self.trust_file, self.policy_text()).expect("write trust.toml");
        drop_group_other_write(&self.trust_file).expect("clear group and other write bits");
    }
}

/// The model's tensors as the packager writes them: `layers.<i>.weight` `[out, in]` and
/// `layers.<i>.bias` `[out]`, F32 little-endian, in layer order.
fn card(spec: &KitBuilder, model: &[OwnedTensor]) -> ModelCard {
    let mut widths = vec![spec.features.len()];
    widths.extend(&spec.hidden);
    widths.push(1);
    let epochs = (1..=3)
        .map(|e| {
            let f = e as f64;
            EpochMetrics {
                epoch: e,
                train_loss: 0.6 / f,
                train_accuracy: Some(0.8 + 0.03 * f),
                validation_loss: 0.62 / f,
                validation_accuracy: Some(0.79 + 0.03 * f),
                seconds: 0.5,
            }
        })
        .collect();
    ModelCard {
        schema_version: BUNDLE_FORMAT_VERSION,
        name: spec.name.clone(),
        version: spec.version.clone(),
        intended_use: Some("Test kit model: seeded initial weights, never trained.".into()),
        onprem_only: false,
        architecture: Architecture {
            kind: "mlp".into(),
            cnn: None,
            layer_widths: widths,
            activation: "relu".into(),
            tensors: model
                .iter()
                .map(|t| TensorSpec {
                    name: t.name.clone(),
                    dtype: "F32".into(),
                    shape: t.shape.clone(),
                })
                .collect(),
        },
        inputs: spec
            .features
            .iter()
            .map(|f| InputFeature {
                name: f.clone(),
                dtype: "float32".into(),
            })
            .collect(),
        output: ModelOutput {
            label: "fraud".into(),
            classes: vec!["0".into(), "1".into()],
            transform: "sigmoid".into(),
        },
        metrics: CardMetrics::Binary(BinaryCardMetrics {
            roc_auc: 0.9,
            accuracy: 0.9,
            loss: 0.3,
            holdout_rows: 300,
            positive_rate: 0.05,
        }),
        training: TrainingSummary {
            epochs,
            roc_curve: [(0.0, 0.0), (0.1, 0.7), (0.3, 0.9), (1.0, 1.0)]
                .into_iter()
                .map(|(fpr, tpr)| RocPoint { fpr, tpr })
                .collect(),
            split_rows: [1400, 300, 300],
        },
        configuration: Some(configuration(spec)),
        evaluation: Some(evaluation(spec)),
    }
}

/// The training configuration a packaged card records, for the kit's model.
fn configuration(spec: &KitBuilder) -> CardConfiguration {
    CardConfiguration {
        hyperparameters: Hyperparameters {
            task: Default::default(),
            model: ModelSpec::Mlp(MlpSpec {
                hidden: spec.hidden.clone(),
                dropout: 0.0,
            }),
            features: spec.features.clone(),
            label: "fraud".into(),
            optimizer: OptimizerSpec {
                kind: OptimizerKind::Adam,
                learning_rate: 0.003,
                weight_decay: 0.0,
            },
            epochs: 3,
            batch_size: 64,
        },
        seed: spec.seed,
        split_fractions: [0.7, 0.15, 0.15],
        data: vec![CardDataFile {
            name: "transactions.csv".into(),
            sha256: sha256_hex(b"test kit: no data"),
            rows: 2000,
        }],
        source: CardSource {
            git_commit: None,
            git_dirty: None,
            uncommitted_allowed: true,
        },
    }
}

/// A holdout evaluation computed by the trainer's own code on 300 synthetic holdout rows
/// (scores that separate the classes imperfectly), with an age-band and a categorical
/// subgroup, as the shipped pipeline declares.
fn evaluation(spec: &KitBuilder) -> Evaluation {
    let n = 300;
    let labels: Vec<f32> = (0..n).map(|i| f32::from(i % 20 == 0)).collect();
    let probs: Vec<f64> = (0..n)
        .map(|i| {
            let base = if labels[i] > 0.5 { 0.7 } else { 0.2 };
            base + 0.25 * (((i * 37) % 100) as f64 / 100.0 - 0.5)
        })
        .collect();
    let rows: Vec<usize> = (0..n).collect();
    let age = GroupColumn {
        name: "age".into(),
        values: GroupValues::Numeric((0..n).map(|i| 20.0 + (i * 7 % 60) as f64).collect()),
    };
    let foreign = GroupColumn {
        name: "is_foreign".into(),
        values: GroupValues::Categorical {
            values: vec!["0".into(), "1".into()],
            ids: (0..n).map(|i| u32::from(i % 3 == 0)).collect(),
        },
    };
    let age_spec = SubgroupSpec::Banded(BandedSubgroup {
        column: "age".into(),
        bands: vec![30.0, 45.0, 60.0],
    });
    let foreign_spec = SubgroupSpec::Column("is_foreign".into());
    let subgroups = [
        SubgroupInput {
            spec: &age_spec,
            column: &age,
        },
        SubgroupInput {
            spec: &foreign_spec,
            column: &foreign,
        },
    ];
    let eval_spec = EvaluationSpec {
        bootstrap_resamples: 200,
        ..EvaluationSpec::default()
    };
    airlock_model::evaluate(&probs, &labels, &rows, &subgroups, &eval_spec, spec.seed)
        .unwrap_or_else(|e| panic!("the kit's evaluation: {e}"))
}

fn leak_report(spec: &KitBuilder, model: &[u8], card: &[u8]) -> LeakReport {
    let layers: Vec<LeakLayer> = LEAK_LAYERS
        .into_iter()
        .map(|(id, name)| {
            let failed = spec.failing_layer.as_deref() == Some(id);
            LeakLayer {
                id: id.into(),
                name: name.into(),
                verdict: if failed { Verdict::Fail } else { Verdict::Pass },
                parameters: BTreeMap::new(),
                counts: [("findings".to_owned(), json!(u64::from(failed)))]
                    .into_iter()
                    .collect(),
                findings: if failed {
                    vec![Finding {
                        kind: "planted-by-the-test-kit".into(),
                        location: format!("{MODEL_FILE} at byte 0"),
                        record: None,
                        column: None,
                    }]
                } else {
                    Vec::new()
                },
                error: None,
            }
        })
        .collect();
    LeakReport {
        schema_version: BUNDLE_FORMAT_VERSION,
        verdict: if spec.failing_layer.is_some() {
            Verdict::Fail
        } else {
            Verdict::Pass
        },
        inputs: vec![
            ReportInput {
                role: "model".into(),
                name: MODEL_FILE.into(),
                sha256: sha256_hex(model),
            },
            ReportInput {
                role: "model-card".into(),
                name: MODEL_CARD_FILE.into(),
                sha256: sha256_hex(card),
            },
        ],
        layers,
    }
}

fn provenance(
    spec: &KitBuilder,
    model_sha: &str,
    builder: &str,
    finished: OffsetDateTime,
) -> Statement<serde_json::Value> {
    Statement {
        type_: STATEMENT_TYPE.into(),
        subject: vec![Subject {
            name: MODEL_FILE.into(),
            digest: [("sha256".to_owned(), model_sha.to_owned())]
                .into_iter()
                .collect(),
        }],
        predicate_type: SLSA_PROVENANCE_TYPE.into(),
        predicate: json!({
            "buildDefinition": {
                "buildType": "https://airlock.dev/build/train-and-package/v1",
                "externalParameters": {
                    "pipeline": {"name": spec.name, "sha256": pipeline_sha(spec)},
                },
                "internalParameters": {
                    "seed": spec.seed,
                    "backend": "testkit",
                    "device": "none",
                    "epochs": 3,
                    "batch_size": 64,
                },
                "resolvedDependencies": [
                    {
                        "name": format!("training-record:{}", airlock_model::RECORD_FILE),
                        "digest": {"sha256": training_record_sha(spec)},
                    },
                ],
            },
            "runDetails": {
                "builder": {"id": format!("https://airlock.dev/builder/key/{builder}"), "version": {"airlock": "testkit"}},
                "metadata": {
                    "startedOn": rfc3339(finished - time::Duration::minutes(1)),
                    "finishedOn": rfc3339(finished),
                },
            },
        }),
    }
}

fn pipeline_sha(spec: &KitBuilder) -> String {
    sha256_hex(format!("testkit pipeline {} {}", spec.name, spec.seed).as_bytes())
}

/// Stands for the SHA-256 of the training record there never was.
fn training_record_sha(spec: &KitBuilder) -> String {
    sha256_hex(format!("testkit training record {}", spec.seed).as_bytes())
}

/// Write the signed bundle `spec` describes at `dir` (created; must not hold a bundle);
/// the model's SHA-256.
fn write_bundle(spec: &KitBuilder, signer: &Signer, dir: &Path) -> String {
    let mut rng = airlock_model::rng(spec.seed, 0);
    let params = MlpParams::init(spec.features.len(), &spec.hidden, &mut rng);
    let tensors = params.release_tensors();
    let meta: BTreeMap<String, String> = MODEL_METADATA
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let model = write_canonical(&tensors, &meta).expect("write the canonical model");
    let card = pretty(&card(spec, &tensors));
    let report = pretty(&leak_report(spec, &model, &card));
    let (model_sha, model_shards) = whole_and_shard_digests(&model, spec.shard_size, 2);
    let subject = |name: &str, sha: String| Subject {
        name: name.into(),
        digest: [("sha256".to_owned(), sha)].into_iter().collect(),
    };
    let statement = pretty(&Statement {
        type_: STATEMENT_TYPE.into(),
        subject: vec![
            subject(MODEL_FILE, model_sha.clone()),
            subject(MODEL_CARD_FILE, sha256_hex(&card)),
            subject(LEAK_REPORT_FILE, sha256_hex(&report)),
        ],
        predicate_type: RELEASE_PREDICATE_TYPE.into(),
        predicate: ReleasePredicate {
            model_name: spec.name.clone(),
            model_version: spec.version.clone(),
            pipeline_sha256: pipeline_sha(spec),
            training_record_sha256: training_record_sha(spec),
            leak_verdict: if spec.failing_layer.is_some() {
                Verdict::Fail
            } else {
                Verdict::Pass
            },
            git_commit: None,
            model_shards,
            privacy: None,
        },
    });
    let finished = spec.finished_on.unwrap_or_else(now);
    let provenance = pretty(&provenance(spec, &model_sha, signer.key_id(), finished));
    let sign = |b: &[u8]| pretty(&dsse::sign(IN_TOTO_PAYLOAD_TYPE, b, signer));
    std::fs::create_dir_all(dir.join(APPROVALS_DIR)).expect("create the bundle folder");
    for (name, bytes) in [
        (STATEMENT_DSSE_FILE, sign(&statement)),
        (STATEMENT_FILE, statement),
        (PROVENANCE_DSSE_FILE, sign(&provenance)),
        (MODEL_CARD_FILE, card),
        (LEAK_REPORT_FILE, report),
        (MODEL_FILE, model),
    ] {
        std::fs::write(dir.join(name), bytes).expect("write a bundle file");
    }
    model_sha
}
