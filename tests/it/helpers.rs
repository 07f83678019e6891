use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The shipped pipeline, which tests adapt.
pub const FRAUD_PIPELINE: &str = include_str!("../../pipelines/fraud-detector.toml");

/// A fresh temporary directory per test, with helpers to run airlock in it.
pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("create temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.join(name);
        std::fs::write(&p, text).expect("write file");
        p
    }

    /// Run airlock with `args` in this directory.
    pub fn airlock(&self, args: &[&str]) -> Output {
        self.airlock_env(args, &[])
    }

    /// Run airlock with `args` and extra environment variables.
    pub fn airlock_env(&self, args: &[&str], env: &[(String, String)]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_airlock"))
            .args(args)
            .current_dir(self.path())
            .env_remove("RUST_LOG")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run airlock")
    }

    /// Run airlock and require success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.airlock(args);
        assert!(
            out.status.success(),
            "airlock {args:?} failed ({:?}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Run airlock, require exit code `code`, return stderr.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.airlock(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "airlock {args:?}: {stderr}");
        stderr
    }

    /// Demo data with `rows` rows at `data.csv`.
    pub fn demo_data(&self, rows: usize, seed: u64) -> PathBuf {
        let p = self.join("data.csv");
        self.ok(&[
            "demo-data",
            "--rows",
            &rows.to_string(),
            "--seed",
            &seed.to_string(),
            "--out",
            p.to_str().expect("utf-8 path"),
        ]);
        p
    }

    /// The fraud pipeline pointed at `data`, with `edits` (from, to) applied, at `name`.
    pub fn pipeline(&self, name: &str, data: &Path, edits: &[(&str, &str)]) -> PathBuf {
        let mut text = FRAUD_PIPELINE.replace(
            "source = \"../data/transactions.csv\"",
            &format!("source = {:?}", data.to_str().expect("utf-8 path")),
        );
        assert!(
            text.contains(data.to_str().expect("utf-8")),
            "pipeline source line changed"
        );
        for (from, to) in edits {
            assert!(text.contains(from), "pipeline has no {from:?}");
            text = text.replacen(from, to, 1);
        }
        self.write(name, &text)
    }

    /// Entries of the sandbox directory, sorted (to spot leftovers).
    pub fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.path())
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

/// The tensors of a safetensors file, name → (shape, bytes), metadata left out.
pub fn tensors(path: &Path) -> Vec<(String, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).expect("read safetensors");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("valid safetensors");
    let mut v: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.shape().to_vec(), t.data().to_vec()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// A trained run, a builder key pair and a trust policy naming it (`trust.toml`), in one
/// sandbox.
pub struct Release {
    pub sb: Sandbox,
    pub data: PathBuf,
    pub run: PathBuf,
    pub key: PathBuf,
}

impl Release {
    /// Train the fraud pipeline on `rows` demo rows with `edits`, make a builder key and
    /// a trust policy.
    pub fn new(rows: usize, edits: &[(&str, &str)]) -> Self {
        let sb = Sandbox::new();
        let data = sb.demo_data(rows, 21);
        let p = sb.pipeline("p.toml", &data, edits);
        sb.ok(&[
            "train",
            p.to_str().expect("utf-8"),
            "--out",
            "run",
            "--no-progress",
        ]);
        sb.ok(&["keygen", "--out", "keys/builder"]);
        sb.ok(&["keygen", "--out", "keys/officer"]);
        // A policy needs at least one officer approval (0 is refused); plain `verify` does
        // not ask for it.
        sb.write(
            "trust.toml",
            "approvals_required = 1\n[[keys]]\nname = \"ci\"\nrole = \"builder\"\npublic_key = \"keys/builder.pub\"\n\
             [[keys]]\nname = \"officer\"\nrole = \"officer\"\npublic_key = \"keys/officer.pub\"\n",
        );
        Self {
            run: sb.join("run"),
            key: sb.join("keys/builder.key"),
            data,
            sb,
        }
    }

    /// `airlock package` of `run` into `out`; returns the process output.
    pub fn package(&self, run: &str, out: &str) -> Output {
        self.sb.airlock(&[
            "package",
            "--run",
            run,
            "--key",
            "keys/builder.key",
            "--out",
            out,
        ])
    }

    /// `airlock verify` of `bundle`.
    pub fn verify(&self, bundle: &str) -> Output {
        self.sb
            .airlock(&["verify", bundle, "--trust", "trust.toml"])
    }
}

/// Rewrite a safetensors file through `edit` (name → (shape, f32 data)) and new metadata.
pub fn rewrite_safetensors(
    path: &Path,
    edit: impl FnOnce(
        &mut std::collections::BTreeMap<String, (Vec<usize>, Vec<u8>)>,
        &mut std::collections::HashMap<String, String>,
    ),
) {
    let bytes = std::fs::read(path).expect("read");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("parse");
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).expect("metadata");
    let mut metadata = meta.metadata().clone().unwrap_or_default();
    let mut tensors: std::collections::BTreeMap<String, (Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, (t.shape().to_vec(), t.data().to_vec())))
        .collect();
    edit(&mut tensors, &mut metadata);
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, (shape, data))| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                    .expect("view"),
            )
        })
        .collect();
    let out = safetensors::serialize(views, Some(metadata)).expect("serialize");
    std::fs::write(path, out).expect("write");
}

/// The CSV's rows as cells (the demo data has no quoted fields).
pub fn csv_rows(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).expect("read csv");
    let mut lines = text.lines();
    let header = lines
        .next()
        .expect("header")
        .split(',')
        .map(str::to_owned)
        .collect();
    (
        header,
        lines
            .map(|l| l.split(',').map(str::to_owned).collect())
            .collect(),
    )
}

/// The test venv's python (tests/setup-python.sh; `make test` runs it first).
pub fn test_python() -> PathBuf {
    airlock_testkit::test_python()
}

/// `text` (a pipeline) with `allow_uncommitted = true` in its `[release]`: a real
/// (non-DEMO) release is otherwise refused at packaging when its run has no clean git
/// commit recorded, which is so for a pipeline in a test's temporary directory.
pub fn allow_uncommitted(text: &str) -> String {
    assert!(text.contains("[release]\n"), "pipeline has no [release]");
    text.replacen("[release]\n", "[release]\nallow_uncommitted = true\n", 1)
}
