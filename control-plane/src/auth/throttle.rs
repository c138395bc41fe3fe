//! Slows down password guessing (and token guessing at enrollment).
//!
//! Failed attempts are counted per account and per client address. After a
//! few free failures each further failure doubles the wait before the next
//! attempt is accepted, up to a cap, so an attacker gets a handful of guesses
//! an hour while the real owner, after at most the cap, can always try again:
//! nobody is locked out for good. A success clears the account's count.
//!
//! The counts live in the database (`throttles`), so every replica sees the
//! same ones: an attacker's budget does not multiply by the replica count.
//! Keys are SHA-256 hashes of scope, kind and value; no address is stored.
//! Keys unseen for longer than their policy remembers are deleted, at most
//! once a minute per replica, so a flood of random accounts cannot grow the
//! table without limit.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::domain::Timestamp;
use crate::store::{Store, StoreError};

#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    /// Failures allowed before delays start.
    pub free_failures: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// A key with no failure for this long is forgotten.
    pub forget_after: Duration,
}

impl ThrottlePolicy {
    pub const ACCOUNT: Self = Self {
        free_failures: 5,
        base_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(15 * 60),
        forget_after: Duration::from_secs(60 * 60),
    };
    /// An address may be a whole office behind one NAT, so it gets more slack.
    pub const CLIENT: Self = Self {
        free_failures: 30,
        base_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(15 * 60),
        forget_after: Duration::from_secs(60 * 60),
    };

    /// A public form, per e-mail address: a few messages, then a pause.
    pub const LEAD_ADDRESS: Self = Self {
        free_failures: 3,
        base_delay: Duration::from_secs(60),
        max_delay: Duration::from_secs(60 * 60),
        forget_after: Duration::from_secs(60 * 60),
    };
    /// A public form, per client address (an office may share one).
    pub const LEAD_CLIENT: Self = Self {
        free_failures: 10,
        base_delay: Duration::from_secs(60),
        max_delay: Duration::from_secs(60 * 60),
        forget_after: Duration::from_secs(60 * 60),
    };

    fn delay_after(&self, failures: u32) -> Duration {
        if failures < self.free_failures {
            return Duration::ZERO;
        }
        let exponent = (failures - self.free_failures).min(20);
        self.base_delay.saturating_mul(1 << exponent).min(self.max_delay)
    }
}

/// How often a replica deletes forgotten keys, at most.
const CLEANUP_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct LoginThrottle {
    /// Keeps the login and enrollment counts apart.
    scope: &'static str,
    account: ThrottlePolicy,
    client: ThrottlePolicy,
    store: Arc<dyn Store>,
    last_cleanup: Mutex<Option<Instant>>,
}

impl LoginThrottle {
    pub fn new(
        scope: &'static str,
        account: ThrottlePolicy,
        client: ThrottlePolicy,
        store: Arc<dyn Store>,
    ) -> Self {
        Self { scope, account, client, store, last_cleanup: Mutex::new(None) }
    }

