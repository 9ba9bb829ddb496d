//! The binary forms of session and refresh records in Redis values.
//!
//! Fixed-width fields come first, at the offsets below, so Lua scripts can read a time with
//! `struct.unpack` and overwrite one with `SETRANGE` without decoding the rest; the
//! variable-length fields follow. In a session value times are big-endian 48-bit signed
//! milliseconds (±4,400 years around 1970; anything beyond is stored as the nearest end of
//! that range, which means "never" as well as the original did) and ids their 16 raw bytes;
//! in a refresh value times are `i64` and the session id its text. The key a value sits
//! under (session id, token hash) is not repeated in it.
//!
//! Over 500 lines because about 430 are its unit tests, which pin the byte layout the Lua
//! scripts read (and the bytes earlier versions wrote) and so belong beside it.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use sha2::{Digest, Sha256};
use tessera_core::{
    ParentSession, RefreshRecord, SessionId, SessionRecord, SessionVerifier, StoreError, Timestamp,
    TokenHash, Transport, UserId,
};

/// The first byte of an ordinary session value (not a child's) that carries `auth_time`: one
/// re-authenticated (or renamed by a password change) since login. (Version 1 kept sessions
/// under their token hash; nothing reads those keys now.)
pub(super) const SESSION_FORMAT: u8 = 3;

/// The first byte of a session value without `auth_time`, which then is its `created_at`:
/// every session as its login wrote it (and every value written before `auth_time`
/// existed). Most sessions never re-authenticate, so they keep the shorter value — 73 bytes
/// for a browser, inside Redis's 80-byte allocation class, where 79 would take 96. A
/// re-authentication rewrites the value as [`SESSION_FORMAT`].
pub(super) const SESSION_FORMAT_V2: u8 = 2;

/// The first byte of a child session's value (see [`SessionRecord::parent`]): one a service
/// obtained by token exchange. As [`SESSION_FORMAT`] — it always carries `auth_time` — with
/// the parent after the client address: its id (16 raw bytes), then its audience (`u32`
/// length + text). Only child sessions pay for it; every other session keeps format 2 or 3,
/// and their sizes. `auth_time` stays the last [`TIME_LEN`] bytes of a live value. A session
/// value of any format but 2, 3 and 4 is not ours.
pub(super) const SESSION_FORMAT_CHILD: u8 = 4;

/// The first byte of every refresh value this version writes.
pub(super) const REFRESH_FORMAT: u8 = 1;

/// Offsets in a session value.
pub(super) mod session {
    /// `0` live, `1` revoked, `2` being revoked (claimed by a revocation whose log write is
    /// under way; read as revoked). Unless live, the value ends with the revocation time.
    pub(crate) const STATE: usize = 1;
    pub(crate) const LAST_SEEN_AT: usize = 2;
    pub(crate) const IDLE_EXPIRES_AT: usize = 8;
    pub(crate) const EXPIRES_AT: usize = 14;
    pub(crate) const CREATED_AT: usize = 20;
    pub(crate) const USER_ID: usize = 26;
    pub(crate) const VERIFIER: usize = 42;
    pub(crate) const TRANSPORT: usize = 58;
    /// `0` no user agent, `1` one, whose digest follows (the text is under its own key).
    pub(crate) const USER_AGENT: usize = 59;
    pub(crate) const USER_AGENT_DIGEST: usize = 60;
    /// The shortest value: no user agent, no address, no `auth_time`.
    pub(crate) const MIN_LEN: usize = 61;

    pub(crate) const LIVE: u8 = 0;
    pub(crate) const REVOKED: u8 = 1;
    pub(crate) const REVOKING: u8 = 2;
}

/// Offsets in a refresh value.
pub(super) mod refresh {
    /// Bit 0: `spent_at` present; bit 1: `successor_hash` present.
    pub(crate) const FLAGS: usize = 1;
    pub(crate) const SPENT_AT: usize = 2;
    pub(crate) const SUCCESSOR: usize = 10;
    pub(crate) const ISSUED_AT: usize = 42;
    pub(crate) const EXPIRES_AT: usize = 50;
    pub(crate) const ACCESS_EXPIRES_AT: usize = 58;
    pub(crate) const SESSION_ID: usize = 66;
    /// Then the access token id, to the end.
    pub(crate) const ACCESS_TOKEN_ID: usize = 88;

    pub(crate) const SPENT: u8 = 1;
    pub(crate) const HAS_SUCCESSOR: u8 = 2;
}

