//! An HTTP request, as a provider sent it, into a [`RawWebhook`]: the content type is checked,
//! the body is read under the size limit (refused as soon as it is exceeded, never buffered
//! whole) and within the bytes all bodies in flight may hold together, and the headers (grouped
//! by name), path and query, and client address are kept.

use std::sync::Arc;

use axum::body::{Body, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderMap, header};
use chrono::Utc;
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::errors::{ClientAddr, HttpError};
use crate::error::Reason;
use crate::listen::RequestProgress;
use crate::pipeline::PipelineError;
use crate::webhook::RawWebhook;

/// Converts the request; `source` comes from the path, the client address from [`ClientAddr`]
/// (unknown without it, which allowlists refuse). Every early refusal (type, declared size)
/// happens before a byte of the body is read. The body's bytes are taken from `budget`, and
/// given back when the returned permit is dropped (once the webhook is processed).
pub async fn raw_webhook(
    source: String,
    request: Request,
    max_body_bytes: usize,
    budget: &Arc<Semaphore>,
) -> Result<(RawWebhook, OwnedSemaphorePermit), HttpError> {
    // Signature timestamps are checked against arrival, not against the end of a slow upload.
    let received_at = Utc::now();
    let (parts, body) = request.into_parts();
    check_content_type(&parts.headers)?;
    let remote_addr = parts
        .extensions
        .get::<ClientAddr>()
        .and_then(|ClientAddr(addr)| *addr);
    let (body, permit) = read_body(body, max_body_bytes, budget).await?;
    // From here the request is processed, not uploaded: its connection is safe from admission.
    if let Some(progress) = parts.extensions.get::<RequestProgress>() {
        progress.body_received();
    }
    let webhook = RawWebhook {
        source,
        headers: headers(&parts.headers),
        body,
        request_uri: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned()),
        remote_addr,
        received_at,
    };
    Ok((webhook, permit))
}

/// `application/json` and `application/<anything>+json`, with any parameters. A missing type is
/// accepted: the body is parsed as JSON either way (and refused as `MALFORMED_PAYLOAD` if it is
/// not), so refusing it would only lose events from a sender that leaves the header out. More
/// than one is refused: a body has one type, and checking only the first would let a second,
/// different one through to whatever reads the headers later.
pub fn check_content_type(headers: &HeaderMap) -> Result<(), HttpError> {
    let mut values = headers.get_all(header::CONTENT_TYPE).iter();
    let Some(value) = values.next() else {
        return Ok(());
    };
    if values.next().is_some() {
        return Err(HttpError::new(
            Reason::UnsupportedMediaType,
            "more than one content type; send one, application/json",
        ));
    }
    let text = value.to_str().unwrap_or_default();
    if is_json(text) {
        return Ok(());
    }
    Err(HttpError::new(
        Reason::UnsupportedMediaType,
        "content type is not json; send application/json",
    )
    .sent(text))
}

fn is_json(content_type: &str) -> bool {
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let Some((kind, subtype)) = media_type.split_once('/') else {
        return false;
    };
    kind == "application" && (subtype == "json" || subtype.ends_with("+json"))
}

/// Reads the body, refusing as soon as it is known to be over `limit`: from `Content-Length`
/// before reading anything, otherwise at the first chunk that crosses it. Its bytes are taken
/// from `budget` as they arrive (the declared length up front): a body that finds the budget
/// spent is refused with 429 rather than waiting, and a body trickled in holds only what it has
/// sent.
pub async fn read_body(
    mut body: Body,
    limit: usize,
    budget: &Arc<Semaphore>,
) -> Result<(Vec<u8>, OwnedSemaphorePermit), HttpError> {
    let declared = HttpBody::size_hint(&body).lower();
    if declared > limit as u64 {
        let error = PipelineError::PayloadTooLarge {
            size: usize::try_from(declared).unwrap_or(usize::MAX),
            limit,
        };
        return Err(HttpError::from_pipeline(&error));
    }
    let capacity = usize::try_from(declared).unwrap_or(limit).min(limit);
    let mut permit = take(budget, capacity)?;
    let mut bytes = Vec::with_capacity(capacity);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| {
            HttpError::new(Reason::InvalidRequest, "cannot read the request body").cause(&error)
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers carry nothing we use
        };
        if bytes.len() + data.len() > limit {
            return Err(HttpError::new(
                Reason::PayloadTooLarge,
                format!("body is over the limit of {limit} bytes"),
            ));
        }
        let held = permit.num_permits();
        if bytes.len() + data.len() > held {
            permit.merge(take(budget, bytes.len() + data.len() - held)?);
        }
        bytes.extend_from_slice(&data);
    }
    Ok((bytes, permit))
}