    fn key(&self, kind: &str, value: &str) -> String {
        let digest = Sha256::digest(format!("{}:{kind}:{value}", self.scope).as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn keys(&self, account: &str, client: Option<IpAddr>) -> Vec<(String, ThrottlePolicy)> {
        let mut keys = vec![(self.key("account", account), self.account)];
        if let Some(ip) = client {
            keys.push((self.key("client", &ip.to_string()), self.client));
        }
        keys
    }

    /// How long the caller must wait before this attempt would be accepted,
    /// or `None` if it may proceed now.
    pub async fn check(
        &self,
        account: &str,
        client: Option<IpAddr>,
        now: Timestamp,
    ) -> Result<Option<Duration>, StoreError> {
        let keys: Vec<String> = self.keys(account, client).into_iter().map(|(key, _)| key).collect();
        let until = self.store.throttle_blocked_until(&keys, now).await?;
        Ok(until.map(|until| Duration::try_from(until.as_datetime() - now.as_datetime()).unwrap_or_default()))
    }

    pub async fn record_failure(
        &self,
        account: &str,
        client: Option<IpAddr>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        for (key, policy) in self.keys(account, client) {
            let forget = time::Duration::try_from(policy.forget_after).unwrap_or_default();
            self.store
                .throttle_failure(&key, now, now - forget, &move |failures| policy.delay_after(failures))
                .await?;
        }
        let due = {
            let mut last = self.last_cleanup.lock().unwrap_or_else(|p| p.into_inner());
            let due = last.is_none_or(|at| at.elapsed() >= CLEANUP_EVERY);
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        if due {
            let longest = self.account.forget_after.max(self.client.forget_after);
            let before = now - time::Duration::try_from(longest).unwrap_or_default();
            self.store.throttle_forget(before).await?;
        }
        Ok(())
    }

    pub async fn record_success(&self, account: &str) -> Result<(), StoreError> {
        self.store.throttle_clear(&self.key("account", account)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

    /// A throttle over a fresh SQLite store (the store conformance suites
    /// run the same statements on PostgreSQL).
    async fn throttle() -> (LoginThrottle, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = crate::store::DatabaseUrl::new(format!("sqlite://{}", dir.path().join("t.db").display()));
        let store = crate::store::connect(&url).await.unwrap();
        (LoginThrottle::new("login", ThrottlePolicy::ACCOUNT, ThrottlePolicy::CLIENT, store), dir)
    }

    fn secs(n: u64) -> Option<Duration> {
        Some(Duration::from_secs(n))
    }

    #[tokio::test]
    async fn delays_grow_after_free_failures_and_are_capped() {
        let (t, _dir) = throttle().await;
        let now = Timestamp::now();
        for _ in 0..4 {
            t.record_failure("a@example.com", IP, now).await.unwrap();
        }
        assert_eq!(t.check("a@example.com", IP, now).await.unwrap(), None, "four failures are free");
        t.record_failure("a@example.com", IP, now).await.unwrap();
        assert_eq!(t.check("a@example.com", IP, now).await.unwrap(), secs(1));
        t.record_failure("a@example.com", IP, now).await.unwrap();
        assert_eq!(t.check("a@example.com", IP, now).await.unwrap(), secs(2));
        for _ in 0..40 {
            t.record_failure("a@example.com", IP, now).await.unwrap();
        }
        assert_eq!(t.check("a@example.com", IP, now).await.unwrap(), secs(900), "capped");
        let later = now + time::Duration::seconds(901);
        assert_eq!(t.check("a@example.com", IP, later).await.unwrap(), None, "never forever");
    }

    #[tokio::test]
    async fn success_clears_the_account_and_other_accounts_are_unaffected() {
        let (t, _dir) = throttle().await;
        let now = Timestamp::now();
        for _ in 0..6 {
            t.record_failure("a@example.com", None, now).await.unwrap();
        }
        assert!(t.check("a@example.com", None, now).await.unwrap().is_some());
        assert_eq!(t.check("b@example.com", None, now).await.unwrap(), None);
        t.record_success("a@example.com").await.unwrap();
        assert_eq!(t.check("a@example.com", None, now).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_client_guessing_many_accounts_is_slowed() {
        let (t, _dir) = throttle().await;
        let now = Timestamp::now();
        for i in 0..31 {
            t.record_failure(&format!("user{i}@example.com"), IP, now).await.unwrap();
        }
        assert!(t.check("fresh@example.com", IP, now).await.unwrap().is_some());
        assert_eq!(t.check("fresh@example.com", None, now).await.unwrap(), None);
    }

    #[tokio::test]
    async fn old_failures_are_forgotten_and_scopes_are_apart() {
        let (t, _dir) = throttle().await;
        let now = Timestamp::now();
        for _ in 0..6 {
            t.record_failure("a@example.com", None, now).await.unwrap();
        }
        let other = LoginThrottle::new(
            "enrollment",
            ThrottlePolicy::ACCOUNT,
            ThrottlePolicy::CLIENT,
            t.store.clone(),
        );
        assert_eq!(other.check("a@example.com", None, now).await.unwrap(), None, "another scope");
        let later = now + time::Duration::hours(2);
        t.record_failure("a@example.com", None, later).await.unwrap();
        assert_eq!(t.check("a@example.com", None, later).await.unwrap(), None, "the count restarted");
    }
}
