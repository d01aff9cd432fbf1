//! TLS for the plug listener (`wss://`): a PEM certificate chain and key, served with rustls
//! and its `ring` provider (no OpenSSL). TLS 1.2 stays on because the plugs' TLS stack may
//! not speak 1.3. A plug set to `ssl_ca: "*"` accepts any certificate; one set to
//! `user_ca.pem` checks it against the CA uploaded with `Shelly.PutUserCA`.
//!
//! Everything is read and checked at start-up: a missing file, a file without the expected
//! PEM block, or a key that does not belong to the certificate is a [`TlsError`] naming the
//! file, and the bridge exits 64 instead of refusing every plug later.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsFiles;

/// Why the TLS certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read the TLS {what} {}", path.display())]
    Read {
        /// `certificate` or `key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The certificate file holds no usable certificate.
    #[error(
        "the TLS certificate {} holds no PEM certificate (a block starting with \
         -----BEGIN CERTIFICATE-----){detail}", path.display()
    )]
    NoCertificate {
        /// The file.
        path: PathBuf,
        /// What the PEM reader said, if it failed (with a leading `: `).
        detail: String,
    },
    /// The key file holds no usable private key.
    #[error(
        "the TLS key {} holds no PEM private key (PKCS#8 `BEGIN PRIVATE KEY`, PKCS#1 `BEGIN RSA \
         PRIVATE KEY` or SEC1 `BEGIN EC PRIVATE KEY`){detail}", path.display()
    )]
    NoKey {
        /// The file.
        path: PathBuf,
        /// What the PEM reader said, if it failed (with a leading `: `).
        detail: String,
    },
    /// rustls refused the pair (a key of another certificate, an unsupported key type).
    #[error("the TLS key {} cannot serve the certificate {}: {detail}", key.display(), cert.display())]
    Unusable {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        detail: String,
    },
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// Reads and checks `files`; returns the acceptor the plug listener wraps connections in.
pub fn load(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    let cert_pem = read("certificate", &files.cert)?;
    let key_pem = read("key", &files.key)?;
    let certs: Result<Vec<CertificateDer<'static>>, _> =
        CertificateDer::pem_slice_iter(&cert_pem).collect();
    let certs = match certs {
        Ok(certs) if !certs.is_empty() => certs,
        Ok(_) => {
            return Err(TlsError::NoCertificate {
                path: files.cert.clone(),
                detail: String::new(),
            })
        }
        Err(e) => {
            return Err(TlsError::NoCertificate {
                path: files.cert.clone(),
                detail: format!(": {e}"),
            })
        }
    };
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::NoKey {
        path: files.key.clone(),
        detail: match e {
            rustls::pki_types::pem::Error::NoItemsFound => String::new(),
            other => format!(": {other}"),
        },
    })?;
    let unusable = |e: rustls::Error| TlsError::Unusable {
        cert: files.cert.clone(),
        key: files.key.clone(),
        detail: e.to_string(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(unusable)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(unusable)?;
    // Plugs speak HTTP/1.1 for the upgrade.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Dir {
            let p = std::env::temp_dir().join(format!("bridge-tls-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }

        fn file(&self, name: &str, text: &str) -> PathBuf {
            let p = self.0.join(name);
            std::fs::write(&p, text).unwrap();
            p
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn pair(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn a_matching_pair_loads() {
        let d = Dir::new("ok");
        let (cert, key) = pair("edge");
        let files = TlsFiles {
            cert: d.file("cert.pem", &cert),
            key: d.file("key.pem", &key),
        };
        assert!(load(&files).is_ok());
    }

    #[test]
    fn each_problem_names_its_file() {
        let d = Dir::new("bad");
        let (cert, key) = pair("edge");
        let (_, other_key) = pair("other");
        let good_cert = d.file("cert.pem", &cert);
        let good_key = d.file("key.pem", &key);
        let case = |cert: PathBuf, key: PathBuf| {
            load(&TlsFiles { cert, key })
                .err()
                .expect("an error")
                .to_string()
        };
        let e = case(d.0.join("missing.pem"), good_key.clone());
        assert!(
            e.contains("cannot read the TLS certificate") && e.contains("missing.pem"),
            "{e}"
        );
        let e = case(good_cert.clone(), d.0.join("nokey.pem"));
        assert!(
            e.contains("cannot read the TLS key") && e.contains("nokey.pem"),
            "{e}"
        );
        // The key given as certificate, and the certificate as key.
        let e = case(good_key.clone(), good_key.clone());
        assert!(
            e.contains("holds no PEM certificate") && e.contains("key.pem"),
            "{e}"
        );
        let e = case(good_cert.clone(), good_cert.clone());
        assert!(
            e.contains("holds no PEM private key") && e.contains("cert.pem"),
            "{e}"
        );
        let e = case(good_cert.clone(), d.file("garbage.pem", "not pem at all\n"));
        assert!(e.contains("garbage.pem"), "{e}");
        let e = case(good_cert, d.file("other.pem", &other_key));
        assert!(
            e.contains("cannot serve the certificate") && e.contains("other.pem"),
            "{e}"
        );
    }
}
