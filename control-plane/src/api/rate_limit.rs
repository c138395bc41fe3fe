//! API rate limits: requests per minute for each caller in each
//! organisation, by the organisation's plan (100, 1,000 and 10,000 for
//! free, pro and enterprise by default, as seed 002 asks).
//!
//! - **Who is counted**: an API key (its organisation's plan), a person's
//!   token or session in the organisation the request addresses. Operators
//!   and the web UI's pages are not; sign-in has its own throttle.
//! - **Shared by the replicas**: on PostgreSQL each counted request adds one
//!   to its key's row for the minute (`rate_windows`, one upsert), so every
//!   replica sees the same count; on SQLite one process serves and counts in
//!   memory.
//! - **Fixed windows** of a clock minute: simple and exact per window (a
//!   client may spend two windows' worth across a minute's edge).
//! - **Answers**: every counted answer carries `RateLimit-Limit`,
//!   `RateLimit-Remaining`, `RateLimit-Reset` (seconds to the next window)
//!   and `RateLimit-Policy`; past the limit, 429 `rate_limited` with
//!   `Retry-After`.
//! - **Failing open**: when the count cannot be read (the database is
//!   away), the request is served and the failure logged; the limit
//!   protects the service, it must not take it down.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use uuid::Uuid;

use crate::domain::{Plan, Timestamp};
use crate::error::{Error, Result};
use crate::service::{Principal, TenantAccess};
use crate::store::{Backend, Store};

/// Requests per minute by plan; `None`: not limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    pub free: Option<u32>,
    pub pro: Option<u32>,
    pub enterprise: Option<u32>,
}

impl RateLimits {
    pub const OFF: Self = Self { free: None, pro: None, enterprise: None };
    pub const DEFAULT: Self = Self { free: Some(100), pro: Some(1_000), enterprise: Some(10_000) };

    fn of(self, plan: Plan) -> Option<u32> {
        match plan {
            Plan::Free => self.free,
            Plan::Pro => self.pro,
            Plan::Enterprise => self.enterprise,
        }
    }

    /// `off`, or three numbers for free, pro and enterprise (`0`: no limit
    /// for that plan), such as `100,1000,10000`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim() == "off" {
            return Ok(Self::OFF);
        }
        let numbers: Vec<u32> =
            text.split(',').map(|n| n.trim().parse::<u32>()).collect::<Result<_, _>>().map_err(|_| {
                format!(
                    "rate_limits must be `off` or three whole numbers such as 100,1000,10000, not {text:?}"
                )
            })?;
        let [free, pro, enterprise] = numbers[..] else {
            return Err(format!("rate_limits needs three numbers (free, pro, enterprise), not {text:?}"));
        };
        let limit = |n: u32| (n > 0).then_some(n);
        Ok(Self { free: limit(free), pro: limit(pro), enterprise: limit(enterprise) })
    }
}

/// Where a counted request stands, for its answer's headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateInfo {
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the next window.
    pub reset: u64,
}

/// Filled in by the `TenantAccess` extractor while the handler runs.
#[derive(Debug, Clone, Default)]
pub struct RateSlot(Arc<Mutex<Option<RateInfo>>>);

/// How long an organisation's plan is remembered.
const PLAN_TTL: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct RateLimiter {
    limits: RateLimits,
    store: Arc<dyn Store>,
    /// Counted in the database (replicas share it), or here.
    shared: bool,
    /// key → (window start, count), when not shared.
    memory: Mutex<HashMap<String, (i64, i64)>>,
    plans: Mutex<HashMap<Uuid, (Plan, Instant)>>,
    /// The newest window old rows were pruned at.
    pruned: Mutex<i64>,
}

impl RateLimiter {
    pub fn new(store: Arc<dyn Store>, limits: RateLimits) -> Self {
        Self {
            shared: store.backend() == Backend::Postgres,
            store,
            limits,
            memory: Mutex::new(HashMap::new()),
            plans: Mutex::new(HashMap::new()),
            pruned: Mutex::new(0),
        }
    }

    async fn plan(&self, tenant_id: Uuid) -> Result<Plan> {
        if let Some((plan, at)) = self.plans.lock().unwrap_or_else(|p| p.into_inner()).get(&tenant_id)
            && at.elapsed() < PLAN_TTL
        {
            return Ok(*plan);
        }
        let plan = self.store.tenant(tenant_id).await?.map_or(Plan::Free, |t| t.plan);
        let mut plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        if plans.len() > 10_000 {
            plans.clear();
        }
        plans.insert(tenant_id, (plan, Instant::now()));
        Ok(plan)
    }

