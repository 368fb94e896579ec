//! Kubernetes probes, on the ops listener: `/healthz` (liveness: the process answers) and
//! `/readyz` (readiness: see [`crate::readiness`]). 200 means yes, 503 no; the small JSON body
//! is for people, and never carries internal detail (the listener may be reachable by more than
//! the kubelet).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::readiness::Readiness;

/// Liveness: answering at all is the proof; nothing else is checked, so a full disk never gets
/// the pod restarted.
pub async fn healthz() -> Response {
    (StatusCode::OK, Json(json!({ "status": "ok" }))).into_response()
}

/// Readiness, checked now (the store at most once a second); the gRPC health service is updated
/// with the same answer.
pub async fn readyz(State(readiness): State<Readiness>) -> Response {
    match readiness.check().await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ready" }))).into_response(),
        Err(not_ready) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not_ready", "reason": not_ready.code() })),
        )
            .into_response(),
    }
}
