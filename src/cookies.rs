//! An agent-wide cookie jar (feature `cookies`): RFC 6265 storage and
//! matching through `cookie_store`, saved and loaded in the Netscape cookie
//! file format that curl (`-b` / `-c`), wget and browsers' exporters use.
//!
//! The jar keeps every attribute a server sets (domain or host-only, path,
//! Secure, HttpOnly, expiry from Expires or Max-Age, SameSite) and sends a
//! cookie only where its rules allow: matching domain and path, Secure ones
//! over https only, expired ones never. Cookies are chosen again for every
//! redirect hop, for that hop's URL. A `Cookie` header the caller sets by
//! hand replaces the jar's for that request (as reqwest), and is dropped by
//! the cross-origin redirect rule like any credential.

use std::io::{self, BufRead, Write};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use cookie_store::{CookieDomain, CookieExpiration, CookieStore, RawCookie};
use http::HeaderMap;
use url::Url;

/// A cookie jar shared by every request of an agent (and by agents given the
/// same one). Set it with
/// [`AgentBuilder::cookie_store`](crate::AgentBuilder::cookie_store); keep an
/// `Arc` to look inside or to save it.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// let jar = Arc::new(windlass::CookieJar::load_file("cookies.txt").unwrap_or_default());
/// let agent = windlass::Agent::builder().cookie_store(Arc::clone(&jar)).build()?;
/// agent.get("https://example.com/login").call()?;
/// jar.save_file("cookies.txt")?;
/// # Ok(()) }
/// ```
#[derive(Default)]
pub struct CookieJar {
    store: Mutex<CookieStore>,
}

impl std::fmt::Debug for CookieJar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values are secrets: count them, never show them.
        let count = self.lock().iter_unexpired().count();
        f.debug_struct("CookieJar")
            .field("cookies", &count)
            .finish()
    }
}

impl CookieJar {
    /// An empty jar.
    pub fn new() -> CookieJar {
        CookieJar::default()
    }

    fn lock(&self) -> MutexGuard<'_, CookieStore> {
        // A panic elsewhere while holding the lock leaves a usable store.
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Store a `Set-Cookie` header value as if `url` had sent it. Returns
    /// whether the jar took it (a cookie for another domain, say, is
    /// refused).
    pub fn insert(&self, set_cookie: &str, url: &Url) -> bool {
        self.lock().parse(set_cookie, url).is_ok()
    }

    /// The `Cookie` header value the jar would send to `url`, if any: longer
    /// paths first (RFC 6265 §5.4), then by name, so the order is stable.
    pub fn header_for(&self, url: &Url) -> Option<String> {
        let store = self.lock();
        let mut cookies = store.matches(url);
        if cookies.is_empty() {
            return None;
        }
        cookies.sort_by(|a, b| {
            let (pa, pb) = (String::from(&a.path), String::from(&b.path));
            pb.len().cmp(&pa.len()).then_with(|| a.name().cmp(b.name()))
        });
        let pairs: Vec<String> = cookies
            .iter()
            .map(|c| format!("{}={}", c.name(), c.value()))
            .collect();
        Some(pairs.join("; "))
    }

