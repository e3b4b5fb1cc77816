//! TLS termination: the certificate table of a routing (built with each snapshot, so that a new
//! certificate takes effect at the next handshake and a bad one rejects the routing whole), the
//! resolver that picks a certificate by SNI from the current snapshot, and each TLS listener's
//! rustls configuration.
//!
//! SNI selection: an exact name first, then a wildcard one label up (`*.example.com` covers
//! `a.example.com`, not `a.b.example.com`, as RFC 6125 says), then the default: the first
//! `[[certificates]]` entry. The names come from each certificate's subject alternative names.

use crate::stamp::{self, Stamp};
use crate::tables::Tables;
use edgeplane_config::model::{Certificate, ListenerTls, Pem};
use foldhash::HashMap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, ServerConfig};
use rustls::sign::CertifiedKey;
use std::path::PathBuf;
use std::sync::Arc;

/// The certificates of one routing, by name.
#[derive(Debug, Default)]
pub struct CertTable {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// By the suffix after `*.` (`example.com` for `*.example.com`).
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
    /// The files read, to notice when one changes.
    pub files: Vec<PathBuf>,
}

/// The provider every TLS configuration of the node uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl CertTable {
    /// Loads every certificate of a routing; the error lists each bad one with its path
    /// (`certificates[1].key: ...`).
    pub fn load(certificates: &[Certificate]) -> Result<CertTable, Vec<String>> {
        let provider = provider();
        let mut table = CertTable::default();
        let mut errors = Vec::new();
        for (i, c) in certificates.iter().enumerate() {
            let path = format!("certificates[{i}]");
            for pem in [&c.cert, &c.key] {
                if let Pem::File(f) = pem {
                    table.files.push(f.clone());
                }
            }
            match load_one(c, &provider, &path) {
                Ok((key, names)) => {
                    let key = Arc::new(key);
                    for name in names {
                        let name = name.to_ascii_lowercase();
                        match name.strip_prefix("*.") {
                            Some(suffix) => table.wildcard.entry(suffix.to_string()),
                            None => table.exact.entry(name),
                        }
                        .or_insert_with(|| key.clone());
                    }
                    table.default.get_or_insert(key);
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(table)
        } else {
            Err(errors)
        }
    }

    /// The certificate for a client that sent `sni` (or none).
    pub fn pick(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = sni {
            if let Some(k) = self.exact.get(name) {
                return Some(k.clone());
            }
            if let Some(k) = name
                .split_once('.')
                .and_then(|(_, parent)| self.wildcard.get(parent))
            {
                return Some(k.clone());
            }
        }
        self.default.clone()
    }

    /// Whether the table holds no certificate.
    pub fn is_empty(&self) -> bool {
        self.default.is_none()
    }
}

fn read(pem: &Pem, path: &str, field: &str) -> Result<Vec<u8>, String> {
    match pem {
        Pem::Inline(text) => Ok(text.as_bytes().to_vec()),
        Pem::File(f) => std::fs::read(f)
            .map_err(|e| format!("{path}.{field}: cannot read {}: {e}", f.display())),
    }
}

/// One certificate: its chain and key checked against each other, and its DNS names.
fn load_one(
    c: &Certificate,
    provider: &CryptoProvider,
    path: &str,
) -> Result<(CertifiedKey, Vec<String>), String> {
    let cert_pem = read(&c.cert, path, "cert")?;
    let key_pem = read(&c.key, path, "key")?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{path}.cert: not a PEM certificate chain: {e}"))?;
    let leaf = chain
        .first()
        .ok_or_else(|| format!("{path}.cert: no CERTIFICATE block"))?;
    let names: Vec<String> = webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| format!("{path}.cert: not a valid X.509 certificate: {e}"))?
        .valid_dns_names()
        .map(str::to_string)
        .collect();
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| format!("{path}.key: not a PEM private key: {e}"))?;
    let certified = CertifiedKey::from_der(chain, key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => {
            format!("{path}.key: the key does not match the certificate")
        }
        other => format!("{path}.key: unusable key: {other}"),
    })?;
    Ok((certified, names))
}

/// Picks each handshake's certificate from the current snapshot.
#[derive(Debug)]
pub struct SniResolver {
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
pub fn server_config(
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
pub const WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// Watches the current snapshot's certificate files (metadata, four times a second, like the config
/// file) and loads them again when one changes: new handshakes use the new certificate at once, live
/// connections keep theirs. A bad new file is logged and the old certificate stays.
pub async fn watch(tables: Arc<Tables>) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
    }

    fn inline((cert, key): &(String, String)) -> Certificate {
        Certificate {
            cert: Pem::Inline(cert.clone()),
            key: Pem::Inline(key.clone()),
        }
    }

    #[test]
    fn picks_exact_then_wildcard_then_the_default() {
        let (a, w, other) = (
            leaf(&["api.example.com"]),
            leaf(&["*.example.com"]),
            leaf(&["other.test"]),
        );
        let table = CertTable::load(&[inline(&other), inline(&a), inline(&w)]).unwrap();
        let end = |k: Option<Arc<CertifiedKey>>| k.unwrap().end_entity_cert().unwrap().to_vec();
        let der = |(pem, _): &(String, String)| {
            CertificateDer::from_pem_slice(pem.as_bytes())
                .unwrap()
                .to_vec()
        };
        assert_eq!(end(table.pick(Some("api.example.com"))), der(&a));
        assert_eq!(end(table.pick(Some("www.example.com"))), der(&w));
        assert_eq!(
            end(table.pick(Some("a.b.example.com"))),
            der(&other),
            "one label only"
        );
        assert_eq!(
            end(table.pick(Some("unknown.test"))),
            der(&other),
            "the first is the default"
        );
        assert_eq!(end(table.pick(None)), der(&other));
    }

    #[test]
    fn a_key_that_does_not_match_and_garbage_are_rejected_with_paths() {
        let (a, b) = (leaf(&["a.test"]), leaf(&["b.test"]));
        let mismatched = Certificate {
            cert: Pem::Inline(a.0.clone()),
            key: Pem::Inline(b.1.clone()),
        };
        let garbage = Certificate {
            cert: Pem::Inline(
                "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n".into(),
            ),
            key: Pem::Inline(a.1.clone()),
        };
        let missing = Certificate {
            cert: Pem::File("/nonexistent/cert.pem".into()),
            key: Pem::Inline(a.1.clone()),
        };
        let errors = CertTable::load(&[inline(&a), mismatched, garbage, missing]).unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:#?}");
        assert!(
            errors[0].starts_with("certificates[1].key: the key does not match"),
            "{errors:#?}"
        );
        assert!(
            errors[1].starts_with("certificates[2].cert:"),
            "{errors:#?}"
        );
        assert!(
            errors[2].starts_with("certificates[3].cert: cannot read /nonexistent/cert.pem"),
            "{errors:#?}"
        );
    }
}
