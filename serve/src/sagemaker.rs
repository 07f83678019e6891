//! How `airlock-serve` finds its settings when SageMaker starts it as `docker run IMAGE
//! serve`, with no other argument: from the environment, else from defaults that match the
//! image. A flag always overrides its variable; a variable that is set must hold a valid
//! value (a bad one is an error, never a silent fallback to the default).
//!
//! | setting | flag | variable | default |
//! |---|---|---|---|
//! | bundle directory | `--model-dir` | `SM_MODEL_DIR` | `/opt/ml/model` |
//! | trust policy | `--trust` | `AIRLOCK_TRUST` | `/etc/airlock/trust.toml` (must exist) |
//! | port | `--port` | `SAGEMAKER_BIND_TO_PORT` | `8080` |
//! | worker threads | `--workers` | `SAGEMAKER_MODEL_SERVER_WORKERS` | one per core |

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Where SageMaker mounts the model.
pub const DEFAULT_MODEL_DIR: &str = "/opt/ml/model";
/// The trust policy baked into the serving image.
pub const DEFAULT_TRUST: &str = "/etc/airlock/trust.toml";
/// SageMaker's serving port.
pub const DEFAULT_PORT: u16 = 8080;
/// Most worker threads accepted.
pub const MAX_WORKERS: usize = 4096;

/// The bundle directory (SageMaker sets it for training jobs; for a serving container the
/// model is always at [`DEFAULT_MODEL_DIR`], so this is for local runs and tests).
pub const MODEL_DIR_ENV: &str = "SM_MODEL_DIR";
/// The trust policy.
pub const TRUST_ENV: &str = "AIRLOCK_TRUST";
/// The port SageMaker asks the container to listen on.
pub const PORT_ENV: &str = "SAGEMAKER_BIND_TO_PORT";
/// How many model server workers SageMaker asks for: the runtime's worker threads, which
/// also bound the threads scoring large requests, and the verification threads.
pub const WORKERS_ENV: &str = "SAGEMAKER_MODEL_SERVER_WORKERS";

/// Settings that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A variable is set to something that is not a valid value.
    #[error("{var}={value:?} is {problem}")]
    BadVar {
        /// The variable.
        var: &'static str,
        /// Its value (lossily decoded).
        value: String,
        /// What is wrong with it.
        problem: String,
    },
    /// No trust policy given, and none in the image.
    #[error(
        "no trust policy: give --trust or set {TRUST_ENV}, or bake one into the image at {}",
        default.display()
    )]
    NoTrust {
        /// The default that does not exist.
        default: PathBuf,
    },
}

/// What the flags gave (`None`: not given).
#[derive(Debug, Clone, Default)]
pub struct Flags {
    /// `--model-dir`.
    pub model_dir: Option<PathBuf>,
    /// `--trust`.
    pub trust: Option<PathBuf>,
    /// `--port`.
    pub port: Option<u16>,
    /// `--workers`.
    pub workers: Option<usize>,
}

/// The settings the server runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The bundle directory.
    pub model_dir: PathBuf,
    /// The trust policy.
    pub trust: PathBuf,
    /// The port.
    pub port: u16,
    /// Worker threads; `None`: one per core.
    pub workers: Option<usize>,
}

/// A port: decimal digits only (no sign, no blanks), 0 to 65535; 0 takes any free port,
/// which the server names in its log.
pub fn parse_port(s: &str) -> Result<u16, String> {
    digits(s)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| "not a port number (0 to 65535)".to_owned())
}

/// A worker count: decimal digits only, 1 to [`MAX_WORKERS`].
pub fn parse_workers(s: &str) -> Result<usize, String> {
    digits(s)
        .and_then(|s| s.parse().ok())
        .filter(|n| (1..=MAX_WORKERS).contains(n))
        .ok_or_else(|| format!("not a number of workers (1 to {MAX_WORKERS})"))
}

/// `s` when it is one or more ASCII digits (`str::parse` also takes a leading `+`).
fn digits(s: &str) -> Option<&str> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then_some(s)
}

/// The settings from `flags`, else the variables `var` reads, else the defaults, with the
/// trust policy's default at [`DEFAULT_TRUST`].
pub fn resolve(
    flags: &Flags,
    var: impl Fn(&str) -> Option<OsString>,
) -> Result<Settings, ConfigError> {
    resolve_with(flags, var, Path::new(DEFAULT_TRUST))
}

/// [`resolve`] with the trust policy's default at `default_trust`.
pub fn resolve_with(
    flags: &Flags,
    var: impl Fn(&str) -> Option<OsString>,
    default_trust: &Path,
) -> Result<Settings, ConfigError> {
    // A path variable must not be empty (an empty path would mean the working directory).
    let path = |name: &'static str| -> Result<Option<PathBuf>, ConfigError> {
        match var(name) {
            Some(v) if v.is_empty() => Err(bad(name, &v, "an empty path".into())),
            v => Ok(v.map(PathBuf::from)),
        }
    };
    let model_dir = match &flags.model_dir {
        Some(d) => d.clone(),
        None => path(MODEL_DIR_ENV)?.unwrap_or_else(|| PathBuf::from(DEFAULT_MODEL_DIR)),
    };
    let trust = match &flags.trust {
        Some(t) => t.clone(),
        None => match path(TRUST_ENV)? {
            Some(t) => t,
            None if default_trust.exists() => default_trust.to_owned(),
            None => {
                return Err(ConfigError::NoTrust {
                    default: default_trust.to_owned(),
                });
            }
        },
    };
    let port = match flags.port {
        Some(p) => p,
        None => parsed(&var, PORT_ENV, parse_port)?.unwrap_or(DEFAULT_PORT),
    };
    let workers = match flags.workers {
        Some(n) => Some(n),
        None => parsed(&var, WORKERS_ENV, parse_workers)?,
    };
    Ok(Settings {
        model_dir,
        trust,
        port,
        workers,
    })
}

