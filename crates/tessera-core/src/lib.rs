//! Tessera's domain: one session record per login, and the rules that govern it.
//!
//! Every successful login creates one [`SessionRecord`]; a client carries it as an opaque
//! token in a cookie or a bearer header, or as short-lived JWTs whose `sid` names it (signed
//! by `tessera-tokens`). The
//! [`Engine`] holds all the rules — password policy, throttling, idle and absolute expiry,
//! revocation — over the storage traits in [`store`]; it does no I/O of its own and reads time
//! from an injected [`Clock`].
//!
//! # Layout
//!
//! - [`engine`]: [`Engine`] — register, log in, validate, log out, list, revoke, refresh-token
//!   chains; one module per concern.
//! - [`store`]: [`UserStore`], [`SessionStore`], [`RefreshStore`], [`KeyStore`],
//!   [`ClientStore`] and [`RevocationLog`], the contract every backend meets.
//! - [`audit`]: [`AuditStore`], the durable trail of authentication and admin events, and
//!   the [`AuditEvent`]s the engine records.
//! - [`throttle`]: [`LoginThrottle`], failed-login counters per account and address.
//! - [`session`], [`user`], [`id`]: the records and the parsed identifiers and secrets.
//! - [`password`]: [`PasswordPolicy`] and bounded Argon2id [`PasswordHasher`].
//! - [`time`]: [`Timestamp`], [`Clock`], [`SystemClock`], [`ManualClock`].
//!
//! # Quick start
//!
//! Backends live in `tessera-store`; given any, the engine logs people in and checks them:
//!
//! ```
//! use std::sync::Arc;
//! use tessera_core::{Engine, EngineConfig, Error, LoginAttempt, Stores, SystemClock, Transport};
//! use tessera_core::password::{HashingLimits, HashingParams, PasswordHasher};
//!
//! async fn demo(stores: Stores) -> Result<(), Box<dyn std::error::Error>> {
//!     let hasher = PasswordHasher::new(HashingParams::default(), HashingLimits::default())?;
//!     let engine = Engine::new(stores, hasher, Arc::new(SystemClock), EngineConfig::default()).await?;
//!     engine.create_user("alice", "correct horse battery staple").await?;
//!     let login = engine
//!         .login(LoginAttempt {
//!             username: "alice",
//!             password: "correct horse battery staple",
//!             transport: Transport::Cookie,
//!             ip: None,
//!             user_agent: None,
//!         })
//!         .await?;
//!     // The client keeps `login.token`; each request presents it.
//!     let session = engine.validate(&login.token).await?;
//!     assert_eq!(session.username(), "alice");
//!     engine.logout(&session).await?;
//!     assert!(matches!(engine.validate(&login.token).await, Err(Error::Unauthenticated)));
//!     Ok(())
//! }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod audit;
mod cache;
pub mod engine;
mod error;
pub mod id;
pub mod password;
pub mod session;
pub mod store;
pub mod throttle;
pub mod time;
pub mod user;

pub use audit::{
    Actor, AuditContext, AuditDetail, AuditEvent, AuditFilter, AuditKind, AuditRecord, AuditStore,
    Audited, Outcome,
};
pub use cache::CacheLookups;
pub use engine::{
    AccessGrant, Engine, EngineConfig, ExchangeRejection, LoggedIn, LoginAttempt, LoginOutcomes,
    MAX_SERVICE_TTL, NewClient, NewService, PasswordChange, Refreshed, RememberedRevocations,
    RevokeScope, ServiceRejection, StandingChange, Stores, TokenGrant, TokenPolicy, ValidSession,
    allowed_scopes, grant_scopes, is_scope_token,
};
pub use error::Error;
pub use id::{
    ClientId, CsrfToken, EncodedToken, MalformedId, RandomnessError, RefreshToken, Secret,
    SessionId, SessionToken, SessionVerifier, TokenHash, TokenId, UserId,
};
pub use password::{HashingLoad, PasswordHasher, PasswordPolicy, PasswordRejection};
pub use session::{ParentSession, SessionPolicy, SessionRecord, Transport};
pub use store::{
    ClientRecord, ClientStore, KeyRecord, KeyStore, RefreshRecord, RefreshStore, Revocation,
    RevocationKind, RevocationLog, RevocationNotifier, RevocationSubscription, Rotation,
    ServiceRecord, ServiceScope, ServiceStore, SessionStore, StoreError, UserStore,
};
pub use throttle::{LoginThrottle, ThrottleKey, ThrottleRule};
pub use time::{Clock, ManualClock, SystemClock, Timestamp};
pub use user::{
    CustomClaims, Role, Roles, Standing, StandingRejection, User, UserRecord, Username,
    UsernameRejection,
};
