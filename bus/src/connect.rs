//! Connecting to NATS: servers, authentication, TLS, keep-alive and reconnect policy, and counters for
//! the connection's events so that nothing goes wrong silently.

use crate::BusError;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// How a node authenticates. Exactly one method, or none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    /// No authentication.
    #[default]
    None,
    /// User and password.
    UserPassword {
        /// User.
        user: String,
        /// Password.
        password: String,
    },
    /// A token.
    Token(String),
    /// An nkey seed (`SU...`).
    NkeySeed(String),
    /// A `.creds` file (JWT plus nkey seed), as issued by `nsc`.
    CredsFile(PathBuf),
}

/// TLS to the NATS servers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA certificates (PEM) that sign the servers' certificates; without it, the system roots.
    pub ca: Option<PathBuf>,
    /// Client certificate and key (PEM) for mutual TLS.
    pub client: Option<(PathBuf, PathBuf)>,
    /// Refuse to connect without TLS.
    pub required: bool,
}

/// Everything needed to connect a node or a CLI command to NATS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusOptions {
    /// Server URLs (`nats://host:4222`, `tls://host:4222`); the client fails over between them.
    pub urls: Vec<String>,
    /// Authentication.
    pub credentials: Credentials,
    /// TLS.
    pub tls: TlsFiles,
    /// Client name shown by the server (`edgeplane-<node>`).
    pub name: String,
    /// Ping interval; an edge node wants a dead server noticed in seconds, not the default minute.
    pub ping_interval: Duration,
    /// Time allowed for one connection attempt.
    pub connect_timeout: Duration,
    /// Keep retrying the first connection in the background instead of failing (a node starts and
    /// serves from its last applied config while NATS is down).
    pub retry_initial: bool,
    /// Messages buffered per subscription before the server's messages are dropped (slow consumer).
    pub subscription_capacity: usize,
}

impl Default for BusOptions {
    fn default() -> Self {
        BusOptions {
            urls: vec!["nats://127.0.0.1:4222".into()],
            credentials: Credentials::None,
            tls: TlsFiles::default(),
            name: "edgeplane".into(),
            ping_interval: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            retry_initial: true,
            subscription_capacity: 65_536,
        }
    }
}

/// Counters of the connection's life, shared with whoever reports them (logs, the node's metrics).
#[derive(Debug, Default)]
pub struct BusStats {
    /// Connected to a server now.
    pub connected: AtomicBool,
    /// Times the client (re)connected.
    pub connects: AtomicU64,
    /// Times the connection was lost.
    pub disconnects: AtomicU64,
    /// Slow-consumer events: messages dropped because a subscription's buffer was full. The client
    /// reports them through a bounded queue of its own, so this counts at least one per burst, not
    /// every message.
    pub slow_consumers: AtomicU64,
    /// Slow-consumer events are logged at most once a second.
    slow_log: Throttle,
    /// So are client errors (one per failed reconnect attempt while a server is down).
    error_log: Throttle,
    /// Errors reported by the server or the client.
    pub errors: AtomicU64,
    /// Messages dropped because they did not decode ([`crate::DecodeError`]).
    pub decode_errors: AtomicU64,
    /// Messages received on the fleet's subjects (heartbeats, scaling events, config revisions).
    pub received: AtomicU64,
    /// Bumped at every (re)connection: followers watch it to read the current state at once instead
    /// of waiting for a stale JetStream consumer to notice.
    pub link: tokio::sync::watch::Sender<u64>,
}

/// At most one log line a second for a kind of event, saying how many happened since the last one.
#[derive(Debug, Default)]
struct Throttle {
    /// Events not logged yet.
    unlogged: AtomicU64,
    /// When one was last logged, in milliseconds since the Unix epoch.
    logged_at: AtomicU64,
}

