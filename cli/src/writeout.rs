//! `-w / --write-out`: curl's `%{variable}` format, printed after each
//! transfer.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Instant;

use windlass::Response;

use crate::heads::Record;

/// A variable's value: text, or a number (unquoted in `%{json}`).
#[derive(Debug, Clone)]
pub enum Value {
    Text(String),
    Int(u64),
    /// Seconds, printed with six decimals as curl does.
    Secs(f64),
    /// An HTTP status, printed with three digits (`000` for none).
    Code(u16),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Text(s) => f.write_str(s),
            Value::Int(n) => write!(f, "{n}"),
            Value::Secs(s) => write!(f, "{s:.6}"),
            Value::Code(c) => write!(f, "{c:03}"),
        }
    }
}

/// The variables of one transfer, and its response headers for
/// `%{header{name}}`.
#[derive(Debug, Default)]
pub struct Vars {
    pub values: BTreeMap<&'static str, Value>,
    pub headers: Vec<(String, String)>,
}

impl Vars {
    pub fn set(&mut self, name: &'static str, value: Value) {
        self.values.insert(name, value);
    }

    fn json(&self) -> String {
        let mut s = String::from("{");
        for (i, (name, value)) in self.values.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&format!("\"{name}\":"));
            match value {
                Value::Text(t) => s.push_str(&json_string(t)),
                Value::Code(c) => s.push_str(&c.to_string()),
                other => s.push_str(&other.to_string()),
            }
        }
        s.push('}');
        s
    }
}

fn json_string(t: &str) -> String {
    let mut s = String::from("\"");
    for c in t.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if (c as u32) < 0x20 => s.push_str(&format!("\\u{:04x}", c as u32)),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// Where the expanded text goes: `%{stderr}` and `%{stdout}` switch it.
enum Sink {
    Out,
    Err,
}

/// Expand `format` for `vars` and write it, to stdout unless it says
/// `%{stderr}`. Unknown variables expand to nothing, as in curl (which
/// also warns); `\n`, `\r`, `\t` and `\\` are escapes, `%%` is `%`.
pub fn write(format: &str, vars: &Vars) {
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    let mut sink = Sink::Out;
    let mut text = String::new();
    let flush = |sink: &Sink, text: &mut String, out: &mut dyn Write, err: &mut dyn Write| {
        let _ = match sink {
            Sink::Out => out.write_all(text.as_bytes()),
            Sink::Err => err.write_all(text.as_bytes()),
        };
        text.clear();
    };
    let mut rest = format;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("%{") {
            if let Some(end) = after.find('}') {
                let mut name = &after[..end];
                let mut used = 2 + end + 1;
                // %{header{name}} holds a brace of its own.
                if let Some(h) = name.strip_prefix("header{") {
                    name = h;
                    let value = vars
                        .headers
                        .iter()
                        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.as_str())
                        .collect::<Vec<_>>()
                        .join(", ");
                    text.push_str(&value);
                    used += after[end + 1..].starts_with('}') as usize;
                } else {
                    match name {
                        "stdout" | "stderr" => {
                            flush(&sink, &mut text, &mut out, &mut err);
                            sink = if name == "stdout" {
                                Sink::Out
                            } else {
                                Sink::Err
                            };
                        }
                        "json" => text.push_str(&vars.json()),
                        _ => {
                            if let Some(v) = vars.values.get(name) {
                                text.push_str(&v.to_string());
                            }
                        }
                    }
                }
                rest = &rest[used..];
                continue;
            }
        }
        if let Some(after) = rest.strip_prefix("%%") {
            text.push('%');
            rest = after;
            continue;
        }
        if let Some(after) = rest.strip_prefix('\\') {
            match after.chars().next() {
                Some('n') => text.push('\n'),
                Some('r') => text.push('\r'),
                Some('t') => text.push('\t'),
                Some('\\') => text.push('\\'),
                _ => {
                    text.push('\\');
                    rest = after;
                    continue;
                }
            }
            rest = &after[1..];
            continue;
        }
        text.push(c);
        rest = &rest[c.len_utf8()..];
    }
    flush(&sink, &mut text, &mut out, &mut err);
    let _ = out.flush();
}

pub fn set_http_code(vars: &mut Vars, code: u16) {
    vars.set("http_code", Value::Code(code));
    vars.set("response_code", Value::Code(code));
}

pub fn set_counts(vars: &mut Vars, record: &Record, resp: Option<&Response>, started: Instant) {
    vars.set("num_connects", Value::Int(record.connects.into()));
    vars.set("size_header", Value::Int(record.heads_size() as u64));
    vars.set(
        "time_redirect",
        Value::Secs(record.time_before_last_attempt(started).as_secs_f64()),
    );
    let Some(resp) = resp else { return };
    set_http_code(vars, resp.status().as_u16());
    vars.set("url_effective", Value::Text(resp.url().to_string()));
    vars.set("num_redirects", Value::Int(resp.timings().redirects.into()));
    let version = match resp.version() {
        windlass::http::Version::HTTP_10 => "1.0",
        _ => "1.1",
    };
    vars.set("http_version", Value::Text(version.to_string()));
    vars.set(
        "content_type",
        Value::Text(resp.header("content-type").unwrap_or("").to_string()),
    );
}

/// curl's timing variables, each from the start of the transfer: the time
/// of earlier hops plus where the last hop got to.
pub fn set_times(
    vars: &mut Vars,
    t: &windlass::Timings,
    record: &Record,
    started: Instant,
    end: Option<std::time::Duration>,
) {
    let before = record.time_before_last_attempt(started);
    let secs = |d: std::time::Duration| Value::Secs(d.as_secs_f64());
    let lookup = before + t.pool_wait.unwrap_or_default() + t.dns.unwrap_or_default();
    let connect = lookup + t.connect.unwrap_or_default();
    let app = t.tls.map(|tls| connect + tls);
    vars.set("time_namelookup", secs(lookup));
    vars.set("time_connect", secs(connect));
    vars.set("time_appconnect", secs(app.unwrap_or_default()));
    vars.set("time_pretransfer", secs(app.unwrap_or(connect)));
    vars.set("time_starttransfer", secs(t.first_byte.unwrap_or_default()));
    vars.set("time_total", secs(end.unwrap_or(t.total)));
    if let Some(addr) = t.remote_addr {
        vars.set("remote_ip", Value::Text(addr.ip().to_string()));
        vars.set("remote_port", Value::Int(addr.port().into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lists_every_variable_with_numbers_unquoted() {
        let mut v = Vars::default();
        v.set("http_code", Value::Code(200));
        v.set("size_download", Value::Int(5));
        v.set("time_total", Value::Secs(0.5));
        v.set("errormsg", Value::Text("a \"b\"\n".into()));
        assert_eq!(
            v.json(),
            r#"{"errormsg":"a \"b\"\n","http_code":200,"size_download":5,"time_total":0.500000}"#
        );
    }
}
