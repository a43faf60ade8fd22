//! Building the one rustls `ClientConfig` an agent shares, so every connection
//! of the agent can resume TLS sessions.

use std::sync::{Arc, OnceLock};

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

/// An error in a TLS setting of the builder, named by its method.
fn config_error(
    message: impl Into<String>,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> Error {
    Error::with_source(ErrorKind::InvalidConfig, message, source)
}

/// The webpki roots, parsed once per process and shared by every agent
/// that trusts nothing else.
fn webpki_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    Arc::clone(ROOTS.get_or_init(|| {
        Arc::new(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        })
    }))
}

/// Build the client config: ring provider, safe protocol versions, ALPN
/// http/1.1. A setting that cannot work is an [`ErrorKind::InvalidConfig`]
/// whose message starts with the builder method that set it.
pub(crate) fn build_config(settings: &TlsSettings) -> Result<Arc<ClientConfig>, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| {
            config_error(
                "the TLS provider supports none of the safe protocol versions",
                e,
            )
        })?;
    // Added roots are checked even when verification is off: a bad
    // certificate is a mistake worth hearing about either way.
    let mut added = Vec::new();
    for pem in &settings.extra_roots {
        let before = added.len();
        for cert in CertificateDer::pem_slice_iter(pem) {
            added.push(
                cert.map_err(|e| {
                    config_error("add_root_certificate: the PEM cannot be parsed", e)
                })?,
            );
        }
        if added.len() == before {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                "add_root_certificate: no certificate found in the PEM \
                 (expected a -----BEGIN CERTIFICATE----- block)",
            ));
        }
    }
    let builder = if settings.danger_accept_invalid_certs {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert { provider }))
    } else if added.is_empty() {
        if settings.only_extra_roots {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                "only_added_roots: no certificate was added with add_root_certificate, \
                 so no server could be trusted",
            ));
        }
        builder.with_root_certificates(webpki_roots())
    } else {
        let mut roots = if settings.only_extra_roots {
            RootCertStore::empty()
        } else {
            RootCertStore::clone(&webpki_roots())
        };
        for cert in added {
            roots.add(cert).map_err(|e| {
                config_error(
                    "add_root_certificate: the certificate cannot be used as a root",
                    e,
                )
            })?;
        }
        builder.with_root_certificates(roots)
    };
    let mut config = match &settings.client_cert {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => {
            let chain = CertificateDer::pem_slice_iter(chain)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    config_error(
                        "client_certificate: the certificate chain PEM cannot be parsed",
                        e,
                    )
                })?;
            if chain.is_empty() {
                return Err(Error::new(
                    ErrorKind::InvalidConfig,
                    "client_certificate: no certificate found in the chain PEM \
                     (expected a -----BEGIN CERTIFICATE----- block)",
                ));
            }
            let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| match e {
                rustls::pki_types::pem::Error::NoItemsFound => Error::new(
                    ErrorKind::InvalidConfig,
                    "client_certificate: no private key found in the key PEM \
                     (expected a -----BEGIN PRIVATE KEY----- block)",
                ),
                e => config_error("client_certificate: the key PEM cannot be parsed", e),
            })?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                config_error(
                    "client_certificate: the key cannot be used with the certificate",
                    e,
                )
            })?
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
/// error, told in plain words, with the rustls error as its source; a timeout
/// or cancel keeps its own kind. The URL, added later, names the server.
pub(crate) fn handshake_error(err: std::io::Error) -> Error {
    let is_tls = err
        .get_ref()
        .is_some_and(|inner| inner.is::<rustls::Error>());
    if is_tls {
        let inner = err.into_inner().expect("checked above");
        let tls = *inner.downcast::<rustls::Error>().expect("checked above");
        return Error::with_source(ErrorKind::Tls, describe(&tls), tls);
    }
    let e = Error::from_io(err);
    match e.kind() {
        ErrorKind::Io | ErrorKind::Protocol => Error::with_source(
            ErrorKind::Tls,
            "the connection was closed or reset during the TLS handshake",
            e,
        ),
        _ => e,
    }
}

