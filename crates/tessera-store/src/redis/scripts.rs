//! Every read-modify-write of the Redis store, as Lua: Redis runs a script to completion
//! before any other command, so each one is atomic.
//!
//! Each script starts with the same preamble, generated from the layout constants in
//! `record` and the key tags in `key_names`, so Rust and Lua cannot disagree about an offset.
//! Scripts derive the keys they touch from the prefix (passed as an argument) and the ids they
//! read, so the store needs one Redis, not a cluster.
//!
//! Lua numbers are doubles: times compared in Lua are exact up to 2^53 ms (the year 287396);
//! beyond that a comparison may be off by a few milliseconds. Times written by Lua are bytes
//! encoded in Rust, never numbers converted back.

use std::sync::LazyLock;

use redis::Script;

use super::MAX_TTL_MS;
use super::key_names::{CLAIM, REFRESH, SESSION, USER, USER_AGENT};
use super::record::{
    DIGEST_LEN, RAW_ID_LEN, REFRESH_FORMAT, SESSION_FORMAT, SESSION_FORMAT_CHILD,
    SESSION_FORMAT_V2, TIME_LEN,
};
use super::record::{refresh, session};

/// Builds a script: the shared preamble, then `body`.
fn script(body: &str) -> Script {
    let lua = |offset: usize| offset + 1;
    let preamble = format!(
        r#"
local SESSION_FORMAT, SESSION_FORMAT_V2, REFRESH_FORMAT = {session_format}, {session_format_v2}, {refresh_format}
local SESSION_FORMAT_CHILD = {session_format_child}
local STATE, LAST_SEEN_AT, EXPIRES_AT, CREATED_AT = {state}, {last_seen_at}, {expires_at}, {created_at}
local USER_ID, USER_AGENT, USER_AGENT_DIGEST = {user_id}, {user_agent}, {user_agent_digest}
local SESSION_MIN, TIME_LEN = {session_min}, {time_len}
local LIVE, REVOKED, REVOKING = {live}, {revoked}, {revoking}
local R_FLAGS, R_SUCCESSOR, R_EXPIRES_AT = {r_flags}, {r_successor}, {r_expires_at}
local REFRESH_MIN = {refresh_min}
local RAW_ID_LEN, DIGEST_LEN, MAX_TTL = {raw_id_len}, {digest_len}, {max_ttl}
local T_SESSION, T_USER, T_USER_AGENT = '{t_session}', '{t_user}', '{t_user_agent}'
local T_CLAIM, T_REFRESH = '{t_claim}', '{t_refresh}'

-- The big-endian i64 at a 1-based position (refresh values).
local function time_at(value, position)
  return (struct.unpack('>i8', value, position))
end

-- The big-endian 48-bit time at a 1-based position (session values).
local function short_time_at(value, position)
  return (struct.unpack('>i' .. TIME_LEN, value, position))
end

-- A number as Redis parses an integer argument (Lua would print 1.7e+12).
local function int(number)
  return string.format('%.0f', number)
end

local function ttl_from(ends, from, retention)
  return math.max(1, math.min(math.max(ends - from, 0) + retention, MAX_TTL))
end

-- Gives `key` at least `ttl` ms to live; never shortens it.
local function extend(key, ttl)
  local current = redis.call('PTTL', key)
  if current == -1 or current < ttl then
    redis.call('PEXPIRE', key, int(ttl))
  end
end

local function corrupt(what)
  return redis.error_reply('CORRUPT malformed ' .. what .. ' value in Redis')
end

-- The session with raw id `id`: its key and value, or nil.
local function session_of(prefix, id)
  local key = prefix .. T_SESSION .. id
  local value = redis.call('GET', key)
  if not value then return nil end
  local format = string.byte(value, 1)
  if #value < SESSION_MIN or (format ~= SESSION_FORMAT and format ~= SESSION_FORMAT_V2
      and format ~= SESSION_FORMAT_CHILD) then
    error(corrupt('session'))
  end
  return key, value
end

-- The key of the user index a session value belongs to.
local function user_key_of(prefix, value)
  return prefix .. T_USER .. string.sub(value, USER_ID, USER_ID + RAW_ID_LEN - 1)
end

-- The key of the session value's user agent text, or nil.
local function user_agent_key_of(prefix, value)
  if string.byte(value, USER_AGENT) ~= 1 then return nil end
  return prefix .. T_USER_AGENT .. string.sub(value, USER_AGENT_DIGEST, USER_AGENT_DIGEST + DIGEST_LEN - 1)
end

-- Stores the session value with its state set to `state`: a live value has no revocation
-- time, any other ends with `time` (TIME_LEN bytes). Keeps the key's TTL.
local function set_state(key, value, state, time)
  local base = value
  if string.byte(value, STATE) ~= LIVE then base = string.sub(value, 1, -TIME_LEN - 1) end
  base = string.sub(base, 1, STATE - 1) .. string.char(state) .. string.sub(base, STATE + 1)
  if state ~= LIVE then base = base .. time end
  redis.call('SET', key, base, 'KEEPTTL')
end

-- Claims session `id` for a revocation (see `claim_session`).
local function claim(prefix, id, nonce, lease, time)
  local key, value = session_of(prefix, id)
  if not key then return 'unknown' end
  if string.byte(value, STATE) == REVOKED then return 'revoked' end
  local claim_key = prefix .. T_CLAIM .. id
  local holder = redis.call('GET', claim_key)
  if holder == nonce then return 'claimed', value end
  if holder then return 'busy' end
  redis.call('SET', claim_key, nonce, 'PX', lease)
  if string.byte(value, STATE) == LIVE then set_state(key, value, REVOKING, time) end
  return 'claimed', value
end

local function release_claim(prefix, id, nonce)
  local claim_key = prefix .. T_CLAIM .. id
  if redis.call('GET', claim_key) == nonce then
    redis.call('DEL', claim_key)
    return true
  end
  return false
end
"#,
        session_format = SESSION_FORMAT,
        session_format_v2 = SESSION_FORMAT_V2,
        session_format_child = SESSION_FORMAT_CHILD,
        refresh_format = REFRESH_FORMAT,
        state = lua(session::STATE),
        last_seen_at = lua(session::LAST_SEEN_AT),
        expires_at = lua(session::EXPIRES_AT),
        created_at = lua(session::CREATED_AT),
        user_id = lua(session::USER_ID),
        user_agent = lua(session::USER_AGENT),
        user_agent_digest = lua(session::USER_AGENT_DIGEST),
        session_min = session::MIN_LEN,
        time_len = TIME_LEN,
        live = session::LIVE,
        revoked = session::REVOKED,
        revoking = session::REVOKING,
        r_flags = lua(refresh::FLAGS),
        r_successor = lua(refresh::SUCCESSOR),
        r_expires_at = lua(refresh::EXPIRES_AT),
        refresh_min = refresh::ACCESS_TOKEN_ID,
        raw_id_len = RAW_ID_LEN,
        digest_len = DIGEST_LEN,
        max_ttl = MAX_TTL_MS,
        t_session = char::from(SESSION),
        t_user = char::from(USER),
        t_user_agent = char::from(USER_AGENT),
        t_claim = char::from(CLAIM),
        t_refresh = char::from(REFRESH),
    );
    Script::new(&format!("{preamble}\n{body}"))
}