/// Length of a [`SessionId`] in text form (refresh values hold it so).
pub(super) const ID_LEN: usize = 22;
/// Length of a [`SessionId`] or [`UserId`] in bytes (session values and keys hold them so).
pub(super) const RAW_ID_LEN: usize = 16;
/// Length of a stored time in a session value.
pub(super) const TIME_LEN: usize = 6;
/// Length of a user agent's digest.
pub(super) const DIGEST_LEN: usize = 8;

/// The digest under which a user agent's text is stored: the first 64 bits of its SHA-256.
///
/// Many sessions share a handful of browsers' strings, so each string is stored once. A
/// collision (which takes about 2^32 chosen strings to find) can only make one user agent be
/// shown for another; it is display text, never checked.
pub(super) type UserAgentDigest = [u8; DIGEST_LEN];

pub(super) fn user_agent_digest(user_agent: &str) -> UserAgentDigest {
    let digest = Sha256::digest(user_agent.as_bytes());
    let mut short = [0; DIGEST_LEN];
    short.copy_from_slice(&digest[..DIGEST_LEN]);
    short
}

const NONE: u8 = 0;
const PRESENT: u8 = 1;
const COOKIE: u8 = 0;
const TOKEN: u8 = 1;
const IP_TEXT: u8 = 1;
const IPV4: u8 = 4;
const IPV6: u8 = 6;

/// A value under a Tessera key that this code cannot read.
#[derive(Debug)]
pub(super) struct MalformedValue {
    what: &'static str,
}

impl fmt::Display for MalformedValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed {} in a Redis value", self.what)
    }
}

impl std::error::Error for MalformedValue {}

pub(super) fn malformed(what: &'static str) -> StoreError {
    StoreError::corrupt(MalformedValue { what })
}

/// A refresh value's time: big-endian `i64` milliseconds.
pub(super) fn time_bytes(time: Timestamp) -> [u8; 8] {
    time.unix_millis().to_be_bytes()
}

/// A session value's time: big-endian 48-bit milliseconds, saturated at the range's ends.
pub(super) fn short_time(time: Timestamp) -> [u8; TIME_LEN] {
    const MAX: i64 = (1 << 47) - 1;
    let bytes = time.unix_millis().clamp(-MAX - 1, MAX).to_be_bytes();
    let mut short = [0; TIME_LEN];
    short.copy_from_slice(&bytes[8 - TIME_LEN..]);
    short
}

fn from_short_time(bytes: [u8; TIME_LEN]) -> Timestamp {
    let mut wide = if bytes[0] & 0x80 != 0 {
        [0xff; 8]
    } else {
        [0; 8]
    };
    wide[8 - TIME_LEN..].copy_from_slice(&bytes);
    Timestamp::from_unix_millis(i64::from_be_bytes(wide))
}

/// A session's value: everything but its id, which is the key, and its user agent's text,
/// which is stored once per distinct text under its digest.
///
/// Layout: the fixed fields at the offsets in [`session`] (the user agent's digest only when
/// there is one); the client address (`0` none, `4` + 4 bytes, `6` + 16 bytes — only when
/// the text is the address's canonical form — or `1` + `u32` length + text); the parent, in
/// [`SESSION_FORMAT_CHILD`] only; `auth_time`, in [`SESSION_FORMAT`] (when it differs from
/// `created_at`) and [`SESSION_FORMAT_CHILD`]; and, unless the session is live, its
/// revocation time. So `auth_time` is the last [`TIME_LEN`] bytes of a live value, where a
/// script can replace it without decoding the address or the parent.
pub(super) fn encode_session(record: &SessionRecord) -> Result<Vec<u8>, StoreError> {
    let mut value = Vec::with_capacity(session::MIN_LEN + DIGEST_LEN + 30);
    let format = match &record.parent {
        Some(_) => SESSION_FORMAT_CHILD,
        None if record.auth_time != record.created_at => SESSION_FORMAT,
        None => SESSION_FORMAT_V2,
    };
    value.push(format);
    debug_assert_eq!(value.len(), session::STATE);
    value.push(if record.revoked_at.is_some() {
        session::REVOKED
    } else {
        session::LIVE
    });
    for (offset, time) in [
        (session::LAST_SEEN_AT, record.last_seen_at),
        (session::IDLE_EXPIRES_AT, record.idle_expires_at),
        (session::EXPIRES_AT, record.expires_at),
        (session::CREATED_AT, record.created_at),
    ] {
        debug_assert_eq!(value.len(), offset);
        value.extend_from_slice(&short_time(time));
    }
    debug_assert_eq!(value.len(), session::USER_ID);
    value.extend_from_slice(&record.user_id.to_bytes());
    debug_assert_eq!(value.len(), session::VERIFIER);
    value.extend_from_slice(record.verifier.as_bytes());
    debug_assert_eq!(value.len(), session::TRANSPORT);
    value.push(match record.transport {
        Transport::Cookie => COOKIE,
        Transport::Token => TOKEN,
        _ => return Err(malformed("transport")),
    });
    debug_assert_eq!(value.len(), session::USER_AGENT);
    match &record.user_agent {
        Some(user_agent) => {
            value.push(PRESENT);
            value.extend_from_slice(&user_agent_digest(user_agent));
        }
        None => value.push(NONE),
    }
    encode_ip(record.ip.as_deref(), &mut value);
    if let Some(parent) = &record.parent {
        value.extend_from_slice(&parent.id.to_bytes());
        encode_text(&parent.audience, &mut value);
    }
    if format != SESSION_FORMAT_V2 {
        value.extend_from_slice(&short_time(record.auth_time));
    }
    if let Some(revoked_at) = record.revoked_at {
        value.extend_from_slice(&short_time(revoked_at));
    }
    Ok(value)
}

