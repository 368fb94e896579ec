//! The console as a value (`Router` + `oneshot`): who is refused, what each key sees, that a
//! provider's text is shown as text, the headers every page carries, and the live tail's first
//! message.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use tokio::sync::watch;
use tower::ServiceExt;

use super::*;
use crate::config::Config;
use crate::http::{HttpSettings, HttpState};
use crate::log::sqlite::SqliteEventLog;
use crate::pipeline::Pipeline;
use crate::readiness::Readiness;

const READER: &str = "console-test-reader-key";
const NARROW: &str = "console-test-narrow-key";
const INGEST: &str = "console-test-ingest-key";

/// An order whose payload carries markup, as a hostile sender would.
const HOSTILE_ORDER: &str = r#"{"OrderId":"7d5b2f8e-3c41-4a9b-b1e2-6f0a9c8d4e21","State":1,"Type":0,
"SimId":"b3e1c7a2-9d4f-4e6b-8a15-2c7f9e0d1b34","PoolId":"00000000-0000-0000-0000-000000000000",
"APNId":"00000000-0000-0000-0000-000000000000","Note":"<script>alert('x')</script>"}"#;

/// The keys the tests use: one that reads everything, one that reads only `other`, one that
/// only ingests.
fn keys() -> String {
    format!(
        r#"
[auth]
[[auth.keys]]
name = "reader"
key = "{READER}"
scopes = ["read"]
[[auth.keys]]
name = "narrow"
key = "{NARROW}"
scopes = ["read"]
sources = ["other"]
[[auth.keys]]
name = "ingest"
key = "{INGEST}"
scopes = ["ingest"]
"#
    )
}

