//! TLS termination, the listener side: the resolver that picks each handshake's certificate by SNI
//! from the current snapshot's certificate table (`tables/certs.rs`), each TLS listener's rustls
//! configuration, and the watcher that rebuilds the table when certificate files change.

use crate::stamp::{self, Stamp};
use crate::tables::certs::provider;
use crate::tables::certs::CertTable;
use crate::tables::Tables;
use edgeplane_config::model::ListenerTls;
use rustls::server::{ClientHello, ResolvesServerCert, ServerConfig};
use rustls::sign::CertifiedKey;
use std::sync::Arc;

/// Picks each handshake's certificate from the current snapshot.
#[derive(Debug)]
pub(crate) struct SniResolver {
    tables: Arc<Tables>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // rustls hands the SNI name over in lower case.
        self.tables.guard().certs.pick(hello.server_name())
    }
}

/// The rustls configuration of a TLS listener: its versions and ALPN, certificates by SNI from the
/// tables.
pub(crate) fn server_config(
    tls: &ListenerTls,
    tables: Arc<Tables>,
) -> Result<ServerConfig, rustls::Error> {
    let versions: &[&rustls::SupportedProtocolVersion] = if tls.tls12 {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13]
    };
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver { tables }));
    config.alpn_protocols = tls.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Ok(config)
}

/// How often certificate files are checked for changes.
pub(crate) const WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// Watches the current snapshot's certificate files (metadata, four times a second, like the config
/// file) and loads them again when one changes: new handshakes use the new certificate at once, live
/// connections keep theirs. A bad new file is logged and the old certificate stays.
pub(crate) async fn watch(tables: Arc<Tables>) {
    let mut every = tokio::time::interval(WATCH_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen: Option<(Arc<CertTable>, Vec<Option<Stamp>>)> = None;
    loop {
        every.tick().await;
        let certs = tables.guard().certs.clone();
        let stamps: Vec<Option<Stamp>> = certs.files.iter().map(|f| stamp::of(f)).collect();
        match &seen {
            // The same table as last time, and its files changed since: load them again.
            Some((table, before)) if Arc::ptr_eq(table, &certs) && *before != stamps => {
                match tables.reload_certificates() {
                    Ok(snap) => {
                        tracing::info!(
                            generation = snap.generation,
                            "certificates reloaded from their files"
                        );
                    }
                    Err(e) => {
                        tracing::error!(errors = ?e.lines(), "certificate files rejected; keeping the current certificates");
                    }
                }
            }
            _ => {}
        }
        // Remember the stamps of whatever table is current now (a rejected reload keeps the old
        // table, with the new stamps: the bad files are not retried until they change again).
        seen = Some((tables.guard().certs.clone(), stamps));
    }
}
