//! The gate and officer approvals on test-kit bundles (signed like `airlock package`'s, no
//! training): what `admit` lets through, what it refuses and why, and what an `Admitted`
//! holds.

use airlock_schemas::Decision;
use airlock_testkit::Kit;
use airlock_trust::approvals::{ApprovalError, ApprovalSummary, DecisionRequest, decide};
use airlock_trust::{
    Admitted, GateOptions, LEAK_REPORT_FILE, MODEL_CARD_FILE, MODEL_FILE, PROVENANCE_DSSE_FILE,
    Refusal, STATEMENT_DSSE_FILE, STATEMENT_FILE, Verification,
};
use time::OffsetDateTime;

fn keep() -> GateOptions {
    GateOptions::keep(2)
}

/// A 2-of-3 policy: alice, bob and carol.
fn two_of_three() -> Kit {
    Kit::builder()
        .officers(&["alice", "bob", "carol"])
        .approvals_required(2)
        .build()
}

/// The judged decisions and the refusal's message, of a bundle that verified but is
/// pending (not enough approvals, no valid rejection).
fn not_approved(r: Result<Admitted, Refusal>) -> (ApprovalSummary, String) {
    match r {
        Err(e @ Refusal::NotApproved { .. }) => {
            assert_eq!(e.kind(), airlock_schemas::ErrorKind::VerificationFailed);
            let msg = e.to_string();
            let Refusal::NotApproved {
                verification,
                approvals,
                ..
            } = e
            else {
                unreachable!()
            };
            assert!(verification.ok(), "{:#?}", verification.checks);
            // The count leads the message; who has and has not decided follows.
            let count = msg.split(';').next().unwrap_or_default().to_owned();
            (approvals, count)
        }
        other => panic!("expected NotApproved, got {other:?}"),
    }
}

