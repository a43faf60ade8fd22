//! Where trust comes from: the webpki roots (parsed once per process), the
//! operating system's store (feature `native-roots`, loaded once per
//! process), `SSL_CERT_FILE` / `SSL_CERT_DIR`, and the certificates added to
//! the builder (PEM or DER).

use std::ffi::OsString;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

use super::{config_error, TlsSettings};
use crate::error::{Error, ErrorKind};

/// Which roots an agent trusts, besides the certificates added with
/// [`add_root_certificate`](crate::AgentBuilder::add_root_certificate).
///
/// When `SSL_CERT_FILE` or `SSL_CERT_DIR` is set, the certificates found
/// there replace this store, as they replace the default store of OpenSSL
/// and curl (see [`ssl_cert_env`](crate::AgentBuilder::ssl_cert_env)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RootStore {
    /// The Mozilla roots compiled into the `webpki-roots` crate: the same
    /// on every machine, updated with windlass.
    #[default]
    Webpki,
    /// The operating system's store (on Linux the distribution's CA bundle,
    /// found as OpenSSL finds it), read once per process.
    #[cfg(feature = "native-roots")]
    Native,
    /// Both: a server is trusted when either store trusts it.
    #[cfg(feature = "native-roots")]
    Both,
}

/// The webpki roots, parsed once per process.
fn webpki_store() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    Arc::clone(ROOTS.get_or_init(|| {
        Arc::new(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        })
    }))
}

/// The operating system's roots, read once per process. Reading them is
/// slow (a whole CA bundle parsed), and they do not change under a running
/// program often enough to be worth reading again.
#[cfg(feature = "native-roots")]
fn native_store() -> Result<Arc<RootCertStore>, Error> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    let loaded = ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        let mut store = RootCertStore::empty();
        let (added, _ignored) = store.add_parsable_certificates(found.certs);
        if added == 0 {
            let why = match found.errors.first() {
                Some(e) => e.to_string(),
                None => "no certificate found".to_string(),
            };
            return Err(why);
        }
        Ok(Arc::new(store))
    });
    match loaded {
        Ok(store) => Ok(Arc::clone(store)),
        Err(why) => Err(Error::new(
            ErrorKind::InvalidConfig,
            format!("root_store: the operating system's certificate store cannot be read: {why}"),
        )),
    }
}

/// The stores a server certificate may chain to, besides the added
/// certificates: the certificates of `SSL_CERT_FILE` / `SSL_CERT_DIR` when
/// given, else the chosen root store; none with `only_added_roots`.
pub(super) fn base_stores(
    settings: &TlsSettings,
    env_roots: Option<&EnvRoots>,
) -> Result<Vec<Arc<RootCertStore>>, Error> {
    if settings.only_extra_roots {
        if settings.extra_roots.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                "only_added_roots: no certificate was added with add_root_certificate, \
                 so no server could be trusted",
            ));
        }
        return Ok(Vec::new());
    }
    if let Some(env) = env_roots {
        return Ok(vec![Arc::clone(&env.store)]);
    }
    Ok(match settings.root_store {
        RootStore::Webpki => vec![webpki_store()],
        #[cfg(feature = "native-roots")]
        RootStore::Native => vec![native_store()?],
        #[cfg(feature = "native-roots")]
        RootStore::Both => vec![webpki_store(), native_store()?],
    })
}

/// The certificates of one `add_root_certificate` call: DER (one
/// certificate) or PEM (one or more `CERTIFICATE` blocks).
pub(super) fn parse_added(blob: &[u8]) -> Result<Vec<CertificateDer<'static>>, Error> {
    // DER starts with a SEQUENCE tag; PEM is text.
    if blob.first() == Some(&0x30) {
        return Ok(vec![CertificateDer::from(blob.to_vec())]);
    }
    let certs = pem_certificates(blob)
        .map_err(|e| config_error("add_root_certificate: the PEM cannot be parsed", e))?;
    if certs.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidConfig,
            "add_root_certificate: no certificate found in the PEM \
             (expected a -----BEGIN CERTIFICATE----- block, or DER)",
        ));
    }
    Ok(certs)
}

