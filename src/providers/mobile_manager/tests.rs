//! Unit tests of the mobile_manager normalizer, including its fixtures under `tests/fixtures/mobile_manager/`.

use super::*;
use crate::proto::v1::{MobileManagerOrderState, MobileManagerOrderType};
use crate::providers::fields::testing::{assert_fixtures, context, event_types, parse, reference};

const ORDER: &str = "7d5b2f8e-3c41-4a9b-b1e2-6f0a9c8d4e21";
const SIM: &str = "b3e1c7a2-9d4f-4e6b-8a15-2c7f9e0d1b34";
const ZERO: &str = "00000000-0000-0000-0000-000000000000";

fn run(body: &str) -> Result<Event, NormalizeError> {
    normalize(parse(body), &context()).map(|normalized| normalized.event)
}

fn order_body(state: &str, order_type: &str) -> String {
    format!(
        r#"{{"OrderId":"{ORDER}","State":{state},"Type":{order_type},"SimId":"{SIM}","PoolId":"{ZERO}","APNId":"{ZERO}"}}"#
    )
}

fn order_detail(event: &Event) -> &MobileManagerOrderDetail {
    match &event.detail {
        Some(Detail::MobileManagerOrder(detail)) => detail,
        other => panic!("not an order detail: {other:?}"),
    }
}

fn alert_detail(event: &Event) -> &MobileManagerAlertDetail {
    match &event.detail {
        Some(Detail::MobileManagerAlert(detail)) => detail,
        other => panic!("not an alert detail: {other:?}"),
    }
}

const FIXTURES: &[(&str, &str)] = &[
    (
        "mobile_manager/order.complete.json",
        include_str!("../../../tests/fixtures/mobile_manager/order.complete.json"),
    ),
    (
        "mobile_manager/order.pending.json",
        include_str!("../../../tests/fixtures/mobile_manager/order.pending.json"),
    ),
    (
        "mobile_manager/alert.on.json",
        include_str!("../../../tests/fixtures/mobile_manager/alert.on.json"),
    ),
    (
        "mobile_manager/alert.off.json",
        include_str!("../../../tests/fixtures/mobile_manager/alert.off.json"),
    ),
    (
        "mobile_manager/doc.orders-update.json",
        include_str!("../../../tests/fixtures/mobile_manager/doc.orders-update.json"),
    ),
    (
        "mobile_manager/doc.alert.json",
        include_str!("../../../tests/fixtures/mobile_manager/doc.alert.json"),
    ),
];

#[test]
fn every_fixture_matches_expected_json() {
    assert_fixtures("mobile_manager", FIXTURES, run);
}

#[test]
fn all_order_types_by_number_numeric_text_and_name() {
    for (value, name) in ORDER_TYPES.iter().enumerate() {
        let proto = MobileManagerOrderType::try_from(value as i32 + 1).unwrap();
        assert_eq!(
            proto.as_str_name(),
            format!(
                "MOBILE_MANAGER_ORDER_TYPE_{}",
                event::snake_case(name).to_uppercase()
            ),
            "enum value of {name}"
        );
        let by_number = run(&order_body("1", &value.to_string())).unwrap();
        for sent in [
            format!("\"{value}\""),
            format!("\"{name}\""),
            format!("\"{}\"", name.to_lowercase()),
        ] {
            let event = run(&order_body("1", &sent)).unwrap();
            assert_eq!(order_detail(&event).r#type, proto as i32, "{sent}");
            assert_eq!(order_detail(&event).type_name, *name, "{sent}");
            assert_eq!(
                event.id, by_number.id,
                "{sent}: same identity as the number"
            );
        }
    }
}

#[test]
fn the_shared_table_lists_every_documented_type_and_state() {
    let table = event_types();
    let mm = &table["mobile_manager"];
    let names = |key: &str, field: &str| -> Vec<String> {
        mm[key]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(number, row)| {
                assert_eq!(row["number"], number, "{key} numbered in order");
                row[field].as_str().unwrap().to_owned()
            })
            .collect()
    };
    assert_eq!(names("order_types", "name"), ORDER_TYPES);
    assert_eq!(names("order_states", "name"), ORDER_STATES);
    let actions: Vec<String> = ORDER_ACTIONS.iter().map(|a| format!("order.{a}")).collect();
    assert_eq!(names("order_states", "type"), actions);
    for (number, name) in names("order_types", "enum").iter().enumerate() {
        let proto = MobileManagerOrderType::try_from(number as i32 + 1).unwrap();
        assert_eq!(proto.as_str_name(), name);
    }
    for (number, name) in names("order_states", "enum").iter().enumerate() {
        let proto = MobileManagerOrderState::try_from(number as i32 + 1).unwrap();
        assert_eq!(proto.as_str_name(), name);
    }
}

