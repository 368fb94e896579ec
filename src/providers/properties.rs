//! Property tests of every provider's normalize, over any JSON value and over the fixtures with
//! any field replaced by any value: it never panics; an event it returns has a canonical type,
//! normalizes the same way twice and decodes once sent (the invariants
//! [`crate::fuzzing::normalize`] asserts, shared with the fuzz targets); and state dedup keys
//! tell entities apart exactly as the providers' ids do.

use std::path::Path;

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::ProviderKind;
use crate::event::Identity;
use crate::fuzzing;

const PROVIDERS: [ProviderKind; 3] = [
    ProviderKind::Gigs,
    ProviderKind::Abowire,
    ProviderKind::MobileManager,
];

/// Any JSON value: every scalar (strings of any Unicode), nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("json has no nan or infinity", |n| {
            serde_json::Number::from_f64(n).map(Value::Number)
        }),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Every fixture body of one provider, parsed.
fn fixtures(kind: ProviderKind) -> Vec<Map<String, Value>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(kind.name());
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("the provider's fixtures")
        .map(|entry| entry.expect("a fixture").path())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| {
            let text = std::fs::read(path).expect("a readable fixture");
            match serde_json::from_slice(&text) {
                Ok(Value::Object(fields)) => fields,
                other => panic!("{} is not an object: {other:?}", path.display()),
            }
        })
        .collect()
}

/// The fields each provider reads, beyond those in its fixtures.
fn known_fields(kind: ProviderKind) -> &'static [&'static str] {
    match kind {
        ProviderKind::Gigs => &[
            "id",
            "type",
            "data",
            "previousData",
            "time",
            "source",
            "specversion",
            "datacontenttype",
            "project",
            "version",
            "actor",
            "object",
        ],
        ProviderKind::Abowire => &[
            "id",
            "eventArn",
            "component",
            "action",
            "userId",
            "timestamp",
            "origin",
            "destination",
            "payload",
            "source",
            "event",
            "accountId",
            "isProduction",
            "previousPayload",
        ],
        ProviderKind::MobileManager => &[
            "OrderId",
            "State",
            "Type",
            "SimId",
            "PoolId",
            "APNId",
            "AlertId",
            "AlertName",
            "AlertTargetType",
            "AlertTriggerType",
            "AlertStatName",
            "AlertCondition",
            "AlertConditionalValue",
            "AlertTriggerValue",
            "EntityId",
        ],
    }
}

/// A string that often reads as a type name: words with the separators providers use.
fn type_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-zA-Z0-9 ._:%-]{0,24}",
        "[a-zA-Z]{1,8}[.:][a-zA-Z]{1,8}",
        "com\\.gigs\\.\\PC{0,12}\\.\\PC{0,12}",
    ]
}

/// A provider's fixture with one known field replaced by any value, or a type-deciding field by
/// any type-like text.
fn mutated_fixture(kind: ProviderKind) -> impl Strategy<Value = Vec<u8>> {
    let bodies = fixtures(kind);
    let names = known_fields(kind);
    (
        0..bodies.len(),
        0..names.len(),
        prop_oneof![json_value(), type_text().prop_map(Value::String)],
    )
        .prop_map(move |(body, name, value)| {
            let mut fields = bodies[body].clone();
            fields.insert(names[name].to_owned(), value);
            serde_json::to_vec(&Value::Object(fields)).expect("json serializes")
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn normalize_never_panics_on_any_json_value(value in json_value()) {
        let body = serde_json::to_vec(&value).expect("json serializes");
        for kind in PROVIDERS {
            fuzzing::normalize(kind, &body);
        }
    }

    #[test]
    fn normalize_holds_its_invariants_on_mutated_gigs_bodies(
        body in mutated_fixture(ProviderKind::Gigs),
    ) {
        fuzzing::normalize(ProviderKind::Gigs, &body);
    }

    #[test]
    fn normalize_holds_its_invariants_on_mutated_abowire_bodies(
        body in mutated_fixture(ProviderKind::Abowire),
    ) {
        fuzzing::normalize(ProviderKind::Abowire, &body);
    }

    #[test]
    fn normalize_holds_its_invariants_on_mutated_mobile_manager_bodies(
        body in mutated_fixture(ProviderKind::MobileManager),
    ) {
        fuzzing::normalize(ProviderKind::MobileManager, &body);
    }

    /// Two orders are one entity exactly when their ids are equal but for ASCII case (GUIDs).
    #[test]
    fn order_dedup_keys_are_distinct_for_distinct_orders(
        a in "\\PC{1,12}",
        b in prop_oneof!["\\PC{1,12}", "[a-fA-F0-9]{1,4}"],
        state in 0..6u32,
    ) {
        let key = |order_id: &str| {
            state_key(json!({"OrderId": order_id, "State": state}))
        };
        let same = a.eq_ignore_ascii_case(&b);
        prop_assert_eq!(key(&a), key(&a));
        prop_assert_eq!(key(&a) == key(&b), same, "{:?} and {:?}", a, b);
        prop_assert_eq!(key(&a), key(&a.to_ascii_uppercase()));
    }

    /// An alert's state belongs to the alert on its entity: either differing is another entity.
    #[test]
    fn alert_dedup_keys_are_distinct_for_distinct_alerts(
        alert in "[a-z0-9:;-]{1,8}",
        entity in "[a-z0-9:;-]{1,8}",
        other_alert in "[a-z0-9:;-]{1,8}",
        other_entity in "[a-z0-9:;-]{1,8}",
        trigger in prop_oneof![Just("On"), Just("Off")],
    ) {
        let key = |alert: &str, entity: &str| state_key(json!({
            "AlertId": alert,
            "EntityId": entity,
            "AlertTargetType": "SIM",
            "AlertTriggerType": trigger,
        }));
        prop_assert_eq!(key(&alert, &entity), key(&alert, &entity));
        let same = alert == other_alert && entity == other_entity;
        prop_assert_eq!(key(&alert, &entity) == key(&other_alert, &other_entity), same);
    }
}

/// The dedup key of a Mobile Manager body on source `mm`.
fn state_key(body: Value) -> String {
    let verifier =
        crate::verify::Verifier::from_config(&crate::config::VerificationConfig::None, None);
    let raw = crate::webhook::RawWebhook::for_test("/webhooks/mm", &[]);
    let raw = crate::webhook::RawWebhook {
        body: serde_json::to_vec(&body).expect("json serializes"),
        ..raw
    };
    let webhook = raw.verify(&verifier).expect("a `none` source verifies");
    let normalized = ProviderKind::MobileManager
        .normalize("mm", &webhook)
        .expect("a valid Mobile Manager body");
    match normalized.identity {
        Identity::LatestState(key) => key.as_str().to_owned(),
        other => panic!("Mobile Manager events are state: {other:?}"),
    }
}
