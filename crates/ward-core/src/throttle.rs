//! Throttling of failed attempts (wrong passwords), keyed by user and by client address.
//!
//! A generic cell rate algorithm: every failure pushes the key's "theoretical arrival time"
//! (`tat_ms`) one `refill_ms` further; a key is throttled while `tat_ms` lies more than
//! `(burst - 1) * refill_ms` in the future. So `burst` failures in a row are allowed, the next
//! attempt is refused, and one more attempt is forgiven every `refill_ms`. Time is passed in.
//!
//! The table is bounded: at `max_keys` entries it first drops every key that has fully
//! recovered, then the entries nearest to recovery, so memory stays bounded under an attack
//! that sprays many user names or addresses.

use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    pub burst: u32,
    pub refill_ms: u64,
    pub max_keys: usize,
}

#[derive(Debug)]
pub struct FailureThrottle {
    config: ThrottleConfig,
    tat_ms: HashMap<String, u64>,
}

impl FailureThrottle {
    pub fn new(config: ThrottleConfig) -> Self {
        assert!(config.burst >= 1, "a burst of 0 would lock everyone out");
        assert!(config.max_keys >= 1);
        Self { config, tat_ms: HashMap::new() }
    }

    fn tolerance_ms(&self) -> u64 {
        u64::from(self.config.burst - 1) * self.config.refill_ms
    }

    /// `Err(retry_after_ms)` while `key` is throttled.
    pub fn check(&self, key: &str, now_ms: u64) -> Result<(), u64> {
        match self.tat_ms.get(key) {
            Some(&tat) if tat > now_ms + self.tolerance_ms() => Err(tat - now_ms - self.tolerance_ms()),
            _ => Ok(()),
        }
    }

    pub fn record_failure(&mut self, key: &str, now_ms: u64) {
        if !self.tat_ms.contains_key(key) && self.tat_ms.len() >= self.config.max_keys {
            self.evict(now_ms);
        }
        let tat = self.tat_ms.entry(key.to_owned()).or_insert(now_ms);
        *tat = (*tat).max(now_ms) + self.config.refill_ms;
    }

    /// Milliseconds until `key` has no failure left on record (0 if it has none): a key that
    /// failed once stays marked for one `refill_ms`.
    pub fn clear_in_ms(&self, key: &str, now_ms: u64) -> u64 {
        self.tat_ms.get(key).map_or(0, |&tat| tat.saturating_sub(now_ms))
    }

    /// Takes back one recorded failure, for an attempt reserved before it was checked (with
    /// [`Self::record_failure`]) that turned out to be right.
    pub fn forgive(&mut self, key: &str, now_ms: u64) {
        if let Some(tat) = self.tat_ms.get_mut(key) {
            *tat = tat.saturating_sub(self.config.refill_ms);
            if *tat <= now_ms {
                self.tat_ms.remove(key);
            }
        }
    }

    fn evict(&mut self, now_ms: u64) {
        self.tat_ms.retain(|_, tat| *tat > now_ms);
        if self.tat_ms.len() >= self.config.max_keys {
            // Still full of live entries: drop the half closest to recovery.
            let mut tats: Vec<u64> = self.tat_ms.values().copied().collect();
            tats.sort_unstable();
            let cutoff = tats[tats.len() / 2];
            self.tat_ms.retain(|_, tat| *tat > cutoff);
        }
    }

    pub fn tracked_keys(&self) -> usize {
        self.tat_ms.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(max_keys: usize) -> FailureThrottle {
        FailureThrottle::new(ThrottleConfig { burst: 5, refill_ms: 60_000, max_keys })
    }

    #[test]
    fn allows_burst_then_refuses_then_recovers() {
        let mut t = throttle(100);
        let now = 1_000_000;
        for _ in 0..5 {
            assert_eq!(t.check("u", now), Ok(()));
            t.record_failure("u", now);
        }
        assert_eq!(t.check("u", now), Err(60_000));
        assert_eq!(t.check("u", now + 59_999), Err(1));
        assert_eq!(t.check("u", now + 60_000), Ok(()));
        assert_eq!(t.check("other", now), Ok(()));
        // One failure after recovery throttles again at once: the debt was not all repaid.
        t.record_failure("u", now + 60_000);
        assert!(t.check("u", now + 60_000).is_err());
        // After a long quiet period the whole burst is available again.
        let later = now + 10 * 60_000;
        for _ in 0..5 {
            assert_eq!(t.check("u", later), Ok(()));
            t.record_failure("u", later);
        }
        assert!(t.check("u", later).is_err());
    }

    #[test]
    fn a_forgiven_failure_is_gone_and_a_clear_key_has_none() {
        let mut t = throttle(100);
        let now = 1_000_000;
        assert_eq!(t.clear_in_ms("u", now), 0);
        t.record_failure("u", now);
        assert_eq!(t.clear_in_ms("u", now), 60_000);
        assert_eq!(t.clear_in_ms("u", now + 60_000), 0);
        t.record_failure("u", now);
        t.forgive("u", now);
        assert_eq!(t.clear_in_ms("u", now), 60_000, "one of two failures is left");
        t.forgive("u", now);
        assert_eq!((t.clear_in_ms("u", now), t.tracked_keys()), (0, 0));
        t.forgive("nobody", now);
    }

    #[test]
    fn table_stays_bounded() {
        let mut t = throttle(10);
        for i in 0..1000 {
            t.record_failure(&format!("k{i}"), 5_000 + i);
        }
        assert!(t.tracked_keys() <= 10);
    }
}