fn encode_ip(ip: Option<&str>, value: &mut Vec<u8>) {
    let Some(text) = ip else {
        value.push(NONE);
        return;
    };
    // Packed only when unpacking gives back the very same text.
    if let Ok(v4) = text.parse::<Ipv4Addr>()
        && v4.to_string() == text
    {
        value.push(IPV4);
        value.extend_from_slice(&v4.octets());
    } else if let Ok(v6) = text.parse::<Ipv6Addr>()
        && v6.to_string() == text
    {
        value.push(IPV6);
        value.extend_from_slice(&v6.octets());
    } else {
        value.push(IP_TEXT);
        encode_text(text, value);
    }
}

/// `text` as its `u32` length and its bytes (cut at 4 GiB, which no address or audience
/// comes near).
fn encode_text(text: &str, value: &mut Vec<u8>) {
    let len = u32::try_from(text.len()).unwrap_or(u32::MAX);
    value.extend_from_slice(&len.to_be_bytes());
    value.extend_from_slice(&text.as_bytes()[..len as usize]);
}

/// A session value read back: the record without its user agent's text, and that text's
/// digest if it has one (see [`encode_session`]).
pub(super) struct StoredSession {
    pub(super) record: SessionRecord,
    pub(super) user_agent: Option<UserAgentDigest>,
}

/// Reads the value of the session with id `id`.
pub(super) fn decode_session(id: SessionId, value: &[u8]) -> Result<StoredSession, StoreError> {
    let (mut reader, format) = Reader::either(
        value,
        [SESSION_FORMAT, SESSION_FORMAT_V2, SESSION_FORMAT_CHILD],
    )?;
    let state = reader.byte("session state")?;
    let revoked_at = match state {
        session::LIVE => None,
        session::REVOKED | session::REVOKING => Some(reader.short_time_at_end()?),
        _ => return Err(malformed("session state")),
    };
    let auth_time = match format {
        SESSION_FORMAT_V2 => None,
        _ => Some(reader.short_time_at_end()?),
    };
    let last_seen_at = reader.short_time()?;
    let idle_expires_at = reader.short_time()?;
    let expires_at = reader.short_time()?;
    let created_at = reader.short_time()?;
    let user_id = UserId::from_bytes(&reader.array("user id")?);
    let verifier = SessionVerifier::from_bytes(reader.array("verifier")?);
    let transport = match reader.byte("transport")? {
        COOKIE => Transport::Cookie,
        TOKEN => Transport::Token,
        _ => return Err(malformed("transport")),
    };
    let user_agent = match reader.byte("user agent")? {
        NONE => None,
        PRESENT => Some(reader.array("user agent")?),
        _ => return Err(malformed("user agent")),
    };
    let ip = match reader.byte("client address")? {
        NONE => None,
        IPV4 => {
            let octets: [u8; 4] = reader.array("client address")?;
            Some(ipv4_text(octets))
        }
        IPV6 => {
            let octets: [u8; 16] = reader.array("client address")?;
            Some(Ipv6Addr::from(octets).to_string())
        }
        IP_TEXT => Some(reader.prefixed_text("client address")?.to_owned()),
        _ => return Err(malformed("client address")),
    };
    let parent = match format {
        SESSION_FORMAT_CHILD => Some(ParentSession {
            id: SessionId::from_bytes(&reader.array("parent session id")?),
            audience: reader.prefixed_text("parent audience")?.to_owned(),
        }),
        _ => None,
    };
    reader.end("session")?;
    Ok(StoredSession {
        record: SessionRecord {
            id,
            verifier,
            user_id,
            transport,
            created_at,
            auth_time: auth_time.unwrap_or(created_at),
            last_seen_at,
            idle_expires_at,
            expires_at,
            ip,
            user_agent: None,
            revoked_at,
            parent,
        },
        user_agent,
    })
}

