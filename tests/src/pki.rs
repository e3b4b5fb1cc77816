//! Certificates made at test time: a CA, and leaves it signs for the names a test asks for.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A test CA.
pub struct TestPki {
    /// The CA certificate, PEM.
    pub ca_pem: String,
    ca: Issuer<'static, KeyPair>,
}

impl TestPki {
    /// A new CA.
    pub fn new() -> TestPki {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(DnType::CommonName, "edgeplane test CA");
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_pem = p.self_signed(&key).unwrap().pem();
        TestPki {
            ca_pem,
            ca: Issuer::new(p, key),
        }
    }

    /// A server certificate for `names` (DNS names, wildcards or IPs): (chain PEM, key PEM).
    pub fn server(&self, names: &[&str]) -> (String, String) {
        self.leaf(names, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate: (chain PEM, key PEM).
    pub fn client(&self, name: &str) -> (String, String) {
        self.leaf(&[name], ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn leaf(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
        p.distinguished_name
            .push(DnType::CommonName, names.first().copied().unwrap_or("leaf"));
        p.use_authority_key_identifier_extension = true;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![usage];
        (
            p.signed_by(&key, &self.ca).unwrap().pem(),
            key.serialize_pem(),
        )
    }

    /// A rustls server configuration with a certificate for `names`, offering h2 and http/1.1, and,
    /// with `verify_clients`, requiring a client certificate signed by this CA.
    pub fn server_config(&self, names: &[&str], verify_clients: bool) -> Arc<ServerConfig> {
        let (cert, key) = self.server(names);
        let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if verify_clients {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_slice(self.ca_pem.as_bytes()).unwrap())
                .unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder.with_single_cert(chain, key).unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    }

    /// Writes `text` into `dir` as `name`; its path.
    pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Writes the CA certificate into `dir`; its path.
    pub fn write_ca(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, &self.ca_pem).unwrap();
        path
    }
}

impl Default for TestPki {
    fn default() -> Self {
        TestPki::new()
    }
}
