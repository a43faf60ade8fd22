//! `windlass [OPTIONS] URL...`: one request per URL, one after the other
//! through one agent (so one connection where the host allows), each body
//! to stdout or its own `-o` file.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use windlass::http::header::{ACCEPT, ACCEPT_ENCODING, AUTHORIZATION, USER_AGENT};
use windlass::{CancelToken, Response};

use crate::args::TransferArgs;
use crate::client::{self, Client};
use crate::exit::{self, Failure, HTTP_ERROR};
use crate::heads::{Record, Recorder};
use crate::payload::{self, Payload};
use crate::progress::{self, Bar};
use crate::trace;
use crate::urls::{allows_http, raw_target, remote_name, with_scheme};
use crate::writeout::{self, set_counts, set_http_code, set_times, Value, Vars};

/// What every URL of the command shares.
struct Plan<'a> {
    args: &'a TransferArgs,
    client: Client,
    payload: Option<Payload>,
    /// The query -G adds to every URL.
    get_query: Option<String>,
    write_out: Option<String>,
    method: String,
    /// -b / -c: the jar and the literal cookies.
    cookies: client::Cookies,
}

pub fn run(args: &TransferArgs, token: &CancelToken) -> Result<(), Failure> {
    let quiet = args.silent && !args.show_error;
    match run_all(args, token) {
        Err(f) if quiet => Err(Failure::silent(f.code)),
        other => other,
    }
}

fn run_all(args: &TransferArgs, token: &CancelToken) -> Result<(), Failure> {
    let quiet = args.silent && !args.show_error;
    let plan = plan(args, token)?;
    let mut last = exit::OK;
    let urls: Vec<&String> = args.urls.iter().chain(&args.url_opts).collect();
    for (i, url) in urls.iter().enumerate() {
        let remote;
        let output = match args.output.get(i) {
            Some(p) => Some(p.as_path()),
            None if args.remote_name => {
                remote = remote_name(url)?;
                Some(remote.as_path())
            }
            None => None,
        };
        let mut vars = Vars::default();
        let result = transfer(&plan, url, output, &mut vars);
        last = result.as_ref().err().map_or(exit::OK, |f| f.code);
        vars.set("exitcode", Value::Int(last.into()));
        let msg = result
            .as_ref()
            .err()
            .and_then(|f| f.message.clone())
            .unwrap_or_default();
        vars.set("errormsg", Value::Text(msg));
        // As curl: each failure is told as it happens, before -w.
        if let Err(f) = &result {
            if !quiet {
                f.report();
            }
        }
        if let Some(format) = &plan.write_out {
            writeout::write(format, &vars);
        }
        if token.is_cancelled() {
            break;
        }
    }
    // As curl: -c writes the jar after every transfer, whatever the result.
    plan.cookies.save()?;
    // The last transfer's result is the command's, as in curl.
    match last {
        exit::OK => Ok(()),
        code => Err(Failure::silent(code)),
    }
}

/// Reads the body sources once and builds the agent.
fn plan<'a>(args: &'a TransferArgs, token: &CancelToken) -> Result<Plan<'a>, Failure> {
    let mut builder = client::builder(&args.client)?;
    let follow = args.client.location || args.location_trusted;
    builder = builder.max_redirects(if follow { args.client.max_redirs } else { 0 });
    if args.location_trusted {
        builder = builder.keep_header_on_redirect(AUTHORIZATION);
    }
    if let Some(protos) = &args.proto_redir {
        builder = builder.https_to_http_redirects(allows_http(protos));
    }
    if let Some(secs) = args.expect100_timeout {
        let wait = Duration::try_from_secs_f64(secs).map_err(|_| {
            Failure::usage(format!(
                "--expect100-timeout: `{secs}` is not a number of seconds"
            ))
        })?;
        builder = builder.expect_continue(wait);
    }
    // As curl: a transfer asks for and decodes a compressed body only with
    // --compressed, so scripts get the bytes the server has (and a Range
    // request is not turned into a full 200 by a server that compresses).
    builder = builder.decompress(args.client.compressed && !args.raw);
    let cookies = client::Cookies::new(&args.forms)?;
    builder = cookies.agent(builder);
    let client = Client::new(builder.build()?, &args.client, token)?;
    let mut payload = payload::payload(args)?;
    let mut get_query = None;
    if args.get && args.upload_file.is_none() {
        if let Some(p) = payload.take() {
            get_query = Some(String::from_utf8_lossy(&p.bytes).into_owned());
        }
    }
    let method = match (&args.method, args.head, &args.upload_file, &payload) {
        (Some(m), _, _, _) => m.to_ascii_uppercase(),
        (None, true, _, _) => "HEAD".to_string(),
        (None, false, Some(_), _) => "PUT".to_string(),
        (None, false, None, Some(_)) => "POST".to_string(),
        (None, false, None, None) if !args.forms.form.is_empty() => "POST".to_string(),
        (None, false, None, None) => "GET".to_string(),
    };
    let write_out = match args.write_out.as_deref() {
        Some(w) => match w.strip_prefix('@') {
            Some(path) => Some(String::from_utf8_lossy(&payload::read_source(path)?).into_owned()),
            None => Some(w.to_string()),
        },
        None => None,
    };
    Ok(Plan {
        args,
        client,
        payload,
        get_query,
        write_out,
        method,
        cookies,
    })
}

