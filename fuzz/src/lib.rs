//! What Tessera's fuzz targets share: the keys and verifier the JWT targets attack, an
//! in-process server the HTTP targets send requests to, and seed writing.
//!
//! Layout:
//! - [`jose`]: four keys (one per algorithm) under fixed `kid`s, the verifier over them, a
//!   forger that signs any header and payload, and the checks an accepted token must pass.
//! - [`http`]: a real [`tessera_server::server::app`] over SQLite in a temporary directory,
//!   a user, an API client and live credentials, and the oracle every response must pass.
//! - [`seeds`]: each target writes its seed corpus itself when `TESSERA_FUZZ_SEEDS` names a
//!   directory (`bench/fuzz.sh` does this), so the seeds are made with the same keys and
//!   code the target runs.

pub mod http;
pub mod jose;
pub mod seeds;
