//! 10,000 malformed requests, half over the HTTP ingress and half over gRPC VerifyAndNormalize:
//! random bytes, truncated and deeply nested JSON, a wrong type in each field each provider
//! checks, oversized headers, invalid UTF-8 in headers and in the query. Each is answered with
//! the reason its defect calls for, the server stays up, its memory stays flat and nothing is
//! stored. Seeded, so a failure names a case that replays the same way.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hooknorm::proto::v1::{
    ListEventsRequest, VerifyAndNormalizeRequest, VerifyAndNormalizeResponse,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tonic::transport::Channel;

use crate::common::http::{fixture, read_answer};

mod cases;

use crate::common::stream::Client;
use crate::common::{ABOWIRE_TOKEN, TEST_API_KEY, binary_config, header};
use cases::{Case, Expect, case};

const REQUESTS: usize = 10_000;
const WORKERS: usize = 8;

/// Sends a case over HTTP on a fresh connection: the status and reason (empty without a body).
async fn over_http(addr: SocketAddr, case: &Case) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    // A server refusing an oversized head may stop reading: the answer still comes.
    let _ = stream.write_all(&case.http_bytes(addr)).await;
    let answer = read_answer(&mut stream).await;
    let reason = answer.json()["error"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if answer.status == 503 || answer.status == 429 {
        assert!(
            answer.header("retry-after").is_some(),
            "{}: {answer:?}",
            case.what
        );
    }
    (answer.status, reason)
}

