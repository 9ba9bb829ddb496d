//! Passwords: the policy a new password must meet, and Argon2id hashing with bounded
//! concurrency.
//!
//! Argon2id with the OWASP parameters needs about 19 MiB and tens of milliseconds of one core
//! per hash. Hashing runs on the blocking pool, at most [`HashingLimits::concurrency`] at a time,
//! with at most [`HashingLimits::queue`] callers waiting; beyond that callers get
//! [`HashError::Busy`] at once, so a login flood costs bounded memory and leaves the other
//! requests their share of the CPU.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use argon2::password_hash::SaltString;
use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier as _, Version,
};
use tokio::sync::Semaphore;

use crate::id::RandomnessError;
use crate::user::Username;

/// Rules a new password must meet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Fewest characters (Unicode scalar values) accepted. Defaults to `8` (OWASP ASVS 6.2.1).
    pub min_length: usize,
    /// Most bytes accepted: a guard against hashing-cost abuse, far above any real password.
    /// Defaults to `1024`.
    pub max_bytes: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy {
            min_length: 8,
            max_bytes: 1024,
        }
    }
}

/// Why a new password was refused. Shown to the user, so it names the rule, never the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordRejection {
    /// Shorter than the policy's minimum.
    #[error("the password must have at least {min} characters")]
    TooShort {
        /// The minimum, in characters.
        min: usize,
    },
    /// Longer than the policy's maximum.
    #[error("the password must have at most {max_bytes} bytes")]
    TooLong {
        /// The maximum, in bytes.
        max_bytes: usize,
    },
    /// On the list of commonly used passwords.
    #[error("the password is too common; choose one that is harder to guess")]
    Common,
    /// The same as the username.
    #[error("the password must not be the username")]
    SameAsUsername,
}

static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../data/common-passwords.txt")
        .lines()
        .chain(include_str!("../data/common-passwords-extra.txt").lines())
        .filter(|line| !line.is_empty())
        .collect()
});