/// Inserts a session unless its id is taken, with its user agent's text unless stored
/// already (then only its TTL grows, so the text outlives every session that names it).
///
/// KEYS: session key, user index, and the user agent key if there is one. ARGV: value, TTL
/// (ms), end (the user-index score), raw session id, user agent text. Returns 1, or 0 on a
/// collision (nothing written).
pub(super) static INSERT_SESSION: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
if redis.call('EXISTS', KEYS[1]) > 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
extend(KEYS[2], tonumber(ARGV[2]))
if KEYS[3] and not redis.call('SET', KEYS[3], ARGV[5], 'PX', ARGV[2], 'NX') then
  extend(KEYS[3], tonumber(ARGV[2]))
end
return 1
"#,
    )
});

/// Records activity if the session exists, is live (not revoked, not being revoked) and was
/// last seen before `seen`; moves its TTL, its user-index score and its user agent's TTL
/// with it.
///
/// ARGV: prefix, raw session id, seen (decimal ms), idle expiry (decimal ms), seen and idle
/// expiry as stored (2 × TIME_LEN bytes), retention (ms). Returns 1 if it changed the
/// session, else 0.
pub(super) static TOUCH_SESSION: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local prefix, id = ARGV[1], ARGV[2]
local key, value = session_of(prefix, id)
if not key then return 0 end
local seen = tonumber(ARGV[3])
if string.byte(value, STATE) ~= LIVE or short_time_at(value, LAST_SEEN_AT) >= seen then return 0 end
redis.call('SETRANGE', key, LAST_SEEN_AT - 1, ARGV[5])
local ends = math.min(tonumber(ARGV[4]), short_time_at(value, EXPIRES_AT))
local ttl = ttl_from(ends, seen, tonumber(ARGV[6]))
redis.call('PEXPIRE', key, int(ttl))
local user_key = user_key_of(prefix, value)
redis.call('ZADD', user_key, int(ends), id)
extend(user_key, ttl)
local agent_key = user_agent_key_of(prefix, value)
if agent_key then extend(agent_key, ttl) end
return 1
"#,
    )
});

