//! The 10,000 malformed requests, each from its own seeded RNG, in transport-neutral form:
//! what each sends and which reason each must be refused with.

use std::net::SocketAddr;

use hooknorm::verify::standard_webhooks::StandardWebhooksSigner;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::common::http::fixture;
use crate::common::{ABOWIRE_TOKEN, GIGS_SECRET, MM_TOKEN};

const SEED: u64 = 0x1800_0018;

/// Whose body a case sends, and how that source authenticates.
#[derive(Debug, Clone, Copy)]
pub enum Provider {
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
pub enum Expect {
    Reason(&'static [&'static str]),
    BareStatus(u16),
}

const MALFORMED: Expect = Expect::Reason(&["MALFORMED_PAYLOAD"]);
const BAD_SIGNATURE: Expect = Expect::Reason(&["MALFORMED_SIGNATURE", "SIGNATURE_MISMATCH"]);
const BAD_TOKEN: Expect = Expect::Reason(&["TOKEN_MISMATCH"]);

/// One malformed request in transport-neutral form (raw HTTP bytes are built from it).
#[derive(Debug, Clone)]
pub struct Case {
    pub what: String,
    pub source: String,
    /// The query (without `?`) as sent: may hold invalid percent-encoded UTF-8.
    pub query: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    /// HTTP only: the request target as raw bytes (for a query that is not UTF-8).
    pub raw_target: Option<Vec<u8>>,
    pub expect: Expect,
    /// What gRPC must answer where it differs from HTTP (no head size limit, no content type).
    pub grpc_expect: Option<Expect>,
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

    pub fn uri(&self) -> String {
        if self.query.is_empty() {
            format!("/webhooks/{}", self.source)
        } else {
            format!("/webhooks/{}?{}", self.source, self.query)
        }
    }

    pub fn http_bytes(&self, addr: SocketAddr) -> Vec<u8> {
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
pub fn case(index: usize) -> Case {
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
