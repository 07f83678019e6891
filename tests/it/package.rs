use std::path::Path;

use airlock_testkit::Kit;
use airlock_trust::{Trust, verify_bundle};

use crate::helpers::{Release, Sandbox, csv_rows, rewrite_safetensors};

const QUICK: &[(&str, &str)] = &[("epochs = 12", "epochs = 4")];
const FILES: [&str; 6] = [
    "model.safetensors",
    "model-card.json",
    "leak-report.json",
    "statement.json",
    "statement.dsse.json",
    "provenance.dsse.json",
];

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("json")
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn demo_run_packages_and_verifies_with_every_layer_passing() {
    let r = Release::new(6000, QUICK);
    let out = r.package("run", "bundle");
    assert!(out.status.success(), "{}", stderr(&out));
    for f in FILES {
        assert!(r.sb.join("bundle").join(f).is_file(), "{f} missing");
    }
    let report = json(&r.sb.join("bundle/leak-report.json"));
    assert_eq!(report["verdict"], "pass");
    let layers = report["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 5);
    for l in layers {
        assert_eq!(l["verdict"], "pass", "no false alarm on a clean run: {l}");
    }
    // The checks really ran against the data.
    assert_eq!(layers[2]["counts"]["records"], 6000);
    // A trained model has no unit that no output depends on.
    assert_eq!(layers[0]["counts"]["dead_units_zeroed"], 0);
    assert!(
        layers[2]["counts"]["text_patterns"]
            .as_u64()
            .is_some_and(|n| n > 10_000)
    );
    assert!(
        layers[3]["counts"]["members"]
            .as_u64()
            .is_some_and(|n| n >= 900)
    );
    // L4 trained again and got the checkpoint byte for byte.
    assert_eq!(layers[4]["counts"]["reproduced"], true, "{}", layers[4]);
    assert_eq!(layers[4]["counts"]["identical"], true, "{}", layers[4]);
    let v = r.verify("bundle");
    assert!(v.status.success(), "{}", stderr(&v));
    let said = format!("{}{}", String::from_utf8_lossy(&v.stdout), stderr(&v));
    assert!(said.contains("what a replay of training gives"), "{said}");
    // Only the weights ship: no optimizer state, no statistics, no free-form metadata.
    let model = std::fs::read(r.sb.join("bundle/model.safetensors")).expect("read");
    let st = safetensors::SafeTensors::deserialize(&model).expect("upstream reader loads it");
    let mut names = st.names();
    names.sort();
    assert_eq!(
        names,
        [
            "layers.0.bias",
            "layers.0.weight",
            "layers.1.bias",
            "layers.1.weight",
            "layers.2.bias",
            "layers.2.weight"
        ]
    );
    let (_, meta) = safetensors::SafeTensors::read_metadata(&model).expect("meta");
    assert_eq!(meta.metadata().clone().unwrap_or_default().len(), 1);
}

#[test]
fn packaging_the_same_run_twice_gives_the_same_model_digest() {
    let r = Release::new(3000, QUICK);
    assert!(r.package("run", "a").status.success());
    assert!(r.package("run", "b").status.success());
    let read = |p: &str| std::fs::read(r.sb.join(p)).expect("read");
    assert_eq!(read("a/model.safetensors"), read("b/model.safetensors"));
    // ed25519 is deterministic and the statement has no timestamps: the whole bundle is.
    assert_eq!(read("a/statement.dsse.json"), read("b/statement.dsse.json"));
    let out = r.package("run", "a");
    assert_eq!(
        out.status.code(),
        Some(3),
        "an existing bundle is never overwritten: {}",
        stderr(&out)
    );
}

#[test]
fn folded_model_agrees_with_the_trained_model_on_holdout_rows() {
    let r = Release::new(3000, QUICK);
    assert!(r.package("run", "bundle").status.success());
    let record = json(&r.run.join("training-record.json"));
    let features: Vec<String> = record["hyperparameters"]["features"]
        .as_array()
        .expect("features")
        .iter()
        .map(|f| f.as_str().expect("str").to_owned())
        .collect();
    let pre: airlock_model::Preprocess = serde_json::from_str(
        &std::fs::read_to_string(r.run.join("preprocess.json")).expect("read"),
    )
    .expect("json");
    let model = airlock_schemas::ModelSpec::Mlp(airlock_schemas::MlpSpec {
        hidden: vec![64, 32],
        dropout: 0.0,
    });
    let description =
        airlock_model::Description::new(&model, &airlock_schemas::TaskSpec::Binary, 12)
            .expect("description");
    let trained =
        airlock_model::Checkpoint::read(&r.run.join("checkpoint.safetensors"), &description)
            .expect("checkpoint");
    let trained = airlock_model::MlpParams::from_dense(&trained.params).expect("mlp");
    // The released file, read strictly as the description declares it.
    let folded = description
        .read_released(&std::fs::read(r.sb.join("bundle/model.safetensors")).expect("model"))
        .expect("model");
    let folded = airlock_model::MlpParams::from_dense(&folded).expect("mlp");
    let table = airlock_model::load_table(&r.data, &features, None).expect("data");
    let s = &record["splits"];
    let n = |k: &str| s[k].as_u64().expect("split") as usize;
    let (_, _, hold) = airlock_model::split_rows(table.rows(), n("train"), n("validation"), 42);
    let raw: Vec<f32> = hold
        .iter()
        .flat_map(|&i| table.features[i * 12..(i + 1) * 12].iter().copied())
        .collect();
    let standardized = pre.apply(&table.features, hold.iter().copied());
    let a = trained.forward_host(&standardized);
    let b = folded.forward_host(&raw);
    let sig = |z: f32| 1.0 / (1.0 + (-f64::from(z)).exp());
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (sig(*x) - sig(*y)).abs())
        .fold(0.0, f64::max);
    assert_eq!(a.len(), 450);
    assert!(
        worst <= 1e-5,
        "folded and unfolded probabilities differ by {worst}"
    );
    // And the statistics are really gone: layer 0 differs from the trained one.
    assert_ne!(trained.layers[0].weight, folded.layers[0].weight);
}

