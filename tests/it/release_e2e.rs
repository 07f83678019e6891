//! The whole release against a real moto server: `airlock run` stops at the gate, officers
//! approve, the rerun skips training and packaging, publishes to S3, registers an Approved
//! model package and brings the endpoint InService; the cloud team pulls and serves what
//! `airlock predict` computes; the audit log verifies. And: a SIGINT in any stage, then a
//! rerun, finishes the release with nothing half-written trusted.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::helpers::Sandbox;
use crate::moto::{Moto, REGION};
use crate::pipeline_run::{approve_as, edit_pipeline, records, run, signed_sandbox, skipped};
use crate::serve::{assert_predictions, holdout, start};

const BUCKET: &str = "airlock-releases";
const IMAGE: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/airlock-serve:1";

fn destinations() -> String {
    format!(
        "\n[publish]\nregistry = \"s3://{BUCKET}/prod\"\nresidency = \"../residency.toml\"\n\
         key = \"../keys/publisher.key\"\naudit_log = \"../audit.log\"\nregion = \"{REGION}\"\n\
         [publish.sagemaker]\nimage = \"{IMAGE}\"\n\
         \n[deploy]\nendpoint = \"fraud-scoring\"\nrole = \"arn:aws:iam::123456789012:role/airlock-serving\"\n\
         instance_count = 1\npoll_seconds = 1\ntimeout_seconds = 120\n"
    )
}

fn release_sandbox(moto: &Moto, rows: usize, edits: &[(&str, &str)], k: usize) -> Sandbox {
    release_sandbox_with(moto, rows, edits, k, "")
}

/// [`release_sandbox`] with `extra` after the `[deploy]` section.
fn release_sandbox_with(
    moto: &Moto,
    rows: usize,
    edits: &[(&str, &str)],
    k: usize,
    extra: &str,
) -> Sandbox {
    moto.create_bucket(BUCKET, REGION);
    let sb = signed_sandbox(rows, edits, k, &format!("{}{extra}", destinations()));
    sb.write(
        "residency.toml",
        "[registry]\nregions = [\"eu-west-1\"]\n[sagemaker]\nregions = [\"eu-west-1\"]\n",
    );
    sb
}

/// The endpoint's status and config name.
fn endpoint(moto: &Moto) -> (String, String) {
    let ep = moto
        .block(
            moto.sagemaker()
                .describe_endpoint()
                .endpoint_name("fraud-scoring")
                .send(),
        )
        .expect("endpoint");
    (
        ep.endpoint_status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        ep.endpoint_config_name().unwrap_or_default().to_owned(),
    )
}

/// The entries of `dir` under the sandbox that are not hidden (staging directories are).
fn visible(sb: &Sandbox, dir: &str) -> Vec<PathBuf> {
    std::fs::read_dir(sb.join(dir)).map_or_else(
        |_| Vec::new(),
        |d| {
            d.map(|e| e.expect("entry").path())
                .filter(|p| {
                    !p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                })
                .collect()
        },
    )
}

/// `airlock pull` of the release from the bucket into `served/`, which must succeed.
fn pull(sb: &Sandbox, env: &[(String, String)]) {
    let pulled = sb.airlock_env(
        &[
            "pull",
            &format!("s3://{BUCKET}/prod/models/fraud-detector"),
            "--trust",
            "trust.toml",
            "--out",
            "served",
        ],
        env,
    );
    assert!(
        pulled.status.success(),
        "{}",
        String::from_utf8_lossy(&pulled.stderr)
    );
}

/// Every one of `stages` said it was skipped.
fn all_skipped(err: &str, stages: &[&str]) {
    for s in stages {
        assert!(skipped(err, s), "{s}: {err}");
    }
}

