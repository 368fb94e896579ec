//! Unit tests of the abowire normalizer, including its fixtures under `tests/fixtures/abowire/`.

use super::*;
use crate::providers::fields::testing::{assert_fixtures, context, event_types, parse, reference};

fn run(body: &str) -> Result<Event, NormalizeError> {
    normalize(parse(body), &context()).map(|normalized| normalized.event)
}

fn detail(event: &Event) -> &AbowireDetail {
    match &event.detail {
        Some(Detail::Abowire(detail)) => detail,
        other => panic!("not an abowire detail: {other:?}"),
    }
}

fn v1_body(extra: &str) -> String {
    format!(
        r#"{{"id":"5f0c9a3e","userId":"usr_1","origin":"o","destination":"d","payload":{{"id":"x1"}},{extra}}}"#
    )
}

const FIXTURES: &[(&str, &str)] = &[
    (
        "abowire/api-key.revoke.json",
        include_str!("../../../tests/fixtures/abowire/api-key.revoke.json"),
    ),
    (
        "abowire/subscription.bulk-enable.json",
        include_str!("../../../tests/fixtures/abowire/subscription.bulk-enable.json"),
    ),
    (
        "abowire/account-subaccount.create.json",
        include_str!("../../../tests/fixtures/abowire/account-subaccount.create.json"),
    ),
    (
        "abowire/payment.accepted.json",
        include_str!("../../../tests/fixtures/abowire/payment.accepted.json"),
    ),
    (
        "abowire/current.customer.updated.json",
        include_str!("../../../tests/fixtures/abowire/current.customer.updated.json"),
    ),
    (
        "abowire/current.product.created.json",
        include_str!("../../../tests/fixtures/abowire/current.product.created.json"),
    ),
];

#[test]
fn every_fixture_matches_expected_json() {
    assert_fixtures("abowire", FIXTURES, run);
}

