//! Active HTTP health checks: every `interval`, a GET of the cluster's `path` on each endpoint over a
//! fresh connection; a 2xx or 3xx answer within `timeout` passes. `unhealthy_threshold` failures in a
//! row take the endpoint out (a flag beside drain and ejection, read with them in one load);
//! `healthy_threshold` passes bring it back. A passing check also ends an outlier ejection for a
//! refused or timed-out connect (half-open), and an endpoint whose last check failed is not let back
//! in when its ejection period ends. Endpoints start in. At most 64 checks run at once.

use crate::tables::Tables;
use http_body_util::Empty;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// How often the scheduler looks for due checks.
const TICK: Duration = Duration::from_millis(100);
/// Checks in flight at most.
const CONCURRENCY: usize = 64;

/// GETs `path` from `connect` (host and port to connect to) with Host `authority`: whether it answered
/// 2xx or 3xx within `timeout`.
pub async fn http_check(
    connect: (&str, u16),
    authority: &str,
    path: &str,
    timeout: Duration,
) -> bool {
    passes(connect, authority, path, timeout, false).await
}

/// [`http_check`] over HTTP/1.1, or over cleartext HTTP/2 with prior knowledge (`h2c`).
async fn passes(
    connect: (&str, u16),
    authority: &str,
    path: &str,
    timeout: Duration,
    h2c: bool,
) -> bool {
    tokio::time::timeout(timeout, get(connect, authority, path, h2c))
        .await
        .is_ok_and(|r| r.is_some_and(|s| s.is_success() || s.is_redirection()))
}

async fn get(
    connect: (&str, u16),
    authority: &str,
    path: &str,
    h2c: bool,
) -> Option<http::StatusCode> {
    let stream = tokio::net::TcpStream::connect(connect).await.ok()?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let req = http::Request::get(path).header(http::header::USER_AGENT, "edgeplane-health-check");
    if h2c {
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                .await
                .ok()?;
        tokio::spawn(conn);
        let uri = format!("http://{authority}{path}");
        let req = req.uri(uri).body(Empty::<bytes::Bytes>::new()).ok()?;
        return Some(sender.send_request(req).await.ok()?.status());
    }
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.ok()?;
    tokio::spawn(conn);
    let req = req
        .header(http::header::HOST, authority)
        .body(Empty::<bytes::Bytes>::new())
        .ok()?;
    Some(sender.send_request(req).await.ok()?.status())
}

/// Checks the endpoints of every cluster that has `[health_check]`, until the task is dropped.
pub(crate) async fn run(tables: Arc<Tables>) {
    let slots = Arc::new(Semaphore::new(CONCURRENCY));
    let mut every = tokio::time::interval(TICK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let now = Instant::now();
        let snap = tables.load();
        for c in &snap.clusters {
            let Some(hc) = &c.health_check else {
                for e in c.endpoints.iter().filter(|e| e.upstream.check_failed()) {
                    e.upstream.set_check_failed(false);
                }
                continue;
            };
            for e in &c.endpoints {
                let u = &e.upstream;
                let mut st = u.checks.lock().unwrap_or_else(|p| p.into_inner());
                if st.next.is_some_and(|n| n > now) {
                    continue;
                }
                // All slots busy: this endpoint stays due and is checked on a later tick.
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    break;
                };
                st.next = Some(now + hc.interval);
                drop(st);
                spawn_check(u.clone(), hc.clone(), c.name.clone(), c.h2c, permit);
            }
        }
    }
}

/// Runs one check of `u` and records its outcome.
fn spawn_check(
    u: Arc<crate::upstream::Upstream>,
    hc: edgeplane_config::model::HealthCheck,
    cluster: Arc<str>,
    h2c: bool,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    tokio::spawn(async move {
        let address: SocketAddr = u.address;
        let host = address.ip().to_string();
        let passed = passes(
            (&host, address.port()),
            &address.to_string(),
            &hc.path,
            hc.timeout,
            h2c,
        )
        .await;
        drop(permit);
        let mut st = u.checks.lock().unwrap_or_else(|p| p.into_inner());
        if passed {
            st.passes += 1;
            st.failures = 0;
            if u.check_failed() && st.passes >= hc.healthy_threshold {
                u.set_check_failed(false);
                tracing::info!(%cluster, endpoint = %address, "health check passing again");
            }
        } else {
            st.failures += 1;
            st.passes = 0;
            if !u.check_failed() && st.failures >= hc.unhealthy_threshold {
                u.set_check_failed(true);
                tracing::warn!(%cluster, endpoint = %address, failures = st.failures,
                    "health check failing; endpoint out");
            }
        }
        drop(st);
        if passed {
            // It answers: an ejection for a refused or timed-out connect ends (half-open).
            crate::upstream::outlier::readmit(&u, &cluster);
        }
    });
}
