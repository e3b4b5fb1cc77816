//! Certificates made at test time: a CA, and leaves it signs for the names a test asks for.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

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
