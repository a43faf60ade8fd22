//! The command line, declared with clap's derive API.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::exit;

/// A curl-shaped HTTP/1.1 client, load tester and batch downloader built on
/// the windlass library.
#[derive(Parser, Debug)]
#[command(
    name = "windlass",
    version,
    about = "A curl-shaped HTTP/1.1 client, load tester and batch downloader",
    long_about = "A curl-shaped HTTP/1.1 client, load tester and batch downloader.\n\n\
                  `windlass URL` writes the response body to stdout. Responses with \
                  4xx/5xx statuses are not errors unless --fail is given; the body \
                  is written as sent unless --compressed is given. Ctrl-C cancels the transfers in flight.",
    after_help = exit::HELP,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub transfer: TransferArgs,
}

impl Cli {
    /// Parses the command line (exiting on an error, as `parse` does), and
    /// records the order in which the data options were typed: curl joins
    /// them in that order, which separate lists of values lose.
    pub fn parse_ordered() -> Cli {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Cli::command().get_matches();
        let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        if cli.command.is_none() {
            let mut typed = Vec::new();
            for (id, kind) in [
                ("data", DataKind::Data),
                ("data_binary", DataKind::Binary),
                ("data_raw", DataKind::Raw),
                ("data_urlencode", DataKind::UrlEncode),
            ] {
                let (Some(indices), Some(values)) =
                    (matches.indices_of(id), matches.get_many::<String>(id))
                else {
                    continue;
                };
                typed.extend(indices.zip(values).map(|(i, v)| (i, kind, v.clone())));
            }
            typed.sort_by_key(|(i, _, _)| *i);
            cli.transfer.data_in_order = typed.into_iter().map(|(_, k, v)| (k, v)).collect();
        }
        cli
    }

    /// Whether `-v` was given, wherever it was.
    pub fn verbose(&self) -> bool {
        match &self.command {
            Some(Command::Bench(b)) => b.client.verbose,
            Some(Command::Fetch(f)) => f.client.verbose,
            Some(Command::Soak(s)) => s.verbose,
            None => self.transfer.client.verbose,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Load-test a URL through one shared agent (no URL: an embedded server)
    #[command(after_help = exit::HELP)]
    Bench(BenchArgs),
    /// Download many URLs in parallel, each into its own file
    #[command(after_help = exit::HELP)]
    Fetch(FetchArgs),
    /// Soak one agent against chaos servers on 127.0.0.1 and check it leaks nothing
    Soak(crate::soak::SoakArgs),
}

/// Options every command shares: how to connect and what to send.
#[derive(Args, Debug, Clone)]
pub struct ClientArgs {
    /// Extra request header, e.g. -H 'Accept: text/plain' (repeatable)
    #[arg(
        short = 'H',
        long = "header",
        value_name = "NAME: VALUE",
        help_heading = "Request"
    )]
    pub headers: Vec<String>,

