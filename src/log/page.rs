//! Listing the log a page at a time (ListEvents): how many events a page holds (AIP-158: 50 by
//! default, at most 1000), how many bytes, and page tokens bound to the filter they were issued
//! for. Transports pass the request's size and token through [`list_page`] and send the
//! [`Page`] back.

use base64::Engine;

use super::{EventFilter, EventLog, LogError, TypePattern};
use crate::error::Reason;
use crate::proto::v1::Event;

/// Events per page when the request names no size.
pub const DEFAULT_PAGE_SIZE: usize = 50;

/// The most events a page holds, whatever the request asks for.
pub const MAX_PAGE_SIZE: usize = 1000;

/// A page stops before its events pass this many bytes, so a page of large events stays under
/// the 4 MiB gRPC clients accept by default (AIP-158 allows short pages); it holds at least one
/// event, so the real bound is never less than the largest event.
const PAGE_BYTES: usize = crate::config::DEFAULT_MAX_EVENT_BYTES;

/// Events read per query while filling a page, so a page of large events never holds more than
/// a chunk beyond what it returns.
const READ_CHUNK: usize = 32;

/// Why a page cannot be listed.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("field `page_size` must not be negative")]
    PageSize,
    #[error("field `page_token` is not a token this server issued for this filter")]
    PageToken,
    #[error(transparent)]
    Log(#[from] LogError),
}

impl PageError {
    pub fn reason(&self) -> Reason {
        match self {
            PageError::PageSize | PageError::PageToken => Reason::InvalidRequest,
            PageError::Log(error) => error.reason(),
        }
    }
}

/// Matching events, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    pub events: Vec<Event>,
    /// The token for the next page; empty on the last one.
    pub next_page_token: String,
}

/// The most bytes of events one page carries, so transports can size their messages for it.
pub fn max_page_bytes(max_event_bytes: usize) -> usize {
    PAGE_BYTES.max(max_event_bytes)
}

/// The page of `filter`'s events that `token` points at (the newest when empty), with at most
/// `requested_size` events (0 for the default).
pub async fn list_page(
    log: &dyn EventLog,
    filter: &EventFilter,
    requested_size: i32,
    token: &str,
    max_event_bytes: usize,
) -> Result<Page, PageError> {
    let size = page_size(requested_size)?;
    let before = parse_page_token(token, filter)?;
    let budget = max_page_bytes(max_event_bytes);
    let (events, more) = read_page(log, filter, before, size, budget).await?;
    let next_page_token = match events.last() {
        Some(last) if more => page_token(last.sequence, filter),
        _ => String::new(),
    };
    Ok(Page {
        events,
        next_page_token,
    })
}

/// Up to `size` matching events before `before`, newest first, stopping early where the page
/// would pass `budget` bytes; and whether more follow.
async fn read_page(
    log: &dyn EventLog,
    filter: &EventFilter,
    before: Option<u64>,
    size: usize,
    budget: usize,
) -> Result<(Vec<Event>, bool), LogError> {
    let mut events = Vec::new();
    let mut bytes = 0usize;
    let mut cursor = before;
    loop {
        // One extra row tells whether another page exists without a second query.
        let wanted = (size + 1 - events.len()).min(READ_CHUNK);
        let chunk = log.list(filter, cursor, wanted).await?;
        let exhausted = chunk.len() < wanted;
        for event in chunk {
            let event_bytes = prost::encoding::message::encoded_len(1, &event);
            if events.len() == size || (!events.is_empty() && bytes + event_bytes > budget) {
                return Ok((events, true));
            }
            bytes += event_bytes;
            cursor = Some(event.sequence);
            events.push(event);
        }
        if exhausted {
            return Ok((events, false));
        }
    }
}

fn page_size(requested: i32) -> Result<usize, PageError> {
    match requested {
        0 => Ok(DEFAULT_PAGE_SIZE),
        n if n < 0 => Err(PageError::PageSize),
        n => Ok(usize::try_from(n).map_or(MAX_PAGE_SIZE, |n| n.min(MAX_PAGE_SIZE))),
    }
}

/// Page tokens bind the cursor to the filter they were issued for, so a token replayed with a
/// different filter is refused rather than silently skipping events.
pub(crate) fn page_token(before: u64, filter: &EventFilter) -> String {
    let raw = format!("v1:{before}:{:016x}", filter_hash(filter));
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// The `before` cursor of a page token, checked against the filter.
pub(crate) fn parse_page_token(
    token: &str,
    filter: &EventFilter,
) -> Result<Option<u64>, PageError> {
    if token.is_empty() {
        return Ok(None);
    }
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| PageError::PageToken)?;
    let raw = String::from_utf8(raw).map_err(|_| PageError::PageToken)?;
    let mut parts = raw.split(':');
    let (Some("v1"), Some(before), Some(hash), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(PageError::PageToken);
    };
    if hash != format!("{:016x}", filter_hash(filter)) {
        return Err(PageError::PageToken);
    }
    before.parse().map(Some).map_err(|_| PageError::PageToken)
}

/// A hash of the filter that outlives deploys: FNV-1a over bytes this function lays out itself
/// (std's `Hash` impls and `DefaultHasher` are not guaranteed stable across Rust releases), with
/// lists sorted, since the order a client lists providers or sources in does not change the
/// events it gets.
fn filter_hash(filter: &EventFilter) -> u64 {
    struct Fnv(u64);
    impl Fnv {
        fn bytes(&mut self, bytes: &[u8]) {
            for byte in bytes {
                self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
            }
        }
        /// Length-prefixed, so `["ab", "c"]` and `["a", "bc"]` differ.
        fn text(&mut self, tag: u8, text: &str) {
            self.bytes(&[tag]);
            self.bytes(&(text.len() as u64).to_le_bytes());
            self.bytes(text.as_bytes());
        }
    }
    let mut hasher = Fnv(0xcbf2_9ce4_8422_2325);
    let mut providers = filter.providers.clone();
    providers.sort_unstable();
    providers.dedup();
    for provider in providers {
        hasher.bytes(b"p");
        hasher.bytes(&provider.to_le_bytes());
    }
    let mut sources: Vec<&str> = filter.sources.iter().map(String::as_str).collect();
    sources.sort_unstable();
    sources.dedup();
    for source in sources {
        hasher.text(b's', source);
    }
    let mut types: Vec<(u8, &str)> = filter
        .types
        .iter()
        .map(|pattern| match pattern {
            TypePattern::Exact(name) => (b'=', name.as_str()),
            TypePattern::Prefix(prefix) => (b'*', prefix.as_str()),
        })
        .collect();
    types.sort_unstable();
    types.dedup();
    for (tag, text) in types {
        hasher.text(tag, text);
    }
    if let Some(resource) = &filter.resource {
        hasher.text(b'k', &resource.kind);
        hasher.text(b'i', &resource.id);
    }
    hasher.0
}

#[cfg(test)]
mod tests;