/// Records a re-authentication: raises a live session's `auth_time` (the last TIME_LEN bytes
/// of a live value of format 3 or 4) to the given time, never lowering it, and keeps the rest
/// of the value (a child's parent included). A value of format 2, which has no `auth_time`
/// (it reads as `created_at`), is rewritten as format 3. Keeps the TTL.
///
/// ARGV: prefix, raw session id, auth time (decimal ms), auth time as stored (TIME_LEN
/// bytes). Returns 1 if the session is live (claimed or revoked ones are not), else 0.
pub(super) static RECORD_AUTHENTICATION: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local key, value = session_of(ARGV[1], ARGV[2])
if not key or string.byte(value, STATE) ~= LIVE then return 0 end
local wanted, time, base = tonumber(ARGV[3]), ARGV[4], nil
if string.byte(value, 1) ~= SESSION_FORMAT_V2 then
  if short_time_at(value, #value - TIME_LEN + 1) >= wanted then return 1 end
  base = string.sub(value, 1, -TIME_LEN - 1)
else
  if short_time_at(value, CREATED_AT) >= wanted then
    time = string.sub(value, CREATED_AT, CREATED_AT + TIME_LEN - 1)
  end
  base = string.char(SESSION_FORMAT) .. string.sub(value, 2)
end
redis.call('SET', key, base .. time, 'KEEPTTL')
return 1
"#,
    )
});

/// The unrevoked sessions of a user that have not ended by `now`, as `{id, value, ...}`;
/// members whose session is gone are dropped from the index on the way.
///
/// KEYS: user index. ARGV: prefix, now (decimal ms).
pub(super) static SESSIONS_OF_USER: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local prefix, found = ARGV[1], {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[2], '+inf')) do
  local key, value = session_of(prefix, id)
  if not key then
    redis.call('ZREM', KEYS[1], id)
  elseif string.byte(value, STATE) == LIVE then
    found[#found + 1] = id
    found[#found + 1] = value
  end
end
return found
"#,
    )
});

/// Claims one session for a revocation: marks it "being revoked" (it reads as revoked from
/// now on) and takes a lease on it, unless it is unknown, revoked, or claimed by another
/// caller whose lease still runs.
///
/// ARGV: prefix, raw session id, nonce, lease (ms), revocation time (TIME_LEN bytes).
/// Returns `{0, nil}` unknown, `{1, nil}` revoked, `{2, nil}` busy, or `{3, raw user id}`
/// claimed.
pub(super) static CLAIM_SESSION: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local outcome, value = claim(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
if outcome == 'claimed' then
  return {3, string.sub(value, USER_ID, USER_ID + RAW_ID_LEN - 1)}
end
return {({unknown = 0, revoked = 1, busy = 2})[outcome], false}
"#,
    )
});

/// Claims every unrevoked session of a user but `keep`, as `CLAIM_SESSION` does one.
///
/// KEYS: user index. ARGV: prefix, nonce, lease (ms), revocation time (TIME_LEN bytes), the
/// raw id to keep (or empty). Returns `{busy count, claimed raw id...}`.
pub(super) static CLAIM_USER_SESSIONS: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local prefix, nonce, lease, time, keep = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local result = {0}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if id ~= keep then
    local outcome = claim(prefix, id, nonce, lease, time)
    if outcome == 'unknown' then
      redis.call('ZREM', KEYS[1], id)
    elseif outcome == 'busy' then
      result[1] = result[1] + 1
    elseif outcome == 'claimed' then
      result[#result + 1] = id
    end
  end
end
return result
"#,
    )
});

/// Marks logged revocations in their sessions and ends the claims.
///
/// ARGV: prefix, nonce, revocation time (TIME_LEN bytes), raw session ids.
pub(super) static COMMIT_REVOCATIONS: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local prefix, nonce = ARGV[1], ARGV[2]
for i = 4, #ARGV do
  local key, value = session_of(prefix, ARGV[i])
  if key and string.byte(value, STATE) ~= REVOKED then
    set_state(key, value, REVOKED, ARGV[3])
  end
  release_claim(prefix, ARGV[i], nonce)
end
return 1
"#,
    )
});

/// Hands back claims whose revocation could not be logged: the sessions are live again.
///
/// ARGV: prefix, nonce, raw session ids.
pub(super) static RELEASE_REVOCATIONS: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local prefix, nonce = ARGV[1], ARGV[2]
for i = 3, #ARGV do
  if release_claim(prefix, ARGV[i], nonce) then
    local key, value = session_of(prefix, ARGV[i])
    if key and string.byte(value, STATE) == REVOKING then
      set_state(key, value, LIVE, '')
    end
  end