/// The URL of one transfer: the scheme added, -G's query appended, and
/// for `-T` into a directory URL, the file's name.
fn full_url(plan: &Plan, url: &str) -> String {
    let mut url = with_scheme(url);
    if let Some(file) = &plan.args.upload_file {
        if url.ends_with('/') && file != "-" {
            if let Some(name) = Path::new(file).file_name() {
                url.push_str(&payload::percent_encode(name.to_string_lossy().as_bytes()));
            }
        }
    }
    if let Some(q) = &plan.get_query {
        let (base, fragment) = match url.split_once('#') {
            Some((b, f)) => (b.to_string(), Some(f.to_string())),
            None => (url.clone(), None),
        };
        let sep = if base.contains('?') { '&' } else { '?' };
        url = format!("{base}{sep}{q}");
        if let Some(f) = fragment {
            url.push('#');
            url.push_str(&f);
        }
    }
    url
}

fn transfer(
    plan: &Plan,
    raw_url: &str,
    output: Option<&Path>,
    vars: &mut Vars,
) -> Result<(), Failure> {
    let args = plan.args;
    let url = full_url(plan, raw_url);
    let method = plan.method.as_str();
    vars.set("url_effective", Value::Text(url.clone()));
    vars.set("method", Value::Text(method.to_string()));
    set_http_code(vars, 0);
    vars.set("num_redirects", Value::Int(0));
    vars.set("size_download", Value::Int(0));
    let recorder = Recorder::new(args.client.verbose);
    let mut req = plan
        .cookies
        .request(plan.client.request(method, &url))
        .hook(recorder.clone());
    for name in plan.client.emptied_defaults() {
        req = req.without_default_header(name);
    }
    if let Some(p) = &plan.payload {
        if let Some(ct) = p.content_type {
            if !plan.client.has_header("content-type") {
                req = req.header("content-type", ct);
            }
        }
        if p.json && !plan.client.has_header("accept") {
            req = req.header("accept", "application/json");
        }
    }
    if let Some(range) = &args.range {
        req = req.header("range", format!("bytes={range}"));
    }
    if let Some(referer) = &args.referer {
        req = req.header("referer", referer.as_str());
    }
    if let Some(token) = &args.oauth2_bearer {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    if args.http10 {
        req = req.http10();
    }
    if args.tr_encoding {
        // As curl: ask for a compressed transfer coding, and mark TE as a
        // hop-by-hop header for any proxy on the way.
        req = req.header("te", "gzip").header("connection", "TE");
    }
    if let Some(target) = &args.request_target {
        req = req.request_target(target);
    } else if args.path_as_is {
        req = req.request_target(&raw_target(&url));
    }
    for (flag, status) in [
        (args.post301, 301),
        (args.post302, 302),
        (args.post303, 303),
    ] {
        if flag {
            req = req.keep_post_on_redirect(status);
        }
    }
    // A form is built per URL: its parts are streams, used up by one send.
    let form = client::form(&args.forms)?;
    let started = Instant::now();
    let sent = match (&plan.payload, form) {
        (Some(p), _) => req.send_bytes(&p.bytes),
        (None, Some(form)) => req.send_multipart(form),
        (None, None) => req.call(),
    };
    let resp = match sent {
        Ok(resp) => resp,
        Err(err) => {
            let record = recorder.take();
            set_counts(vars, &record, None, started);
            if let Some(t) = err.timings() {
                set_times(vars, t, &record, started, None);
                if args.trace {
                    eprint!(
                        "{}",
                        trace::render(t, None, record.time_before_last_attempt(started))
                    );
                }
            }
            return Err(with_hint(err));
        }
    };
    let record = recorder.take();
    set_counts(vars, &record, Some(&resp), started);
    let headers: Vec<(String, String)> = resp
        .headers_as_sent()
        .into_iter()
        .map(|(n, v)| {
            (
                n.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    vars.headers = headers;
    if let Some(path) = &args.dump_header {
        dump_heads(path, &record)?;
    }
    if args.fail && resp.status().as_u16() >= 400 {
        set_times(
            vars,
            resp.timings(),
            &record,
            started,
            Some(started.elapsed()),
        );
        return Err(Failure::new(
            HTTP_ERROR,
            format!(
                "the requested URL returned error: {}",
                crate::heads::status_text(resp.status())
            ),
        ));
    }
    // --fail-with-body: the body is written, then the command fails.
    let failed_status = (args.fail_with_body && resp.status().as_u16() >= 400).then(|| {
        Failure::new(
            HTTP_ERROR,
            format!(
                "the requested URL returned error: {}",
                crate::heads::status_text(resp.status())
            ),
        )
    });
    if let (Some(max), Some(len)) = (args.max_filesize, resp.content_length()) {
        if len > max {
            set_times(
                vars,
                resp.timings(),
                &record,
                started,
                Some(started.elapsed()),
            );
            return Err(too_large(max));
        }
    }

    let to_stdout = output.is_none_or(|p| p == Path::new("-"));
    let mut out: Box<dyn Write> = match output {
        Some(path) if !to_stdout => Box::new(File::create(path).map_err(|e| {
            Failure::new(
                exit::WRITE,
                format!("cannot create {}: {e}", path.display()),
            )
        })?),
        _ => Box::new(io::stdout().lock()),
    };
    let mut out = BufWriter::with_capacity(64 * 1024, &mut out);
    if args.include || args.head {
        for head in &record.heads {
            out.write_all(head.as_bytes()).map_err(Failure::write)?;
        }
    }
    let timings = resp.timings().clone();
    let show_bar = !to_stdout && !args.silent && progress::stderr_is_terminal();
    let mut copied = 0u64;
    let result = copy_body(resp, &mut out, show_bar, args.max_filesize, &mut copied);
    let flushed = out.flush().map_err(Failure::write);
    let body_end = started.elapsed();
    vars.set("size_download", Value::Int(copied));
    vars.set(
        "speed_download",
        Value::Int((copied as f64 / body_end.as_secs_f64().max(1e-9)) as u64),
    );
    set_times(vars, &timings, &record, started, Some(body_end));
    if args.trace {
        eprint!(
            "{}",
            trace::render(
                &timings,
                Some(body_end),
                record.time_before_last_attempt(started)
            )
        );
    }
    result?;
    flushed?;
    failed_status.map_or(Ok(()), Err)
}

fn too_large(max: u64) -> Failure {
    Failure::new(
        exit::FILESIZE,
        format!("the body is larger than --max-filesize {max}"),
    )
}

/// The library's downgrade error names its setting; the user needs the flag.
fn with_hint(err: windlass::Error) -> Failure {
    let insecure = err.kind() == windlass::ErrorKind::InsecureRedirect;
    let mut failure = Failure::from(err);
    if insecure {
        if let Some(m) = &mut failure.message {
            m.push_str(" (allow it with --proto-redir =http,https)");
        }
    }
    failure
}

/// `-D FILE`: every response head of the transfer, as sent.
fn dump_heads(path: &Path, record: &Record) -> Result<(), Failure> {
    let text: String = record.heads.concat();
    if path == Path::new("-") {
        let mut out = io::stdout().lock();
        out.write_all(text.as_bytes()).map_err(Failure::write)?;
        out.flush().map_err(Failure::write)
    } else {
        std::fs::write(path, text)
            .map_err(|e| Failure::new(exit::WRITE, format!("cannot write {}: {e}", path.display())))
    }
}

/// Streams the body into `out`, drawing the progress bar as it goes, and
/// stopping with exit 63 past `max` bytes.
fn copy_body(
    resp: Response,
    out: &mut impl Write,
    show_bar: bool,
    max: Option<u64>,
    copied: &mut u64,
) -> Result<(), Failure> {
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
        if let Some(max) = max {
            if *copied + n as u64 > max {
                return Err(too_large(max));
            }
        }
        out.write_all(&buf[..n]).map_err(Failure::write)?;
        *copied += n as u64;
        bar.add(n);
    }
    bar.finish();
    Ok(())
}

/// The default headers `-H 'Name:'` removes, when windlass would add them.
pub fn default_header(name: &str) -> Option<windlass::http::HeaderName> {
    [USER_AGENT, ACCEPT, ACCEPT_ENCODING]
        .into_iter()
        .find(|h| h.as_str().eq_ignore_ascii_case(name))
}
