//! The checked-in JSON Schemas must match the Rust types.

use std::path::PathBuf;

#[test]
fn checked_in_json_schemas_are_current() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("json");
    let update = std::env::var_os("AIRLOCK_UPDATE_SCHEMAS").is_some();
    let mut stale = Vec::new();
    for (stem, schema) in airlock_schemas::json_schemas() {
        let path = dir.join(format!("{stem}.schema.json"));
        let want = serde_json::to_string_pretty(&schema).expect("schema serializes") + "\n";
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        if have != want {
            if update {
                std::fs::write(&path, &want).expect("write schema");
            } else {
                stale.push(path.display().to_string());
            }
        }
    }
    assert!(
        stale.is_empty(),
        "stale JSON Schemas (run `make schemas` and commit the result): {stale:?}"
    );
}

#[test]
fn pipeline_rejects_unknown_keys() {
    let text = include_str!("../../pipelines/fraud-detector.toml")
        .replace("[training]", "[training]\nlearning_rat = 0.1");
    let err = airlock_schemas::PipelineSpec::from_toml_str(&text, "p.toml".as_ref())
        .expect_err("unknown key must be refused");
    let msg = err.to_string();
    assert!(msg.contains("learning_rat"), "{msg}");
}

#[test]
fn shipped_pipeline_is_valid() {
    let text = include_str!("../../pipelines/fraud-detector.toml");
    airlock_schemas::PipelineSpec::from_toml_str(text, "p.toml".as_ref()).expect("valid");
}

/// Issue 12 item 3/4: the model name and version are signed and name registry paths, so a
/// pipeline whose name or version does not match its grammar is refused when it is loaded.
#[test]
fn pipeline_with_a_bad_name_or_version_is_refused_at_load() {
    let shipped = include_str!("../../pipelines/fraud-detector.toml");
    let load = |from: &str, to: &str| {
        assert!(shipped.contains(from), "{from}");
        airlock_schemas::PipelineSpec::from_toml_str(
            &shipped.replacen(from, to, 1),
            "p.toml".as_ref(),
        )
    };
    for (from, to, field) in [
        (
            "version = \"1.0.0\"",
            "version = \"v1.0.0\"",
            "release.version",
        ),
        (
            "version = \"1.0.0\"",
            "version = \"1.0\"",
            "release.version",
        ),
        (
            "version = \"1.0.0\"",
            "version = \"1.0.0/../../x\"",
            "release.version",
        ),
        (
            "version = \"1.0.0\"",
            "version = \"01.0.0\"",
            "release.version",
        ),
        (
            "version = \"1.0.0\"",
            "version = \"123-45-6789\"",
            "release.version",
        ),
        (
            "name = \"fraud-detector\"",
            "name = \"../fraud\"",
            "release.name",
        ),
        (
            "name = \"fraud-detector\"",
            "name = \"-fraud\"",
            "release.name",
        ),
        (
            "name = \"fraud-detector\"",
            "name = \"fraud_detector\"",
            "release.name",
        ),
        (
            "name = \"fraud-detector\"",
            &format!("name = \"{}\"", "a".repeat(65)),
            "release.name",
        ),
        (
            "device = \"cpu\"",
            "device = \"cpu john@example.com\"",
            "training.device",
        ),
        (
            "intended_use = \"Score",
            "intended_use = \"line\\nbreak. Score",
            "release.intended_use",
        ),
        ("label = \"fraud\"", "label = \"fraud label\"", "data.label"),
    ] {
        let err = load(from, to).expect_err(to).to_string();
        assert!(err.contains(field), "{to}: {err}");
    }
    // The v prefix gets a pointed message.
    let err = load("version = \"1.0.0\"", "version = \"v1.0.0\"")
        .expect_err("v")
        .to_string();
    assert!(err.contains("drop the 'v' prefix"), "{err}");
    // SemVer pre-releases and build metadata are fine.
    for v in [
        "1.0.0-rc.1",
        "2.3.4+build.7",
        "0.1.0-alpha.1+exp.sha.5114f85",
    ] {
        load("version = \"1.0.0\"", &format!("version = \"{v}\"")).expect(v);
    }
}