    /// User-Agent to send
    #[arg(
        short = 'A',
        long = "user-agent",
        value_name = "AGENT",
        help_heading = "Request"
    )]
    pub user_agent: Option<String>,

    /// Basic authentication credentials
    #[arg(
        short = 'u',
        long = "user",
        value_name = "USER:PASS",
        help_heading = "Request"
    )]
    pub user: Option<String>,

    /// Follow redirects (credentials are dropped when the host changes)
    #[arg(short = 'L', long = "location", help_heading = "Request")]
    pub location: bool,

    /// Most redirects to follow with -L
    #[arg(
        long = "max-redirs",
        value_name = "N",
        default_value_t = 10,
        help_heading = "Request"
    )]
    pub max_redirs: u32,

    /// Ask for a compressed response (Accept-Encoding: every coding this
    /// build decodes) and decode it; without it a transfer gets the body as
    /// the server sends it, as with curl (bench and fetch always decode)
    #[arg(long = "compressed", help_heading = "Request")]
    pub compressed: bool,

    /// Give up on the whole transfer after this long (fractions allowed)
    #[arg(short = 'm', long = "max-time", value_name = "SECS", value_parser = parse_secs, help_heading = "Connection")]
    pub max_time: Option<Duration>,

    /// Give up connecting after this long
    #[arg(long = "connect-timeout", value_name = "SECS", value_parser = parse_secs, help_heading = "Connection")]
    pub connect_timeout: Option<Duration>,

    /// Fail (exit 28) when the body arrives slower than this many bytes a
    /// second over --speed-time seconds (default 30)
    #[arg(
        short = 'Y',
        long = "speed-limit",
        value_name = "BYTES",
        help_heading = "Connection"
    )]
    pub speed_limit: Option<u64>,

    /// The window --speed-limit is measured over; alone, it means at least
    /// 1 byte a second
    #[arg(short = 'y', long = "speed-time", value_name = "SECS", value_parser = parse_secs, help_heading = "Connection")]
    pub speed_time: Option<Duration>,

    /// Retry failed idempotent requests up to N times (connect errors,
    /// timeouts before a response, 429/502/503/504) [default: no retries]
    #[arg(long = "retry", value_name = "N", help_heading = "Connection")]
    pub retry: Option<u32>,

    /// Wait this long before each retry instead of 1 s doubling
    #[arg(long = "retry-delay", value_name = "SECS", value_parser = parse_secs, help_heading = "Connection")]
    pub retry_delay: Option<Duration>,

    /// Start no retry after this long since the transfer began
    #[arg(long = "retry-max-time", value_name = "SECS", value_parser = parse_secs, help_heading = "Connection")]
    pub retry_max_time: Option<Duration>,

    /// Connect over IPv4 only
    #[arg(
        short = '4',
        long = "ipv4",
        conflicts_with = "ipv6",
        help_heading = "Connection"
    )]
    pub ipv4: bool,

    /// Connect over IPv6 only
    #[arg(short = '6', long = "ipv6", help_heading = "Connection")]
    pub ipv6: bool,

    /// Send requests through this proxy: http://, https://, socks5://,
    /// socks5h://, socks4://, socks4a:// (no scheme: http://) [default: from
    /// http_proxy, https_proxy, all_proxy]
    #[arg(
        short = 'x',
        long = "proxy",
        value_name = "URL",
        help_heading = "Connection"
    )]
    pub proxy: Option<String>,

    #[command(flatten)]
    pub proxies: crate::proxy::ProxyArgs,

    /// Also trust the CA certificates in this PEM file
    #[arg(long = "cacert", value_name = "FILE", help_heading = "TLS")]
    pub cacert: Option<PathBuf>,

    /// Do not verify the server's certificate (dangerous; prints a warning)
    #[arg(short = 'k', long = "insecure", help_heading = "TLS")]
    pub insecure: bool,

    /// TLS policy and client certificate (curl's names)
    #[command(flatten)]
    pub tls: TlsArgs,

    /// Show the request and response heads of every hop and what happens
    /// on the connection, on stderr (RUST_LOG=... for library logs)
    #[arg(short = 'v', long = "verbose", help_heading = "Output")]
    pub verbose: bool,
}

/// `windlass [OPTIONS] URL...`.
#[derive(Args, Debug)]
pub struct TransferArgs {
    /// The URLs to request, one after the other on one connection where the
    /// host allows (http:// is assumed when there is no scheme)
    #[arg(value_name = "URL", required_unless_present = "url_opts", num_args = 1..)]
    pub urls: Vec<String>,

    /// Another URL to request, after the positional ones (repeatable)
    #[arg(long = "url", value_name = "URL")]
    pub url_opts: Vec<String>,