#[test]
fn release_end_to_end_stops_at_the_gate_resumes_and_serves_what_predict_computes() {
    let moto = Moto::start();
    let sb = release_sandbox(&moto, 3000, &[], 2);
    let env = moto.env();

    let (code, bundle, err) = run(&sb, &env, &[]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("0 of 2 required officer approvals"), "{err}");
    // Before approval only the staging for review crosses (issue 14): under review/, never
    // models/, so nothing is released.
    let staged: Vec<String> = moto.list(BUCKET).into_iter().map(|(k, _)| k).collect();
    assert!(
        staged.contains(&"prod/review/fraud-detector/1.0.0/release.json".to_owned()),
        "{staged:?}"
    );
    assert!(
        !staged.iter().any(|k| k.starts_with("prod/models/")),
        "nothing is released before approval: {staged:?}"
    );
    assert!(err.contains("staged for review: s3://"), "{err}");

    // Two officers approve; the rerun resumes at the gate.
    approve_as(&sb, "alice", &bundle);
    let (code, _, err) = run(&sb, &env, &[]);
    assert_eq!(code, 6, "one approval of two is not enough: {err}");
    approve_as(&sb, "bob", &bundle);
    let (code, out, err) = run(&sb, &env, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, bundle);
    all_skipped(&err, &["train", "package"]);
    assert!(
        err.contains(&format!("== publish to s3://{BUCKET}/prod")),
        "{err}"
    );
    assert!(
        err.contains("== deploy to SageMaker endpoint fraud-scoring"),
        "{err}"
    );
    assert!(err.contains("left the premises on this run:"), "{err}");
    // publish: a `start` entry before the registry and before SageMaker, each with its
    // outcome; deploy: the same for the model package (already registered) and the endpoint.
    assert!(err.contains("audit entries written: 8"), "{err}");

    // S3 holds the release; the model package is Approved; the endpoint is InService.
    let keys: Vec<String> = moto.list(BUCKET).into_iter().map(|(k, _)| k).collect();
    assert!(
        keys.contains(&"prod/models/fraud-detector/1.0.0/release.json".to_owned()),
        "{keys:?}"
    );
    let sm = moto.sagemaker();
    let pkgs = moto
        .block(
            sm.list_model_packages()
                .model_package_group_name("fraud-detector")
                .send(),
        )
        .expect("packages");
    assert_eq!(pkgs.model_package_summary_list().len(), 1);
    assert_eq!(
        pkgs.model_package_summary_list()[0]
            .model_approval_status()
            .map(|s| s.as_str()),
        Some("Approved")
    );
    let (status, config) = endpoint(&moto);
    assert_eq!(status, "InService");

    // The cloud team pulls, serves, and gets what `airlock predict` computes on the run.
    pull(&sb, &env);
    let runs = visible(&sb, "runs");
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run_dir = runs[0].clone();
    let h = holdout(&sb, &run_dir, &sb.join("data/transactions.csv"));
    {
        let server = start(&sb, "served");
        assert_predictions(server.port, &h);
    }
    let v = sb.ok(&["audit", "verify", "audit.log", "--trust", "trust.toml"]);
    // 2 of staging (start, stage) and 8 of publish and deploy.
    assert!(v.contains("10 entries"), "{v}");
    // And against the bucket that witnesses it.
    let w = sb.airlock_env(
        &[
            "audit",
            "verify",
            "audit.log",
            "--trust",
            "trust.toml",
            "--registry",
            &format!("s3://{BUCKET}/prod"),
        ],
        &env,
    );
    let out = String::from_utf8_lossy(&w.stdout);
    assert!(w.status.success(), "{}", String::from_utf8_lossy(&w.stderr));
    assert!(
        out.contains("1 release(s) recorded in it")
            // Entries 1 and 2 are the staging for review's (start, stage).
            && out.contains("fraud-detector 1.0.0: entry 3"),
        "{out}"
    );

    // Only the endpoint's settings changed: only deploy runs, and the endpoint is updated.
    edit_pipeline(
        &sb,
        "instance_count = 1\npoll_seconds",
        "instance_count = 2\npoll_seconds",
    );
    let (code, _, err) = run(&sb, &env, &[]);
    assert_eq!(code, 0, "{err}");
    all_skipped(&err, &["train", "package", "publish"]);
    assert!(err.contains("updating endpoint fraud-scoring"), "{err}");
    let (status, new_config) = endpoint(&moto);
    assert_eq!(status, "InService");
    assert_ne!(new_config, config);
    let v = sb.ok(&["audit", "verify", "audit.log", "--trust", "trust.toml"]);
    assert!(v.contains("14 entries"), "{v}");
}

