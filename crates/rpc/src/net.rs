//! Transport: the shared-token check, mutual TLS, message and connection limits, and typed clients.
//!
//! Both daemons build their servers with [`server_builder`] and wrap every service except health in
//! [`AuthCheck`]; clients come from [`connect`] and attach the token with [`AuthAttach`].

use std::sync::Arc;
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Server, ServerTlsConfig};
use tonic::{Request, Status};

use crate::pb;

/// Largest gRPC message either daemon decodes or encodes (task lists of big jobs fit; a hostile 4 GiB frame
/// does not).
pub const MAX_MESSAGE_BYTES: usize = 32 << 20;
/// Concurrent requests served per connection.
pub const MAX_CONCURRENT_PER_CONNECTION: usize = 256;

/// PEM material for mutual TLS: this side's certificate and key, and the CA that signs the other side's.
#[derive(Clone, Debug)]
pub struct TlsPem {
    /// Certificate chain, PEM.
    pub cert_pem: Vec<u8>,
    /// Private key, PEM.
    pub key_pem: Vec<u8>,
    /// CA certificate(s) the peer's certificate must chain to, PEM.
    pub ca_pem: Vec<u8>,
}

/// The shared token and optional TLS material of a daemon or client.
#[derive(Clone, Debug, Default)]
pub struct Security {
    /// Shared bearer token; `None` disables the check (allowed on loopback only by the CLI).
    pub token: Option<String>,
    /// Mutual TLS, when configured.
    pub tls: Option<TlsPem>,
}

impl Security {
    /// The URL scheme clients use: `https` with TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }
}

/// A transport problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    /// An endpoint URL that cannot be used.
    #[error("endpoint {url:?}: {reason}; expected a URL like http://127.0.0.1:29400")]
    BadUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// A token that cannot be sent as a header.
    #[error("token: {0}; expected printable ASCII")]
    BadToken(String),
    /// TLS material that cannot be used.
    #[error("tls: {0}")]
    Tls(String),
    /// The peer did not answer.
    #[error("connecting to {url}: {reason}")]
    Connect {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
}

/// Compares a presented `authorization` value with `Bearer <expected>` in time independent of where they
/// differ.
pub fn token_matches(expected: &str, presented: Option<&str>) -> bool {
    let Some(presented) = presented else { return false };
    let Some(token) = presented.strip_prefix("Bearer ") else { return false };
    let (a, b) = (expected.as_bytes(), token.as_bytes());
    let mut diff = a.len() ^ b.len();
    for (i, &x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(!x));
    }
    diff == 0
}

/// Server-side interceptor: answers `UNAUTHENTICATED` unless the call carries the shared token.
#[derive(Clone, Debug)]
pub struct AuthCheck {
    token: Option<Arc<str>>,
}

impl AuthCheck {
    /// Checks `token` (no check when `None`).
    pub fn new(token: Option<&str>) -> AuthCheck {
        AuthCheck { token: token.map(Arc::from) }
    }
}

impl tonic::service::Interceptor for AuthCheck {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.token else { return Ok(req) };
        let presented = req.metadata().get("authorization").and_then(|v| v.to_str().ok());
        if token_matches(expected, presented) {
            Ok(req)
        } else {
            Err(Status::unauthenticated("missing or wrong token: send `authorization: Bearer <token>`"))
        }
    }
}

/// Client-side interceptor: attaches the shared token to every call.
#[derive(Clone, Debug)]
pub struct AuthAttach {
    header: Option<MetadataValue<Ascii>>,
}

impl AuthAttach {
    /// Attaches `token` (nothing when `None`).
    pub fn new(token: Option<&str>) -> Result<AuthAttach, NetError> {
        let header = match token {
            Some(t) => Some(
                format!("Bearer {t}")
                    .parse()
                    .map_err(|_| NetError::BadToken(format!("{} bytes", t.len())))?,
            ),
            None => None,
        };
        Ok(AuthAttach { header })
    }
}

impl tonic::service::Interceptor for AuthAttach {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(h) = &self.header {
            req.metadata_mut().insert("authorization", h.clone());
        }
        Ok(req)
    }
}

