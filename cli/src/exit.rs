//! Exit codes: one per class of failure, curl's number where curl has one,
//! so scripts written for curl keep working.

use windlass::ErrorKind;

/// Success.
pub const OK: u8 = 0;
/// A failure that fits no other class (a bug, an unexpected local error).
pub const OTHER: u8 = 1;
/// Bad command line (also what clap exits with), or an option the library
/// refused (a bad method, user agent or CA file).
pub const USAGE: u8 = 2;
/// The URL (or proxy URL) cannot be used.
pub const INVALID_URL: u8 = 3;
/// The host name could not be resolved.
pub const DNS: u8 = 6;
/// No TCP connection could be opened.
pub const CONNECT: u8 = 7;
/// The server broke HTTP/1.1 (bad status line, bad framing, truncated body).
pub const PROTOCOL: u8 = 8;
/// `--fail` and the server answered 4xx or 5xx.
pub const HTTP_ERROR: u8 = 22;
/// Writing the output (stdout or a file) failed.
pub const WRITE: u8 = 23;
/// Reading a local file (`-d @file`, `--cacert`, `-i`) failed.
pub const READ: u8 = 26;
/// A timeout or deadline ran out.
pub const TIMEOUT: u8 = 28;
/// The TLS handshake failed or the certificate was rejected.
pub const TLS: u8 = 35;
/// The body is larger than `--max-filesize`.
pub const FILESIZE: u8 = 63;
/// Too many redirects, or an https → http redirect refused.
pub const REDIRECT: u8 = 47;
/// Another network I/O error (connection reset mid-transfer, …).
pub const NETWORK: u8 = 56;
/// A SOCKS proxy refused the request or the credentials (curl's
/// CURLE_PROXY).
pub const PROXY: u8 = 97;
/// Cancelled by Ctrl-C (128 + SIGINT, as shells report it).
pub const CANCELLED: u8 = 130;

/// The table shown at the end of `--help`; keep it in step with the constants.
pub const HELP: &str = "\
Exit codes (curl's numbers where curl has one):
    0  success
    1  other error
    2  bad command line, or an option that cannot work
    3  invalid URL
    6  could not resolve host
    7  could not connect
    8  protocol error (the server broke HTTP/1.1)
   22  HTTP error 4xx/5xx with --fail
   23  could not write the output
   26  could not read a local file
   28  timeout
   35  TLS error
   47  too many redirects, or an https -> http redirect refused
   56  network error during the transfer, or an HTTP proxy refused CONNECT
   63  the body is larger than --max-filesize
   97  a SOCKS proxy refused the request or the credentials
  130  cancelled by Ctrl-C";

/// The exit code for a library error.
pub fn code_for(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::Timeout(_) => TIMEOUT,
        ErrorKind::Cancelled => CANCELLED,
        ErrorKind::Dns => DNS,
        ErrorKind::Connect => CONNECT,
        ErrorKind::Tls => TLS,
        ErrorKind::Protocol => PROTOCOL,
        ErrorKind::TooManyRedirects | ErrorKind::InsecureRedirect | ErrorKind::RedirectRefused => {
            REDIRECT
        }
        ErrorKind::InvalidUrl => INVALID_URL,
        ErrorKind::Io => NETWORK,
        ErrorKind::Status(_) => HTTP_ERROR,
        // A bad -X, or an option the library refused (--user-agent, --cacert).
        ErrorKind::InvalidMethod | ErrorKind::InvalidConfig => USAGE,
        // curl exits 1 for a protocol it was built without.
        ErrorKind::TlsUnavailable => OTHER,
        // curl: a CONNECT answered with a non-2xx status is 56 ("CONNECT
        // tunnel failed"); a SOCKS refusal is 97.
        ErrorKind::Proxy(windlass::ProxyStatus::Http(_)) => NETWORK,
        ErrorKind::Proxy(_) => PROXY,
        // BodyTooLarge, InvalidHeader, Json and kinds added later.
        _ => OTHER,
    }
}