/// Run the pipeline and SIGINT it as soon as a stderr line starts with `marker`:
/// (exit code, stderr).
fn interrupt_at(sb: &Sandbox, env: &[(String, String)], marker: &str) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["run", "pipelines/fraud-detector.toml", "--no-progress"])
        .current_dir(sb.path())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start airlock run");
    let mut err = String::new();
    let mut sent = false;
    for line in BufReader::new(child.stderr.take().expect("stderr"))
        .lines()
        .map_while(Result::ok)
    {
        if !sent && line.starts_with(marker) {
            let ok = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status()
                .expect("kill");
            assert!(ok.success());
            sent = true;
        }
        err.push_str(&line);
        err.push('\n');
    }
    assert!(sent, "never saw {marker:?}: {err}");
    let code = child.wait().expect("wait").code().unwrap_or(-1);
    (code, err)
}

#[test]
fn sigint_in_any_stage_then_a_rerun_finishes_the_release() {
    let moto = Moto::start();
    // Big enough that each stage is still running when the signal lands.
    let sb = release_sandbox(&moto, 20_000, &[("epochs = 3", "epochs = 40")], 1);
    let env = moto.env();

    // train: no run directory appears, nothing is recorded.
    let (code, err) = interrupt_at(&sb, &env, "== train (");
    assert_eq!(code, 130, "{err}");
    assert!(err.contains("interrupted during train"), "{err}");
    assert_eq!(records(&sb, "train"), 0);
    assert!(
        visible(&sb, "runs").is_empty(),
        "no half-written run directory"
    );

    // package: training is redone once, then packaging is interrupted.
    let (code, err) = interrupt_at(&sb, &env, "== package (");
    assert_eq!(code, 130, "{err}");
    assert!(err.contains("interrupted during package"), "{err}");
    assert!(
        err.contains("== train ("),
        "train was not done before: {err}"
    );
    assert_eq!(records(&sb, "train"), 1);
    assert_eq!(records(&sb, "package"), 0);
    assert!(
        visible(&sb, "releases").is_empty(),
        "no half-written bundle"
    );

    // The gate: waits for the officer.
    let (code, bundle, err) = run(&sb, &env, &[]);
    assert_eq!(code, 6, "{err}");
    assert!(skipped(&err, "train"), "{err}");
    approve_as(&sb, "alice", &bundle);

    // publish: no release index is visible, the audit log still verifies.
    let (code, err) = interrupt_at(&sb, &env, "== publish to");
    assert_eq!(code, 130, "{err}");
    // A publish of this small release takes a few hundred ms; on a loaded machine the
    // signal may land only once deploy has begun, and then publish is complete and recorded.
    if err.contains("interrupted during publish") {
        assert_eq!(records(&sb, "publish"), 0);
    } else {
        assert!(err.contains("interrupted during deploy"), "{err}");
        assert_eq!(records(&sb, "publish"), 1);
    }
    // The index goes last: if the signal came late enough for it to be written, every file
    // it names is in place.
    if let Some(index) = moto.get(BUCKET, "prod/models/fraud-detector/1.0.0/release.json") {
        let index: serde_json::Value = serde_json::from_slice(&index).expect("index");
        let keys: Vec<String> = moto.list(BUCKET).into_iter().map(|(k, _)| k).collect();
        for sha in index["files"].as_object().expect("files").values() {
            let blob = format!("prod/blobs/sha256/{}", sha.as_str().expect("sha"));
            assert!(keys.contains(&blob), "{blob} missing under a visible index");
        }
    }
    if sb.join("audit.log").exists() {
        sb.ok(&["audit", "verify", "audit.log", "--trust", "trust.toml"]);
    }

    // deploy: the endpoint is still Creating when the signal lands.
    let (code, err) = interrupt_at(&sb, &env, "== deploy to");
    assert_eq!(code, 130, "{err}");
    assert!(err.contains("interrupted during deploy"), "{err}");
    assert_eq!(records(&sb, "publish"), 1);
    assert_eq!(records(&sb, "deploy"), 0);

    // The rerun finishes: only deploy is left, and it waits for InService.
    let (code, _, err) = run(&sb, &env, &[]);
    assert_eq!(code, 0, "{err}");
    all_skipped(&err, &["train", "package", "publish"]);
    assert_eq!(endpoint(&moto).0, "InService");
    sb.ok(&["audit", "verify", "audit.log", "--trust", "trust.toml"]);
    pull(&sb, &env);
}