/// The judged decisions and the message of a bundle that verified and that a valid
/// rejection blocks.
fn rejected(r: Result<Admitted, Refusal>) -> (ApprovalSummary, String) {
    match r {
        Err(e @ Refusal::Rejected { .. }) => {
            assert_eq!(e.kind(), airlock_schemas::ErrorKind::Rejected);
            assert!(e.verification().ok());
            let msg = e.to_string();
            let Refusal::Rejected { approvals, .. } = e else {
                unreachable!()
            };
            (approvals, msg)
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
}

/// The names of the failed checks of a bundle that does not verify.
fn does_not_verify(r: Result<Admitted, Refusal>) -> Vec<(&'static str, String)> {
    match r {
        Err(e @ Refusal::DoesNotVerify(_)) => {
            assert_eq!(e.to_string(), "the bundle does not verify");
            failed(e.verification())
        }
        other => panic!("expected DoesNotVerify, got {other:?}"),
    }
}

fn failed(v: &Verification) -> Vec<(&'static str, String)> {
    v.checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| (c.name, c.detail.clone()))
        .collect()
}

/// Why the decision file named after `keyid` counts or not.
fn why(s: &ApprovalSummary, keyid: &str) -> String {
    let d = s
        .decisions
        .iter()
        .find(|d| d.file == format!("{keyid}.dsse.json"))
        .unwrap_or_else(|| panic!("no decision by {keyid}: {s:#?}"));
    d.why.clone()
}

#[test]
fn a_kit_bundle_verifies_every_check_and_needs_its_approval() {
    let kit = Kit::builder().build();
    let v = kit.verify();
    assert!(v.ok(), "{:#?}", v.checks);
    for check in [
        "bundle files",
        "statement signature",
        "statement.json matches the signed payload",
        "statement signer valid when it signed",
        "statement subjects",
        "model shard digests",
        "model digest",
        "model format",
        "subject digest",
        "leak verdict",
        "provenance",
    ] {
        assert!(
            v.checks.iter().any(|c| c.name == check && c.ok),
            "{check}: {:#?}",
            v.checks
        );
    }
    let (s, msg) = not_approved(kit.admit(&keep()));
    assert_eq!(msg, "0 of 1 required officer approvals");
    assert_eq!((s.approvals, s.required, s.rejected), (0, 1, false));
    assert!(s.decisions.is_empty());
}

#[test]
fn an_approved_bundle_is_admitted_with_the_bytes_it_verified() {
    let kit = Kit::builder().build();
    kit.approve("alice");
    let on_disk = |name: &str| std::fs::read(kit.bundle.join(name)).expect("read");
    let model = on_disk(MODEL_FILE);
    let admitted = kit.admit(&keep()).expect("admitted");
    assert_eq!(admitted.model(), Ok(model.as_slice()));
    assert_eq!(admitted.model_sha256(), kit.model_sha256());
    assert_eq!(
        admitted.model_sha256(),
        airlock_trust::shards::sha256_hex(&model)
    );
    assert_eq!(admitted.statement_bytes(), on_disk(STATEMENT_FILE));
    assert_eq!(admitted.statement().predicate.model_name, "fraud-detector");
    assert_eq!(
        admitted.file(MODEL_CARD_FILE),
        Some(&*on_disk(MODEL_CARD_FILE))
    );
    assert_eq!(admitted.approvals().approvals, 1);
    assert_eq!(
        why(admitted.approvals(), &kit.key_id("alice")),
        "valid approval by an officer key"
    );
    // What was admitted is what was verified: a model swapped afterwards is not used.
    kit.flip_byte(MODEL_FILE, None);
    assert_eq!(admitted.model(), Ok(model.as_slice()));
    assert!(!kit.verify().ok());
}

#[test]
fn a_digest_only_gate_admits_without_keeping_the_model() {
    let kit = Kit::builder().build();
    kit.approve("alice");
    let admitted = kit.admit(&GateOptions::digest_only(2)).expect("admitted");
    let err = admitted.model().expect_err("the model was only digested");
    assert!(err.contains("DigestOnly"), "{err}");
    assert_eq!(admitted.file(MODEL_FILE), None);
    assert!(admitted.file(MODEL_CARD_FILE).is_some());
    assert_eq!(admitted.model_sha256(), kit.model_sha256());
}

#[test]
fn k_minus_one_approvals_are_refused_and_k_admitted() {
    let kit = two_of_three();
    kit.approve("alice");
    let (s, msg) = not_approved(kit.admit(&keep()));
    assert_eq!(msg, "1 of 2 required officer approvals");
    assert_eq!((s.approvals, s.required), (1, 2));
    // The same officer again replaces the decision, and still counts once.
    kit.approve("alice");
    let (s, _) = not_approved(kit.admit(&keep()));
    assert_eq!((s.approvals, s.decisions.len()), (1, 1));
    kit.approve("bob");
    let admitted = kit.admit(&keep()).expect("two of two");
    assert_eq!(admitted.approvals().approvals, 2);
}

#[test]
fn one_valid_rejection_blocks_whatever_the_approvals() {
    let kit = two_of_three();
    kit.approve("alice");
    kit.approve("bob");
    kit.admit(&keep()).expect("approved before the rejection");
    kit.reject("carol");
    let (s, msg) = rejected(kit.admit(&keep()));
    // It names the officer (their name and the policy's key name), the reason, and how
    // to clear it.
    let carol = kit.key_id("carol");
    assert!(
        msg.starts_with(&format!(
            "rejected by an officer: carol (key carol {}) rejected it: ",
            &carol[..12]
        )),
        "{msg}"
    );
    assert!(msg.contains("2 of 2 approvals count"), "{msg}");
    assert!(msg.contains("the officer decides again"), "{msg}");
    assert!(msg.contains("a new version"), "{msg}");
    assert!(s.rejected);
    assert_eq!(s.rejections().len(), 1);
    assert!(
        s.progress()
            .starts_with("2 of 2 now, and the rejection by carol")
    );
    assert_eq!(
        why(&s, &kit.key_id("carol")),
        "valid rejection: blocks the release"
    );
    // A rejection cannot be given an expiry.
    assert!(matches!(
        kit.decide("carol", Decision::Reject, Some("1h")),
        Err(ApprovalError::RejectionExpires)
    ));
}

#[test]
fn a_tampered_file_is_refused_naming_the_check() {
    for (file, check) in [
        (MODEL_FILE, "model shard digests"),
        (MODEL_CARD_FILE, "subject digest"),
        (LEAK_REPORT_FILE, "subject digest"),
        (STATEMENT_FILE, "statement.json matches the signed payload"),
        (STATEMENT_DSSE_FILE, "statement signature"),
        (
            PROVENANCE_DSSE_FILE,
            "statement signer valid when it signed",
        ),
    ] {
        let kit = Kit::builder().build();
        kit.approve("alice");
        let len = std::fs::read(kit.bundle.join(file)).expect("read").len();
        // A byte inside the document (for JSON: in a string or a digest, not its syntax).
        let at = if file == MODEL_FILE { len - 1 } else { len / 2 };
        kit.flip_byte(file, Some(at));
        let failed = does_not_verify(kit.admit(&keep()));
        assert!(
            failed.iter().any(|(name, _)| *name == check),
            "{file}: expected {check:?} to fail: {failed:#?}"
        );
    }
}

#[test]
fn a_flipped_model_byte_fails_exactly_the_model_digests() {
    let kit = Kit::builder().build();
    kit.approve("alice");
    kit.flip_byte(MODEL_FILE, None);
    let failed = does_not_verify(kit.admit(&keep()));
    let names: Vec<&str> = failed.iter().map(|f| f.0).collect();
    assert_eq!(
        names,
        ["model shard digests", "model digest"],
        "{failed:#?}"
    );
    assert!(
        failed[0]
            .1
            .contains("differs from the signed shard digests"),
        "{failed:#?}"
    );
}

#[test]
fn an_approval_by_a_key_outside_the_policy_does_not_count() {
    let kit = Kit::builder().build();
    let stranger = kit.stranger("mallory");
    // decide() will not sign with it...
    let refused = decide(
        &DecisionRequest {
            bundle: kit.bundle.clone(),
            key: stranger.private_key.clone(),
            name: "mallory".into(),
            reason: "trust me".into(),
            decision: Decision::Approve,
            expires: None,
        },
        &kit.trust(),
        2,
    );
    match refused {
        Err(ApprovalError::NotAnOfficer { keyid, why }) => {
            assert_eq!(keyid, stranger.key_id);
            assert!(why.contains("does not list it as an officer key"), "{why}");
        }
        other => panic!("expected NotAnOfficer, got {other:?}"),
    }
    // ...and one written by other means does not count.
    kit.forge_decision(
        &stranger.private_key,
        Decision::Approve,
        OffsetDateTime::now_utc(),
        None,
    );
    let (s, msg) = not_approved(kit.admit(&keep()));
    assert_eq!(msg, "0 of 1 required officer approvals");
    assert_eq!(
        why(&s, &stranger.key_id),
        "signed by a key that is not in the trust policy"
    );
}

#[test]
fn a_builder_key_never_counts_as_an_officer() {
    let kit = Kit::builder().build();
    match kit.decide("builder", Decision::Approve, None) {
        Err(ApprovalError::NotAnOfficer { why, .. }) => assert!(why.contains("builder"), "{why}"),
        other => panic!("expected NotAnOfficer, got {other:?}"),
    }
    kit.forge_decision(
        &kit.builder.private_key,
        Decision::Approve,
        OffsetDateTime::now_utc(),
        None,
    );
    let (s, _) = not_approved(kit.admit(&keep()));
    assert_eq!(
        why(&s, &kit.builder.key_id),
        "signed by a builder key: only officer keys count"
    );
}

#[test]
fn an_expired_approval_does_not_count() {
    let kit = Kit::builder().build();
    kit.decide("alice", Decision::Approve, Some("1h"))
        .expect("approve for an hour");
    kit.admit(&keep()).expect("within the hour");
    let later = GateOptions {
        now: Some(OffsetDateTime::now_utc() + time::Duration::hours(2)),
        ..keep()
    };
    let (s, msg) = not_approved(kit.admit(&later));
    assert_eq!(msg, "0 of 1 required officer approvals");
    let w = why(&s, &kit.key_id("alice"));
    assert!(w.starts_with("expired at 20"), "{w}");
    // An expiry in the past is refused when deciding.
    assert!(matches!(
        kit.decide("alice", Decision::Approve, Some("2000-01-01T00:00:00Z")),
        Err(ApprovalError::Expires { .. })
    ));
}

#[test]
fn a_revoked_officer_key_does_not_count() {
    let mut kit = two_of_three();
    kit.approve("alice");
    kit.approve("carol");
    kit.admit(&keep()).expect("approved before the revocation");
    kit.revoke("carol");
    let (s, msg) = not_approved(kit.admit(&keep()));
    assert_eq!(msg, "1 of 2 required officer approvals");
    assert_eq!(
        why(&s, &kit.key_id("carol")),
        "the officer's key is revoked"
    );
    match kit.decide("carol", Decision::Approve, None) {
        Err(ApprovalError::NotAnOfficer { why, .. }) => {
            assert!(why.contains("is revoked by the trust policy"), "{why}");
        }
        other => panic!("expected NotAnOfficer, got {other:?}"),
    }
}

#[test]
fn an_approval_of_another_release_does_not_count() {
    let kit = two_of_three();
    let other_sha = kit.another_release(7, "bundle2");
    assert_ne!(other_sha, kit.model_sha256());
    // Bob approves the other release; his decision is copied into this one.
    let bob = decide(
        &DecisionRequest {
            bundle: kit.join("bundle2"),
            key: kit.key("bob").private_key.clone(),
            name: "bob".into(),
            reason: "ok".into(),
            decision: Decision::Approve,
            expires: None,
        },
        &kit.trust(),
        2,
    )
    .expect("bob approves bundle2");
    kit.approve("alice");
    std::fs::copy(&bob, kit.decision_file("bob")).expect("copy");
    let (s, msg) = not_approved(kit.admit(&keep()));
    assert_eq!(msg, "1 of 2 required officer approvals");
    assert_eq!(
        why(&s, &kit.key_id("bob")),
        "decides on a different release (copied from another bundle?)"
    );
}

#[test]
fn an_extra_file_fails_the_closed_set() {
    for extra in ["notes.txt", "approvals/alice-again.dsse.json"] {
        let kit = Kit::builder().build();
        kit.approve("alice");
        kit.write_file(extra, b"{}\n");
        let v = kit.verify();
        let failed = failed(&v);
        assert_eq!(failed.len(), 1, "{extra}: {failed:#?}");
        assert_eq!(failed[0].0, "bundle files");
        assert!(failed[0].1.contains(extra), "{extra}: {}", failed[0].1);
        does_not_verify(kit.admit(&keep()));
    }
}

#[test]
fn a_signed_failing_leak_report_does_not_verify() {
    let kit = Kit::builder().failing_layer("L3").build();
    let failed = failed(&kit.verify());
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(failed[0].0, "leak verdict");
    assert!(failed[0].1.contains("[\"L3\"]"), "{}", failed[0].1);
}

#[test]
fn a_builder_key_outside_its_window_does_not_sign() {
    let kit = Kit::builder()
        .builder_window(Some("2020-01-01T00:00:00Z"), Some("2021-01-01T00:00:00Z"))
        .build();
    let failed = failed(&kit.verify());
    assert_eq!(failed[0].0, "statement signature", "{failed:#?}");
    assert!(failed[0].1.contains("expired at 2021"), "{}", failed[0].1);
}

#[test]
fn a_model_in_several_shards_verifies_and_a_shard_flip_names_it() {
    let kit = Kit::builder().hidden(&[64, 32]).shard_size(4096).build();
    let len = std::fs::metadata(kit.bundle.join(MODEL_FILE))
        .expect("model")
        .len();
    assert!(len > 4096, "the kit model spans shards ({len} bytes)");
    assert!(kit.verify().ok(), "{:#?}", kit.verify().checks);
    kit.flip_byte(MODEL_FILE, Some(4096));
    let failed = failed(&kit.verify());
    assert!(
        failed
            .iter()
            .any(|(n, d)| *n == "model shard digests" && d.contains("(shards [1])")),
        "{failed:#?}"
    );
}

#[test]
fn a_build_finished_outside_the_builder_keys_window_is_refused() {
    use time::format_description::well_known::Rfc3339;
    let now = OffsetDateTime::now_utc();
    let since = (now - time::Duration::hours(1))
        .format(&Rfc3339)
        .expect("format");
    // Signed by a key valid now, for a build that finished before the key was valid.
    let kit = Kit::builder()
        .builder_window(Some(&since), None)
        .finished_on(now - time::Duration::hours(2))
        .build();
    let failed = failed(&kit.verify());
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(failed[0].0, "statement signer valid when it signed");
    assert!(
        failed[0]
            .1
            .contains(&format!("is not valid before {since}")),
        "{}",
        failed[0].1
    );
    // The same key for a build inside its window.
    let kit = Kit::builder()
        .builder_window(Some(&since), None)
        .finished_on(now - time::Duration::minutes(30))
        .build();
    assert!(kit.verify().ok(), "{:#?}", kit.verify().checks);
}

/// Pending names who approved and which officer keys of the policy have not decided (by
/// key name and short key id).
#[test]
fn pending_names_who_approved_and_who_has_not_decided() {
    let kit = two_of_three();
    kit.approve("alice");
    let r = kit.admit(&keep());
    let Err(e @ Refusal::NotApproved { .. }) = r else {
        panic!("expected pending, got {r:?}")
    };
    let msg = e.to_string();
    let (alice, bob, carol) = (kit.key_id("alice"), kit.key_id("bob"), kit.key_id("carol"));
    assert!(
        msg.contains(&format!("approved by: alice (key alice {})", &alice[..12])),
        "{msg}"
    );
    assert!(
        msg.contains(&format!(
            "not decided: bob (key {}), carol (key {})",
            &bob[..12],
            &carol[..12]
        )),
        "{msg}"
    );
    let Refusal::NotApproved {
        undecided,
        approvals,
        ..
    } = e
    else {
        unreachable!()
    };
    assert_eq!(
        undecided,
        vec![("bob".into(), bob), ("carol".into(), carol)]
    );
    assert_eq!(approvals.progress(), "1 of 2 now");
}

/// Decisions from an approvals inbox are judged with the bundle's, by the same rules: the
/// later decision per key wins wherever it is; a forged, a stranger's, a copied or a
/// misnamed one does not count. Nothing is written to the bundle.
#[test]
fn inbox_decisions_are_judged_with_the_bundles() {
    use airlock_trust::gate::admit_with;
    let kit = two_of_three();
    // Carol rejects in the bundle; the rejection is taken away to serve as an inbox object.
    let carol_reject = std::fs::read(kit.reject("carol")).expect("read");
    let carol_file = format!("{}.dsse.json", kit.key_id("carol"));
    let bob_file = format!("{}.dsse.json", kit.key_id("bob"));
    let bob = std::fs::read(kit.approve("bob")).expect("read");
    std::fs::remove_file(kit.decision_file("bob")).expect("rm");
    std::fs::remove_file(kit.decision_file("carol")).expect("rm");
    kit.approve("alice");
    // Bob's approval from the inbox makes two.
    let inbox = vec![(bob_file.clone(), bob.clone())];
    let admitted = admit_with(&kit.bundle, &kit.trust(), &keep(), &inbox).expect("2 of 2");
    assert_eq!(admitted.approvals().approvals, 2);
    assert!(
        admitted
            .approvals()
            .decisions
            .iter()
            .any(|d| d.file == format!("inbox/{bob_file}") && d.counts)
    );
    assert!(!kit.decision_file("bob").exists(), "nothing written");
    // Carol's rejection from the inbox blocks.
    let inbox = vec![
        (bob_file.clone(), bob.clone()),
        (carol_file.clone(), carol_reject.clone()),
    ];
    let (s, msg) = rejected(admit_with(&kit.bundle, &kit.trust(), &keep(), &inbox));
    assert!(msg.contains("carol"), "{msg}");
    assert_eq!(s.approvals, 2);
    // Carol's later approval (in the bundle) replaces her earlier rejection in the inbox.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    kit.approve("carol");
    let admitted =
        admit_with(&kit.bundle, &kit.trust(), &keep(), &inbox).expect("rejection replaced");
    assert_eq!(admitted.approvals().approvals, 3);
    let d = admitted
        .approvals()
        .decisions
        .iter()
        .find(|d| d.file == format!("inbox/{carol_file}"))
        .expect("reported");
    assert!(!d.counts && d.why.starts_with("superseded"), "{d:?}");
}

/// In an inbox: a decision on another release, one under another key's name, a stranger's
/// and a forged (altered) one count for nothing, each with its reason.
#[test]
fn inbox_decisions_that_do_not_count_are_reported() {
    use airlock_trust::gate::admit_with;
    let kit = two_of_three();
    kit.another_release(7, "bundle2");
    let bob_other = decide(
        &DecisionRequest {
            bundle: kit.join("bundle2"),
            key: kit.key("bob").private_key.clone(),
            name: "bob".into(),
            reason: "ok".into(),
            decision: Decision::Approve,
            expires: None,
        },
        &kit.trust(),
        2,
    )
    .expect("bob approves bundle2");
    let copied = std::fs::read(bob_other).expect("read");
    let stranger = kit.stranger("mallory");
    let forged_by_stranger = std::fs::read(kit.forge_decision(
        &stranger.private_key,
        Decision::Approve,
        OffsetDateTime::now_utc(),
        None,
    ))
    .expect("read");
    std::fs::remove_file(
        kit.bundle
            .join("approvals")
            .join(format!("{}.dsse.json", stranger.key_id)),
    )
    .expect("rm");
    let carol = std::fs::read(kit.approve("carol")).expect("read");
    std::fs::remove_file(kit.decision_file("carol")).expect("rm");
    let mut tampered = String::from_utf8(carol.clone()).expect("utf8");
    let at = tampered.find("\"sig\": \"").expect("sig") + 8;
    let c = if &tampered[at..=at] == "A" { "B" } else { "A" };
    tampered.replace_range(at..=at, c);
    let name = |id: &str| format!("{id}.dsse.json");
    let inbox = vec![
        (name(&kit.key_id("bob")), copied),
        (name(&stranger.key_id), forged_by_stranger),
        (name(&kit.key_id("carol")), tampered.into_bytes()),
        // Carol's genuine approval filed under Alice's key id.
        (name(&kit.key_id("alice")), carol),
    ];
    let (s, _) = not_approved(admit_with(&kit.bundle, &kit.trust(), &keep(), &inbox));
    assert_eq!(s.approvals, 0);
    let why = |id: &str| {
        s.decisions
            .iter()
            .find(|d| d.file == format!("inbox/{}", name(id)))
            .map(|d| (d.counts, d.why.clone()))
            .unwrap_or_else(|| panic!("{id} not reported: {s:#?}"))
    };
    assert_eq!(
        why(&kit.key_id("bob")),
        (
            false,
            "decides on a different release (copied from another bundle?)".into()
        )
    );
    assert_eq!(
        why(&stranger.key_id),
        (
            false,
            "signed by a key that is not in the trust policy".into()
        )
    );
    let (counts, w) = why(&kit.key_id("carol"));
    assert!(!counts && w.starts_with("tampered"), "{w}");
    let (counts, w) = why(&kit.key_id("alice"));
    assert!(
        !counts && w.contains("not the key the file is named after"),
        "{w}"
    );
}
