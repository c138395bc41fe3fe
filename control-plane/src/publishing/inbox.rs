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

    /// Reads one claimed account's inbox, page by page from its cursor.
    async fn read_inbox(&self, account_id: Uuid) -> usize {
        let next = later(self.settings.inbox_every);
        let mut refreshed = false;
        let mut stored = 0;
        let mut pages = 0;
        loop {
            let (account, token) = match self.token(account_id, refreshed).await {
                Ok(found) => found,
                Err(NoToken::Wait(until, reason)) => {
                    self.inbox_failed(account_id, &reason, until.max(later(Duration::from_secs(60)))).await;
                    return stored;
                }
            };
            let cursor = match self.store.inbox_cursor(account_id).await {
                Ok(cursor) => cursor,
                Err(e) => {
                    tracing::error!(error = %e, account = %account_id, "could not read an inbox's cursor");
                    return stored;
                }
            };
            let Some((fetched, record)) = self.platforms.inbox(&account, &token, cursor.as_deref()).await
            else {
                // Not read on this network yet: look again in a day, in
                // case this replica is older than one that reads it.
                self.inbox_failed(account_id, "the inbox does not read this network yet", later(DAY)).await;
                return stored;
            };
            self.note_window(&account, &record).await;
            match fetched {
                Fetched::Items { items, cursor, more } => {
                    pages += 1;
                    match self
                        .store
                        .record_inbox(account_id, &items, cursor.as_deref(), Timestamp::now(), next)
                        .await
                    {
                        Ok(new) => stored += new,
                        Err(e) => {
                            tracing::error!(error = %e, account = %account_id, "could not store an inbox page");
                            return stored;
                        }
                    }
                    if more && pages < PAGES && !items.is_empty() {
                        continue;
                    }
                    if stored > 0 {
                        tracing::info!(account = %account_id, new = stored, "inbox items collected");
                    }
                    return stored;
                }
                Fetched::TokenExpired if !refreshed => {
                    refreshed = true;
                }
                other => {
                    let (reason, at) = self.failed_read(&account, other).await;
                    self.inbox_failed(account_id, &reason, at.max(later(Duration::from_secs(60)))).await;
                    return stored;
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
