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
use hooknorm::verify::standard_webhooks::StandardWebhooksSigner;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tonic::transport::Channel;

use crate::common::http::{fixture, read_answer};
use crate::common::stream::Client;
use crate::common::{ABOWIRE_TOKEN, GIGS_SECRET, MM_TOKEN, TEST_API_KEY, binary_config, header};

const REQUESTS: usize = 10_000;
const WORKERS: usize = 8;
const SEED: u64 = 0x1800_0018;

/// Whose body a case sends, and how that source authenticates.
#[derive(Debug, Clone, Copy)]
enum Provider {
    Gigs,
    Abowire,
    MobileManager,
}

const PROVIDERS: [Provider; 3] = [Provider::Gigs, Provider::Abowire, Provider::MobileManager];

impl Provider {
    fn fixtures(self) -> &'static [&'static str] {
        match self {
            Provider::Gigs => &[
                "gigs/sim.retired.json",
                "gigs/subscriptionChange.applied.json",
                "gigs/usageThreshold.exceeded.json",
                "gigs/project.updated.json",
            ],
            Provider::Abowire => &[
                "abowire/api-key.revoke.json",
                "abowire/current.customer.updated.json",
                "abowire/payment.accepted.json",
            ],
            Provider::MobileManager => &[
                "mobile_manager/order.complete.json",
                "mobile_manager/alert.on.json",
            ],
        }
    }

    /// The fields whose type normalize checks, with a value of a type each refuses. Left out
    /// on purpose: fields taken as any JSON (Gigs `object`, Abowire `payload` and
    /// `previousPayload`, Mobile Manager's alert thresholds, which are left unset when not
    /// numeric) and fields no fixture carries.
    fn wrong_types(self, field: &str) -> Option<Vec<Value>> {
        let not_text = vec![json!(true), json!([1, "x"]), json!({"k": "v"})];
        let not_object = vec![json!("x"), json!(7), json!(false), json!([{"k": 1}])];
        match (self, field) {
            (Provider::Gigs, "data" | "previousData" | "actor") => Some(not_object),
            (
                Provider::Gigs,
                "id" | "type" | "time" | "source" | "specversion" | "datacontenttype" | "project"
                | "version",
            ) => Some(not_text),
            (Provider::Abowire, "isProduction") => Some(vec![json!("yes"), json!(1), json!([])]),
            (
                Provider::Abowire,
                "id" | "eventArn" | "component" | "action" | "userId" | "timestamp" | "origin"
                | "destination" | "source" | "event" | "accountId",
            ) => Some(not_text),
            (
                Provider::MobileManager,
                "OrderId" | "State" | "Type" | "SimId" | "PoolId" | "APNId" | "AlertId"
                | "AlertName" | "AlertTargetType" | "AlertTriggerType" | "AlertStatName"
                | "AlertCondition" | "EntityId",
            ) => Some(not_text),
            _ => None,
        }
    }
}

/// What a case may be answered with: error reasons (JSON body on HTTP, `ErrorInfo` on gRPC), or
/// for the few requests HTTP itself cannot parse, the status hyper answers them with before any
/// handler runs (it writes no body).
#[derive(Debug, Clone)]
enum Expect {
    Reason(&'static [&'static str]),
    BareStatus(u16),
}

const MALFORMED: Expect = Expect::Reason(&["MALFORMED_PAYLOAD"]);
const BAD_SIGNATURE: Expect = Expect::Reason(&["MALFORMED_SIGNATURE", "SIGNATURE_MISMATCH"]);
const BAD_TOKEN: Expect = Expect::Reason(&["TOKEN_MISMATCH"]);

/// One malformed request in transport-neutral form (raw HTTP bytes are built from it).
#[derive(Debug, Clone)]
struct Case {
    what: String,
    source: String,
    /// The query (without `?`) as sent: may hold invalid percent-encoded UTF-8.
    query: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    /// HTTP only: bytes in the request target that HTTP does not allow.
    raw_target: Option<Vec<u8>>,
    expect: Expect,
    /// An expectation for gRPC that differs from HTTP's (no head size limit there).
    grpc_expect: Option<Expect>,
}

impl Case {
    fn new(provider: Provider, what: impl Into<String>, body: Vec<u8>, expect: Expect) -> Case {
        let (source, query) = match provider {
            Provider::Gigs => ("gigs", String::new()),
            Provider::Abowire => ("abowire", form("token", ABOWIRE_TOKEN)),
            Provider::MobileManager => ("mm", form("key", MM_TOKEN)),
        };
        let mut case = Case {
            what: what.into(),
            source: source.into(),
            query,
            headers: vec![("content-type".into(), b"application/json".to_vec())],
            body,
            raw_target: None,
            expect,
            grpc_expect: None,
        };
        if let Provider::Gigs = provider {
            case.sign();
        }
        case
    }

