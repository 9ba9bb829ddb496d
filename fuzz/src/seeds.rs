//! Seed corpora, written by the targets themselves.

use std::path::PathBuf;

/// The environment variable that names the directory to write a target's seeds to.
pub const VARIABLE: &str = "TESSERA_FUZZ_SEEDS";

/// When [`VARIABLE`] is set, writes `make()`'s seeds there (one file each) and exits;
/// otherwise does nothing. Call it from the target's `init`.
pub fn write_if_asked(make: impl FnOnce() -> Vec<Vec<u8>>) {
    let Some(directory) = std::env::var_os(VARIABLE).map(PathBuf::from) else {
        return;
    };
    let seeds = make();
    if let Err(error) = std::fs::create_dir_all(&directory) {
        eprintln!("cannot create {}: {error}", directory.display());
        std::process::exit(2);
    }
    for (index, seed) in seeds.iter().enumerate() {
        let path = directory.join(format!("seed-{index:04}"));
        if let Err(error) = std::fs::write(&path, seed) {
            eprintln!("cannot write {}: {error}", path.display());
            std::process::exit(2);
        }
    }
    eprintln!("wrote {} seeds to {}", seeds.len(), directory.display());
    std::process::exit(0);
}

/// Strings as seed bytes.
pub fn texts<S: AsRef<str>>(texts: impl IntoIterator<Item = S>) -> Vec<Vec<u8>> {
    texts
        .into_iter()
        .map(|text| text.as_ref().as_bytes().to_vec())
        .collect()
}
