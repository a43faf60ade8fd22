//! Certificates and rustls server configs for the TLS policy, trust and
//! error tests: servers that offer only given versions and suites, that
//! require a client certificate, or that present a self-signed CA
//! certificate as their own (what `openssl req -x509` makes).

#![allow(dead_code)]

use std::sync::{Arc, Mutex, OnceLock};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{CipherSuite, RootCertStore, ServerConfig, SupportedProtocolVersion};

/// A CA, a server leaf for `localhost` / `127.0.0.1` and a client leaf, all
/// issued by the CA; generated once per test binary.
pub struct Certs {
    pub ca_pem: String,
    pub ca_der: CertificateDer<'static>,
    pub server_chain: Vec<CertificateDer<'static>>,
    pub server_key: PrivateKeyDer<'static>,
    pub client_cert_pem: String,
    pub client_key_pem: String,
}

pub fn certs() -> &'static Certs {
    static CERTS: OnceLock<Certs> = OnceLock::new();
    CERTS.get_or_init(|| {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "windlass tls test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

        let mut server =
            CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_key = KeyPair::generate().unwrap();
        let server = server.signed_by(&server_key, &*ca).unwrap();

        let mut client = CertificateParams::new(vec!["client.example".into()]).unwrap();
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_key = KeyPair::generate().unwrap();
        let client = client.signed_by(&client_key, &*ca).unwrap();

        Certs {
            ca_pem: ca.pem(),
            ca_der: ca.der().clone(),
            server_chain: vec![server.der().clone(), ca.der().clone()],
            server_key: pkcs8(&server_key),
            client_cert_pem: client.pem(),
            client_key_pem: client_key.serialize_pem(),
        }
    })
}

pub fn pkcs8(key: &KeyPair) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()))
}

/// ring, limited to `suites` when given.
fn provider(suites: Option<&[CipherSuite]>) -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(suites) = suites {
        provider
            .cipher_suites
            .retain(|s| suites.contains(&s.suite()));
    }
    Arc::new(provider)
}

/// A server offering only `versions` and (when given) `suites`, with the
/// test CA's leaf.
pub fn server(
    versions: &[&'static SupportedProtocolVersion],
    suites: Option<&[CipherSuite]>,
) -> Arc<ServerConfig> {
    let c = certs();
    Arc::new(
        ServerConfig::builder_with_provider(provider(suites))
            .with_protocol_versions(versions)
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(c.server_chain.clone(), c.server_key.clone_key())
            .unwrap(),
    )
}

/// A server, TLS 1.2 and 1.3, that chooses `alpn` when the client offers it.
pub fn server_with_alpn(alpn: &[u8]) -> Arc<ServerConfig> {
    let mut config = ServerConfig::clone(&server(rustls::ALL_VERSIONS, None));
    config.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(config)
}

/// A server that requires a client certificate issued by the test CA.
pub fn server_requiring_client_cert(
    versions: &[&'static SupportedProtocolVersion],
) -> Arc<ServerConfig> {
    let c = certs();
    let mut roots = RootCertStore::empty();
    roots.add(c.ca_der.clone()).unwrap();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider(None))
        .build()
        .unwrap();
    Arc::new(
        ServerConfig::builder_with_provider(provider(None))
            .with_protocol_versions(versions)
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(c.server_chain.clone(), c.server_key.clone_key())
            .unwrap(),
    )
}

/// The server names clients sent (SNI), in order; `None` for no SNI.
#[derive(Debug)]
pub struct SniLog {
    key: Arc<CertifiedKey>,
    pub seen: Mutex<Vec<Option<String>>>,
}

impl ResolvesServerCert for SniLog {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.seen
            .lock()
            .unwrap()
            .push(hello.server_name().map(str::to_string));
        Some(Arc::clone(&self.key))
    }
}

/// A server that records the SNI of every handshake.
pub fn server_logging_sni() -> (Arc<ServerConfig>, Arc<SniLog>) {
    let c = certs();
    let signer = rustls::crypto::ring::sign::any_supported_type(&c.server_key).unwrap();
    let log = Arc::new(SniLog {
        key: Arc::new(CertifiedKey::new(c.server_chain.clone(), signer)),
        seen: Mutex::new(Vec::new()),
    });
    let config = ServerConfig::builder_with_provider(provider(None))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(log.clone());
    (Arc::new(config), log)
}

/// What `openssl req -x509 -subj /CN=NAME -addext subjectAltName=DNS:NAME`
/// makes: a self-signed certificate with `CA:TRUE`, valid from `not_before`
/// to `not_after` (years), and a server presenting it.
pub fn self_signed_ca_as_leaf(
    names: &[&str],
    years: (i32, i32),
) -> (String, CertificateDer<'static>, Arc<ServerConfig>) {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.not_before = rcgen::date_time_ymd(years.0, 1, 1);
    params.not_after = rcgen::date_time_ymd(years.1, 1, 1);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let config = ServerConfig::builder_with_provider(provider(None))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], pkcs8(&key))
        .unwrap();
    (cert.pem(), cert.der().clone(), Arc::new(config))
}

/// A server presenting `chain` with `key`, given as PEM files.
pub fn server_from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Arc<ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    let chain = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key_pem).unwrap();
    Arc::new(
        ServerConfig::builder_with_provider(provider(None))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
    )
}
