//! Federated learning: bad actors against a real Flower SuperLink and SuperNodes on
//! loopback (Flower installed by tests/setup-flower.sh), and the refusals of each step's
//! command on files an attacker edited.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use airlock_federation::{
    DemoOptions, Federation, Layout, Loopback, flower_app_dir, prepare_demo, read_round,
};
use airlock_schemas::RoundPredicate;

use crate::helpers::Sandbox;

/// The Flower venv's bin folder, made once per test binary.
fn flower_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = std::process::Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/setup-flower.sh"
            ))
            .output()
            .expect("run tests/setup-flower.sh");
        assert!(
            out.status.success(),
            "tests/setup-flower.sh failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8(out.stdout).expect("utf-8").trim())
    })
    .clone()
}

fn airlock() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_airlock"))
}

/// A demo federation of `sites` sites under the sandbox, `rounds` rounds of one epoch.
fn federation(sb: &Sandbox, sites: usize, rounds: u32, rows: usize) -> Layout {
    prepare_demo(&DemoOptions {
        out: sb.join("fed"),
        rounds,
        epochs_per_round: 1,
        rows_per_site: rows,
        airlock: airlock(),
        flower_bin: flower_bin(),
        sites,
    })
    .expect("prepare the federation")
}

/// airlock's Flower app with the test's bad site wrapped around its ClientApp.
fn evil_app(sb: &Sandbox) -> PathBuf {
    let app = flower_app_dir(&sb.join("app")).expect("write the app");
    std::fs::write(
        app.join("airlock_flower/evil.py"),
        include_str!("../federation/evil_client.py"),
    )
    .expect("write evil.py");
    let pyproject = app.join("pyproject.toml");
    let text = std::fs::read_to_string(&pyproject).expect("read pyproject");
    let patched = text.replace(
        "clientapp = \"airlock_flower.client:app\"",
        "clientapp = \"airlock_flower.evil:app\"",
    );
    assert_ne!(text, patched);
    std::fs::write(&pyproject, patched).expect("write pyproject");
    app
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).expect("read");
    assert!(text.contains(from), "{} lacks {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).expect("write");
}

fn round(layout: &Layout, n: u32) -> RoundPredicate {
    let fed = Federation::load(&layout.federation).expect("load the federation");
    read_round(&fed, &layout.state.join(format!("rounds/{n:06}")), n)
        .unwrap_or_else(|e| panic!("round {n}: {e}"))
        .predicate
}

fn accepted(p: &RoundPredicate) -> Vec<String> {
    let mut v: Vec<String> = p.accepted.iter().map(|c| c.site.clone()).collect();
    v.sort();
    v
}