#[test]
fn every_documented_v1_event_maps_by_each_naming_route() {
    let table = event_types();
    let rows = table["abowire_v1"].as_array().unwrap();
    assert_eq!(rows.len(), 19);
    let documented = rows.iter().map(|row| {
        (
            row["event"].as_str().unwrap(),
            row["type"].as_str().unwrap(),
        )
    });
    // Not documented: passes through snake_cased.
    for (name, canonical) in documented.chain([("invoice:mark-paid", "invoice.mark_paid")]) {
        let (component, action) = name.split_once(':').unwrap();
        for extra in [
            format!(r#""action":"{name}","component":"billing""#),
            format!(r#""component":"{component}","action":"{action}""#),
            format!(r#""eventArn":"arn:abowire:eu-central-1:{name}""#),
            format!(r#""eventArn":"abowire/events/{component}/{action}","action":"""#),
            // Half of `component` + `action` is no name: `eventArn` decides.
            format!(r#""eventArn":"arn:abowire:eu-central-1:{name}","component":"{component}""#),
            format!(r#""eventArn":"arn:abowire:eu-central-1:{name}","action":"{action}""#),
        ] {
            let event = run(&v1_body(&extra)).unwrap_or_else(|error| panic!("{extra}: {error}"));
            assert_eq!(event.r#type, canonical, "{extra}");
            assert_eq!(event.provider_event_type, name, "{extra}");
            assert_eq!(
                event.subject,
                Some(reference(canonical.split('.').next().unwrap(), "x1"))
            );
        }
    }
}

#[test]
fn v1_detail_identity_and_no_provider_event_id() {
    let event = run(FIXTURES[0].1).unwrap();
    assert_eq!(event.provider_event_id, "");
    assert!(
        event.id.starts_with("abw_") && event.id.len() == 36,
        "{}",
        event.id
    );
    let detail = detail(&event);
    assert_eq!(detail.format, AbowireFormat::V1 as i32);
    assert_eq!(detail.webhook_id, "5f0c9a3e-2b7d-4c81-9e46-1d8f3a6b7c20");
    assert_eq!(
        detail.event_arn,
        "arn:abowire:account:eu-central-1:api-key:revoke"
    );
    assert_eq!(
        (detail.component.as_str(), detail.action.as_str()),
        ("account", "api-key:revoke")
    );
    assert_eq!(detail.user_id, "usr_8Kq3Zt1mXc");
    assert_eq!(detail.origin, "https://app.abowire.com");
    assert_eq!(detail.timestamp, "2025-03-04T10:15:30.512Z");
    assert_eq!(event.previous_data, None);
    assert!(event.data.unwrap().fields.contains_key("prefix"));

    // Same content, other key order and spacing: same id. Other content: another id.
    let reordered = r#"{ "payload": {"id":"x1"}, "action" : "api-key:revoke", "id": "w" }"#;
    let original = r#"{"id":"w","action":"api-key:revoke","payload":{"id":"x1"}}"#;
    assert_eq!(run(reordered).unwrap().id, run(original).unwrap().id);
    let other = r#"{"id":"w","action":"api-key:revoke","payload":{"id":"x2"}}"#;
    assert_ne!(run(other).unwrap().id, run(original).unwrap().id);
}

#[test]
fn v1_timestamps_as_rfc3339_epoch_seconds_or_millis() {
    let seconds = 1_741_083_330;
    for (timestamp, sent) in [
        (r#""2025-03-04T10:15:30Z""#, "2025-03-04T10:15:30Z"),
        (r#""2025-03-04T10:15:30.000Z""#, "2025-03-04T10:15:30.000Z"),
        ("1741083330", "1741083330"),
        ("1741083330000", "1741083330000"),
        (r#""1741083330""#, "1741083330"),
        (r#""1741083330000""#, "1741083330000"),
        ("1741083330512", "1741083330512"),
        ("1741083330.512", "1741083330.512"),
        (r#""2025-03-04T10:15:30.512Z""#, "2025-03-04T10:15:30.512Z"),
    ] {
        let event = run(&v1_body(&format!(
            r#""action":"a:create","timestamp":{timestamp}"#
        )))
        .unwrap();
        let occurred_at = event.occurred_at.unwrap();
        assert_eq!(occurred_at.seconds, seconds, "{timestamp}");
        // Exact to the millisecond, not an f64 approximation of it.
        let expected_nanos = if sent.contains("512") { 512_000_000 } else { 0 };
        assert_eq!(occurred_at.nanos, expected_nanos, "{timestamp}");
        assert_eq!(detail(&event).timestamp, sent);
    }
    let event = run(&v1_body(r#""action":"a:create""#)).unwrap();
    assert_eq!(
        event.occurred_at,
        Some(event::timestamp(context().received_at))
    );
    assert_eq!(
        run(&v1_body(
            r#""action":"a:create","timestamp":"last tuesday""#
        ))
        .unwrap_err()
        .to_string(),
        r#"field `timestamp`: expected an rfc 3339 time or epoch seconds/milliseconds, found "last tuesday""#
    );
    assert_eq!(
        run(&v1_body(r#""action":"a:create","timestamp":true"#))
            .unwrap_err()
            .to_string(),
        "field `timestamp`: expected a time or an epoch number, found a boolean"
    );
}

#[test]
fn non_object_payloads_are_wrapped() {
    let event =
        run(r#"{"action":"subscription:bulk-disable","payload":["sub_1",{"id":"sub_2"},{"x":1}]}"#)
            .unwrap();
    assert_eq!(event.subject, Some(reference("subscription", "")));
    assert_eq!(
        event.related,
        vec![
            reference("subscription", "sub_1"),
            reference("subscription", "sub_2")
        ]
    );
    let data = event.data.unwrap();
    assert!(matches!(
        data.fields["value"].kind,
        Some(Kind::ListValue(_))
    ));
    let event = run(r#"{"action":"api-key:revoke","payload":"key_1"}"#).unwrap();
    assert_eq!(
        event.data.unwrap().fields["value"].kind,
        Some(Kind::StringValue("key_1".into()))
    );
    assert_eq!(run(r#"{"action":"api-key:revoke"}"#).unwrap().data, None);
}

#[test]
fn current_format_events() {
    let event = run(FIXTURES[4].1).unwrap();
    assert_eq!(event.provider_event_type, "customer.updated");
    assert_eq!(
        event.occurred_at,
        Some(event::timestamp(context().received_at))
    );
    assert!(
        event
            .previous_data
            .as_ref()
            .unwrap()
            .fields
            .contains_key("email")
    );
    let detail = detail(&event);
    assert_eq!(detail.format, AbowireFormat::Current as i32);
    assert_eq!(detail.event_source, "com.abowire.billing");
    assert_eq!(detail.account_id, "acc_1Qz7Ls4MpX");
    assert_eq!(detail.is_production, Some(true));
    assert_eq!(detail.webhook_id, "");

    let event = run(
        r#"{"event":"customerGroup.memberAdded","payload":{"id":12,"extra":true},"brandNew":1}"#,
    )
    .unwrap();
    assert_eq!(event.r#type, "customer_group.member_added");
    assert_eq!(event.subject, Some(reference("customer_group", "12")));
    assert_eq!(self::detail(&event).is_production, None);
    assert!(event.data.unwrap().fields.contains_key("extra"));
}

#[test]
fn malformed_bodies_name_the_field_and_the_reason() {
    for (body, message) in [
        (
            r#"{"source":"com.abowire.billing","payload":{}}"#,
            "field `event`: required (neither v1 `action`/`eventArn` nor current `event` present)",
        ),
        (
            r#"{"event":"ping"}"#,
            r#"field `event`: expected "<resource>.<action>", found "ping""#,
        ),
        (
            r#"{"event":7}"#,
            "field `event`: expected a string, found a number",
        ),
        (
            r#"{"event":"customer.created","isProduction":"yes"}"#,
            "field `isProduction`: expected a boolean, found a string",
        ),
        (
            r#"{"event":"customer.created","payload":{"id":{}}}"#,
            "field `payload.id`: expected a string or a number, found an object",
        ),
        (
            r#"{"event":"customer.created","previousPayload":null,"accountId":1}"#,
            "field `accountId`: expected a string, found a number",
        ),
        (
            r#"{"action":"create","eventArn":"revoke"}"#,
            r#"field `action`: expected a `resource:verb` event name in `action`, `component` + `action` or `eventArn`, found action "create", component "", eventArn "revoke""#,
        ),
        (
            r#"{"action":"api-key:"}"#,
            r#"field `action`: expected a `resource:verb` event name in `action`, `component` + `action` or `eventArn`, found action "api-key:", component "", eventArn """#,
        ),
        (
            r#"{"action":["a:create"]}"#,
            "field `action`: expected a string, found an array",
        ),
    ] {
        assert_eq!(run(body).unwrap_err().to_string(), message, "{body}");
    }
}

#[test]
fn urls_never_keep_their_secrets() {
    let body = r#"{"action":"api-key:revoke","payload":{"id":"x1"},
        "origin":"https://bot:hunter2@app.abowire.com/hooks?sig=abc#top",
        "destination":"https://hooks.example.com/webhooks/abowire?token=dev-abowire-token&v=2&flag"}"#;
    let event = run(body).unwrap();
    let detail = detail(&event);
    assert_eq!(
        detail.destination,
        "https://hooks.example.com/webhooks/abowire?token=REDACTED&v=REDACTED&flag"
    );
    assert_eq!(
        detail.origin,
        "https://REDACTED@app.abowire.com/hooks?sig=REDACTED#top"
    );
    let stored = format!("{event:?}");
    assert!(!stored.contains("dev-abowire-token") && !stored.contains("hunter2"));
    // Plain URLs and text pass through.
    assert_eq!(
        redact_url("https://app.abowire.com"),
        "https://app.abowire.com"
    );
    assert_eq!(redact_url("d"), "d");
    // An empty value has nothing to hide and stays empty.
    assert_eq!(
        redact_url("https://h.example/p?a=&b=1"),
        "https://h.example/p?a=&b=REDACTED"
    );
}

#[test]
fn a_timestamped_v1_delivery_is_identified_by_its_fingerprint_and_the_rest_by_their_resource() {
    let identity = |body: &str| normalize(parse(body), &context()).unwrap().identity;
    let timestamped = v1_body(r#""action":"api-key:revoke","timestamp":"2025-03-04T10:15:30Z""#);
    assert_eq!(identity(&timestamped), Identity::Fingerprint);
    let untimed = v1_body(r#""action":"api-key:revoke""#);
    assert_eq!(
        identity(&untimed),
        Identity::LatestState(EntityKey::new("resource").part("api_key").part("x1"))
    );
    let current = r#"{"event":"customer.updated","payload":{"id":"cus_1"}}"#;
    assert_eq!(
        identity(current),
        Identity::LatestState(EntityKey::new("resource").part("customer").part("cus_1"))
    );
    let nameless = r#"{"event":"report.ready","payload":{"rows":3}}"#;
    assert_eq!(
        identity(nameless),
        Identity::LatestState(EntityKey::new("type").part("report.ready"))
    );
}

#[test]
fn payloads_that_one_double_cannot_tell_apart_have_different_ids() {
    let body = r#"{"event":"invoice.paid","payload":{"id":"inv_1","cents":9007199254740993}}"#;
    let other = body.replace("993", "992");
    let id = |body: &str, text: &'static str| {
        let context = Context {
            payload: crate::providers::PayloadText {
                data: Some(text),
                previous: None,
            },
            ..context()
        };
        normalize(parse(body), &context).unwrap().event.id
    };
    assert_ne!(
        id(body, r#"{"id":"inv_1","cents":9007199254740993}"#),
        id(&other, r#"{"id":"inv_1","cents":9007199254740992}"#)
    );
}

#[test]
fn unknown_envelope_fields_are_kept_in_both_formats() {
    let keys = |event: &Event| {
        detail(event)
            .extensions
            .as_ref()
            .map(|extensions| extensions.fields.keys().cloned().collect::<Vec<_>>())
    };
    let current = run(r#"{"event":"customer.created","payload":{"id":"c1"},"brandNew":1}"#);
    assert_eq!(keys(&current.unwrap()), Some(vec!["brandNew".to_owned()]));
    let v1 = run(&v1_body(r#""action":"api-key:revoke","traceId":"t1""#));
    assert_eq!(keys(&v1.unwrap()), Some(vec!["traceId".to_owned()]));
    // None at all: unset, not an empty object.
    let plain = run(r#"{"event":"customer.created","payload":{"id":"c1"}}"#);
    assert_eq!(keys(&plain.unwrap()), None);
}

#[test]
fn a_current_array_payload_relates_its_elements() {
    let event =
        run(r#"{"event":"subscription.bulkEnabled","payload":[{"id":"s1"},"s2",{"name":"x"},""]}"#)
            .unwrap();
    assert_eq!(
        event.related,
        vec![
            reference("subscription", "s1"),
            reference("subscription", "s2")
        ]
    );
}
