//! The rustls `ClientConfig` an agent shares, so every connection of the
//! agent can resume TLS sessions: where trust comes from ([`roots`]), which
//! certificates are accepted ([`verify`]), the protocol policy ([`policy`]),
//! and failures told in plain words ([`errors`]).
//!
//! An agent with no TLS setting of its own gets one config built once per
//! process and shared by every such agent (and the crate-level functions),
//! sessions included. The parsed root stores (webpki, the OS's,
//! `SSL_CERT_FILE` / `SSL_CERT_DIR`) and the crypto provider are shared by
//! every agent.

mod errors;
mod policy;
mod roots;
mod verify;

use std::sync::{Arc, Mutex};

use rustls::pki_types::ServerName;
use rustls::ClientConfig;

use crate::error::{Error, ErrorKind};

pub(crate) use errors::{handshake_error, session_error};
pub(crate) use policy::suite_name;
pub use policy::TlsProvider;
pub use roots::RootStore;

use crate::timings::TlsVersion;

/// The TLS part of an agent's configuration. [`TlsSettings::same_config_as`]
/// destructures it, so a new field does not compile until someone decides
/// whether agents that differ in it may share a config.
#[derive(Clone)]
pub(crate) struct TlsSettings {
    /// Extra trusted certificates, each PEM (one or more blocks) or DER.
    pub extra_roots: Vec<Vec<u8>>,
    /// Trust only `extra_roots`, not the root store.
    pub only_extra_roots: bool,
    /// Client certificate chain and key, PEM.
    pub client_cert: Option<(Vec<u8>, Vec<u8>)>,
    pub danger_accept_invalid_certs: bool,
    /// The trusted roots besides the added ones.
    pub root_store: RootStore,
    /// Read `SSL_CERT_FILE` / `SSL_CERT_DIR` at build time.
    pub ssl_cert_env: bool,
    pub min_version: Option<TlsVersion>,
    pub max_version: Option<TlsVersion>,
    /// Allowed cipher suites by name; `None`: the provider's defaults.
    pub cipher_suites: Option<Vec<String>>,
    /// Resumption cache size in sessions; 0 turns resumption off.
    pub session_cache: usize,
    pub sni: bool,
    pub provider: TlsProvider,
    /// A config brought by the caller, used as it is.
    pub custom: Option<Arc<ClientConfig>>,
}

/// rustls' own default: 256 sessions.
const SESSION_CACHE: usize = 256;

impl Default for TlsSettings {
    fn default() -> TlsSettings {
        TlsSettings {
            extra_roots: Vec::new(),
            only_extra_roots: false,
            client_cert: None,
            danger_accept_invalid_certs: false,
            root_store: RootStore::Webpki,
            ssl_cert_env: true,
            min_version: None,
            max_version: None,
            cipher_suites: None,
            session_cache: SESSION_CACHE,
            sni: true,
            provider: TlsProvider::default(),
            custom: None,
        }
    }
}

impl TlsSettings {
    /// Whether a config built for `other` serves these settings as well:
    /// every field but a config of the caller's (never shared) is the same.
    fn same_config_as(&self, other: &TlsSettings) -> bool {
        let TlsSettings {
            extra_roots,
            only_extra_roots,
            client_cert,
            danger_accept_invalid_certs,
            root_store,
            ssl_cert_env,
            min_version,
            max_version,
            cipher_suites,
            session_cache,
            sni,
            provider,
            custom,
        } = self;
        *extra_roots == other.extra_roots
            && *only_extra_roots == other.only_extra_roots
            && *client_cert == other.client_cert
            && *danger_accept_invalid_certs == other.danger_accept_invalid_certs
            && *root_store == other.root_store
            && *ssl_cert_env == other.ssl_cert_env
            && *min_version == other.min_version
            && *max_version == other.max_version
            && *cipher_suites == other.cipher_suites
            && *session_cache == other.session_cache
            && *sni == other.sni
            && *provider == other.provider
            && custom.is_none()
            && other.custom.is_none()
    }

