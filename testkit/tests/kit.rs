//! The kit itself: what its options change, and that every bundle it builds verifies.

use airlock_schemas::KeyRole;
use airlock_testkit::{FRAUD_FEATURES, Kit};
use airlock_trust::MODEL_FILE;

#[test]
fn the_model_depends_on_the_seed_alone() {
    let a = Kit::builder().seed(1).build();
    let b = Kit::builder().seed(1).build();
    let c = Kit::builder().seed(2).build();
    assert_eq!(a.model_sha256(), b.model_sha256());
    assert_ne!(a.model_sha256(), c.model_sha256());
    assert_eq!(
        std::fs::read(a.bundle.join(MODEL_FILE)).expect("a"),
        std::fs::read(b.bundle.join(MODEL_FILE)).expect("b")
    );
    // Each kit has its own keys.
    assert_ne!(a.builder.key_id, b.builder.key_id);
    for k in [&a, &b, &c] {
        assert!(k.verify().ok(), "{:#?}", k.verify().checks);
    }
}

#[test]
fn the_policy_lists_the_keys_asked_for() {
    let kit = Kit::builder()
        .officers(&["alice", "bob", "carol"])
        .approvals_required(2)
        .publisher()
        .build();
    let trust = kit.trust();
    assert_eq!(trust.policy.approvals_required, 2);
    let roles: Vec<(&str, KeyRole)> = trust
        .keys
        .iter()
        .map(|k| (k.name.as_str(), k.role))
        .collect();
    assert_eq!(
        roles,
        [
            ("ci", KeyRole::Builder),
            ("alice", KeyRole::Officer),
            ("bob", KeyRole::Officer),
            ("carol", KeyRole::Officer),
            ("cd", KeyRole::Publisher),
        ]
    );
    for name in ["builder", "alice", "bob", "carol", "publisher"] {
        assert!(
            trust.keys.iter().any(|k| k.key_id == kit.key_id(name)),
            "{name}"
        );
    }
    // Private keys stay private (Signer::load refuses anything else).
    kit.builder_signer();
}

#[test]
fn options_shape_the_model_and_its_card() {
    let kit = Kit::builder()
        .model("churn", "2.3.4")
        .features(&["a", "b", "c"])
        .hidden(&[5])
        .build();
    assert!(kit.verify().ok(), "{:#?}", kit.verify().checks);
    let card: airlock_schemas::ModelCard =
        serde_json::from_slice(&std::fs::read(kit.bundle.join("model-card.json")).expect("card"))
            .expect("card json");
    assert_eq!(
        (card.name.as_str(), card.version.as_str()),
        ("churn", "2.3.4")
    );
    assert_eq!(card.architecture.layer_widths, [3, 5, 1]);
    let shapes: Vec<(&str, &[usize])> = card
        .architecture
        .tensors
        .iter()
        .map(|t| (t.name.as_str(), t.shape.as_slice()))
        .collect();
    assert_eq!(
        shapes,
        [
            ("layers.0.weight", &[5, 3][..]),
            ("layers.0.bias", &[5][..]),
            ("layers.1.weight", &[1, 5][..]),
            ("layers.1.bias", &[1][..]),
        ]
    );
    let default = Kit::builder().build();
    let card: airlock_schemas::ModelCard = serde_json::from_slice(
        &std::fs::read(default.bundle.join("model-card.json")).expect("card"),
    )
    .expect("card json");
    let inputs: Vec<&str> = card.inputs.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(inputs, FRAUD_FEATURES);
    assert_eq!(card.architecture.layer_widths, [12, 64, 32, 1]);
}