end
return 1
"#,
    )
});

/// Marks sessions revoked as the durable log says, and remembers how far the log is applied.
///
/// KEYS: the applied-sequence key. ARGV: prefix, last sequence of the batch, then pairs of
/// raw session id and revocation time (TIME_LEN bytes). Returns how many sessions it marked.
pub(super) static APPLY_LOGGED_REVOCATIONS: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local prefix, marked = ARGV[1], 0
for i = 3, #ARGV, 2 do
  local key, value = session_of(prefix, ARGV[i])
  if key and string.byte(value, STATE) ~= REVOKED then
    set_state(key, value, REVOKED, ARGV[i + 1])
    marked = marked + 1
  end
end
local applied = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if applied < tonumber(ARGV[2]) then redis.call('SET', KEYS[1], ARGV[2]) end
return marked
"#,
    )
});

/// Deletes sessions that ended at or before `now`, from the given user indexes, at most
/// `limit` of them; index members whose session is already gone are dropped uncounted.
/// User agent texts are left to their TTLs: others may still name them.
///
/// KEYS: user indexes. ARGV: prefix, now (decimal ms), limit. Returns how many it deleted.
pub(super) static PURGE_SESSIONS: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local prefix, now, limit, removed = ARGV[1], ARGV[2], tonumber(ARGV[3]), 0
for _, user_key in ipairs(KEYS) do
  while removed < limit do
    local ids = redis.call('ZRANGEBYSCORE', user_key, '-inf', now, 'LIMIT', 0, int(limit - removed))
    if #ids == 0 then break end
    for _, id in ipairs(ids) do
      removed = removed + redis.call('DEL', prefix .. T_SESSION .. id)
      redis.call('ZREM', user_key, id)
    end
  end
  if removed >= limit then break end
end
return removed
"#,
    )
});

/// Spends a refresh token and stores its successor, or reports why not.
///
/// KEYS: parent key, successor key. ARGV: successor value, successor TTL (ms), flags + spent
/// time + successor hash (41 bytes), prefix. Returns `{0}` unknown parent, `{1, parent,
/// successor or nil}` already spent, `{2}` successor hash taken, `{3}` rotated.
pub(super) static ROTATE_REFRESH: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local parent = redis.call('GET', KEYS[1])
if not parent then return {0, false, false} end
if #parent < REFRESH_MIN or string.byte(parent, 1) ~= REFRESH_FORMAT then return corrupt('refresh') end
local flags = string.byte(parent, R_FLAGS)
if flags % 2 == 1 then
  local successor = false
  if math.floor(flags / 2) % 2 == 1 then
    local hash = string.sub(parent, R_SUCCESSOR, R_SUCCESSOR + 31)
    successor = redis.call('GET', ARGV[4] .. T_REFRESH .. hash)
  end
  return {1, parent, successor}
end
if redis.call('EXISTS', KEYS[2]) == 1 then return {2, false, false} end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('SETRANGE', KEYS[1], R_FLAGS - 1, ARGV[3])
return {3, false, false}
"#,
    )
});

/// Deletes refresh records that expired at or before `now`, at most `limit`.
///
/// KEYS: refresh keys. ARGV: now (decimal ms), limit. Returns how many it deleted.
pub(super) static PURGE_REFRESH: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local now, limit, removed = tonumber(ARGV[1]), tonumber(ARGV[2]), 0
for _, key in ipairs(KEYS) do
  if removed >= limit then break end
  local value = redis.call('GET', key)
  if value and #value >= REFRESH_MIN and string.byte(value, 1) == REFRESH_FORMAT
      and time_at(value, R_EXPIRES_AT) <= now then
    redis.call('DEL', key)
    removed = removed + 1
  end
end
return removed
"#,
    )
});

/// Counts a failed login in a fixed window (`crate::window` in Lua): the value is
/// `count:window start`; a failure after the window closed opens a new one.
///
/// KEYS: the counter. ARGV: now (decimal ms), window (ms), TTL of a new window (ms).
pub(super) static RECORD_FAILURE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local value = redis.call('GET', KEYS[1])
local separator = value and string.find(value, ':', 1, true)
if separator then
  local count = tonumber(string.sub(value, 1, separator - 1))
  local opened = tonumber(string.sub(value, separator + 1))
  if count and opened and now < opened + window then
    local counted = int(math.min(count + 1, 4294967295)) .. string.sub(value, separator)
    redis.call('SET', KEYS[1], counted, 'KEEPTTL')
    return 1
  end
end
redis.call('SET', KEYS[1], '1:' .. ARGV[1], 'PX', ARGV[3])
return 1
"#,
    )
});
