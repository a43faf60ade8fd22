//! `multipart/form-data`: text fields, files streamed from disk, readers,
//! exact bytes on the wire, and the boundary check.

mod common;

use common::{Reply, Server};
use windlass::{ErrorKind, Multipart, Part};

/// A file in a fresh temporary directory, removed on drop.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(name: &str, content: &[u8]) -> TempFile {
        let dir =
            std::env::temp_dir().join(format!("windlass-multipart-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn echo_server() -> Server {
    Server::serve(|_| Reply::keep(common::ok("ok")))
}

#[test]
fn text_and_file_fields_are_sent_exactly_with_a_content_length() {
    let file = TempFile::new("report.csv", b"a,b\n1,2\n");
    let server = echo_server();
    let form = Multipart::new()
        .text("title", "Q3")
        .file("report", &file.0)
        .unwrap();
    let b = form.boundary().to_string();
    let resp = common::agent()
        .post(server.url("/upload"))
        .send_multipart(form)
        .unwrap();
    assert_eq!(resp.status(), 200);
    let req = server.request();
    let expected = format!(
        "--{b}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nQ3\r\n\
         --{b}\r\nContent-Disposition: form-data; name=\"report\"; filename=\"report.csv\"\r\n\
         Content-Type: text/csv\r\n\r\na,b\n1,2\n\r\n--{b}--\r\n"
    );
    assert_eq!(String::from_utf8(req.body.clone()).unwrap(), expected);
    assert_eq!(
        req.header("content-type"),
        Some(&*format!("multipart/form-data; boundary={b}"))
    );
    assert_eq!(
        req.header("content-length"),
        Some(&*expected.len().to_string())
    );
    assert!(!req.chunked);
}

#[test]
fn file_name_and_type_can_be_set_for_a_file_part() {
    let file = TempFile::new("raw.dat", b"\x00\x01\x02");
    let server = echo_server();
    let part = Part::file(&file.0)
        .unwrap()
        .file_name("renamed.bin")
        .content_type("application/x-thing");
    common::agent()
        .post(server.url("/"))
        .send_multipart(Multipart::new().part("f", part))
        .unwrap();
    let body = server.request().body;
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("name=\"f\"; filename=\"renamed.bin\"\r\nContent-Type: application/x-thing\r\n\r\n\u{0}\u{1}\u{2}\r\n"),
        "{text}"
    );
}

#[test]
fn a_reader_of_unknown_size_makes_the_form_chunked() {
    let server = echo_server();
    let form = Multipart::new().part(
        "log",
        Part::reader(std::io::Cursor::new(b"line 1\nline 2\n".to_vec())).file_name("app.log"),
    );
    let b = form.boundary().to_string();
    common::agent()
        .post(server.url("/"))
        .send_multipart(form)
        .unwrap();
    let req = server.request();
    assert!(req.chunked);
    assert_eq!(req.header("content-length"), None);
    let expected = format!(
        "--{b}\r\nContent-Disposition: form-data; name=\"log\"; filename=\"app.log\"\r\n\r\n\
         line 1\nline 2\n\r\n--{b}--\r\n"
    );
    assert_eq!(String::from_utf8(req.body).unwrap(), expected);
}

#[test]
fn a_missing_file_fails_when_added() {
    let err = Multipart::new()
        .file("f", "/nonexistent/windlass/file")
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
}

#[test]
fn a_streamed_part_that_contains_the_boundary_fails_the_request() {
    let server = echo_server();
    let form = Multipart::new();
    let poisoned = format!("x\r\n--{}\r\ny", form.boundary()).into_bytes();
    let form = form.part("p", Part::reader(std::io::Cursor::new(poisoned)));
    let err = common::agent()
        .post(server.url("/"))
        .send_multipart(form)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    let mut chain = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        chain.push_str(&format!(": {s}"));
        source = s.source();
    }
    assert!(chain.contains("boundary"), "{chain}");
}

#[test]
fn a_text_field_holding_the_boundary_gets_a_new_boundary() {
    let server = echo_server();
    let form = Multipart::new();
    let old = form.boundary().to_string();
    let form = form.text("t", format!("--{old}"));
    let new = form.boundary().to_string();
    assert_ne!(new, old);
    common::agent()
        .post(server.url("/"))
        .send_multipart(form)
        .unwrap();
    let body = String::from_utf8(server.request().body).unwrap();
    assert_eq!(body.matches(&format!("--{new}")).count(), 2);
}