impl PasswordPolicy {
    /// Checks a password chosen by `username`. No composition rules (ASVS 6.2.5): any
    /// Unicode, spaces included, is fine once it is long enough and not a known favourite.
    pub fn check(&self, username: &Username, password: &str) -> Result<(), PasswordRejection> {
        if password.len() > self.max_bytes {
            return Err(PasswordRejection::TooLong {
                max_bytes: self.max_bytes,
            });
        }
        if password.chars().count() < self.min_length {
            return Err(PasswordRejection::TooShort {
                min: self.min_length,
            });
        }
        let folded = password.to_lowercase();
        if folded == username.key() {
            return Err(PasswordRejection::SameAsUsername);
        }
        if COMMON_PASSWORDS.contains(folded.as_str()) {
            return Err(PasswordRejection::Common);
        }
        Ok(())
    }
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashingParams {
    /// Memory per hash in KiB. Defaults to `19456` (19 MiB, the OWASP minimum for t=2).
    pub memory_kib: u32,
    /// Passes over memory. Defaults to `2`.
    pub iterations: u32,
    /// Lanes. Defaults to `1`.
    pub parallelism: u32,
}

impl Default for HashingParams {
    fn default() -> Self {
        HashingParams {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl HashingParams {
    /// Whether the parameters meet the OWASP / ASVS Appendix C floor for Argon2id:
    /// m ≥ 47104 KiB at t=1, m ≥ 19456 at t=2, m ≥ 12288 at t ≥ 3.
    pub fn meets_owasp_minimum(&self) -> bool {
        let floor = match self.iterations {
            0 => return false,
            1 => 47_104,
            2 => 19_456,
            _ => 12_288,
        };
        self.memory_kib >= floor && self.parallelism >= 1
    }
}

/// How much hashing may happen at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashingLimits {
    /// Hashes computed at once. Defaults to the number of CPUs less one (at least one), so
    /// a login flood leaves a CPU for everything else — session checks above all.
    pub concurrency: usize,
    /// Callers allowed to wait for a slot; more get [`HashError::Busy`]. Defaults to `64`.
    pub queue: usize,
}

impl Default for HashingLimits {
    fn default() -> Self {
        HashingLimits {
            concurrency: std::thread::available_parallelism()
                .map_or(1, |cpus| usize::from(cpus).saturating_sub(1).max(1)),
            queue: 64,
        }
    }
}

/// A snapshot of [`PasswordHasher::load`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashingLoad {
    /// Hashes computing now.
    pub running: usize,
    /// Callers admitted and waiting for a hashing slot.
    pub queued: usize,
    /// Callers that got a slot since start.
    pub slots_granted: u64,
    /// Their summed wait for it.
    pub total_wait: Duration,
}

/// Hashing could not be done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HashError {
    /// Too many hashes already running or waiting; try again shortly.
    #[error("too many password checks in progress")]
    Busy,
    /// The parameters are refused by Argon2 or below the OWASP floor.
    #[error("invalid Argon2 parameters")]
    InvalidParams(#[source] Option<argon2::Error>),
    /// Argon2 failed, or a stored hash could not be parsed.
    #[error("password hashing failed")]
    Hashing(#[source] argon2::password_hash::Error),
    /// No random salt could be had.
    #[error(transparent)]
    Randomness(#[from] RandomnessError),
    /// The blocking task running the hash died.
    #[error("password hashing task failed")]
    Task(#[source] tokio::task::JoinError),
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// The password is right; `needs_rehash` when the hash predates the current parameters.
    Valid {
        /// The stored hash uses other parameters than the current ones.
        needs_rehash: bool,
    },
    /// The password is wrong.
    Invalid,
}

/// Argon2id hashing on the blocking pool, bounded in concurrency.
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    inner: Arc<HasherInner>,
}

#[derive(Debug)]
struct HasherInner {
    params: Params,
    limits: HashingLimits,
    running: Arc<Semaphore>,
    /// Held by every caller from admission to the end of its hash, running or not: sized
    /// `concurrency + queue`, so `queue` callers may wait while every slot hashes.
    waiting: Arc<Semaphore>,
    /// Callers that got a hashing slot, and their summed wait for it in microseconds: read
    /// by [`PasswordHasher::load`] for metrics, never on a login's decision.
    admitted: AtomicU64,
    waited_micros: AtomicU64,
    /// A hash of a random password, verified when the user does not exist so that an unknown
    /// username costs the same time as a wrong password.
    dummy_hash: String,
}

impl PasswordHasher {
    /// A hasher with `params` (refused below the OWASP floor) and `limits`.
    ///
    /// Computes one hash up front (the decoy for unknown users), so it takes tens of
    /// milliseconds.
    pub fn new(params: HashingParams, limits: HashingLimits) -> Result<Self, HashError> {
        if !params.meets_owasp_minimum() {
            return Err(HashError::InvalidParams(None));
        }
        let argon_params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(|error| HashError::InvalidParams(Some(error)))?;
        let decoy = crate::id::Secret::generate()?.encode();
        let dummy_hash = hash_blocking(&argon_params, &decoy)?;
        let limits = HashingLimits {
            concurrency: limits.concurrency.max(1),
            queue: limits.queue.max(1),
        };
        Ok(PasswordHasher {
            inner: Arc::new(HasherInner {
                params: argon_params,
                limits,
                running: Arc::new(Semaphore::new(limits.concurrency)),
                waiting: Arc::new(Semaphore::new(limits.concurrency + limits.queue)),
                admitted: AtomicU64::new(0),
                waited_micros: AtomicU64::new(0),
                dummy_hash,
            }),
        })
    }

    /// Hashes a new password into a PHC string.
    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let params = self.inner.params.clone();
        let password = password.to_owned();
        self.run(move || hash_blocking(&params, &password)).await
    }

    /// Checks `password` against the PHC string `stored`.
    pub async fn verify(&self, stored: &str, password: &str) -> Result<Verification, HashError> {
        let params = self.inner.params.clone();
        let stored = stored.to_owned();
        let password = password.to_owned();
        self.run(move || verify_blocking(&params, &stored, &password))
            .await
    }

    /// Spends the time of a verification on a decoy hash; always [`Verification::Invalid`].
    pub async fn verify_decoy(&self, password: &str) -> Result<Verification, HashError> {
        let stored = self.inner.dummy_hash.clone();
        self.verify(&stored, password)
            .await
            .map(|_| Verification::Invalid)
    }

    /// How loaded the hasher is now, and how long callers have waited for a slot so far.
    pub fn load(&self) -> HashingLoad {
        let inner = &self.inner;
        let running = inner.limits.concurrency - inner.running.available_permits();
        let admitted = (inner.limits.concurrency + inner.limits.queue)
            .saturating_sub(inner.waiting.available_permits());
        HashingLoad {
            running,
            queued: admitted.saturating_sub(running),
            slots_granted: inner.admitted.load(Ordering::Relaxed),
            total_wait: Duration::from_micros(inner.waited_micros.load(Ordering::Relaxed)),
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, HashError> + Send + 'static,
    ) -> Result<T, HashError> {
        let _waiting = Arc::clone(&self.inner.waiting)
            .try_acquire_owned()
            .map_err(|_| HashError::Busy)?;
        let queued_at = Instant::now();
        let running = Arc::clone(&self.inner.running)
            .acquire_owned()
            .await
            .map_err(|_| HashError::Busy)?;
        let waited = u64::try_from(queued_at.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.inner.admitted.fetch_add(1, Ordering::Relaxed);
        self.inner
            .waited_micros
            .fetch_add(waited, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || {
            let _running = running;
            work()
        })
        .await
        .map_err(HashError::Task)?
    }
}

fn argon2id(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

fn hash_blocking(params: &Params, password: &str) -> Result<String, HashError> {
    let salt_bytes: [u8; 16] = {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes)
            .map_err(|error| HashError::Randomness(RandomnessError::from(error)))?;
        bytes
    };
    let salt = SaltString::encode_b64(&salt_bytes).map_err(HashError::Hashing)?;
    let hash = argon2id(params)
        .hash_password(password.as_bytes(), &salt)
        .map_err(HashError::Hashing)?;
    Ok(hash.to_string())
}

fn verify_blocking(
    current: &Params,
    stored: &str,
    password: &str,
) -> Result<Verification, HashError> {
    let parsed = PasswordHash::new(stored).map_err(HashError::Hashing)?;
    match argon2id(current).verify_password(password.as_bytes(), &parsed) {
        Ok(()) => {
            let same_params = Params::try_from(&parsed).is_ok_and(|old| {
                old.m_cost() == current.m_cost()
                    && old.t_cost() == current.t_cost()
                    && old.p_cost() == current.p_cost()
            });
            let needs_rehash = parsed.algorithm != argon2::ARGON2ID_IDENT
                || parsed.version != Some(Version::V0x13.into())
                || !same_params;
            Ok(Verification::Valid { needs_rehash })
        }
        Err(argon2::password_hash::Error::Password) => Ok(Verification::Invalid),
        Err(error) => Err(HashError::Hashing(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Username {
        Username::parse("alice").unwrap()
    }

    #[test]
    fn policy_refuses_short_long_common_and_username() {
        let policy = PasswordPolicy::default();
        assert_eq!(
            policy.check(&alice(), "short"),
            Err(PasswordRejection::TooShort { min: 8 })
        );
        assert_eq!(
            policy.check(&alice(), &"x".repeat(1025)),
            Err(PasswordRejection::TooLong { max_bytes: 1024 })
        );
        for common in [
            "password",
            "12345678",
            "Password123",
            "QWERTYUIOP",
            "iloveyou",
        ] {
            assert_eq!(
                policy.check(&alice(), common),
                Err(PasswordRejection::Common),
                "{common}"
            );
        }
        let long_name = Username::parse("alice-the-admin").unwrap();
        assert_eq!(
            policy.check(&long_name, "Alice-The-Admin"),
            Err(PasswordRejection::SameAsUsername)
        );
        // Unicode and spaces are fine; length counts characters, not bytes.
        assert!(policy.check(&alice(), "ünïcødé pässwörd").is_ok());
        assert_eq!(
            policy.check(&alice(), "ééééééé"),
            Err(PasswordRejection::TooShort { min: 8 })
        );
        assert!(
            policy
                .check(&alice(), &"long passphrase ".repeat(8))
                .is_ok()
        );
    }

    #[test]
    fn parameters_below_the_owasp_floor_are_refused() {
        assert!(HashingParams::default().meets_owasp_minimum());
        let weak = HashingParams {
            memory_kib: 4096,
            ..HashingParams::default()
        };
        assert!(!weak.meets_owasp_minimum());
        assert!(matches!(
            PasswordHasher::new(weak, HashingLimits::default()),
            Err(HashError::InvalidParams(None))
        ));
    }

    #[tokio::test]
    async fn hashes_verify_and_report_stale_parameters() {
        let hasher =
            PasswordHasher::new(HashingParams::default(), HashingLimits::default()).unwrap();
        let hash = hasher.hash("correct horse battery staple").await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert_eq!(
            hasher
                .verify(&hash, "correct horse battery staple")
                .await
                .unwrap(),
            Verification::Valid {
                needs_rehash: false
            }
        );
        assert_eq!(
            hasher
                .verify(&hash, "correct horse battery stapl")
                .await
                .unwrap(),
            Verification::Invalid
        );
        assert_eq!(
            hasher
                .verify(&hash, "Correct horse battery staple")
                .await
                .unwrap(),
            Verification::Invalid
        );

        let stronger = PasswordHasher::new(
            HashingParams {
                memory_kib: 12_288,
                iterations: 3,
                parallelism: 1,
            },
            HashingLimits::default(),
        )
        .unwrap();
        assert_eq!(
            stronger
                .verify(&hash, "correct horse battery staple")
                .await
                .unwrap(),
            Verification::Valid { needs_rehash: true }
        );
        assert_eq!(
            hasher.verify_decoy("anything at all").await.unwrap(),
            Verification::Invalid
        );
    }

    #[tokio::test]
    async fn callers_beyond_the_queue_are_turned_away_not_queued_forever() {
        let hasher = PasswordHasher::new(
            HashingParams::default(),
            HashingLimits {
                concurrency: 1,
                queue: 2,
            },
        )
        .unwrap();
        let attempts: Vec<_> = (0..12)
            .map(|_| {
                let hasher = hasher.clone();
                tokio::spawn(async move { hasher.hash("a reasonable passphrase").await })
            })
            .collect();
        let mut busy = 0;
        let mut done = 0;
        for attempt in attempts {
            match attempt.await.unwrap() {
                Ok(_) => done += 1,
                Err(HashError::Busy) => busy += 1,
                Err(other) => panic!("unexpected {other}"),
            }
        }
        assert!(done >= 2, "done {done}");
        assert!(busy >= 1, "busy {busy}");
        assert_eq!(done + busy, 12);
    }

    #[tokio::test]
    async fn the_queue_holds_waiting_callers_besides_the_hashing_ones_and_the_next_is_refused_at_once()
     {
        let hasher = PasswordHasher::new(
            HashingParams::default(),
            HashingLimits {
                concurrency: 1,
                queue: 2,
            },
        )
        .unwrap();
        // Work that holds its hashing slot until the gate opens.
        let (open, gate) = std::sync::mpsc::channel::<()>();
        let gate = Arc::new(std::sync::Mutex::new(gate));
        let mut admitted = Vec::new();
        for in_flight in 1..=3 {
            let hasher_ = hasher.clone();
            let gate = Arc::clone(&gate);
            admitted.push(tokio::spawn(async move {
                hasher_
                    .run(move || {
                        gate.lock().unwrap().recv().unwrap();
                        Ok(())
                    })
                    .await
            }));
            // Until it is admitted, or turned away (then the assertion below fails).
            while hasher.load().running + hasher.load().queued < in_flight
                && !admitted.last().is_some_and(|caller| caller.is_finished())
            {
                tokio::task::yield_now().await;
            }
        }
        let load = hasher.load();
        assert_eq!((load.running, load.queued), (1, 2));

        // One hashing and two waiting fill it: the next caller is refused without waiting for
        // any of them (a hang here means it queued; the guard turns that into a failure).
        let refused = tokio::time::timeout(Duration::from_secs(30), hasher.run(|| Ok(())))
            .await
            .expect("refused at once, not queued");
        assert!(matches!(refused, Err(HashError::Busy)));

        for _ in 0..3 {
            open.send(()).unwrap();
        }
        for caller in admitted {
            caller.await.unwrap().unwrap();
        }
        let load = hasher.load();
        assert_eq!((load.running, load.queued), (0, 0));
    }
}
