//! Conversions with the `http` crate's `Request` and `Response`, the types
//! the Rust HTTP ecosystem shares.
//!
//! - [`Agent::run`] sends an `http::Request<B>` for any body `B` windlass
//!   can send ([`SendableBody`]);
//! - `http::Response<Body>::from(response)` turns a [`Response`] into the
//!   `http` type, with the final [`Url`] and the [`Timings`] in its
//!   extensions; `Response::from(http_response)` goes back (a middleware or
//!   a test double that builds `http` responses).

use std::io::Read;

use http::Extensions;
use url::Url;

use crate::agent::Agent;
use crate::body::Body;
use crate::error::Error;
use crate::request::{IntoUrl, RequestBuilder, SendBody};
use crate::response::Response;
use crate::timings::Timings;

mod sealed {
    /// The conversion itself, out of the public API.
    pub trait Sealed {
        fn into_send_body(self, headers: &http::HeaderMap) -> Result<Converted, super::Error>;
    }

    /// A converted body; unnameable outside the crate.
    pub struct Converted(pub(crate) super::SendBody);
}

use sealed::Converted;

/// A body [`Agent::run`] can send: `()` (none), bytes (`Vec<u8>`, `&[u8]`,
/// `String`, `&str`), or a stream (`Box<dyn Read + Send>`, a [`Body`]),
/// sent chunked unless the request has a `Content-Length`.
pub trait SendableBody: sealed::Sealed {}

macro_rules! bytes_bodies {
    ($($t:ty => $conv:expr;)*) => {
        $(
            impl SendableBody for $t {}
            impl sealed::Sealed for $t {
                fn into_send_body(self, _: &http::HeaderMap) -> Result<Converted, Error> {
                    let conv: fn($t) -> Vec<u8> = $conv;
                    Ok(Converted(SendBody::Bytes(conv(self))))
                }
            }
        )*
    };
}

bytes_bodies! {
    Vec<u8> => |v| v;
    &[u8] => |v| v.to_vec();
    String => String::into_bytes;
    &str => |s| s.as_bytes().to_vec();
}

impl SendableBody for () {}
impl sealed::Sealed for () {
    fn into_send_body(self, _: &http::HeaderMap) -> Result<Converted, Error> {
        Ok(Converted(SendBody::Empty))
    }
}

fn reader_body(
    reader: Box<dyn Read + Send>,
    headers: &http::HeaderMap,
) -> Result<Converted, Error> {
    let length = crate::http1::content_length(headers)
        .map_err(|_| Error::new(crate::ErrorKind::InvalidHeader, "invalid Content-Length"))?;
    Ok(Converted(SendBody::Reader(reader, length)))
}

impl SendableBody for Box<dyn Read + Send> {}
impl sealed::Sealed for Box<dyn Read + Send> {
    fn into_send_body(self, headers: &http::HeaderMap) -> Result<Converted, Error> {
        reader_body(self, headers)
    }
}

impl SendableBody for Body {}
impl sealed::Sealed for Body {
    fn into_send_body(self, headers: &http::HeaderMap) -> Result<Converted, Error> {
        reader_body(Box::new(self), headers)
    }
}

impl Agent {
    /// Send an `http::Request` through this agent: its method, URI (an
    /// absolute http or https URL), headers and body, with the agent's
    /// settings, middleware, redirects and retries. The HTTP version asked
    /// for is ignored: windlass speaks HTTP/1.1. A [`CancelToken`](crate::CancelToken)
    /// in the request's extensions is attached to the call.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), windlass::Error> {
    /// let agent = windlass::Agent::new();
    /// let request = windlass::http::Request::post("http://127.0.0.1:8080/items")
    ///     .header("content-type", "application/json")
    ///     .body(r#"{"name": "bolt"}"#)
    ///     .unwrap();
    /// let response: windlass::http::Response<windlass::Body> = agent.run(request)?.into();
    /// # drop(response); Ok(()) }
    /// ```
    #[track_caller]
    pub fn run<B: SendableBody>(&self, request: http::Request<B>) -> Result<Response, Error> {
        let (parts, body) = request.into_parts();
        let url = parts.uri.to_string().into_url();
        let mut builder = RequestBuilder::new(self.clone(), Ok(parts.method), url);
        builder.headers = parts.headers;
        if let Some(token) = parts.extensions.get::<crate::CancelToken>() {
            builder = builder.cancel_token(token);
        }
        match sealed::Sealed::into_send_body(body, &builder.headers) {
            Ok(Converted(body)) => builder.send(body),
            Err(err) => {
                builder.fail(err);
                builder.send(SendBody::Empty)
            }
        }
    }
}

impl From<Response> for http::Response<Body> {
    /// The status, version, headers and body; the final [`Url`] and the
    /// [`Timings`] go into the extensions.
    fn from(response: Response) -> http::Response<Body> {
        let mut out = http::Response::new(response.body);
        *out.status_mut() = response.status;
        *out.version_mut() = response.version;
        *out.headers_mut() = response.headers;
        out.extensions_mut().insert(response.url);
        out.extensions_mut().insert(response.timings);
        out
    }
}

impl From<http::Response<Body>> for Response {
    /// The status, version, headers and body; the URL and timings from the
    /// extensions when there (as [`From<Response>`](#impl-From%3CResponse%3E-for-Response%3CBody%3E)
    /// puts them), else `http://localhost/` and zero timings.
    fn from(response: http::Response<Body>) -> Response {
        let (mut parts, body) = response.into_parts();
        let url = take::<Url>(&mut parts.extensions)
            .unwrap_or_else(|| Url::parse("http://localhost/").expect("a valid URL"));
        let mut out = Response::new(parts.status, parts.headers, body, url);
        out.version = parts.version;
        if let Some(timings) = take::<Timings>(&mut parts.extensions) {
            out.timings = timings;
        }
        out
    }
}

fn take<T: Clone + Send + Sync + 'static>(extensions: &mut Extensions) -> Option<T> {
    extensions.remove::<T>()
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Body {
        Body::from_bytes(bytes)
    }
}

impl From<String> for Body {
    fn from(text: String) -> Body {
        Body::from_bytes(text.into_bytes())
    }
}

impl From<&'static str> for Body {
    fn from(text: &'static str) -> Body {
        Body::from_bytes(text.as_bytes())
    }
}
