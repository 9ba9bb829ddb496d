//! The binary forms of session and refresh records in Redis values.
//!
//! Fixed-width fields come first, at the offsets below, so Lua scripts can read a time with
//! `struct.unpack` and overwrite one with `SETRANGE` without decoding the rest; the
//! variable-length fields follow. Times are big-endian `i64` milliseconds, ids their
//! 22-character text. The token hash is not in the value: it is the key.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use tessera_core::{
    RefreshRecord, SessionId, SessionRecord, StoreError, Timestamp, TokenHash, Transport, UserId,
};

/// The first byte of every value this version writes; anything else is not ours to read.
pub(super) const FORMAT: u8 = 1;

/// Offsets in a session value.
pub(super) mod session {
    /// `0` live, `1` revoked, `2` being revoked (claimed by a revocation whose log write is
    /// under way; read as revoked).
    pub(crate) const STATE: usize = 1;
    pub(crate) const REVOKED_AT: usize = 2;
    pub(crate) const LAST_SEEN_AT: usize = 10;
    pub(crate) const IDLE_EXPIRES_AT: usize = 18;
    pub(crate) const EXPIRES_AT: usize = 26;
    pub(crate) const CREATED_AT: usize = 34;
    pub(crate) const SESSION_ID: usize = 42;
    pub(crate) const USER_ID: usize = 64;
    /// Then: transport, client address, user agent (see `encode_session`).
    pub(crate) const TRANSPORT: usize = 86;

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

/// Length of a [`SessionId`] or [`UserId`] in text form.
pub(super) const ID_LEN: usize = 22;

const NONE: u8 = 0;
const PRESENT: u8 = 1;
const COOKIE: u8 = 0;
const TOKEN: u8 = 1;
const OTHER_TRANSPORT: u8 = 2;
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

/// `time` as stored: big-endian milliseconds.
pub(super) fn time_bytes(time: Timestamp) -> [u8; 8] {
    time.unix_millis().to_be_bytes()
}

/// A session's value: everything but the token hash, which is the key.
///
/// Layout: the fixed fields at the offsets in [`session`]; then the transport (`0` cookie, `1`
/// token, `2` + `u8` length + its name); the client address (`0` none, `4` + 4 bytes, `6` +
/// 16 bytes — only when the text is the address's canonical form — or `1` + `u32` length +
/// text); the user agent (`0` none, or `1` + text to the end).
pub(super) fn encode_session(record: &SessionRecord) -> Vec<u8> {
    let user_agent = record.user_agent.as_deref().unwrap_or("");
    let mut value = Vec::with_capacity(session::TRANSPORT + 24 + user_agent.len());
    value.push(FORMAT);
    debug_assert_eq!(value.len(), session::STATE);
    match record.revoked_at {
        Some(revoked_at) => {
            value.push(session::REVOKED);
            value.extend_from_slice(&time_bytes(revoked_at));
        }
        None => {
            value.push(session::LIVE);
            value.extend_from_slice(&[0; 8]);
        }
    }
    for (offset, time) in [
        (session::LAST_SEEN_AT, record.last_seen_at),
        (session::IDLE_EXPIRES_AT, record.idle_expires_at),
        (session::EXPIRES_AT, record.expires_at),
        (session::CREATED_AT, record.created_at),
    ] {
        debug_assert_eq!(value.len(), offset);
        value.extend_from_slice(&time_bytes(time));
    }
    debug_assert_eq!(value.len(), session::SESSION_ID);
    value.extend_from_slice(record.id.as_str().as_bytes());
    debug_assert_eq!(value.len(), session::USER_ID);
    value.extend_from_slice(record.user_id.as_str().as_bytes());
    debug_assert_eq!(value.len(), session::TRANSPORT);
    match record.transport {
        Transport::Cookie => value.push(COOKIE),
        Transport::Token => value.push(TOKEN),
        other => {
            let name = other.as_str().as_bytes();
            value.push(OTHER_TRANSPORT);
            value.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
            value.extend_from_slice(&name[..name.len().min(usize::from(u8::MAX))]);
        }
    }
    encode_ip(record.ip.as_deref(), &mut value);
    match &record.user_agent {
        Some(user_agent) => {
            value.push(PRESENT);
            value.extend_from_slice(user_agent.as_bytes());
        }
        None => value.push(NONE),
    }
    value
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
        let len = u32::try_from(text.len()).unwrap_or(u32::MAX);
        value.extend_from_slice(&len.to_be_bytes());
        value.extend_from_slice(&text.as_bytes()[..len as usize]);
    }
}