/// What to tell a person about an error: its message and every cause after
/// it, `message (url): cause: cause…`. windlass's `Display` says only the
/// error itself (its cause is `source()`), so a one-line report must walk
/// the chain. A cause whose text is already at the end of the line (an
/// error that prints its own cause) is not repeated.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let part = c.to_string();
        if !part.is_empty() && !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = c.source();
    }
    text
}

/// Why the command failed: the exit code and what to tell the user.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    /// `None` when there is nothing useful to say (a closed stdout pipe).
    pub message: Option<String>,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: Some(message.into()),
        }
    }

    pub fn silent(code: u8) -> Failure {
        Failure {
            code,
            message: None,
        }
    }

    pub fn usage(message: impl Into<String>) -> Failure {
        Failure::new(USAGE, message)
    }

    pub fn read(what: &str, err: std::io::Error) -> Failure {
        Failure::new(READ, format!("cannot read {what}: {err}"))
    }

    /// A failed write to the output. A closed pipe (`windlass URL | head`)
    /// is not worth a message.
    pub fn write(err: std::io::Error) -> Failure {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            Failure::silent(WRITE)
        } else {
            Failure::new(WRITE, format!("cannot write the output: {err}"))
        }
    }

    /// Prints the message, if any, on stderr.
    pub fn report(&self) {
        if let Some(msg) = &self.message {
            eprintln!("windlass: {msg}");
        }
    }
}

impl From<windlass::Error> for Failure {
    fn from(err: windlass::Error) -> Failure {
        let code = code_for(err.kind());
        if code == CANCELLED {
            Failure::new(code, "cancelled")
        } else {
            Failure::new(code, chain(&err))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_listed_in_the_help() {
        for code in [
            OK,
            OTHER,
            USAGE,
            INVALID_URL,
            DNS,
            CONNECT,
            PROTOCOL,
            HTTP_ERROR,
            WRITE,
            READ,
            TIMEOUT,
            TLS,
            REDIRECT,
            NETWORK,
            FILESIZE,
            CANCELLED,
        ] {
            let line = format!("{code:>5}  ");
            assert!(HELP.lines().any(|l| l.starts_with(&line)), "{code} missing");
        }
    }

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    #[test]
    fn the_chain_shows_every_cause_once() {
        let err = Layer(
            "cannot connect (http://127.0.0.1:1/)",
            Some(Box::new(Layer(
                "connection refused",
                Some(Box::new(Layer("os error 111", None))),
            ))),
        );
        assert_eq!(
            chain(&err),
            "cannot connect (http://127.0.0.1:1/): connection refused: os error 111"
        );
        let repeats = Layer(
            "reading failed: disk on fire",
            Some(Box::new(Layer("disk on fire", None))),
        );
        assert_eq!(chain(&repeats), "reading failed: disk on fire");
    }

    #[test]
    fn a_library_error_is_reported_with_its_cause() {
        let err = windlass::get("http://exa mple.com/").call().unwrap_err();
        let failure = Failure::from(err);
        assert_eq!(failure.code, INVALID_URL);
        let message = failure.message.unwrap();
        assert!(message.starts_with("invalid URL"), "{message}");
        assert!(
            message.contains("\": invalid international domain name"),
            "{message}"
        );
    }

    #[test]
    fn error_classes_have_distinct_codes() {
        let kinds = [
            ErrorKind::Timeout(windlass::Phase::Connect),
            ErrorKind::Cancelled,
            ErrorKind::Dns,
            ErrorKind::Connect,
            ErrorKind::Tls,
            ErrorKind::Protocol,
            ErrorKind::TooManyRedirects,
            ErrorKind::InvalidUrl,
            ErrorKind::Io,
        ];
        let mut codes: Vec<u8> = kinds.iter().map(|k| code_for(*k)).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), kinds.len());
    }
}
