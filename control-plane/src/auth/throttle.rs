//! Slows down password guessing.
//!
//! Failed logins are counted per account and per client address. After a few
//! free failures each further failure doubles the wait before the next
//! attempt is accepted, up to a cap, so an attacker gets a handful of guesses
//! an hour while the real owner, after at most the cap, can always try again:
//! nobody is locked out for good. A success clears the account's count.
//!
//! State is in memory, per replica. With several replicas behind a load
//! balancer an attacker's budget multiplies by the replica count; the
//! exponential backoff keeps that small.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

    fn delay_after(&self, failures: u32) -> Duration {
        if failures < self.free_failures {
            return Duration::ZERO;
        }
        let exponent = (failures - self.free_failures).min(20);
        self.base_delay.saturating_mul(1 << exponent).min(self.max_delay)
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: Instant,
    blocked_until: Instant,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Account(String),
    Client(IpAddr),
}

/// Bound on remembered keys, so a flood of random e-mail addresses cannot
/// grow memory without limit.
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug)]
pub struct LoginThrottle {
    account: ThrottlePolicy,
    client: ThrottlePolicy,
    entries: Mutex<HashMap<Key, Entry>>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::new(ThrottlePolicy::ACCOUNT, ThrottlePolicy::CLIENT)
    }
}

impl LoginThrottle {
    pub fn new(account: ThrottlePolicy, client: ThrottlePolicy) -> Self {
        Self { account, client, entries: Mutex::new(HashMap::new()) }
    }

    fn keys(account: &str, client: Option<IpAddr>) -> impl Iterator<Item = Key> {
        std::iter::once(Key::Account(account.to_owned())).chain(client.map(Key::Client))
    }

    /// How long the caller must wait before this attempt would be accepted,
    /// or `None` if it may proceed now.
    pub fn check(&self, account: &str, client: Option<IpAddr>, now: Instant) -> Option<Duration> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        Self::keys(account, client)
            .filter_map(|k| entries.get(&k))
            .map(|e| e.blocked_until.saturating_duration_since(now))
            .filter(|wait| !wait.is_zero())
            .max()
    }

    pub fn record_failure(&self, account: &str, client: Option<IpAddr>, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES {
            let (account_ttl, client_ttl) = (self.account.forget_after, self.client.forget_after);
            entries.retain(|k, e| {
                let ttl = if matches!(k, Key::Account(_)) { account_ttl } else { client_ttl };
                now.saturating_duration_since(e.last_failure) < ttl
            });
        }
        for key in Self::keys(account, client) {
            let policy = if matches!(key, Key::Account(_)) { self.account } else { self.client };
            let entry =
                entries.entry(key).or_insert(Entry { failures: 0, last_failure: now, blocked_until: now });
            if now.saturating_duration_since(entry.last_failure) >= policy.forget_after {
                entry.failures = 0;
            }
            entry.failures = entry.failures.saturating_add(1);
            entry.last_failure = now;
            entry.blocked_until = now + policy.delay_after(entry.failures);
        }
    }

    pub fn record_success(&self, account: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.remove(&Key::Account(account.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

    #[test]
    fn delays_grow_after_free_failures_and_are_capped() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        for _ in 0..4 {
            t.record_failure("a@example.com", IP, now);
        }
        assert_eq!(t.check("a@example.com", IP, now), None, "four failures are free");
        t.record_failure("a@example.com", IP, now);
        assert_eq!(t.check("a@example.com", IP, now), Some(Duration::from_secs(1)));
        t.record_failure("a@example.com", IP, now);
        assert_eq!(t.check("a@example.com", IP, now), Some(Duration::from_secs(2)));
        for _ in 0..40 {
            t.record_failure("a@example.com", IP, now);
        }
        assert_eq!(t.check("a@example.com", IP, now), Some(Duration::from_secs(900)), "capped");
        assert_eq!(t.check("a@example.com", IP, now + Duration::from_secs(901)), None, "never forever");
    }

    #[test]
    fn success_clears_the_account_and_other_accounts_are_unaffected() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        for _ in 0..6 {
            t.record_failure("a@example.com", None, now);
        }
        assert!(t.check("a@example.com", None, now).is_some());
        assert_eq!(t.check("b@example.com", None, now), None);
        t.record_success("a@example.com");
        assert_eq!(t.check("a@example.com", None, now), None);
    }

    #[test]
    fn a_client_guessing_many_accounts_is_slowed() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        for i in 0..31 {
            t.record_failure(&format!("user{i}@example.com"), IP, now);
        }
        assert!(t.check("fresh@example.com", IP, now).is_some());
        assert_eq!(t.check("fresh@example.com", None, now), None);
    }

    #[test]
    fn old_failures_are_forgotten() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        for _ in 0..6 {
            t.record_failure("a@example.com", None, now);
        }
        let later = now + Duration::from_secs(2 * 3600);
        t.record_failure("a@example.com", None, later);
        assert_eq!(t.check("a@example.com", None, later), None, "the count restarted");
    }
}