/// A rustls error as a sentence a person can act on. The rustls error itself
/// stays the source, for the details and for code that matches on it.
fn describe(err: &rustls::Error) -> String {
    use rustls::{AlertDescription as Alert, CertificateError as Cert};
    let text: &str = match err {
        rustls::Error::InvalidCertificate(cert) => match cert {
            Cert::UnknownIssuer => {
                "the server's certificate is not trusted (unknown issuer): \
                 add the CA that issued it with add_root_certificate or --cacert"
            }
            Cert::NotValidForNameContext {
                expected,
                presented,
            } => {
                let names: Vec<&str> = presented.iter().filter_map(|n| name_of(n)).collect();
                let names = if names.is_empty() {
                    "no host name".to_string()
                } else {
                    names.join(", ")
                };
                return format!(
                    "the server's certificate is not valid for {} (it is for {names})",
                    expected.to_str()
                );
            }
            Cert::NotValidForName => "the server's certificate is not valid for this host name",
            Cert::Expired | Cert::ExpiredContext { .. } => {
                "the server's certificate has expired (or this machine's clock is wrong)"
            }
            Cert::NotValidYet | Cert::NotValidYetContext { .. } => {
                "the server's certificate is not valid yet (or this machine's clock is wrong)"
            }
            Cert::Revoked => "the server's certificate has been revoked",
            Cert::BadSignature => "the server's certificate has a bad signature",
            Cert::BadEncoding => "the server's certificate cannot be parsed",
            Cert::InvalidPurpose | Cert::InvalidPurposeContext { .. } => {
                "the server's certificate is not meant for a TLS server"
            }
            _ => "the server's certificate was rejected",
        },
        rustls::Error::AlertReceived(alert) => match alert {
            Alert::HandshakeFailure | Alert::InsufficientSecurity => {
                "the server refused the TLS handshake \
                 (no cipher suite or key exchange in common)"
            }
            Alert::ProtocolVersion => "the server supports neither TLS 1.2 nor TLS 1.3",
            Alert::CertificateRequired => {
                "the server asks for a client certificate: set one with client_certificate"
            }
            Alert::BadCertificate
            | Alert::UnsupportedCertificate
            | Alert::CertificateRevoked
            | Alert::CertificateExpired
            | Alert::CertificateUnknown
            | Alert::UnknownCA => "the server rejected the client certificate",
            Alert::UnrecognisedName => "the server does not serve this host name",
            Alert::NoApplicationProtocol => "the server does not offer HTTP/1.1",
            Alert::AccessDenied => "the server denied access in the TLS handshake",
            Alert::InternalError => "the server failed the TLS handshake (an internal error)",
            _ => "the server ended the TLS handshake with an alert",
        },
        rustls::Error::NoCertificatesPresented => "the server sent no certificate",
        rustls::Error::PeerIncompatible(_) => {
            "the server's TLS is not compatible with this client \
             (no protocol version, cipher suite or signature scheme in common)"
        }
        rustls::Error::InvalidMessage(_)
        | rustls::Error::InappropriateMessage { .. }
        | rustls::Error::InappropriateHandshakeMessage { .. } => {
            "the server did not answer in TLS (is the port plain HTTP?)"
        }
        rustls::Error::PeerMisbehaved(_) => "the server broke the TLS protocol",
        rustls::Error::NoApplicationProtocol => "the server does not offer HTTP/1.1",
        _ => "the TLS handshake failed",
    };
    text.to_string()
}

/// A name from a certificate as webpki reports it (`DnsName("a.example")`,
/// `IpAddress(10.0.0.1)`), without the wrapping; `None` for names no URL
/// could match (a directory name, an unsupported kind).
fn name_of(presented: &str) -> Option<&str> {
    let unwrap = |prefix: &str, suffix: &str| {
        presented
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(suffix))
    };
    unwrap("DnsName(\"", "\")")
        .or_else(|| unwrap("IpAddress(", ")"))
        .filter(|name| !name.is_empty())
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
    fn garbage_root_pem_is_a_config_error_naming_the_setting() {
        let settings = TlsSettings {
            extra_roots: vec![b"not a certificate".to_vec()],
            ..TlsSettings::default()
        };
        let err = build_config(&settings).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        assert!(
            err.to_string()
                .starts_with("add_root_certificate: no certificate found in the PEM"),
            "{err}"
        );
    }

    #[test]
    fn only_added_roots_without_a_root_is_a_config_error() {
        let settings = TlsSettings {
            only_extra_roots: true,
            ..TlsSettings::default()
        };
        let err = build_config(&settings).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        assert!(err.to_string().starts_with("only_added_roots: "), "{err}");
    }

    #[test]
    fn handshake_errors_are_plain_words_with_rustls_as_the_source() {
        let cases = [
            (
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
                "not trusted",
            ),
            (
                rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired),
                "client_certificate",
            ),
            (
                rustls::Error::AlertReceived(rustls::AlertDescription::DecryptError),
                "alert",
            ),
        ];
        for (tls, expected) in cases {
            let debug = format!("{tls:?}");
            let shown = tls.to_string();
            let err = handshake_error(std::io::Error::other(tls));
            assert_eq!(err.kind(), ErrorKind::Tls);
            let message = err.to_string();
            assert!(message.contains(expected), "{message}");
            assert!(!message.contains(&debug), "{message}");
            assert!(!message.contains(&shown), "{message}");
            let source = std::error::Error::source(&err).expect("a source");
            assert!(source.is::<rustls::Error>(), "{source:?}");
        }
    }

    #[test]
    fn certificate_names_lose_their_debug_wrapping() {
        assert_eq!(name_of("DnsName(\"a.example\")"), Some("a.example"));
        assert_eq!(name_of("IpAddress(10.0.0.1)"), Some("10.0.0.1"));
        assert_eq!(name_of("DirectoryName"), None);
        assert_eq!(name_of("Unsupported(0x07)"), None);
    }

    #[test]
    fn ip_and_bracketed_names_are_accepted() {
        assert!(server_name("127.0.0.1").is_ok());
        assert!(server_name("[::1]").is_ok());
        assert!(server_name("example.com").is_ok());
    }
}