/// A refused release: exit 5, the named layers failed in the report, no bundle, and the
/// report names no raw value.
fn refused(r: &Release, layers: &[&str], secret: Option<&str>) -> serde_json::Value {
    let out = r.package("run", "bundle");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(!r.sb.join("bundle").exists(), "no bundle may be written");
    // Nor any of it: the model file staged while the checks ran is gone with its directory.
    let staged: Vec<_> = std::fs::read_dir(r.sb.join("."))
        .expect("sandbox")
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".airlock-bundle-")
        })
        .collect();
    assert!(staged.is_empty(), "staging left behind: {staged:?}");
    let report_path = r.sb.join("bundle.leak-report.json");
    let text =
        std::fs::read_to_string(&report_path).expect("report written beside the bundle path");
    let report: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(report["verdict"], "fail");
    for id in layers {
        let l = report["layers"]
            .as_array()
            .expect("layers")
            .iter()
            .find(|l| l["id"] == *id)
            .expect("layer");
        assert_eq!(l["verdict"], "fail", "{id} should fail: {l}");
        assert!(err.contains(id), "stderr names {id}: {err}");
        assert!(!l["findings"].as_array().expect("findings").is_empty());
    }
    if let Some(s) = secret {
        assert!(
            !text.contains(s),
            "the report must not contain the leaked value"
        );
        assert!(!err.contains(s), "stderr must not contain the leaked value");
    }
    report
}

#[test]
fn planted_raw_rows_in_an_extra_tensor_are_refused() {
    let r = Release::new(3000, QUICK);
    let (header, rows) = csv_rows(&r.data);
    let cols: Vec<usize> = airlock_model::demo::DEMO_FEATURES
        .iter()
        .map(|c| header.iter().position(|h| h == c).expect("column"))
        .collect();
    let mut raw = Vec::new();
    for row in rows.iter().skip(100).take(50) {
        for &c in &cols {
            raw.extend(row[c].parse::<f32>().expect("number").to_le_bytes());
        }
    }
    rewrite_safetensors(&r.run.join("checkpoint.safetensors"), |t, _| {
        t.insert("debug.samples".into(), (vec![50, 12], raw));
    });
    let report = refused(&r, &["L0", "L2"], None);
    let l2 = &report["layers"][2];
    let f = &l2["findings"][0];
    assert!(
        f["kind"]
            .as_str()
            .is_some_and(|k| k.starts_with("numeric-record")),
        "{f}"
    );
    assert!(
        (100..150).contains(&f["record"].as_u64().expect("record index")),
        "{f}"
    );
}

#[test]
fn customer_email_in_metadata_is_refused() {
    let r = Release::new(3000, QUICK);
    let (header, rows) = csv_rows(&r.data);
    let email = rows[7][header.iter().position(|h| h == "email").expect("email")].clone();
    rewrite_safetensors(&r.run.join("checkpoint.safetensors"), |_, m| {
        m.insert("note".into(), format!("debug customer {email}"));
    });
    let report = refused(&r, &["L1"], Some(&email));
    assert!(
        report["layers"][1]["findings"]
            .as_array()
            .expect("f")
            .iter()
            .any(|f| f["kind"] == "email")
    );
}

#[test]
fn card_number_as_text_in_tensor_bytes_is_refused() {
    let r = Release::new(3000, QUICK);
    let (header, rows) = csv_rows(&r.data);
    let card = rows[3][header
        .iter()
        .position(|h| h == "card_number")
        .expect("card")]
    .clone();
    rewrite_safetensors(&r.run.join("checkpoint.safetensors"), |t, _| {
        let w = &mut t.get_mut("layers.1.weight").expect("weight").1;
        w[400..400 + card.len()].copy_from_slice(card.as_bytes());
    });
    let report = refused(&r, &["L1", "L2"], Some(&card));
    assert!(
        report["layers"][1]["findings"]
            .as_array()
            .expect("f")
            .iter()
            .any(|f| f["kind"] == "card-number")
    );
    let l2 = report["layers"][2]["findings"].as_array().expect("f");
    assert!(
        l2.iter().any(|f| f["kind"] == "text-record"
            && f["record"] == 3
            && f["column"] == "card_number"),
        "{l2:?}"
    );
}

