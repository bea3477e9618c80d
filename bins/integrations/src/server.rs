//! Serving the API over TCP with limits a slow or hostile client cannot outlast.
//!
//! `axum::serve` has no header-read timeout, no request timeout and no connection cap, so a few
//! hundred sockets trickling bytes could pin the server. Here connections are accepted as soon as
//! they arrive and each needs one of `max_connections` slots; when all are taken, the connection
//! idle the longest (accepted but silent, or kept alive between requests) is closed to make room,
//! so silent connections from anyone never keep a request that has arrived waiting ([`slots`]).
//! Only while every slot is reading or answering a request do new connections wait. Every
//! connection must deliver each request's headers within the header timeout (idle keep-alive
//! connections included), every request is answered within the request timeout, and a client
//! that stops reading its response is cut off after the write-stall limit ([`stream`]). At
//! start-up the process raises its open-file limit as far as it may and fits the cap under it
//! ([`open_files`]).

mod open_files;
mod slots;
mod stream;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use integrations_api::ApiError;
use integrations_problems::RequestError;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt;

pub use open_files::{connection_cap, raise_open_file_limit, RESERVED_FILES};
use slots::{InFlight, Slot, Slots};
use stream::ClientStream;

/// How long to wait before accepting again after `accept` failed (out of file descriptors, say).
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(100);

/// The limits [`serve`] enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    /// Time a client has to send a request's headers, counted from when the server starts waiting
    /// for them (so it also bounds idle keep-alive connections).
    pub header_read_timeout: Duration,
    /// Time to read a request's body and produce the response.
    pub request_timeout: Duration,
    /// Connections served at once; when all are taken, the one idle the longest is closed for a
    /// new one.
    pub max_connections: usize,
    /// Time a client may leave a response unread (its receive window full) before it is
    /// disconnected, so slow readers cannot hold the connection slots either.
    pub write_stall_timeout: Duration,
}

impl ServerLimits {
    /// These limits with the process's open-file limit raised to its hard limit and
    /// `max_connections` lowered to fit under it (logged when it is).
    pub fn within_open_file_limit(mut self) -> Self {
        match raise_open_file_limit() {
            Ok(Some(open_files)) => {
                let cap = connection_cap(self.max_connections, open_files);
                if cap < self.max_connections {
                    tracing::warn!(
                        configured = self.max_connections,
                        cap,
                        open_files,
                        "INTEGRATIONS_MAX_CONNECTIONS lowered to fit the open-file limit (ulimit -n)"
                    );
                }
                self.max_connections = cap;
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "cannot read the open-file limit"),
        }
        self
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then lets requests in flight finish
/// (for at most the request timeout).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let slots = Slots::new(limits.max_connections);
    // Tells the connections to finish; `closed` completes once every one has.
    let (finish, _) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Accepted at once, so that a connection never waits in the kernel's backlog behind silent
        // ones: those make room for it.
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let slot = tokio::select! {
            slot = slots.admit() => slot,
            () = &mut shutdown => break,
        };
        tokio::spawn(serve_connection(
            stream,
            slot,
            router.clone(),
            limits,
            finish.subscribe(),
        ));
    }
    drop(listener);
    finish.send_replace(());
    if tokio::time::timeout(limits.request_timeout, finish.closed())
        .await
        .is_err()
    {
        tracing::warn!("connections still open at shutdown were dropped");
    }
    Ok(())
}

