//! Ingest limits: a token-bucket rate limit, and the answer for the request timeout around the
//! webhook route (the body budget and the processing slots are taken in the handler). Each
//! refusal tells the provider to come back (`Retry-After`) instead of queueing work we cannot
//! take now; the refusal is logged where every HTTP refusal is
//! ([`super::errors::refusal_log`]).

use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower::BoxError;

use super::HttpState;
use super::errors::HttpError;
use crate::error::Reason;

/// Webhooks per second, with a burst of one second's worth. Shared by every connection.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    capacity: f64,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled_at: Instant,
}

impl RateLimiter {
    pub fn new(per_second: u32) -> Self {
        let per_second = f64::from(per_second.max(1));
        RateLimiter {
            per_second,
            capacity: per_second,
            bucket: Mutex::new(Bucket {
                tokens: per_second,
                refilled_at: Instant::now(),
            }),
        }
    }

    /// Takes one token if there is one.
    pub fn try_acquire(&self) -> bool {
        self.try_acquire_at(Instant::now())
    }

    fn try_acquire_at(&self, now: Instant) -> bool {
        // Held for a few arithmetic operations only, never across an await.
        let mut bucket = self.bucket.lock().unwrap_or_else(PoisonError::into_inner);
        let elapsed = now.saturating_duration_since(bucket.refilled_at);
        bucket.tokens =
            (bucket.tokens + elapsed.as_secs_f64() * self.per_second).min(self.capacity);
        bucket.refilled_at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Middleware: refuses with 429 when the configured rate is exceeded.
pub async fn rate_limit(State(state): State<HttpState>, request: Request, next: Next) -> Response {
    match &state.rate_limiter {
        Some(limiter) if !limiter.try_acquire() => HttpError::new(
            Reason::RateLimited,
            "over the ingest rate limit; retry later",
        )
        .retry_after(state.retry_after_seconds)
        .into_response(),
        _ => next.run(request).await,
    }
}

/// The answer for an error from the tower limits: a timeout is 503, saying when to retry.
pub fn limit_error(error: &BoxError, retry_after_seconds: u64) -> HttpError {
    let error = if error.is::<tower::timeout::error::Elapsed>() {
        HttpError::new(
            Reason::RequestTimeout,
            "the request took too long; retry later",
        )
    } else {
        HttpError::new(Reason::Internal, "internal error").cause(error)
    };
    error.retry_after(retry_after_seconds)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_the_rate() {
        let limiter = RateLimiter::new(2);
        let start = Instant::now();
        assert!(limiter.try_acquire_at(start));
        assert!(limiter.try_acquire_at(start));
        assert!(!limiter.try_acquire_at(start));
        assert!(!limiter.try_acquire_at(start + Duration::from_millis(400)));
        assert!(limiter.try_acquire_at(start + Duration::from_millis(600)));
        // Idle time refills only up to the burst.
        let later = start + Duration::from_secs(60);
        assert!(limiter.try_acquire_at(later));
        assert!(limiter.try_acquire_at(later));
        assert!(!limiter.try_acquire_at(later));
    }

    #[test]
    fn a_timeout_is_503_and_anything_else_internal() {
        let elapsed: BoxError = Box::new(tower::timeout::error::Elapsed::new());
        assert_eq!(limit_error(&elapsed, 1).reason(), Reason::RequestTimeout);
        let other: BoxError = "boom".into();
        assert_eq!(limit_error(&other, 1).reason(), Reason::Internal);
    }
}
