//! Native TLS on the public listener (rustls with the ring provider), for deployments without a
//! TLS-terminating proxy in front of Herald.

use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{ServerConfig, crypto};

use crate::StartError;
use crate::config::TlsFiles;

/// Reads the certificate chain and key and builds the acceptor; errors name the config key.
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, StartError> {
    let cert_err = |e: &dyn std::fmt::Display| {
        StartError::Tls(format!(
            "tls_cert: cannot read a PEM certificate chain from {}: {e}",
            files.cert.display()
        ))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| cert_err(&e))?
        .collect::<Result<_, _>>()
        .map_err(|e| cert_err(&e))?;
    if certs.is_empty() {
        return Err(cert_err(&"no CERTIFICATE block found"));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        StartError::Tls(format!(
            "tls_key: cannot read a PEM private key from {}: {e}",
            files.key.display()
        ))
    })?;
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| StartError::Tls(format!("tls: {e}")))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| {
                StartError::Tls(format!(
                    "tls_key: does not match tls_cert or is unsupported: {e}"
                ))
            })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
