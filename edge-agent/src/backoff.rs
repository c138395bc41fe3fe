//! Reconnect delays: exponential backoff with full jitter.
//!
//! The ceiling doubles from `base` to `cap` with each failed attempt and the
//! actual delay is uniformly random below it, so a fleet of agents that lost
//! the control plane at the same moment spreads its reconnects out instead
//! of arriving as one wave.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self { base, cap, attempt: 0 }
    }

    /// The ceiling of the next delay.
    pub fn ceiling(&self) -> Duration {
        self.base.saturating_mul(1u32 << self.attempt.min(16)).min(self.cap)
    }

    /// The next delay, uniformly random in `[0, ceiling]`.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::random_range(0..=millis))
    }

    /// After a connection proved healthy, start again from `base`.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_to_the_cap_and_reset() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let ceilings: Vec<u64> = (0..9)
            .map(|_| {
                let c = b.ceiling().as_secs();
                let delay = b.next_delay();
                assert!(delay <= Duration::from_secs(c));
                c
            })
            .collect();
        assert_eq!(ceilings, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_secs(1));
    }

    #[test]
    fn delays_are_spread_out() {
        // 1000 agents after an outage: their first delays cover the window
        // rather than piling up at one instant.
        let delays: Vec<Duration> = (0..1000)
            .map(|_| {
                let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
                for _ in 0..5 {
                    b.next_delay();
                }
                b.next_delay()
            })
            .collect();
        let buckets = delays.iter().fold([0u32; 4], |mut acc, d| {
            acc[(d.as_millis() * 4 / 32_001) as usize] += 1;
            acc
        });
        assert!(buckets.iter().all(|&n| n > 150), "uneven spread: {buckets:?}");
    }
}
