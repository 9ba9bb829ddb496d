//! The embedded database's files. They hold the private signing keys and every session, so
//! they are created readable by their owner only, and an existing file that others can read
//! is reported at start.

use std::io;
use std::path::Path;

/// Creates the SQLite database's directory (`0700`) and empty file (`0600`) when missing,
/// before SQLite would create them with the umask's (usually world-readable) modes. SQLite
/// gives its `-wal` and `-shm` files the database file's mode. Existing files keep their
/// modes; one that group or others can access is logged as a warning.
pub(crate) fn prepare_sqlite(path: &Path) -> io::Result<()> {
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        // An existing directory may well be a shared one such as /var/lib: only the files'
        // modes matter then.
        if !parent.exists() {
            owner_only_dir(parent)?;
        }
    }
    if path.exists() {
        warn_if_shared(path);
        return Ok(());
    }
    owner_only_file(path)
}

#[cfg(unix)]
fn owner_only_dir(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

#[cfg(unix)]
fn owner_only_file(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        // Another process creating it first is fine: it is there now.
        Ok(_) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error),
    }
}

#[cfg(unix)]
fn warn_if_shared(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(metadata) = std::fs::metadata(path)
        && metadata.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            mode = format_args!("{:o}", metadata.permissions().mode() & 0o777),
            "the database holds the signing keys, but group or others can access it; \
             chmod it to owner-only (0700 for the directory, 0600 for the files)"
        );
    }
}

// Elsewhere the platform's defaults (ACLs on Windows) decide.
#[cfg(not(unix))]
fn owner_only_dir(path: &Path) -> io::Result<()> {
    std::fs::create_dir_all(path)
}

#[cfg(not(unix))]
fn owner_only_file(_path: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(not(unix))]
fn warn_if_shared(_path: &Path) {}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_data_directory_and_database_are_owner_only() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("data/nested/tessera.db");
        prepare_sqlite(&path).unwrap();
        assert_eq!(mode(&root.path().join("data")), 0o700);
        assert_eq!(mode(&root.path().join("data/nested")), 0o700);
        assert_eq!(mode(&path), 0o600);
        // Existing files are left as they are.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        prepare_sqlite(&path).unwrap();
        assert_eq!(mode(&path), 0o640);
    }
}
