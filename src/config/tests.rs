//! Loading and validation: defaults, key-naming errors, env overrides, secrets kept hidden, and
//! every source checked whole at load.

use std::path::Path;

use super::*;

const SAMPLE: &str = r#"
    [server]
    grpc_listen = "127.0.0.1:0"

    [[sources]]
    name = "gigs"
    provider = "gigs"
    verification = { scheme = "standard_webhooks", secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"] }

    [[sources]]
    name = "abowire"
    provider = "abowire"
    verification = { scheme = "query_token", tokens = ["t0ken"] }

    [[sources]]
    name = "mm"
    provider = "mobile_manager"
    allowed_cidrs = ["10.1.0.0/16"]
    verification = { scheme = "header_token", header = "X-MM-Token", prefix = "Bearer ", tokens = ["t"] }
"#;

/// A config of one source whose verification table is `verification`.
fn one_source(provider: &str, verification: &str) -> String {
    format!("[[sources]]\nname = \"a\"\nprovider = \"{provider}\"\nverification = {verification}\n")
}

/// Loads `toml` with `auth = "none"` in front: most tests here are about other sections.
pub(super) fn load(toml: &str) -> Result<Config, ConfigError> {
    Config::from_toml(&format!("auth = \"none\"\n{toml}"))
}

pub(super) fn load_with_env(
    toml: &str,
    var: impl Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    Config::from_toml_with_env(&format!("auth = \"none\"\n{toml}"), var)
}

fn load_error(toml: &str) -> String {
    // No `auth` added: every other section is checked before it.
    Config::from_toml(toml).unwrap_err().to_string()
}

#[test]
fn parses_sources_into_typed_verification_with_defaults() {
    let config = load(SAMPLE).unwrap();
    assert_eq!(config.limits.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
    assert_eq!(config.sources.len(), 3);
    match &config.sources[0].verification {
        VerificationConfig::StandardWebhooks { keys, tolerance } => {
            assert_eq!(tolerance.as_secs(), DEFAULT_TOLERANCE_SECONDS);
            assert!(keys.signer().is_some());
        }
        other => panic!("unexpected {other:?}"),
    }
    match &config.sources[1].verification {
        VerificationConfig::QueryToken { param, tokens } => {
            assert_eq!(param, "token");
            assert_eq!(tokens, &[Secret::new("t0ken")]);
        }
        other => panic!("unexpected {other:?}"),
    }
    match &config.sources[2].verification {
        VerificationConfig::HeaderToken { header, prefix, .. } => {
            assert_eq!(header.as_str(), "x-mm-token");
            assert_eq!(prefix, "Bearer ");
        }
        other => panic!("unexpected {other:?}"),
    }
    let allowlist = config.sources[2].allowed_cidrs.as_ref().unwrap();
    assert!(allowlist.contains([10, 1, 2, 3].into()));
    assert!(!allowlist.contains([10, 2, 0, 1].into()));
    assert!(config.sources[0].allowed_cidrs.is_none());
}

#[test]
fn scheme_defaults_to_the_providers() {
    let config = load(
        "[[sources]]\nname = \"g\"\nprovider = \"gigs\"\nverification = { secrets = [\"whsec_eA==\"] }\n\
         [[sources]]\nname = \"a\"\nprovider = \"abowire\"\nverification = { tokens = [\"t\"] }\n",
    )
    .unwrap();
    assert!(matches!(
        config.sources[0].verification,
        VerificationConfig::StandardWebhooks { .. }
    ));
    assert!(matches!(
        config.sources[1].verification,
        VerificationConfig::QueryToken { .. }
    ));
    let error = load_error(
        "[[sources]]\nname = \"g\"\nprovider = \"gigs\"\nverification = { secrets = [\"whsec_eA==\"] }\n\
         [[sources]]\nname = \"m\"\nprovider = \"mobile_manager\"\nverification = { tokens = [\"t\"], bogus = 1 }",
    );
    assert!(
        error.contains("sources[1].verification") && error.contains("bogus"),
        "{error}"
    );
}

#[test]
fn a_missing_verification_fails_at_load() {
    let error = load_error(
        "[[sources]]\nname = \"a\"\nprovider = \"abowire\"\nverification = { tokens = [\"t\"] }\n\
         [[sources]]\nname = \"m\"\nprovider = \"mobile_manager\"\n",
    );
    assert!(error.contains("`sources[1].verification`"), "{error}");
    assert!(error.contains("scheme = \"none\""), "{error}");
}

#[test]
fn bad_verification_parameters_fail_at_load_naming_their_key() {
    for (provider, verification, key) in [
        (
            "gigs",
            r#"{ secrets = ["whsec_%%%notbase64"] }"#,
            "sources[0].verification",
        ),
        ("gigs", r#"{ secrets = [] }"#, "sources[0].verification"),
        (
            "gigs",
            r#"{ public_keys = ["whpk_AAAA"] }"#,
            "sources[0].verification",
        ),
        (
            "abowire",
            r#"{ scheme = "none", tokens = ["t"] }"#,
            "sources[0].verification",
        ),
        (
            "abowire",
            r#"{ scheme = "query_token", param = "", tokens = ["t"] }"#,
            "sources[0].verification.param",
        ),
        (
            "abowire",
            r#"{ tokens = [] }"#,
            "sources[0].verification.tokens",
        ),
        (
            "abowire",
            r#"{ tokens = ["t", ""] }"#,
            "sources[0].verification.tokens[1]",
        ),
        (
            "abowire",
            r#"{ scheme = "header_token", header = "", tokens = ["t"] }"#,
            "sources[0].verification.header",
        ),
        (
            "abowire",
            r#"{ scheme = "header_token", header = "x-token\nx-evil", tokens = ["t"] }"#,
            "sources[0].verification.header",
        ),
        (
            "abowire",
            r#"{ scheme = "basic_auth", username = "u", password = { env = "HN_SURELY_NOT_SET_456" } }"#,
            "sources[0].verification.password",
        ),
        (
            "mobile_manager",
            r#"{ scheme = "ip_allowlist", cidrs = [] }"#,
            "sources[0].verification.cidrs",
        ),
        (
            "mobile_manager",
            r#"{ scheme = "ip_allowlist", cidrs = ["192.0.2.0/24", "nope"] }"#,
            "sources[0].verification.cidrs[1]",
        ),
    ] {
        let error = load_error(&one_source(provider, verification));
        assert!(
            error.contains(&format!("`{key}`")),
            "{verification}: {error}"
        );
        assert!(!error.contains("%%%notbase64"), "secret echoed: {error}");
    }
}

#[test]
fn errors_name_the_failing_source_by_index() {
    let good = one_source("abowire", r#"{ tokens = ["t"] }"#);
    let bad = "[[sources]]\nname = \"g\"\nprovider = \"gigs\"\n\
               verification = { secrets = [\"whsec_eA==\", \"whsec_!!\"] }\n";
    let error = load_error(&format!("{good}{bad}"));
    assert!(error.contains("`sources[1].verification`"), "{error}");
    assert!(error.contains("secrets[1]"), "{error}");
    let bad_cidrs = "[[sources]]\nname = \"m\"\nprovider = \"mobile_manager\"\n\
                     allowed_cidrs = [\"10.0.0.0/33\"]\nverification = { scheme = \"none\" }\n";
    let error = load_error(&format!("{good}{bad_cidrs}"));
    assert!(error.contains("`sources[1].allowed_cidrs[0]`"), "{error}");
}

#[test]
fn unknown_keys_are_named() {
    let error = load_error("[server]\ngrpc_lsten = \"x\"");
    assert!(error.contains("grpc_lsten"), "{error}");
    let error = load_error("[[sources]]\nname = \"a\"\nprovider = \"nope\"");
    assert!(error.contains("nope"), "{error}");
}

#[test]
fn duplicate_and_bad_names_are_refused() {
    let error = load_error(&format!(
        "{}{}",
        one_source("gigs", r#"{ secrets = ["whsec_eA=="] }"#),
        one_source("abowire", r#"{ tokens = ["t"] }"#)
    ));
    assert!(error.contains("sources[1].name"), "{error}");
    let error = load_error(
        "[[sources]]\nname = \"a b\"\nprovider = \"mobile_manager\"\nverification = { scheme = \"none\" }",
    );
    assert!(error.contains("sources[0].name"), "{error}");
}

#[test]
fn secrets_resolve_from_env_and_file_and_stay_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "from-file\n").unwrap();
    let file = SecretRef::File { file: path.clone() };
    assert_eq!(file.resolve("k").unwrap().expose(), "from-file");
    let missing = SecretRef::Env {
        env: "HN_SURELY_NOT_SET_123".into(),
    };
    let error = missing
        .resolve("sources[0].verification.tokens[0]")
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("sources[0].verification.tokens[0]")
    );
    let literal = SecretRef::Literal("hunter2".into());
    assert!(!format!("{literal:?}").contains("hunter2"));
    let secret = literal.resolve("k").unwrap();
    assert!(!format!("{secret:?} {secret}").contains("hunter2"));

    // Through the whole load: the file is read once, into the typed config.
    let config = load(&one_source(
        "abowire",
        &format!(
            "{{ tokens = [{{ file = {:?} }}] }}",
            path.display().to_string()
        ),
    ))
    .unwrap();
    match &config.sources[0].verification {
        VerificationConfig::QueryToken { tokens, .. } => {
            assert_eq!(tokens[0].expose(), "from-file");
        }
        other => panic!("unexpected {other:?}"),
    }
    let error = load_error(&one_source(
        "abowire",
        r#"{ tokens = [{ file = "/surely/not/here" }] }"#,
    ));
    assert!(
        error.contains("`sources[0].verification.tokens[0]`"),
        "{error}"
    );
}

#[test]
fn literal_secrets_reach_neither_debug_nor_errors() {
    let config = load(&format!(
        "{}{}{}",
        one_source(
            "gigs",
            r#"{ secrets = ["whsec_U1VQRVJTRUNSRVRWQUxVRQ=="] }"#
        )
        .replace("\"a\"", "\"g\""),
        one_source(
            "abowire",
            r#"{ scheme = "basic_auth", username = "u", password = "SUPERSECRETPW" }"#
        )
        .replace("\"a\"", "\"b\""),
        one_source("abowire", r#"{ tokens = ["SUPERSECRETTOKEN"] }"#),
    ))
    .unwrap();
    let shown = format!("{config:?}");
    assert!(!shown.contains("SUPERSECRET"), "{shown}");
    assert!(!shown.contains("U1VQRVJTRUNSRVRWQUxVRQ"), "{shown}");
    assert!(shown.contains("StandardWebhooks"), "{shown}");

    // A secret where a list belongs: the key is named, the value is not.
    let error = load_error(&one_source(
        "gigs",
        r#"{ secrets = "whsec_SUPERSECRETVALUE" }"#,
    ));
    assert!(error.contains("sources[0].verification"), "{error}");
    assert!(!error.contains("SUPERSECRET"), "{error}");

    // A syntax error on a secret's line gives its position, not the line.
    let error = load_error("[[sources]]\nname = \"x\"\ntoken = \"SUPERSECRET\n");
    assert!(error.contains("line 3"), "{error}");
    assert!(!error.contains("SUPERSECRET"), "{error}");
}

#[test]
fn zero_settings_are_refused_naming_their_key() {
    for (section, key) in [
        ("streams", "heartbeat_seconds"),
        ("streams", "buffer"),
        ("streams", "buffer_bytes"),
        ("streams", "slow_subscriber_timeout_seconds"),
        ("store", "dedup_window_seconds"),
        ("store", "retention_max_count"),
        ("store", "group_commit_max"),
        ("limits", "max_body_bytes"),
        ("limits", "max_event_bytes"),
        ("http", "max_concurrency"),
        ("http", "max_connections"),
        ("http", "max_waiting_per_address"),
        ("ops", "max_connections"),
        ("ops", "header_read_timeout_seconds"),
        ("grpc", "max_connections"),
        ("grpc", "max_waiting_per_address"),
        ("grpc", "preface_timeout_seconds"),
        ("grpc", "max_stream_resets_per_second"),
    ] {
        let error = load_error(&format!("[{section}]\n{key} = 0\n"));
        assert!(error.contains(&format!("`{section}.{key}`")), "{error}");
    }
    let error =
        load_error("[server]\ngrpc_listen = \"127.0.0.1:7000\"\nhttp_listen = \"127.0.0.1:7000\"");
    assert!(error.contains("`server.http_listen`"), "{error}");
    for other in ["grpc_listen", "http_listen"] {
        let error = load_error(&format!(
            "[server]\n{other} = \"127.0.0.1:7001\"\nops_listen = \"127.0.0.1:7001\""
        ));
        assert!(error.contains("`server.ops_listen`"), "{error}");
        assert!(error.contains(other), "{error}");
    }
}

#[test]
fn a_bad_log_level_fails_at_load() {
    let error = load_error("[log]\nlevel = \"hooknorm=loud\"\n");
    assert!(error.contains("`log.level`"), "{error}");
    let error = load_with_env("", |name| {
        (name == "HOOKNORM_LOG_LEVEL").then(|| "=[".into())
    })
    .unwrap_err()
    .to_string();
    assert!(error.contains("`HOOKNORM_LOG_LEVEL`"), "{error}");
}

#[test]
fn a_missing_file_is_explained_once() {
    let error = Config::load(Path::new("/surely/not/here.toml")).unwrap_err();
    let shown = format!("{:#}", anyhow::Error::from(error));
    assert_eq!(shown.matches("No such file").count(), 1, "{shown}");
}

#[test]
fn a_parse_error_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[server]\ngrpc_listen = \"nonsense\"\n").unwrap();
    let error = Config::load(&path).unwrap_err().to_string();
    assert!(error.contains("bad.toml"), "{error}");
    assert!(error.contains("server.grpc_listen"), "{error}");
}

#[test]
fn env_overrides_apply_and_are_checked() {
    let config = load_with_env(SAMPLE, |name| match name {
        "HOOKNORM_GRPC_LISTEN" => Some("127.0.0.1:9999".into()),
        "HOOKNORM_HTTP_LISTEN" => Some("[::1]:8081".into()),
        "HOOKNORM_OPS_LISTEN" => Some("0.0.0.0:9091".into()),
        "HOOKNORM_LOG_FORMAT" => Some("json".into()),
        "HOOKNORM_STORE_PATH" => Some("/var/lib/hooknorm".into()),
        "HOOKNORM_MAX_BODY_BYTES" => Some("4096".into()),
        "HOOKNORM_LOG_LEVEL" => Some("hooknorm=debug,info".into()),
        _ => None,
    })
    .unwrap();
    assert_eq!(config.server.grpc_listen.port(), 9999);
    assert_eq!(config.server.http_listen, "[::1]:8081".parse().unwrap());
    assert_eq!(config.server.ops_listen, "0.0.0.0:9091".parse().unwrap());
    assert_eq!(config.log.format, LogFormat::Json);
    assert_eq!(config.store.path, Path::new("/var/lib/hooknorm"));
    assert_eq!(config.limits.max_body_bytes, 4096);
    assert_eq!(config.log.level, "hooknorm=debug,info");
    for (name, value) in [
        ("HOOKNORM_MAX_BODY_BYTES", "lots"),
        ("HOOKNORM_GRPC_LISTEN", "nowhere"),
        ("HOOKNORM_LOG_FORMAT", "yaml"),
    ] {
        let error = load_with_env(SAMPLE, |var| (var == name).then(|| value.into())).unwrap_err();
        assert!(error.to_string().contains(name), "{error}");
    }
    // Overrides are validated like the file: a zero body limit from the environment is refused.
    let error = load_with_env(SAMPLE, |var| {
        (var == "HOOKNORM_MAX_BODY_BYTES").then(|| "0".into())
    })
    .unwrap_err();
    assert!(
        error.to_string().contains("limits.max_body_bytes"),
        "{error}"
    );
}

#[test]
fn telemetry_is_off_by_default_and_metrics_on() {
    let config = load(SAMPLE).unwrap();
    assert_eq!(config.telemetry.otlp_endpoint, None);
    assert_eq!(config.telemetry.service_name, "hooknorm");
    assert_eq!(
        config.telemetry.sampler,
        TraceSampler::ParentBased(ParentlessSampler::AlwaysOn)
    );
    assert!(config.telemetry.metrics);
}

#[test]
fn otel_variables_override_the_telemetry_section() {
    let toml = format!(
        "{SAMPLE}\n[telemetry]\notlp_endpoint = \"http://file:4317\"\nsampler = \"always_off\"\n"
    );
    let env = |name: &str| match name {
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://generic:4317".to_owned()),
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" => Some("http://traces:4317".to_owned()),
        "OTEL_SERVICE_NAME" => Some("edge-hooknorm".to_owned()),
        "OTEL_TRACES_SAMPLER" => Some("parentbased_traceidratio".to_owned()),
        "OTEL_TRACES_SAMPLER_ARG" => Some("0.25".to_owned()),
        _ => None,
    };
    let telemetry = load_with_env(&toml, env).unwrap().telemetry;
    assert_eq!(
        telemetry.otlp_endpoint.as_deref(),
        Some("http://traces:4317")
    );
    assert_eq!(telemetry.service_name, "edge-hooknorm");
    assert_eq!(
        telemetry.sampler,
        TraceSampler::ParentBased(ParentlessSampler::TraceIdRatio(0.25))
    );
    // The generic endpoint when the traces one is unset; empty means unset.
    let env = |name: &str| match name {
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://generic:4317".to_owned()),
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" => Some(String::new()),
        _ => None,
    };
    let telemetry = load_with_env(&toml, env).unwrap().telemetry;
    assert_eq!(
        telemetry.otlp_endpoint.as_deref(),
        Some("http://generic:4317")
    );
    assert_eq!(telemetry.sampler, TraceSampler::AlwaysOff);
}

#[test]
fn bad_telemetry_settings_fail_at_load_naming_their_key() {
    for (section, key) in [
        (
            "otlp_endpoint = \"collector:4317\"",
            "telemetry.otlp_endpoint",
        ),
        ("sampler = \"sometimes\"", "telemetry.sampler"),
        (
            "sampler = \"traceidratio\"\nsampler_arg = 1.5",
            "telemetry.sampler_arg",
        ),
        ("service_name = \" \"", "telemetry.service_name"),
    ] {
        let error = load_error(&format!("{SAMPLE}\n[telemetry]\n{section}\n"));
        assert!(error.contains(key), "{section}: {error}");
    }
    let env = |name: &str| (name == "OTEL_TRACES_SAMPLER_ARG").then(|| "half".to_owned());
    let error = load_with_env(SAMPLE, env).unwrap_err().to_string();
    assert!(error.contains("OTEL_TRACES_SAMPLER_ARG"), "{error}");
}