/// (min, max) of each scalable target.
type Targets = Vec<(i32, i32)>;
/// (name, target value, scale-in cooldown, scale-out cooldown) of each scaling policy.
type Policies = Vec<(String, f64, i32, i32)>;

/// The endpoint's variant as Application Auto Scaling has it: (min, max) of every scalable
/// target in the sagemaker namespace (there must be one, for the endpoint's variant), and
/// (policy name, target value, scale-in and scale-out cooldowns) of every scaling policy on it
/// (each checked to be target tracking on invocations per instance).
fn scaling(moto: &Moto) -> (Targets, Policies) {
    let aas = moto.application_autoscaling();
    let targets = moto
        .block(
            aas.describe_scalable_targets()
                .service_namespace("sagemaker".into())
                .send(),
        )
        .expect("describe scalable targets");
    let targets: Targets = targets
        .scalable_targets()
        .iter()
        .map(|t| {
            assert_eq!(t.resource_id(), "endpoint/fraud-scoring/variant/AllTraffic");
            assert_eq!(
                t.scalable_dimension().as_str(),
                "sagemaker:variant:DesiredInstanceCount"
            );
            (t.min_capacity(), t.max_capacity())
        })
        .collect();
    let policies = moto
        .block(
            aas.describe_scaling_policies()
                .service_namespace("sagemaker".into())
                .resource_id("endpoint/fraud-scoring/variant/AllTraffic")
                .scalable_dimension("sagemaker:variant:DesiredInstanceCount".into())
                .send(),
        )
        .expect("describe scaling policies");
    let policies = policies
        .scaling_policies()
        .iter()
        .map(|p| {
            assert_eq!(p.resource_id(), "endpoint/fraud-scoring/variant/AllTraffic");
            assert_eq!(
                p.scalable_dimension().as_str(),
                "sagemaker:variant:DesiredInstanceCount"
            );
            assert_eq!(p.policy_type().as_str(), "TargetTrackingScaling");
            let c = p
                .target_tracking_scaling_policy_configuration()
                .expect("target tracking configuration");
            assert_eq!(
                c.predefined_metric_specification()
                    .map(|m| m.predefined_metric_type().as_str()),
                Some("SageMakerVariantInvocationsPerInstance")
            );
            (
                p.policy_name().to_owned(),
                c.target_value(),
                c.scale_in_cooldown().expect("scale-in cooldown"),
                c.scale_out_cooldown().expect("scale-out cooldown"),
            )
        })
        .collect();
    (targets, policies)
}

/// The outcome of the last deploy entry of the sandbox's audit log.
fn last_deploy_outcome(sb: &Sandbox) -> String {
    let log = std::fs::read_to_string(sb.join("audit.log")).expect("audit log");
    log.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("entry"))
        .rfind(|e| e["action"] == "deploy")
        .and_then(|e| e["outcome"].as_str().map(str::to_owned))
        .expect("a deploy entry")
}

const AUTOSCALING: &str = "[deploy.autoscaling]\nmin_instances = 1\nmax_instances = 4\n\
    target_invocations_per_instance = 70\nscale_in_cooldown_seconds = 600\n\
    scale_out_cooldown_seconds = 30\n";