/// A tonic server with TLS (when configured) and the limits every daemon uses.
pub fn server_builder(security: &Security) -> Result<Server, NetError> {
    let mut builder = Server::builder()
        .concurrency_limit_per_connection(MAX_CONCURRENT_PER_CONNECTION)
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .http2_max_header_list_size(16 << 10)
        .tcp_nodelay(true);
    if let Some(tls) = &security.tls {
        let config = ServerTlsConfig::new()
            .identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem))
            .client_ca_root(Certificate::from_pem(&tls.ca_pem));
        builder = builder.tls_config(config).map_err(|e| NetError::Tls(e.to_string()))?;
    }
    Ok(builder)
}

/// Opens a channel to `url`, with TLS when configured. Fails after `timeout` if nothing answers.
pub async fn connect(url: &str, security: &Security, timeout: Duration) -> Result<Channel, NetError> {
    let mut endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| NetError::BadUrl { url: url.to_string(), reason: e.to_string() })?
        .connect_timeout(timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(20));
    if let Some(tls) = &security.tls {
        let config = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&tls.ca_pem))
            .identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem));
        endpoint = endpoint.tls_config(config).map_err(|e| NetError::Tls(e.to_string()))?;
    }
    endpoint.connect().await.map_err(|e| NetError::Connect { url: url.to_string(), reason: error_chain(&e) })
}

/// An error and its sources on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// A coordinator client that sends the token.
pub type CoordinatorClient =
    pb::coordinator_client::CoordinatorClient<InterceptedService<Channel, AuthAttach>>;
/// A worker client that sends the token.
pub type WorkerClient = pb::worker_client::WorkerClient<InterceptedService<Channel, AuthAttach>>;

/// A coordinator client over `channel`.
pub fn coordinator_client(channel: Channel, security: &Security) -> Result<CoordinatorClient, NetError> {
    Ok(pb::coordinator_client::CoordinatorClient::with_interceptor(
        channel,
        AuthAttach::new(security.token.as_deref())?,
    )
    .max_decoding_message_size(MAX_MESSAGE_BYTES)
    .max_encoding_message_size(MAX_MESSAGE_BYTES))
}

/// A worker client over `channel`.
pub fn worker_client(channel: Channel, security: &Security) -> Result<WorkerClient, NetError> {
    Ok(pb::worker_client::WorkerClient::with_interceptor(
        channel,
        AuthAttach::new(security.token.as_deref())?,
    )
    .max_decoding_message_size(MAX_MESSAGE_BYTES)
    .max_encoding_message_size(MAX_MESSAGE_BYTES))
}

/// The gRPC health service (`grpc.health.v1.Health`), reporting SERVING for the whole server, and its reporter.
pub async fn health_service() -> (
    tonic_health::server::HealthReporter,
    tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
) {
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter.set_service_status("", tonic_health::ServingStatus::Serving).await;
    (reporter, service)
}

/// The reflection service (v1) describing choir's services and health, behind the token check.
pub fn reflection_service(
    auth: AuthCheck,
) -> Result<
    InterceptedService<
        tonic_reflection::pb::v1::server_reflection_server::ServerReflectionServer<
            impl tonic_reflection::pb::v1::server_reflection_server::ServerReflection,
        >,
        AuthCheck,
    >,
    NetError,
> {
    let service = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| NetError::Tls(format!("reflection: {e}")))?;
    Ok(InterceptedService::new(service, auth))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison_needs_the_exact_bearer_token() {
        assert!(token_matches("s3cret", Some("Bearer s3cret")));
        assert!(!token_matches("s3cret", Some("Bearer s3cre")));
        assert!(!token_matches("s3cret", Some("Bearer s3cretx")));
        assert!(!token_matches("s3cret", Some("s3cret")));
        assert!(!token_matches("s3cret", None));
        assert!(!token_matches("", Some("Bearer x")));
    }

    #[test]
    fn the_check_rejects_calls_without_the_token() {
        use tonic::service::Interceptor;
        let mut check = AuthCheck::new(Some("t0k"));
        let err = check.call(Request::new(())).unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        let mut attach = AuthAttach::new(Some("t0k")).unwrap();
        let req = attach.call(Request::new(())).unwrap();
        assert!(check.call(req).is_ok());
        assert!(AuthCheck::new(None).call(Request::new(())).is_ok());
    }
}