/// A valid training record of a binary MLP, as JSON.
fn training_record_json() -> serde_json::Value {
    serde_json::json!({
        "schema_version": 1,
        "model_name": "fraud-detector",
        "model_version": "1.0.0",
        "pipeline": {"path": "/srv/p/fraud-detector.toml", "sha256": "ab".repeat(32)},
        "dataset": {"files": [{"path": "/srv/data/transactions.csv", "sha256": "cd".repeat(32),
            "bytes": 10, "rows": 1, "columns": ["amount", "fraud"]}]},
        "splits": {"train": 1, "validation": 1, "holdout": 1},
        "hyperparameters": {"model": {"kind": "mlp", "hidden": [4], "dropout": 0.0},
            "features": ["amount"], "label": "fraud",
            "optimizer": {"kind": "adam", "learning_rate": 0.1, "weight_decay": 0.0},
            "epochs": 1, "batch_size": 1},
        "seed": 1,
        "backend": {"name": "flex", "device": "cpu", "threads": 1},
        "epochs": [{"epoch": 1, "train_loss": 0.5, "train_accuracy": 0.8, "validation_loss": 0.6,
            "validation_accuracy": 0.7, "seconds": 0.1}],
        "holdout": {"loss": 0.1, "accuracy": 0.5, "roc_auc": 0.5, "positive_rate": 0.5,
            "roc_curve": [{"fpr": 0.0, "tpr": 0.0}, {"fpr": 0.5, "tpr": 0.7}, {"fpr": 1.0, "tpr": 1.0}]},
        "train_rows_per_second": 1.0,
        "git_commit": "0123456789abcdef0123456789abcdef01234567",
        "git_dirty": false,
        "airlock_version": "0.1.0",
        "started_at": "2026-11-29T12:00:00Z",
        "finished_at": "2026-11-29T12:00:05Z",
    })
}

/// A tampered training record: every signed field has a grammar.
#[test]
fn training_record_fields_have_grammars() {
    let good = training_record_json();
    let parse = |v: &serde_json::Value| -> airlock_schemas::TrainingRecord {
        serde_json::from_value(v.clone()).expect("record")
    };
    parse(&good).validate().expect("the good record");
    for (pointer, bad) in [
        ("/git_commit", "123-45-6789"),
        ("/git_commit", "jane.doe@example.com"),
        ("/backend/device", "cpu 078-05-1120"),
        ("/backend/name", "flex john"),
        ("/started_at", "2026-11-29T12:00:00Z 078051120"),
        ("/finished_at", "jane.doe@example.com"),
        ("/model_version", "v1.0.0"),
        ("/model_name", "John Smith"),
        ("/airlock_version", "0.1"),
        ("/pipeline/path", "/srv/John Smith.toml"),
        ("/dataset/files/0/path", "/srv/078-05-1120 export.csv"),
        ("/pipeline/sha256", "not a digest"),
    ] {
        let mut v = good.clone();
        *v.pointer_mut(pointer).expect(pointer) = bad.into();
        let err = parse(&v).validate().expect_err(bad);
        let field = pointer.trim_start_matches('/').replace('/', ".");
        let field = field.replace(".0.", "[0].");
        assert!(err.contains(&field), "{pointer}: {err}");
        assert!(!err.contains(bad), "the message echoes the value: {err}");
    }
    // The numbers the card copies are bounded too: they could carry data as well as a string.
    let numeric: Vec<(&str, serde_json::Value, &str)> = vec![
        ("/epochs/0/epoch", 7.into(), "epochs[0].epoch"),
        (
            "/epochs/0/train_accuracy",
            123456789.0.into(),
            "epochs[0].train_accuracy",
        ),
        (
            "/epochs/0/train_loss",
            (-1.0).into(),
            "epochs[0].train_loss",
        ),
        ("/holdout/roc_auc", 1.5.into(), "holdout.roc_auc"),
        (
            "/holdout/roc_curve/1/fpr",
            0.0780511.into(),
            "holdout.roc_curve",
        ),
        (
            "/holdout/roc_curve/1/tpr",
            1.2.into(),
            "holdout.roc_curve[1].tpr",
        ),
        ("/hyperparameters/epochs", 2.into(), "epochs"),
    ];
    for (pointer, bad, field) in numeric {
        let mut v = good.clone();
        *v.pointer_mut(pointer).expect(pointer) = bad;
        if pointer == "/holdout/roc_curve/1/fpr" {
            // A point that goes back: fpr below the one before it.
            *v.pointer_mut("/holdout/roc_curve/0/fpr").expect("fpr") = 0.5.into();
        }
        let err = parse(&v).validate().expect_err(pointer);
        assert!(err.contains(field), "{pointer}: {err}");
    }
    let mut v = good.clone();
    let points: Vec<serde_json::Value> = (0..=200)
        .map(|i| serde_json::json!({"fpr": f64::from(i) / 200.0, "tpr": f64::from(i) / 200.0}))
        .collect();
    *v.pointer_mut("/holdout/roc_curve").expect("curve") = points.into();
    let err = parse(&v).validate().expect_err("201 points");
    assert!(err.contains("at most"), "{err}");
}