#[test]
fn deploy_with_autoscaling_registers_the_variant_and_its_target_tracking_policy() {
    let moto = Moto::start();
    let sb = release_sandbox_with(&moto, 3000, &[], 1, AUTOSCALING);
    let env = moto.env();
    let (code, bundle, err) = run(&sb, &env, &[]);
    assert_eq!(code, 6, "{err}");
    approve_as(&sb, "alice", &bundle);
    let (code, _, err) = run(&sb, &env, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(endpoint(&moto).0, "InService");
    assert!(
        err.contains(
            "registering autoscaling for endpoint fraud-scoring: 1..4 instances, target 70 \
             invocations/instance a minute (policy airlock-fraud-scoring-invocations)"
        ),
        "{err}"
    );
    assert!(
        err.contains(
            "fraud-scoring serves it (InService, autoscaling 1..4 at 70 invocations/instance)"
        ),
        "{err}"
    );
    // The variant is a scalable target of 1 to 4 instances, tracking 70 invocations a minute
    // per instance with the configured cooldowns; the deploy's audit entry says so.
    let policy = "airlock-fraud-scoring-invocations".to_owned();
    assert_eq!(
        scaling(&moto),
        (vec![(1, 4)], vec![(policy.clone(), 70.0, 600, 30)])
    );
    assert_eq!(
        last_deploy_outcome(&sb),
        "ok: InService, autoscaling 1..4 at 70 invocations/instance"
    );

    // New settings: only deploy runs, the endpoint stays as it is, and the registration and
    // the one policy are replaced (default cooldowns once they are left out).
    edit_pipeline(
        &sb,
        AUTOSCALING,
        "[deploy.autoscaling]\nmin_instances = 1\nmax_instances = 6\n\
         target_invocations_per_instance = 120.5\n",
    );
    let (code, _, err) = run(&sb, &env, &[]);
    assert_eq!(code, 0, "{err}");
    all_skipped(&err, &["train", "package", "publish"]);
    assert!(
        err.contains("endpoint fraud-scoring already runs this release"),
        "{err}"
    );
    assert_eq!(
        scaling(&moto),
        (vec![(1, 6)], vec![(policy.clone(), 120.5, 300, 60)])
    );
    assert_eq!(
        last_deploy_outcome(&sb),
        "ok: InService, autoscaling 1..6 at 120.5 invocations/instance"
    );

    // Without [deploy.autoscaling] the deploy runs again and leaves the registration alone.
    edit_pipeline(
        &sb,
        "[deploy.autoscaling]\nmin_instances = 1\nmax_instances = 6\n\
         target_invocations_per_instance = 120.5\n",
        "",
    );
    let (code, _, err) = run(&sb, &env, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("== deploy to SageMaker endpoint fraud-scoring"),
        "{err}"
    );
    assert!(!err.contains("registering autoscaling"), "{err}");
    assert_eq!(
        scaling(&moto),
        (vec![(1, 6)], vec![(policy, 120.5, 300, 60)])
    );
    assert_eq!(last_deploy_outcome(&sb), "ok: InService");
    sb.ok(&["audit", "verify", "audit.log", "--trust", "trust.toml"]);
}

#[test]
fn autoscaling_settings_that_do_not_fit_are_refused_before_anything_is_sent() {
    for (from, to, says) in [
        (
            "min_instances = 1\nmax_instances = 4",
            "min_instances = 3\nmax_instances = 2",
            "deploy.autoscaling.max_instances (2) must be at least deploy.autoscaling.min_instances (3)",
        ),
        (
            "min_instances = 1",
            "min_instances = 2",
            "deploy.instance_count (1) must lie between deploy.autoscaling.min_instances (2) and max_instances (4)",
        ),
    ] {
        let moto = Moto::start();
        let sb = release_sandbox_with(&moto, 200, &[], 1, &AUTOSCALING.replacen(from, to, 1));
        moto.start_recording();
        let (code, _, err) = run(&sb, &moto.env(), &[]);
        let requests = moto.stop_recording();
        assert_eq!(code, 3, "{err}");
        assert!(err.contains(says), "{err}");
        assert!(requests.is_empty(), "nothing is sent: {requests:?}");
        assert!(visible(&sb, "runs").is_empty(), "nothing is trained");
        assert!(!sb.join("audit.log").exists(), "nothing is logged");
    }
}