/// A variable's bad value.
fn bad(var: &'static str, value: &OsString, problem: String) -> ConfigError {
    ConfigError::BadVar {
        var,
        value: value.to_string_lossy().into_owned(),
        problem,
    }
}

/// The variable `name` through `parse`, when set.
fn parsed<T>(
    var: &dyn Fn(&str) -> Option<OsString>,
    name: &'static str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<Option<T>, ConfigError> {
    var(name)
        .map(|v| {
            v.to_str()
                .ok_or_else(|| "not UTF-8".to_owned())
                .and_then(parse)
                .map_err(|e| bad(name, &v, e))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let vars: Vec<(String, OsString)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
            .collect();
        move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn defaults_then_variables_then_flags() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let baked = tmp.path().join("trust.toml");
        std::fs::write(&baked, "").expect("write");
        let s = resolve_with(&Flags::default(), env(&[]), &baked).expect("defaults");
        assert_eq!(
            s,
            Settings {
                model_dir: DEFAULT_MODEL_DIR.into(),
                trust: baked.clone(),
                port: 8080,
                workers: None,
            }
        );
        let vars = env(&[
            (MODEL_DIR_ENV, "/m"),
            (TRUST_ENV, "/t.toml"),
            (PORT_ENV, "9000"),
            (WORKERS_ENV, "3"),
        ]);
        let s = resolve_with(&Flags::default(), &vars, &baked).expect("variables");
        assert_eq!(
            s,
            Settings {
                model_dir: "/m".into(),
                trust: "/t.toml".into(),
                port: 9000,
                workers: Some(3),
            }
        );
        let flags = Flags {
            model_dir: Some("/f".into()),
            trust: Some("/f.toml".into()),
            port: Some(0),
            workers: Some(7),
        };
        let s = resolve_with(&flags, &vars, &baked).expect("flags");
        assert_eq!(
            s,
            Settings {
                model_dir: "/f".into(),
                trust: "/f.toml".into(),
                port: 0,
                workers: Some(7),
            }
        );
    }

    #[test]
    fn no_trust_policy_anywhere_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let missing = tmp.path().join("trust.toml");
        let e = resolve_with(&Flags::default(), env(&[]), &missing).expect_err("no policy");
        assert_eq!(
            e,
            ConfigError::NoTrust {
                default: missing.clone()
            }
        );
        assert!(e.to_string().contains("set AIRLOCK_TRUST"), "{e}");
        // A flag or a variable is taken as given: loading it reports what is wrong.
        for (flags, vars) in [
            (
                Flags {
                    trust: Some("/nope.toml".into()),
                    ..Flags::default()
                },
                env(&[]),
            ),
            (Flags::default(), env(&[(TRUST_ENV, "/nope.toml")])),
        ] {
            let s = resolve_with(&flags, vars, &missing).expect("given");
            assert_eq!(s.trust, Path::new("/nope.toml"));
        }
    }

    #[test]
    fn bad_variables_are_errors_not_defaults() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let baked = tmp.path().join("trust.toml");
        std::fs::write(&baked, "").expect("write");
        for (var, value, expected) in [
            (PORT_ENV, "http", "not a port number"),
            (PORT_ENV, "65536", "not a port number"),
            (PORT_ENV, "-1", "not a port number"),
            (PORT_ENV, "+80", "not a port number"),
            (PORT_ENV, " 8080", "not a port number"),
            (PORT_ENV, "", "not a port number"),
            (WORKERS_ENV, "0", "not a number of workers"),
            (WORKERS_ENV, "4097", "not a number of workers"),
            (WORKERS_ENV, "2.5", "not a number of workers"),
            (TRUST_ENV, "", "an empty path"),
            (MODEL_DIR_ENV, "", "an empty path"),
        ] {
            let e = resolve_with(&Flags::default(), env(&[(var, value)]), &baked)
                .expect_err(&format!("{var}={value:?}"));
            let m = e.to_string();
            assert!(
                m == format!("{var}={value:?} is {expected}")
                    || m.starts_with(&format!("{var}={value:?} is {expected} (")),
                "{m}"
            );
        }
        // A flag overrides a bad variable: the variable is not read.
        let flags = Flags {
            port: Some(81),
            ..Flags::default()
        };
        let s = resolve_with(&flags, env(&[(PORT_ENV, "http")]), &baked).expect("flag");
        assert_eq!(s.port, 81);
    }

    #[test]
    fn non_utf8_numbers_are_refused() {
        use std::os::unix::ffi::OsStringExt as _;
        let tmp = tempfile::tempdir().expect("tempdir");
        let baked = tmp.path().join("trust.toml");
        std::fs::write(&baked, "").expect("write");
        let bad = OsString::from_vec(vec![b'8', 0xff]);
        let e = resolve_with(
            &Flags::default(),
            |k| (k == PORT_ENV).then(|| bad.clone()),
            &baked,
        )
        .expect_err("not UTF-8");
        assert_eq!(
            e.to_string(),
            "SAGEMAKER_BIND_TO_PORT=\"8\u{fffd}\" is not UTF-8"
        );
    }
}
