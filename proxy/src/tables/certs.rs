//! The certificate table of a routing: certificates and keys loaded (files or inline PEM), each
//! key checked against its certificate, names taken from the subject alternative names, and the
//! SNI lookup (exact name, then a wildcard one label up, then the default: the first entry). Built
//! with each snapshot, so a new certificate takes effect at the next handshake and a bad one rejects
//! the routing whole. The listener side (resolver, server configs, file watcher)
//! is `downstream/tls.rs`.

use crate::error::SettingError;
use edgeplane_config::model::{Certificate, Pem};
use foldhash::HashMap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
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
    pub(crate) files: Vec<PathBuf>,
}

/// The provider every TLS configuration of the node uses.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl CertTable {
    /// Loads every certificate of a routing; the error lists each bad one with its path
    /// (`certificates[1].key: ...`).
    pub fn load(certificates: &[Certificate]) -> Result<CertTable, Vec<SettingError>> {
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
    pub(crate) fn pick(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
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
}

fn read(pem: &Pem, path: &str, field: &str) -> Result<Vec<u8>, SettingError> {
    match pem {
        Pem::Inline(text) => Ok(text.as_bytes().to_vec()),
        Pem::File(f) => std::fs::read(f).map_err(|e| {
            SettingError::new(
                format!("{path}.{field}"),
                format!("cannot read {}: {e}", f.display()),
            )
        }),
    }
}

/// One certificate: its chain and key checked against each other, and its DNS names.
fn load_one(
    c: &Certificate,
    provider: &CryptoProvider,
    path: &str,
) -> Result<(CertifiedKey, Vec<String>), SettingError> {
    let cert_pem = read(&c.cert, path, "cert")?;
    let key_pem = read(&c.key, path, "key")?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            SettingError::new(
                format!("{path}.cert"),
                format!("not a PEM certificate chain: {e}"),
            )
        })?;
    let leaf = chain
        .first()
        .ok_or_else(|| SettingError::new(format!("{path}.cert"), "no CERTIFICATE block"))?;
    let names: Vec<String> = webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| {
            SettingError::new(
                format!("{path}.cert"),
                format!("not a valid X.509 certificate: {e}"),
            )
        })?
        .valid_dns_names()
        .map(str::to_string)
        .collect();
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        SettingError::new(format!("{path}.key"), format!("not a PEM private key: {e}"))
    })?;
    let certified = CertifiedKey::from_der(chain, key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => SettingError::new(
            format!("{path}.key"),
            "the key does not match the certificate",
        ),
        other => SettingError::new(format!("{path}.key"), format!("unusable key: {other}")),
    })?;
    Ok((certified, names))
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
        let errors: Vec<String> = CertTable::load(&[inline(&a), mismatched, garbage, missing])
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
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
