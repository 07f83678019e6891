//! The Python venv with moto and boto3 that tests and benches run against.

use std::path::{Path, PathBuf};

/// The python named by the environment variable `var`, else the venv
/// `tests/setup-python.sh` makes (`~/.cache/airlock/py-venv/bin/python`). Not checked.
pub fn venv_python(var: &str) -> PathBuf {
    std::env::var_os(var).map_or_else(
        || {
            Path::new(&std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/airlock/py-venv/bin/python")
        },
        PathBuf::from,
    )
}

/// The test venv's python (`AIRLOCK_TEST_PYTHON`, from tests/setup-python.sh; `make test`
/// runs it first). Panics, saying what to run, when it is missing.
pub fn test_python() -> PathBuf {
    let p = venv_python("AIRLOCK_TEST_PYTHON");
    assert!(
        p.is_file(),
        "{} is missing: run tests/setup-python.sh (make test does)",
        p.display()
    );
    p
}
