//! [`RefreshStore`] for [`PgStore`]: refresh-token chains in `refresh_tokens`, keyed by the
//! token's hash.

use async_trait::async_trait;
use tessera_core::{RefreshRecord, RefreshStore, Rotation, StoreError, Timestamp, TokenHash};

use super::PgStore;
use crate::sql::records::Columns as _;
use crate::sql::{self, Binds as _, limit, refresh_columns, unavailable};

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
        let statement = sqlx::query(concat!(
            "WITH spent AS (",
            "UPDATE refresh_tokens SET spent_at = $9, successor_hash = $1 ",
            "WHERE token_hash = $10 AND spent_at IS NULL RETURNING token_hash",
            ") INSERT INTO refresh_tokens (",
            refresh_columns!(),
            ") SELECT $1, $2, $3, $4, $5, $6, $7, $8 FROM spent"
        ))
        .bind_refresh(successor)
        .bind(now.unix_millis())
        .bind(&parent.as_bytes()[..]);
        let inserted = statement
            .execute(&self.pool)
            .await
            .map_err(sql::conflict_or_unavailable)?;
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
        let Some(spent_at) = row.optional_timestamp("parent_spent_at")? else {
            return Ok(Found::Unspent);
        };
        let successor_found = row.optional_bytes("token_hash")?.is_some();
        Ok(Found::Spent {
            spent_at,
            successor: successor_found.then(|| sql::refresh(&row)).transpose()?,
        })
    }
}

#[async_trait]
impl RefreshStore for PgStore {
    async fn insert_refresh(&self, record: &RefreshRecord) -> Result<(), StoreError> {
        let statement = sqlx::query(concat!(
            "INSERT INTO refresh_tokens (",
            refresh_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ));
        self.bounded(sql::insert(statement.bind_refresh(record), &self.pool))
            .await
    }

    async fn refresh_by_token(
        &self,
        token_hash: &TokenHash,
    ) -> Result<Option<RefreshRecord>, StoreError> {
        let statement = sqlx::query(concat!(
            "SELECT ",
            refresh_columns!(),
            " FROM refresh_tokens WHERE token_hash = $1"
        ))
        .bind(&token_hash.as_bytes()[..]);
        self.bounded(sql::fetch_optional(statement, &self.pool, sql::refresh))
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
        // Expired once `now` reaches `expires_at`, as sessions are.
        let statement = sqlx::query(
            "DELETE FROM refresh_tokens WHERE expires_at <= $1 AND token_hash IN \
             (SELECT token_hash FROM refresh_tokens WHERE expires_at <= $1 LIMIT $2)",
        )
        .bind(now.unix_millis())
        .bind(self::limit(limit));
        let purged = self.bounded(sql::execute(statement, &self.pool)).await?;
        Ok(purged.rows_affected())
    }
}
