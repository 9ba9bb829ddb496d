//! User agent texts for [`RedisStore`] sessions: stored once per distinct text under its
//! digest (see `record`), and kept in memory once read, since a digest names one text forever.

use std::sync::Arc;

use tessera_core::{SessionRecord, StoreError};

use super::RedisStore;
use super::record::{self, StoredSession, UserAgentDigest};

/// User agent texts kept in memory at most, by digest: each is immutable (its digest is its
/// name), so a hit never needs Redis and the set needs no invalidation.
const USER_AGENT_CACHE_CAPACITY: usize = 4096;

impl RedisStore {
    /// One record with its user agent's text: [`with_user_agents`](Self::with_user_agents)
    /// for one, without its lists when the text is in memory (every session check without
    /// the in-process cache comes here).
    pub(super) async fn with_user_agent(
        &self,
        stored: StoredSession,
    ) -> Result<SessionRecord, StoreError> {
        let Some(digest) = stored.user_agent else {
            return Ok(stored.record);
        };
        let known = self
            .shared
            .user_agents
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&digest)
            .map(|text| text.to_string());
        match known {
            Some(text) => Ok(SessionRecord {
                user_agent: Some(text),
                ..stored.record
            }),
            None => self
                .with_user_agents(vec![stored])
                .await?
                .pop()
                .ok_or_else(|| record::malformed("session")),
        }
    }

    /// The records with their user agents' texts: from memory when seen before, else with
    /// one `MGET` for all that are missing. A text that is gone (its TTL always outlasts the
    /// sessions naming it, so only after someone deleted it) reads as no user agent.
    pub(super) async fn with_user_agents(
        &self,
        stored: Vec<StoredSession>,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        // The texts these records need, from memory (one read lock) or else from Redis.
        let mut texts: Vec<(UserAgentDigest, Arc<str>)> = Vec::new();
        let mut missing: Vec<UserAgentDigest> = Vec::new();
        {
            let known = self
                .shared
                .user_agents
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for digest in stored.iter().filter_map(|session| session.user_agent) {
                if texts.iter().any(|(seen, _)| *seen == digest) || missing.contains(&digest) {
                    continue;
                }
                match known.get(&digest) {
                    Some(text) => texts.push((digest, Arc::clone(text))),
                    None => missing.push(digest),
                }
            }
        }
        if !missing.is_empty() {
            let mut mget = redis::cmd("MGET");
            for digest in &missing {
                mget.arg(self.key_names().user_agent(digest));
            }
            let mut connection = self.connection();
            let found: Vec<Option<String>> = self.run(mget.query_async(&mut connection)).await?;
            let fetched = texts.len();
            texts.extend(
                missing
                    .iter()
                    .zip(found)
                    .filter_map(|(digest, text)| Some((*digest, Arc::from(text?)))),
            );
            let mut known = self
                .shared
                .user_agents
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if known.len() + texts.len() - fetched > USER_AGENT_CACHE_CAPACITY {
                known.clear();
            }
            known.extend(texts[fetched..].iter().cloned());
        }
        let text_of = |digest: UserAgentDigest| {
            texts
                .iter()
                .find(|(known, _)| *known == digest)
                .map(|(_, text)| text.to_string())
        };
        Ok(stored
            .into_iter()
            .map(|StoredSession { record, user_agent }| SessionRecord {
                user_agent: user_agent.and_then(text_of),
                ..record
            })
            .collect())
    }
}
