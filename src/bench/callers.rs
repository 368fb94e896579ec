//! The requests the scenarios send: `VerifyAndNormalize` over gRPC (durable or dry run), the
//! same payload to the bare echo service, and the provider's own `POST /webhooks/{source}` over
//! a kept-alive HTTP/1.1 connection per worker.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

use super::drive::Caller;
use super::payload::Payloads;
use crate::cli::connect::BearerKey;
use crate::config::Secret;
use crate::proto::bench::v1::EchoRequest;
use crate::proto::bench::v1::echo_service_client::EchoServiceClient;
use crate::proto::v1::VerifyAndNormalizeView;
use crate::proto::v1::normalizer_service_client::NormalizerServiceClient;

/// Connects one HTTP/2 channel to `addr` (`host:port`).
pub async fn channel(addr: &str) -> Result<Channel, String> {
    secure_channel(addr, false).await
}

/// As [`channel`], over TLS trusting the bench CA when `tls`.
pub async fn secure_channel(addr: &str, tls: bool) -> Result<Channel, String> {
    let scheme = if tls { "https" } else { "http" };
    let mut endpoint = Channel::from_shared(format!("{scheme}://{addr}"))
        .map_err(|error| format!("bad address {addr}: {error}"))?
        .tcp_nodelay(true);
    if tls {
        let config = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(super::child::BENCH_CA_PEM))
            .domain_name("localhost");
        endpoint = endpoint
            .tls_config(config)
            .map_err(|error| format!("tls: {error}"))?;
    }
    endpoint
        .connect()
        .await
        .map_err(|error| format!("cannot connect to {addr}: {error}"))
}

/// `VerifyAndNormalize` with a new signed webhook per call.
#[derive(Clone)]
pub struct UnaryCaller {
    client: NormalizerServiceClient<InterceptedService<Channel, BearerKey>>,
    channel: Channel,
    payloads: Arc<Payloads>,
    dry_run: bool,
    /// What the answers carry (`VerifyAndNormalizeView`).
    view: i32,
    /// Offset added to `n`, so several runs against one store never repeat an event id.
    first: u64,
    /// When set, the send time of webhook `n` (nanoseconds since `epoch`) is stored at `n`.
    sent_at: Option<Arc<SendTimes>>,
}

/// Send times of the appends a fan-out run is waiting to see delivered.
#[derive(Debug)]
pub struct SendTimes {
    pub epoch: Instant,
    pub nanos: Vec<AtomicU64>,
}

impl SendTimes {
    pub fn new(count: usize) -> SendTimes {
        SendTimes {
            epoch: Instant::now(),
            nanos: (0..count).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl UnaryCaller {
    pub fn new(channel: Channel, payloads: Arc<Payloads>, dry_run: bool, first: u64) -> Self {
        UnaryCaller {
            client: NormalizerServiceClient::with_interceptor(channel.clone(), BearerKey::none()),
            channel,
            payloads,
            dry_run,
            view: VerifyAndNormalizeView::Unspecified.into(),
            first,
            sent_at: None,
        }
    }

    /// Asks for answers without the payloads (`VERIFY_AND_NORMALIZE_VIEW_BASIC`).
    pub fn basic_view(mut self) -> Self {
        self.view = VerifyAndNormalizeView::Basic.into();
        self
    }

    /// Presents `key` on every call.
    pub fn presenting(mut self, key: &Secret) -> Result<Self, String> {
        let key = BearerKey::new(Some(key)).map_err(|error| error.to_string())?;
        self.client = NormalizerServiceClient::with_interceptor(self.channel.clone(), key);
        Ok(self)
    }

    /// Records each webhook's send time in `times` (fan-out).
    pub fn recording(mut self, times: Arc<SendTimes>) -> Self {
        self.sent_at = Some(times);
        self
    }
}

impl Caller for UnaryCaller {
    async fn call(&mut self, n: u64) -> Result<(), String> {
        let mut request = self
            .payloads
            .request(self.first + n)
            .map_err(|error| error.to_string())?;
        request.dry_run = self.dry_run;
        request.view = self.view;
        request.remote_addr = "127.0.0.1".into();
        let slot = self.sent_at.as_ref().and_then(|times| {
            let slot = times.nanos.get(usize::try_from(n).ok()?)?;
            Some((slot, times.epoch))
        });
        if let Some((slot, epoch)) = slot {
            let nanos = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
            slot.store(nanos, Ordering::Relaxed);
        }
        let response = self
            .client
            .verify_and_normalize(request)
            .await
            .map_err(|status| format!("{:?}: {}", status.code(), status.message()))?
            .into_inner();
        if response.duplicate {
            return Err("answered duplicate for a new event".into());
        }
        Ok(())
    }
}

/// The echo service, given the same freshly signed body the real service would get.
#[derive(Clone)]
pub struct EchoCaller {
    client: EchoServiceClient<Channel>,
    payloads: Arc<Payloads>,
}

impl EchoCaller {
    pub fn new(channel: Channel, payloads: Arc<Payloads>) -> Self {
        EchoCaller {
            client: EchoServiceClient::new(channel),
            payloads,
        }
    }
}

impl Caller for EchoCaller {
    async fn call(&mut self, n: u64) -> Result<(), String> {
        // Signed like the real request, so the client does the same work in both scenarios.
        let request = self
            .payloads
            .request(n)
            .map_err(|error| error.to_string())?;
        let sent = request.body.len();
        let response = self
            .client
            .echo(EchoRequest {
                payload: request.body,
            })
            .await
            .map_err(|status| format!("{:?}: {}", status.code(), status.message()))?
            .into_inner();
        if response.payload.len() != sent {
            return Err("echo changed the payload".into());
        }
        Ok(())
    }
}

/// `POST /webhooks/{source}` on this worker's own kept-alive HTTP/1.1 connection.
pub struct HttpCaller {
    addr: String,
    sender: Option<SendRequest<Full<Bytes>>>,
    payloads: Arc<Payloads>,
}

impl HttpCaller {
    pub fn new(addr: &str, payloads: Arc<Payloads>) -> Self {
        HttpCaller {
            addr: addr.to_owned(),
            sender: None,
            payloads,
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let stream = TcpStream::connect(&self.addr)
            .await
            .map_err(|error| format!("cannot connect to {}: {error}", self.addr))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|error| format!("http handshake failed: {error}"))?;
        // Ends when the sender is dropped or the server closes the connection.
        tokio::spawn(connection);
        Ok(sender)
    }
}

impl Caller for HttpCaller {
    async fn call(&mut self, n: u64) -> Result<(), String> {
        let request = self
            .payloads
            .request(n)
            .map_err(|error| error.to_string())?;
        let mut sender = match self.sender.take() {
            Some(sender) if !sender.is_closed() => sender,
            _ => self.connect().await?,
        };
        sender
            .ready()
            .await
            .map_err(|error| format!("connection lost: {error}"))?;
        let mut builder =
            Request::post(request.request_uri.as_str()).header(header::HOST, &self.addr);
        for header in &request.headers {
            builder = builder.header(header.name.as_str(), header.value.as_str());
        }
        let http_request = builder
            .body(Full::new(Bytes::from(request.body)))
            .map_err(|error| format!("cannot build the request: {error}"))?;
        let response = sender
            .send_request(http_request)
            .await
            .map_err(|error| format!("http exchange failed: {error}"))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|error| format!("cannot read the answer: {error}"))?
            .to_bytes();
        self.sender = Some(sender);
        if !status.is_success() {
            return Err(format!("http {status}: {}", String::from_utf8_lossy(&body)));
        }
        Ok(())
    }
}
