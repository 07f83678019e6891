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
        Command::new(env!("CARGO_BIN_EXE_airlock"))
            .args(args)
            .current_dir(self.path())
            .env_remove("RUST_LOG")
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
