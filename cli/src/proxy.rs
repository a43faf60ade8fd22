//! The proxy options, under curl's names, and how they set up the agent.
//!
//! Without any of them, the library reads `http_proxy`, `https_proxy`,
//! `all_proxy` and `no_proxy` (and the uppercase forms) itself, as curl does.

use std::path::PathBuf;

use clap::Args;
use windlass::{AgentBuilder, Proxy};

use crate::exit::Failure;

/// Proxy options (flattened into the shared client options).
#[derive(Args, Debug, Clone, Default)]
pub struct ProxyArgs {
    /// Reach these hosts without a proxy: a comma list of names (each
    /// with its subdomains), IP addresses, CIDR ranges, optional :port, or
    /// '*'. Overrides NO_PROXY
    #[arg(long = "noproxy", value_name = "LIST", help_heading = "Proxy")]
    pub noproxy: Option<String>,

    /// Use this SOCKS5 proxy, resolving host names here (overrides -x)
    #[arg(long = "socks5", value_name = "HOST[:PORT]", help_heading = "Proxy")]
    pub socks5: Option<String>,

    /// Use this SOCKS5 proxy and let it resolve host names (overrides -x)
    #[arg(
        long = "socks5-hostname",
        value_name = "HOST[:PORT]",
        help_heading = "Proxy"
    )]
    pub socks5_hostname: Option<String>,

    /// Use this SOCKS4a proxy (it resolves host names; overrides -x)
    #[arg(long = "socks4a", value_name = "HOST[:PORT]", help_heading = "Proxy")]
    pub socks4a: Option<String>,

    /// Also trust the CA certificates in this PEM file, for an https:// proxy only
    #[arg(long = "proxy-cacert", value_name = "FILE", help_heading = "Proxy")]
    pub proxy_cacert: Option<PathBuf>,

    /// Credentials for the proxy, USER:PASSWORD (replacing any in its URL)
    #[arg(
        short = 'U',
        long = "proxy-user",
        value_name = "USER:PASSWORD",
        help_heading = "Proxy"
    )]
    pub proxy_user: Option<String>,

    /// Do not verify an https:// proxy's certificate (dangerous; prints a warning)
    #[arg(long = "proxy-insecure", help_heading = "Proxy")]
    pub proxy_insecure: bool,
}

/// Apply the proxy options: a SOCKS option wins over `-x` (curl's rule), and
/// an explicit proxy still honours `NO_PROXY` unless `--noproxy` replaces it,
/// as curl does.
pub fn apply(
    mut b: AgentBuilder,
    proxy: Option<&str>,
    args: &ProxyArgs,
) -> Result<AgentBuilder, Failure> {
    let socks = [
        ("socks5", &args.socks5),
        ("socks5h", &args.socks5_hostname),
        ("socks4a", &args.socks4a),
    ]
    .into_iter()
    .find_map(|(scheme, v)| v.as_ref().map(|hp| format!("{scheme}://{hp}")));
    let chosen = socks.or_else(|| proxy.map(str::to_string));
    if let Some(url) = &chosen {
        let mut proxy = Proxy::new(url)?;
        if let Some(creds) = &args.proxy_user {
            let (user, password) = creds.split_once(':').unwrap_or((creds.as_str(), ""));
            proxy = proxy.credentials(user, password);
        }
        b = b.proxy(proxy);
    }
    let env_list = || {
        ["no_proxy", "NO_PROXY"]
            .into_iter()
            .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
    };
    let list = match (&args.noproxy, &chosen) {
        (Some(list), _) => Some(list.clone()),
        (None, Some(_)) => env_list(),
        (None, None) => None,
    };
    if let Some(list) = list {
        b = b.no_proxy(&list);
    }
    if let Some(path) = &args.proxy_cacert {
        let pem = std::fs::read(path).map_err(|e| Failure::read(&path.display().to_string(), e))?;
        b = b.proxy_root_certificate(&pem);
    }
    if args.proxy_insecure {
        eprintln!(
            "windlass: warning: --proxy-insecure: the proxy's certificate is not verified; \
             anyone on the path to it can read the proxy credentials and plain-http traffic"
        );
        b = b.danger_accept_invalid_proxy_certs(true);
    }
    Ok(b)
}