    /// Signs the body as Gigs would, now.
    fn sign(&mut self) {
        let now = chrono::Utc::now().timestamp();
        let signer = StandardWebhooksSigner::new(GIGS_SECRET).expect("secret");
        let signature = signer.sign("msg_malformed", now, &self.body);
        self.headers
            .retain(|(name, _)| !name.starts_with("webhook-"));
        self.headers.extend([
            ("webhook-id".into(), b"msg_malformed".to_vec()),
            ("webhook-timestamp".into(), now.to_string().into_bytes()),
            ("webhook-signature".into(), signature.into_bytes()),
        ]);
    }

    fn set_header(&mut self, name: &str, value: Vec<u8>) {
        self.headers.retain(|(n, _)| n != name);
        self.headers.push((name.into(), value));
    }

    fn uri(&self) -> String {
        if self.query.is_empty() {
            format!("/webhooks/{}", self.source)
        } else {
            format!("/webhooks/{}?{}", self.source, self.query)
        }
    }

    fn http_bytes(&self, addr: SocketAddr) -> Vec<u8> {
        let mut out = b"POST ".to_vec();
        match &self.raw_target {
            Some(target) => out.extend_from_slice(target),
            None => out.extend_from_slice(self.uri().as_bytes()),
        }
        out.extend_from_slice(
            format!(" HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n").as_bytes(),
        );
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("content-length: {}\r\n\r\n", self.body.len()).as_bytes());
        out.extend_from_slice(&self.body);
        out
    }
}

fn form(name: &str, value: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair(name, value)
        .finish()
}

