//! What both listeners (the API and the agent gateway) enforce on every
//! connection before a request reaches a handler: how long a client may
//! take to send a request head, how long a request body may stall, and how
//! many connections one client address may hold at once.
//!
//! The API's accept loop is here too ([`serve_http`]): axum's own `serve`
//! cannot set a header read timeout.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Limits on each connection of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// A request head (request line and headers) must arrive within this
    /// long of the connection opening or of the previous request ending.
    pub header_read_timeout: Duration,
    /// A request body that sends nothing for this long is abandoned (the
    /// timer restarts with every chunk, so large uploads on slow links
    /// still work).
    pub body_idle_timeout: Duration,
    /// Connections one client address may hold at once; further ones are
    /// closed as they arrive. `0`: no limit (behind a proxy, every client
    /// has the proxy's address).
    pub per_address: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_idle_timeout: Duration::from_secs(30),
            per_address: 256,
        }
    }
}

/// Counts the open connections of each client address.
#[derive(Debug, Default)]
pub struct AddressSlots {
    limit: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place in [`AddressSlots`], given back when dropped.
#[derive(Debug)]
pub struct AddressSlot {
    slots: Arc<AddressSlots>,
    address: IpAddr,
}

impl AddressSlots {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self { limit, open: Mutex::new(HashMap::new()) })
    }

    /// A place for one more connection from `address`, or `None` when it
    /// holds as many as it may.
    pub fn take(self: &Arc<Self>, address: IpAddr) -> Option<AddressSlot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(address).or_insert(0);
        if self.limit > 0 && *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(AddressSlot { slots: self.clone(), address })
    }

    /// Connections `address` holds now.
    pub fn open(&self, address: IpAddr) -> usize {
        self.open.lock().unwrap_or_else(PoisonError::into_inner).get(&address).copied().unwrap_or(0)
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

/// The next connection of `listener` with its place in `slots` (`None`:
/// its address holds its limit), or `None` once `shutdown` is cancelled.
/// Accept errors (usually a passing shortage of file descriptors) are
/// logged and waited out.
pub async fn accept(
    listener: &TcpListener,
    slots: &Arc<AddressSlots>,
    shutdown: &CancellationToken,
    what: &str,
) -> Option<(tokio::net::TcpStream, SocketAddr, Option<AddressSlot>)> {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return None,
            accepted = listener.accept() => match accepted {
                Ok((tcp, addr)) => return Some((tcp, addr, slots.take(addr.ip()))),
                Err(e) => {
                    tracing::warn!(error = %e, listener = what, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// A hyper connection builder with the header read timeout set.
pub fn connection_builder(
    limits: &ConnectionLimits,
) -> hyper_util::server::conn::auto::Builder<TokioExecutor> {
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    builder
}

/// Serves `router` on `listener` under `limits` until `shutdown` is
/// cancelled; then stops accepting, asks every connection to finish its
/// request, and returns once they have (the caller bounds the wait).
/// Handlers see the peer as `ConnectInfo<SocketAddr>`.
pub async fn serve_http(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
    on_refused: impl Fn(IpAddr) + Send + Sync + 'static,
) {
    let slots = AddressSlots::new(limits.per_address);
    let tracker = TaskTracker::new();
    let service = tower::ServiceBuilder::new()
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(limits.body_idle_timeout))
        .service(router);
    while let Some((tcp, addr, slot)) = accept(&listener, &slots, &shutdown, "API").await {
        let Some(slot) = slot else {
            on_refused(addr.ip());
            drop(tcp);
            continue;
        };
        // Without TCP_NODELAY, a streamed event waits for the acknowledgement
        // of the one before it (Nagle's algorithm against delayed ACKs).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY on an API connection");
        }
        let service = service.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let _slot = slot;
            let service = tower::ServiceExt::map_request(service, move |mut req: http::Request<_>| {
                req.extensions_mut().insert(ConnectInfo::<SocketAddr>(addr));
                req
            });
            let service = tower::ServiceExt::map_err(service, |never: Infallible| match never {});
            let connection = connection_builder(&limits)
                .serve_connection_with_upgrades(TokioIo::new(tcp), TowerToHyperService::new(service))
                .into_owned();
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%addr, error = %e, "API connection ended with an error");
                    }
                }
                () = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    tracker.close();
    tracker.wait().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_its_limit_and_slots_come_back() {
        let slots = AddressSlots::new(2);
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let first = slots.take(a).unwrap();
        let _second = slots.take(a).unwrap();
        assert!(slots.take(a).is_none(), "a third connection from one address is refused");
        assert!(slots.take(b).is_some(), "other addresses are not affected");
        drop(first);
        assert_eq!(slots.open(a), 1);
        assert!(slots.take(a).is_some());
        let unlimited = AddressSlots::new(0);
        let held: Vec<_> = (0..1000).map(|_| unlimited.take(a).unwrap()).collect();
        assert_eq!(unlimited.open(a), held.len());
    }
}