/// Dotted-decimal text of an IPv4 address, as `Ipv4Addr`'s `Display` writes it but without
/// the formatting machinery, which showed in the profile of a session read (a test holds the
/// two together over every octet value).
fn ipv4_text(octets: [u8; 4]) -> String {
    let mut text = String::with_capacity(15);
    for (index, octet) in octets.into_iter().enumerate() {
        if index > 0 {
            text.push('.');
        }
        if octet >= 100 {
            text.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            text.push(char::from(b'0' + octet / 10 % 10));
        }
        text.push(char::from(b'0' + octet % 10));
    }
    text
}

/// A refresh record's value: everything but the token hash, which is the key. Layout: the
/// fixed fields at the offsets in [`refresh`], then the access token id to the end.
pub(super) fn encode_refresh(record: &RefreshRecord) -> Vec<u8> {
    let mut value = Vec::with_capacity(refresh::ACCESS_TOKEN_ID + record.access_token_id.len());
    value.push(REFRESH_FORMAT);
    debug_assert_eq!(value.len(), refresh::FLAGS);
    let mut flags = 0;
    if record.spent_at.is_some() {
        flags |= refresh::SPENT;
    }
    if record.successor_hash.is_some() {
        flags |= refresh::HAS_SUCCESSOR;
    }
    value.push(flags);
    debug_assert_eq!(value.len(), refresh::SPENT_AT);
    value.extend_from_slice(&record.spent_at.map(time_bytes).unwrap_or([0; 8]));
    debug_assert_eq!(value.len(), refresh::SUCCESSOR);
    let successor = record
        .successor_hash
        .map_or([0; 32], |hash| *hash.as_bytes());
    value.extend_from_slice(&successor);
    for (offset, time) in [
        (refresh::ISSUED_AT, record.issued_at),
        (refresh::EXPIRES_AT, record.expires_at),
        (refresh::ACCESS_EXPIRES_AT, record.access_expires_at),
    ] {
        debug_assert_eq!(value.len(), offset);
        value.extend_from_slice(&time_bytes(time));
    }
    debug_assert_eq!(value.len(), refresh::SESSION_ID);
    value.extend_from_slice(record.session_id.as_str().as_bytes());
    debug_assert_eq!(value.len(), refresh::ACCESS_TOKEN_ID);
    value.extend_from_slice(record.access_token_id.as_bytes());
    value
}

/// Reads a refresh value stored under `token_hash`.
pub(super) fn decode_refresh(
    token_hash: TokenHash,
    value: &[u8],
) -> Result<RefreshRecord, StoreError> {
    let mut reader = Reader::new(value, REFRESH_FORMAT)?;
    let flags = reader.byte("refresh flags")?;
    if flags & !(refresh::SPENT | refresh::HAS_SUCCESSOR) != 0 {
        return Err(malformed("refresh flags"));
    }
    let spent_at = reader.time()?;
    let successor: [u8; 32] = reader.array("successor hash")?;
    let issued_at = reader.time()?;
    let expires_at = reader.time()?;
    let access_expires_at = reader.time()?;
    let session_id =
        SessionId::parse(reader.text(ID_LEN, "session id")?).map_err(StoreError::corrupt)?;
    let access_token_id = reader.rest("access token id")?.to_owned();
    Ok(RefreshRecord {
        token_hash,
        session_id,
        issued_at,
        expires_at,
        access_token_id,
        access_expires_at,
        spent_at: (flags & refresh::SPENT != 0).then_some(spent_at),
        successor_hash: (flags & refresh::HAS_SUCCESSOR != 0)
            .then(|| TokenHash::from_bytes(successor)),
    })
}