    /// The settings other than `custom` that were changed, by builder
    /// method name: they cannot be combined with a config of the caller's.
    fn changed_besides_custom(&self) -> Vec<&'static str> {
        let d = TlsSettings::default();
        let mut changed = Vec::new();
        let mut check = |differs: bool, name| {
            if differs {
                changed.push(name)
            }
        };
        check(!self.extra_roots.is_empty(), "add_root_certificate");
        check(self.only_extra_roots, "only_added_roots");
        check(self.client_cert.is_some(), "client_certificate");
        check(
            self.danger_accept_invalid_certs,
            "danger_accept_invalid_certs",
        );
        check(self.root_store != d.root_store, "root_store");
        check(self.min_version.is_some(), "tls_min_version");
        check(self.max_version.is_some(), "tls_max_version");
        check(self.cipher_suites.is_some(), "cipher_suites");
        check(self.session_cache != d.session_cache, "tls_session_cache");
        check(!self.sni, "tls_sni");
        check(self.provider != d.provider, "tls_provider");
        changed
    }
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
            .field("root_store", &self.root_store)
            .field("min_version", &self.min_version)
            .field("max_version", &self.max_version)
            .field("cipher_suites", &self.cipher_suites)
            .field("session_cache", &self.session_cache)
            .field("sni", &self.sni)
            .field("provider", &self.provider)
            .field("custom", &self.custom.is_some())
            .finish()
    }
}

/// An error in a TLS setting of the builder, named by its method.
pub(crate) fn config_error(
    message: impl Into<String>,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> Error {
    Error::with_source(ErrorKind::InvalidConfig, message, source)
}

/// Build the client config for `settings`. A setting that cannot work is
/// an [`ErrorKind::InvalidConfig`] whose message starts with the builder
/// method (or environment variable) that set it.
pub(crate) fn build_config(settings: &TlsSettings) -> Result<Arc<ClientConfig>, Error> {
    if let Some(custom) = &settings.custom {
        let changed = settings.changed_besides_custom();
        if !changed.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "tls_config: a config of your own is used as it is; it cannot be \
                     combined with {}",
                    changed.join(", ")
                ),
            ));
        }
        return Ok(Arc::clone(custom));
    }
    let env = if settings.ssl_cert_env {
        roots::from_env(|name| std::env::var_os(name))?
    } else {
        None
    };
    // Only agents that chose nothing share: an agent given its own TLS
    // settings keeps its own sessions (and a client key is never kept
    // beyond the agents that use it).
    if settings.same_config_as(&TlsSettings::default()) {
        return shared(settings, env);
    }
    build_fresh(settings, env.as_ref())
}

/// How many configs [`shared`] keeps: programs use a handful of TLS setups.
const SHARED_CONFIGS: usize = 8;

/// The config for `settings`, built once per process and shared by every
/// agent with the same settings (and the same `SSL_CERT_FILE` /
/// `SSL_CERT_DIR`): parsing the roots is the costly part of a new agent's
/// first HTTPS request. The session cache is shared too, so a new agent
/// resumes the sessions of an earlier one: what a program that makes an
/// agent per task wants. The last [`SHARED_CONFIGS`] setups are kept.
fn shared(
    settings: &TlsSettings,
    env: Option<roots::EnvRoots>,
) -> Result<Arc<ClientConfig>, Error> {
    type Entry = (TlsSettings, Option<roots::EnvKey>, Arc<ClientConfig>);
    static CONFIGS: Mutex<Vec<Entry>> = Mutex::new(Vec::new());
    let key = env.as_ref().map(|e| e.key.clone());
    let find = |entries: &[Entry]| {
        entries
            .iter()
            .find(|(s, k, _)| *k == key && s.same_config_as(settings))
            .map(|(_, _, config)| Arc::clone(config))
    };
    if let Some(config) = find(&CONFIGS.lock().unwrap_or_else(|p| p.into_inner())) {
        return Ok(config);
    }
    // Built with no lock held; a thread that lost the race uses the winner's.
    let config = build_fresh(settings, env.as_ref())?;
    let mut entries = CONFIGS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(existing) = find(&entries) {
        return Ok(existing);
    }
    if entries.len() >= SHARED_CONFIGS {
        entries.remove(0);
    }
    entries.push((settings.clone(), key, Arc::clone(&config)));
    Ok(config)
}