/// Reads a session value stored under `token_hash`.
pub(super) fn decode_session(
    token_hash: TokenHash,
    value: &[u8],
) -> Result<SessionRecord, StoreError> {
    let mut reader = Reader::new(value)?;
    let state = reader.byte("session state")?;
    let revoked_at = reader.time()?;
    let revoked_at = match state {
        session::LIVE => None,
        session::REVOKED | session::REVOKING => Some(revoked_at),
        _ => return Err(malformed("session state")),
    };
    let last_seen_at = reader.time()?;
    let idle_expires_at = reader.time()?;
    let expires_at = reader.time()?;
    let created_at = reader.time()?;
    let id = SessionId::parse(reader.text(ID_LEN, "session id")?).map_err(StoreError::corrupt)?;
    let user_id = UserId::parse(reader.text(ID_LEN, "user id")?).map_err(StoreError::corrupt)?;
    let transport = match reader.byte("transport")? {
        COOKIE => Transport::Cookie,
        TOKEN => Transport::Token,
        OTHER_TRANSPORT => {
            let len = reader.byte("transport")?;
            Transport::parse(reader.text(usize::from(len), "transport")?)
                .ok_or_else(|| malformed("transport"))?
        }
        _ => return Err(malformed("transport")),
    };
    let ip = match reader.byte("client address")? {
        NONE => None,
        IPV4 => {
            let octets: [u8; 4] = reader.array("client address")?;
            Some(Ipv4Addr::from(octets).to_string())
        }
        IPV6 => {
            let octets: [u8; 16] = reader.array("client address")?;
            Some(Ipv6Addr::from(octets).to_string())
        }
        IP_TEXT => {
            let len = u32::from_be_bytes(reader.array("client address")?);
            let len = usize::try_from(len).map_err(|_| malformed("client address"))?;
            Some(reader.text(len, "client address")?.to_owned())
        }
        _ => return Err(malformed("client address")),
    };
    let user_agent = match reader.byte("user agent")? {
        NONE => {
            reader.end("session")?;
            None
        }
        PRESENT => Some(reader.rest("user agent")?.to_owned()),
        _ => return Err(malformed("user agent")),
    };
    Ok(SessionRecord {
        id,
        token_hash,
        user_id,
        transport,
        created_at,
        last_seen_at,
        idle_expires_at,
        expires_at,
        ip,
        user_agent,
        revoked_at,
    })
}

/// A refresh record's value: everything but the token hash, which is the key. Layout: the
/// fixed fields at the offsets in [`refresh`], then the access token id to the end.
pub(super) fn encode_refresh(record: &RefreshRecord) -> Vec<u8> {
    let mut value = Vec::with_capacity(refresh::ACCESS_TOKEN_ID + record.access_token_id.len());
    value.push(FORMAT);
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
    let mut reader = Reader::new(value)?;
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
    fn new(value: &'a [u8]) -> Result<Self, StoreError> {
        match value.split_first() {
            Some((&FORMAT, rest)) => Ok(Reader { rest }),
            _ => Err(malformed("format version")),
        }
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

    fn session(ip: Option<&str>, user_agent: Option<&str>) -> SessionRecord {
        SessionRecord {
            id: SessionId::generate().unwrap(),
            token_hash: SessionToken::generate().unwrap().hash(),
            user_id: UserId::generate().unwrap(),
            transport: Transport::Token,
            created_at: Timestamp::from_unix_millis(1_700_000_000_000),
            last_seen_at: Timestamp::from_unix_millis(1_700_000_060_000),
            idle_expires_at: Timestamp::from_unix_millis(i64::MAX),
            expires_at: Timestamp::from_unix_millis(-1),
            ip: ip.map(str::to_owned),
            user_agent: user_agent.map(str::to_owned),
            revoked_at: None,
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
                let value = encode_session(&record);
                assert_eq!(
                    decode_session(record.token_hash, &value).unwrap(),
                    record,
                    "{ip:?} {user_agent:?}"
                );
            }
        }
    }

    #[test]
    fn addresses_are_packed_only_when_canonical() {
        let len = |ip| encode_session(&session(Some(ip), None)).len();
        let base = encode_session(&session(None, None)).len();
        assert_eq!(len("192.0.2.7"), base + 4);
        assert_eq!(len("2001:db8::1"), base + 16);
        assert_eq!(len("2001:0db8::1"), base + 4 + "2001:0db8::1".len());
    }

    #[test]
    fn revocation_state_reads_back() {
        let revoked = SessionRecord {
            revoked_at: Some(Timestamp::from_unix_millis(1_700_000_120_000)),
            ..session(Some("192.0.2.7"), Some("ua"))
        };
        let mut value = encode_session(&revoked);
        assert_eq!(value[session::STATE], session::REVOKED);
        assert_eq!(decode_session(revoked.token_hash, &value).unwrap(), revoked);
        // A claimed revocation reads as revoked.
        value[session::STATE] = session::REVOKING;
        assert_eq!(decode_session(revoked.token_hash, &value).unwrap(), revoked);
        value[session::STATE] = 7;
        assert!(matches!(
            decode_session(revoked.token_hash, &value),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn fixed_offsets_hold_what_the_scripts_expect() {
        let record = session(None, None);
        let value = encode_session(&record);
        let time_at =
            |offset: usize| i64::from_be_bytes(value[offset..offset + 8].try_into().unwrap());
        assert_eq!(time_at(session::LAST_SEEN_AT), 1_700_000_060_000);
        assert_eq!(time_at(session::IDLE_EXPIRES_AT), i64::MAX);
        assert_eq!(time_at(session::EXPIRES_AT), -1);
        assert_eq!(time_at(session::CREATED_AT), 1_700_000_000_000);
        assert_eq!(
            &value[session::SESSION_ID..session::SESSION_ID + ID_LEN],
            record.id.as_str().as_bytes()
        );
        assert_eq!(
            &value[session::USER_ID..session::USER_ID + ID_LEN],
            record.user_id.as_str().as_bytes()
        );
        assert_eq!(value[session::TRANSPORT], TOKEN);
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
        let value = encode_session(&record);
        for bad in [
            &b""[..],
            &b"\x02rest"[..],
            &value[..value.len() - 1],
            &value[..session::TRANSPORT],
        ] {
            assert!(matches!(
                decode_session(record.token_hash, bad),
                Err(StoreError::Corrupt(_))
            ));
        }
        let mut trailing = value.clone();
        trailing.push(0);
        assert!(decode_session(record.token_hash, &trailing).is_err());
        assert!(matches!(
            decode_refresh(record.token_hash, &value[..40]),
            Err(StoreError::Corrupt(_))
        ));
    }
}
