//! `-F` multipart forms and `-b` / `-c` cookies, as curl spells them.

mod common;

use common::{ok, run, status, stderr, TempDir, TestServer};

/// The boundary from a request's Content-Type.
fn boundary(request: &str) -> String {
    let line = request
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("content-type: multipart/form-data")
        })
        .expect("a multipart content type");
    line.split("boundary=").nth(1).unwrap().trim().to_string()
}

#[test]
fn form_fields_and_files_are_posted_as_multipart() {
    let dir = TempDir::new("form");
    let file = dir.path().join("data.json");
    std::fs::write(&file, b"{\"a\":1}").unwrap();
    let server = TestServer::start(|_| ok(b"done"));
    let file_arg = format!(
        "upload=@{};type=application/x-custom;filename=renamed.json",
        file.display()
    );
    let out = run(&["-F", "title=hello", "-F", &file_arg, &server.url("/form")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let request = server.next_request();
    assert!(request.starts_with("POST /form HTTP/1.1\r\n"), "{request}");
    let b = boundary(&request);
    let body = format!(
        "--{b}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nhello\r\n\
         --{b}\r\nContent-Disposition: form-data; name=\"upload\"; filename=\"renamed.json\"\r\n\
         Content-Type: application/x-custom\r\n\r\n{{\"a\":1}}\r\n--{b}--\r\n"
    );
    assert!(request.ends_with(&body), "{request}");
    assert!(
        request.contains(&format!("\r\nContent-Length: {}\r\n", body.len())),
        "{request}"
    );
}

#[test]
fn a_missing_form_file_is_an_error_before_sending() {
    let server = TestServer::start(|_| ok(b"never"));
    let out = run(&["-F", "f=@/nonexistent/windlass/x", &server.url("/")]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("/nonexistent/windlass/x"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn cookie_data_is_sent_as_given() {
    let server = TestServer::start(|_| ok(b"ok"));
    let out = run(&["-b", "a=1; b=2", &server.url("/")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(server.next_request().contains("\r\nCookie: a=1; b=2\r\n"));
}

#[test]
fn the_cookie_jar_is_written_and_read_back_in_netscape_format() {
    let dir = TempDir::new("jar");
    let jar = dir.path().join("cookies.txt");
    let jar_arg = jar.to_str().unwrap();
    let server = TestServer::start(|_| {
        status(
            200,
            "OK",
            &["Set-Cookie: sid=xyz; Path=/; Max-Age=3600; HttpOnly"],
            b"ok",
        )
    });
    let out = run(&["-c", jar_arg, &server.url("/login")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    server.next_request();
    let text = std::fs::read_to_string(&jar).unwrap();
    assert!(text.starts_with("# Netscape HTTP Cookie File\n"), "{text}");
    assert!(
        text.contains("#HttpOnly_127.0.0.1\tFALSE\t/\tFALSE\t"),
        "{text}"
    );
    assert!(text.contains("\tsid\txyz\n"), "{text}");

    let out = run(&["-b", jar_arg, &server.url("/account")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(server.next_request().contains("\r\nCookie: sid=xyz\r\n"));
}
