//! `windlass [OPTIONS] URL`: one request, the body to stdout or a file.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::time::Instant;

use windlass::{CancelToken, Response};

use crate::args::TransferArgs;
use crate::client::{self, Client};
use crate::exit::{Failure, HTTP_ERROR};
use crate::progress::{self, Bar};
use crate::trace;

/// What to send as the request body, and with which Content-Type.
struct Payload {
    bytes: Vec<u8>,
    content_type: &'static str,
    json: bool,
}

pub fn run(args: &TransferArgs, token: &CancelToken) -> Result<(), Failure> {
    let url = args.url.as_deref().unwrap_or_default();
    let cookies = client::Cookies::new(&args.forms)?;
    let agent = cookies.agent(client::builder(&args.client)?).build()?;
    let client = Client::new(agent, &args.client, token)?;
    let payload = payload(args)?;
    let form = client::form(&args.forms)?;
    let method = match (&args.method, args.head, &payload) {
        (Some(m), _, _) => m.to_ascii_uppercase(),
        (None, true, _) => "HEAD".to_string(),
        (None, false, Some(_)) => "POST".to_string(),
        (None, false, None) if form.is_some() => "POST".to_string(),
        (None, false, None) => "GET".to_string(),
    };

    let mut req = cookies.request(client.request(&method, url));
    if let Some(p) = &payload {
        if !client.has_header("content-type") {
            req = req.header("content-type", p.content_type);
        }
        if p.json && !client.has_header("accept") {
            req = req.header("accept", "application/json");
        }
    }
    log::debug!("{method} {url}");
    let started = Instant::now();
    let sent = match (&payload, form) {
        (Some(p), _) => req.send_bytes(&p.bytes),
        (None, Some(form)) => req.send_multipart(form),
        (None, None) => req.call(),
    };
    // -c: the jar is written whatever became of the transfer (as curl).
    cookies.save()?;
    let resp = match sent {
        Ok(resp) => resp,
        Err(err) => {
            if args.trace {
                if let Some(t) = err.timings() {
                    eprint!("{}", trace::render(t, None));
                }
            }
            return Err(err.into());
        }
    };
    if args.client.verbose {
        eprint!("{}", head_text(&resp, "< "));
    }

    if args.fail && resp.status().as_u16() >= 400 {
        return Err(Failure::new(
            HTTP_ERROR,
            format!("the requested URL returned error: {}", status_text(&resp)),
        ));
    }

    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(File::create(path).map_err(|e| {
            Failure::new(
                crate::exit::WRITE,
                format!("cannot create {}: {e}", path.display()),
            )
        })?),
        None => Box::new(io::stdout().lock()),
    };
    let mut out = BufWriter::with_capacity(64 * 1024, &mut out);
    if args.include || args.head {
        out.write_all(head_text(&resp, "").as_bytes())
            .map_err(Failure::write)?;
    }
    let timings = resp.timings().clone();
    let show_bar = args.output.is_some() && !args.silent && progress::stderr_is_terminal();
    let result = copy_body(resp, &mut out, show_bar);
    let flushed = out.flush().map_err(Failure::write);
    let body_end = started.elapsed();
    if args.trace {
        eprint!("{}", trace::render(&timings, Some(body_end)));
    }
    result?;
    flushed
}

/// Streams the body into `out`, drawing the progress bar as it goes.
fn copy_body(resp: Response, out: &mut impl Write, show_bar: bool) -> Result<(), Failure> {
    let mut bar = Bar::new(resp.content_length(), show_bar);
    let mut body = resp.into_body();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(windlass::Error::from_io(e).into()),
        };
        out.write_all(&buf[..n]).map_err(Failure::write)?;
        bar.add(n);
    }
    bar.finish();
    Ok(())
}

/// `HTTP/1.1 200 OK` and the headers, each line prefixed, ending with a blank line.
fn head_text(resp: &Response, prefix: &str) -> String {
    let mut s = format!("{prefix}{:?} {}\r\n", resp.version(), status_text(resp));
    for (name, value) in resp.headers() {
        s.push_str(prefix);
        s.push_str(name.as_str());
        s.push_str(": ");
        s.push_str(&String::from_utf8_lossy(value.as_bytes()));
        s.push_str("\r\n");
    }
    s.push_str(prefix);
    s.push_str("\r\n");
    s
}

fn status_text(resp: &Response) -> String {
    let status = resp.status();
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// Builds the request body from -d, --data-binary and --json.
fn payload(args: &TransferArgs) -> Result<Option<Payload>, Failure> {
    if let Some(json) = &args.json {
        return Ok(Some(Payload {
            bytes: data_arg(json, false)?,
            content_type: "application/json",
            json: true,
        }));
    }
    if args.data.is_empty() && args.data_binary.is_empty() {
        return Ok(None);
    }
    // curl joins every data argument with `&`, -d ones first.
    let mut parts = Vec::new();
    for d in &args.data {
        parts.push(data_arg(d, true)?);
    }
    for d in &args.data_binary {
        parts.push(data_arg(d, false)?);
    }
    Ok(Some(Payload {
        bytes: parts.join(&b'&'),
        content_type: "application/x-www-form-urlencoded",
        json: false,
    }))
}

/// `DATA`, `@FILE` or `@-` (stdin). `strip_newlines` is curl's -d rule for files.
fn data_arg(arg: &str, strip_newlines: bool) -> Result<Vec<u8>, Failure> {
    let Some(path) = arg.strip_prefix('@') else {
        return Ok(arg.as_bytes().to_vec());
    };
    let mut bytes = Vec::new();
    if path == "-" {
        io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| Failure::read("stdin", e))?;
    } else {
        bytes = std::fs::read(path).map_err(|e| Failure::read(path, e))?;
    }
    if strip_newlines {
        bytes.retain(|&b| b != b'\r' && b != b'\n');
    }
    Ok(bytes)
}
