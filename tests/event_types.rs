//! Every event type the providers document, over real gRPC against a server on 127.0.0.1:0: each
//! Gigs type, each Abowire v1 event (by every naming route) and the current format, every Mobile
//! Manager order type × state (as numbers and as names) and alerts On/Off for SIMs and pools, each
//! correctly authenticated, normalize to the type, subject and related refs issue 2 specifies.
//!
//! The table is `tests/fixtures/event_types.json`, shared with the providers' unit tests.

mod common;

use common::*;
use hooknorm::proto::v1::{Event, VerifyAndNormalizeRequest, VerifyAndNormalizeResponse};
use serde_json::{Value, json};

/// Sends every request concurrently (so appends are group-committed) and returns the answers in
/// request order, failing with the label of any refused request.
async fn send_all(
    server: &TestServer,
    requests: Vec<(String, VerifyAndNormalizeRequest)>,
) -> Vec<(String, VerifyAndNormalizeResponse)> {
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|(label, request)| {
            let mut client = server.client.clone();
            tokio::spawn(async move {
                let response = client
                    .verify_and_normalize(request)
                    .await
                    .unwrap_or_else(|status| panic!("{label}: {status:?}"))
                    .into_inner();
                (label, response)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("request task"));
    }
    answers
}

fn refs(value: &Value) -> Vec<(String, String)> {
    value
        .as_array()
        .expect("a list of refs")
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().expect("kind").to_owned(),
                r["id"].as_str().expect("id").to_owned(),
            )
        })
        .collect()
}