    /// The value of the cookie `name` the jar would send to `url`.
    pub fn get(&self, url: &Url, name: &str) -> Option<String> {
        let store = self.lock();
        let found = store
            .get_request_values(url)
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string());
        found
    }

    /// How many unexpired cookies the jar holds.
    pub fn len(&self) -> usize {
        self.lock().iter_unexpired().count()
    }

    /// Whether the jar holds no unexpired cookie.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forget every cookie.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Store the `Set-Cookie` headers of a response from `url`.
    pub(crate) fn store_response(&self, headers: &HeaderMap, url: &Url) {
        let cookies = headers
            .get_all(http::header::SET_COOKIE)
            .iter()
            .filter_map(|v| std::str::from_utf8(v.as_bytes()).ok())
            .filter_map(|v| RawCookie::parse(v.to_string()).ok())
            .collect::<Vec<_>>();
        if !cookies.is_empty() {
            self.lock().store_response_cookies(cookies.into_iter(), url);
        }
    }

    /// Write the unexpired cookies in the Netscape cookie file format, session
    /// cookies included (with expiry 0, as curl writes them).
    ///
    /// # Errors
    ///
    /// When writing fails.
    pub fn save_netscape(&self, mut out: impl Write) -> io::Result<()> {
        let mut text = String::from(
            "# Netscape HTTP Cookie File\n# Written by windlass. Edit at your own risk.\n\n",
        );
        for cookie in self.lock().iter_unexpired() {
            let (domain, subdomains) = match &cookie.domain {
                CookieDomain::HostOnly(d) => (d.clone(), "FALSE"),
                CookieDomain::Suffix(d) => (format!(".{d}"), "TRUE"),
                _ => continue,
            };
            let http_only = if cookie.http_only() == Some(true) {
                "#HttpOnly_"
            } else {
                ""
            };
            let secure = if cookie.secure() == Some(true) {
                "TRUE"
            } else {
                "FALSE"
            };
            let expires = match &cookie.expires {
                CookieExpiration::AtUtc(at) => at.unix_timestamp().max(1),
                CookieExpiration::SessionEnd => 0,
            };
            text.push_str(&format!(
                "{http_only}{domain}\t{subdomains}\t{}\t{secure}\t{expires}\t{}\t{}\n",
                String::from(&cookie.path),
                cookie.name(),
                cookie.value()
            ));
        }
        out.write_all(text.as_bytes())
    }

    /// Save to a file in the Netscape format (see
    /// [`save_netscape`](CookieJar::save_netscape)).
    ///
    /// # Errors
    ///
    /// When the file cannot be written.
    pub fn save_file(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let mut out = Vec::new();
        self.save_netscape(&mut out)?;
        std::fs::write(path, out)
    }

    /// Read a jar in the Netscape cookie file format. Comment and blank
    /// lines are skipped, expired cookies dropped, and a line that is not a
    /// cookie is an error naming its number.
    ///
    /// # Errors
    ///
    /// When reading fails or a line is malformed
    /// ([`io::ErrorKind::InvalidData`]).
    pub fn load_netscape(input: impl BufRead) -> io::Result<CookieJar> {
        let jar = CookieJar::new();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        for (i, line) in input.lines().enumerate() {
            let line = line?;
            let bad = || {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("line {}: not a Netscape cookie line", i + 1),
                )
            };
            let (line, http_only) = match line.strip_prefix("#HttpOnly_") {
                Some(rest) => (rest, true),
                None => (line.as_str(), false),
            };
            let line = line.trim_end_matches(['\r', '\n']);
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split('\t').collect();
            let [domain, subdomains, path, secure, expires, name, value] = fields[..] else {
                return Err(bad());
            };
            let expires: u64 = expires.parse().map_err(|_| bad())?;
            if expires != 0 && expires <= now {
                continue;
            }
            let secure = secure.eq_ignore_ascii_case("TRUE");
            let host = domain.trim_start_matches('.');
            let scheme = if secure { "https" } else { "http" };
            let url = Url::parse(&format!("{scheme}://{host}{path}")).map_err(|_| bad())?;
            let mut set_cookie = format!("{name}={value}; Path={path}");
            if subdomains.eq_ignore_ascii_case("TRUE") {
                set_cookie.push_str(&format!("; Domain={host}"));
            }
            if secure {
                set_cookie.push_str("; Secure");
            }
            if http_only {
                set_cookie.push_str("; HttpOnly");
            }
            if expires != 0 {
                set_cookie.push_str(&format!("; Max-Age={}", expires - now));
            }
            if !jar.insert(&set_cookie, &url) {
                return Err(bad());
            }
        }
        Ok(jar)
    }

    /// Read a jar from a file in the Netscape format (see
    /// [`load_netscape`](CookieJar::load_netscape)).
    ///
    /// # Errors
    ///
    /// When the file cannot be read or a line is malformed.
    pub fn load_file(path: impl AsRef<Path>) -> io::Result<CookieJar> {
        let file = std::fs::File::open(path)?;
        CookieJar::load_netscape(io::BufReader::new(file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn rfc_6265_rules_decide_what_is_sent() {
        let jar = CookieJar::new();
        let from = url("https://shop.example.com/cart/view");
        assert!(jar.insert("host=1", &from));
        assert!(jar.insert("wide=2; Domain=example.com; Path=/", &from));
        assert!(jar.insert("sec=3; Secure; Path=/", &from));
        jar.insert("gone=4; Max-Age=0", &from);
        assert!(!jar.insert("other=5; Domain=other.com", &from));
        // Default path: the directory of the request path.
        assert_eq!(
            jar.header_for(&url("https://shop.example.com/cart/x"))
                .unwrap(),
            "host=1; sec=3; wide=2"
        );
        assert_eq!(
            jar.header_for(&url("http://shop.example.com/")).unwrap(),
            "wide=2"
        );
        // Host-only stays on its host; a Domain cookie goes to subdomains.
        assert_eq!(
            jar.header_for(&url("http://www.example.com/cart/x"))
                .unwrap(),
            "wide=2"
        );
        assert_eq!(jar.header_for(&url("http://example.org/")), None);
    }

    #[test]
    fn the_netscape_format_round_trips() {
        let jar = CookieJar::new();
        let from = url("https://example.com/");
        jar.insert(
            "a=1; Domain=example.com; Path=/; Max-Age=3600; HttpOnly",
            &from,
        );
        jar.insert("b=2; Path=/x; Secure", &from);
        let mut text = Vec::new();
        jar.save_netscape(&mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains("#HttpOnly_.example.com\tTRUE\t/\tFALSE\t"),
            "{text}"
        );
        assert!(
            text.contains("example.com\tFALSE\t/x\tTRUE\t0\tb\t2\n"),
            "{text}"
        );
        let back = CookieJar::load_netscape(text.as_bytes()).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(
            back.get(&url("https://www.example.com/"), "a").unwrap(),
            "1"
        );
        assert_eq!(back.get(&url("https://example.com/x/y"), "b").unwrap(), "2");
        // Secure stays secure; host-only stays host-only.
        assert_eq!(back.get(&url("http://example.com/x/y"), "b"), None);
        assert_eq!(back.get(&url("https://www.example.com/x/y"), "b"), None);
    }

    #[test]
    fn curl_cookie_files_load_and_bad_lines_are_errors() {
        let file = "# Netscape HTTP Cookie File\n\
                    # https://curl.se/docs/http-cookies.html\n\n\
                    .example.com\tTRUE\t/\tFALSE\t0\tsession\tyes\n\
                    example.com\tFALSE\t/\tFALSE\t1\told\tgone\n";
        let jar = CookieJar::load_netscape(file.as_bytes()).unwrap();
        assert_eq!(jar.len(), 1);
        assert_eq!(
            jar.get(&url("http://a.example.com/"), "session").unwrap(),
            "yes"
        );
        let err = CookieJar::load_netscape("not\ta cookie\n".as_bytes()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("line 1"));
    }
}
