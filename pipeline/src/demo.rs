//! The DEMO: a pipeline without `[signing]` runs on local demo keys and policies, and two
//! demo officers approve it. Everything it makes is marked DEMO.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::workdir::write_if_changed;

/// The demo officers, who approve a DEMO release automatically.
pub(crate) const DEMO_OFFICERS: [&str; 2] = ["demo-officer-1", "demo-officer-2"];

/// Local demo keys (a builder, two officers, a publisher), made once, a 2-of-2 trust policy
/// and a residency policy that keeps releases in the local file registry. Returns the trust
/// policy and the builder key.
pub(crate) fn demo_keys(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let keys = dir.join("keys");
    for k in ["builder", "publisher"].iter().chain(DEMO_OFFICERS.iter()) {
        let prefix = keys.join(k);
        if !PathBuf::from(format!("{}.key", prefix.display())).exists() {
            airlock_trust::keys::generate(&prefix)
                .with_context(|| format!("cannot make demo key {k}"))?;
        }
    }
    let trust = dir.join("trust.toml");
    write_if_changed(&trust, &trust_policy())?;
    // A trust policy, its keys and their folders that others may write are refused, whatever
    // the umask made them.
    let mut restrict = vec![dir.to_owned(), keys.clone(), trust.clone()];
    for k in ["builder", "publisher"].iter().chain(DEMO_OFFICERS.iter()) {
        restrict.push(keys.join(format!("{k}.pub")));
    }
    for p in &restrict {
        airlock_trust::keys::drop_group_other_write(p)
            .with_context(|| format!("cannot restrict the permissions of {}", p.display()))?;
    }
    write_if_changed(
        &dir.join("residency.toml"),
        "# DEMO residency policy written by `airlock run`: releases stay in the local file registry.\n\
         [registry]\nregions = [\"local\"]\n",
    )?;
    let residency = dir.join("residency.toml");
    airlock_trust::keys::drop_group_other_write(&residency)
        .with_context(|| format!("cannot restrict the permissions of {}", residency.display()))?;
    Ok((trust, keys.join("builder.key")))
}

/// The DEMO's 2-of-2 trust policy over the keys in `keys/`.
fn trust_policy() -> String {
    let mut policy = String::from(
        "# DEMO trust policy written by `airlock run` for a pipeline without [signing].\n\
         # Its keys live on this machine: never use it for a real release.\n\
         approvals_required = 2\n",
    );
    for (name, role) in [
        ("demo-builder", "builder"),
        (DEMO_OFFICERS[0], "officer"),
        (DEMO_OFFICERS[1], "officer"),
        ("demo-publisher", "publisher"),
    ] {
        let file = match role {
            "builder" => "builder",
            "publisher" => "publisher",
            _ => name,
        };
        policy.push_str(&format!(
            "\n[[keys]]\nname = \"{name}\"\nrole = \"{role}\"\npublic_key = \"keys/{file}.pub\"\n"
        ));
    }
    policy
}
