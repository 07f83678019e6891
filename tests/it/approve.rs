//! k-of-n officer approvals on a 2-of-3 policy, through the CLI, on a test-kit bundle
//! (signed as `airlock package` signs, without training: what these tests are about is the
//! decisions, not the model).

use std::path::Path;

use airlock_testkit::Kit;

use crate::helpers::Sandbox;

/// A sandbox holding a signed bundle (`bundle/`), its keys (`keys/`) and a 2-of-3 officer
/// policy (`trust.toml`: builder ci, officers alice, bob, carol).
struct Release {
    sb: Sandbox,
    kit: Kit,
}

fn setup() -> Release {
    let sb = Sandbox::new();
    let kit = Kit::builder()
        .officers(&["alice", "bob", "carol"])
        .approvals_required(2)
        .build_in(sb.path());
    Release { sb, kit }
}

fn decide(r: &Release, verb: &str, officer: &str, extra: &[&str]) -> std::process::Output {
    let key = format!("keys/{officer}.key");
    let mut args = vec![
        verb,
        "bundle",
        "--trust",
        "trust.toml",
        "--key",
        &key,
        "--name",
        officer,
        "--reason",
        "reviewed the card and the leak report",
    ];
    args.extend_from_slice(extra);
    r.sb.airlock(&args)
}

/// Another release of the same model (other weights), signed by the same builder, at `out`.
fn other_release(r: &Release, seed: u64, out: &str) {
    r.kit.another_release(seed, out);
}

