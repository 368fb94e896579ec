//! The service as a value (no socket): status codes from the shared table, and refusals logged
//! once with the fields HTTP refusals have.

use std::sync::Arc;

use super::*;
use crate::config::Config;
use crate::log::sqlite::SqliteEventLog;

#[test]
fn domain_codes_are_the_grpc_numbers() {
    for reason in Reason::ALL {
        let code = reason.spec().grpc;
        assert_eq!(Code::from(code) as i32, code as i32, "{reason}");
    }
}

fn service(dir: &tempfile::TempDir) -> NormalizerGrpc {
    service_with(dir, Arc::new(tokio::sync::Semaphore::new(16)))
}

fn service_with(
    dir: &tempfile::TempDir,
    processing: Arc<tokio::sync::Semaphore>,
) -> NormalizerGrpc {
    let toml = format!(
        "auth = \"none\"\n[store]\npath = {:?}\n[[sources]]\nname = \"abowire\"\nprovider = \"abowire\"\n\
         verification = {{ tokens = [\"right\"] }}\n",
        dir.path().display().to_string()
    );
    let config = Config::from_toml(&toml).unwrap();
    let log: Arc<dyn crate::log::EventLog> = Arc::new(SqliteEventLog::open(&config.store).unwrap());
    let pipeline = Pipeline::new(&config, log);
    let (_stop, stopping) = watch::channel(false);
    NormalizerGrpc::new(pipeline, StreamSettings::default(), stopping, processing)
}

/// A request as the auth layer passes it on with `auth = "none"`.
fn anonymous<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.extensions_mut().insert(Caller {
        principal: Arc::new(crate::auth::Principal::anonymous()),
        peer: None,
    });
    request
}

#[tokio::test]
async fn refusals_log_one_line_with_the_shared_fields() {
    let dir = tempfile::tempdir().unwrap();
    let grpc = service(&dir);
    let log = crate::error::log_capture::capture();
    let unusable = VerifyAndNormalizeRequest::default();
    let status = grpc
        .verify_and_normalize(anonymous(unusable))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let wrong_token = VerifyAndNormalizeRequest {
        source: "abowire".into(),
        request_uri: "/webhooks/abowire?token=wrong".into(),
        remote_addr: "192.0.2.7:443".into(),
        body: b"{}".to_vec(),
        ..VerifyAndNormalizeRequest::default()
    };
    let status = grpc
        .verify_and_normalize(anonymous(wrong_token))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(!status.message().contains("192.0.2.7"), "{status:?}");

    let refused = log.with_message("webhook refused");
    assert_eq!(refused.len(), 2, "{:#?}", log.lines());
    for line in &refused {
        assert_eq!(line.field_names(), ["error", "peer", "reason", "source"]);
    }
    assert_eq!(refused[0].fields["reason"], "INVALID_REQUEST");
    assert_eq!(refused[1].fields["reason"], "TOKEN_MISMATCH");
    assert_eq!(refused[1].fields["peer"], "192.0.2.7");
}

#[tokio::test]
async fn calls_past_the_concurrency_cap_are_shed_at_once_and_retryable() {
    let dir = tempfile::tempdir().unwrap();
    let processing = Arc::new(tokio::sync::Semaphore::new(1));
    let grpc = service_with(&dir, processing.clone());
    let log = crate::error::log_capture::capture();
    let webhook = || VerifyAndNormalizeRequest {
        source: "abowire".into(),
        request_uri: "/webhooks/abowire?token=right".into(),
        body: include_bytes!("../../tests/fixtures/abowire/api-key.revoke.json").to_vec(),
        ..VerifyAndNormalizeRequest::default()
    };
    // The one slot is taken, as by a call waiting on a stalled store.
    let busy = processing.clone().try_acquire_owned().unwrap();
    let status = grpc
        .verify_and_normalize(anonymous(webhook()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    let details = status.get_error_details();
    let info = details.error_info().expect("error info");
    assert_eq!(info.reason, "RATE_LIMITED");
    let refused = log.with_message("webhook refused");
    assert_eq!(refused.len(), 1, "{:#?}", log.lines());
    assert_eq!(refused[0].fields["reason"], "RATE_LIMITED");
    // Nothing was stored, and the slot comes back once the busy call ends.
    drop(busy);
    let answer = grpc
        .verify_and_normalize(anonymous(webhook()))
        .await
        .expect("accepted once a slot is free")
        .into_inner();
    assert_eq!(answer.event.expect("event").sequence, 1);
    assert_eq!(processing.available_permits(), 1);
}