/// `bytes` of the body budget, now or never.
fn take(budget: &Arc<Semaphore>, bytes: usize) -> Result<OwnedSemaphorePermit, HttpError> {
    u32::try_from(bytes)
        .ok()
        .and_then(|bytes| budget.clone().try_acquire_many_owned(bytes).ok())
        .ok_or_else(|| {
            HttpError::new(
                Reason::RateLimited,
                "too many webhook bodies in flight; retry later",
            )
        })
}

/// Every header as received, grouped by name: names in the order they first appeared, each
/// name's values in the order received (how `HeaderMap` keeps them; the interleaving of
/// different names is lost, and no scheme depends on it). Values that are not text are kept as
/// lossy UTF-8 (none of the schemes' headers can contain such bytes).
fn headers(map: &HeaderMap) -> Vec<(String, String)> {
    map.iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types() {
        for accepted in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/cloudevents+json",
            "application/json;charset=UTF-8",
        ] {
            assert!(is_json(accepted), "{accepted}");
        }
        for refused in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "text/json",
            "application/jsonx",
            "",
        ] {
            assert!(!is_json(refused), "{refused}");
        }
        assert!(check_content_type(&HeaderMap::new()).is_ok());
        let mut twice = HeaderMap::new();
        twice.append(header::CONTENT_TYPE, "application/json".parse().unwrap());
        assert!(check_content_type(&twice).is_ok());
        twice.append(header::CONTENT_TYPE, "application/json".parse().unwrap());
        let error = check_content_type(&twice).unwrap_err();
        assert_eq!(error.reason(), Reason::UnsupportedMediaType);
    }

    #[tokio::test]
    async fn bodies_are_limited_while_reading() {
        let budget = Arc::new(Semaphore::new(1000));
        let body = Body::from(vec![b'x'; 10]);
        let (bytes, permit) = read_body(body, 10, &budget).await.unwrap();
        assert_eq!((bytes.len(), permit.num_permits()), (10, 10));
        let error = read_body(Body::from(vec![b'x'; 11]), 10, &budget)
            .await
            .unwrap_err();
        assert_eq!(error.reason(), Reason::PayloadTooLarge);
        // A stream of unknown length is cut at the first chunk past the limit.
        let chunks = futures_chunks(100, 4);
        let error = read_body(chunks, 10, &budget).await.unwrap_err();
        assert_eq!(error.reason(), Reason::PayloadTooLarge);
        // Refused bodies gave their bytes back; the kept one holds its own.
        assert_eq!(budget.available_permits(), 990);
    }

    #[tokio::test]
    async fn bodies_share_one_budget_of_bytes() {
        let budget = Arc::new(Semaphore::new(12));
        let (_, held) = read_body(futures_chunks(2, 4), 100, &budget).await.unwrap();
        assert_eq!(held.num_permits(), 8);
        // Declared up front: refused before reading.
        let error = read_body(Body::from(vec![b'x'; 5]), 100, &budget)
            .await
            .unwrap_err();
        assert_eq!(error.reason(), Reason::RateLimited);
        // Streamed: refused at the chunk that finds the budget spent.
        let error = read_body(futures_chunks(2, 4), 100, &budget)
            .await
            .unwrap_err();
        assert_eq!(error.reason(), Reason::RateLimited);
        drop(held);
        assert_eq!(budget.available_permits(), 12);
    }

    fn futures_chunks(count: usize, size: usize) -> Body {
        let stream =
            tokio_stream::iter((0..count).map(move |_| Ok::<_, std::io::Error>(vec![b'y'; size])));
        Body::from_stream(stream)
    }
}