struct App {
    ingress: axum::Router,
    ops: axum::Router,
    _stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

fn app() -> App {
    app_with("")
}

/// The app with `top` (top-level keys such as `auth = "none"`) before the tables, which then
/// carry no keys of their own.
fn app_with(top: &str) -> App {
    let dir = tempfile::tempdir().unwrap();
    let keys = if top.is_empty() {
        keys()
    } else {
        String::new()
    };
    let toml = format!(
        r#"{top}
[store]
path = {:?}
{keys}
[[sources]]
name = "open"
provider = "mobile_manager"
verification = {{ scheme = "none" }}
[[sources]]
name = "other"
provider = "mobile_manager"
verification = {{ scheme = "none" }}
"#,
        dir.path().display().to_string()
    );
    let config = Config::from_toml(&toml).unwrap();
    let log: Arc<dyn EventLog> = Arc::new(SqliteEventLog::open(&config.store).unwrap());
    let pipeline = Pipeline::new(&config, log.clone());
    let (stop, stopping) = watch::channel(false);
    let console = Console::new(
        log.clone(),
        Arc::new(config.auth.authenticator.clone()),
        config
            .sources
            .iter()
            .map(|source| (source.name.clone(), source.provider))
            .collect(),
        pipeline.max_event_bytes(),
        StreamSettings::default(),
        stopping.clone(),
        1,
    );
    let readiness = Readiness::new(log, stopping);
    let settings = HttpSettings::from_config(&config.http, config.limits.max_body_bytes);
    App {
        ingress: crate::http::router(HttpState::new(pipeline, settings)),
        ops: crate::http::ops_router(readiness, Some(console)),
        _stop: stop,
        _dir: dir,
    }
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    text: String,
}

async fn call(router: &axum::Router, request: Request<Body>) -> Answer {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn get(uri: &str, key: Option<&str>) -> Request<Body> {
    let mut request = Request::get(uri);
    if let Some(key) = key {
        request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    request.body(Body::empty()).unwrap()
}

/// Posts the hostile order to `source`; its event id.
async fn post_order(app: &App, source: &str) -> String {
    let request = Request::post(format!("/webhooks/{source}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(HOSTILE_ORDER))
        .unwrap();
    let answer = call(&app.ingress, request).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let json: serde_json::Value = serde_json::from_str(&answer.text).unwrap();
    json["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn without_a_usable_key_the_login_form_answers() {
    let app = app();
    let answer = call(&app.ops, get("/console?type=order.*", None)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.text.contains(r#"action="/console/login""#));
    assert!(
        answer
            .text
            .contains(r#"name="next" value="/console?type=order.*""#)
    );
    let answer = call(&app.ops, get("/console", Some("not-a-key"))).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.text.contains("matches no configured key"));
    let answer = call(&app.ops, get("/console/live", None)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_key_without_the_read_scope_is_refused() {
    let app = app();
    let answer = call(&app.ops, get("/console", Some(INGEST))).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(answer.text.contains("PERMISSION_DENIED"), "{}", answer.text);
}

#[tokio::test]
async fn a_narrow_key_sees_only_its_sources() {
    let app = app();
    let id = post_order(&app, "open").await;
    let other = post_order(&app, "other").await;
    let list = call(&app.ops, get("/console", Some(NARROW))).await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.text.contains(&pages::event_href(&other)));
    assert!(
        !list.text.contains(&pages::event_href(&id)),
        "{}",
        list.text
    );
    // A foreign event is missing, not forbidden.
    let detail = call(&app.ops, get(&pages::event_href(&id), Some(NARROW))).await;
    assert_eq!(detail.status, StatusCode::NOT_FOUND);
    assert!(detail.text.contains("EVENT_NOT_FOUND"));
    // Asking for a foreign source outright is refused, as ListEvents refuses it.
    let foreign = call(&app.ops, get("/console?source=open", Some(NARROW))).await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
    let live = call(&app.ops, get("/console/live?source=open", Some(NARROW))).await;
    assert_eq!(live.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn provider_text_is_shown_as_text() {
    let app = app();
    let id = post_order(&app, "open").await;
    let detail = call(&app.ops, get(&pages::event_href(&id), Some(READER))).await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.text);
    assert!(!detail.text.contains("<script>alert"), "{}", detail.text);
    assert!(detail.text.contains("&lt;script&gt;alert("));
    // The re-send command, the raw body and the CloudEvent are all there, escaped too.
    assert!(
        detail
            .text
            .contains("hooknorm send --source &#39;open&#39;")
            || detail.text.contains("hooknorm send --source 'open'")
    );
    assert!(detail.text.contains(r#"id="raw-body""#));
    assert!(detail.text.contains("io.hooknorm."));
}

#[tokio::test]
async fn every_page_carries_the_security_headers() {
    let app = app();
    for key in [None, Some(READER)] {
        let answer = call(&app.ops, get("/console", key)).await;
        let csp = answer.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert_eq!(answer.headers[header::CACHE_CONTROL], "no-store");
        assert_eq!(answer.headers[header::X_FRAME_OPTIONS], "DENY");
    }
    let script = call(&app.ops, get("/console/assets/console.js", None)).await;
    assert_eq!(script.status, StatusCode::OK);
    assert!(
        script.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
}

#[tokio::test]
async fn the_login_form_sets_a_cookie_that_works() {
    let app = app();
    let form = format!("key={READER}&next=%2Fconsole%3Ftype%3Dorder.*");
    let request = Request::post("/console/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form))
        .unwrap();
    let answer = call(&app.ops, request).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(answer.headers[header::LOCATION], "/console?type=order.*");
    let cookie = answer.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let pair = cookie.split(';').next().unwrap().to_owned();
    let request = Request::get("/console")
        .header(header::COOKIE, pair)
        .body(Body::empty())
        .unwrap();
    let answer = call(&app.ops, request).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.text.contains("<code>reader</code>"));
    // A wrong key is the form again, with why.
    let request = Request::post("/console/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("key=wrong"))
        .unwrap();
    let answer = call(&app.ops, request).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.headers.get(header::SET_COOKIE).is_none());
    // Another site's page cannot post it.
    let request = Request::post("/console/login")
        .header(header::ORIGIN, "http://evil.example")
        .header(header::HOST, "127.0.0.1:8081")
        .body(Body::from(format!("key={READER}")))
        .unwrap();
    assert_eq!(call(&app.ops, request).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn bad_filters_are_a_bad_request() {
    let app = app();
    let answer = call(&app.ops, get("/console?type=ord*", Some(READER))).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.text.contains("INVALID_REQUEST"));
    let answer = call(&app.ops, get("/console?page=bogus", Some(READER))).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
}

/// A live tail opened with the reader's key; its body streams for as long as it is kept.
async fn open_tail(app: &App, uri: &str) -> axum::response::Response {
    app.ops
        .clone()
        .oneshot(get(uri, Some(READER)))
        .await
        .unwrap()
}

#[tokio::test]
async fn the_live_tail_opens_with_ready_then_sends_rows() {
    let app = app();
    let response = open_tail(&app, "/console/live?after=0").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let mut body = response.into_body();
    let mut text = String::new();
    let id = post_order(&app, "open").await;
    while !text.contains(&pages::event_href(&id)) {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(10), body.frame())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
    assert!(text.starts_with("event: ready\n"), "{text}");
    assert!(
        text.contains("event: event\nid: 1\ndata: <tr data-sequence=\"1\">"),
        "{text}"
    );
}

#[tokio::test]
async fn live_tails_are_capped() {
    let app = app();
    let open = open_tail(&app, "/console/live").await;
    assert_eq!(open.status(), StatusCode::OK);
    let refused = call(&app.ops, get("/console/live", Some(READER))).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.text.contains("RATE_LIMITED"));
    // A tail that ends gives its place back.
    drop(open);
    let again = open_tail(&app, "/console/live").await;
    assert_eq!(again.status(), StatusCode::OK);
}

#[tokio::test]
async fn redeliveries_are_counted_in_the_list_and_the_detail() {
    let app = app();
    let id = post_order(&app, "open").await;
    // The same state again, within the window: a redelivery of the first event.
    assert_eq!(post_order(&app, "open").await, id);
    let list = call(&app.ops, get("/console", Some(READER))).await;
    assert!(
        list.text
            .contains("<td class=\"wide\"><strong>1</strong></td>"),
        "{}",
        list.text
    );
    let detail = call(&app.ops, get(&pages::event_href(&id), Some(READER))).await;
    assert!(
        detail
            .text
            .contains("<dt>Redelivered</dt><dd><strong>1</strong></dd>"),
        "{}",
        detail.text
    );
}

#[tokio::test]
async fn without_keys_the_console_is_open_and_has_no_logout() {
    let app = app_with("auth = \"none\"");
    let answer = call(&app.ops, get("/console", None)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert!(!answer.text.contains("Log out"));
    let login = call(
        &app.ops,
        get("/console/login?next=%2Fconsole%3Ftype%3Dsim.*", None),
    )
    .await;
    assert_eq!(login.status, StatusCode::SEE_OTHER);
    assert_eq!(login.headers[header::LOCATION], "/console?type=sim.*");
}