fn build_fresh(
    settings: &TlsSettings,
    env_roots: Option<&roots::EnvRoots>,
) -> Result<Arc<ClientConfig>, Error> {
    let provider = policy::provider(settings.provider, settings.cipher_suites.as_deref())?;
    let versions = policy::versions(settings.min_version, settings.max_version)?;
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|e| {
            config_error(
                "cipher_suites: no allowed cipher suite works with the allowed TLS versions",
                e,
            )
        })?;
    // Added roots are checked even when verification is off: a bad
    // certificate is a mistake worth hearing about either way.
    let mut added = Vec::new();
    for blob in &settings.extra_roots {
        added.extend(roots::parse_added(blob)?);
    }
    let builder = if settings.danger_accept_invalid_certs {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verify::AcceptAnyCert::new(provider)))
    } else {
        let trust = verify::Trust::new(roots::base_stores(settings, env_roots)?, added, provider)?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(trust))
    };
    let mut config = match &settings.client_cert {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => errors::with_client_cert(builder, chain, key)?,
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.enable_sni = settings.sni;
    config.resumption = if settings.session_cache == 0 {
        rustls::client::Resumption::disabled()
    } else {
        rustls::client::Resumption::in_memory_sessions(settings.session_cache)
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_builds_with_alpn() {
        let config = build_fresh(&TlsSettings::default(), None).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert!(config.enable_sni);
    }

    #[test]
    fn equal_settings_share_one_config_per_process() {
        let a = shared(&TlsSettings::default(), None).unwrap();
        let b = shared(&TlsSettings::default(), None).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn a_changed_setting_gets_its_own_config() {
        let settings = TlsSettings {
            sni: false,
            ..TlsSettings::default()
        };
        assert!(!settings.same_config_as(&TlsSettings::default()));
        let config = shared(&settings, None).unwrap();
        assert!(!config.enable_sni);
        assert!(!Arc::ptr_eq(
            &config,
            &shared(&TlsSettings::default(), None).unwrap()
        ));
        assert!(Arc::ptr_eq(&config, &shared(&settings, None).unwrap()));
    }

    #[test]
    fn an_agent_with_settings_of_its_own_gets_its_own_config() {
        let settings = TlsSettings {
            sni: false,
            ..TlsSettings::default()
        };
        let a = build_config(&settings).unwrap();
        let b = build_config(&settings).unwrap();
        assert!(!Arc::ptr_eq(&a, &b));
        let d1 = build_config(&TlsSettings::default()).unwrap();
        let d2 = build_config(&TlsSettings::default()).unwrap();
        assert!(Arc::ptr_eq(&d1, &d2));
    }

    #[test]
    fn a_client_certificate_config_is_not_kept() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["client.example".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let settings = TlsSettings {
            client_cert: Some((cert.pem().into_bytes(), key.serialize_pem().into_bytes())),
            ..TlsSettings::default()
        };
        let a = build_config(&settings).unwrap();
        let b = build_config(&settings).unwrap();
        assert!(!Arc::ptr_eq(&a, &b));
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
                .starts_with("add_root_certificate: no certificate found"),
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
    fn a_config_of_ones_own_cannot_be_mixed_with_other_settings() {
        let custom = build_fresh(&TlsSettings::default(), None).unwrap();
        let settings = TlsSettings {
            custom: Some(Arc::clone(&custom)),
            min_version: Some(TlsVersion::Tls13),
            ..TlsSettings::default()
        };
        let err = build_config(&settings).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        assert!(err.to_string().starts_with("tls_config: "), "{err}");
        assert!(err.to_string().contains("tls_min_version"), "{err}");
        let alone = TlsSettings {
            custom: Some(Arc::clone(&custom)),
            ..TlsSettings::default()
        };
        assert!(Arc::ptr_eq(&build_config(&alone).unwrap(), &custom));
    }

    #[test]
    fn ip_and_bracketed_names_are_accepted() {
        assert!(server_name("127.0.0.1").is_ok());
        assert!(server_name("[::1]").is_ok());
        assert!(server_name("example.com").is_ok());
    }
}