fn pem_certificates(
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, rustls::pki_types::pem::Error> {
    CertificateDer::pem_slice_iter(pem).collect()
}

/// The values of `SSL_CERT_FILE` and `SSL_CERT_DIR` a store was read from.
pub(super) type EnvKey = (Option<OsString>, Option<OsString>);

/// The store made of the certificates that `SSL_CERT_FILE` / `SSL_CERT_DIR`
/// name, with the values it was read from.
#[derive(Clone, Debug)]
pub(super) struct EnvRoots {
    pub key: EnvKey,
    pub store: Arc<RootCertStore>,
}

/// The certificates named by `SSL_CERT_FILE` and `SSL_CERT_DIR`, as OpenSSL
/// reads them: the file is a PEM bundle; the directory (a `:`-separated list
/// of them, on Unix) holds PEM files, and a file in it that holds no
/// certificate is skipped. `None` when neither is set (or both are empty).
///
/// Many machines set both (to the distribution's bundle and its directory):
/// parsing them takes milliseconds, so they are read once per process for
/// each pair of values, not once per agent.
///
/// Unlike OpenSSL, which quietly trusts nothing when the file is missing, a
/// file or directory that cannot be read is an error at build time: a
/// program that was told where its CAs are should not run without them.
pub(super) fn from_env(var: impl Fn(&str) -> Option<OsString>) -> Result<Option<EnvRoots>, Error> {
    static LAST: Mutex<Option<EnvRoots>> = Mutex::new(None);
    let set = |name| var(name).filter(|v| !v.is_empty());
    let key: EnvKey = (set("SSL_CERT_FILE"), set("SSL_CERT_DIR"));
    if key.0.is_none() && key.1.is_none() {
        return Ok(None);
    }
    {
        let last = LAST.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = last.as_ref().filter(|r| r.key == key) {
            return Ok(Some(found.clone()));
        }
    }
    // Read with no lock held; two threads racing here both read, the last
    // one's store is kept.
    let certs = read_env_certificates(&key)?;
    let mut store = RootCertStore::empty();
    store.add_parsable_certificates(certs);
    let roots = EnvRoots {
        key,
        store: Arc::new(store),
    };
    *LAST.lock().unwrap_or_else(|p| p.into_inner()) = Some(roots.clone());
    Ok(Some(roots))
}

fn read_env_certificates(key: &EnvKey) -> Result<Vec<CertificateDer<'static>>, Error> {
    let (file, dirs) = key;
    let mut certs = Vec::new();
    if let Some(file) = file {
        let path = Path::new(file);
        let pem = std::fs::read(path).map_err(|e| {
            config_error(format!("SSL_CERT_FILE: cannot read {}", path.display()), e)
        })?;
        certs.extend(pem_certificates(&pem).map_err(|e| {
            config_error(
                format!("SSL_CERT_FILE: {} is not a PEM bundle", path.display()),
                e,
            )
        })?);
    }
    if let Some(dirs) = dirs {
        for dir in std::env::split_paths(dirs) {
            certs.extend(certificates_in_dir(&dir)?);
        }
    }
    if certs.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidConfig,
            "SSL_CERT_FILE / SSL_CERT_DIR: no certificate found there, so no server \
             could be trusted (unset them to use the built-in roots)",
        ));
    }
    Ok(certs)
}

fn certificates_in_dir(dir: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| config_error(format!("SSL_CERT_DIR: cannot read {}", dir.display()), e))?;
    let mut certs = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        // Directories, unreadable files and files of other things (CRLs,
        // READMEs) are skipped, as OpenSSL's lookup skips them.
        if !path.is_file() {
            continue;
        }
        if let Ok(pem) = std::fs::read(&path) {
            certs.extend(pem_certificates(&pem).unwrap_or_default());
        }
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn unset_or_empty_variables_leave_the_root_store_alone() {
        assert!(from_env(env(&[])).unwrap().is_none());
        let empty = [("SSL_CERT_FILE", ""), ("SSL_CERT_DIR", "")];
        assert!(from_env(env(&empty)).unwrap().is_none());
    }

    #[test]
    fn a_missing_ssl_cert_file_is_a_config_error_naming_the_variable() {
        let vars = [("SSL_CERT_FILE", "/nonexistent/windlass/ca.pem")];
        let err = from_env(env(&vars)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        assert!(
            err.to_string().starts_with("SSL_CERT_FILE: cannot read"),
            "{err}"
        );
    }

    #[test]
    fn a_directory_without_certificates_is_a_config_error() {
        let dir = std::env::temp_dir().join(format!("windlass-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("README"), "not a certificate").unwrap();
        let path = dir.to_str().unwrap().to_string();
        let vars = [("SSL_CERT_DIR", path.as_str())];
        let err = from_env(env(&vars)).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(err.to_string().contains("no certificate found"), "{err}");
    }

    #[test]
    fn der_is_taken_as_one_certificate() {
        let der = [0x30, 0x03, 0x02, 0x01, 0x01];
        assert_eq!(parse_added(&der).unwrap().len(), 1);
    }
}
