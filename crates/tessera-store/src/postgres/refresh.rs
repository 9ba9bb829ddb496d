//! [`RefreshStore`] for [`PgStore`]: refresh-token chains in `refresh_tokens`, keyed by the
//! token's hash.

use async_trait::async_trait;
use sqlx::Row as _;
use sqlx::postgres::PgRow;
use tessera_core::{
    RefreshRecord, RefreshStore, Rotation, SessionId, StoreError, Timestamp, TokenHash,
};

use super::{
    PgStore, conflict_or_unavailable, hash_bytes, limit, malformed, timestamp, unavailable,
};

macro_rules! refresh_columns {
    () => {
        "token_hash, session_id, issued_at, expires_at, access_token_id, access_expires_at, \
         spent_at, successor_hash"
    };
}

fn refresh_from_row(row: &PgRow) -> Result<RefreshRecord, StoreError> {
    let spent_at: Option<i64> = row.try_get("spent_at").map_err(unavailable)?;
    Ok(RefreshRecord {
        token_hash: TokenHash::from_bytes(
            hash_bytes(row, "token_hash")?.ok_or_else(|| malformed("token_hash"))?,
        ),
        session_id: SessionId::parse(row.try_get("session_id").map_err(unavailable)?)
            .map_err(StoreError::corrupt)?,
        issued_at: timestamp(row, "issued_at")?,
        expires_at: timestamp(row, "expires_at")?,
        access_token_id: row.try_get("access_token_id").map_err(unavailable)?,
        access_expires_at: timestamp(row, "access_expires_at")?,
        spent_at: spent_at.map(Timestamp::from_unix_millis),
        successor_hash: hash_bytes(row, "successor_hash")?.map(TokenHash::from_bytes),
    })
}

/// What a lost rotation found: the parent as it is now, and its successor.
enum Found {
    Nothing,
    Unspent,
    Spent {
        spent_at: Timestamp,
        successor: Option<RefreshRecord>,
    },
}

impl PgStore {
    /// Spends `parent` in favour of `successor` and stores `successor`, in one statement:
    /// atomic, and on a taken successor hash the whole statement fails and the parent stays
    /// unspent. Of concurrent calls one updates the parent; the others wait for its row,
    /// find it spent and write nothing. Whether it rotated.
    async fn spend(
        &self,
        parent: &TokenHash,
        successor: &RefreshRecord,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let inserted = sqlx::query(concat!(
            "WITH spent AS (",
            "UPDATE refresh_tokens SET spent_at = $9, successor_hash = $1 ",
            "WHERE token_hash = $10 AND spent_at IS NULL RETURNING token_hash",
            ") INSERT INTO refresh_tokens (",
            refresh_columns!(),
            ") SELECT $1, $2, $3, $4, $5, $6, $7, $8 FROM spent"
        ))
        .bind(&successor.token_hash.as_bytes()[..])
        .bind(successor.session_id.as_str())
        .bind(successor.issued_at.unix_millis())
        .bind(successor.expires_at.unix_millis())
        .bind(successor.access_token_id.as_str())
        .bind(successor.access_expires_at.unix_millis())
        .bind(successor.spent_at.map(Timestamp::unix_millis))
        .bind(
            successor
                .successor_hash
                .as_ref()
                .map(|hash| &hash.as_bytes()[..]),
        )
        .bind(now.unix_millis())
        .bind(&parent.as_bytes()[..])
        .execute(&self.pool)
        .await
        .map_err(conflict_or_unavailable)?;
        Ok(inserted.rows_affected() == 1)
    }

    /// The parent of a rotation that did not happen, with the successor it points at.
    async fn find_parent(&self, parent: &TokenHash) -> Result<Found, StoreError> {
        // One statement, so one snapshot: the successor was inserted by the statement that
        // spent the parent, so it is there if the spend is.
        let row = sqlx::query(concat!(
            "SELECT parent.spent_at AS parent_spent_at, successor.* ",
            "FROM refresh_tokens parent LEFT JOIN refresh_tokens successor ",
            "ON successor.token_hash = parent.successor_hash ",
            "WHERE parent.token_hash = $1"
        ))
        .bind(&parent.as_bytes()[..])
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        let Some(row) = row else {
            return Ok(Found::Nothing);
        };
        let spent_at: Option<i64> = row.try_get("parent_spent_at").map_err(unavailable)?;
        let Some(spent_at) = spent_at else {
            return Ok(Found::Unspent);
        };
        let successor_found: Option<&[u8]> = row.try_get("token_hash").map_err(unavailable)?;
        Ok(Found::Spent {
            spent_at: Timestamp::from_unix_millis(spent_at),
            successor: successor_found
                .map(|_| refresh_from_row(&row))
                .transpose()?,
        })
    }
}

#[async_trait]
impl RefreshStore for PgStore {
    async fn insert_refresh(&self, record: &RefreshRecord) -> Result<(), StoreError> {
        self.bounded(async {
            sqlx::query(concat!(
                "INSERT INTO refresh_tokens (",
                refresh_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            ))
            .bind(&record.token_hash.as_bytes()[..])
            .bind(record.session_id.as_str())
            .bind(record.issued_at.unix_millis())
            .bind(record.expires_at.unix_millis())
            .bind(record.access_token_id.as_str())
            .bind(record.access_expires_at.unix_millis())
            .bind(record.spent_at.map(Timestamp::unix_millis))
            .bind(
                record
                    .successor_hash
                    .as_ref()
                    .map(|hash| &hash.as_bytes()[..]),
            )
            .execute(&self.pool)
            .await
            .map_err(conflict_or_unavailable)?;
            Ok(())
        })
        .await
    }

    async fn refresh_by_token(
        &self,
        token_hash: &TokenHash,
    ) -> Result<Option<RefreshRecord>, StoreError> {
        self.bounded(async {
            sqlx::query(concat!(
                "SELECT ",
                refresh_columns!(),
                " FROM refresh_tokens WHERE token_hash = $1"
            ))
            .bind(&token_hash.as_bytes()[..])
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?
            .as_ref()
            .map(refresh_from_row)
            .transpose()
        })
        .await
    }

    async fn rotate_refresh(
        &self,
        parent: &TokenHash,
        successor: &RefreshRecord,
        now: Timestamp,
    ) -> Result<Rotation, StoreError> {
        self.bounded(async {
            // A spent parent never becomes unspent, so one found unspent after a spend that
            // changed nothing was inserted in between: spend again. Another round needs
            // another such insert (of a hash that was purged meanwhile), so this ends.
            loop {
                if self.spend(parent, successor, now).await? {
                    return Ok(Rotation::Rotated);
                }
                match self.find_parent(parent).await? {
                    Found::Nothing => return Ok(Rotation::Unknown),
                    Found::Spent {
                        spent_at,
                        successor,
                    } => {
                        return Ok(Rotation::AlreadySpent {
                            spent_at,
                            successor,
                        });
                    }
                    Found::Unspent => {}
                }
            }
        })
        .await
    }

    async fn purge_refresh(&self, now: Timestamp, limit: usize) -> Result<u64, StoreError> {
        self.bounded(async {
            // Expired once `now` reaches `expires_at`, as sessions are.
            let purged = sqlx::query(
                "DELETE FROM refresh_tokens WHERE expires_at <= $1 AND token_hash IN \
                 (SELECT token_hash FROM refresh_tokens WHERE expires_at <= $1 LIMIT $2)",
            )
            .bind(now.unix_millis())
            .bind(self::limit(limit))
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
            Ok(purged.rows_affected())
        })
        .await
    }
}