    /// Request method [default: GET, POST with data, HEAD with -I, PUT with -T]
    #[arg(
        short = 'X',
        long = "request",
        value_name = "METHOD",
        help_heading = "Request"
    )]
    pub method: Option<String>,

    /// Form body to POST; @FILE reads a file minus newlines, @- stdin (repeatable)
    #[arg(
        short = 'd',
        long = "data",
        alias = "data-ascii",
        value_name = "DATA",
        help_heading = "Request"
    )]
    pub data: Vec<String>,

    /// Like -d, but @FILE is sent byte for byte
    #[arg(long = "data-binary", value_name = "DATA", help_heading = "Request")]
    pub data_binary: Vec<String>,

    /// Like -d, but a leading @ is just a character
    #[arg(long = "data-raw", value_name = "DATA", help_heading = "Request")]
    pub data_raw: Vec<String>,

    /// Like -d, percent-encoding the content: CONTENT, =CONTENT,
    /// NAME=CONTENT, @FILE or NAME@FILE
    #[arg(long = "data-urlencode", value_name = "DATA", help_heading = "Request")]
    pub data_urlencode: Vec<String>,

    /// Send DATA (or @FILE) as JSON, with JSON Content-Type and Accept
    /// headers; repeated, the pieces are joined
    #[arg(long = "json", value_name = "DATA", conflicts_with_all = ["data", "data_binary", "data_raw", "data_urlencode"], help_heading = "Request")]
    pub json: Vec<String>,

    /// Put the data of -d and friends in the URL's query and send a GET
    #[arg(short = 'G', long = "get", help_heading = "Request")]
    pub get: bool,

    /// Upload FILE with PUT (- is stdin); a URL ending in / gets the file name
    #[arg(
        short = 'T',
        long = "upload-file",
        value_name = "FILE",
        help_heading = "Request"
    )]
    pub upload_file: Option<String>,

    /// Ask for only these bytes, e.g. 0-99 or 500-
    #[arg(
        short = 'r',
        long = "range",
        value_name = "RANGE",
        help_heading = "Request"
    )]
    pub range: Option<String>,

    /// Send a HEAD request and print the response head
    #[arg(short = 'I', long = "head", conflicts_with_all = ["data", "data_binary", "json"], help_heading = "Request")]
    pub head: bool,

    /// Send HTTP/1.0 requests (no connection reuse)
    #[arg(short = '0', long = "http1.0", help_heading = "Request")]
    pub http10: bool,

    /// Send the URL's path as given, `..` and `.` segments included
    #[arg(long = "path-as-is", help_heading = "Request")]
    pub path_as_is: bool,

    /// Send TARGET in the request line instead of the URL's path (e.g. *)
    #[arg(
        long = "request-target",
        value_name = "TARGET",
        help_heading = "Request"
    )]
    pub request_target: Option<String>,

    /// Send `Referer: URL`
    #[arg(
        short = 'e',
        long = "referer",
        value_name = "URL",
        help_heading = "Request"
    )]
    pub referer: Option<String>,

    /// Send `Authorization: Bearer TOKEN`
    #[arg(long = "oauth2-bearer", value_name = "TOKEN", help_heading = "Request")]
    pub oauth2_bearer: Option<String>,

    /// Keep POST (and its body) after a 301 with -L
    #[arg(long = "post301", help_heading = "Request")]
    pub post301: bool,

    /// Keep POST (and its body) after a 302 with -L
    #[arg(long = "post302", help_heading = "Request")]
    pub post302: bool,

    /// Keep POST (and its body) after a 303 with -L
    #[arg(long = "post303", help_heading = "Request")]
    pub post303: bool,

    /// Like -L, and send credentials (-u, Authorization) to other hosts too
    #[arg(long = "location-trusted", help_heading = "Request")]
    pub location_trusted: bool,

    /// Protocols a redirect may switch to: =http,https (or all) allows
    /// https -> http; the default is https only after https
    #[arg(
        long = "proto-redir",
        value_name = "PROTOCOLS",
        help_heading = "Request"
    )]
    pub proto_redir: Option<String>,

    /// Ask for a compressed transfer coding (sends `TE: gzip`); a
    /// `Transfer-Encoding: gzip, chunked` answer is decoded either way
    #[arg(long = "tr-encoding", help_heading = "Request")]
    pub tr_encoding: bool,

    /// Undo --compressed: no Accept-Encoding, no decoding (the default)
    #[arg(long = "raw", help_heading = "Request")]
    pub raw: bool,

    /// How long a large or streamed upload waits for `100 Continue` before
    /// its body goes anyway [default: 1]
    #[arg(
        long = "expect100-timeout",
        value_name = "SECS",
        help_heading = "Request"
    )]
    pub expect100_timeout: Option<f64>,

    /// Fail (exit 63) when the body is larger than this (suffixes k, M, G)
    #[arg(long = "max-filesize", value_name = "BYTES", value_parser = parse_size, help_heading = "Output")]
    pub max_filesize: Option<u64>,

    /// Print the status line and headers before the body (every hop with -L)
    #[arg(short = 'i', long = "include", help_heading = "Output")]
    pub include: bool,

    /// Write the body to FILE instead of stdout (- is stdout); one -o per
    /// URL, in order (progress bar on a terminal)
    #[arg(
        short = 'o',
        long = "output",
        value_name = "FILE",
        help_heading = "Output"
    )]
    pub output: Vec<PathBuf>,

    /// Write each body without an -o into a file named after the URL's
    /// last path segment, in the current directory
    #[arg(short = 'O', long = "remote-name", help_heading = "Output")]
    pub remote_name: bool,

    /// Write the response heads to FILE (- is stdout)
    #[arg(
        short = 'D',
        long = "dump-header",
        value_name = "FILE",
        help_heading = "Output"
    )]
    pub dump_header: Option<PathBuf>,

    /// After each transfer, print FORMAT with curl's %{variables}
    /// (%{http_code}, %{time_total}, %{json}, ...); @FILE reads it
    #[arg(
        short = 'w',
        long = "write-out",
        value_name = "FORMAT",
        help_heading = "Output"
    )]
    pub write_out: Option<String>,

    /// Exit with code 22 on a 4xx/5xx status, writing no body
    #[arg(short = 'f', long = "fail", help_heading = "Output")]
    pub fail: bool,

    /// Like -f (exit 22 on 4xx/5xx), but write the body all the same
    #[arg(
        long = "fail-with-body",
        conflicts_with = "fail",
        help_heading = "Output"
    )]
    pub fail_with_body: bool,

    /// No progress bar and no error messages (see -S)
    #[arg(short = 's', long = "silent", help_heading = "Output")]
    pub silent: bool,

    /// With -s, still print error messages
    #[arg(short = 'S', long = "show-error", help_heading = "Output")]
    pub show_error: bool,

    /// After the transfer, print where the time went on stderr
    #[arg(long = "trace", help_heading = "Output")]
    pub trace: bool,

    /// The data options in the order they were typed (filled by
    /// [`Cli::parse_ordered`]; empty otherwise).
    #[arg(skip)]
    pub data_in_order: Vec<(DataKind, String)>,

    #[command(flatten)]
    pub client: ClientArgs,

    #[command(flatten)]
    pub forms: FormCookieArgs,
}