impl Throttle {
    /// Counts an event; `Some(events since the last line)` when a line is due.
    fn due(&self) -> Option<u64> {
        self.unlogged.fetch_add(1, Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let last = self.logged_at.load(Relaxed);
        let due = now.saturating_sub(last) >= 1_000
            && self
                .logged_at
                .compare_exchange(last, now, Relaxed, Relaxed)
                .is_ok();
        due.then(|| self.unlogged.swap(0, Relaxed))
    }
}

impl BusStats {
    /// Counts and logs a message that could not be decoded.
    pub fn decode_failed(&self, subject: &str, error: &crate::DecodeError) {
        self.decode_errors.fetch_add(1, Relaxed);
        tracing::warn!(%subject, kind = error.kind(), %error, "dropped a malformed bus message");
    }
}

/// Longest wait between two reconnect attempts. Low, so that a node serving on a stale revision is
/// back within a second of a server being reachable again; a refused attempt costs the server
/// nothing, and the jitter spreads a fleet's attempts.
pub const RECONNECT_CAP: Duration = Duration::from_millis(500);

/// Reconnect delay: exponential from 25 ms up to [`RECONNECT_CAP`], each drawn uniformly between
/// half and all of its step, so that a fleet does not reconnect in lockstep after a server restart.
pub fn reconnect_delay(attempt: usize) -> Duration {
    let cap = RECONNECT_CAP.as_millis() as u64;
    let base = 25u64.saturating_mul(1u64 << attempt.min(10)).min(cap);
    // SplitMix64 over the clock's nanoseconds: enough spread, no RNG dependency.
    let mut z = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64 ^ (attempt as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .unwrap_or(0);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let half = base / 2;
    Duration::from_millis(half + z % (base - half + 1))
}

impl BusOptions {
    /// Connects with these options; events are counted in `stats` and logged.
    pub async fn connect(&self, stats: Arc<BusStats>) -> Result<async_nats::Client, BusError> {
        let mut opts = async_nats::ConnectOptions::new()
            .name(&self.name)
            .ping_interval(self.ping_interval)
            .connection_timeout(self.connect_timeout)
            .subscription_capacity(self.subscription_capacity)
            .reconnect_delay_callback(reconnect_delay)
            .event_callback(move |event| {
                let stats = stats.clone();
                async move { record(&stats, event) }
            });
        if self.retry_initial {
            opts = opts.retry_on_initial_connect();
        }
        opts = match &self.credentials {
            Credentials::None => opts,
            Credentials::UserPassword { user, password } => {
                opts.user_and_password(user.clone(), password.clone())
            }
            Credentials::Token(t) => opts.token(t.clone()),
            Credentials::NkeySeed(seed) => opts.nkey(seed.clone()),
            Credentials::CredsFile(path) => opts.credentials_file(path).await.map_err(|e| {
                BusError::Options(format!("credentials file {}: {e}", path.display()))
            })?,
        };
        if let Some(ca) = &self.tls.ca {
            opts = opts.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &self.tls.client {
            opts = opts.add_client_certificate(cert.clone(), key.clone());
        }
        if self.tls.required {
            opts = opts.require_tls(true);
        }
        let urls: Vec<async_nats::ServerAddr> = self
            .urls
            .iter()
            .map(|u| {
                u.parse()
                    .map_err(|e| BusError::Options(format!("server URL {u:?}: {e}")))
            })
            .collect::<Result<_, _>>()?;
        opts.connect(urls.as_slice())
            .await
            .map_err(|e| BusError::Connect(e.to_string()))
    }
}

fn record(stats: &BusStats, event: async_nats::Event) {
    use async_nats::Event;
    match event {
        Event::Connected => {
            stats.connected.store(true, Relaxed);
            stats.connects.fetch_add(1, Relaxed);
            stats.link.send_modify(|n| *n += 1);
            tracing::info!("connected to NATS");
        }
        Event::Disconnected => {
            stats.connected.store(false, Relaxed);
            stats.disconnects.fetch_add(1, Relaxed);
            tracing::warn!("disconnected from NATS; reconnecting");
        }
        Event::SlowConsumer(sid) => {
            stats.slow_consumers.fetch_add(1, Relaxed);
            if let Some(events) = stats.slow_log.due() {
                tracing::warn!(
                    subscription = sid,
                    events,
                    "NATS slow consumer: messages were dropped"
                );
            }
        }
        Event::ServerError(e) => {
            stats.errors.fetch_add(1, Relaxed);
            tracing::warn!(error = %e, "NATS server error");
        }
        Event::ClientError(e) => {
            stats.errors.fetch_add(1, Relaxed);
            if let Some(events) = stats.error_log.due() {
                tracing::warn!(error = %e, events, "NATS client error");
            }
        }
        other => tracing::info!(event = %other, "NATS connection event"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttle_logs_at_most_once_a_second_with_the_count() {
        let t = Throttle::default();
        assert_eq!(t.due(), Some(1), "the first event is logged");
        for _ in 0..500 {
            assert_eq!(t.due(), None);
        }
        t.logged_at.store(0, Relaxed);
        assert_eq!(t.due(), Some(501), "the next line carries the count");
    }

    #[test]
    fn reconnect_delay_grows_with_jitter_and_a_cap() {
        for attempt in 0..20 {
            let base = (25u64 << attempt.min(10)).min(500);
            let d = reconnect_delay(attempt).as_millis() as u64;
            assert!(
                d >= base / 2 && d <= base,
                "attempt {attempt}: {d} ms vs base {base}"
            );
        }
        assert!(reconnect_delay(usize::MAX) <= RECONNECT_CAP);
        // Spread: 200 draws at the cap are not all alike.
        let draws: std::collections::BTreeSet<_> = (0..200).map(|_| reconnect_delay(30)).collect();
        assert!(draws.len() > 20, "{} distinct delays", draws.len());
    }
}
