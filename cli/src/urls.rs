//! What the command does to the URLs it is given, as curl does: a
//! missing scheme, the path as typed, the remote file name, and which
//! protocols a redirect may switch to.

use crate::exit::{self, Failure};

/// `--proto-redir`: whether the list lets a redirect go to plain http.
/// curl's syntax: `=http,https` sets the list, `+http` / `-http` add or
/// remove, `all` is every protocol.
pub fn allows_http(list: &str) -> bool {
    let mut http = false;
    for item in list.split(',').map(str::trim) {
        let (op, name) = match item.chars().next() {
            Some(c @ ('=' | '+' | '-')) => (c, &item[1..]),
            _ => ('+', item),
        };
        let hit = name.eq_ignore_ascii_case("http") || name.eq_ignore_ascii_case("all");
        match op {
            '=' => http = hit,
            '-' if hit => http = false,
            '+' if hit => http = true,
            _ => {}
        }
    }
    http
}

/// curl's rule for a URL without a scheme: it is http.
pub fn with_scheme(url: &str) -> String {
    if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    }
}

/// The path and query of `url` exactly as typed (for `--path-as-is`): what
/// follows the authority, up to a fragment; `/` when there is none.
pub fn raw_target(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let without_fragment = after_scheme.split('#').next().unwrap_or("");
    match without_fragment.find(['/', '?']) {
        Some(i) if without_fragment[i..].starts_with('?') => {
            format!("/{}", &without_fragment[i..])
        }
        Some(i) => without_fragment[i..].to_string(),
        None => "/".to_string(),
    }
}

/// `-O`: the file name is the URL's last path segment, as curl takes it.
pub fn remote_name(url: &str) -> Result<std::path::PathBuf, Failure> {
    let url = with_scheme(url);
    let path = url
        .split_once("://")
        .map_or("", |(_, rest)| rest)
        .split(['?', '#'])
        .next()
        .unwrap_or("");
    let name = path
        .split_once('/')
        .map_or("", |(_, p)| p)
        .rsplit('/')
        .next()
        .unwrap_or("");
    if name.is_empty() || name == "." || name == ".." {
        return Err(Failure::new(
            exit::WRITE,
            format!("-O: the URL {url} has no file name in its path"),
        ));
    }
    Ok(std::path::PathBuf::from(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_without_a_scheme_are_http() {
        assert_eq!(with_scheme("example.com/a"), "http://example.com/a");
        assert_eq!(with_scheme("https://x/"), "https://x/");
    }

    #[test]
    fn the_raw_target_is_the_path_as_typed() {
        assert_eq!(raw_target("http://h/a/../b?c#d"), "/a/../b?c");
        assert_eq!(raw_target("http://h:80"), "/");
        assert_eq!(raw_target("http://h?x=1"), "/?x=1");
        assert_eq!(raw_target("h/./x"), "/./x");
    }

    #[test]
    fn remote_names_are_the_last_path_segment() {
        let name = |u| remote_name(u).ok().map(|p| p.display().to_string());
        assert_eq!(name("http://h/a/b.txt?x=1").as_deref(), Some("b.txt"));
        assert_eq!(name("h/file").as_deref(), Some("file"));
        assert_eq!(name("http://h/dir/"), None);
        assert_eq!(name("http://h"), None);
        assert_eq!(name("http://h/.."), None);
    }

    #[test]
    fn proto_redir_lists_allow_http_like_curl() {
        assert!(allows_http("=http,https"));
        assert!(allows_http("all"));
        assert!(!allows_http("=https"));
        assert!(!allows_http("all,-http"));
    }
}