/// Which data option a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKind {
    /// `-d`: `@FILE` read without newlines.
    Data,
    /// `--data-binary`: `@FILE` read as it is.
    Binary,
    /// `--data-raw`: no `@FILE`.
    Raw,
    /// `--data-urlencode`.
    UrlEncode,
}

/// `windlass bench [URL]`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// URL to load-test; without one, an embedded server on 127.0.0.1 is used
    #[arg(value_name = "URL")]
    pub url: Option<String>,

    /// Worker threads, all sharing one agent
    #[arg(short = 'c', long = "concurrency", value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,

    /// Total requests [default: 20000, or no limit with -d]
    #[arg(short = 'n', long = "requests", value_name = "N")]
    pub requests: Option<u64>,

    /// Run for this long instead of a fixed number of requests
    #[arg(short = 'd', long = "duration", value_name = "SECS", value_parser = parse_secs)]
    pub duration: Option<Duration>,

    /// Request method
    #[arg(
        short = 'X',
        long = "request",
        value_name = "METHOD",
        default_value = "GET"
    )]
    pub method: String,

    /// At the end, print the agent's metrics (Prometheus text format)
    #[arg(long = "metrics")]
    pub metrics: bool,

    /// Most connections per host (callers beyond it wait in line)
    #[arg(long = "max-conns-per-host", value_name = "N", help_heading = "Pool")]
    pub max_conns_per_host: Option<usize>,

    /// Most idle connections kept per host
    #[arg(long = "max-idle-per-host", value_name = "N", help_heading = "Pool")]
    pub max_idle_per_host: Option<usize>,

    /// Close connections idle for longer than this
    #[arg(long = "idle-timeout", value_name = "SECS", value_parser = parse_secs, help_heading = "Pool")]
    pub idle_timeout: Option<Duration>,

    /// Response body size (suffixes k, M, G)
    #[arg(long = "body-size", value_name = "BYTES", default_value = "128", value_parser = parse_size, help_heading = "Embedded server")]
    pub body_size: u64,

    /// Wait this many milliseconds before each answer
    #[arg(
        long = "delay-ms",
        value_name = "MS",
        default_value_t = 0,
        help_heading = "Embedded server"
    )]
    pub delay_ms: u64,

    /// Close each connection after this many requests (exercises reconnects)
    #[arg(
        long = "max-requests-per-conn",
        value_name = "N",
        value_parser = clap::value_parser!(u64).range(1..),
        help_heading = "Embedded server"
    )]
    pub max_requests_per_conn: Option<u64>,

    /// Serve HTTPS with a throwaway certificate
    #[arg(long = "tls", help_heading = "Embedded server")]
    pub tls: bool,

    #[command(flatten)]
    pub client: ClientArgs,
}

