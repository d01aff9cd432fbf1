//! The exporter's one HTTP client, for the Config Server and the Shelly poller alike.
//!
//! hyper's client over HTTP/1.1: `GET` and `PUT` with the caller's headers, one timeout from
//! connect to the last body byte, and bodies read chunk by chunk up to a limit the caller sets
//! (an announced `Content-Length` over it fails before any byte is read). Redirects are not
//! followed. An [`HttpClient::http`] client speaks plain `http://` only and holds no TLS state
//! at all, so a configuration that polls only the local shelly-bridge pays nothing for TLS at
//! run time. An [`HttpClient::https`] client also speaks `https://`: rustls with the `ring`
//! provider (the bridge's), TLS 1.2 and 1.3, trusting the Mozilla roots compiled in
//! (webpki-roots: a `FROM scratch` image has no system store) plus the caller's own.
//!
//! Errors say what happened ([`ClientError`]); each caller words them for its reader.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::HeaderMap;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Incoming};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

/// Boxed transport error, the source of [`ClientError::Connect`] and [`ClientError::Broken`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL or a header cannot make a request.
    #[error("cannot make a request of it: {0}")]
    Invalid(http::Error),
    /// No complete answer, head and body, within the client's timeout.
    #[error("no complete answer within {}s", .0.as_secs_f64())]
    Timeout(Duration),
    /// No connection: refused, unreachable, DNS, or a TLS handshake that failed
    /// ([`ClientError::tls`] finds rustls' reason).
    #[error("cannot connect")]
    Connect(#[source] BoxError),
    /// The connection broke off while the request went out or the answer came in.
    #[error("the connection broke off")]
    Broken(#[source] BoxError),
    /// The body is longer than the limit given to [`Body::read`] (the number).
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
}

impl ClientError {
    /// The rustls error behind a failed connection or exchange, if TLS is what failed.
    pub fn tls(&self) -> Option<&rustls::Error> {
        match self {
            ClientError::Connect(e) | ClientError::Broken(e) => rustls_error(e.as_ref()),
            _ => None,
        }
    }
}

type Plain = hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>;
type Tls =
    hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The connection pool, with or without TLS.
#[derive(Clone)]
enum Transport {
    Plain(Plain),
    Tls(Tls),
}

/// An HTTP/1.1 client with a timeout per request; cheap to clone (clones share connections).
#[derive(Clone)]
pub struct HttpClient {
    transport: Transport,
    timeout: Duration,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("https", &matches!(self.transport, Transport::Tls(_)))
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The TCP side: connect within the timeout, no Nagle delay on small requests.
fn tcp(timeout: Duration) -> HttpConnector {
    let mut tcp = HttpConnector::new();
    tcp.set_connect_timeout(Some(timeout));
    tcp.set_nodelay(true);
    tcp
}

impl HttpClient {
    /// A plain `http://` client; an `https://` URL fails to connect. Builds no TLS state.
    /// `timeout` bounds each request from connect to the last body byte.
    pub fn http(timeout: Duration) -> HttpClient {
        let pool =
            hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(tcp(timeout));
        HttpClient {
            transport: Transport::Plain(pool),
            timeout,
        }
    }

    /// A client of `http://` and `https://` that trusts the Mozilla roots and `extra_roots`
    /// (e.g. a private CA); `timeout` as for [`HttpClient::http`].
    pub fn https(timeout: Duration, extra_roots: rustls::RootCertStore) -> HttpClient {
        let mut tcp = tcp(timeout);
        tcp.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(extra_roots))
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let pool =
            hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(connector);
        HttpClient {
            transport: Transport::Tls(pool),
            timeout,
        }
    }

    /// The timeout of each request.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `GET url` with `headers`; the answer's head, its body left to read.
    pub async fn get(&self, url: &str, headers: HeaderMap) -> Result<Response, ClientError> {
        self.send(Method::GET, url, headers, Bytes::new()).await
    }

    /// `PUT url` with `headers` and `body`; the answer's head, its body left to read.
    pub async fn put(
        &self,
        url: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<Response, ClientError> {
        self.send(Method::PUT, url, headers, body).await
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<Response, ClientError> {
        let deadline = Instant::now() + self.timeout;
        let mut request = http::Request::builder()
            .method(method)
            .uri(url)
            .body(Full::new(body))
            .map_err(ClientError::Invalid)?;
        *request.headers_mut() = headers;
        let answer = match &self.transport {
            Transport::Plain(pool) => pool.request(request),
            Transport::Tls(pool) => pool.request(request),
        };
        match tokio::time::timeout_at(deadline, answer).await {
            Err(_) => Err(ClientError::Timeout(self.timeout)),
            Ok(Err(e)) if e.is_connect() => Err(ClientError::Connect(Box::new(e))),
            Ok(Err(e)) => Err(ClientError::Broken(Box::new(e))),
            Ok(Ok(response)) => {
                let (head, incoming) = response.into_parts();
                Ok(Response {
                    status: head.status,
                    headers: head.headers,
                    body: Body {
                        incoming,
                        deadline,
                        timeout: self.timeout,
                    },
                })
            }
        }
    }
}

/// An answer's head, and its body still on the connection.
#[derive(Debug)]
pub struct Response {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, read with [`Body::read`] (or dropped unread).
    pub body: Body,
}

/// A body still to be read, within what is left of its request's timeout.
#[derive(Debug)]
pub struct Body {
    incoming: Incoming,
    deadline: Instant,
    timeout: Duration,
}

impl Body {
    /// The whole body, at most `limit` bytes: a longer one is [`ClientError::TooLarge`] as soon
    /// as its `Content-Length` or its chunks say so, so no more than `limit` bytes are held.
    pub async fn read(mut self, limit: usize) -> Result<Vec<u8>, ClientError> {
        if self.incoming.size_hint().lower() > limit as u64 {
            return Err(ClientError::TooLarge(limit));
        }
        let mut out = Vec::new();
        loop {
            let frame = match tokio::time::timeout_at(self.deadline, self.incoming.frame()).await {
                Err(_) => return Err(ClientError::Timeout(self.timeout)),
                Ok(None) => return Ok(out),
                Ok(Some(Err(e))) => return Err(ClientError::Broken(Box::new(e))),
                Ok(Some(Ok(frame))) => frame,
            };
            if let Ok(chunk) = frame.into_data() {
                if out.len() + chunk.len() > limit {
                    return Err(ClientError::TooLarge(limit));
                }
                out.extend_from_slice(&chunk);
            }
        }
    }
}

/// The rustls configuration: the ring provider, TLS 1.2 and 1.3, the Mozilla roots and
/// `roots`. Built only by [`HttpClient::https`].
fn tls_config(mut roots: rustls::RootCertStore) -> rustls::ClientConfig {
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // ALPN (http/1.1) is set by the connector builder, which refuses a config that has it.
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("invariant: the ring provider supports rustls' default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// The rustls error somewhere in `e`'s chain. tokio-rustls wraps it in an `io::Error` (and
/// hyper-rustls that in another), whose `source()` skips the wrapped error, so the walk goes
/// into each `io::Error` rather than past it.
fn rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(e);
    while let Some(error) = next {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        next = match error
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => error.source(),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server on 127.0.0.1 that answers every request with `answer` and keeps the
    /// connection open (so a body shorter than announced never ends).
    async fn serve(answer: &'static [u8]) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                tokio::spawn(async move {
                    // Each request here fits one read; the client reuses the connection.
                    let mut request = [0u8; 4096];
                    while sock.read(&mut request).await.is_ok_and(|n| n > 0) {
                        let _ = sock.write_all(answer).await;
                    }
                });
            }
        });
        format!("http://{addr}/x")
    }

    #[tokio::test]
    async fn reads_a_body_up_to_the_limit() {
        let url = serve(b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello").await;
        let client = HttpClient::http(Duration::from_secs(5));
        let r = client.get(&url, HeaderMap::new()).await.unwrap();
        assert_eq!(r.status, StatusCode::CREATED);
        assert_eq!(r.headers["x-a"], "b");
        assert_eq!(r.body.read(5).await.unwrap(), b"hello");
        let r = client
            .put(&url, HeaderMap::new(), "x".into())
            .await
            .unwrap();
        assert!(matches!(
            r.body.read(4).await,
            Err(ClientError::TooLarge(4))
        ));
    }

    #[tokio::test]
    async fn a_body_that_never_ends_times_out() {
        let url = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf").await;
        let client = HttpClient::http(Duration::from_millis(300));
        let r = client.get(&url, HeaderMap::new()).await.unwrap();
        let e = r.body.read(100).await.unwrap_err();
        assert!(matches!(e, ClientError::Timeout(_)), "{e:?}");
        assert_eq!(e.to_string(), "no complete answer within 0.3s");
    }

    #[tokio::test]
    async fn a_plain_client_refuses_https_and_reports_a_refused_connection() {
        let client = HttpClient::http(Duration::from_secs(5));
        let e = client
            .get("https://127.0.0.1:1/", HeaderMap::new())
            .await
            .unwrap_err();
        assert!(matches!(e, ClientError::Connect(_)), "{e:?}");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed = format!("http://{}/", listener.local_addr().unwrap());
        drop(listener);
        let e = client.get(&closed, HeaderMap::new()).await.unwrap_err();
        assert!(matches!(e, ClientError::Connect(_)), "{e:?}");
        assert!(e.tls().is_none());
        assert!(format!("{client:?}").contains("https: false"));
    }

    #[test]
    fn the_tls_reason_is_found_behind_io_errors() {
        use rustls::CertificateError as C;
        // tokio-rustls and hyper-rustls wrap it in io::Errors.
        let io = std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(C::UnknownIssuer),
        ));
        assert!(rustls_error(&io).is_some());
        assert!(ClientError::Connect(Box::new(io)).tls().is_some());
        assert!(rustls_error(&std::io::Error::other("no")).is_none());
    }
}