fn refusals(p: &RoundPredicate) -> String {
    p.refused
        .iter()
        .map(|r| format!("{}: {}", r.from, r.reason))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Run the federation's app on a loopback Flower; returns the run's output.
fn run(fl: &Loopback, app: &Path, layout: &Layout, more: &[(&'static str, String)]) -> String {
    let mut config = layout.run_config(&airlock());
    config.extend(more.iter().cloned());
    let mut out = String::new();
    let ok = fl
        .run(app, &config, &mut |l| {
            out.push_str(l);
            out.push('\n');
        })
        .expect("flwr run");
    assert!(ok, "flwr run failed:\n{out}");
    out
}

/// A revoked site, a site whose own L2 refuses its update, the same site sending the
/// update anyway, and then without its statement: each is left out with its reason, the
/// honest sites' rounds go on, and the audit log records every refusal and verifies.
#[test]
fn federation_leaves_out_revoked_leaking_forged_and_unsigned_updates() {
    let sb = Sandbox::new();
    let layout = federation(&sb, 4, 3, 600);
    // travel-bank's key is revoked in the aggregator's trust policy (sites do not check
    // their own key: the aggregator decides).
    let fed = Federation::load(&layout.federation).expect("load");
    let travel = fed.spec.site("travel-bank").expect("site").key_id.clone();
    let trust = layout.federation.with_file_name("trust.toml");
    let text = std::fs::read_to_string(&trust).expect("read trust");
    std::fs::write(&trust, format!("revoked = [\"{travel}\"]\n{text}")).expect("write trust");
    let mut sites = layout.sites.clone();
    sites[3].extra = vec![("attack".into(), "1:leak-seal,2:leak-send,3:unsigned".into())];
    let app = evil_app(&sb);
    let fl = Loopback::start(&flower_bin(), &sb.join("flower"), &airlock(), &sites)
        .expect("start Flower");
    let out = run(&fl, &app, &layout, &[]);

    let r0 = round(&layout, 0);
    assert_eq!(
        accepted(&r0),
        ["bank-3", "online-bank", "retail-bank"],
        "{out}"
    );
    assert!(refusals(&r0).contains("revoked"), "{}", refusals(&r0));
    for n in 1..=3 {
        let r = round(&layout, n);
        assert_eq!(
            accepted(&r),
            ["online-bank", "retail-bank"],
            "round {n}:\n{out}"
        );
        let why = refusals(&r);
        assert!(
            why.contains("travel-bank") && why.contains("revoked"),
            "round {n}: {why}"
        );
    }
    // Round 1: the site's own L2 refused the planted row; nothing was signed.
    let seal = std::fs::read_to_string(sites[3].work.join("seal-1.log")).expect("seal log");
    assert!(
        seal.starts_with("5\n"),
        "seal must exit 5 (leak refused): {seal}"
    );
    assert!(seal.contains("L2 exact-records fails"), "{seal}");
    assert!(
        refusals(&round(&layout, 1)).contains("refused by the site's own checks"),
        "{}",
        refusals(&round(&layout, 1))
    );
    // Round 2: sent anyway, with the honest update's statement.
    assert!(
        refusals(&round(&layout, 2)).contains("is not what site bank-3 signed"),
        "{}",
        refusals(&round(&layout, 2))
    );
    // Round 3: no statement.
    assert!(
        refusals(&round(&layout, 3)).contains("no signed statement"),
        "{}",
        refusals(&round(&layout, 3))
    );

    let log = layout.audit_log.display().to_string();
    let trust_arg = trust.display().to_string();
    let shown = sb.ok(&["audit", "show", &log, "--trust", &trust_arg]);
    assert!(
        shown.contains("federated-update") && shown.contains("refused"),
        "{shown}"
    );
    assert!(shown.contains("model weights only"), "{shown}");
    sb.ok(&["audit", "verify", &log, "--trust", &trust_arg]);
}

/// The aggregator stops after round 1 and a new ServerApp resumes from the signed chain;
/// a site drops out (its SuperNode is killed) and the quorum holds; a site replays its
/// round-1 update in round 2 and is left out; then the global model is a run directory.
#[test]
fn federation_resumes_after_a_restart_and_survives_dropout_and_replay() {
    let sb = Sandbox::new();
    let layout = federation(&sb, 4, 3, 600);
    // Rounds wait at most 60 s for a site that dropped out (honest sites on a loaded CI
    // machine need well under that).
    edit(
        &layout.federation,
        "round_timeout_seconds = 600",
        "round_timeout_seconds = 60",
    );
    let mut sites = layout.sites.clone();
    sites[2].extra = vec![("attack".into(), "2:replay".into())];
    let app = evil_app(&sb);
    let mut fl = Loopback::start(&flower_bin(), &sb.join("flower"), &airlock(), &sites)
        .expect("start Flower");
    // (Flower's log stream may drop the ServerApp's last lines: the state is what counts.)
    let first = run(&fl, &app, &layout, &[("stop-after-round", "1".into())]);
    let status = sb.ok(&[
        "federate",
        "status",
        "--federation",
        &layout.federation.display().to_string(),
        "--state",
        &layout.state.display().to_string(),
    ]);
    assert!(status.contains("\"next_round\":2"), "{status}");

    fl.kill_site("bank-3");
    let second = run(&fl, &app, &layout, &[]);
    let r1 = round(&layout, 1);
    let r2 = round(&layout, 2);
    let r3 = round(&layout, 3);
    assert_eq!(accepted(&r1).len(), 4, "{first}");
    // The chain holds across the restart.
    let fed = Federation::load(&layout.federation).expect("load");
    let one = read_round(&fed, &layout.state.join("rounds/000001"), 1).expect("round 1");
    assert_eq!(r2.previous.as_deref(), Some(one.envelope_sha256.as_str()));
    assert_eq!(accepted(&r2), ["online-bank", "retail-bank"], "{second}");
    let why = refusals(&r2);
    assert!(
        why.contains("not of round 2: a replayed or stale update"),
        "{why}"
    );
    assert!(why.contains("no update arrived"), "{why}");
    assert_eq!(
        accepted(&r3),
        ["online-bank", "retail-bank", "travel-bank"],
        "{second}"
    );

    let run_dir = sb.join("global-run");
    sb.ok(&[
        "federate",
        "finalize",
        "--federation",
        &layout.federation.display().to_string(),
        "--state",
        &layout.state.display().to_string(),
        "--data",
        &layout.sites[0].data.display().to_string(),
        "--out",
        &run_dir.display().to_string(),
    ]);
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(run_dir.join("training-record.json")).expect("record"),
    )
    .expect("json");
    let f = &record["federation"];
    assert_eq!(f["rounds"], 3);
    assert_eq!(f["sites"].as_array().map(Vec::len), Some(4));
    let bank3 = f["sites"]
        .as_array()
        .and_then(|s| s.iter().find(|x| x["site"] == "bank-3"))
        .expect("bank-3");
    assert_eq!(bank3["rounds_accepted"], 1);
    assert_eq!(bank3["rounds_missing"], 2);
}

/// Each step refuses what an attacker edited, without Flower: a global model that is not
/// the one the aggregator signed, a round folder rewritten in the state, a round closed
/// twice, a round without its quorum, a federation finalized early.
#[test]
fn federation_steps_refuse_edited_rounds_and_missing_quorum() {
    let sb = Sandbox::new();
    let layout = federation(&sb, 3, 2, 400);
    // The sites train with FedProx's proximal term here (the Flower tests run FedAvg).
    edit(
        &layout.federation,
        "min_sites = 2\n",
        "min_sites = 2\nstrategy = \"fedprox\"\nproximal_mu = 0.1\n",
    );
    let f = layout.federation.display().to_string();
    let state = layout.state.display().to_string();
    let key = layout.aggregator_key.display().to_string();
    let log = layout.audit_log.display().to_string();
    let site_round = |i: usize, round: u32, global: Option<&Path>, out: &str| {
        let s = &layout.sites[i];
        let mut args = vec![
            "federate".to_owned(),
            "site".into(),
            "--federation".into(),
            f.clone(),
            "--site".into(),
            s.name.clone(),
            "--data".into(),
            s.data.display().to_string(),
            "--key".into(),
            s.key.display().to_string(),
            "--round".into(),
            round.to_string(),
            "--out".into(),
            sb.join(out).display().to_string(),
        ];
        if let Some(g) = global {
            args.extend(["--global".into(), g.display().to_string()]);
        }
        sb.airlock(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    std::fs::create_dir_all(sb.join("updates0")).expect("mkdir");
    for i in 0..2 {
        let out = site_round(i, 0, None, &format!("updates0/site-{i}"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let aggregate = |round: &str, updates: &str| {
        sb.airlock(&[
            "federate",
            "aggregate",
            "--federation",
            &f,
            "--state",
            &state,
            "--key",
            &key,
            "--round",
            round,
            "--updates",
            &sb.join(updates).display().to_string(),
            "--audit-log",
            &log,
        ])
    };
    let r0 = aggregate("0", "updates0");
    assert!(
        r0.status.success(),
        "{}",
        String::from_utf8_lossy(&r0.stderr)
    );
    // Closing round 0 again is refused.
    let again = aggregate("0", "updates0");
    assert_eq!(
        again.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // A site refuses a global model that is not the signed one.
    let sent = sb.join("sent");
    std::fs::create_dir_all(&sent).expect("mkdir");
    for name in ["global.safetensors", "preprocess.json", "round.dsse.json"] {
        std::fs::copy(
            layout.state.join("rounds/000000").join(name),
            sent.join(name),
        )
        .expect("copy");
    }
    let global = sent.join("global.safetensors");
    let mut bytes = std::fs::read(&global).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&global, &bytes).expect("write");
    let refused = site_round(0, 1, Some(&sent), "u1");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(4), "{err}");
    assert!(
        err.contains("global.safetensors is not the file the aggregator signed"),
        "{err}"
    );
    assert!(!sb.join("u1").exists());

    // One update where the quorum needs two (a copy of it in a second folder, and one
    // with an extra file, do not count): no round is signed, the refusals are logged.
    std::fs::create_dir_all(sb.join("updates1")).expect("mkdir");
    let good = site_round(
        0,
        1,
        Some(&layout.state.join("rounds/000000")),
        "updates1/site-0",
    );
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    for copy in ["dup", "extra"] {
        let to = sb.join(&format!("updates1/{copy}"));
        std::fs::create_dir_all(&to).expect("mkdir");
        for name in ["update.safetensors", "update.dsse.json"] {
            std::fs::copy(sb.join("updates1/site-0").join(name), to.join(name)).expect("copy");
        }
    }
    std::fs::write(sb.join("updates1/extra/notes.txt"), "hello").expect("write");
    let short = aggregate("1", "updates1");
    let err = String::from_utf8_lossy(&short.stderr);
    assert_eq!(short.status.code(), Some(4), "{err}");
    assert!(err.contains("1 of the 2 updates the quorum needs"), "{err}");
    assert!(!layout.state.join("rounds/000001").exists());
    let shown = sb.ok(&["audit", "show", &log]);
    assert!(
        shown.contains("a second update from site online-bank"),
        "{shown}"
    );
    assert!(shown.contains("the reply holds \"notes.txt\""), "{shown}");

    // With the second site's update the round is signed, the copies still left out.
    let other = site_round(
        1,
        1,
        Some(&layout.state.join("rounds/000000")),
        "updates1/site-1",
    );
    assert!(
        other.status.success(),
        "{}",
        String::from_utf8_lossy(&other.stderr)
    );
    let r1 = aggregate("1", "updates1");
    assert!(
        r1.status.success(),
        "{}",
        String::from_utf8_lossy(&r1.stderr)
    );
    assert_eq!(accepted(&round(&layout, 1)), ["online-bank", "retail-bank"]);
    assert!(refusals(&round(&layout, 1)).contains("a second update"));

    // Finalizing before the last round is refused.
    let early = sb.airlock(&[
        "federate",
        "finalize",
        "--federation",
        &f,
        "--state",
        &state,
        "--data",
        &layout.sites[0].data.display().to_string(),
        "--out",
        &sb.join("run").display().to_string(),
    ]);
    assert_eq!(
        early.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&early.stderr)
    );

    // A signed round deleted from the state (to sign round 1 again, differently): the
    // audit log remembers it.
    let gone = sb.join("round1-gone");
    std::fs::rename(layout.state.join("rounds/000001"), &gone).expect("move");
    let again = aggregate("1", "updates1");
    let err = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(3), "{err}");
    assert!(err.contains("a round was deleted or replaced"), "{err}");
    std::fs::rename(&gone, layout.state.join("rounds/000001")).expect("move back");
    sb.ok(&[
        "audit",
        "verify",
        &log,
        "--trust",
        &layout
            .federation
            .with_file_name("trust.toml")
            .display()
            .to_string(),
    ]);

    // A round rewritten in the state breaks the chain for every later step.
    edit(
        &layout.state.join("rounds/000000/preprocess.json"),
        "\"mean\"",
        " \"mean\"",
    );
    let status = sb.airlock(&["federate", "status", "--federation", &f, "--state", &state]);
    let err = String::from_utf8_lossy(&status.stderr);
    assert_eq!(status.status.code(), Some(3), "{err}");
    assert!(
        err.contains("round 0: preprocess.json is not the file the aggregator signed"),
        "{err}"
    );
}
