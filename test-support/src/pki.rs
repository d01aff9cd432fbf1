//! A certificate authority and a server certificate signed by it, made fresh for one test with
//! `rcgen`: what the TLS tests of the exporter's Config Server client and the bridge's `wss://`
//! listener trust and serve.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};

/// A CA and one server certificate it signed, in PEM and DER.
pub struct Pki {
    /// The CA certificate, PEM (a CA file to trust).
    pub ca_pem: String,
    /// The CA certificate, DER (for a client's root store).
    pub ca_der: Vec<u8>,
    /// The server certificate, PEM.
    pub cert_pem: String,
    /// The server certificate, DER.
    pub cert_der: Vec<u8>,
    /// The server's private key, PKCS#8 PEM.
    pub key_pem: String,
    /// The server's private key, PKCS#8 DER.
    pub key_der: Vec<u8>,
}

/// A CA named `ca_name` and a server certificate for `names`, signed by it. A name that parses
/// as an IP address goes into the certificate as one, any other as a DNS name.
pub fn make(ca_name: &str, names: &[&str]) -> Pki {
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("empty CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, ca_name);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().expect("CA key");
    let ca = CertifiedIssuer::self_signed(ca, ca_key).expect("self-signed CA");
    let key = KeyPair::generate().expect("server key");
    let mut leaf = CertificateParams::new(Vec::<String>::new()).expect("empty leaf params");
    leaf.subject_alt_names = names
        .iter()
        .map(|name| match name.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName((*name).try_into().expect("a DNS name")),
        })
        .collect();
    let leaf = leaf.signed_by(&key, &ca).expect("leaf signed by the CA");
    Pki {
        ca_pem: ca.pem(),
        ca_der: ca.der().to_vec(),
        cert_pem: leaf.pem(),
        cert_der: leaf.der().to_vec(),
        key_pem: key.serialize_pem(),
        key_der: key.serialize_der(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_names_what_it_was_made_for() {
        let pki = make("test CA", &["localhost", "127.0.0.1"]);
        assert!(pki.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(pki.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(pki.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_ne!(pki.ca_der, pki.cert_der);
        // The names sit in the DER as written: the DNS name as text, the address as 4 bytes.
        let has = |needle: &[u8]| pki.cert_der.windows(needle.len()).any(|w| w == needle);
        assert!(has(b"localhost"));
        assert!(has(&[127, 0, 0, 1]));
    }
}
