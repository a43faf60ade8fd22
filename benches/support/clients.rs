//! The two clients under test, configured alike: one agent, enough idle
//! connections per host that no scenario closes one for lack of room, the
//! loopback CA as the only trust root for HTTPS, and the body read through
//! `io::Read` into the caller's sink.

use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;

/// Idle time long enough that no connection expires during a run.
const IDLE: Duration = Duration::from_secs(600);

/// A windlass agent keeping up to `idle` connections to the one host.
pub fn windlass_agent(ca_pem: Option<&str>, idle: usize) -> windlass::Agent {
    let mut builder = windlass::Agent::builder()
        .max_idle(idle)
        .max_idle_per_host(idle)
        .max_connections_per_host(idle)
        .idle_timeout(IDLE);
    if let Some(pem) = ca_pem {
        builder = builder.add_root_certificate(pem.as_bytes());
    }
    builder.build().unwrap()
}

/// Sends a windlass request and returns the response with its body unread.
pub fn windlass_call(
    agent: &windlass::Agent,
    url: &str,
    close: bool,
) -> Result<windlass::Response, String> {
    let mut req = agent.get(url);
    if close {
        req = req.header("connection", "close");
    }
    let resp = req.call().map_err(|e| format!("windlass: {e}"))?;
    if resp.status() != 200 {
        return Err(format!("windlass: status {}", resp.status()));
    }
    Ok(resp)
}

/// One windlass GET, the body copied into `sink`; returns the body length.
pub fn windlass_get(
    agent: &windlass::Agent,
    url: &str,
    close: bool,
    sink: &mut impl Write,
) -> Result<u64, String> {
    let mut body = windlass_call(agent, url, close)?.into_body();
    io::copy(&mut body, sink).map_err(|e| format!("windlass body: {e}"))
}

/// A ureq agent keeping up to `idle` connections to the one host.
pub fn ureq_agent(ca_pem: Option<&str>, idle: usize) -> Result<ureq::Agent, String> {
    let mut config = ureq::Agent::config_builder()
        .max_idle_connections(idle)
        .max_idle_connections_per_host(idle)
        .max_idle_age(IDLE);
    if let Some(pem) = ca_pem {
        let ca = ureq::tls::Certificate::from_pem(pem.as_bytes())
            .map_err(|e| format!("ureq CA: {e}"))?;
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![ca])))
            .build();
        config = config.tls_config(tls);
    }
    Ok(config.build().into())
}

/// Sends a ureq request and returns the response with its body unread.
pub fn ureq_call(
    agent: &ureq::Agent,
    url: &str,
    close: bool,
) -> Result<ureq::http::Response<ureq::Body>, String> {
    let mut req = agent.get(url);
    if close {
        req = req.header("connection", "close");
    }
    let resp = req.call().map_err(|e| format!("ureq: {e}"))?;
    if resp.status() != 200 {
        return Err(format!("ureq: status {}", resp.status()));
    }
    Ok(resp)
}

/// One ureq GET, the body copied into `sink`; returns the body length.
pub fn ureq_get(
    agent: &ureq::Agent,
    url: &str,
    close: bool,
    sink: &mut impl Write,
) -> Result<u64, String> {
    let mut resp = ureq_call(agent, url, close)?;
    io::copy(&mut resp.body_mut().as_reader(), sink).map_err(|e| format!("ureq body: {e}"))
}

/// One GET as a one-shot program makes it: a new windlass agent with the
/// default settings (trusting only `ca_pem` for HTTPS), one request, the
/// agent dropped.
pub fn windlass_one_shot(
    ca_pem: Option<&str>,
    url: &str,
    sink: &mut impl Write,
) -> Result<u64, String> {
    let mut builder = windlass::Agent::builder();
    if let Some(pem) = ca_pem {
        builder = builder
            .add_root_certificate(pem.as_bytes())
            .only_added_roots(true);
    }
    let agent = builder
        .build()
        .map_err(|e| format!("windlass agent: {e}"))?;
    windlass_get(&agent, url, false, sink)
}

/// One GET as a one-shot program makes it with ureq: a new agent with the
/// default settings (trusting only `ca_pem` for HTTPS), one request.
pub fn ureq_one_shot(
    ca_pem: Option<&str>,
    url: &str,
    sink: &mut impl Write,
) -> Result<u64, String> {
    let agent = match ca_pem {
        None => ureq::Agent::new_with_defaults(),
        Some(pem) => {
            let ca = ureq::tls::Certificate::from_pem(pem.as_bytes())
                .map_err(|e| format!("ureq CA: {e}"))?;
            let tls = ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![ca])))
                .build();
            ureq::Agent::config_builder().tls_config(tls).build().into()
        }
    };
    ureq_get(&agent, url, false, sink)
}
