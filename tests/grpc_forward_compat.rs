//! Forward compatibility over real gRPC against a server on 127.0.0.1:0: event types, verbs,
//! stat names, conditions and envelope fields this version does not know still normalize by
//! the documented rules, and nothing the provider sent is dropped.

mod common;

use common::*;
use serde_json::json;

/// Normalizes `request` (which must be accepted) and returns the event as proto3 JSON.
async fn normalize(
    server: &mut TestServer,
    request: hooknorm::proto::v1::VerifyAndNormalizeRequest,
    what: &str,
) -> serde_json::Value {
    let event = server
        .client
        .verify_and_normalize(request)
        .await
        .unwrap_or_else(|status| panic!("{what}: {status:?}"))
        .into_inner()
        .event
        .unwrap_or_else(|| panic!("{what}: no event"));
    event_json(&event)
}

#[tokio::test]
async fn unknown_gigs_types_and_envelope_fields_are_kept() {
    let mut server = TestServer::start().await;
    let body = json!({
        "object": "event",
        "id": "evt_0SNlurA049MEWVfuture01",
        "type": "com.gigs.simCard.teleportedAway",
        "time": "2027-01-01T00:00:00.123Z",
        "specversion": "1.0",
        "source": "https://api.gigs.com",
        "project": "gigs",
        "version": "2027-01-01",
        "datacontenttype": "application/json",
        // CloudEvents optional and extension attributes, and a field Gigs might add.
        "subject": "sub_0SNlurA049MEWV4OpCwsNyC9Kn2d",
        "dataschema": "https://schemas.gigs.com/sim-card/v2",
        "partitionkey": "sim_0SNlurA049MEWV1BAAmWZULA4lf6",
        "deliveryAttempt": 3,
        "routing": {"region": "eu", "hops": [1, 2]},
        "data": {
            "object": "simCard",
            "id": "scd_0SNlurA049MEWV",
            "sim": "sim_0SNlurA049MEWV1BAAmWZULA4lf6",
            "teleportDestination": "mars",
        },
    });
    let body = serde_json::to_vec(&body).expect("json");
    let request = gigs_request(
        &body,
        GIGS_SECRET,
        "msg_future",
        chrono::Utc::now().timestamp(),
    );
    let event = normalize(&mut server, request, "gigs future").await;
    assert_eq!(event["type"], "sim_card.teleported_away", "{event}");
    assert_eq!(
        event["providerEventType"],
        "com.gigs.simCard.teleportedAway"
    );
    assert_eq!(
        event["subject"],
        json!({"kind": "sim_card", "id": "scd_0SNlurA049MEWV"})
    );
    assert_eq!(
        event["related"],
        json!([{"kind": "sim", "id": "sim_0SNlurA049MEWV1BAAmWZULA4lf6"}])
    );
    assert_eq!(event["data"]["teleportDestination"], "mars", "{event}");
    assert_eq!(
        event["gigs"]["extensions"],
        json!({
            "subject": "sub_0SNlurA049MEWV4OpCwsNyC9Kn2d",
            "dataschema": "https://schemas.gigs.com/sim-card/v2",
            "partitionkey": "sim_0SNlurA049MEWV1BAAmWZULA4lf6",
            "deliveryAttempt": 3.0,
            "routing": {"region": "eu", "hops": [1.0, 2.0]},
        }),
        "{event}"
    );
    // Known envelope fields stay where they were and are not repeated.
    assert_eq!(event["gigs"]["apiVersion"], "2027-01-01");
    assert!(event["gigs"]["extensions"].get("object").is_none());

    // A documented event with nothing extra has no extensions at all.
    let body = std::fs::read(fixtures_dir().join("gigs/sim.retired.json")).expect("fixture");
    let event = normalize(
        &mut server,
        fixture_request("gigs/sim.retired.json", &body),
        "gigs fixture",
    )
    .await;
    assert!(event["gigs"].get("extensions").is_none(), "{event}");
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_abowire_verbs_events_and_envelope_fields_are_kept() {
    let mut server = TestServer::start().await;
    // README's rule: verbs outside the documented list are kept as given, snake_cased.
    for (action, want_type) in [
        ("invoice:delete", "invoice.delete"),
        ("credit-note:mark-paid", "credit_note.mark_paid"),
        ("usageRecord:bulkArchive", "usage_record.bulk_archive"),
        // Documented verbs still take their past tense, however they are cased.
        ("api-key:bulkEnable", "api_key.bulk_enabled"),
    ] {
        let body = json!({
            "id": "5f0c9a3e-2b7d-4c81-9e46-1d8f3a6b7c21",
            "eventArn": format!("arn:abowire:billing:eu-central-1:{action}"),
            "component": "billing",
            "action": action,
            "userId": "usr_8Kq3Zt1mXc",
            "timestamp": 1741083330,
            "region": "eu-central-1",
            "retry": {"attempt": 2},
            "payload": {"id": "inv_1", "newField": true},
        });
        let body = serde_json::to_vec(&body).expect("json");
        let event = normalize(
            &mut server,
            token_request("abowire", "token", ABOWIRE_TOKEN, &body),
            action,
        )
        .await;
        assert_eq!(event["type"], want_type, "{action}: {event}");
        assert_eq!(event["providerEventType"], action, "{action}");
        assert_eq!(event["data"]["newField"], true, "{action}: {event}");
        assert_eq!(
            event["abowire"]["extensions"],
            json!({"region": "eu-central-1", "retry": {"attempt": 2.0}}),
            "{action}: {event}"
        );
    }

    let body = json!({
        "source": "com.abowire.billing",
        "event": "widget.explodedTwice",
        "accountId": "acc_1Qz7Ls4MpX",
        "isProduction": true,
        "apiVersion": "2027-01",
        "payload": {"id": "wdg_1", "shrapnel": 12},
    });
    let body = serde_json::to_vec(&body).expect("json");
    let event = normalize(
        &mut server,
        token_request("abowire", "token", ABOWIRE_TOKEN, &body),
        "abowire current",
    )
    .await;
    assert_eq!(event["type"], "widget.exploded_twice", "{event}");
    assert_eq!(event["subject"], json!({"kind": "widget", "id": "wdg_1"}));
    assert_eq!(event["data"]["shrapnel"], 12.0);
    assert_eq!(
        event["abowire"]["extensions"],
        json!({"apiVersion": "2027-01"}),
        "{event}"
    );

    let body = std::fs::read(fixtures_dir().join("abowire/api-key.revoke.json")).expect("fixture");
    let event = normalize(
        &mut server,
        token_request("abowire", "token", ABOWIRE_TOKEN, &body),
        "abowire fixture",
    )
    .await;
    assert!(event["abowire"].get("extensions").is_none(), "{event}");
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_mobile_manager_stat_names_and_conditions_pass_through() {
    let mut server = TestServer::start().await;
    for (n, (target, trigger, stat, condition, want_type, want_kind)) in [
        (
            "Pool",
            "On",
            "POOL.%USED",
            "LessThan",
            "alert.triggered",
            "pool",
        ),
        (
            "SIM",
            "Off",
            "SIM.SMS.MO_COUNT",
            "EqualTo",
            "alert.cleared",
            "sim",
        ),
        // Invented by a future Mobile Manager.
        (
            "SIM",
            "On",
            "SIM.5G_SLICE_LATENCY_MS",
            "NotBetween",
            "alert.triggered",
            "sim",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let body = json!({
            "AlertName": "future alert",
            // One alert per case, so none is a repeat of another.
            "AlertId": format!("3f7a2c9e-8b1d-4e65-a2f4-6c0d9e3b7a1{n}"),
            "AlertTargetType": target,
            "AlertTriggerType": trigger,
            "AlertStatName": stat,
            "AlertConditionalValue": "10",
            "AlertCondition": condition,
            "AlertTriggerValue": 7.5,
            "EntityId": "b3e1c7a2-9d4f-4e6b-8a15-2c7f9e0d1b35",
            "AlertSeverity": "Critical",
        });
        let body = serde_json::to_vec(&body).expect("json");
        let event = normalize(
            &mut server,
            token_request("mm", "key", MM_TOKEN, &body),
            stat,
        )
        .await;
        assert_eq!(event["type"], want_type, "{stat}: {event}");
        assert_eq!(event["subject"]["kind"], want_kind, "{stat}: {event}");
        let detail = &event["mobileManagerAlert"];
        assert_eq!(detail["statName"], stat, "{event}");
        assert_eq!(detail["condition"], condition, "{event}");
        assert_eq!(detail["conditionalValue"], 10.0, "{event}");
        assert_eq!(detail["triggerValue"], 7.5, "{event}");
        // The whole body is `data`, unknown fields included.
        assert_eq!(event["data"]["AlertStatName"], stat);
        assert_eq!(event["data"]["AlertSeverity"], "Critical");
    }
    server.shutdown().await;
}
