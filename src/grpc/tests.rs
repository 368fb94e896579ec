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
    let toml = format!(
        "auth = \"none\"\n[store]\npath = {:?}\n[[sources]]\nname = \"abowire\"\nprovider = \"abowire\"\n\
         verification = {{ tokens = [\"right\"] }}\n",
        dir.path().display().to_string()
    );
    let config = Config::from_toml(&toml).unwrap();
    let log: Arc<dyn crate::log::EventLog> = Arc::new(SqliteEventLog::open(&config.store).unwrap());
    let pipeline = Pipeline::new(&config, log);
    let (_stop, stopping) = watch::channel(false);
    NormalizerGrpc::new(pipeline, StreamSettings::default(), stopping)
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
