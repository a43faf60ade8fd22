//! TLS failures in plain words, each saying what to do, with the rustls
//! error kept as the source for the details and for code that matches on it:
//! handshake failures, alerts that arrive after the handshake (a TLS 1.3
//! server refusing a client certificate), and client certificates that
//! cannot be used.

use std::sync::Arc;

use rustls::client::WantsClientCert;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ConfigBuilder};

use super::config_error;
use crate::error::{Error, ErrorKind};

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
        return session_error(tls);
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

/// A rustls error at any point of a connection, as an error of kind
/// [`ErrorKind::Tls`]. After the handshake it is an alert from the server
/// (a TLS 1.3 server checks the client certificate only once the client
/// has finished) or a broken record: never worth repeating the request.
pub(crate) fn session_error(tls: rustls::Error) -> Error {
    Error::with_source(ErrorKind::Tls, describe(&tls), tls)
}

/// A rustls error as a sentence a person can act on.
fn describe(err: &rustls::Error) -> String {
    use rustls::{AlertDescription as Alert, CertificateError as Cert};
    let text: &str = match err {
        rustls::Error::InvalidCertificate(cert) => match cert {
            Cert::UnknownIssuer => {
                "the server's certificate is not trusted: signed by an unknown authority; \
                 pass its CA with --cacert / add_root_certificate"
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
                    "the server's certificate is not valid for {} (it is for {names}); \
                     use a URL with one of its names",
                    expected.to_str()
                );
            }
            Cert::NotValidForName => {
                "the server's certificate is not valid for this host name; \
                 use a URL with one of its names"
            }
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
            Cert::Other(other) if format!("{other:?}").contains("CaUsedAsEndEntity") => {
                "the server's certificate is not trusted: it is a CA certificate presented \
                 as the server's own (self-signed?); if you trust it, pass that very \
                 certificate with --cacert / add_root_certificate"
            }
            _ => "the server's certificate was rejected",
        },
        rustls::Error::AlertReceived(alert) => match alert {
            Alert::HandshakeFailure | Alert::InsufficientSecurity => {
                "the server refused the TLS handshake \
                 (no cipher suite or key exchange in common; check the allowed versions and suites)"
            }
            Alert::ProtocolVersion => {
                "the server does not speak an allowed TLS version \
                 (check tls_min_version / tls_max_version)"
            }
            Alert::CertificateRequired => {
                "the server requires a client certificate: \
                 give one with --cert/--key or client_certificate"
            }
            Alert::BadCertificate
            | Alert::UnsupportedCertificate
            | Alert::CertificateRevoked
            | Alert::CertificateExpired
            | Alert::CertificateUnknown
            | Alert::UnknownCA => {
                "the server rejected the client certificate \
                 (check that the server trusts its CA and that it has not expired)"
            }
            Alert::UnrecognisedName => "the server does not serve this host name",
            Alert::NoApplicationProtocol => "the server does not offer HTTP/1.1",
            Alert::AccessDenied => "the server denied access in the TLS handshake",
            Alert::InternalError => "the server failed the TLS handshake (an internal error)",
            _ => "the server ended the TLS session with an alert",
        },
        rustls::Error::NoCertificatesPresented => "the server sent no certificate",
        rustls::Error::PeerIncompatible(_) => {
            "the server's TLS is not compatible with this client \
             (no protocol version, cipher suite or signature scheme in common; \
             check the allowed versions and suites)"
        }
        rustls::Error::InvalidMessage(_)
        | rustls::Error::InappropriateMessage { .. }
        | rustls::Error::InappropriateHandshakeMessage { .. } => {
            "the server did not answer in TLS (is the port plain HTTP?)"
        }
        rustls::Error::PeerMisbehaved(_) => "the server broke the TLS protocol",
        rustls::Error::NoApplicationProtocol => "the server does not offer HTTP/1.1",
        rustls::Error::DecryptError => "a TLS record from the server could not be decrypted",
        _ => "the TLS connection failed",
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

/// Whether a key PEM holds an encrypted key: PKCS#8 `ENCRYPTED PRIVATE KEY`,
/// or a legacy OpenSSL PEM with `Proc-Type: 4,ENCRYPTED` headers.
fn is_encrypted_key(pem: &[u8]) -> bool {
    let has = |needle: &[u8]| pem.windows(needle.len()).any(|w| w == needle);
    has(b"-----BEGIN ENCRYPTED PRIVATE KEY-----") || has(b"Proc-Type: 4,ENCRYPTED")
}

/// Finish the config with a client certificate, or say plainly what is
/// wrong with the one given.
pub(super) fn with_client_cert(
    builder: ConfigBuilder<ClientConfig, WantsClientCert>,
    chain_pem: &[u8],
    key_pem: &[u8],
) -> Result<ClientConfig, Error> {
    let invalid = |message: &str| Error::new(ErrorKind::InvalidConfig, message);
    let chain = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            config_error(
                "client_certificate: the certificate chain PEM cannot be parsed",
                e,
            )
        })?;
    if chain.is_empty() {
        return Err(invalid(
            "client_certificate: no certificate found in the chain PEM \
             (expected a -----BEGIN CERTIFICATE----- block)",
        ));
    }
    if is_encrypted_key(key_pem) {
        return Err(invalid(
            "client_certificate: the private key is encrypted with a passphrase, which \
             windlass cannot ask for; decrypt it first (openssl pkey -in key.pem -out plain-key.pem)",
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => invalid(
            "client_certificate: no private key found in the key PEM \
             (expected a -----BEGIN PRIVATE KEY----- block)",
        ),
        e => config_error("client_certificate: the key PEM cannot be parsed", e),
    })?;
    let provider = Arc::clone(builder.crypto_provider());
    let signing = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| {
            config_error(
                "client_certificate: the private key is of a kind the crypto provider cannot use",
                e,
            )
        })?;
    if let Err(e) = CertifiedKey::new(chain[..1].to_vec(), Arc::clone(&signing)).keys_match() {
        // A chain given CA first: the key belongs to a later certificate.
        let belongs_later = chain[1..].iter().any(|cert| {
            CertifiedKey::new(vec![cert.clone()], Arc::clone(&signing))
                .keys_match()
                .is_ok()
        });
        let message = if belongs_later {
            "client_certificate: the chain is in the wrong order: the certificate \
             of the private key must come first, then the CA certificates that signed it"
        } else {
            "client_certificate: the private key does not belong to the certificate"
        };
        return Err(config_error(message, e));
    }
    builder.with_client_auth_cert(chain, key).map_err(|e| {
        config_error(
            "client_certificate: the key cannot be used with the certificate",
            e,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_errors_are_plain_words_with_rustls_as_the_source() {
        let cases = [
            (
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
                "unknown authority; pass its CA with --cacert",
            ),
            (
                rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired),
                "requires a client certificate",
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
    fn encrypted_keys_are_recognised_in_both_pem_forms() {
        assert!(is_encrypted_key(
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIF\n-----END ENCRYPTED PRIVATE KEY-----\n"
        ));
        assert!(is_encrypted_key(
            b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nMIIE\n"
        ));
        assert!(!is_encrypted_key(
            b"-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"
        ));
    }
}
