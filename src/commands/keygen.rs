//! `airlock keygen`: an ed25519 key pair.

use crate::cli::KeygenArgs;

/// Write PREFIX.key and PREFIX.pub; print the key id.
pub fn run(a: &KeygenArgs) -> anyhow::Result<()> {
    let g = airlock_trust::keys::generate(&a.out)?;
    eprintln!(
        "wrote {} (private, mode 0600) and {}",
        g.private_key.display(),
        g.public_key.display()
    );
    println!("{}", g.key_id);
    Ok(())
}