/// `windlass fetch URL...`.
#[derive(Args, Debug)]
pub struct FetchArgs {
    /// URLs to download
    #[arg(value_name = "URL")]
    pub urls: Vec<String>,

    /// Read more URLs from FILE, one a line (# starts a comment; - is stdin)
    #[arg(short = 'i', long = "input", value_name = "FILE")]
    pub input: Option<PathBuf>,

    /// Downloads running at once
    #[arg(short = 'j', long = "jobs", value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub jobs: u32,

    /// Directory to write the files into (created if missing)
    #[arg(long = "dir", value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,

    /// Count 4xx/5xx responses as failures and do not save them
    #[arg(short = 'f', long = "fail")]
    pub fail: bool,

    /// Replace files that already exist in DIR
    #[arg(long = "clobber", overrides_with = "no_clobber")]
    pub clobber: bool,

    /// Keep existing files: save as NAME.1, NAME.2, … (up to NAME.100)
    /// instead, as the summary shows [default]
    #[arg(long = "no-clobber", overrides_with = "clobber")]
    pub no_clobber: bool,

    /// No progress display
    #[arg(short = 's', long = "silent")]
    pub silent: bool,

    #[command(flatten)]
    pub client: ClientArgs,
}

/// Seconds, fractions allowed: `2`, `0.5`.
fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !secs.is_finite() || secs <= 0.0 || secs > 1e9 {
        return Err(format!("`{s}` must be a positive number of seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Bytes with an optional binary suffix: `128`, `64k`, `100M`, `1G`.
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (digits, mult) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&t[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("`{s}` is not a size (e.g. 128, 64k, 100M)"))
}

// --- -F, -b, -c: multipart forms and cookies ---------------------------------

/// Multipart forms and cookies, as curl spells them.
#[derive(Args, Debug, Clone, Default)]
pub struct FormCookieArgs {
    /// Multipart form field: NAME=VALUE, NAME=@FILE[;type=TYPE][;filename=NAME], NAME=<FILE (repeatable)
    #[arg(
        short = 'F',
        long = "form",
        value_name = "NAME=CONTENT",
        conflicts_with_all = ["data", "data_binary", "json", "head"],
        help_heading = "Request"
    )]
    pub form: Vec<String>,

    /// Cookies to send: 'NAME=VALUE; ...' as given, or a Netscape cookie FILE to start the jar with (repeatable)
    #[arg(
        short = 'b',
        long = "cookie",
        value_name = "DATA|FILE",
        help_heading = "Request"
    )]
    pub cookie: Vec<String>,

    /// After the transfer, write the cookie jar to FILE (Netscape format, as curl)
    #[arg(
        short = 'c',
        long = "cookie-jar",
        value_name = "FILE",
        help_heading = "Request"
    )]
    pub cookie_jar: Option<PathBuf>,
}

// --- TLS ---------------------------------------------------------------------------

