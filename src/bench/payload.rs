//! Distinct, correctly signed webhooks of a chosen size: the bodies a provider would post, one
//! new event id per request, authenticated with the bench source's secret exactly as `send`
//! does ([`crate::cli::send::authenticated_request`]).

use crate::cli::send::{SendError, authenticated_request};
use crate::config::SourceConfig;
use crate::proto::v1::VerifyAndNormalizeRequest;

/// The Standard Webhooks example secret; the bench server's config carries the same one.
pub const BENCH_GIGS_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The event id of the `n`th webhook of a run: `evt_bench` and `n` in 12 digits, so the body
/// size does not depend on `n` and a subscriber can tell which append an event came from.
const ID_DIGITS: usize = 12;

/// Builds signed Gigs webhooks of (at least) `size` bytes.
#[derive(Debug, Clone)]
pub struct Payloads {
    source: SourceConfig,
    padding: String,
}

impl Payloads {
    /// Webhooks for `source` (a Gigs source), with bodies padded to `size` bytes when the
    /// minimal event is smaller.
    pub fn new(source: SourceConfig, size: usize) -> Payloads {
        let bare = body(0, "").len();
        Payloads {
            source,
            padding: "x".repeat(size.saturating_sub(bare)),
        }
    }

    /// The body of the `n`th webhook.
    pub fn body(&self, n: u64) -> Vec<u8> {
        body(n, &self.padding)
    }

    /// The `n`th webhook, signed now.
    pub fn request(&self, n: u64) -> Result<VerifyAndNormalizeRequest, SendError> {
        authenticated_request(&self.source, self.body(n))
    }
}

fn body(n: u64, padding: &str) -> Vec<u8> {
    format!(
        r#"{{"object":"event","id":"evt_bench{n:0width$}","type":"com.gigs.subscription.activated","time":"2026-01-01T00:00:00Z","specversion":"1.0","source":"https://api.gigs.com","project":"bench","version":"2025-05-22","datacontenttype":"application/json","data":{{"object":"subscription","id":"sub_{n:0width$}","plan":{{"object":"plan","id":"pln_bench"}},"status":"active","note":"{padding}"}}}}"#,
        width = ID_DIGITS
    )
    .into_bytes()
}

/// Which webhook an event id (`<source>:evt_bench<n>`) came from.
pub fn index_of(event_id: &str) -> Option<u64> {
    let digits = event_id.get(event_id.len().checked_sub(ID_DIGITS)?..)?;
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_the_requested_size_and_distinct_ids() {
        let toml = crate::bench::child::server_config_toml(
            std::path::Path::new("/tmp/x"),
            crate::bench::child::Security::ApiKey,
            std::path::Path::new("/tmp/x"),
        );
        let config = crate::config::Config::from_toml(&toml).expect("bench config parses");
        let payloads = Payloads::new(config.sources[0].clone(), 1024);
        assert_eq!(payloads.body(7).len(), 1024);
        assert_ne!(payloads.body(7), payloads.body(8));
        assert_eq!(index_of("gigs:evt_bench000000000042"), Some(42));
        assert_eq!(index_of("x"), None);
    }
}
