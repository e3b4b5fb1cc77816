//! TLS to a cluster's endpoints: verification with the system's roots or a configured CA, the SNI
//! name (verified against the certificate), an optional client certificate (mutual TLS), and ALPN h2
//! when the cluster asks for HTTP/2. Built with the snapshot (files read on the cold path); a
//! connection only runs the handshake.

use crate::error::SettingError;
use edgeplane_config::model::UpstreamTls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// A cluster's TLS client.
pub(crate) struct TlsClient {
    connector: TlsConnector,
    name: Option<ServerName<'static>>,
    /// The settings it was built from (to reuse it while they stay the same).
    pub(crate) settings: UpstreamTls,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The system's roots, loaded once per process (parsing them takes milliseconds).
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            if !found.errors.is_empty() {
                tracing::warn!(errors = ?found.errors, "some system CA certificates could not be loaded");
            }
            let mut roots = RootCertStore::empty();
            let (added, ignored) = roots.add_parsable_certificates(found.certs);
            tracing::debug!(added, ignored, "system CA roots loaded");
            Arc::new(roots)
        })
        .clone()
}

fn read(path: &std::path::Path, at: &str) -> Result<Vec<u8>, SettingError> {
    std::fs::read(path)
        .map_err(|e| SettingError::new(at, format!("cannot read {}: {e}", path.display())))
}

impl TlsClient {
    /// The client for `settings`; `at` is the settings' path for errors (`clusters.api.tls`).
    pub(crate) fn build(settings: &UpstreamTls, at: &str) -> Result<TlsClient, SettingError> {
        let roots = match &settings.ca {
            None => system_roots(),
            Some(ca) => {
                let pem = read(ca, &format!("{at}.ca"))?;
                let mut roots = RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(&pem) {
                    let cert = cert.map_err(|e| {
                        SettingError::new(format!("{at}.ca"), format!("not PEM: {e}"))
                    })?;
                    roots.add(cert).map_err(|e| {
                        SettingError::new(format!("{at}.ca"), format!("not a CA certificate: {e}"))
                    })?;
                }
                if roots.is_empty() {
                    return Err(SettingError::new(
                        format!("{at}.ca"),
                        "no CERTIFICATE block",
                    ));
                }
                Arc::new(roots)
            }
        };
        let builder = ClientConfig::builder_with_provider(crate::tables::certs::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| SettingError::new(at, e.to_string()))?
            .with_root_certificates(roots);
        let mut config = match &settings.client {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain =
                    CertificateDer::pem_slice_iter(&read(cert, &format!("{at}.client_cert"))?)
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| {
                            SettingError::new(format!("{at}.client_cert"), format!("not PEM: {e}"))
                        })?;
                let key = PrivateKeyDer::from_pem_slice(&read(key, &format!("{at}.client_key"))?)
                    .map_err(|e| {
                    SettingError::new(
                        format!("{at}.client_key"),
                        format!("not a PEM private key: {e}"),
                    )
                })?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| SettingError::new(format!("{at}.client_key"), e.to_string()))?
            }
        };
        config.alpn_protocols = if settings.h2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        let name = match &settings.sni {
            Some(sni) => Some(
                ServerName::try_from(sni.clone())
                    .map_err(|e| SettingError::new(format!("{at}.sni"), e.to_string()))?,
            ),
            None => None,
        };
        Ok(TlsClient {
            connector: TlsConnector::from(Arc::new(config)),
            name,
            settings: settings.clone(),
        })
    }

    /// Runs the handshake on `tcp` to `address`; whether HTTP/2 was agreed.
    pub(crate) async fn connect(
        &self,
        tcp: TcpStream,
        address: SocketAddr,
    ) -> std::io::Result<(TlsStream<TcpStream>, bool)> {
        let name = self
            .name
            .clone()
            .unwrap_or(ServerName::IpAddress(address.ip().into()));
        let stream = self.connector.connect(name, tcp).await?;
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
        Ok((stream, h2))
    }
}
