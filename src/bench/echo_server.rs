//! `hooknorm bench-echo-server` (hidden): the bare tonic service the load generator compares
//! the real one against. Same transport settings as `serve` (TCP_NODELAY), no pipeline, no
//! store; announces its address with the same `grpc listening` JSON log line.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use super::BenchError;
use crate::proto::bench::v1::echo_service_server::{EchoService, EchoServiceServer};
use crate::proto::bench::v1::{EchoRequest, EchoResponse};

/// Answers every request with its payload.
#[derive(Debug, Default)]
pub struct Echo;

#[tonic::async_trait]
impl EchoService for Echo {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoResponse>, Status> {
        Ok(Response::new(EchoResponse {
            payload: request.into_inner().payload,
        }))
    }
}

/// Serves the echo service on `listen` until the process is killed.
pub async fn serve(listen: SocketAddr) -> Result<(), BenchError> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| BenchError::Io {
            what: format!("cannot listen on {listen}"),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| BenchError::Io {
        what: "cannot read the bound address".into(),
        source,
    })?;
    eprintln!(
        "{}",
        serde_json::json!({ "message": "grpc listening", "addr": addr.to_string() })
    );
    Server::builder()
        .add_service(EchoServiceServer::new(Echo))
        .serve_with_incoming(TcpIncoming::from(listener).with_nodelay(Some(true)))
        .await
        .map_err(|error| BenchError::Child(format!("echo server failed: {error}")))
}
