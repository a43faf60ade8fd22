//! Building the one rustls `ClientConfig` an agent shares, so every connection
//! of the agent can resume TLS sessions.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::{Error, ErrorKind};

/// The TLS part of an agent's configuration.
#[derive(Clone, Default)]
pub(crate) struct TlsSettings {
    /// PEM blobs of extra trusted certificates.
    pub extra_roots: Vec<Vec<u8>>,
    /// Trust only `extra_roots`, not the webpki roots.
    pub only_extra_roots: bool,
    /// Client certificate chain and key, PEM.
    pub client_cert: Option<(Vec<u8>, Vec<u8>)>,
    pub danger_accept_invalid_certs: bool,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("extra_roots", &self.extra_roots.len())
            .field("only_extra_roots", &self.only_extra_roots)
            .field("client_cert", &self.client_cert.is_some())
            .field(
                "danger_accept_invalid_certs",
                &self.danger_accept_invalid_certs,
            )
            .finish()
    }
}

fn tls_error(
    message: impl Into<String>,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> Error {
    Error::with_source(ErrorKind::Tls, message, source)
}

/// Build the client config: ring provider, safe protocol versions, ALPN http/1.1.
pub(crate) fn build_config(settings: &TlsSettings) -> Result<Arc<ClientConfig>, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error("unsupported TLS protocol versions", e))?;
    let builder = if settings.danger_accept_invalid_certs {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert { provider }))
    } else {
        let mut roots = RootCertStore::empty();
        if !settings.only_extra_roots {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        for pem in &settings.extra_roots {
            let mut found = 0;
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| tls_error("invalid PEM in a root certificate", e))?;
                roots
                    .add(cert)
                    .map_err(|e| tls_error("unusable root certificate", e))?;
                found += 1;
            }
            if found == 0 {
                return Err(Error::new(
                    ErrorKind::Tls,
                    "no certificate found in the PEM given as a root certificate",
                ));
            }
        }
        builder.with_root_certificates(roots)
    };
    let mut config = match &settings.client_cert {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => {
            let chain = CertificateDer::pem_slice_iter(chain)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| tls_error("invalid PEM in the client certificate", e))?;
            let key = PrivateKeyDer::from_pem_slice(key)
                .map_err(|e| tls_error("invalid PEM in the client key", e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| tls_error("unusable client certificate", e))?
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The server name to verify and send as SNI.
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, Error> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_string()).map_err(|e| {
        Error::with_source(
            ErrorKind::InvalidUrl,
            format!("invalid TLS server name {host:?}"),
            e,
        )
    })
}

/// Classify a handshake failure: a rejected certificate or alert is a TLS
/// error; a timeout or cancel keeps its own kind.
pub(crate) fn handshake_error(err: std::io::Error, host: &str) -> Error {
    let is_tls = err
        .get_ref()
        .is_some_and(|inner| inner.is::<rustls::Error>());
    if is_tls {
        let detail = err.to_string();
        return tls_error(format!("TLS handshake with {host} failed: {detail}"), err);
    }
    let e = Error::from_io(err);
    match e.kind() {
        ErrorKind::Io | ErrorKind::Protocol => Error::with_source(
            ErrorKind::Tls,
            format!("TLS handshake with {host} failed: connection closed or reset"),
            e,
        ),
        _ => e,
    }
}

/// The verifier behind `danger_accept_invalid_certs`: any certificate for any
/// name is accepted, but handshake signatures are still checked.
#[derive(Debug)]
struct AcceptAnyCert {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_builds_with_alpn() {
        let config = build_config(&TlsSettings::default()).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn garbage_root_pem_is_a_tls_error() {
        let settings = TlsSettings {
            extra_roots: vec![b"not a certificate".to_vec()],
            ..TlsSettings::default()
        };
        let err = build_config(&settings).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Tls);
    }

    #[test]
    fn ip_and_bracketed_names_are_accepted() {
        assert!(server_name("127.0.0.1").is_ok());
        assert!(server_name("[::1]").is_ok());
        assert!(server_name("example.com").is_ok());
    }
}