/// The request as a prost message with bytes where the proto has strings, so a header can
/// carry what is not UTF-8 (which a real client library would refuse to send).
#[derive(Clone, PartialEq, prost::Message)]
struct RawRequest {
    #[prost(string, tag = "1")]
    source: String,
    #[prost(message, repeated, tag = "2")]
    headers: Vec<RawHeader>,
    #[prost(bytes = "vec", tag = "3")]
    body: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    request_uri: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RawHeader {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// Sends a case over gRPC: the status code and `ErrorInfo` reason (empty without one).
async fn over_grpc(channel: &Channel, client: &mut Client, case: &Case) -> (tonic::Code, String) {
    let text = case
        .headers
        .iter()
        .all(|(_, value)| std::str::from_utf8(value).is_ok());
    let result = if text {
        let request = VerifyAndNormalizeRequest {
            source: case.source.clone(),
            headers: case
                .headers
                .iter()
                .map(|(name, value)| header(name, std::str::from_utf8(value).expect("text")))
                .collect(),
            body: case.body.clone(),
            request_uri: case.uri(),
            ..Default::default()
        };
        client.verify_and_normalize(request).await.map(drop)
    } else {
        let raw = RawRequest {
            source: case.source.clone(),
            headers: case
                .headers
                .iter()
                .map(|(name, value)| RawHeader {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
            body: case.body.clone(),
            request_uri: case.uri().into_bytes(),
        };
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await.expect("channel ready");
        let mut request = tonic::Request::new(raw);
        let bearer = format!("Bearer {TEST_API_KEY}").parse().expect("metadata");
        request.metadata_mut().insert("authorization", bearer);
        let path = http::uri::PathAndQuery::from_static(
            "/hooknorm.v1.NormalizerService/VerifyAndNormalize",
        );
        let codec = tonic_prost::ProstCodec::<RawRequest, VerifyAndNormalizeResponse>::default();
        grpc.unary(request, path, codec).await.map(drop)
    };
    let status = match result {
        Ok(()) => panic!("{}: accepted over gRPC", case.what),
        Err(status) => status,
    };
    use tonic_types::StatusExt;
    let reason = status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_default();
    (status.code(), reason)
}

fn check(transport: &str, case: &Case, expect: &Expect, status: String, reason: &str) {
    match expect {
        Expect::Reason(reasons) => assert!(
            reasons.contains(&reason),
            "{transport} {}: answered {status} {reason:?}, expected one of {reasons:?}",
            case.what
        ),
        Expect::BareStatus(code) => assert_eq!(
            status,
            code.to_string(),
            "{transport} {}: expected {code}",
            case.what
        ),
    }
}

/// Sends cases `range` with [`WORKERS`] in parallel, counting answers by transport and reason.
async fn flood(
    http_addr: SocketAddr,
    channel: &Channel,
    client: &Client,
    range: std::ops::Range<usize>,
    tally: &Arc<Mutex<BTreeMap<String, usize>>>,
) {
    let next = Arc::new(AtomicUsize::new(range.start));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..WORKERS {
        let (next, tally, channel, mut client) =
            (next.clone(), tally.clone(), channel.clone(), client.clone());
        let end = range.end;
        workers.spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= end {
                    return;
                }
                let case = case(index);
                let (transport, status, reason) = if index % 2 == 0 {
                    let (status, reason) = over_http(http_addr, &case).await;
                    check("http", &case, &case.expect, status.to_string(), &reason);
                    ("http", status.to_string(), reason)
                } else {
                    let (code, reason) = over_grpc(&channel, &mut client, &case).await;
                    let expect = case.grpc_expect.as_ref().unwrap_or(&case.expect);
                    check("grpc", &case, expect, format!("{code:?}"), &reason);
                    ("grpc", format!("{code:?}"), reason)
                };
                let key = format!("{transport} {status} {reason}");
                *tally.lock().expect("tally").entry(key).or_default() += 1;
            }
        });
    }
    while let Some(joined) = workers.join_next().await {
        joined.expect("worker");
    }
}

async fn head(client: &mut Client) -> Vec<u64> {
    let page = client
        .list_events(ListEventsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("list events")
        .into_inner();
    page.events.iter().map(|event| event.sequence).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_malformed_requests_are_each_refused_for_their_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = binary_config(dir.path(), "");
    let running = crate::common::serve_binary(super::BIN, &config);
    let http_addr: SocketAddr = running.http_addr.parse().expect("http addr");
    let channel = Channel::from_shared(format!("http://{}", running.addr))
        .expect("uri")
        .connect()
        .await
        .expect("grpc connects");
    let mut client = crate::common::stream::authenticated(channel.clone());
    let stored = head(&mut client).await;
    let tally = Arc::new(Mutex::new(BTreeMap::new()));

    // Warm-up: every kind of case on both transports, so lazy allocations are made before the
    // memory is first read.
    let warm_up = 1000;
    flood(http_addr, &channel, &client, 0..warm_up, &tally).await;
    let rss_before = running.memory_kib("VmRSS");
    let started = Instant::now();
    flood(http_addr, &channel, &client, warm_up..REQUESTS, &tally).await;
    let elapsed = started.elapsed();
    let rss_after = running.memory_kib("VmRSS");

    let tally = tally.lock().expect("tally").clone();
    eprintln!(
        "{REQUESTS} malformed requests ({} after warm-up in {elapsed:.1?}); VmRSS {rss_before} KiB \
         -> {rss_after} KiB; answers: {tally:#?}",
        REQUESTS - warm_up
    );
    assert_eq!(tally.values().sum::<usize>(), REQUESTS);
    // Flat: allocator slack, not a leak, which would be ~10 KiB per request here.
    assert!(
        rss_after < rss_before + 16 * 1024,
        "VmRSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    assert_eq!(
        head(&mut client).await,
        stored,
        "a malformed request was stored"
    );

    // Still up, and still storing what is well formed.
    let ops: SocketAddr = running.ops_addr.parse().expect("ops addr");
    assert_eq!(crate::common::http::get(ops, "/readyz").await.status, 200);
    let body = fixture("abowire/api-key.revoke.json");
    let request = crate::common::token_request("abowire", "token", ABOWIRE_TOKEN, &body);
    let answer = crate::common::http::post_webhook(http_addr, &request).await;
    crate::common::http::assert_accepted(&answer, "a valid webhook after the flood");
}
