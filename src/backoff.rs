//! Exponential backoff with jitter, validated at construction (after linkerd's `ExponentialBackoff::try_new`).
//!
//! Delays double from `min` up to `max`; each is jittered to a value in `[d/2, d]` ("equal jitter"), so retries
//! from many replicas spread out while a delay never exceeds `max`. (`backon`'s jitter adds up to 100 % on top
//! of the delay, which would break the configured maximum, hence this small type.)

use std::time::Duration;

/// A backoff policy and its position. `reset` after a success.
#[derive(Clone, Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    /// Failures since the last reset.
    attempt: u32,
}

/// Why a backoff policy is invalid.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidBackoff {
    #[error("minimum delay must be greater than 0")]
    ZeroMin,
    #[error("maximum delay must not be less than the minimum")]
    MaxBelowMin,
}

impl Backoff {
    /// # Errors
    /// [`InvalidBackoff`] when `min` is zero or `max < min`.
    pub fn try_new(min: Duration, max: Duration) -> Result<Self, InvalidBackoff> {
        if min.is_zero() {
            return Err(InvalidBackoff::ZeroMin);
        }
        if max < min {
            return Err(InvalidBackoff::MaxBelowMin);
        }
        Ok(Self {
            min,
            max,
            attempt: 0,
        })
    }

    /// The delay before the next attempt; advances the position.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.base(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        let half = base / 2;
        half + half.mul_f64(rand::random::<f64>())
    }

    /// Back to the minimum delay (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Failures since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    fn base(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(31));
        self.min.saturating_mul(factor).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn doubles_up_to_max_with_jitter_inside_bounds() {
        let mut b = Backoff::try_new(100 * MS, 1000 * MS).unwrap();
        let expected_bases = [100, 200, 400, 800, 1000, 1000];
        for base in expected_bases {
            let d = b.next_delay();
            assert!(
                d >= base * MS / 2 && d <= base * MS,
                "{d:?} outside [{}, {base}] ms",
                base / 2
            );
        }
        b.reset();
        assert!(b.next_delay() <= 100 * MS);
    }

    #[test]
    fn never_overflows() {
        let mut b = Backoff::try_new(MS, Duration::from_secs(3600)).unwrap();
        for _ in 0..200 {
            assert!(b.next_delay() <= Duration::from_secs(3600));
        }
    }

    #[test]
    fn rejects_invalid_policies() {
        assert_eq!(
            Backoff::try_new(Duration::ZERO, MS).unwrap_err(),
            InvalidBackoff::ZeroMin
        );
        assert_eq!(
            Backoff::try_new(2 * MS, MS).unwrap_err(),
            InvalidBackoff::MaxBelowMin
        );
    }
}
