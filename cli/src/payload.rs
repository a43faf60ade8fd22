//! The request body from -d, --data-binary, --data-raw, --data-urlencode,
//! --json and -T, read once for all the URLs of a command.

use std::io::{self, Read};

use crate::args::{DataKind, TransferArgs};
use crate::exit::Failure;

/// What to send as the request body, and with which Content-Type.
pub struct Payload {
    pub bytes: Vec<u8>,
    /// `None` for an upload (-T), which curl sends without one.
    pub content_type: Option<&'static str>,
    pub json: bool,
}

/// The body the options describe, if any. `-T` wins over data options only
/// when there are none (clap does not forbid the mix; curl sends the file).
pub fn payload(args: &TransferArgs) -> Result<Option<Payload>, Failure> {
    if let Some(file) = &args.upload_file {
        return Ok(Some(Payload {
            bytes: read_source(file)?,
            content_type: None,
            json: false,
        }));
    }
    if !args.json.is_empty() {
        // curl joins repeated --json pieces as they are, without a separator.
        let mut bytes = Vec::new();
        for j in &args.json {
            bytes.extend(data_arg(j, false)?);
        }
        return Ok(Some(Payload {
            bytes,
            content_type: Some("application/json"),
            json: true,
        }));
    }
    let parts = data_parts(args)?;
    if parts.is_empty() {
        return Ok(None);
    }
    Ok(Some(Payload {
        bytes: parts.join(&b'&'),
        content_type: Some("application/x-www-form-urlencoded"),
        json: false,
    }))
}

/// Each data argument's bytes in the order typed, joined later with `&` as
/// curl does. Without the typed order (a parse that did not record it):
/// -d, then --data-binary, --data-raw and --data-urlencode.
pub fn data_parts(args: &TransferArgs) -> Result<Vec<Vec<u8>>, Failure> {
    if !args.data_in_order.is_empty() {
        return args
            .data_in_order
            .iter()
            .map(|(kind, value)| match kind {
                DataKind::Data => data_arg(value, true),
                DataKind::Binary => data_arg(value, false),
                DataKind::Raw => Ok(value.as_bytes().to_vec()),
                DataKind::UrlEncode => urlencode_arg(value),
            })
            .collect();
    }
    let mut parts = Vec::new();
    for d in &args.data {
        parts.push(data_arg(d, true)?);
    }
    for d in &args.data_binary {
        parts.push(data_arg(d, false)?);
    }
    for d in &args.data_raw {
        parts.push(d.as_bytes().to_vec());
    }
    for d in &args.data_urlencode {
        parts.push(urlencode_arg(d)?);
    }
    Ok(parts)
}

/// `DATA`, `@FILE` or `@-` (stdin). `strip_newlines` is curl's -d rule for files.
fn data_arg(arg: &str, strip_newlines: bool) -> Result<Vec<u8>, Failure> {
    let Some(path) = arg.strip_prefix('@') else {
        return Ok(arg.as_bytes().to_vec());
    };
    let mut bytes = read_source(path)?;
    if strip_newlines {
        bytes.retain(|&b| b != b'\r' && b != b'\n');
    }
    Ok(bytes)
}

/// A file's bytes, or stdin's for `-`.
pub fn read_source(path: &str) -> Result<Vec<u8>, Failure> {
    let mut bytes = Vec::new();
    if path == "-" {
        io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| Failure::read("stdin", e))?;
        Ok(bytes)
    } else {
        std::fs::read(path).map_err(|e| Failure::read(path, e))
    }
}

/// curl's `--data-urlencode` forms: `content`, `=content`, `name=content`,
/// `@file` and `name@file`; the content (never the name) is encoded.
fn urlencode_arg(arg: &str) -> Result<Vec<u8>, Failure> {
    let (name, content) = if let Some(rest) = arg.strip_prefix('=') {
        (None, rest.as_bytes().to_vec())
    } else if let Some(path) = arg.strip_prefix('@') {
        (None, read_source(path)?)
    } else {
        let eq = arg.find('=');
        let at = arg.find('@');
        match (eq, at) {
            (Some(e), a) if a.is_none_or(|a| e < a) => {
                (Some(&arg[..e]), arg.as_bytes()[e + 1..].to_vec())
            }
            (_, Some(a)) => (Some(&arg[..a]), read_source(&arg[a + 1..])?),
            _ => (None, arg.as_bytes().to_vec()),
        }
    };
    let mut out = Vec::new();
    if let Some(name) = name {
        out.extend_from_slice(name.as_bytes());
        out.push(b'=');
    }
    out.extend_from_slice(percent_encode(&content).as_bytes());
    Ok(out)
}

/// RFC 3986 percent-encoding: everything but the unreserved characters, a
/// space as `%20` (curl's encoding, not the `+` of HTML forms).
pub fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urlencode_forms_encode_only_the_content() {
        let enc = |s| String::from_utf8(urlencode_arg(s).unwrap()).unwrap();
        assert_eq!(enc("a b&c"), "a%20b%26c");
        assert_eq!(enc("=a=b"), "a%3Db");
        assert_eq!(enc("name=x y"), "name=x%20y");
        assert_eq!(enc("n=a@b"), "n=a%40b");
        assert_eq!(percent_encode("~-._ä".as_bytes()), "~-._%C3%A4");
    }
}