    /// Counts a request of `access`; `Err(RateLimited)` past its limit.
    pub async fn check(&self, access: &TenantAccess, slot: Option<&RateSlot>) -> Result<()> {
        if self.limits == RateLimits::OFF {
            return Ok(());
        }
        let key = match &access.caller.principal {
            Principal::ApiKey { key, .. } => format!("key:{}", key.id),
            Principal::User { user, .. } => format!("user:{}:{}", user.id, access.tenant_id),
            Principal::Operator => return Ok(()),
        };
        let plan = match self.plan(access.tenant_id).await {
            Ok(plan) => plan,
            Err(e) => {
                tracing::error!(error = %e, "could not read an organisation's plan for its rate limit; serving");
                return Ok(());
            }
        };
        let Some(limit) = self.limits.of(plan) else { return Ok(()) };
        let now = Timestamp::now().as_datetime().unix_timestamp();
        let window = now - now.rem_euclid(60);
        let count = match self.count(&key, window).await {
            Ok(count) => count,
            Err(e) => {
                tracing::error!(error = %e, "could not count a request against its rate limit; serving it");
                return Ok(());
            }
        };
        let reset = u64::try_from(window + 60 - now).unwrap_or(60).max(1);
        let info = RateInfo { limit, remaining: u32::try_from(i64::from(limit) - count).unwrap_or(0), reset };
        if let Some(slot) = slot {
            *slot.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(info);
        }
        if count > i64::from(limit) {
            return Err(Error::RateLimited { retry_after: Duration::from_secs(reset) });
        }
        Ok(())
    }

    /// Counts one request of `key` against a fixed `limit` a minute,
    /// whatever the plans say (a sign-in flow's own throttle, keyed by the
    /// client's address); `Err(RateLimited)` past it. Fails open as
    /// [`check`](Self::check) does.
    pub async fn check_fixed(&self, key: &str, limit: u32) -> Result<()> {
        let now = Timestamp::now().as_datetime().unix_timestamp();
        let window = now - now.rem_euclid(60);
        let count = match self.count(key, window).await {
            Ok(count) => count,
            Err(e) => {
                tracing::error!(error = %e, "could not count a request against its throttle; serving it");
                return Ok(());
            }
        };
        if count > i64::from(limit) {
            let reset = u64::try_from(window + 60 - now).unwrap_or(60).max(1);
            return Err(Error::RateLimited { retry_after: Duration::from_secs(reset) });
        }
        Ok(())
    }

    async fn count(&self, key: &str, window: i64) -> Result<i64> {
        if !self.shared {
            let mut memory = self.memory.lock().unwrap_or_else(|p| p.into_inner());
            if memory.len() > 100_000 {
                memory.retain(|_, (w, _)| *w >= window);
            }
            let entry = memory.entry(key.to_owned()).or_insert((window, 0));
            if entry.0 != window {
                *entry = (window, 0);
            }
            entry.1 += 1;
            return Ok(entry.1);
        }
        let count = self.store.count_request(key, window).await?;
        let prune = {
            let mut pruned = self.pruned.lock().unwrap_or_else(|p| p.into_inner());
            let due = *pruned < window;
            *pruned = window;
            due
        };
        if prune && let Err(e) = self.store.prune_rate_windows(window - 120).await {
            tracing::warn!(error = %e, "could not prune old rate-limit windows");
        }
        Ok(count)
    }
}

/// Gives each request a slot and its answer the `RateLimit-*` headers the
/// slot was filled with.
pub async fn headers(mut req: Request, next: Next) -> Response {
    let slot = RateSlot::default();
    req.extensions_mut().insert(slot.clone());
    let mut response = next.run(req).await;
    let info = *slot.0.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(info) = info {
        let headers = response.headers_mut();
        for (name, value) in [
            ("ratelimit-limit", info.limit.to_string()),
            ("ratelimit-remaining", info.remaining.to_string()),
            ("ratelimit-reset", info.reset.to_string()),
            ("ratelimit-policy", format!("{};w=60", info.limit)),
        ] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_from_three_numbers_or_off() {
        assert_eq!(RateLimits::parse("100,1000,10000"), Ok(RateLimits::DEFAULT));
        assert_eq!(RateLimits::parse("off"), Ok(RateLimits::OFF));
        assert_eq!(
            RateLimits::parse("5, 0, 7"),
            Ok(RateLimits { free: Some(5), pro: None, enterprise: Some(7) })
        );
        for bad in ["", "100", "1,2", "1,2,3,4", "a,b,c", "-1,2,3"] {
            assert!(RateLimits::parse(bad).is_err(), "{bad}");
        }
    }
}
