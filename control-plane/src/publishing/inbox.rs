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

use std::collections::BTreeMap;
use std::time::Duration;

use marketer_protocol::JobSpec;
use marketer_protocol::inbox::{ClassifyItem, MAX_CLASSIFY_ITEMS};
use secrecy::ExposeSecret;
use uuid::Uuid;

use super::platforms::{CallRecord, Fetched, STILL_THERE_BATCH, Search};
use super::{NoToken, Publisher, later};
use crate::domain::{ComplianceMode, LlmPolicy, Timestamp, new_id};
use crate::store::{
    CollectedItem, ItemText, ListeningQuery, Network, NewJob, PageRequest, Route, SocialAccount, Unclassified,
};

/// Accounts read per round.
const BATCH: i64 = 50;
/// Pages one account's round reads at most; the rest waits for the next.
const PAGES: usize = 5;
/// Items are looked at again (still on the platform?) while this recent,
/// each once per this many rounds (an hour at the default two minutes).
const RECHECK_WITHIN: time::Duration = time::Duration::days(7);
const RECHECK_ROUNDS: u32 = 30;

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
        self.recheck(account_id).await;
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
                Some(q) => {
                    let search = Search::of(&q.kind, &q.query);
                    self.platforms.listen(&account, &token, search, cursor.as_deref()).await
                }
            };
            let Some((fetched, record)) = read else {
                // Not read on this network yet: look again in a day, in
                // case this replica is older than one that reads it.
                let reason = "the inbox does not read this network yet";
                self.source_failed(account_id, query, reason, later(DAY)).await;
                return None;
            };
            self.note_read_window(&account, &record).await;
            match fetched {
                Fetched::Items { mut items, cursor: newest, more } => {
                    pages += 1;
                    if let Err(e) = self.seal_if_screened(&account, &mut items).await {
                        tracing::error!(error = %e, account = %account_id, "could not seal inbox items");
                        return None;
                    }
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
                    let (reason, at) = self.inbox_read_failed(&account, other).await;
                    self.source_failed(account_id, query, &reason, at.max(later(Duration::from_secs(60))))
                        .await;
                    return None;
                }
            }
        }
    }

    /// Looks again at a batch of the account's recent items: those the
    /// platform no longer shows are marked deleted, their text kept. One
    /// call per round at most, within the account's rate limit; a failure
    /// only means they are looked at in a later round.
    async fn recheck(&self, account_id: Uuid) {
        let now = Timestamp::now().as_datetime();
        let recent = Timestamp::from_datetime(now - RECHECK_WITHIN);
        let looked = Timestamp::from_datetime(now - self.settings.inbox_every * RECHECK_ROUNDS);
        let ids = match self.store.inbox_to_check(account_id, recent, looked, STILL_THERE_BATCH as i64).await
        {
            Ok(ids) if !ids.is_empty() => ids,
            Ok(_) => return,
            Err(e) => {
                tracing::error!(error = %e, account = %account_id, "could not read the inbox items to look at again");
                return;
            }
        };
        let Ok((account, token)) = self.token(account_id, false).await else { return };
        if account.rate_limited_until.is_some_and(|until| until > Timestamp::now()) {
            return;
        }
        let Some((fetched, record)) = self.platforms.still_there(&account, &token, &ids).await else {
            return;
        };
        self.note_read_window(&account, &record).await;
        let fetched = match fetched {
            // A whole batch gone at once is more likely an answer that
            // ignored the ids: each is asked about on its own first.
            Fetched::Present(present) if present.is_empty() && ids.len() > 1 => {
                self.one_by_one(&account, &token, &ids).await
            }
            other => other,
        };
        match fetched {
            Fetched::Present(present) => {
                let (present, gone): (Vec<String>, Vec<String>) =
                    ids.into_iter().partition(|id| present.contains(id));
                match self.store.inbox_checked(account_id, &present, &gone, Timestamp::now()).await {
                    Ok(0) => {}
                    Ok(marked) => {
                        tracing::info!(account = %account_id, marked, "inbox items deleted on their platform marked");
                    }
                    Err(e) => {
                        tracing::error!(error = %e, account = %account_id, "could not record an inbox look");
                    }
                }
            }
            other => {
                // Records a rate limit on the account, like any read (not
                // on X, whose endpoints are limited each on its own).
                let (reason, _) = self.inbox_read_failed(&account, other).await;
                tracing::warn!(account = %account_id, %reason, "inbox items were not looked at again");
            }
        }
    }

    /// [`Publisher::recheck`]'s batch asked about an item at a time: the
    /// ones still there, or the first failure.
    async fn one_by_one(
        &self,
        account: &SocialAccount,
        token: &secrecy::SecretString,
        ids: &[String],
    ) -> Fetched {
        let mut present = Vec::new();
        for id in ids {
            let Some((fetched, record)) =
                self.platforms.still_there(account, token, std::slice::from_ref(id)).await
            else {
                return Fetched::Failed { reason: "the inbox does not read this network".into() };
            };
            self.note_read_window(account, &record).await;
            match fetched {
                Fetched::Present(found) => present.extend(found),
                other => return other,
            }
        }
        Fetched::Present(present)
    }

    /// An inbox read's rate-limit window, noted on the account where the
    /// platform has one window for all its calls. X limits each endpoint
    /// on its own (and caps reads apart from posts), so reading mentions or
    /// searching there never holds the account's publishing, nor anyone's.
    async fn note_read_window(&self, account: &SocialAccount, record: &CallRecord) {
        if account.network != Network::X {
            self.note_window(account, record).await;
        }
    }

    /// Why an inbox read failed and when to read again; a rate limit is
    /// recorded on the account as [`Publisher::failed_read`] does, except on
    /// X (see [`Publisher::note_read_window`]), where only this read waits.
    async fn inbox_read_failed(&self, account: &SocialAccount, fetched: Fetched) -> (String, Timestamp) {
        match fetched {
            Fetched::RateLimited { until, note } if account.network == Network::X => {
                (format!("{note}; read again after it"), until)
            }
            other => self.failed_read(account, other).await,
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

/// Items looked at per classification round.
const CLASSIFY_BATCH: i64 = 500;
/// A classify job may run this long (a batch of items, a few model calls).
const CLASSIFY_RUN_SECONDS: i64 = 600;
/// Who classify jobs say submitted them.
const CLASSIFY_SUBMITTER: &str = "the inbox";

impl Publisher {
    /// Whether an account's items are screened by an agent before the
    /// control plane keeps their text: a HIPAA organisation's, or an
    /// account serving an `edge_only` project (every project, when it is
    /// not limited to some).
    async fn screened(&self, account: &SocialAccount) -> anyhow::Result<bool> {
        let tenant =
            self.store.tenant(account.tenant_id).await?.ok_or_else(|| anyhow::anyhow!("no such tenant"))?;
        if tenant.compliance_mode == ComplianceMode::Hipaa {
            return Ok(true);
        }
        let projects =
            self.store.projects(account.tenant_id, PageRequest { after: None, limit: 1000 }).await?;
        Ok(projects.items.iter().any(|p| {
            p.llm_policy == LlmPolicy::EdgeOnly
                && account.project_ids.as_ref().is_none_or(|ids| ids.contains(&p.id))
        }))
    }

    /// Seals what a screened account's items say, so that the text is
    /// kept only as the agent's policy leaves it.
    async fn seal_if_screened(
        &self,
        account: &SocialAccount,
        items: &mut [CollectedItem],
    ) -> anyhow::Result<()> {
        if items.is_empty() || !self.screened(account).await? {
            return Ok(());
        }
        for item in items {
            let text: String = std::mem::take(&mut item.text).chars().take(10_000).collect();
            item.sealed = Some(self.key.seal(account.tenant_id, &text)?);
        }
        Ok(())
    }

    /// One classification round: items with neither labels nor a job get
    /// one, in batches per organisation (sealed and plain apart, at most
    /// [`MAX_CLASSIFY_ITEMS`] and a bounded amount of text per job). A job
    /// runs on the organisation's agents; plain items go to its cloud
    /// provider instead only when it is not in HIPAA mode, no agent can run
    /// the model now, and it has one. A job waits for an agent as long as
    /// it takes: nothing is lost. Returns how many jobs were queued.
    pub async fn classify_inbox(&self) -> usize {
        let due = match self.store.unclassified_inbox(Timestamp::now(), CLASSIFY_BATCH).await {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error = %e, "could not read the inbox items to classify");
                return 0;
            }
        };
        let mut groups: BTreeMap<(Uuid, bool), Vec<Unclassified>> = BTreeMap::new();
        for item in due {
            groups.entry((item.tenant_id, item.sealed)).or_default().push(item);
        }
        let mut queued = 0;
        for ((tenant_id, sealed), items) in groups {
            let route = match self.classify_route(tenant_id, sealed).await {
                Ok(route) => route,
                Err(e) => {
                    tracing::error!(error = %e, tenant = %tenant_id, "could not choose where to classify");
                    continue;
                }
            };
            for batch in classify_batches(&items) {
                match self.start_classify(tenant_id, &route, batch).await {
                    Ok(true) => queued += 1,
                    Ok(false) => {}
                    Err(e) => {
                        tracing::error!(error = %e, tenant = %tenant_id, "could not queue a classify job");
                    }
                }
            }
        }
        if queued > 0 {
            self.jobs.queued();
            tracing::info!(jobs = queued, "inbox classify jobs queued");
        }
        queued
    }

    async fn classify_route(&self, tenant_id: Uuid, sealed: bool) -> anyhow::Result<(Route, String)> {
        let model = marketer_protocol::canonical_model_name(&self.settings.inbox_model);
        if sealed {
            return Ok((Route::Edge, model));
        }
        let tenant = self.store.tenant(tenant_id).await?.ok_or_else(|| anyhow::anyhow!("no such tenant"))?;
        if tenant.compliance_mode != ComplianceMode::Hipaa
            && crate::jobs::edge_problem(self.store.as_ref(), tenant_id, &model, self.settings.online_window)
                .await?
                .is_some()
            && let Some(provider) = self.store.cloud_provider(tenant_id).await?
        {
            return Ok((Route::Cloud, provider.model));
        }
        Ok((Route::Edge, model))
    }

    async fn start_classify(
        &self,
        tenant_id: Uuid,
        route: &(Route, String),
        batch: &[Unclassified],
    ) -> anyhow::Result<bool> {
        let items = batch
            .iter()
            .map(|i| ClassifyItem { id: i.id, platform: i.network.clone(), kind: i.kind.clone() })
            .collect();
        let job = NewJob {
            id: new_id(),
            tenant_id,
            spec: JobSpec::Classify { model: route.1.clone(), items },
            labels: Default::default(),
            priority: crate::service::DEFAULT_PRIORITY,
            not_before: None,
            timeout_seconds: CLASSIFY_RUN_SECONDS,
            // Waits for an agent as long as it takes.
            queue_timeout_seconds: None,
            max_attempts: 3,
            idempotency_key: None,
            request_hash: Vec::new(),
            created_by: CLASSIFY_SUBMITTER.into(),
            activity_id: None,
            route: route.0,
            index_project_id: None,
        };
        let ids: Vec<Uuid> = batch.iter().map(|i| i.id).collect();
        Ok(self.store.start_classification(&job, &ids).await?)
    }

    /// The texts of a classify job's items for the agent holding it:
    /// sealed ones opened (only an agent of the item's organisation gets
    /// here: the job is the organisation's).
    pub async fn classify_texts(&self, agent_id: Uuid, job_id: Uuid) -> anyhow::Result<Option<Vec<String>>> {
        let Some(texts) = self.store.classify_texts(agent_id, job_id).await? else { return Ok(None) };
        let mut out = Vec::with_capacity(texts.len());
        for text in texts {
            out.push(match text {
                ItemText::Plain(text) => text,
                ItemText::Sealed { tenant_id, sealed } => {
                    self.key.open(tenant_id, &sealed)?.expose_secret().to_owned()
                }
            });
        }
        Ok(Some(out))
    }
}

/// Items in jobs of at most [`MAX_CLASSIFY_ITEMS`] and about 30,000
/// characters each.
fn classify_batches(items: &[Unclassified]) -> Vec<&[Unclassified]> {
    const CHARS: i64 = 30_000;
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = 0;
    for (i, item) in items.iter().enumerate() {
        let size = item.chars.clamp(0, CHARS);
        if i > start && (i - start >= MAX_CLASSIFY_ITEMS || chars + size > CHARS) {
            out.push(&items[start..i]);
            start = i;
            chars = 0;
        }
        chars += size;
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
}
