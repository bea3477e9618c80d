//! The server's limits over real sockets on 127.0.0.1: slow clients are cut off, connections
//! beyond the cap wait, slow requests end with a problem, and normal requests are served.

use std::net::SocketAddr;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use integrations::server::{serve, ServerLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Long enough that only a broken limit, never a slow machine, makes a test wait this long.
const GENEROUS: Duration = Duration::from_secs(10);

const REQUEST: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
/// The first half of a request's headers, never completed.
const HALF_A_REQUEST: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n";

/// Far more than the socket buffers of both ends hold.
const BIG_RESPONSE: usize = 64 * 1024 * 1024;

struct Server {
    address: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

async fn start(limits: ServerLimits) -> Server {
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/big", get(|| async { vec![b'x'; BIG_RESPONSE] }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(600)).await;
                "late"
            }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, router, limits, async {
        let _ = stopped.await;
    }));
    Server { address, stop, task }
}

fn limits() -> ServerLimits {
    ServerLimits {
        header_read_timeout: Duration::from_secs(30),
        request_timeout: Duration::from_secs(30),
        max_connections: 16,
        write_stall_timeout: Duration::from_secs(30),
    }
}

/// Reads until the server closes the connection, within [`GENEROUS`]; returns what it sent.
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let read = tokio::time::timeout(GENEROUS, stream.read_to_end(&mut received)).await;
    let closed = match read {
        Ok(Ok(_)) => true,
        // A reset is a disconnect too.
        Ok(Err(error)) => error.kind() == std::io::ErrorKind::ConnectionReset,
        Err(_) => false,
    };
    assert!(closed, "the server kept the connection open");
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test]
async fn serves_a_normal_request_and_stops_on_shutdown() {
    let server = start(limits()).await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    stream.write_all(REQUEST).await.unwrap();
    let response = read_until_closed(&mut stream).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("ok"), "{response}");
    server.stop.send(()).unwrap();
    let stopped = tokio::time::timeout(GENEROUS, server.task).await;
    assert!(matches!(stopped, Ok(Ok(Ok(())))), "serve did not return after shutdown");
}

#[tokio::test]
async fn disconnects_a_client_that_stops_halfway_through_its_headers() {
    let server = start(ServerLimits {
        header_read_timeout: Duration::from_secs(1),
        ..limits()
    })
    .await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    stream.write_all(HALF_A_REQUEST).await.unwrap();
    let response = read_until_closed(&mut stream).await;
    assert!(!response.contains("200 OK"), "{response}");
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let server = start(ServerLimits {
        max_connections: 2,
        ..limits()
    })
    .await;
    let mut tricklers = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(server.address).await.unwrap();
        stream.write_all(HALF_A_REQUEST).await.unwrap();
        tricklers.push(stream);
    }
    // The kernel completes the handshake, but the server does not take this connection up.
    let mut third = TcpStream::connect(server.address).await.unwrap();
    third.write_all(REQUEST).await.unwrap();
    let mut first_byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_secs(1), third.read(&mut first_byte)).await;
    assert!(early.is_err(), "a third connection was served while two held the slots");
    // Once a trickler goes away its slot is free, and the waiting connection is served.
    drop(tricklers.pop());
    let response = read_until_closed(&mut third).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

#[tokio::test]
async fn a_request_past_the_request_timeout_gets_a_problem() {
    let server = start(ServerLimits {
        request_timeout: Duration::from_secs(1),
        ..limits()
    })
    .await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    stream
        .write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let response = read_until_closed(&mut stream).await;
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    assert!(response.contains("application/problem+json"), "{response}");
    assert!(
        response.contains("https://integrations.dev/problems/request-timeout"),
        "{response}"
    );
}

#[tokio::test]
async fn disconnects_a_client_that_stops_reading_its_response() {
    let server = start(ServerLimits {
        write_stall_timeout: Duration::from_secs(1),
        ..limits()
    })
    .await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    stream
        .write_all(b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    // Not reading: the buffers fill and the server's writes stall past the limit.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut received = 0usize;
    let mut chunk = vec![0u8; 1 << 16];
    let drained = tokio::time::timeout(GENEROUS, async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received += n,
            }
        }
    })
    .await;
    assert!(drained.is_ok(), "the server kept the connection open");
    assert!(
        received < BIG_RESPONSE,
        "the whole response arrived: the stalled writer was never cut off"
    );
}