fn approve(r: &Release, officer: &str) {
    let out = decide(r, "approve", officer, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// (exit code, stderr) of `verify --require-approvals`.
fn gate(r: &Release) -> (Option<i32>, String) {
    let out = r.sb.airlock(&[
        "verify",
        "bundle",
        "--trust",
        "trust.toml",
        "--require-approvals",
    ]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn key_id(r: &Release, name: &str) -> String {
    r.kit.key_id(name)
}

fn approval_file(r: &Release, name: &str) -> std::path::PathBuf {
    r.kit.decision_file(name)
}

#[test]
fn one_approval_does_not_suffice_and_two_do() {
    let r = setup();
    let (code, err) = gate(&r);
    assert_eq!(code, Some(6), "{err}");
    assert!(err.contains("0 of 2 required"), "{err}");
    approve(&r, "alice");
    let (code, err) = gate(&r);
    assert_eq!(code, Some(6), "{err}");
    assert!(err.contains("1 of 2 required"), "{err}");
    approve(&r, "bob");
    let (code, err) = gate(&r);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("2 of 2 required"), "{err}");
    // Plain verification does not need approvals.
    assert!(
        r.sb.airlock(&["verify", "bundle", "--trust", "trust.toml"])
            .status
            .success()
    );
}

#[test]
fn the_same_officer_twice_counts_once() {
    let r = setup();
    approve(&r, "alice");
    let f = approval_file(&r, "alice");
    // A copy under another name is not a decision file: the bundle no longer verifies
    // (issue 12: a bundle is exactly its closed set; this used to count as "superseded").
    std::fs::copy(&f, r.sb.join("bundle/approvals/alice-again.dsse.json")).expect("copy");
    let (code, err) = gate(&r);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("FAIL bundle files"), "{err}");
    assert!(err.contains("approvals/alice-again.dsse.json"), "{err}");
    std::fs::remove_file(r.sb.join("bundle/approvals/alice-again.dsse.json")).expect("rm");
    // A second decision by the same officer replaces the first (same file).
    approve(&r, "alice");
    let (code, err) = gate(&r);
    assert_eq!(code, Some(6), "{err}");
    assert!(err.contains("1 of 2 required"), "{err}");
    assert_eq!(
        std::fs::read_dir(r.sb.join("bundle/approvals"))
            .expect("dir")
            .count(),
        1
    );
}

#[test]
fn a_builder_key_never_counts_as_an_officer() {
    let r = setup();
    let out = decide(&r, "approve", "builder", &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("builder"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Forged into the bundle by hand, it still does not count.
    approve(&r, "alice");
    let alice = std::fs::read(approval_file(&r, "alice")).expect("read");
    let env: airlock_schemas::Envelope = serde_json::from_slice(&alice).expect("env");
    use base64::Engine as _;
    let payload = base64::engine::general_purpose::STANDARD
        .decode(&env.payload)
        .expect("b64");
    let builder =
        airlock_trust::keys::Signer::load(&r.kit.builder.private_key).expect("builder key");
    let forged = airlock_trust::dsse::sign(&env.payload_type, &payload, &builder);
    std::fs::write(
        r.sb.join(&format!("bundle/approvals/{}.dsse.json", builder.key_id())),
        serde_json::to_vec(&forged).expect("json"),
    )
    .expect("write");
    let (code, err) = gate(&r);
    assert_eq!(code, Some(6), "{err}");
    assert!(err.contains("1 of 2 required"), "{err}");
    assert!(
        err.contains("builder key: only officer keys count"),
        "{err}"
    );
}

#[test]
fn a_revoked_key_does_not_count() {
    let r = setup();
    approve(&r, "alice");
    approve(&r, "carol");
    assert_eq!(gate(&r).0, Some(0));
    let policy = std::fs::read_to_string(r.sb.join("trust.toml")).expect("read");
    let policy = policy.replacen(
        "approvals_required = 2\n",
        &format!(
            "approvals_required = 2\nrevoked = [\"{}\"]\n",
            key_id(&r, "carol")
        ),
        1,
    );
    r.sb.write("trust.toml", &policy);
    let (code, err) = gate(&r);
    assert_eq!(code, Some(6), "{err}");
    assert!(err.contains("revoked"), "{err}");
    // And a revoked key cannot record new decisions.
    assert_eq!(decide(&r, "approve", "carol", &[]).status.code(), Some(3));
}

#[test]
fn an_expired_approval_does_not_count() {
    let r = setup();
    approve(&r, "alice");
    let out = decide(&r, "approve", "bob", &["--expires", "1s"]);
    assert!(out.status.success());
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let (code, err) = gate(&r);
    assert_eq!(code, Some(6), "{err}");
    assert!(err.contains("expired at"), "{err}");
    let out = decide(&r, "approve", "bob", &["--expires", "yesterday"]);
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn one_valid_rejection_blocks() {
    let r = setup();
    approve(&r, "alice");
    approve(&r, "bob");
    let out = decide(&r, "reject", "carol", &[]);
    assert!(out.status.success());
    let (code, err) = gate(&r);
    assert_eq!(code, Some(8), "{err}");
    assert!(err.contains("valid rejection blocks"), "{err}");
    // The refusal names the officer (name and key name), the reason and how to clear it.
    assert!(
        err.contains("rejected by an officer: carol (key carol ")
            && err.contains("reviewed the card and the leak report")
            && err.contains("the officer decides again"),
        "{err}"
    );
    // The officer decides again with the same key: the approval replaces the rejection.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = decide(&r, "approve", "carol", &[]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "3 of 2 now: approved"
    );
    let (code, err) = gate(&r);
    assert_eq!(code, Some(0), "{err}");
}

/// `approve` and `reject` print "k of n now": the approvals that count of the required,
/// and whether a rejection blocks.
#[test]
fn decisions_print_k_of_n_now() {
    let r = setup();
    let out = decide(&r, "approve", "alice", &[]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1 of 2 now");
    let out = decide(&r, "reject", "bob", &[]);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.starts_with("1 of 2 now, and the rejection by bob (key bob "),
        "{s}"
    );
    // Pending: verify names who approved and who has not decided (exit 6).
    let out = decide(&r, "approve", "bob", &[]);
    assert!(out.status.success());
    let (code, err) = gate(&r);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn an_approval_copied_from_another_bundle_does_not_count() {
    let r = setup();
    // Another release: the same pipeline with another seed.
    other_release(&r, 7, "bundle2");
    let out = r.sb.airlock(&[
        "approve",
        "bundle2",
        "--trust",
        "trust.toml",
        "--key",
        "keys/bob.key",
        "--name",
        "bob",
        "--reason",
        "ok",
    ]);
    assert!(out.status.success());
    approve(&r, "alice");
    let bob = format!("{}.dsse.json", key_id(&r, "bob"));
    std::fs::copy(
        r.sb.join("bundle2/approvals").join(&bob),
        r.sb.join("bundle/approvals").join(&bob),
    )
    .expect("copy");
    let (code, err) = gate(&r);
    assert_eq!(code, Some(6), "{err}");
    assert!(err.contains("different release"), "{err}");
}

#[test]
fn a_tampered_approval_does_not_count_and_is_reported() {
    let r = setup();
    approve(&r, "alice");
    approve(&r, "bob");
    let f = approval_file(&r, "bob");
    let text = std::fs::read_to_string(&f).expect("read");
    let mut env: serde_json::Value = serde_json::from_str(&text).expect("json");
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload = String::from_utf8(
        b64.decode(env["payload"].as_str().expect("payload"))
            .expect("b64"),
    )
    .expect("utf-8");
    let payload = payload.replace("reviewed the card", "rubber-stamped the card");
    env["payload"] = b64.encode(payload).into();
    std::fs::write(&f, serde_json::to_vec(&env).expect("json")).expect("write");
    let (code, err) = gate(&r);
    assert_eq!(code, Some(6), "{err}");
    assert!(err.contains("tampered"), "{err}");
    assert!(err.contains("1 of 2 required"), "{err}");
}

#[test]
fn approving_a_bundle_that_does_not_verify_is_refused() {
    let r = setup();
    let m = r.sb.join("bundle/model.safetensors");
    let mut b = std::fs::read(&m).expect("read");
    let last = b.len() - 1;
    b[last] ^= 1;
    std::fs::write(&m, b).expect("write");
    let out = decide(&r, "approve", "alice", &[]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!Path::new(&approval_file(&r, "alice")).exists());
}

#[test]
fn trust_policy_errors_name_the_line() {
    let r = setup();
    let policy = std::fs::read_to_string(r.sb.join("trust.toml")).expect("read");
    r.sb.write(
        "bad.toml",
        &policy.replacen(
            "role = \"officer\"",
            "role = \"officer\"\nnot_after = \"next tuesday\"",
            1,
        ),
    );
    let out = r.sb.airlock(&["verify", "bundle", "--trust", "bad.toml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("line 11") && err.contains("not an RFC 3339 time"),
        "{err}"
    );
    r.sb.write(
        "bad2.toml",
        &policy.replacen("approvals_required = 2", "approvals_required = 5", 1),
    );
    let out = r.sb.airlock(&["verify", "bundle", "--trust", "bad2.toml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("line 1") && err.contains("only 3 distinct officer keys"),
        "{err}"
    );
}

#[test]
fn review_writes_a_self_contained_page_and_a_terminal_summary() {
    let r = setup();
    approve(&r, "alice");
    other_release(&r, 9, "old");
    let out = r.sb.ok(&[
        "review",
        "bundle",
        "--trust",
        "trust.toml",
        "--out",
        "review.html",
        "--previous",
        "old",
    ]);
    assert!(out.contains("1 of 2"), "{out}");
    let html = std::fs::read_to_string(r.sb.join("review.html")).expect("page");
    for needle in [
        "id=\"loss-chart\"",
        "id=\"roc-chart\"",
        "id=\"approvals\"",
        "data-layer=\"L3\"",
        "alice",
    ] {
        assert!(html.contains(needle), "{needle} missing from the page");
    }
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "nothing outside the file"
    );
    let err = r.sb.fails(
        &["review", "nope", "--trust", "trust.toml", "--out", "x.html"],
        3,
    );
    assert!(err.contains("not a bundle directory"), "{err}");
}

#[test]
fn review_labels_a_previous_release_that_does_not_verify() {
    let r = setup();
    other_release(&r, 9, "old");
    let args = [
        "review",
        "bundle",
        "--trust",
        "trust.toml",
        "--out",
        "review.html",
        "--previous",
        "old",
    ];
    let out = r.sb.ok(&args);
    assert!(!out.contains("does NOT verify"), "{out}");
    let html = std::fs::read_to_string(r.sb.join("review.html")).expect("page");
    assert!(html.contains("id=\"changes\"") && !html.contains("previous-unverified"));

    // The previous release's leak report no longer matches its signed digest.
    let report = r.sb.join("old/leak-report.json");
    let mut bytes = std::fs::read(&report).expect("report");
    bytes.push(b'\n');
    std::fs::write(&report, bytes).expect("tamper");
    let out = r.sb.ok(&args);
    assert!(out.contains("(that release does NOT verify):"), "{out}");
    let html = std::fs::read_to_string(r.sb.join("review.html")).expect("page");
    assert!(html.contains("id=\"previous-unverified\""));
    // Still compared, as before: the comparison is labelled, not dropped.
    assert!(html.contains("id=\"what-changed\""));
}

#[test]
fn review_shows_the_bytes_the_verification_read() {
    use airlock_review::command::{Options, load};
    let r = setup();
    let opts = Options {
        bundle: r.sb.join("bundle"),
        trust: r.sb.join("trust.toml"),
        previous: None,
        threads: 2,
    };
    let loaded = load(&opts).expect("the bundle loads");
    assert!(loaded.verification().ok());

    // Swap the model card on disk between the verification and the rendering.
    let card_path = r.sb.join("bundle/model-card.json");
    let verified = std::fs::read(&card_path).expect("card");
    let mut card: serde_json::Value = serde_json::from_slice(&verified).expect("card json");
    let shown = card["name"].as_str().expect("card name").to_owned();
    card["name"] = serde_json::json!("swapped-after-verification");
    std::fs::write(&card_path, serde_json::to_vec_pretty(&card).expect("json")).expect("swap");

    // The page shows the verified card and its digest, under a banner that is still true.
    let page = loaded.render();
    assert!(!page.html.contains("swapped-after-verification"));
    assert!(
        page.html.contains(&format!("<h1>{shown} <span")),
        "card name shown"
    );
    let digest = airlock_trust::shards::sha256_hex(&verified);
    assert!(
        page.html.contains(&format!(
            "<tr><td><code>model-card.json</code></td><td><code class=\"digest\">{digest}</code>"
        )),
        "the card's digest is that of the verified bytes"
    );
    assert!(page.html.contains("data-status=\"ready\""));
    assert!(
        page.text.contains("status:       Ready to approve"),
        "{}",
        page.text
    );

    // Control: a review started after the swap sees it, and says it does not verify.
    let again = load(&opts).expect("loads").render();
    assert!(again.html.contains("swapped-after-verification"));
    assert!(again.html.contains("data-status=\"does-not-verify\""));
}