/// TLS options under curl's names.
#[derive(Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// Use TLS 1.2 or later
    #[arg(long = "tlsv1.2", help_heading = "TLS")]
    pub tlsv1_2: bool,

    /// Use TLS 1.3 only (or later)
    #[arg(long = "tlsv1.3", help_heading = "TLS")]
    pub tlsv1_3: bool,

    /// Highest TLS version to use: 1.2, 1.3 or default
    #[arg(long = "tls-max", value_name = "VERSION", value_parser = parse_tls_version, help_heading = "TLS")]
    pub tls_max: Option<TlsMax>,

    /// TLS 1.2 cipher suites to allow, ':'-separated (OpenSSL or IANA names)
    #[arg(long = "ciphers", value_name = "LIST", help_heading = "TLS")]
    pub ciphers: Option<String>,

    /// TLS 1.3 cipher suites to allow, ':'-separated
    #[arg(long = "tls13-ciphers", value_name = "LIST", help_heading = "TLS")]
    pub tls13_ciphers: Option<String>,

    /// Also trust the operating system's CA store
    #[arg(long = "ca-native", help_heading = "TLS")]
    pub ca_native: bool,

    /// Client certificate chain, PEM (leaf first); the key with --key, or in the same file
    #[arg(short = 'E', long = "cert", value_name = "FILE", help_heading = "TLS")]
    pub cert: Option<PathBuf>,

    /// Private key of --cert, PEM
    #[arg(long = "key", value_name = "FILE", help_heading = "TLS")]
    pub key: Option<PathBuf>,

    /// Do not resume TLS sessions
    #[arg(long = "no-sessionid", help_heading = "TLS")]
    pub no_sessionid: bool,
}

/// The value of `--tls-max`: a version, or `None` for `default`.
#[derive(Debug, Clone, Copy)]
pub struct TlsMax(pub Option<windlass::TlsVersion>);

/// `1.2`, `1.3`, or `default` (no maximum), as curl's `--tls-max` takes them.
fn parse_tls_version(s: &str) -> Result<TlsMax, String> {
    match s {
        "1.2" => Ok(TlsMax(Some(windlass::TlsVersion::Tls12))),
        "1.3" => Ok(TlsMax(Some(windlass::TlsVersion::Tls13))),
        "default" => Ok(TlsMax(None)),
        "1.0" | "1.1" => Err(format!("TLS {s} is not supported (1.2 is the lowest)")),
        _ => Err(format!("`{s}` is not a TLS version (1.2, 1.3 or default)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes_and_seconds_parse() {
        assert_eq!(parse_size("128"), Ok(128));
        assert_eq!(parse_size("64k"), Ok(65536));
        assert_eq!(parse_size("100M"), Ok(100 << 20));
        assert!(parse_size("x").is_err());
        assert_eq!(parse_secs("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("0").is_err());
    }

    #[test]
    fn subcommands_and_transfer_options_parse() {
        let cli = Cli::try_parse_from(["windlass", "-i", "-H", "A: b", "http://x/"]).unwrap();
        assert!(cli.command.is_none());
        assert!(cli.transfer.include);
        let cli = Cli::try_parse_from(["windlass", "bench", "-c", "2", "-n", "10"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Bench(ref b)) if b.concurrency == 2));
        let cli = Cli::try_parse_from(["windlass", "fetch", "-j", "3", "http://x/a"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Fetch(ref f)) if f.jobs == 3));
        let fetch = |args: &[&str]| match Cli::try_parse_from(args).unwrap().command {
            Some(Command::Fetch(f)) => f,
            other => panic!("{other:?}"),
        };
        assert!(!fetch(&["windlass", "fetch", "http://x/a"]).clobber);
        assert!(fetch(&["windlass", "fetch", "--clobber", "http://x/a"]).clobber);
        // As in curl, the last of --clobber and --no-clobber wins.
        let f = fetch(&["windlass", "fetch", "--clobber", "--no-clobber", "u"]);
        assert!(!f.clobber);
        let f = fetch(&["windlass", "fetch", "--no-clobber", "--clobber", "u"]);
        assert!(f.clobber);
        assert!(Cli::try_parse_from(["windlass"]).is_err());
    }
}
