//! The ingress and ops apps as values (`Router` + `oneshot`, no socket): routing, refusals
//! before the pipeline, one accepted webhook through a real SQLite log, and the probes.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tokio::sync::watch;
use tower::ServiceExt;

use super::*;
use crate::config::Config;
use crate::log::sqlite::SqliteEventLog;

struct App {
    router: Router,
    ops: Router,
    _dir: tempfile::TempDir,
}

fn app(extra: &str) -> App {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "auth = \"none\"\n[store]\npath = {:?}\n{extra}\n[[sources]]\nname = \"open\"\nprovider = \"mobile_manager\"\n\
         verification = {{ scheme = \"none\" }}\n",
        dir.path().display().to_string()
    );
    let config = Config::from_toml(&toml).unwrap();
    let log: Arc<dyn crate::log::EventLog> = Arc::new(SqliteEventLog::open(&config.store).unwrap());
    let pipeline = Pipeline::new(&config, log.clone());
    let (_stop, stopping) = watch::channel(false);
    let readiness = Readiness::new(log, stopping);
    let settings = HttpSettings::from_config(&config.http, config.limits.max_body_bytes);
    App {
        router: router(HttpState::new(pipeline, settings)),
        ops: ops_router(readiness, None),
        _dir: dir,
    }
}

async fn call(app: &App, request: Request<Body>) -> (StatusCode, serde_json::Value) {
    call_router(&app.router, request).await
}

async fn call_router(router: &Router, request: Request<Body>) -> (StatusCode, serde_json::Value) {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

fn post(uri: &str, content_type: &str, body: &'static str) -> Request<Body> {
    Request::post(uri)
        .header("content-type", content_type)
        .body(Body::from(body))
        .unwrap()
}

const ORDER: &str = include_str!("../../tests/fixtures/mobile_manager/order.complete.json");

#[tokio::test]
async fn routes_and_early_refusals() {
    let app = app("");
    for (request, status, reason) in [
        (
            post("/webhooks/nope", "application/json", "{}"),
            404,
            "UNKNOWN_SOURCE",
        ),
        (
            post("/nowhere", "application/json", "{}"),
            404,
            "UNKNOWN_PATH",
        ),
        (
            post("/webhooks/open", "text/plain", ORDER),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            Request::get("/webhooks/open").body(Body::empty()).unwrap(),
            405,
            "METHOD_NOT_ALLOWED",
        ),
        (
            post("/webhooks/open", "application/json", "[]"),
            400,
            "MALFORMED_PAYLOAD",
        ),
    ] {
        let (got, json) = call(&app, request).await;
        assert_eq!(got.as_u16(), status, "{json}");
        assert_eq!(json["error"]["reason"], reason);
    }
}

#[tokio::test]
async fn accepted_then_duplicate() {
    let app = app("");
    let (status, first) = call(&app, post("/webhooks/open", "application/json", ORDER)).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["sequence"], 1);
    assert_eq!(first["duplicate"], false);
    let (_, again) = call(&app, post("/webhooks/open", "application/json", ORDER)).await;
    assert_eq!(
        (&again["id"], &again["duplicate"]),
        (&first["id"], &true.into())
    );
}

#[tokio::test]
async fn probes_without_listeners_are_not_ready() {
    let app = app("");
    let live = Request::get("/healthz").body(Body::empty()).unwrap();
    assert_eq!(call_router(&app.ops, live).await.0, StatusCode::OK);
    // Nothing marked the listeners as serving: this app is a value, not a server.
    let ready = Request::get("/readyz").body(Body::empty()).unwrap();
    let (status, json) = call_router(&app.ops, ready).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json["reason"], "starting");
}

#[tokio::test]
async fn probes_live_on_the_ops_app_only() {
    let app = app("");
    for path in ["/healthz", "/readyz"] {
        let request = Request::get(path).body(Body::empty()).unwrap();
        let (status, json) = call(&app, request).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(json["error"]["reason"], "UNKNOWN_PATH", "{path}");
    }
    for (request, status) in [
        (
            post("/healthz", "application/json", "{}"),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            post("/webhooks/open", "application/json", ORDER),
            StatusCode::NOT_FOUND,
        ),
    ] {
        assert_eq!(call_router(&app.ops, request).await.0, status);
    }
}

#[tokio::test]
async fn rate_limit_applies_to_webhooks_only() {
    let app = app("[http]\nrate_limit_per_second = 1\n");
    let (status, _) = call(&app, post("/webhooks/open", "application/json", ORDER)).await;
    assert_eq!(status, StatusCode::OK);
    let response = app
        .router
        .clone()
        .oneshot(post("/webhooks/open", "application/json", ORDER))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "300");
    // Refused without spending a token: an unknown source.
    let (status, _) = call(&app, post("/webhooks/nope", "application/json", ORDER)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A Gigs source, for refusals the pipeline makes.
const GIGS: &str = "[[sources]]\nname = \"gigs\"\nprovider = \"gigs\"\n\
                    verification = { secrets = [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"] }\n";

#[tokio::test]
async fn refusals_before_and_in_the_pipeline_log_one_line_alike() {
    let app = app(GIGS);
    let log = crate::error::log_capture::capture();
    let (status, body) = call(&app, post("/webhooks/open", "text/plain", ORDER)).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(!body.to_string().contains("text/plain"), "{body}");
    let signed_by_another = Request::post("/webhooks/gigs")
        .header("content-type", "application/json")
        .header("webhook-id", "msg_1")
        .header(
            "webhook-timestamp",
            chrono::Utc::now().timestamp().to_string(),
        )
        .header("webhook-signature", format!("v1,{}", "A".repeat(43) + "="))
        .body(Body::from("{}"))
        .unwrap();
    let (status, body) = call(&app, signed_by_another).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["reason"], "SIGNATURE_MISMATCH");

    let refused = log.with_message("webhook refused");
    assert_eq!(refused.len(), 2, "{:#?}", log.lines());
    for line in &refused {
        assert_eq!(line.level, tracing::Level::INFO);
        assert_eq!(line.field_names(), ["error", "peer", "reason", "source"]);
    }
    let fields = |line: &crate::error::log_capture::Line| {
        (line.fields["source"].clone(), line.fields["reason"].clone())
    };
    assert_eq!(
        fields(&refused[0]),
        ("open".into(), "UNSUPPORTED_MEDIA_TYPE".into())
    );
    assert_eq!(
        fields(&refused[1]),
        ("gigs".into(), "SIGNATURE_MISMATCH".into())
    );
    // The log says what was sent; the answer did not.
    assert!(
        refused[0].fields["error"].contains("text/plain"),
        "{refused:#?}"
    );
}
