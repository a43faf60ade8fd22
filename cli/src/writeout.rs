//! `-w / --write-out`: curl's `%{variable}` format, printed after each
//! transfer.

use std::collections::BTreeMap;
use std::io::Write;

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