/// Issue 13: the URI base of the predicate types is one setting (`[signing] uri_base`),
/// checked when the pipeline is loaded; without it, the default every release carries.
#[test]
fn signing_uri_base_is_checked_at_load() {
    let shipped = include_str!("../../pipelines/fraud-detector.toml");
    let with = |base: &str| {
        format!(
            "{shipped}\n[signing]\ntrust = \"trust.toml\"\nbuilder_key = \"b.key\"\nuri_base = \"{base}\"\n"
        )
    };
    let spec = airlock_schemas::PipelineSpec::from_toml_str(
        &with("https://ml.example-hospital.org"),
        "p.toml".as_ref(),
    )
    .expect("a base of one's own domain");
    let signing = spec.signing.expect("signing");
    assert_eq!(
        signing.uri_base.as_deref(),
        Some("https://ml.example-hospital.org")
    );
    for bad in [
        "http://example.org",
        "https://example.org/",
        "https://ex ample.org",
    ] {
        let e = airlock_schemas::PipelineSpec::from_toml_str(&with(bad), "p.toml".as_ref())
            .expect_err(bad)
            .to_string();
        assert!(e.contains("signing.uri_base"), "{bad}: {e}");
    }
}

/// Issue 15: a CNN on images and a multi-class task, declared in the pipeline; a model that
/// does not fit its images, a CNN on a CSV and a stray key are refused naming what is wrong.
#[test]
fn cnn_and_task_declarations_are_parsed_strictly() {
    let shipped = include_str!("../../pipelines/fraud-detector.toml");
    let model = "[model]\nkind = \"mlp\"\nhidden = [64, 32]\ndropout = 0.1\n";
    assert!(shipped.contains(model));
    let cnn = "[task]\nkind = \"multiclass\"\nclasses = [\"clear\", \"nodule\", \"mass\"]\n\n\
               [model]\nkind = \"cnn\"\nhidden = [32]\ninput = { channels = 1, height = 64, width = 64 }\n\
               conv = [{ channels = 8, kernel = 3, pool = 2, batch_norm = true }, { channels = 16, kernel = 3, padding = 1, pool = 2 }]\n";
    let images = shipped.replace(model, cnn).replacen(
        "source = \"../data/transactions.csv\"",
        "source = \"../data/scans/manifest.csv\"\nformat = \"images\"",
        1,
    );
    // Images take no feature columns.
    let start = images.find("features = [").expect("features");
    let end = start + images[start..].find(']').expect("]") + 1;
    let images = format!("{}{}", &images[..start], &images[end..]);
    let images = images.replace(
        "subgroups = [{ column = \"age\", bands = [30, 45, 60] }, \"is_foreign\"]",
        "",
    );
    let load = |t: &str| airlock_schemas::PipelineSpec::from_toml_str(t, "p.toml".as_ref());
    let spec = load(&images).expect("a CNN on images is valid");
    let airlock_schemas::ModelSpec::Cnn(c) = &spec.model else {
        panic!("cnn expected")
    };
    // 64 → conv 3 → 62 → pool 2 → 31 → conv 3 pad 1 → 31 → pool 2 → 15.
    assert_eq!(c.shapes().expect("fits"), vec![(8, 31, 31), (16, 15, 15)]);
    assert_eq!(c.flat_width().expect("fits"), 16 * 15 * 15);
    assert_eq!(spec.task.outputs(), 3);

    for (from, to, says) in [
        (
            "height = 64, width = 64",
            "height = 4, width = 4",
            "model.conv[1]",
        ),
        (
            "channels = 1, height",
            "channels = 2, height",
            "model.input.channels",
        ),
        (
            "batch_norm = true",
            "batch_norm = true, stride = 0",
            "model.conv[0]",
        ),
        (
            "\"mass\"]",
            "\"nodule\"]",
            "task.classes lists \"nodule\" twice",
        ),
        ("\"mass\"]", "\"mass\"]\nextra = 1", "extra"),
        ("batch_norm = true", "batchnorm = true", "batchnorm"),
        (
            "format = \"images\"",
            "format = \"csv\"",
            "model.kind = \"cnn\" takes images",
        ),
    ] {
        assert!(images.contains(from), "{from}");
        let err = load(&images.replacen(from, to, 1))
            .expect_err(from)
            .to_string();
        assert!(err.contains(says), "{from} -> {to}: {err}");
    }
    // An MLP on images is refused too.
    let err = load(&shipped.replacen(
        "source = \"../data/transactions.csv\"",
        "source = \"x.csv\"\nformat = \"images\"",
        1,
    ))
    .expect_err("mlp on images")
    .to_string();
    assert!(err.contains("needs model.kind = \"cnn\""), "{err}");
    // A regression needs nothing more; the record of a binary pipeline has no task key.
    let reg = load(&shipped.replace(model, &format!("[task]\nkind = \"regression\"\n\n{model}")))
        .expect("regression");
    assert_eq!(reg.task, airlock_schemas::TaskSpec::Regression);
    let json = serde_json::to_string(&load(shipped).expect("shipped").model).expect("json");
    assert_eq!(json, r#"{"kind":"mlp","hidden":[64,32],"dropout":0.1}"#);
}

/// `[training] devices`: several devices of one kind, not with `device`; a run records
/// them, first device first.
#[test]
fn training_devices_are_parsed_strictly() {
    let shipped = include_str!("../../pipelines/fraud-detector.toml");
    let with = |line: &str| {
        assert!(shipped.contains("device = \"cpu\"\n"));
        let text = shipped.replacen("device = \"cpu\"\n", &format!("{line}\n"), 1);
        airlock_schemas::PipelineSpec::from_toml_str(&text, "p.toml".as_ref())
    };
    let two = with("devices = [\"cpu\", \"cpu\"]").expect("two CPU devices");
    assert_eq!(two.training.device_list(), ["cpu", "cpu"]);
    let gpus = with("devices = [\"cuda:0\", \"cuda:1\"]").expect("two GPUs");
    assert_eq!(gpus.training.device_list(), ["cuda:0", "cuda:1"]);
    let none = with("").expect("no device: the CPU");
    assert_eq!(none.training.device_list(), ["cpu"]);
    let sixteen = format!("devices = [{}]", vec!["\"cpu\""; 16].join(", "));
    with(&sixteen).expect("sixteen devices");

    let seventeen = format!("devices = [{}]", vec!["\"cpu\""; 17].join(", "));
    for (line, says) in [
        ("device = \"cpu\"\ndevices = [\"cpu\", \"cpu\"]", "not both"),
        ("devices = []", "between 1 and 16"),
        (seventeen.as_str(), "between 1 and 16"),
        ("devices = [\"cpu\", \"cuda:0\"]", "mixes cpu and cuda"),
        ("devices = [\"cuda:1\", \"cuda:1\"]", "twice"),
        ("devices = [\"cuda\", \"cuda:1\"]", "training.devices[0]"),
        (
            "devices = [\"cpu\", \"cpu 078-05-1120\"]",
            "training.devices[1]",
        ),
        ("devices = \"cpu\"", "invalid pipeline file"),
    ] {
        let err = with(line).expect_err(line).to_string();
        assert!(err.contains(says), "{line}: {err}");
        assert!(
            !err.contains("078-05-1120"),
            "the message echoes the value: {err}"
        );
    }
}

#[test]
fn a_recorded_device_list_matches_the_backend() {
    let backend = |v: serde_json::Value| -> Result<(), String> {
        let mut record = training_record_json();
        *record.pointer_mut("/backend").expect("backend") = v;
        let r: airlock_schemas::TrainingRecord =
            serde_json::from_value(record).map_err(|e| e.to_string())?;
        r.validate()
    };
    let ok = serde_json::json!({"name": "flex", "device": "cpu", "threads": 2, "devices": ["cpu", "cpu"]});
    backend(ok).expect("two CPU devices");
    let one = serde_json::json!({"name": "flex", "device": "cpu", "threads": 2});
    backend(one).expect("one device: no list");
    for (v, says) in [
        (
            serde_json::json!({"name": "flex", "device": "cpu", "threads": 2, "devices": ["cpu"]}),
            "2 to 16",
        ),
        (
            serde_json::json!({"name": "flex", "device": "cpu", "threads": 2, "devices": ["cpu", "cuda:0"]}),
            "backend.devices[1]",
        ),
        (
            serde_json::json!({"name": "cuda", "device": "cuda:1", "threads": 2, "devices": ["cuda:0", "cuda:1"]}),
            "does not start with backend.device",
        ),
        (
            serde_json::json!({"name": "flex", "device": "cpu", "threads": 2, "devices": ["cpu", "cpu x@y.z"]}),
            "backend.devices[1]",
        ),
    ] {
        let err = backend(v).expect_err(says);
        assert!(err.contains(says), "{says}: {err}");
        assert!(!err.contains("x@y.z"), "{err}");
    }
}
