//! Housekeeping of the work directory: paths under it, leftovers of interrupted stages.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// `p` under the work directory (as given when it is `.`, for shorter messages).
pub(crate) fn under(workdir: &Path, p: &str) -> PathBuf {
    if workdir == Path::new(".") {
        PathBuf::from(p)
    } else {
        workdir.join(p)
    }
}

/// A directory that is in the way of a stage's output but not recorded as complete is moved
/// aside (never deleted: it may hold an officer's approvals).
pub(crate) fn move_aside(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        let stale = PathBuf::from(format!(
            "{}.stale-{}",
            dir.display(),
            time::OffsetDateTime::now_utc().unix_timestamp()
        ));
        std::fs::rename(dir, &stale)
            .with_context(|| format!("cannot move {} aside", dir.display()))?;
        tracing::warn!(
            "  {} was not recorded as complete; moved it to {}",
            dir.display(),
            stale.display()
        );
    }
    Ok(())
}

/// Staging directories an interrupted trainer or packager left behind.
pub(crate) fn clean_staging(dirs: &[PathBuf]) {
    for d in dirs {
        let Ok(entries) = std::fs::read_dir(d) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".airlock-run-") || name.starts_with(".airlock-bundle-") {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// Rewriting identical bytes would be harmless, but an unchanged file keeps its time.
pub(crate) fn write_if_changed(path: &Path, text: &str) -> anyhow::Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|t| t == text) {
        return Ok(());
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}