/// Serves one connection until it closes; closes it once idle when it must make room, or when the
/// server shuts down.
async fn serve_connection(
    stream: TcpStream,
    slot: Slot,
    router: Router,
    limits: ServerLimits,
    mut finish: watch::Receiver<()>,
) {
    let tracker = slot.tracker();
    let request_timeout = limits.request_timeout;
    let service = hyper::service::service_fn(move |request| {
        let in_flight = tracker.request();
        let router = router.clone();
        async move {
            let response = answer(router, request_timeout, request).await;
            Ok::<_, Infallible>(response.map(|body| TrackedBody {
                body,
                _in_flight: in_flight,
            }))
        }
    });
    let stream = ClientStream::new(stream, limits.write_stall_timeout, slot.tracker());
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    let closed = tokio::select! {
        // The connection first: bytes that arrived with the request to close are read, and a
        // request they begin is answered before the connection closes.
        biased;
        closed = connection.as_mut() => closed,
        () = slot.closed_for_room() => {
            // An idle connection closes at once; one that took up a request meanwhile answers it.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
        _ = finish.changed() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = closed {
        tracing::debug!(%error, "connection closed with an error");
    }
    drop(slot);
}

/// Answers one request with `router`, or with a problem once `timeout` has passed.
async fn answer(router: Router, timeout: Duration, request: hyper::Request<Incoming>) -> Response {
    let response = router.oneshot(request.map(Body::new));
    match tokio::time::timeout(timeout, response).await {
        Ok(Ok(response)) => response,
        Ok(Err(never)) => match never {},
        Err(_) => ApiError::from(RequestError::RequestTimeout(timeout)).into_response(),
    }
}

/// A response body that keeps its request in flight until hyper has sent (or dropped) it: only
/// then is the connection idle again.
struct TrackedBody {
    body: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::oneshot;

    use super::*;

    /// Long enough that only a broken limit, never a slow machine, makes a test wait this long.
    const GENEROUS: Duration = Duration::from_secs(10);
    const KEEP_ALIVE_REQUEST: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    const LAST_REQUEST: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

    /// A server with one connection slot, whose timeouts are far longer than any test.
    async fn one_slot_server() -> (SocketAddr, oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let router = Router::new().route("/healthz", get(|| async { "ok" }));
        let limits = ServerLimits {
            header_read_timeout: Duration::from_secs(600),
            request_timeout: Duration::from_secs(600),
            max_connections: 1,
            write_stall_timeout: Duration::from_secs(600),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(serve(listener, router, limits, async {
            let _ = stopped.await;
        }));
        (address, stop)
    }

    /// Reads from `stream` until what arrived ends with `end` (within [`GENEROUS`]).
    async fn read_through(stream: &mut TcpStream, end: &[u8]) -> Vec<u8> {
        let mut received = Vec::new();
        let mut chunk = [0u8; 1024];
        while !received.ends_with(end) {
            let read = tokio::time::timeout(GENEROUS, stream.read(&mut chunk)).await;
            let count = read.expect("the server answers").unwrap();
            assert!(count > 0, "closed after {:?}", String::from_utf8_lossy(&received));
            received.extend_from_slice(&chunk[..count]);
        }
        received
    }

    /// Whether the server closed `stream` (within [`GENEROUS`]).
    async fn closed_by_the_server(stream: &mut TcpStream) -> bool {
        let mut byte = [0u8; 1];
        match tokio::time::timeout(GENEROUS, stream.read(&mut byte)).await {
            Ok(Ok(0)) | Ok(Err(_)) => true,
            Ok(Ok(_)) | Err(_) => false,
        }
    }

    /// A request on a new connection, answered while another connection holds the only slot.
    async fn served_alongside(address: SocketAddr) -> String {
        let mut newcomer = TcpStream::connect(address).await.unwrap();
        newcomer.write_all(LAST_REQUEST).await.unwrap();
        let response = read_through(&mut newcomer, b"ok").await;
        String::from_utf8_lossy(&response).into_owned()
    }

    #[tokio::test]
    async fn an_idle_keep_alive_connection_is_closed_to_make_room_for_a_new_one() {
        let (address, _stop) = one_slot_server().await;
        let mut kept_alive = TcpStream::connect(address).await.unwrap();
        kept_alive.write_all(KEEP_ALIVE_REQUEST).await.unwrap();
        read_through(&mut kept_alive, b"\r\n\r\nok").await;
        // Now idle between requests, holding the only slot.
        let response = served_alongside(address).await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(closed_by_the_server(&mut kept_alive).await);
    }

    #[tokio::test]
    async fn a_connection_that_never_sent_a_byte_is_closed_to_make_room_for_a_request() {
        let (address, _stop) = one_slot_server().await;
        let mut silent = TcpStream::connect(address).await.unwrap();
        let response = served_alongside(address).await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(closed_by_the_server(&mut silent).await);
    }
}
