//! TLS policy: protocol versions, cipher suites by their standard names,
//! session resumption, SNI, the crypto provider, or a config of the
//! caller's own; and the builder methods that set them.

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::{CipherSuite, SupportedProtocolVersion};

use super::RootStore;
use crate::agent::AgentBuilder;
use crate::error::{Error, ErrorKind};
use crate::timings::TlsVersion;

/// The cryptography behind TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TlsProvider {
    /// `ring`: small, quick to build, the default.
    #[default]
    Ring,
    /// `aws-lc-rs` (feature `aws-lc-rs`): AWS's libcrypto, with FIPS-capable
    /// builds; slower to compile (a C library).
    #[cfg(feature = "aws-lc-rs")]
    AwsLcRs,
}

/// The suites rustls implements: the IANA name (the standard one, also what
/// [`Timings::tls_cipher`](crate::Timings::tls_cipher) reports) and
/// OpenSSL's name (what curl's `--ciphers` takes).
const SUITES: &[(CipherSuite, &str, &str)] = &[
    (
        CipherSuite::TLS13_AES_128_GCM_SHA256,
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_128_GCM_SHA256",
    ),
    (
        CipherSuite::TLS13_AES_256_GCM_SHA384,
        "TLS_AES_256_GCM_SHA384",
        "TLS_AES_256_GCM_SHA384",
    ),
    (
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
        "TLS_CHACHA20_POLY1305_SHA256",
        "TLS_CHACHA20_POLY1305_SHA256",
    ),
    (
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
    ),
    (
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
    ),
    (
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
    ),
    (
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
    ),
    (
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
    ),
    (
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ),
];

/// The suite a name stands for: its IANA or its OpenSSL name, any case.
fn suite_named(name: &str) -> Option<CipherSuite> {
    SUITES
        .iter()
        .find(|(_, iana, openssl)| {
            iana.eq_ignore_ascii_case(name) || openssl.eq_ignore_ascii_case(name)
        })
        .map(|(suite, _, _)| *suite)
}

/// The IANA name of a suite, for timings.
pub(crate) fn suite_name(suite: CipherSuite) -> Option<&'static str> {
    SUITES
        .iter()
        .find(|(s, _, _)| *s == suite)
        .map(|(_, iana, _)| *iana)
}

/// The chosen provider, built once per process, or a copy of it limited
/// to the allowed suites.
pub(super) fn provider(
    choice: TlsProvider,
    allowed: Option<&[String]>,
) -> Result<Arc<CryptoProvider>, Error> {
    static RING: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    #[cfg(feature = "aws-lc-rs")]
    static AWS_LC: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    let shared = match choice {
        TlsProvider::Ring => {
            RING.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        }
        #[cfg(feature = "aws-lc-rs")]
        TlsProvider::AwsLcRs => {
            AWS_LC.get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        }
    };
    let Some(allowed) = allowed else {
        return Ok(Arc::clone(shared));
    };
    let mut wanted = Vec::with_capacity(allowed.len());
    for name in allowed {
        let suite = suite_named(name.trim()).ok_or_else(|| {
            let known: Vec<&str> = SUITES.iter().map(|(_, iana, _)| *iana).collect();
            Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "cipher_suites: unknown cipher suite {name:?} (known: {})",
                    known.join(", ")
                ),
            )
        })?;
        wanted.push(suite);
    }
    if wanted.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidConfig,
            "cipher_suites: the list is empty, so no server could be reached",
        ));
    }
    let mut limited = CryptoProvider::clone(shared);
    // In the caller's order: rustls offers suites in the order of this list.
    limited.cipher_suites = wanted
        .iter()
        .filter_map(|w| {
            shared
                .cipher_suites
                .iter()
                .find(|s| s.suite() == *w)
                .copied()
        })
        .collect();
    if limited.cipher_suites.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidConfig,
            "cipher_suites: the crypto provider implements none of the listed suites",
        ));
    }
    Ok(Arc::new(limited))
}

/// The protocol versions from `min` to `max` (both TLS 1.2 and 1.3 by default).
pub(super) fn versions(
    min: Option<TlsVersion>,
    max: Option<TlsVersion>,
) -> Result<Vec<&'static SupportedProtocolVersion>, Error> {
    let (min, max) = (
        min.unwrap_or(TlsVersion::Tls12),
        max.unwrap_or(TlsVersion::Tls13),
    );
    if min > max {
        return Err(Error::new(
            ErrorKind::InvalidConfig,
            format!("tls_min_version: {min} is above tls_max_version {max}"),
        ));
    }
    Ok([TlsVersion::Tls12, TlsVersion::Tls13]
        .into_iter()
        .filter(|v| (min..=max).contains(v))
        .map(|v| match v {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        })
        .collect())
}

/// TLS policy. Each setting is checked by [`build`](AgentBuilder::build):
/// one that cannot work is an [`ErrorKind::InvalidConfig`] naming the method.
impl AgentBuilder {
    /// Which roots to trust besides the added certificates. Default
    /// [`RootStore::Webpki`]; `Native` and `Both` need the `native-roots`
    /// feature.
    pub fn root_store(mut self, store: RootStore) -> Self {
        self.config.tls.root_store = store;
        self
    }

