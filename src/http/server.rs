//! The HTTP server: hyper's HTTP/1 connections under the limits a public endpoint needs.
//! `axum::serve` gives hyper no timer, so a client that never finishes its headers would
//! hold its connection for ever; here every connection has its timers, the connections
//! served at once have a cap, and shutdown has a deadline.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tower::ServiceExt;

/// How much the server takes on, and how long it waits for whom (README, "Limits").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    /// A request's head must arrive within this, counted from the connection's start or
    /// from its previous response.
    pub header_timeout: Duration,
    /// How long an idle connection waits for its next request; `None`: one request per
    /// connection.
    pub keep_alive: Option<Duration>,
    /// A request's whole body must arrive within this, once its head has.
    pub body_timeout: Duration,
    /// The longest a request is handled, its body included.
    pub request_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// Webhooks handled at once; more are shed with 503.
    pub webhook_concurrency: usize,
    /// How long shutdown waits for in-flight work.
    pub shutdown_grace: Duration,
}

/// Serves `router` until `shutdown` resolves. Then it closes the listener (new connections
/// are refused), lets each connection finish the request it is on, and returns once all
/// are closed, or once `shutdown_grace` has passed, closing those left.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &ServerLimits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (closing, closing_seen) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next() => {}
            (stream, slot) = accept(&listener, &slots) => {
                let connection = serve_connection(
                    stream,
                    router.clone(),
                    limits.clone(),
                    closing_seen.clone(),
                    slot,
                );
                connections.spawn(connection);
            }
        }
    }
    drop(listener);
    closing.send_replace(true);
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            cut_off = connections.len(),
            "connections still open when the shutdown grace period ended; closed"
        );
        connections.abort_all();
    }
}

/// The next connection, once there is room for it. Until then, connections wait in the
/// listen backlog, where they hold no file descriptor of the process.
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> (TcpStream, OwnedSemaphorePermit) {
    let slot = slots
        .clone()
        .acquire_owned()
        .await
        .expect("the semaphore is never closed");
    loop {
        match listener.accept().await {
            Ok((stream, _)) => return (stream, slot),
            Err(error) => {
                // Out of descriptors, say: waiting lets some close, spinning would not.
                tracing::error!(%error, "accepting a connection failed; retrying in 100 ms");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// What a connection is doing: serving a request or not, and how many times that has
/// changed, so a request that came and went between two looks is not missed.
#[derive(Clone, Copy, Debug, Default)]
struct Activity {
    busy: bool,
    changes: u64,
}

/// One connection, until the client closes it, a timeout does, or shutdown does once
/// the request in progress is answered. Holds its slot until then.
async fn serve_connection(
    stream: TcpStream,
    router: Router,
    limits: ServerLimits,
    mut closing: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    // Answers are written whole: no reason to wait for more of them to fill a packet.
    let _ = stream.set_nodelay(true);
    // For per-client limits (the storefront's).
    let peer = stream.peer_addr().ok();
    let (activity, watched) = watch::channel(Activity::default());
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let activity = activity.clone();
        let change = move |busy: bool| {
            activity.send_modify(|now| {
                now.busy = busy;
                now.changes += 1;
            })
        };
        change(true);
        let mut request = request.map(Body::new);
        if let Some(peer) = peer {
            request.extensions_mut().insert(ConnectInfo(peer));
        }
        let response = router.clone().oneshot(request);
        async move {
            let response = response.await;
            change(false);
            response
        }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(limits.keep_alive.is_some())
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let idle = idle(watched, limits.keep_alive);
    tokio::pin!(idle);
    let mut winding_down = false;
    loop {
        tokio::select! {
            ended = connection.as_mut() => {
                if let Err(error) = ended {
                    tracing::debug!(%error, "connection closed");
                }
                return;
            }
            _ = closing.wait_for(|closing| *closing), if !winding_down => {
                connection.as_mut().graceful_shutdown();
                winding_down = true;
            }
            () = &mut idle, if !winding_down => {
                connection.as_mut().graceful_shutdown();
                winding_down = true;
            }
        }
    }
}

/// Resolves once the connection has waited `keep_alive` for its next request. Before the
/// first request the header timeout applies instead; without keep-alive hyper closes the
/// connection after one request, so this never resolves.
async fn idle(mut activity: watch::Receiver<Activity>, keep_alive: Option<Duration>) {
    let Some(keep_alive) = keep_alive else {
        return std::future::pending().await;
    };
    loop {
        let answered = activity.wait_for(|now| !now.busy && now.changes > 0).await;
        let Ok(changes) = answered.map(|now| now.changes) else {
            return std::future::pending().await;
        };
        let next = activity.wait_for(|now| now.changes != changes);
        if tokio::time::timeout(keep_alive, next).await.is_err() {
            return;
        }
    }
}
