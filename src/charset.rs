//! Response text in the charset the server declared: the `Content-Type`
//! charset, overridden by a byte order mark (the WHATWG rule browsers keep),
//! through `encoding_rs` with the `charset` feature. Without it, text is
//! UTF-8 with invalid bytes replaced, and a UTF-8 BOM is dropped.

/// The charset parameter of a `Content-Type` value, unquoted.
#[cfg_attr(not(feature = "charset"), allow(dead_code))]
pub(crate) fn charset_of(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| value.trim().trim_matches('"'))
    })
}

/// `bytes` as text: the BOM's encoding, else the declared charset, else
/// `default` (a label such as `"windows-1252"`; an unknown one means UTF-8).
#[cfg(feature = "charset")]
pub(crate) fn decode(bytes: &[u8], content_type: Option<&str>, default: &str) -> String {
    let label = content_type.and_then(charset_of).unwrap_or(default);
    let encoding = encoding_rs::Encoding::for_label(label.as_bytes()).unwrap_or(encoding_rs::UTF_8);
    // `decode` sniffs the BOM first and replaces malformed sequences.
    let (text, _, _) = encoding.decode(bytes);
    text.into_owned()
}

/// `bytes` as UTF-8, invalid sequences replaced, a UTF-8 BOM dropped.
#[cfg(not(feature = "charset"))]
pub(crate) fn decode(bytes: &[u8], _content_type: Option<&str>, _default: &str) -> String {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_charset_parameter_is_found_quoted_or_not() {
        assert_eq!(
            charset_of("text/html; charset=ISO-8859-1"),
            Some("ISO-8859-1")
        );
        assert_eq!(charset_of("text/html;CHARSET=\"utf-8\""), Some("utf-8"));
        assert_eq!(charset_of("text/html"), None);
        assert_eq!(charset_of("text/plain; format=flowed"), None);
    }

    #[cfg(feature = "charset")]
    #[test]
    fn declared_charsets_and_boms_decide() {
        assert_eq!(
            decode(b"caf\xe9", Some("text/plain; charset=iso-8859-1"), "utf-8"),
            "café"
        );
        // The BOM wins over the header.
        assert_eq!(
            decode(
                b"\xff\xfeh\0i\0",
                Some("text/plain; charset=iso-8859-1"),
                "utf-8"
            ),
            "hi"
        );
        assert_eq!(decode(b"caf\xe9", None, "windows-1252"), "café");
        assert_eq!(decode(b"\xef\xbb\xbfok", None, "utf-8"), "ok");
    }

    #[cfg(not(feature = "charset"))]
    #[test]
    fn without_the_feature_text_is_lossy_utf8() {
        assert_eq!(
            decode(b"caf\xe9", Some("text/plain; charset=iso-8859-1"), "utf-8"),
            "caf\u{fffd}"
        );
        assert_eq!(decode(b"\xef\xbb\xbfok", None, "utf-8"), "ok");
    }
}