    /// Whether `SSL_CERT_FILE` (a PEM bundle) and `SSL_CERT_DIR` (directories
    /// of PEM files, `:`-separated) replace the root store when set, as they
    /// do for OpenSSL and curl. Default `true`. They are read by
    /// [`build`](AgentBuilder::build); a file or directory that cannot be
    /// read, or holds no certificate, is an error there.
    ///
    /// With `false`, [`RootStore::Native`] still finds the operating
    /// system's store as `rustls-native-certs` does, which itself looks at
    /// `SSL_CERT_FILE` / `SSL_CERT_DIR` first.
    pub fn ssl_cert_env(mut self, honour: bool) -> Self {
        self.config.tls.ssl_cert_env = honour;
        self
    }

    /// The lowest TLS version to speak. Default TLS 1.2.
    pub fn tls_min_version(mut self, version: TlsVersion) -> Self {
        self.config.tls.min_version = Some(version);
        self
    }

    /// The highest TLS version to speak. Default TLS 1.3.
    pub fn tls_max_version(mut self, version: TlsVersion) -> Self {
        self.config.tls.max_version = Some(version);
        self
    }

    /// Offer only these cipher suites, in this order, by their IANA names
    /// (`"TLS_AES_128_GCM_SHA256"`,
    /// `"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"`) or OpenSSL's
    /// (`"ECDHE-RSA-AES128-GCM-SHA256"`). TLS 1.2 and TLS 1.3 suites go in
    /// the same list. An unknown name, or a list that leaves no suite for an
    /// allowed version, makes [`build`](AgentBuilder::build) fail.
    ///
    /// ```
    /// let err = windlass::Agent::builder()
    ///     .cipher_suites(&["TLS_RSA_WITH_RC4_128_MD5"])
    ///     .build()
    ///     .unwrap_err();
    /// assert!(err.to_string().starts_with("cipher_suites: unknown cipher suite"));
    /// ```
    pub fn cipher_suites(mut self, names: &[&str]) -> Self {
        self.config.tls.cipher_suites = Some(names.iter().map(|n| n.to_string()).collect());
        self
    }

    /// How many TLS sessions to remember for resumption (abbreviated
    /// handshakes to servers seen before). Default 256; `0` turns
    /// resumption off.
    pub fn tls_session_cache(mut self, sessions: usize) -> Self {
        self.config.tls.session_cache = sessions;
        self
    }

    /// Send the host name in the handshake (SNI). Default `true`; a server
    /// hosting several names may pick the wrong certificate without it.
    pub fn tls_sni(mut self, send: bool) -> Self {
        self.config.tls.sni = send;
        self
    }

    /// The crypto provider. Default [`TlsProvider::Ring`].
    pub fn tls_provider(mut self, provider: TlsProvider) -> Self {
        self.config.tls.provider = provider;
        self
    }

    /// Use this rustls config as it is, for what the builder does not
    /// offer. It replaces every other TLS setting: combining it with one is
    /// an error at [`build`](AgentBuilder::build). windlass speaks HTTP/1.1
    /// only; a config whose ALPN list lets a server choose `h2` fails such
    /// a handshake with [`ErrorKind::Tls`].
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.config.tls.custom = Some(config);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suites_are_found_by_iana_or_openssl_name_in_any_case() {
        let want = Some(CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256);
        assert_eq!(suite_named("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"), want);
        assert_eq!(suite_named("ecdhe-rsa-aes128-gcm-sha256"), want);
        assert_eq!(suite_named("TLS13_AES_128_GCM_SHA256"), None);
        assert_eq!(suite_named("RC4-MD5"), None);
    }

    #[test]
    fn every_suite_ring_offers_has_a_name() {
        let ring = rustls::crypto::ring::default_provider();
        for suite in ring.cipher_suites {
            assert!(suite_name(suite.suite()).is_some(), "{:?}", suite.suite());
        }
    }

    #[test]
    fn allowed_suites_keep_the_callers_order() {
        let names = [
            "TLS_CHACHA20_POLY1305_SHA256".to_string(),
            "TLS_AES_128_GCM_SHA256".to_string(),
        ];
        let p = provider(TlsProvider::Ring, Some(&names)).unwrap();
        let got: Vec<CipherSuite> = p.cipher_suites.iter().map(|s| s.suite()).collect();
        assert_eq!(
            got,
            [
                CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
                CipherSuite::TLS13_AES_128_GCM_SHA256
            ]
        );
    }

    #[test]
    fn version_ranges() {
        let v =
            |min, max| versions(min, max).map(|v| v.iter().map(|v| v.version).collect::<Vec<_>>());
        use rustls::ProtocolVersion::{TLSv1_2, TLSv1_3};
        assert_eq!(v(None, None).unwrap(), [TLSv1_2, TLSv1_3]);
        assert_eq!(v(Some(TlsVersion::Tls13), None).unwrap(), [TLSv1_3]);
        assert_eq!(v(None, Some(TlsVersion::Tls12)).unwrap(), [TLSv1_2]);
        let err = v(Some(TlsVersion::Tls13), Some(TlsVersion::Tls12)).unwrap_err();
        assert!(err.to_string().starts_with("tls_min_version: "), "{err}");
    }
}
