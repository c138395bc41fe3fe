//! The inbox collector: reads each connected account's new mentions and
//! replies into the inbox, after publishing and before analytics, with
//! the same tokens and within the same rate limits (a 429 here makes
//! publishing wait too, as the platform would).
//!
//! Each account is claimed for its round like its followers' reading
//! (compare-and-set on `inbox_next_at`), so two replicas read it once; the
//! items and the new cursor are written in one transaction and an item is
//! stored once under its platform id, so a read repeated after a crash
//! adds nothing twice. A failure is kept on the account and shown in the
//! inbox; the read is tried again later.

use std::time::Duration;

use uuid::Uuid;

use super::platforms::Fetched;
use super::{NoToken, Publisher, later};
use crate::domain::Timestamp;
use crate::store::ListeningQuery;

/// Accounts read per round.
const BATCH: i64 = 50;
/// Pages one account's round reads at most; the rest waits for the next.
const PAGES: usize = 5;

impl Publisher {
    /// One round: reads the inboxes that are due. Returns how many new
    /// items were stored.
    pub async fn collect_inbox(&self) -> usize {
        let due = match self.store.inbox_due(Timestamp::now(), BATCH).await {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error = %e, "could not read the accounts whose inbox is due");
                return 0;
            }
        };
        let mut stored = 0;
        for account in due {
            match self
                .store
                .claim_inbox(account.account_id, account.next_at, later(self.settings.lease))
                .await
            {
                Ok(true) => stored += self.read_inbox(account.account_id).await,
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(error = %e, account = %account.account_id, "could not claim an account's inbox");
                }
            }
        }
        stored
    }

    /// Reads one claimed account's inbox: its mentions page by page from
    /// its cursor, then (when they could be read) each of its listening
    /// queries from the query's own cursor.
    async fn read_inbox(&self, account_id: Uuid) -> usize {
        let next = later(self.settings.inbox_every);
        let Some((mut stored, tenant_id)) = self.read_source(account_id, None, next).await else {
            return 0;
        };
        let queries = match self.store.listening_queries(tenant_id, Some(account_id)).await {
            Ok(queries) => queries,
            Err(e) => {
                tracing::error!(error = %e, account = %account_id, "could not read an account's listening queries");
                return stored;
            }
        };
        for query in queries {
            if let Some((found, _)) = self.read_source(account_id, Some(&query), next).await {
                stored += found;
            }
        }
        if stored > 0 {
            tracing::info!(account = %account_id, new = stored, "inbox items collected");
        }
        stored
    }

    /// Reads the account's mentions (`query` none) or one listening
    /// query's finds, page by page; records a failure where it belongs.
    /// Returns the new items and the account's tenant, or `None` on a
    /// failure.
    async fn read_source(
        &self,
        account_id: Uuid,
        query: Option<&ListeningQuery>,
        next: Timestamp,
    ) -> Option<(usize, Uuid)> {
        let mut refreshed = false;
        let mut stored = 0;
        let mut pages = 0;
        // The query's cursor came with it; the account's is read once, then
        // follows the pages read.
        let mut cursor = match query {
            Some(q) => q.cursor.clone(),
            None => match self.store.inbox_cursor(account_id).await {
                Ok(cursor) => cursor,
                Err(e) => {
                    tracing::error!(error = %e, account = %account_id, "could not read an inbox's cursor");
                    return None;
                }
            },
        };
        loop {
            let (account, token) = match self.token(account_id, refreshed).await {
                Ok(found) => found,
                Err(NoToken::Wait(until, reason)) => {
                    self.source_failed(account_id, query, &reason, until.max(later(Duration::from_secs(60))))
                        .await;
                    return None;
                }
            };
            // A rate limit met by an earlier read of this round holds the
            // account's other reads too.
            if let Some(until) = account.rate_limited_until.filter(|until| *until > Timestamp::now()) {
                self.source_failed(account_id, query, "waiting for the platform's rate limit", until).await;
                return None;
            }
            let read = match query {
                None => self.platforms.inbox(&account, &token, cursor.as_deref()).await,
                Some(q) => self.platforms.hashtag(&account, &token, &q.query, cursor.as_deref()).await,
            };
            let Some((fetched, record)) = read else {
                // Not read on this network yet: look again in a day, in
                // case this replica is older than one that reads it.
                let reason = "the inbox does not read this network yet";
                self.source_failed(account_id, query, reason, later(DAY)).await;
                return None;
            };
            self.note_window(&account, &record).await;
            match fetched {
                Fetched::Items { items, cursor: newest, more } => {
                    pages += 1;
                    let query_id = query.map(|q| q.id);
                    let now = Timestamp::now();
                    match self
                        .store
                        .record_inbox(account_id, query_id, &items, newest.as_deref(), now, next)
                        .await
                    {
                        Ok(new) => stored += new,
                        Err(e) => {
                            tracing::error!(error = %e, account = %account_id, "could not store an inbox page");
                            return None;
                        }
                    }
                    cursor = newest;
                    if more && pages < PAGES && !items.is_empty() {
                        continue;
                    }
                    return Some((stored, account.tenant_id));
                }
                Fetched::TokenExpired if !refreshed => {
                    refreshed = true;
                }
                other => {
                    let (reason, at) = self.failed_read(&account, other).await;
                    self.source_failed(account_id, query, &reason, at.max(later(Duration::from_secs(60))))
                        .await;
                    return None;
                }
            }
        }
    }

    async fn source_failed(
        &self,
        account_id: Uuid,
        query: Option<&ListeningQuery>,
        reason: &str,
        retry_at: Timestamp,
    ) {
        match query {
            None => self.inbox_failed(account_id, reason, retry_at).await,
            Some(q) => {
                tracing::warn!(account = %account_id, query = %q.id, %reason, "a listening query was not read");
                if let Err(e) = self.store.listening_failed(q.id, reason).await {
                    tracing::error!(error = %e, query = %q.id, "could not record a listening failure");
                }
            }
        }
    }

    async fn inbox_failed(&self, account_id: Uuid, reason: &str, retry_at: Timestamp) {
        tracing::warn!(account = %account_id, %reason, "an account's inbox was not read");
        if let Err(e) = self.store.inbox_failed(account_id, reason, retry_at).await {
            tracing::error!(error = %e, account = %account_id, "could not record an inbox failure");
        }
    }
}

const DAY: Duration = Duration::from_secs(86_400);