/// Reads a value front to back; running out of bytes is [`StoreError::Corrupt`].
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(value: &'a [u8], format: u8) -> Result<Self, StoreError> {
        match value.split_first() {
            Some((&first, rest)) if first == format => Ok(Reader { rest }),
            _ => Err(malformed("format version")),
        }
    }

    /// A reader of a value in any of `formats`, and the format it is in.
    fn either<const N: usize>(value: &'a [u8], formats: [u8; N]) -> Result<(Self, u8), StoreError> {
        match value.split_first() {
            Some((&first, rest)) if formats.contains(&first) => Ok((Reader { rest }, first)),
            _ => Err(malformed("format version")),
        }
    }

    /// Takes a session time off the end (where a revoked session keeps its revocation time).
    fn short_time_at_end(&mut self) -> Result<Timestamp, StoreError> {
        let Some(split) = self.rest.len().checked_sub(TIME_LEN) else {
            return Err(malformed("revocation time"));
        };
        let (rest, time) = self.rest.split_at(split);
        self.rest = rest;
        let time = <[u8; TIME_LEN]>::try_from(time).map_err(|_| malformed("revocation time"))?;
        Ok(from_short_time(time))
    }

    fn short_time(&mut self) -> Result<Timestamp, StoreError> {
        Ok(from_short_time(self.array("time")?))
    }

    fn take(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], StoreError> {
        if self.rest.len() < len {
            return Err(malformed(what));
        }
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], StoreError> {
        let bytes = self.take(N, what)?;
        <[u8; N]>::try_from(bytes).map_err(|_| malformed(what))
    }

    fn byte(&mut self, what: &'static str) -> Result<u8, StoreError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn time(&mut self) -> Result<Timestamp, StoreError> {
        Ok(Timestamp::from_unix_millis(i64::from_be_bytes(
            self.array("time")?,
        )))
    }

    fn text(&mut self, len: usize, what: &'static str) -> Result<&'a str, StoreError> {
        std::str::from_utf8(self.take(len, what)?).map_err(|_| malformed(what))
    }

    /// Text after its `u32` length.
    fn prefixed_text(&mut self, what: &'static str) -> Result<&'a str, StoreError> {
        let len = u32::from_be_bytes(self.array(what)?);
        let len = usize::try_from(len).map_err(|_| malformed(what))?;
        self.text(len, what)
    }

    fn rest(&mut self, what: &'static str) -> Result<&'a str, StoreError> {
        let len = self.rest.len();
        self.text(len, what)
    }

    fn end(&self, what: &'static str) -> Result<(), StoreError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(malformed(what))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.
mod tests {
    use super::*;
    use tessera_core::SessionToken;

    #[test]
    fn ipv4_text_is_what_display_writes() {
        for octet in 0..=u8::MAX {
            for octets in [
                [octet, 0, 0, 0],
                [0, octet, 9, 10],
                [99, 100, octet, 255],
                [octet, octet / 2, octet / 10, octet],
            ] {
                assert_eq!(ipv4_text(octets), Ipv4Addr::from(octets).to_string());
            }
        }
    }

    fn session(ip: Option<&str>, user_agent: Option<&str>) -> SessionRecord {
        let token = SessionToken::generate().unwrap();
        SessionRecord {
            id: token.session_id(),
            verifier: token.verifier(),
            user_id: UserId::generate().unwrap(),
            transport: Transport::Token,
            created_at: Timestamp::from_unix_millis(1_700_000_000_000),
            auth_time: Timestamp::from_unix_millis(1_700_000_030_000),
            last_seen_at: Timestamp::from_unix_millis(1_700_000_060_000),
            idle_expires_at: Timestamp::from_unix_millis(1_700_001_860_000),
            expires_at: Timestamp::from_unix_millis(-1),
            ip: ip.map(str::to_owned),
            user_agent: user_agent.map(str::to_owned),
            revoked_at: None,
            parent: None,
        }
    }

    /// Decodes and puts back the user agent the digest stands for, as the store does.
    fn round_trip(record: &SessionRecord) -> SessionRecord {
        let value = encode_session(record).unwrap();
        let stored = decode_session(record.id.clone(), &value).unwrap();
        assert_eq!(
            stored.user_agent,
            record.user_agent.as_deref().map(user_agent_digest)
        );
        SessionRecord {
            user_agent: record.user_agent.clone(),
            ..stored.record
        }
    }

    #[test]
    fn sessions_round_trip_whatever_their_address() {
        for ip in [
            None,
            Some("192.0.2.7"),
            Some("2001:db8::1"),
            Some("2001:0db8::1"),
            Some("192.000.002.007"),
            Some("::ffff:192.0.2.7"),
            Some("not an address, “quoted”"),
            Some(""),
        ] {
            for user_agent in [None, Some(""), Some("Mozilla/5.0 — naïve")] {
                let record = session(ip, user_agent);
                assert_eq!(round_trip(&record), record, "{ip:?} {user_agent:?}");
            }
        }
    }

    #[test]
    fn a_browser_session_fits_in_73_bytes() {
        // What the memory target rests on: with an IPv4 address and a user agent, the value
        // of a session as login wrote it is 73 bytes, which Redis keeps in an 80-byte
        // allocation. A re-authenticated one carries `auth_time` too.
        let agent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)";
        let reauthenticated = session(Some("192.0.2.7"), Some(agent));
        let at_login = SessionRecord {
            auth_time: reauthenticated.created_at,
            ..reauthenticated.clone()
        };
        let value = encode_session(&at_login).unwrap();
        assert_eq!((value.len(), value[0]), (73, SESSION_FORMAT_V2));
        assert_eq!(round_trip(&at_login), at_login);
        let value = encode_session(&reauthenticated).unwrap();
        assert_eq!((value.len(), value[0]), (79, SESSION_FORMAT));
    }

    #[test]
    fn addresses_are_packed_only_when_canonical() {
        let len = |ip| encode_session(&session(Some(ip), None)).unwrap().len();
        let base = encode_session(&session(None, None)).unwrap().len();
        // `session` is re-authenticated: it carries `auth_time`.
        assert_eq!(base, session::MIN_LEN + TIME_LEN);
        assert_eq!(len("192.0.2.7"), base + 4);
        assert_eq!(len("2001:db8::1"), base + 16);
        assert_eq!(len("2001:0db8::1"), base + 4 + "2001:0db8::1".len());
    }

    #[test]
    fn times_beyond_48_bits_saturate() {
        let far = SessionRecord {
            idle_expires_at: Timestamp::from_unix_millis(i64::MAX),
            expires_at: Timestamp::from_unix_millis(i64::MIN),
            ..session(None, None)
        };
        let back = round_trip(&far);
        assert_eq!(back.idle_expires_at.unix_millis(), (1 << 47) - 1);
        assert_eq!(back.expires_at.unix_millis(), -(1 << 47));
        assert_eq!(back.created_at, far.created_at);
    }

    /// A value as version 2 wrote it, whatever the record's `auth_time`: the same bytes
    /// without it.
    fn version_2(record: &SessionRecord) -> Vec<u8> {
        let mut value = encode_session(record).unwrap();
        let auth_time = value.len() - TIME_LEN * (1 + usize::from(record.revoked_at.is_some()));
        value.drain(auth_time..auth_time + TIME_LEN);
        value[0] = SESSION_FORMAT_V2;
        value
    }

    #[test]
    fn version_2_values_read_auth_time_as_created_at() {
        let live = session(Some("192.0.2.7"), Some("ua"));
        let revoked = SessionRecord {
            revoked_at: Some(Timestamp::from_unix_millis(1_700_000_120_000)),
            ..session(None, None)
        };
        for record in [live, revoked] {
            let value = version_2(&record);
            let read = decode_session(record.id.clone(), &value).unwrap().record;
            let expected = SessionRecord {
                auth_time: record.created_at,
                user_agent: None,
                ..record.clone()
            };
            assert_eq!(read, expected);
        }
        let mut unknown = version_2(&session(None, None));
        unknown[0] = 5;
        assert!(matches!(
            decode_session(SessionId::generate().unwrap(), &unknown),
            Err(StoreError::Corrupt(_))
        ));
    }

    /// The session behind the values [`OLD_VALUES`] pins: fixed ids, a browser with an IPv4
    /// address, logged in at `auth_time` and revoked at `revoked_at` if given.
    fn pinned(auth_time: i64, revoked_at: Option<i64>) -> SessionRecord {
        SessionRecord {
            id: SessionId::from_bytes(&[0x5a; 16]),
            verifier: SessionVerifier::from_bytes([0xa5; 16]),
            user_id: UserId::from_bytes(&[0x3c; 16]),
            transport: Transport::Cookie,
            created_at: Timestamp::from_unix_millis(1_700_000_000_000),
            auth_time: Timestamp::from_unix_millis(auth_time),
            last_seen_at: Timestamp::from_unix_millis(1_700_000_060_000),
            idle_expires_at: Timestamp::from_unix_millis(1_700_001_860_000),
            expires_at: Timestamp::from_unix_millis(1_700_043_200_000),
            ip: Some("192.0.2.7".to_owned()),
            user_agent: Some("ua".to_owned()),
            revoked_at: revoked_at.map(Timestamp::from_unix_millis),
            parent: None,
        }
    }

    /// Values of [`pinned`] sessions exactly as the code before child sessions (format 4)
    /// wrote them: `(auth_time, revoked_at, hex)`. Such values sit in a running Redis across
    /// an upgrade.
    const OLD_VALUES: [(i64, Option<i64>, &str); 4] = [
        (
            1_700_000_000_000,
            None,
            "0200018bcfe65260018bd001c9a0018bd2789600018bcfe568003c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c\
             a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a50001844bc172f032bdd204c0000207",
        ),
        (
            1_700_000_000_000,
            Some(1_700_000_120_000),
            "0201018bcfe65260018bd001c9a0018bd2789600018bcfe568003c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c\
             a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a50001844bc172f032bdd204c0000207018bcfe73cc0",
        ),
        (
            1_700_000_030_000,
            None,
            "0300018bcfe65260018bd001c9a0018bd2789600018bcfe568003c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c\
             a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a50001844bc172f032bdd204c0000207018bcfe5dd30",
        ),
        (
            1_700_000_030_000,
            Some(1_700_000_120_000),
            "0301018bcfe65260018bd001c9a0018bd2789600018bcfe568003c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c\
             a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a50001844bc172f032bdd204c0000207018bcfe5dd30\
             018bcfe73cc0",
        ),
    ];

    fn from_hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(&text[at..at + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn values_of_formats_2_and_3_still_decode_and_encode_alike() {
        for (auth_time, revoked_at, hex) in OLD_VALUES {
            let old = from_hex(hex);
            let record = pinned(auth_time, revoked_at);
            let stored = decode_session(record.id.clone(), &old).unwrap();
            assert_eq!(stored.user_agent, Some(user_agent_digest("ua")));
            assert_eq!(
                stored.record,
                SessionRecord {
                    user_agent: None,
                    ..record.clone()
                },
                "{hex}"
            );
            // An ordinary session is written as before: same format, same bytes, same size.
            assert_eq!(encode_session(&record).unwrap(), old, "{hex}");
        }
    }

    fn child(parent: &SessionRecord, audience: &str) -> SessionRecord {
        SessionRecord {
            parent: Some(ParentSession {
                id: parent.id.clone(),
                audience: audience.to_owned(),
            }),
            ..session(Some("192.0.2.7"), Some("ua"))
        }
    }

    #[test]
    fn child_sessions_round_trip_with_their_parent() {
        let parent = session(None, None);
        for audience in [
            "https://orders.example",
            "",
            "svc “naïve”",
            &"a".repeat(300),
        ] {
            let live = child(&parent, audience);
            let logged_in = SessionRecord {
                auth_time: live.created_at,
                ..live.clone()
            };
            let revoked = SessionRecord {
                revoked_at: Some(Timestamp::from_unix_millis(1_700_000_120_000)),
                ..live.clone()
            };
            let bare = SessionRecord {
                ip: None,
                user_agent: None,
                ..live.clone()
            };
            for record in [live, logged_in, revoked, bare] {
                let value = encode_session(&record).unwrap();
                assert_eq!(value[0], SESSION_FORMAT_CHILD);
                assert_eq!(round_trip(&record), record, "{audience:?}");
            }
        }
    }

    #[test]
    fn a_child_value_is_the_ordinary_one_with_its_parent_before_auth_time() {
        let parent = session(None, None);
        let record = child(&parent, "https://orders.example");
        let ordinary = encode_session(&SessionRecord {
            parent: None,
            ..record.clone()
        })
        .unwrap();
        assert_eq!(ordinary[0], SESSION_FORMAT);
        let value = encode_session(&record).unwrap();
        let parent_len = RAW_ID_LEN + 4 + "https://orders.example".len();
        assert_eq!(value.len(), ordinary.len() + parent_len);
        let split = ordinary.len() - TIME_LEN;
        // Fixed fields and address alike, then the parent, then `auth_time` last: where the
        // scripts read and replace it.
        assert_eq!(value[1..split], ordinary[1..split]);
        assert_eq!(
            value[split..split + RAW_ID_LEN],
            parent.id.to_bytes()[..],
            "the parent's raw id"
        );
        assert_eq!(
            value[split + RAW_ID_LEN..split + RAW_ID_LEN + 4],
            [0, 0, 0, 22]
        );
        assert_eq!(value[value.len() - TIME_LEN..], ordinary[split..]);
        // Even when `auth_time` is `created_at`: a child always carries it.
        let at_login = SessionRecord {
            auth_time: record.created_at,
            ..record.clone()
        };
        let value = encode_session(&at_login).unwrap();
        let end: [u8; TIME_LEN] = value[value.len() - TIME_LEN..].try_into().unwrap();
        assert_eq!(from_short_time(end), record.created_at);
    }

    #[test]
    fn truncated_child_values_are_corrupt() {
        let record = child(&session(None, None), "https://orders.example");
        let value = encode_session(&record).unwrap();
        for len in session::MIN_LEN..value.len() {
            assert!(
                matches!(
                    decode_session(record.id.clone(), &value[..len]),
                    Err(StoreError::Corrupt(_))
                ),
                "{len}"
            );
        }
        // A parent whose audience claims more bytes than the value holds.
        let mut long = value.clone();
        let length_at = value.len() - TIME_LEN - "https://orders.example".len() - 4;
        long[length_at..length_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            decode_session(record.id.clone(), &long),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn auth_time_is_the_end_of_a_live_value() {
        let record = session(Some("2001:db8::1"), Some("ua"));
        let value = encode_session(&record).unwrap();
        let end: [u8; TIME_LEN] = value[value.len() - TIME_LEN..].try_into().unwrap();
        assert_eq!(from_short_time(end), record.auth_time);
    }

    #[test]
    fn revocation_state_reads_back() {
        let revoked = SessionRecord {
            revoked_at: Some(Timestamp::from_unix_millis(1_700_000_120_000)),
            ..session(Some("192.0.2.7"), Some("ua"))
        };
        let mut value = encode_session(&revoked).unwrap();
        assert_eq!(value[session::STATE], session::REVOKED);
        assert_eq!(round_trip(&revoked), revoked);
        let live = encode_session(&session(Some("192.0.2.7"), Some("ua"))).unwrap();
        assert_eq!(value.len(), live.len() + TIME_LEN);
        // A claimed revocation reads as revoked.
        value[session::STATE] = session::REVOKING;
        let claimed = decode_session(revoked.id.clone(), &value).unwrap().record;
        assert_eq!(claimed.revoked_at, revoked.revoked_at);
        value[session::STATE] = 7;
        assert!(matches!(
            decode_session(revoked.id.clone(), &value),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn fixed_offsets_hold_what_the_scripts_expect() {
        let record = session(None, Some("ua"));
        let value = encode_session(&record).unwrap();
        let time_at = |offset: usize| {
            from_short_time(value[offset..offset + TIME_LEN].try_into().unwrap()).unix_millis()
        };
        assert_eq!(time_at(session::LAST_SEEN_AT), 1_700_000_060_000);
        assert_eq!(time_at(session::IDLE_EXPIRES_AT), 1_700_001_860_000);
        assert_eq!(time_at(session::EXPIRES_AT), -1);
        assert_eq!(time_at(session::CREATED_AT), 1_700_000_000_000);
        assert_eq!(
            &value[session::USER_ID..session::USER_ID + RAW_ID_LEN],
            record.user_id.to_bytes()
        );
        assert_eq!(
            &value[session::VERIFIER..session::VERIFIER + 16],
            record.verifier.as_bytes()
        );
        assert_eq!(value[session::TRANSPORT], TOKEN);
        assert_eq!(value[session::USER_AGENT], PRESENT);
        assert_eq!(
            value[session::USER_AGENT_DIGEST..session::USER_AGENT_DIGEST + DIGEST_LEN],
            user_agent_digest("ua")
        );
    }

    #[test]
    fn refresh_records_round_trip() {
        let fresh = RefreshRecord {
            token_hash: TokenHash::from_bytes([1; 32]),
            session_id: SessionId::generate().unwrap(),
            issued_at: Timestamp::from_unix_millis(1_700_000_000_000),
            expires_at: Timestamp::from_unix_millis(1_700_086_400_000),
            access_token_id: "jti with “unicode”".to_owned(),
            access_expires_at: Timestamp::from_unix_millis(1_700_000_900_000),
            spent_at: None,
            successor_hash: None,
        };
        let spent = RefreshRecord {
            spent_at: Some(Timestamp::from_unix_millis(1_700_000_500_000)),
            successor_hash: Some(TokenHash::from_bytes([2; 32])),
            access_token_id: String::new(),
            ..fresh.clone()
        };
        for record in [fresh, spent] {
            let value = encode_refresh(&record);
            assert_eq!(decode_refresh(record.token_hash, &value).unwrap(), record);
            let expires = &value[refresh::EXPIRES_AT..refresh::EXPIRES_AT + 8];
            assert_eq!(expires, record.expires_at.unix_millis().to_be_bytes());
        }
    }

    #[test]
    fn foreign_or_truncated_values_are_corrupt() {
        let record = session(Some("192.0.2.7"), None);
        let value = encode_session(&record).unwrap();
        let id = || record.id.clone();
        for bad in [
            &b""[..],
            &b"\x01rest"[..],
            &value[..value.len() - 1],
            &value[..session::TRANSPORT],
        ] {
            assert!(matches!(
                decode_session(id(), bad),
                Err(StoreError::Corrupt(_))
            ));
        }
        let mut trailing = value.clone();
        trailing.push(0);
        assert!(decode_session(id(), &trailing).is_err());
        assert!(matches!(
            decode_refresh(TokenHash::from_bytes([1; 32]), &value[..40]),
            Err(StoreError::Corrupt(_))
        ));
    }
}