/// `f32`s of little-endian bytes, and back.
fn floats(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn le(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The outside review's edit: a payload in the incoming weights of a hidden unit whose
/// outgoing weights are set to zero, out of reach of the fold check and of L3. Here in unit
/// 5 of the first hidden layer (64 units) and unit 7 of the second (32).
fn hide_payload_in_dead_units(ckpt: &Path) {
    let payload: Vec<f32> = (1..=64).map(|i| i as f32 * 0.37).collect();
    rewrite_safetensors(ckpt, |t, _| {
        let mut edit = |name: &str, f: &dyn Fn(&mut Vec<f32>)| {
            let (_, bytes) = t.get_mut(name).expect(name);
            let mut v = floats(bytes);
            f(&mut v);
            *bytes = le(&v);
        };
        edit("layers.1.weight", &|w| {
            (0..32).for_each(|r| w[r * 64 + 5] = 0.0)
        });
        edit("layers.0.weight", &|w| {
            w[5 * 12..6 * 12].copy_from_slice(&payload[..12])
        });
        edit("layers.0.bias", &|b| b[5] = 0.77);
        edit("layers.2.weight", &|w| w[7] = 0.0);
        edit("layers.1.weight", &|w| {
            w[7 * 64..8 * 64].copy_from_slice(&payload)
        });
        edit("layers.1.bias", &|b| b[7] = -0.5);
    });
}

#[test]
fn what_hides_in_a_unit_no_output_depends_on_ships_as_zeros() {
    // With the replay off (L4 would refuse the edited weights), L0 alone: the payload
    // ships as zeros.
    let r = Release::new(
        3000,
        &[
            QUICK[0],
            (
                "max_membership_advantage = 0.15",
                "max_membership_advantage = 0.15\nreproduce = false",
            ),
        ],
    );
    hide_payload_in_dead_units(&r.run.join("checkpoint.safetensors"));
    let out = r.package("run", "bundle");
    assert!(out.status.success(), "{}", stderr(&out));
    let report = json(&r.sb.join("bundle/leak-report.json"));
    let l0 = &report["layers"][0];
    assert_eq!(l0["verdict"], "pass", "{l0}");
    assert_eq!(l0["counts"]["dead_units_zeroed"], 2, "{l0}");
    let l4 = &report["layers"][4];
    assert_eq!(l4["id"], "L4");
    assert_eq!(l4["counts"]["reproduced"], false, "{l4}");
    let v = r.verify("bundle");
    assert!(v.status.success(), "{}", stderr(&v));
    let said = format!("{}{}", String::from_utf8_lossy(&v.stdout), stderr(&v));
    assert!(
        said.contains("training was not replayed"),
        "verify tells the officers: {said}"
    );
    let model = std::fs::read(r.sb.join("bundle/model.safetensors")).expect("read");
    let st = safetensors::SafeTensors::deserialize(&model).expect("parse");
    let get = |n: &str| floats(st.tensor(n).expect(n).data());
    assert!(
        get("layers.0.weight")[5 * 12..6 * 12]
            .iter()
            .all(|x| *x == 0.0)
    );
    assert_eq!(get("layers.0.bias")[5], 0.0);
    assert!(
        get("layers.1.weight")[7 * 64..8 * 64]
            .iter()
            .all(|x| *x == 0.0)
    );
    assert_eq!(get("layers.1.bias")[7], 0.0);
    // Every other unit ships as trained: the neighbours are not zero.
    assert!(
        get("layers.0.weight")[4 * 12..5 * 12]
            .iter()
            .any(|x| *x != 0.0)
    );
    assert!(
        get("layers.1.weight")[6 * 64..7 * 64]
            .iter()
            .any(|x| *x != 0.0)
    );
}

#[test]
fn weights_edited_after_training_are_refused_by_the_replay() {
    // L4 trains again from the run's pipeline, seed and data: the CPU backends are
    // deterministic, so any weight that is not what training produced is named, whether
    // no output depends on it (the dead-unit payload L0 would zero) or it is live.
    let r = Release::new(3000, QUICK);
    let ckpt = r.run.join("checkpoint.safetensors");
    std::fs::copy(&ckpt, r.sb.join("original.safetensors")).expect("copy");
    hide_payload_in_dead_units(&ckpt);
    let report = refused(&r, &["L4"], None);
    for id in 0..4 {
        assert_eq!(report["layers"][id]["verdict"], "pass", "only L4 sees it");
    }
    let l4 = &report["layers"][4];
    assert_eq!(l4["counts"]["reproduced"], false, "{l4}");
    assert_eq!(l4["counts"]["identical"], false, "{l4}");
    assert_eq!(l4["parameters"]["deterministic"], true, "{l4}");
    let named: Vec<&str> = l4["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            assert_eq!(f["kind"], "weights-differ-from-replay", "{f}");
            f["location"].as_str().expect("location")
        })
        .collect();
    for t in [
        "layers.0.weight",
        "layers.0.bias",
        "layers.1.weight",
        "layers.1.bias",
        "layers.2.weight",
    ] {
        assert!(
            named.iter().any(|l| l.contains(&format!("{t} "))),
            "{t} is named: {named:?}"
        );
    }
    assert_eq!(named.len(), 5, "the untouched tensors are not: {named:?}");

    // One live weight nudged by a ten-thousandth: too small for any attack on the model's
    // answers to see, not for the replay.
    std::fs::copy(r.sb.join("original.safetensors"), &ckpt).expect("restore");
    std::fs::remove_file(r.sb.join("bundle.leak-report.json")).expect("rm");
    rewrite_safetensors(&ckpt, |t, _| {
        let (_, bytes) = t.get_mut("layers.2.weight").expect("output layer");
        let mut v = floats(bytes);
        v[3] += 1e-4;
        *bytes = le(&v);
    });
    let report = refused(&r, &["L4"], None);
    let l4 = &report["layers"][4];
    let f = l4["findings"].as_array().expect("findings");
    assert_eq!(f.len(), 1, "{f:?}");
    let location = f[0]["location"].as_str().expect("location");
    assert!(location.contains("layers.2.weight"), "{location}");
    let largest = l4["counts"]["largest_difference"].as_f64().expect("number");
    assert!((5e-5..2e-4).contains(&largest), "{largest}");

    // The untouched checkpoint replays byte for byte and ships.
    std::fs::copy(r.sb.join("original.safetensors"), &ckpt).expect("restore");
    std::fs::remove_file(r.sb.join("bundle.leak-report.json")).expect("rm");
    let out = r.package("run", "bundle");
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn record_metrics_and_checkpoint_metadata_training_did_not_give_are_refused() {
    // The model card copies the record's per-epoch losses: a number changed in its last
    // digits is a covert channel into a signed document. The replay computes them again.
    let r = Release::new(3000, QUICK);
    let record_path = r.run.join("training-record.json");
    let original = std::fs::read_to_string(&record_path).expect("record");
    let mut record: serde_json::Value = serde_json::from_str(&original).expect("json");
    let loss = record["epochs"][1]["train_loss"].as_f64().expect("loss");
    record["epochs"][1]["train_loss"] = serde_json::json!(loss + 1e-12);
    std::fs::write(
        &record_path,
        serde_json::to_string_pretty(&record).expect("json"),
    )
    .expect("write");
    let report = refused(&r, &["L4"], None);
    let f = report["layers"][4]["findings"]
        .as_array()
        .expect("findings");
    assert!(
        f.iter().any(|f| f["kind"] == "record-differs-from-replay"),
        "{f:?}"
    );
    std::fs::write(&record_path, &original).expect("restore");
    std::fs::remove_file(r.sb.join("bundle.leak-report.json")).expect("rm");

    // Checkpoint metadata other than what training writes (a key added, a value changed).
    let ckpt = r.run.join("checkpoint.safetensors");
    for (key, value) in [("seed", "43"), ("note", "hello")] {
        let saved = std::fs::read(&ckpt).expect("read");
        rewrite_safetensors(&ckpt, |_, meta| {
            meta.insert(key.to_owned(), value.to_owned());
        });
        let report = refused(&r, &["L4"], None);
        let f = report["layers"][4]["findings"]
            .as_array()
            .expect("findings");
        assert!(
            f.iter()
                .any(|f| f["kind"] == "checkpoint-differs-from-replay"),
            "{key}: {f:?}"
        );
        std::fs::write(&ckpt, saved).expect("restore");
        std::fs::remove_file(r.sb.join("bundle.leak-report.json")).expect("rm");
    }
    let out = r.package("run", "bundle");
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn optimizer_state_renamed_to_look_like_weights_is_refused() {
    let r = Release::new(3000, QUICK);
    let ckpt = r.run.join("checkpoint.safetensors");
    std::fs::copy(&ckpt, r.sb.join("original.safetensors")).expect("copy");
    // Renamed: Adam's first moment now looks like a weight of layer 1.
    rewrite_safetensors(&ckpt, |t, _| {
        let m = t
            .remove("optimizer.layers.1.weight.exp_avg")
            .expect("moment");
        t.insert("layers.1.weight.exp_avg".into(), m);
    });
    let report = refused(&r, &["L0"], None);
    let f = report["layers"][0]["findings"].as_array().expect("f");
    assert!(f.iter().any(|f| f["kind"] == "unexpected-tensor"), "{f:?}");
    // Swapped: the second moment is shipped under the weight's own name.
    std::fs::copy(r.sb.join("original.safetensors"), &ckpt).expect("restore");
    std::fs::remove_file(r.sb.join("bundle.leak-report.json")).expect("rm");
    rewrite_safetensors(&ckpt, |t, _| {
        let m = t
            .get("optimizer.layers.1.weight.exp_avg_sq")
            .expect("moment")
            .clone();
        t.insert("layers.1.weight".into(), m);
    });
    let report = refused(&r, &["L0"], None);
    let f = report["layers"][0]["findings"].as_array().expect("f");
    assert!(
        f.iter()
            .any(|f| f["kind"] == "parameter-duplicates-another-tensor"),
        "{f:?}"
    );
}

#[test]
fn overfit_model_fails_membership_inference() {
    // Tiny training set, weak features (so the labels are mostly noise to memorize), wide
    // layers, many epochs, no dropout or weight decay.
    let features = crate::helpers::FRAUD_PIPELINE
        .split_once("features = [")
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(list, _)| format!("features = [{list}]"))
        .expect("features list");
    let r = Release::new(
        500,
        &[
            (
                features.as_str(),
                "features = [\"hour\", \"days_since_last_txn\", \"account_age_days\", \"merchant_category\", \"distance_from_home_km\"]",
            ),
            ("train = 0.70", "train = 0.40"),
            ("validation = 0.15", "validation = 0.10"),
            ("holdout = 0.15", "holdout = 0.50"),
            ("hidden = [64, 32]", "hidden = [256, 256]"),
            ("dropout = 0.1", "dropout = 0.0"),
            ("weight_decay = 0.0001", "weight_decay = 0.0"),
            ("learning_rate = 0.003", "learning_rate = 0.01"),
            ("epochs = 12", "epochs = 300"),
            ("batch_size = 256", "batch_size = 32"),
        ],
    );
    let report = refused(&r, &["L3"], None);
    let l3 = &report["layers"][3];
    let (auc, adv) = (
        l3["counts"]["auc"].as_f64().expect("auc"),
        l3["counts"]["advantage"].as_f64().expect("advantage"),
    );
    assert!(auc > 0.60 || adv > 0.15, "{l3}");
    for id in [0, 1, 2] {
        assert_eq!(
            report["layers"][id]["verdict"], "pass",
            "only L3 should fail"
        );
    }
}

#[test]
fn memorizing_model_is_refused_by_rmia_at_its_default_thresholds() {
    // Tiny data whose label the features do not predict (whether a transaction was
    // online, from the hour, account age, days since the last one and failed PINs), wide
    // layers, many epochs, no dropout or weight decay: the model can only memorize. RMIA
    // refuses it on its own, at its default thresholds.
    let features = crate::helpers::FRAUD_PIPELINE
        .split_once("features = [")
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(list, _)| format!("features = [{list}]"))
        .expect("features list");
    let r = Release::new(
        1000,
        &[
            (
                features.as_str(),
                "features = [\"hour\", \"days_since_last_txn\", \"account_age_days\", \"failed_pin_attempts\"]",
            ),
            ("label = \"fraud\"", "label = \"is_online\""),
            ("train = 0.70", "train = 0.40"),
            ("validation = 0.15", "validation = 0.10"),
            ("holdout = 0.15", "holdout = 0.50"),
            ("hidden = [64, 32]", "hidden = [256, 256]"),
            ("dropout = 0.1", "dropout = 0.0"),
            ("weight_decay = 0.0001", "weight_decay = 0.0"),
            ("learning_rate = 0.003", "learning_rate = 0.01"),
            ("epochs = 12", "epochs = 300"),
            ("batch_size = 256", "batch_size = 32"),
        ],
    );
    let report = refused(&r, &["L3"], None);
    let l3 = &report["layers"][3];
    let kinds: Vec<&str> = l3["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"rmia-auc-above-threshold"), "{l3}");
    let c = &l3["counts"];
    assert!(c["rmia_auc"].as_f64().expect("rmia_auc") > 0.65, "{l3}");
    assert_eq!(c["rmia_members"], 250, "{l3}");
    assert_eq!(c["rmia_non_members"], 250, "{l3}");
    for id in [0, 1, 2, 4] {
        assert_eq!(report["layers"][id]["verdict"], "pass", "only L3 fails");
    }
}

fn flip_all(dir: &Path, trust: &Trust, file: &str) -> usize {
    let path = dir.join(file);
    let original = std::fs::read(&path).expect("read");
    let positions: Vec<usize> = if original.len() <= 64 * 1024 {
        (0..original.len()).collect()
    } else {
        (0..1000).map(|i| i * original.len() / 1000).collect()
    };
    for &i in &positions {
        let mut b = original.clone();
        b[i] ^= 0x01;
        std::fs::write(&path, &b).expect("write");
        let v = verify_bundle(dir, trust, 2, false);
        assert!(!v.ok(), "flipping byte {i} of {file} went unnoticed");
    }
    std::fs::write(&path, &original).expect("restore");
    positions.len()
}

#[test]
fn flipping_any_byte_of_a_signed_file_fails_verification() {
    // Verification alone: a test-kit bundle, signed as `airlock package` signs (same
    // documents, same 12-64-32-1 model), without training.
    let sb = Sandbox::new();
    let kit = Kit::builder().build_in(sb.path());
    let trust = Trust::load(&kit.trust_file).expect("trust");
    let dir = kit.bundle.clone();
    assert!(verify_bundle(&dir, &trust, 2, false).ok());
    let mut total = 0;
    for f in [
        "model.safetensors",
        "statement.json",
        "statement.dsse.json",
        "provenance.dsse.json",
    ] {
        total += flip_all(&dir, &trust, f);
    }
    assert!(total > 10_000, "{total} positions");
    assert!(
        verify_bundle(&dir, &trust, 2, false).ok(),
        "restored bundle verifies again"
    );
    // And through the CLI, with the verification exit code.
    let p = dir.join("statement.dsse.json");
    let mut b = std::fs::read(&p).expect("read");
    b[100] ^= 0x01;
    std::fs::write(&p, b).expect("write");
    let out = sb.airlock(&["verify", "bundle", "--trust", "trust.toml"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
}

#[test]
fn bundle_signed_by_a_key_outside_the_trust_policy_fails() {
    let r = Release::new(3000, QUICK);
    r.sb.ok(&["keygen", "--out", "keys/intruder"]);
    let out = r.sb.airlock(&[
        "package",
        "--run",
        "run",
        "--key",
        "keys/intruder.key",
        "--out",
        "bundle",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = r.verify("bundle");
    assert_eq!(out.status.code(), Some(4));
    assert!(
        stderr(&out).contains("no signature by a trusted key"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn validly_signed_statement_with_a_wrong_subject_digest_fails() {
    // Verification alone: a test-kit bundle (signed as `airlock package` signs, no training).
    let sb = Sandbox::new();
    let kit = Kit::builder().build_in(sb.path());
    let dir = kit.bundle.clone();
    let mut stmt = json(&dir.join("statement.json"));
    stmt["subject"][0]["digest"]["sha256"] = serde_json::Value::String("0".repeat(64));
    let bytes = serde_json::to_vec_pretty(&stmt).expect("json");
    let signer = airlock_trust::keys::Signer::load(&kit.builder.private_key).expect("key");
    let env = airlock_trust::dsse::sign("application/vnd.in-toto+json", &bytes, &signer);
    std::fs::write(dir.join("statement.json"), &bytes).expect("write");
    std::fs::write(
        dir.join("statement.dsse.json"),
        serde_json::to_vec_pretty(&env).expect("json"),
    )
    .expect("write");
    let out = sb.airlock(&["verify", "bundle", "--trust", "trust.toml"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("ok   statement signature"),
        "the signature itself is valid: {err}"
    );
    assert!(err.contains("FAIL model digest"), "{err}");
}

#[test]
fn private_key_readable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let r = Release::new(500, QUICK);
    std::fs::set_permissions(&r.key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = r.package("run", "bundle");
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("readable by group or others"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("PRIVATE KEY"));
}

#[test]
fn independent_implementations_agree_with_ours() {
    let r = Release::new(3000, QUICK);
    assert!(r.package("run", "bundle").status.success());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/independent/check_bundle.py");
    let run = |bundle: &str| {
        std::process::Command::new(crate::helpers::test_python())
            .arg(&script)
            .arg(r.sb.join(bundle))
            .arg(r.sb.join("keys/builder.pub"))
            .output()
            .expect("run python")
    };
    let out = run("bundle");
    assert!(out.status.success(), "{}", stderr(&out));
    let theirs: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");

    // Same key id as ours.
    let signer = airlock_trust::keys::Signer::load(&r.key).expect("key");
    assert_eq!(theirs["keyid"], signer.key_id());
    // Same tensors, read by the reference safetensors reader and by ours.
    let bytes = std::fs::read(r.sb.join("bundle/model.safetensors")).expect("read");
    let ours = airlock_safetensors::parse(&bytes).expect("ours parses");
    let theirs = theirs["tensors"].as_object().expect("tensors");
    assert_eq!(theirs.len(), ours.tensors.len());
    for t in &ours.tensors {
        let th = &theirs[&t.name];
        assert_eq!(th[0], "float32", "{}", t.name);
        assert_eq!(th[1], serde_json::json!(t.shape), "{}", t.name);
        let digest = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(ours.data(t)))
        };
        assert_eq!(th[2], digest.as_str(), "{}", t.name);
    }

    // And it rejects what ours rejects: a forged payload.
    let p = r.sb.join("bundle/statement.dsse.json");
    let mut env = json(&p);
    let forged = airlock_trust::dsse::pae("x", b"y");
    use base64::Engine as _;
    env["payload"] = base64::engine::general_purpose::STANDARD
        .encode(forged)
        .into();
    std::fs::write(&p, serde_json::to_vec(&env).expect("json")).expect("write");
    let out = run("bundle");
    assert!(
        !out.status.success(),
        "the independent verifier must reject a forged payload"
    );
    assert!(
        stderr(&out).contains("DSSE verification failed"),
        "{}",
        stderr(&out)
    );
}

/// Issue 12 item 3: the fields the packager copies from the training record into the
/// signed statement and provenance have grammars. A tampered run directory whose record
/// carries an identifier from the training data (in the git commit, the device, a time) or
/// a `v`-prefixed version is refused at packaging, naming the field but never the value,
/// and nothing is written.
#[test]
fn training_record_fields_carrying_training_data_are_refused_at_packaging() {
    let r = Release::new(3000, QUICK);
    let (header, rows) = csv_rows(&r.data);
    let col = |c: &str| header.iter().position(|h| h == c).expect("column");
    let ssn = rows[5][col("ssn")].clone();
    let email = rows[9][col("email")].clone();
    let record_path = r.run.join("training-record.json");
    let original = std::fs::read_to_string(&record_path).expect("record");
    for (pointer, value, field) in [
        ("/git_commit", ssn.clone(), "git_commit"),
        ("/git_commit", email.clone(), "git_commit"),
        ("/backend/device", format!("cpu {ssn}"), "backend.device"),
        ("/started_at", email.clone(), "started_at"),
        (
            "/finished_at",
            format!("2026-11-29T12:00:00Z {ssn}"),
            "finished_at",
        ),
        ("/model_version", "v1.0.0".to_owned(), "model_version"),
        ("/model_name", email.clone(), "model_name"),
    ] {
        let mut v: serde_json::Value = serde_json::from_str(&original).expect("json");
        *v.pointer_mut(pointer).expect(pointer) = value.clone().into();
        std::fs::write(
            &record_path,
            serde_json::to_string_pretty(&v).expect("json"),
        )
        .expect("write");
        let out = r.package("run", "bundle");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(3), "{pointer}: {err}");
        assert!(
            err.contains("training-record.json") && err.contains(field),
            "{pointer}: {err}"
        );
        assert!(!err.contains(&value), "the message echoes the value: {err}");
        if field == "model_version" {
            assert!(err.contains("drop the 'v' prefix"), "{err}");
        }
        assert!(!r.sb.join("bundle").exists(), "{pointer}: no bundle");
        assert!(!r.sb.join("bundle.run.json").exists(), "{pointer}");
    }
    std::fs::write(&record_path, &original).expect("restore");
    let out = r.package("run", "bundle");
    assert!(
        out.status.success(),
        "the untampered run packages: {}",
        stderr(&out)
    );
    // The pointer to the run sits beside the bundle, never inside it.
    let pointer = json(&r.sb.join("bundle.run.json"));
    assert_eq!(
        pointer["run_dir"].as_str().map(std::path::PathBuf::from),
        Some(std::path::absolute(&r.run).expect("absolute"))
    );
    assert!(!r.sb.join("bundle/bundle.run.json").exists());
}

/// Issue 12 item 3, second layer: text that passes every grammar but carries training data
/// in another form (an SSN without its dashes, a name in capitals with extra spaces) is
/// found by L2's normalized matching in the signed documents before anything is signed.
#[test]
fn training_data_in_signed_documents_is_refused_before_signing() {
    let r = Release::new(3000, QUICK);
    let (header, rows) = csv_rows(&r.data);
    let col = |c: &str| header.iter().position(|h| h == c).expect("column");
    let ssn_digits: String = rows[5][col("ssn")].replace('-', "");
    // A name long enough to be searched for (8 bytes without its spaces).
    let name = rows
        .iter()
        .map(|r| r[col("full_name")].clone())
        .find(|n| n.replace(' ', "").len() >= 10)
        .expect("a long name");
    let shouted = name.to_uppercase().replace(' ', "   ");
    let snapshot = r.run.join("pipeline.toml");
    let original = std::fs::read_to_string(&snapshot).expect("snapshot");
    let record_path = r.run.join("training-record.json");
    for (planted, secret, column, form) in [
        (
            format!("Checked on customer {ssn_digits}."),
            ssn_digits.clone(),
            "ssn",
            "numeric-identifier (digits only)",
        ),
        (
            format!("Ask {shouted} about it."),
            shouted.clone(),
            "full_name",
            "text-record (case-folded, whitespace-insensitive)",
        ),
    ] {
        let text = original.replacen(
            "intended_use = \"",
            &format!("intended_use = \"{planted} "),
            1,
        );
        assert_ne!(text, original);
        std::fs::write(&snapshot, &text).expect("write");
        let mut record: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&record_path).expect("record"))
                .expect("json");
        record["pipeline"]["sha256"] = airlock_trust::shards::sha256_hex(text.as_bytes()).into();
        std::fs::write(
            &record_path,
            serde_json::to_string_pretty(&record).expect("json"),
        )
        .expect("write");
        let report = refused(&r, &["L2"], Some(&secret));
        let l2 = report["layers"][2]["findings"]
            .as_array()
            .expect("findings");
        assert!(
            l2.iter().any(|f| f["kind"] == form
                && f["column"] == column
                && f["location"]
                    .as_str()
                    .is_some_and(|l| l.starts_with("model-card.json"))),
            "{l2:?}"
        );
        std::fs::remove_file(r.sb.join("bundle.leak-report.json")).expect("rm report");
    }
}

/// The model card carries the configuration and the record's evaluation; a DEMO run needs
/// no commit (its card says the uncommitted run was allowed), and the band labels of the
/// age subgroups (an identifier column) do not trip the leak checks.
#[test]
fn card_carries_configuration_and_evaluation_and_demo_needs_no_commit() {
    let r = Release::new(3000, QUICK);
    let out = r.package("run", "bundle");
    assert!(out.status.success(), "{}", stderr(&out));
    let card = json(&r.sb.join("bundle/model-card.json"));
    let record = json(&r.run.join("training-record.json"));
    let c = &card["configuration"];
    assert_eq!(c["seed"], 42);
    assert_eq!(c["split_fractions"], serde_json::json!([0.7, 0.15, 0.15]));
    assert_eq!(c["hyperparameters"], record["hyperparameters"]);
    assert_eq!(c["data"][0]["name"], "data.csv");
    assert_eq!(c["data"][0]["rows"], 3000);
    assert_eq!(
        c["data"][0]["sha256"],
        record["dataset"]["files"][0]["sha256"]
    );
    assert_eq!(
        c["source"],
        serde_json::json!({"git_commit": null, "git_dirty": null, "uncommitted_allowed": true})
    );
    assert_eq!(card["evaluation"], record["evaluation"]);
    assert_eq!(
        card["evaluation"]["subgroups"][0]["groups"][1]["group"],
        "30–44"
    );
    let text = std::fs::read_to_string(r.sb.join("bundle/model-card.json")).expect("card");
    assert!(!text.contains("/tmp") && !text.contains(r.sb.path().to_str().expect("utf-8")));
}

/// A run directory is attacker input: the evaluation copied into the card is bounded and
/// checked against the pipeline, and a tampered one is refused before anything is written.
#[test]
fn tampered_evaluation_in_the_record_is_refused_at_packaging() {
    let r = Release::new(3000, QUICK);
    let (header, rows) = csv_rows(&r.data);
    let email = rows[3][header.iter().position(|h| h == "email").expect("email")].clone();
    let record_path = r.run.join("training-record.json");
    let original = std::fs::read_to_string(&record_path).expect("record");
    for (pointer, value, says) in [
        (
            "/evaluation/confusion/true_positives",
            serde_json::json!(100_000),
            "evaluation.confusion",
        ),
        (
            "/evaluation/subgroups/1/groups/0/group",
            serde_json::json!(email),
            "group label",
        ),
        (
            "/evaluation/subgroups/0/groups/0/group",
            serde_json::json!("18"),
            "not a label of the table's bands",
        ),
        (
            "/evaluation/subgroups/1/groups/0/rows",
            serde_json::json!(3),
            "min_group_rows",
        ),
        (
            "/evaluation/metrics/0/value",
            serde_json::json!(1.5),
            "rate",
        ),
        (
            "/evaluation/metrics/1/low",
            serde_json::json!(0.99),
            "low ≤ high",
        ),
        (
            "/evaluation/threshold",
            serde_json::json!(0.25),
            "evaluation",
        ),
        (
            "/evaluation/calibration/bins/0/rows",
            serde_json::json!(0),
            "calibration",
        ),
    ] {
        let mut v: serde_json::Value = serde_json::from_str(&original).expect("json");
        *v.pointer_mut(pointer).expect(pointer) = value;
        std::fs::write(
            &record_path,
            serde_json::to_string_pretty(&v).expect("json"),
        )
        .expect("write");
        let out = r.package("run", "bundle");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(3), "{pointer}: {err}");
        assert!(err.contains(says), "{pointer}: {err}");
        assert!(!err.contains(&email), "the message echoes the value: {err}");
        assert!(!r.sb.join("bundle").exists(), "{pointer}: no bundle");
    }
}

fn git(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
        .args(args)
        .output()
        .expect("git");
    assert!(out.status.success(), "git {args:?}: {}", stderr(&out));
}

/// A real release (the pipeline has `[signing]`) needs a recorded, clean git commit: refused
/// without one and from a dirty tree (exit 3, naming the fix), allowed with
/// `[release] allow_uncommitted = true`; the card records what happened.
#[test]
fn real_release_requires_a_clean_commit_unless_allowed() {
    let sb = Sandbox::new();
    let data = sb.demo_data(2000, 4);
    sb.ok(&["keygen", "--out", "keys/builder"]);
    let signing = "\n[signing]\ntrust = \"trust.toml\"\nbuilder_key = \"keys/builder.key\"\n";
    let edits = [("epochs = 12", "epochs = 1")];
    let real = sb.pipeline("p.toml", &data, &edits);
    let text = std::fs::read_to_string(&real).expect("read") + signing;
    sb.write("p.toml", &text);
    sb.write("allowed.toml", &crate::helpers::allow_uncommitted(&text));
    let train = |p: &str, run: &str| {
        sb.ok(&["train", p, "--out", run, "--no-progress"]);
    };
    let package = |run: &str| {
        sb.airlock(&[
            "package",
            "--run",
            run,
            "--key",
            "keys/builder.key",
            "--out",
            &format!("{run}-bundle"),
        ])
    };
    let source = |run: &str| {
        json(&sb.join(&format!("{run}-bundle/model-card.json")))["configuration"]["source"].clone()
    };

    // Outside any git repository: no commit recorded.
    train("p.toml", "run-none");
    let out = package("run-none");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("no commit recorded")
            && err.contains("commit your changes")
            && err.contains("`[release] allow_uncommitted = true`"),
        "{err}"
    );
    assert!(!sb.join("run-none-bundle").exists());

    // A clean commit: released, and the card names it.
    sb.write("notes.txt", "v1\n");
    git(sb.path(), &["init", "-q"]);
    git(sb.path(), &["add", "p.toml", "notes.txt"]);
    git(sb.path(), &["commit", "-q", "-m", "pipeline"]);
    train("p.toml", "run-clean");
    let out = package("run-clean");
    assert!(out.status.success(), "{}", stderr(&out));
    let s = source("run-clean");
    assert_eq!(s["git_dirty"], false);
    assert_eq!(s["uncommitted_allowed"], false);
    assert_eq!(s["git_commit"].as_str().map(str::len), Some(40));

    // A tracked file changed: dirty, refused.
    sb.write("notes.txt", "v2\n");
    train("p.toml", "run-dirty");
    let out = package("run-dirty");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("uncommitted changes"), "{err}");

    // The pipeline allows it: released, and the card says so.
    train("allowed.toml", "run-allowed");
    let out = package("run-allowed");
    assert!(out.status.success(), "{}", stderr(&out));
    let s = source("run-allowed");
    assert_eq!(
        (s["git_dirty"].clone(), s["uncommitted_allowed"].clone()),
        (true.into(), true.into())
    );
}