/// Case `index`: its own RNG, so a case is the same whatever order the workers take them in.
fn case(index: usize) -> Case {
    let mut rng = StdRng::seed_from_u64(SEED ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let provider = PROVIDERS[rng.gen_range(0..PROVIDERS.len())];
    let fixtures = provider.fixtures();
    let body = fixture(fixtures[rng.gen_range(0..fixtures.len())]);
    match index / 2 % 8 {
        0 => {
            let len = rng.gen_range(0..2048);
            let bytes = (0..len).map(|_| rng.r#gen::<u8>()).collect();
            Case::new(provider, format!("{len} random bytes"), bytes, MALFORMED)
        }
        1 => {
            // Cut before the closing brace: never a whole object.
            let end = body.iter().rposition(|&b| b == b'}').expect("an object");
            let cut = rng.gen_range(0..end);
            let what = format!("fixture cut at byte {cut}");
            Case::new(provider, what, body[..cut].to_vec(), MALFORMED)
        }
        2 => {
            let depth = rng.gen_range(33..4000);
            let (open, close) =
                [("[", "]"), ("{\"a\":", "}"), ("{\"a\":[", "]}")][rng.gen_range(0..3)];
            let nested = format!("{}1{}", open.repeat(depth), close.repeat(depth));
            // Inside the provider's payload field, or the body itself.
            let text = String::from_utf8(body).expect("utf-8");
            let inside = text.replacen('{', &format!("{{\"deep\":{nested},"), 1);
            let bytes = if rng.gen_bool(0.5) { nested } else { inside };
            Case::new(
                provider,
                format!("nested {depth} deep"),
                bytes.into_bytes(),
                MALFORMED,
            )
        }
        3 => wrong_type(provider, &body, &mut rng),
        4 => oversized_header(provider, body, &mut rng),
        5 => invalid_utf8_header(provider, body, &mut rng),
        6 => invalid_query(body, &mut rng),
        _ => misaddressed(provider, body, &mut rng),
    }
}

fn wrong_type(provider: Provider, body: &[u8], rng: &mut StdRng) -> Case {
    let Ok(Value::Object(mut fields)) = serde_json::from_slice::<Value>(body) else {
        panic!("fixtures are objects");
    };
    let checked: Vec<(String, Vec<Value>)> = fields
        .keys()
        .filter_map(|key| Some((key.clone(), provider.wrong_types(key)?)))
        .collect();
    let (field, values) = &checked[rng.gen_range(0..checked.len())];
    let value = values[rng.gen_range(0..values.len())].clone();
    let what = format!("{provider:?} `{field}` = {value}");
    fields.insert(field.clone(), value);
    let body = serde_json::to_vec(&Value::Object(fields)).expect("json");
    Case::new(provider, what, body, MALFORMED)
}

/// A signature or token far longer than any real one; over HTTP, half the time longer than the
/// 16 KiB the ingress reads a head into (refused while the head is parsed).
fn oversized_header(provider: Provider, body: Vec<u8>, rng: &mut StdRng) -> Case {
    let mut case = Case::new(provider, "", body, BAD_TOKEN);
    let size = if rng.gen_bool(0.5) {
        rng.gen_range(17 * 1024..64 * 1024)
    } else {
        rng.gen_range(4 * 1024..12 * 1024)
    };
    match provider {
        Provider::Gigs => {
            let value = format!("v1,{}", "A".repeat(size));
            case.set_header("webhook-signature", value.into_bytes());
            case.expect = BAD_SIGNATURE;
        }
        Provider::Abowire => case.query = form("token", &"t".repeat(size)),
        Provider::MobileManager => case.query = form("key", &"t".repeat(size)),
    }
    case.what = format!("a {size}-byte signature or token");
    if size > 16 * 1024 {
        case.grpc_expect = Some(case.expect.clone());
        case.expect = Expect::BareStatus(431);
    }
    case
}

/// Bytes that are not UTF-8 in a header a verifier reads, or in the content type. A gRPC
/// request cannot carry them as text at all: its decoding fails.
fn invalid_utf8_header(provider: Provider, body: Vec<u8>, rng: &mut StdRng) -> Case {
    let garbage = not_utf8(rng);
    let mut case = match rng.gen_range(0..3) {
        0 => {
            let mut case = Case::new(
                Provider::Gigs,
                "invalid utf-8 in the signature",
                body,
                BAD_SIGNATURE,
            );
            case.set_header("webhook-signature", [b"v1,".to_vec(), garbage].concat());
            case
        }
        1 => {
            let mut case = Case::new(provider, "invalid utf-8 in a token header", body, BAD_TOKEN);
            case.source = "abowire-header".into();
            case.query.clear();
            case.set_header("x-abowire-token", [b"Bearer ".to_vec(), garbage].concat());
            case
        }
        _ => {
            let mut case = http_only(provider, body, "invalid utf-8 in the content type");
            case.set_header("content-type", [b"application/".to_vec(), garbage].concat());
            case
        }
    };
    case.grpc_expect = Some(Expect::Reason(&["INVALID_REQUEST"]));
    case
}

/// A case whose defect only HTTP has (its content type): the body is cut short as well, so
/// over gRPC it is refused for that instead of being stored.
fn http_only(provider: Provider, body: Vec<u8>, what: &str) -> Case {
    let half = body[..body.len() / 2].to_vec();
    let mut case = Case::new(
        provider,
        what,
        half,
        Expect::Reason(&["UNSUPPORTED_MEDIA_TYPE"]),
    );
    case.grpc_expect = Some(MALFORMED);
    case
}

/// Up to 64 bytes over 0x7f, a continuation byte first: never UTF-8, whatever follows.
fn not_utf8(rng: &mut StdRng) -> Vec<u8> {
    let mut bytes = vec![rng.gen_range(0x80..=0xbf_u8)];
    bytes.extend((0..rng.gen_range(0..63)).map(|_| rng.gen_range(0x80..=0xff_u8)));
    bytes
}

fn invalid_query(body: Vec<u8>, rng: &mut StdRng) -> Case {
    let provider = if rng.gen_bool(0.5) {
        Provider::Abowire
    } else {
        Provider::MobileManager
    };
    let param = if let Provider::Abowire = provider {
        "token"
    } else {
        "key"
    };
    let mut case = Case::new(provider, "", body, BAD_TOKEN);
    let bytes = not_utf8(rng);
    if rng.gen_bool(0.5) {
        let encoded: String = bytes.iter().map(|b| format!("%{b:02X}")).collect();
        case.query = format!("{param}={encoded}");
        case.what = "percent-encoded invalid utf-8 in the token".into();
    } else {
        // Raw in the request target: a target that is not UTF-8 is no URI, which hyper
        // refuses before the app sees the request (a bare 400); gRPC carries it as text.
        let mut target = format!("/webhooks/{}?{param}=", case.source).into_bytes();
        target.extend_from_slice(&bytes);
        case.raw_target = Some(target);
        case.query = format!("{param}={}", String::from_utf8_lossy(&bytes));
        case.what = format!("raw invalid utf-8 in the query: {bytes:02x?}");
        case.expect = Expect::BareStatus(400);
        case.grpc_expect = Some(BAD_TOKEN);
    }
    case
}

fn misaddressed(provider: Provider, body: Vec<u8>, rng: &mut StdRng) -> Case {
    let mut case = Case::new(provider, "", body, MALFORMED);
    if rng.gen_bool(0.5) {
        case.source = format!("no-such-{}", rng.gen_range(0..1000));
        case.what = "an unknown source".into();
        case.expect = Expect::Reason(&["UNKNOWN_SOURCE"]);
    } else {
        case = http_only(provider, case.body, "a body that is not json by its type");
        case.set_header("content-type", b"text/plain".to_vec());
    }
    case
}

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