#[test]
fn all_order_states_by_number_and_name() {
    for (value, (name, canonical)) in ORDER_STATES.iter().zip(ORDER_ACTIONS).enumerate() {
        let proto = MobileManagerOrderState::try_from(value as i32 + 1).unwrap();
        assert_eq!(
            proto.as_str_name(),
            format!("MOBILE_MANAGER_ORDER_STATE_{}", name.to_uppercase())
        );
        let by_number = run(&order_body(&value.to_string(), "0")).unwrap();
        let by_name = run(&order_body(
            &format!("\"{}\"", name.to_uppercase()),
            "\"Activate\"",
        ))
        .unwrap();
        for event in [&by_number, &by_name] {
            assert_eq!(event.r#type, format!("order.{canonical}"));
            assert_eq!(order_detail(event).state, proto as i32);
            assert_eq!(order_detail(event).state_name, *name);
        }
        assert_eq!(by_number.id, by_name.id);
        assert!(by_number.id.starts_with("mmo_"));
    }
}

#[test]
fn order_identity_envelope_and_zero_guids() {
    let event = run(FIXTURES[0].1).unwrap();
    assert_eq!(event.provider_event_type, "orders_update");
    assert_eq!(event.provider_event_id, "");
    assert_eq!(
        event.occurred_at,
        Some(event::timestamp(context().received_at))
    );
    assert_eq!(event.related, vec![reference("sim", SIM)]);
    let detail = order_detail(&event);
    assert_eq!(
        (detail.order_id.as_str(), detail.sim_id.as_str()),
        (ORDER, SIM)
    );
    assert_eq!((detail.pool_id.as_str(), detail.apn_id.as_str()), ("", ""));
    assert!(event.data.as_ref().unwrap().fields.contains_key("APNId"));
    // Upper-case GUIDs are the same order; another state is another event.
    assert_eq!(
        run(&order_body("1", "0")
            .to_uppercase()
            .replace("ORDERID", "OrderId")
            .replace("STATE", "State")
            .replace("TYPE", "Type")
            .replace("SIMID", "SimId")
            .replace("POOLID", "PoolId")
            .replace("APNID", "APNId"))
        .unwrap()
        .id,
        event.id
    );
    assert_ne!(run(&order_body("2", "0")).unwrap().id, event.id);
    // Unknown fields are kept; missing GUID fields are simply absent.
    let event = run(&format!(
        r#"{{"OrderId":"{ORDER}","State":0,"Priority":"high"}}"#
    ))
    .unwrap();
    assert_eq!(event.related, vec![]);
    assert_eq!(order_detail(&event).r#type, 0);
    assert!(event.data.unwrap().fields.contains_key("Priority"));
}

#[test]
fn unknown_types_and_states_pass_through() {
    let event = run(&order_body("9", "99")).unwrap();
    assert_eq!(event.r#type, "order.state_9");
    let detail = order_detail(&event);
    assert_eq!((detail.state, detail.state_name.as_str()), (0, "9"));
    assert_eq!((detail.r#type, detail.type_name.as_str()), (0, "99"));
    assert_eq!(run(&order_body("\"9\"", "99")).unwrap().id, event.id);
    // The first numbers past the tables are unknown too.
    let event = run(&order_body("6", "15")).unwrap();
    assert_eq!(event.r#type, "order.state_6");
    let detail = order_detail(&event);
    assert_eq!((detail.state, detail.r#type), (0, 0));

    let event = run(&order_body("\"OnHold\"", "\"Teleport\"")).unwrap();
    assert_eq!(event.r#type, "order.on_hold");
    let detail = order_detail(&event);
    assert_eq!((detail.state, detail.state_name.as_str()), (0, "OnHold"));
    assert_eq!((detail.r#type, detail.type_name.as_str()), (0, "Teleport"));
}

fn alert_body(target: &str, trigger: &str, conditional: &str, observed: &str) -> String {
    format!(
        r#"{{"AlertName":"Alert Name 1","AlertId":"3f7a2c9e-8b1d-4e65-a2f4-6c0d9e3b7a18","AlertTargetType":"{target}",
            "AlertTriggerType":"{trigger}","AlertStatName":"SIM.%USED","AlertConditionalValue":{conditional},
            "AlertCondition":"GreaterThan","AlertTriggerValue":{observed},"EntityId":"{SIM}"}}"#
    )
}

#[test]
fn alerts_on_and_off_for_sims_and_pools() {
    for (target, trigger, kind, canonical, target_enum, trigger_enum) in [
        (
            "SIM",
            "On",
            "sim",
            "alert.triggered",
            MobileManagerAlertTarget::Sim,
            MobileManagerAlertTrigger::On,
        ),
        (
            "SIM",
            "Off",
            "sim",
            "alert.cleared",
            MobileManagerAlertTarget::Sim,
            MobileManagerAlertTrigger::Off,
        ),
        (
            "Pool",
            "ON",
            "pool",
            "alert.triggered",
            MobileManagerAlertTarget::Pool,
            MobileManagerAlertTrigger::On,
        ),
        (
            "pool",
            "off",
            "pool",
            "alert.cleared",
            MobileManagerAlertTarget::Pool,
            MobileManagerAlertTrigger::Off,
        ),
        (
            "Account",
            "Snoozed",
            "account",
            "alert.snoozed",
            MobileManagerAlertTarget::Unspecified,
            MobileManagerAlertTrigger::Unspecified,
        ),
    ] {
        let event = run(&alert_body(target, trigger, "\"75\"", "\"85\"")).unwrap();
        assert_eq!(event.r#type, canonical, "{target} {trigger}");
        assert_eq!(event.provider_event_type, "alert");
        assert_eq!(event.subject, Some(reference(kind, SIM)));
        assert_eq!(
            event.related,
            vec![reference("alert", "3f7a2c9e-8b1d-4e65-a2f4-6c0d9e3b7a18")]
        );
        assert!(event.id.starts_with("mma_"));
        let detail = alert_detail(&event);
        assert_eq!(
            (detail.target, detail.target_name.as_str()),
            (target_enum as i32, target)
        );
        assert_eq!(
            (detail.trigger, detail.trigger_name.as_str()),
            (trigger_enum as i32, trigger)
        );
        assert_eq!(
            (detail.stat_name.as_str(), detail.condition.as_str()),
            ("SIM.%USED", "GreaterThan")
        );
        assert_eq!(detail.alert_name, "Alert Name 1");
        assert_eq!(
            (detail.conditional_value, detail.trigger_value),
            (Some(75.0), Some(85.0))
        );
    }
}

#[test]
fn alert_thresholds_and_identity() {
    let strings = run(&alert_body("SIM", "On", "\"75\"", "\"85\"")).unwrap();
    let numbers = run(&alert_body("SIM", "On", "75", "85")).unwrap();
    assert_eq!(alert_detail(&numbers).trigger_value, Some(85.0));
    assert_eq!(
        strings.id, numbers.id,
        "a threshold as text or number is the same alert"
    );
    assert_ne!(
        run(&alert_body("SIM", "Off", "75", "85")).unwrap().id,
        strings.id
    );
    // Identity is alert, entity and trigger: a redelivery with another observed value is the
    // same alert turning on (the log dedupes it against the latest state).
    assert_eq!(
        run(&alert_body("SIM", "On", "75", "90")).unwrap().id,
        strings.id
    );
    let odd = run(&alert_body("SIM", "On", "\"75%\"", "null")).unwrap();
    assert_eq!(
        (
            alert_detail(&odd).conditional_value,
            alert_detail(&odd).trigger_value
        ),
        (None, None)
    );
    let odd = run(&alert_body("SIM", "On", "{}", "true")).unwrap();
    assert_eq!(
        (
            alert_detail(&odd).conditional_value,
            alert_detail(&odd).trigger_value
        ),
        (None, None)
    );
    // Alerts carry no time (the receive time stands in), and the whole body is the data.
    assert_eq!(
        numbers.occurred_at,
        Some(event::timestamp(context().received_at))
    );
    assert!(
        numbers
            .data
            .unwrap()
            .fields
            .contains_key("AlertTriggerValue")
    );
    // The documented sample uses all-zero GUIDs: the alert reference is left out.
    let sample = alert_body("SIM", "On", "\"75\"", "\"85\"")
        .replace("3f7a2c9e-8b1d-4e65-a2f4-6c0d9e3b7a18", ZERO);
    assert_eq!(run(&sample).unwrap().related, vec![]);
}

#[test]
fn malformed_bodies_name_the_field_and_the_reason() {
    for (body, message) in [
        (r#"{"State":1}"#.to_owned(), "field `OrderId`: required (neither an order update `OrderId` nor an alert `AlertId`/`AlertTriggerType` present)"),
        (r#"{"OrderId":7,"State":1}"#.to_owned(), "field `OrderId`: expected a string, found a number"),
        (format!(r#"{{"OrderId":"{ORDER}"}}"#), "field `State`: required"),
        (format!(r#"{{"OrderId":"{ORDER}","State":true}}"#), "field `State`: expected a whole number 0 or greater or a name, found a boolean"),
        (format!(r#"{{"OrderId":"{ORDER}","State":-1}}"#), "field `State`: expected a whole number 0 or greater or a name, found -1"),
        (format!(r#"{{"OrderId":"{ORDER}","State":1.5}}"#), "field `State`: expected a whole number 0 or greater or a name, found 1.5"),
        (format!(r#"{{"OrderId":"{ORDER}","State":" "}}"#), "field `State`: must not be empty"),
        (format!(r#"{{"OrderId":"{ORDER}","State":1,"Type":[]}}"#), "field `Type`: expected a whole number 0 or greater or a name, found an array"),
        (format!(r#"{{"OrderId":"{ORDER}","State":1,"SimId":5}}"#), "field `SimId`: expected a string, found a number"),
        (r#"{"AlertId":"a","AlertTriggerType":"On","EntityId":"e"}"#.to_owned(), "field `AlertTargetType`: required"),
        (r#"{"AlertId":"a","AlertTargetType":"SIM","AlertTriggerType":"On"}"#.to_owned(), "field `EntityId`: required"),
        (r#"{"AlertTriggerType":"On","AlertTargetType":"SIM","EntityId":"e"}"#.to_owned(), "field `AlertId`: required"),
        (r#"{"AlertId":"a","AlertTargetType":"SIM","AlertTriggerType":"%%","EntityId":"e"}"#.to_owned(), r#"field `AlertTriggerType`: expected a trigger name, found "%%""#),
        (r#"{"AlertId":"a","AlertTargetType":"SIM","AlertTriggerType":"On","EntityId":"e","AlertName":1}"#.to_owned(), "field `AlertName`: expected a string, found a number"),
    ] {
        assert_eq!(run(&body).unwrap_err().to_string(), message, "{body}");
    }
}

#[test]
fn orders_and_alerts_are_states_of_their_order_or_alert_on_its_entity() {
    let identity = |body: &str| normalize(parse(body), &context()).unwrap().identity;
    let order = order_body("1", "0");
    assert_eq!(
        identity(&order),
        identity(&order.replace(ORDER, &ORDER.to_ascii_uppercase()))
    );
    assert_eq!(
        identity(&order),
        Identity::LatestState(EntityKey::new("order").part(ORDER))
    );
    let alert = alert_body("SIM", "On", "80", "85");
    let Identity::LatestState(key) = identity(&alert) else {
        panic!("an alert is a state")
    };
    assert!(key.as_str().starts_with("5:alert;"), "{key:?}");
    assert_eq!(
        identity(&alert),
        identity(&alert_body("SIM", "Off", "80", "85"))
    );
}
