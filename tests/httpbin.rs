//! Against a real server: httpbin under gunicorn on 127.0.0.1, started by
//! `.ci/run` (which sets `WINDLASS_TEST_HTTPBIN`). Without the variable the
//! tests skip with a notice, unless `CI` is set: then they fail.

mod common;

use std::sync::Arc;
use std::time::Duration;

/// The httpbin base URL, or `None` to skip.
fn httpbin() -> Option<String> {
    match std::env::var("WINDLASS_TEST_HTTPBIN") {
        Ok(url) if !url.is_empty() => {
            let url = url.trim_end_matches('/').to_string();
            assert!(
                url.starts_with("http://127.0.0.1:"),
                "WINDLASS_TEST_HTTPBIN must be a server on 127.0.0.1, not {url}"
            );
            Some(url)
        }
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but WINDLASS_TEST_HTTPBIN is not: .ci/run starts httpbin"
            );
            eprintln!("skipped: WINDLASS_TEST_HTTPBIN is not set (see .ci/run)");
            None
        }
    }
}

fn agent() -> windlass::Agent {
    common::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// httpbin's JSON, compacted: `"key": value` becomes `"key":value`.
fn compact(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join("")
}

#[cfg(feature = "gzip")]
#[test]
fn httpbin_gzip_and_deflate_bodies_are_decoded() {
    let Some(base) = httpbin() else { return };
    let agent = agent();
    for (path, flag) in [
        ("/gzip", "\"gzipped\":true"),
        ("/deflate", "\"deflated\":true"),
    ] {
        let resp = agent.get(format!("{base}{path}")).call().unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.header("content-encoding"), None, "{path}");
        assert_eq!(resp.content_length(), None, "{path}");
        let text = compact(&resp.text().unwrap());
        assert!(text.contains(flag), "{path}: {text}");
    }
}

#[cfg(feature = "brotli")]
#[test]
fn httpbin_brotli_body_is_decoded() {
    let Some(base) = httpbin() else { return };
    let resp = agent().get(format!("{base}/brotli")).call().unwrap();
    assert_eq!(resp.header("content-encoding"), None);
    assert!(compact(&resp.text().unwrap()).contains("\"brotli\":true"));
}

#[test]
fn httpbin_sees_exactly_the_accept_encoding_the_build_decodes() {
    let Some(base) = httpbin() else { return };
    let text = compact(
        &agent()
            .get(format!("{base}/headers"))
            .call()
            .unwrap()
            .text()
            .unwrap(),
    );
    let mut expected = Vec::new();
    if cfg!(feature = "gzip") {
        expected.extend(["gzip", "deflate"]);
    }
    if cfg!(feature = "brotli") {
        expected.push("br");
    }
    if cfg!(feature = "zstd") {
        expected.push("zstd");
    }
    if !expected.is_empty() {
        let want = format!(
            "\"Accept-Encoding\":\"{}\"",
            expected.join(",").replace(' ', "")
        );
        assert!(text.contains(&want), "{text}");
    }
}

#[cfg(feature = "cookies")]
#[test]
fn httpbin_cookies_set_on_a_redirect_are_kept_and_deleted() {
    let Some(base) = httpbin() else { return };
    let jar = Arc::new(windlass::CookieJar::new());
    let agent = common::builder()
        .timeout(Duration::from_secs(20))
        .cookie_store(Arc::clone(&jar))
        .build()
        .unwrap();
    // /cookies/set answers 302 to /cookies with the Set-Cookie.
    let resp = agent
        .get(format!("{base}/cookies/set?flavor=oat&size=large"))
        .call()
        .unwrap();
    assert_eq!(resp.timings().redirects, 1);
    let text = compact(&resp.text().unwrap());
    assert!(text.contains("\"flavor\":\"oat\""), "{text}");
    assert!(text.contains("\"size\":\"large\""), "{text}");
    assert_eq!(jar.len(), 2);
    let text = compact(
        &agent
            .get(format!("{base}/cookies/delete?flavor"))
            .call()
            .unwrap()
            .text()
            .unwrap(),
    );
    assert!(!text.contains("flavor"), "{text}");
    assert_eq!(jar.len(), 1);
}

#[test]
fn httpbin_reads_a_multipart_form_with_a_file() {
    let Some(base) = httpbin() else { return };
    let dir = std::env::temp_dir().join(format!("windlass-httpbin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("notes.txt");
    std::fs::write(&path, "first line\nsecond line\n").unwrap();
    let form = windlass::Multipart::new()
        .text("title", "windlass")
        .file("notes", &path)
        .unwrap();
    let resp = agent()
        .post(format!("{base}/post"))
        .send_multipart(form)
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(resp.status(), 200);
    let text = compact(&resp.text().unwrap());
    assert!(text.contains("\"form\":{\"title\":\"windlass\"}"), "{text}");
    assert!(
        text.contains("\"files\":{\"notes\":\"firstline\\nsecondline\\n\"}"),
        "{text}"
    );
}

#[test]
fn httpbin_redirect_chains_are_followed() {
    let Some(base) = httpbin() else { return };
    let resp = agent().get(format!("{base}/redirect/3")).call().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.timings().redirects, 3);
    assert_eq!(resp.url().path(), "/get");
    let resp = agent()
        .get(format!("{base}/absolute-redirect/2"))
        .call()
        .unwrap();
    assert_eq!(resp.url().path(), "/get");
}

#[test]
fn httpbin_takes_a_large_body_sent_with_expect_continue() {
    let Some(base) = httpbin() else { return };
    let agent = common::builder()
        .timeout(Duration::from_secs(20))
        .expect_continue(Duration::from_secs(1))
        .build()
        .unwrap();
    let body = vec![b'x'; 2 * 1024 * 1024];
    let resp = agent
        .post(format!("{base}/anything"))
        .header("content-type", "application/octet-stream")
        .send_bytes(body)
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.timings().expect_continue.is_some());
    let text = compact(&resp.text().unwrap());
    assert!(text.contains("\"Expect\":\"100-continue\""), "{text}");
    assert!(text.contains("\"Content-Length\":\"2097152\""), "{text}");
}

#[test]
fn httpbin_utf8_page_is_text() {
    let Some(base) = httpbin() else { return };
    let text = agent()
        .get(format!("{base}/encoding/utf8"))
        .call()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        text.contains("∮ E⋅da = Q"),
        "{}",
        &text[..200.min(text.len())]
    );
}
