//! Validation of TLS settings: listeners' versions and ALPN, and the shape of `[[certificates]]`
//! (the PEM itself is parsed when the routing is applied, where a bad certificate rejects it whole).

use super::Validator;
use crate::model::defaults::{cluster, node};
use crate::model::{Certificate, ListenerTls, Pem, UpstreamTls};
use crate::raw::{RawCertificate, RawListenerTls, RawUpstreamTls};

impl Validator {
    pub(super) fn listener_tls(&mut self, path: &str, raw: &RawListenerTls) -> ListenerTls {
        let tls12 = match raw.min_version.as_deref() {
            None => node::listener::tls::TLS12,
            Some("1.2") => true,
            Some("1.3") => false,
            Some(other) => {
                self.error(
                    format!("{path}.min_version"),
                    format!("unknown TLS version {other:?} (\"1.2\" or \"1.3\")"),
                );
                node::listener::tls::TLS12
            }
        };
        let alpn = raw.alpn.clone().unwrap_or_else(|| {
            node::listener::tls::ALPN
                .iter()
                .map(|p| p.to_string())
                .collect()
        });
        for (i, p) in alpn.iter().enumerate() {
            if !matches!(p.as_str(), "h2" | "http/1.1") {
                self.error(
                    format!("{path}.alpn[{i}]"),
                    format!("unsupported protocol {p:?} (\"h2\" or \"http/1.1\")"),
                );
            }
        }
        if alpn.is_empty() {
            self.error(format!("{path}.alpn"), "offer at least one protocol");
        }
        ListenerTls { tls12, alpn }
    }

    pub(super) fn upstream_tls(
        &mut self,
        path: &str,
        raw: &RawUpstreamTls,
        host_rewrite: Option<&str>,
    ) -> UpstreamTls {
        let sni = raw.sni.clone().or_else(|| host_rewrite.map(str::to_string));
        if let Some(name) = &raw.sni {
            let ok = !name.is_empty()
                && name.len() <= 253
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            if !ok {
                self.error(format!("{path}.sni"), format!("invalid DNS name {name:?}"));
            }
        }
        let client = self.cert_key_pair(
            path,
            ("client_cert", "client_key"),
            &raw.client_cert,
            &raw.client_key,
        );
        UpstreamTls {
            sni,
            ca: raw.ca.as_ref().map(Into::into),
            client,
            h2: raw.h2.unwrap_or(cluster::tls::H2),
        }
    }

    pub(super) fn certificate(&mut self, path: &str, raw: &RawCertificate) -> Certificate {
        let mut pem =
            |field: &str, file: &Option<String>, inline: &Option<String>| match (file, inline) {
                (Some(f), None) if !f.trim().is_empty() => Pem::File(f.into()),
                (None, Some(text)) if text.contains("-----BEGIN ") => Pem::Inline(text.clone()),
                (None, Some(_)) => {
                    self.error(
                        format!("{path}.{field}_pem"),
                        "not PEM text (no -----BEGIN line)",
                    );
                    Pem::Inline(String::new())
                }
                _ => {
                    self.error(
                        path,
                        format!("set exactly one of {field} (a file) and {field}_pem (inline)"),
                    );
                    Pem::Inline(String::new())
                }
            };
        Certificate {
            cert: pem("cert", &raw.cert, &raw.cert_pem),
            key: pem("key", &raw.key, &raw.key_pem),
        }
    }
}
