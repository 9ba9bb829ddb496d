//! The values configuration keys are parsed into: once a key has one of these types, the rest
//! of the server uses it as it is and never parses the text again.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

use serde::de::{Deserialize, Deserializer, Error as _};

use crate::csrf::Origin;

/// Where the durable state lives, parsed from `database.url`. Its `Debug` hides a
/// PostgreSQL URL's user and password.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// An SQLite file: `sqlite://PATH` (or `sqlite:PATH`), relative to the working directory
    /// unless absolute.
    Sqlite(PathBuf),
    /// A PostgreSQL database: `postgres://` or `postgresql://`, kept whole for the driver.
    Postgres(String),
}

/// A `database.url` that names neither SQLite nor PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
// The value is not repeated: a mistyped PostgreSQL URL may carry a password.
#[error("must be sqlite://PATH or postgres://USER@HOST/DATABASE")]
pub struct UnknownDatabase;

impl FromStr for Database {
    type Err = UnknownDatabase;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"));
        match path {
            Some(path) if !path.is_empty() => Ok(Database::Sqlite(PathBuf::from(path))),
            _ if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(Database::Postgres(url.to_owned()))
            }
            _ => Err(UnknownDatabase),
        }
    }
}

/// Where sessions live, parsed from `sessions.store`. Its `Debug` hides a Redis URL's user
/// and password.
#[derive(Clone, PartialEq, Eq)]
pub enum SessionBackend {
    /// `"database"`: with the durable state, in the database.
    Database,
    /// `"redis://HOST:PORT[/DB]"` or `"rediss://…"`: in Redis, by URL.
    Redis(String),
    /// `"memory"`: in this process only (users and keys too), lost on exit.
    Memory,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Database::Postgres(url) => f
                .debug_tuple("Postgres")
                .field(&without_credentials(url))
                .finish(),
        }
    }
}

impl fmt::Debug for SessionBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionBackend::Database => f.write_str("Database"),
            SessionBackend::Redis(url) => f
                .debug_tuple("Redis")
                .field(&without_credentials(url))
                .finish(),
            SessionBackend::Memory => f.write_str("Memory"),
        }
    }
}

/// `url` for a log line: whatever stands before an `@` in its authority (a user and
/// password) becomes `***`. Only for display; the drivers get the URL whole.
fn without_credentials(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// A `sessions.store` that is none of the three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be \"database\", \"memory\" or redis://HOST:PORT")]
pub struct UnknownSessionBackend;

impl FromStr for SessionBackend {
    type Err = UnknownSessionBackend;

    fn from_str(store: &str) -> Result<Self, Self::Err> {
        match store {
            "database" => Ok(SessionBackend::Database),
            "memory" => Ok(SessionBackend::Memory),
            url if url.starts_with("redis://") || url.starts_with("rediss://") => {
                Ok(SessionBackend::Redis(url.to_owned()))
            }
            _ => Err(UnknownSessionBackend),
        }
    }
}

/// `server.public_url`: the origin browsers reach Tessera at. Kept as written besides its
/// parsed origin, because the text is also the tokens' default issuer, which verifiers
/// compare byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    text: String,
    origin: Origin,
}

impl PublicUrl {
    /// The URL as configured.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The origin `Origin` headers are compared with.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }
}

impl fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Text that is not a web origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be an origin like https://host[:port], without a path")]
pub struct NotAnOrigin;

impl FromStr for PublicUrl {
    type Err = NotAnOrigin;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(PublicUrl {
            origin: text.parse()?,
            text: text.to_owned(),
        })
    }
}

impl FromStr for Origin {
    type Err = NotAnOrigin;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Origin::parse(text).ok_or(NotAnOrigin)
    }
}

/// One entry of `server.trusted_proxies`: a single address (`10.0.0.7`, `::1`) or a CIDR
/// range (`10.0.0.0/8`, `fd00::/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyRange(ipnet::IpNet);

impl ProxyRange {
    /// Whether `address` is in the range.
    pub fn contains(&self, address: &IpAddr) -> bool {
        self.0.contains(address)
    }
}

/// Text that is neither an IP address nor a CIDR range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be an IP address or a CIDR range like 10.0.0.0/8")]
pub struct NotAProxyRange;

impl FromStr for ProxyRange {
    type Err = NotAProxyRange;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Ok(range) = text.parse::<ipnet::IpNet>() {
            // Host bits set (`10.0.0.7/8`) are more likely a typo than a meaning.
            return if range.addr() == range.network() {
                Ok(ProxyRange(range))
            } else {
                Err(NotAProxyRange)
            };
        }
        let address = text.parse::<IpAddr>().map_err(|_| NotAProxyRange)?;
        // An IPv4-mapped IPv6 address is matched as the IPv4 address it is.
        Ok(ProxyRange(ipnet::IpNet::from(address.to_canonical())))
    }
}

/// `log.format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `"text"`: one human-readable line per event.
    #[default]
    Text,
    /// `"json"`: one JSON object per line, for log collectors.
    Json,
}

/// A configured secret: read from the file or environment, never printed.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Deserializes the values above from their text through `FromStr`, so a bad value's error
/// states the rule (and figment adds which key and which file or variable held it).
macro_rules! deserialize_from_str {
    ($($type:ty),*) => {$(
        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(D::Error::custom)
            }
        }
    )*};
}

deserialize_from_str!(Database, SessionBackend, PublicUrl, Origin, ProxyRange);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_name_sqlite_or_postgres() {
        assert_eq!(
            "sqlite://tessera-data/tessera.db".parse(),
            Ok(Database::Sqlite(PathBuf::from("tessera-data/tessera.db")))
        );
        assert_eq!(
            "sqlite:/var/lib/tessera.db".parse(),
            Ok(Database::Sqlite(PathBuf::from("/var/lib/tessera.db")))
        );
        assert_eq!(
            "postgresql://tessera@db/tessera".parse(),
            Ok(Database::Postgres("postgresql://tessera@db/tessera".into()))
        );
        for bad in ["mysql://x", "sqlite://", "tessera.db", ""] {
            assert_eq!(bad.parse::<Database>(), Err(UnknownDatabase), "{bad}");
        }
    }

    #[test]
    fn session_backends_are_database_memory_or_redis() {
        assert_eq!("database".parse(), Ok(SessionBackend::Database));
        assert_eq!("memory".parse(), Ok(SessionBackend::Memory));
        assert_eq!(
            "rediss://cache:6380/2".parse(),
            Ok(SessionBackend::Redis("rediss://cache:6380/2".into()))
        );
        for bad in ["Database", "sql", "redis:/x", ""] {
            assert_eq!(
                bad.parse::<SessionBackend>(),
                Err(UnknownSessionBackend),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_public_url_keeps_its_text_and_compares_as_an_origin() {
        let url: PublicUrl = "https://Auth.Example.com:443".parse().unwrap();
        assert_eq!(url.as_str(), "https://Auth.Example.com:443");
        assert_eq!(url.origin(), &"https://auth.example.com".parse().unwrap());
        assert_eq!(
            "https://auth.example.com/login".parse::<PublicUrl>(),
            Err(NotAnOrigin)
        );
    }
}