/// `value` with every number as a float, as a `google.protobuf.Struct` carries them.
fn numbers_as_floats(value: &Value) -> Value {
    match value {
        Value::Number(number) => json!(number.as_f64().expect("finite")),
        Value::Array(items) => items.iter().map(numbers_as_floats).collect(),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| (key.clone(), numbers_as_floats(value)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Asserts type, subject and related against a table row (`type`, `subject`, `related`).
fn assert_normalized(label: &str, event: &Event, want: &Value) {
    assert_eq!(
        event.r#type,
        want["type"].as_str().expect("type"),
        "{label}"
    );
    let subject = event.subject.as_ref().expect("subject");
    assert_eq!(
        (subject.kind.as_str(), subject.id.as_str()),
        (
            want["subject"]["kind"].as_str().expect("kind"),
            want["subject"]["id"].as_str().expect("id")
        ),
        "{label}: subject"
    );
    let related: Vec<(String, String)> = event
        .related
        .iter()
        .map(|r| (r.kind.clone(), r.id.clone()))
        .collect();
    assert_eq!(related, refs(&want["related"]), "{label}: related");
}

#[tokio::test]
async fn every_documented_gigs_type_over_grpc() {
    let server = TestServer::start().await;
    let table = event_types();
    let rows = table["gigs"].as_array().expect("gigs rows");
    assert_eq!(rows.len(), 42, "the 42 documented Gigs types");
    let now = chrono::Utc::now().timestamp();
    let requests = rows
        .iter()
        .enumerate()
        .map(|(n, row)| {
            let body = json!({
                "object": "event",
                "id": format!("evt_types{n:03}"),
                "type": row["event"],
                "data": row["data"],
                "datacontenttype": "application/json",
                "project": "gigs",
                "source": "https://api.gigs.com",
                "specversion": "1.0",
                "time": "2024-12-20T10:11:12.0Z",
                "version": "2025-05-22",
            });
            let body = serde_json::to_vec(&body).expect("body");
            let label = row["event"].as_str().expect("event").to_owned();
            (
                label,
                gigs_request(&body, GIGS_SECRET, &format!("msg_types{n}"), now),
            )
        })
        .collect();
    let answers = send_all(&server, requests).await;
    for ((label, response), (n, row)) in answers.iter().zip(rows.iter().enumerate()) {
        assert!(!response.duplicate, "{label}");
        let event = response.event.as_ref().expect("event");
        assert_normalized(label, event, row);
        assert_eq!(event.provider_event_type, *label);
        assert_eq!(event.provider_event_id, format!("evt_types{n:03}"));
        assert_eq!(event.id, format!("gigs:evt_types{n:03}"));
        assert!(event.sequence > 0, "{label}: stored");
        let json = event_json(event);
        assert_eq!(json["occurredAt"], "2024-12-20T10:11:12Z", "{label}");
        assert_eq!(json["gigs"]["apiVersion"], "2025-05-22", "{label}");
        assert_eq!(
            json["data"],
            numbers_as_floats(&row["data"]),
            "{label}: data kept whole"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn every_documented_abowire_event_over_grpc() {
    let server = TestServer::start().await;
    let table = event_types();
    let v1 = table["abowire_v1"].as_array().expect("v1 rows");
    assert_eq!(v1.len(), 19, "the 19 documented Abowire v1 events");
    let mut requests = Vec::new();
    let mut wants = Vec::new();
    for row in v1 {
        let name = row["event"].as_str().expect("event");
        let (component, action) = name.split_once(':').expect("component:action");
        // The event name as each route the format allows: `action` alone, `component` +
        // `action`, and the end of `eventArn`.
        for (route, naming) in [
            ("action", json!({"action": name, "component": "billing"})),
            (
                "component+action",
                json!({"component": component, "action": action}),
            ),
            (
                "eventArn",
                json!({"eventArn": format!("arn:abowire:billing:eu-central-1:{name}")}),
            ),
        ] {
            let mut body = json!({
                "id": "5f0c9a3e-2b7d-4c81-9e46-1d8f3a6b7c20",
                "userId": "usr_types",
                "timestamp": "2025-03-04T10:15:30Z",
                "origin": "https://app.abowire.com",
                "destination": "https://hooks.example.com/abowire",
                "payload": row["payload"],
            });
            body.as_object_mut()
                .expect("object")
                .extend(naming.as_object().expect("object").clone());
            let body = serde_json::to_vec(&body).expect("body");
            requests.push((
                format!("{name} by {route}"),
                token_request("abowire", "token", ABOWIRE_TOKEN, &body),
            ));
            wants.push(row);
        }
    }
    let current = table["abowire_current"].as_array().expect("current rows");
    for row in current {
        let mut body = json!({
            "source": row["source"],
            "event": row["event"],
            "accountId": "acc_types",
            "isProduction": true,
            "payload": row["payload"],
        });
        if let Some(previous) = row.get("previousPayload") {
            body["previousPayload"] = previous.clone();
        }
        let body = serde_json::to_vec(&body).expect("body");
        requests.push((
            format!("current {}", row["event"]),
            token_request("abowire", "token", ABOWIRE_TOKEN, &body),
        ));
        wants.push(row);
    }
    let answers = send_all(&server, requests).await;
    let mut ids = std::collections::HashSet::new();
    for ((label, response), row) in answers.iter().zip(wants) {
        assert!(!response.duplicate, "{label}");
        let event = response.event.as_ref().expect("event");
        assert_normalized(label, event, row);
        assert_eq!(event.provider_event_type, row["event"], "{label}");
        // Neither format carries a trustworthy per-event id.
        assert_eq!(event.provider_event_id, "", "{label}");
        assert!(
            ids.insert(event.id.clone()),
            "{label}: id {} reused",
            event.id
        );
        let json = event_json(event);
        if label.starts_with("current ") {
            assert_eq!(
                json["abowire"]["format"], "ABOWIRE_FORMAT_CURRENT",
                "{label}"
            );
            assert_eq!(json["abowire"]["accountId"], "acc_types", "{label}");
            assert_eq!(
                json.get("previousData").unwrap_or(&Value::Null),
                &row["previous_data"],
                "{label}: previous_data"
            );
        } else {
            assert_eq!(json["abowire"]["format"], "ABOWIRE_FORMAT_V1", "{label}");
            assert_eq!(json["abowire"]["userId"], "usr_types", "{label}");
            assert_eq!(json["occurredAt"], "2025-03-04T10:15:30Z", "{label}");
        }
    }
    server.shutdown().await;
}

/// A GUID unique to `(a, b)`.
fn guid(tag: u32, a: usize, b: usize) -> String {
    format!("{tag:08x}-{a:04x}-4{b:03x}-8000-00000000a11d")
}

#[tokio::test]
async fn every_mobile_manager_order_type_and_state_over_grpc() {
    let server = TestServer::start().await;
    let table = event_types();
    let types = table["mobile_manager"]["order_types"]
        .as_array()
        .expect("types");
    let states = table["mobile_manager"]["order_states"]
        .as_array()
        .expect("states");
    assert_eq!((types.len(), states.len()), (15, 6));
    // By number (stored), then the same orders by name (dry run: normalized, not stored).
    let mut rows = Vec::new();
    for (t, order_type) in types.iter().enumerate() {
        for (s, state) in states.iter().enumerate() {
            rows.push((t, order_type, s, state));
        }
    }
    let body = |t: usize, s: usize, type_value: &Value, state_value: &Value| {
        serde_json::to_vec(&json!({
            "OrderId": guid(0x0d0e, t, s),
            "State": state_value,
            "Type": type_value,
            "SimId": guid(0x5111, t, s),
            "PoolId": guid(0x9001, t, s),
            "APNId": guid(0xa9a9, t, s),
        }))
        .expect("body")
    };
    let mut requests = Vec::new();
    for &(t, order_type, s, state) in &rows {
        let label = format!("{} {}", order_type["name"], state["name"]);
        let by_number = body(t, s, &order_type["number"], &state["number"]);
        requests.push((
            format!("{label} by number"),
            token_request("mm", "key", MM_TOKEN, &by_number),
        ));
        let by_name = body(t, s, &order_type["name"], &state["name"]);
        let mut request = token_request("mm", "key", MM_TOKEN, &by_name);
        request.dry_run = true;
        requests.push((format!("{label} by name"), request));
    }
    let answers = send_all(&server, requests).await;
    for (pair, &(t, order_type, s, state)) in answers.chunks(2).zip(&rows) {
        let [(number_label, by_number), (name_label, by_name)] = pair else {
            unreachable!("answers come in pairs")
        };
        assert!(!by_number.duplicate, "{number_label}");
        let stored = by_number.event.as_ref().expect("event");
        assert!(stored.sequence > 0, "{number_label}: stored");
        let dry = by_name.event.as_ref().expect("event");
        assert_eq!(dry.sequence, 0, "{name_label}: dry run stores nothing");
        assert_eq!(
            dry.id, stored.id,
            "{name_label}: a name is the same order as its number"
        );
        let want = json!({
            "type": state["type"],
            "subject": {"kind": "order", "id": guid(0x0d0e, t, s)},
            "related": [
                {"kind": "sim", "id": guid(0x5111, t, s)},
                {"kind": "pool", "id": guid(0x9001, t, s)},
                {"kind": "apn", "id": guid(0xa9a9, t, s)},
            ],
        });
        for (label, event) in [(number_label, stored), (name_label, dry)] {
            assert_normalized(label, event, &want);
            assert_eq!(event.provider_event_type, "orders_update", "{label}");
            let json = event_json(event);
            let detail = &json["mobileManagerOrder"];
            assert_eq!(detail["type"], order_type["enum"], "{label}");
            assert_eq!(detail["typeName"], order_type["name"], "{label}");
            assert_eq!(detail["state"], state["enum"], "{label}");
            assert_eq!(detail["stateName"], state["name"], "{label}");
            assert_eq!(json["occurredAt"], json["receivedAt"], "{label}");
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn mobile_manager_alerts_on_and_off_over_grpc() {
    let server = TestServer::start().await;
    let table = event_types();
    let targets = table["mobile_manager"]["alert_targets"]
        .as_array()
        .expect("targets");
    let triggers = table["mobile_manager"]["alert_triggers"]
        .as_array()
        .expect("triggers");
    let mut rows = Vec::new();
    let mut requests = Vec::new();
    for (a, target) in targets.iter().enumerate() {
        for (b, trigger) in triggers.iter().enumerate() {
            // Thresholds as strings (as documented) for one trigger, numbers for the other.
            let (conditional, observed) = if b == 0 {
                (json!("75"), json!("85"))
            } else {
                (json!(75), json!(60.5))
            };
            let body = serde_json::to_vec(&json!({
                "AlertName": "types",
                "AlertId": guid(0xa1e7, a, b),
                "AlertTargetType": target["name"],
                "AlertTriggerType": trigger["name"],
                "AlertStatName": "SIM.%USED",
                "AlertConditionalValue": conditional,
                "AlertCondition": "GreaterThan",
                "AlertTriggerValue": observed,
                "EntityId": guid(0xe717, a, b),
            }))
            .expect("body");
            requests.push((
                format!("{} {}", target["name"], trigger["name"]),
                token_request("mm", "key", MM_TOKEN, &body),
            ));
            rows.push((a, target, b, trigger));
        }
    }
    let answers = send_all(&server, requests).await;
    for ((label, response), &(a, target, b, trigger)) in answers.iter().zip(&rows) {
        assert!(!response.duplicate, "{label}");
        let event = response.event.as_ref().expect("event");
        let want = json!({
            "type": trigger["type"],
            "subject": {"kind": target["kind"], "id": guid(0xe717, a, b)},
            "related": [{"kind": "alert", "id": guid(0xa1e7, a, b)}],
        });
        assert_normalized(label, event, &want);
        assert_eq!(event.provider_event_type, "alert", "{label}");
        let json = event_json(event);
        let detail = &json["mobileManagerAlert"];
        assert_eq!(detail["target"], target["enum"], "{label}");
        assert_eq!(detail["trigger"], trigger["enum"], "{label}");
        assert_eq!(detail["statName"], "SIM.%USED", "{label}");
        assert_eq!(detail["condition"], "GreaterThan", "{label}");
        assert_eq!(detail["conditionalValue"], 75.0, "{label}");
        let observed = if b == 0 { 85.0 } else { 60.5 };
        assert_eq!(detail["triggerValue"], observed, "{label}");
    }
    server.shutdown().await;
}
