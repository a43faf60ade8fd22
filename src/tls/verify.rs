//! Which server certificates are accepted.
//!
//! [`Trust`] asks webpki about each store in turn (the shared root store,
//! then the added certificates), so the parsed webpki roots are never
//! copied per agent. On top of webpki it accepts what curl (OpenSSL)
//! accepts and webpki does not: a server that presents, as its own
//! certificate, one of the certificates the caller added, byte for byte. A
//! plain `openssl req -x509` makes such a certificate with `CA:TRUE`, which
//! webpki refuses as an end entity (`CaUsedAsEndEntity`). The name and the
//! validity dates are still checked; the handshake signature proves the
//! server holds its key.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::config_error;
use crate::error::Error;

/// The verifier of an agent that checks certificates.
#[derive(Debug)]
pub(super) struct Trust {
    /// One webpki verifier per store; a certificate is trusted when one of
    /// them accepts it.
    stores: Vec<Arc<WebPkiServerVerifier>>,
    /// The added certificates, as given: a server presenting one of them
    /// is trusted as itself.
    pinned: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
}

impl Trust {
    pub(super) fn new(
        base: Vec<Arc<RootCertStore>>,
        added: Vec<CertificateDer<'static>>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Trust, Error> {
        let mut stores = Vec::with_capacity(base.len() + 1);
        if !added.is_empty() {
            let mut roots = RootCertStore::empty();
            for cert in &added {
                roots.add(cert.clone()).map_err(|e| {
                    config_error(
                        "add_root_certificate: the certificate cannot be parsed or used as a root",
                        e,
                    )
                })?;
            }
            // Added first: a caller who adds a CA most likely talks to servers it signed.
            stores.push(Arc::new(roots));
        }
        stores.extend(base);
        let stores = stores
            .into_iter()
            .map(|roots| {
                WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
                    .build()
                    .map_err(|e| config_error("root_store: no usable root certificate", e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Trust {
            stores,
            pinned: added,
            provider,
        })
    }
}

/// Errors after which a certificate the caller added, presented as itself,
/// is still accepted: it has no issuer in the stores (a self-signed leaf)
/// or it is a CA used as a leaf. rustls reports the latter only as an
/// opaque webpki error, hence the name test.
fn pinnable(err: &rustls::Error) -> bool {
    match err {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => true,
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => {
            format!("{other:?}").contains("CaUsedAsEndEntity")
        }
        _ => false,
    }
}

/// How much a rejection tells. A store that has nothing to do with the
/// certificate says "unknown issuer", or reports a failed signature check
/// against an unrelated root whose name happens to match; a store the chain
/// leads to says what is really wrong (the name, the dates).
fn rank(err: &rustls::Error) -> u8 {
    use CertificateError as C;
    match err {
        rustls::Error::InvalidCertificate(
            C::NotValidForName
            | C::NotValidForNameContext { .. }
            | C::Expired
            | C::ExpiredContext { .. }
            | C::NotValidYet
            | C::NotValidYetContext { .. }
            | C::Revoked
            | C::InvalidPurpose
            | C::InvalidPurposeContext { .. },
        ) => 3,
        rustls::Error::InvalidCertificate(C::Other(_)) => 2,
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => 1,
        _ => 0,
    }
}

/// Of two rejections, the one that tells more (the first of equals).
fn better(kept: Option<rustls::Error>, new: rustls::Error) -> rustls::Error {
    match kept {
        Some(kept) if rank(&kept) >= rank(&new) => kept,
        _ => new,
    }
}

impl ServerCertVerifier for Trust {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut rejection = None;
        for store in &self.stores {
            match store.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
                Ok(ok) => return Ok(ok),
                Err(e) => rejection = Some(better(rejection, e)),
            }
        }
        // A failed signature check against an unrelated root says no more
        // than that the issuer is unknown.
        let rejection = match rejection {
            Some(e) if rank(&e) > 0 => e,
            _ => rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        };
        let is_pinned = self
            .pinned
            .iter()
            .any(|c| c.as_ref() == end_entity.as_ref());
        if is_pinned && pinnable(&rejection) {
            check_pinned(end_entity, server_name, now)?;
            log::debug!("accepted the server's certificate: it is one of the added certificates");
            return Ok(ServerCertVerified::assertion());
        }
        Err(rejection)
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

/// What is left to check of a certificate trusted as itself: that it is
/// for this name and valid now.
fn check_pinned(
    cert: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> Result<(), rustls::Error> {
    let parsed = rustls::server::ParsedCertificate::try_from(cert)?;
    rustls::client::verify_server_name(&parsed, server_name)?;
    let (not_before, not_after) = validity(cert.as_ref()).ok_or(
        rustls::Error::InvalidCertificate(CertificateError::BadEncoding),
    )?;
    let now_secs = now.as_secs();
    if now_secs < not_before {
        return Err(rustls::Error::InvalidCertificate(
            CertificateError::NotValidYetContext {
                time: now,
                not_before: UnixTime::since_unix_epoch(std::time::Duration::from_secs(not_before)),
            },
        ));
    }
    if now_secs > not_after {
        return Err(rustls::Error::InvalidCertificate(
            CertificateError::ExpiredContext {
                time: now,
                not_after: UnixTime::since_unix_epoch(std::time::Duration::from_secs(not_after)),
            },
        ));
    }
    Ok(())
}

/// One DER element: its tag, its contents and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// `notBefore` and `notAfter` of an X.509 certificate, in seconds since the
/// Unix epoch (RFC 5280 §4.1: Certificate → TBSCertificate → [version],
/// serialNumber, signature, issuer, validity).
fn validity(cert: &[u8]) -> Option<(u64, u64)> {
    const SEQUENCE: u8 = 0x30;
    let (SEQUENCE, cert, _) = element(cert)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = element(cert)? else {
        return None;
    };
    let (tag, _, mut rest) = element(tbs)?;
    if tag == 0xa0 {
        // The explicit version came first; the serial number is next.
        rest = element(rest)?.2;
    }
    let (_, _, rest) = element(rest)?; // signature algorithm
    let (_, _, rest) = element(rest)?; // issuer
    let (SEQUENCE, validity, _) = element(rest)? else {
        return None;
    };
    let (tag, before, rest) = element(validity)?;
    let not_before = time(tag, before)?;
    let (tag, after, _) = element(rest)?;
    let not_after = time(tag, after)?;
    Some((not_before, not_after))
}

/// A UTCTime (`YYMMDDHHMMSSZ`, years 1950–2049) or GeneralizedTime
/// (`YYYYMMDDHHMMSSZ`), as RFC 5280 §4.1.2.5 allows them, in Unix seconds.
fn time(tag: u8, text: &[u8]) -> Option<u64> {
    let digits = |s: &[u8]| -> Option<u64> {
        s.iter().try_fold(0u64, |acc, &b| {
            b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
        })
    };
    let (year, rest) = match (tag, text.len()) {
        (0x17, 13) => {
            let yy = digits(&text[..2])?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
        }
        (0x18, 15) => (digits(&text[..4])?, &text[4..]),
        _ => return None,
    };
    if rest[10] != b'Z' {
        return None;
    }
    let field = |i: usize| digits(&rest[i..i + 2]);
    let (month, day) = (field(0)?, field(2)?);
    let (hour, min, sec) = (field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let days = days_since_epoch(year, month, day)?;
    Some(days * 86_400 + hour * 3600 + min * 60 + sec)
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar
/// (counting 400-year eras from 0000-03-01, so leap days fall at the end of
/// each year of the count); `None` before 1970.
fn days_since_epoch(year: u64, month: u64, day: u64) -> Option<u64> {
    let year = if month <= 2 {
        year.checked_sub(1)?
    } else {
        year
    };
    let era = year / 400;
    let year_of_era = year % 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    (era * 146_097 + day_of_era).checked_sub(719_468)
}

/// The verifier behind `danger_accept_invalid_certs`: any certificate for any
/// name is accepted, but handshake signatures are still checked.
#[derive(Debug)]
pub(super) struct AcceptAnyCert {
    provider: Arc<CryptoProvider>,
}

impl AcceptAnyCert {
    pub(super) fn new(provider: Arc<CryptoProvider>) -> AcceptAnyCert {
        AcceptAnyCert { provider }
    }
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
    fn calendar_dates_count_days_from_the_epoch() {
        assert_eq!(days_since_epoch(1970, 1, 1), Some(0));
        assert_eq!(days_since_epoch(2000, 3, 1), Some(11_017));
        assert_eq!(days_since_epoch(2024, 2, 29), Some(19_782));
        assert_eq!(days_since_epoch(1969, 12, 31), None);
    }

    #[test]
    fn both_time_forms_are_read() {
        assert_eq!(time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(time(0x17, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(time(0x18, b"20240229120000Z"), Some(1_709_208_000));
        assert_eq!(time(0x18, b"20241301000000Z"), None);
        assert_eq!(time(0x17, b"7001010000Z"), None);
        assert_eq!(time(0x17, b"700101000000+"), None);
    }

    #[test]
    fn validity_is_read_from_a_generated_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2021, 5, 6);
        params.not_after = rcgen::date_time_ymd(2051, 1, 2);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let (before, after) = validity(cert.der()).unwrap();
        assert_eq!(before, days_since_epoch(2021, 5, 6).unwrap() * 86_400);
        assert_eq!(after, days_since_epoch(2051, 1, 2).unwrap() * 86_400);
    }

    #[test]
    fn truncated_der_has_no_validity() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2051, 1, 2);
        let key = rcgen::KeyPair::generate().unwrap();
        let der = params.self_signed(&key).unwrap().der().to_vec();
        for cut in [0, 1, 2, 10, 40, der.len() / 2] {
            assert_eq!(validity(&der[..cut]), None, "cut at {cut}");
        }
    }
}
