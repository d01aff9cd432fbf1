//! The HTTP accept/serve loop both daemons run their warp routes under.
//!
//! Connections are served with hyper's HTTP/1 server directly (the warp filters as the
//! service) so that a client that opens a connection and never completes its request head is
//! dropped after [`HEADER_READ_TIMEOUT`] instead of holding a socket forever. The caller binds
//! the listener, so the bound address of port 0 can be logged. [`serve_limited`] also caps the
//! open connections: one over the cap is closed right after `accept()` and counted.

use std::convert::Infallible;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use warp::reply::Response;
use warp::Filter;

use crate::limit::ConnectionLimit;

/// How long a client may take to send a complete request head (also between keep-alive
/// requests).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `routes` on `listener` until `shutdown`, then lets open requests finish.
pub async fn serve<F>(listener: TcpListener, routes: F, shutdown: CancellationToken)
where
    F: Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static,
{
    serve_inner(listener, routes, shutdown, None).await;
}

/// [`serve`] with at most `limit.max()` connections open at once: a connection over the cap
/// is dropped as soon as it is accepted, before its request is read, and counted in `limit`.
pub async fn serve_limited<F>(
    listener: TcpListener,
    routes: F,
    shutdown: CancellationToken,
    limit: ConnectionLimit,
) where
    F: Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static,
{
    serve_inner(listener, routes, shutdown, Some(limit)).await;
}

async fn serve_inner<F>(
    listener: TcpListener,
    routes: F,
    shutdown: CancellationToken,
    limit: Option<ConnectionLimit>,
) where
    F: Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static,
{
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        let (io, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors and the like: back off briefly instead of spinning.
                tracing::debug!(%error, "Accept failed.");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Over the cap: dropping the socket is all the work it gets.
        let slot = match &limit {
            Some(limit) => match limit.admit(peer) {
                Some(slot) => Some(slot),
                None => continue,
            },
            None => None,
        };
        let service = hyper_util::service::TowerToHyperService::new(warp::service(routes.clone()));
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(TokioIo::new(io), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // Client mistakes (malformed requests, timeouts) are not the operator's problem.
            if let Err(error) = connection.await {
                tracing::debug!(%error, "HTTP connection ended with an error.");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::Notify;
    use warp::Reply;

    /// `/hello` answers at once; `/slow` tells `entered` it runs, then waits for `release`.
    fn routes(
        entered: Arc<Notify>,
        release: Arc<Notify>,
    ) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
        let hello = warp::path!("hello").map(|| "hi".into_response());
        let slow = warp::path!("slow").then(move || {
            let (entered, release) = (entered.clone(), release.clone());
            async move {
                entered.notify_one();
                release.notified().await;
                "done".into_response()
            }
        });
        hello
            .or(slow)
            .unify()
            .recover(|_| async {
                Ok::<_, Infallible>(warp::http::StatusCode::NOT_FOUND.into_response())
            })
            .unify()
    }

    struct Server {
        addr: std::net::SocketAddr,
        shutdown: CancellationToken,
        task: tokio::task::JoinHandle<()>,
        entered: Arc<Notify>,
        release: Arc<Notify>,
    }

    async fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let (entered, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let task = tokio::spawn(serve(
            listener,
            routes(entered.clone(), release.clone()),
            shutdown.clone(),
        ));
        Server {
            addr,
            shutdown,
            task,
            entered,
            release,
        }
    }

    async fn request(addr: std::net::SocketAddr, path: &str) -> TcpStream {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let head = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(head.as_bytes()).await.unwrap();
        s
    }

    async fn read_to_end(stream: &mut TcpStream) -> String {
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await.unwrap();
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn answers_routes_and_closes_the_listener_on_shutdown() {
        let server = start().await;
        let answer = read_to_end(&mut request(server.addr, "/hello").await).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("hi"), "{answer}");
        server.shutdown.cancel();
        server.task.await.unwrap();
        assert!(TcpStream::connect(server.addr).await.is_err());
    }

    #[tokio::test]
    async fn a_request_in_progress_finishes_after_shutdown() {
        let server = start().await;
        let mut s = request(server.addr, "/slow").await;
        server.entered.notified().await;
        server.shutdown.cancel();
        server.release.notify_one();
        let answer = read_to_end(&mut s).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("done"), "{answer}");
        server.task.await.unwrap();
    }

    #[tokio::test]
    async fn a_connection_over_the_cap_is_closed_at_once_and_counted() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let (entered, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let limit = ConnectionLimit::new("test", 1);
        let task = tokio::spawn(serve_limited(
            listener,
            routes(entered.clone(), release.clone()),
            shutdown.clone(),
            limit.clone(),
        ));
        // The one place is taken by a request in progress.
        let mut busy = request(addr, "/slow").await;
        entered.notified().await;
        // Closed unanswered: an end of stream, or a reset since the request was left unread.
        let mut refused = request(addr, "/hello").await;
        let mut out = Vec::new();
        match refused.read_to_end(&mut out).await {
            Ok(_) => assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out)),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        }
        assert_eq!((limit.refused(), limit.open()), (1, 1));
        release.notify_one();
        assert!(read_to_end(&mut busy).await.ends_with("done"));
        // The place is free again once that connection's task has ended (bounded wait).
        for _ in 0..1000 {
            if limit.open() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(limit.open(), 0);
        let answer = read_to_end(&mut request(addr, "/hello").await).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        shutdown.cancel();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_never_finishes_its_head_is_dropped_after_the_timeout() {
        let server = start().await;
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(b"GET /hel").await.unwrap();
        // The paused clock jumps to the next timer whenever the runtime idles, so this takes
        // no real time; the server closes the connection once the timeout has passed.
        let started = tokio::time::Instant::now();
        let answer = read_to_end(&mut s).await;
        assert!(
            started.elapsed() >= HEADER_READ_TIMEOUT,
            "{:?}",
            started.elapsed()
        );
        assert!(!answer.contains("200 OK"), "{answer}");
    }
}
