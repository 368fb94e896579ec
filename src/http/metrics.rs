//! `GET /metrics` on the ops listener: the Prometheus text exposition of [`crate::metrics`].
//! On the ops listener, so scrapes never meet the ingress limits and a flood of webhooks
//! cannot hide itself from the metrics that would show it.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::HttpError;
use crate::error::Reason;

pub async fn metrics() -> Response {
    // Off the async thread: rendering reads the store's file sizes.
    match tokio::task::spawn_blocking(crate::metrics::render).await {
        Ok(Some(text)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
            text,
        )
            .into_response(),
        Ok(None) => HttpError::new(
            Reason::UnknownPath,
            "metrics are off (telemetry.metrics = false)",
        )
        .into_response(),
        Err(error) => HttpError::new(Reason::Internal, "internal error")
            .cause(&error)
            .into_response(),
    }
}
