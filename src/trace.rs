//! The `tracing` feature: one span per call, named and with fields after
//! OpenTelemetry's HTTP client conventions, so a `tracing-opentelemetry`
//! subscriber exports it as a client span as is. Each [`Event`] of the call
//! (DNS, connect, TLS, first byte, body done...) is a `tracing` event
//! inside that span, including those of a body read after the call returned.
//!
//! Span fields: `otel.name` (the method, as the conventions name client
//! spans), `otel.kind = "client"`, `http.request.method`, `url.full` (with
//! any password replaced by `***`), `server.address`, `server.port`, and,
//! once known, `http.response.status_code`, `error.type` (the
//! [`ErrorKind`](crate::ErrorKind), or the status code for a 4xx/5xx) and
//! `otel.status_code = "ERROR"` for a failed call.

use std::sync::Arc;

use tracing::field::Empty;

use crate::error::Error;
use crate::observe::{Event, Hook, RequestInfo};
use crate::request::Request;
use crate::response::Response;

/// The span of one call.
pub(crate) fn span(req: &Request) -> tracing::Span {
    tracing::info_span!(
        "http.client.request",
        otel.name = %req.method,
        otel.kind = "client",
        http.request.method = %req.method,
        url.full = %crate::error::redacted(&req.url),
        server.address = req.url.host_str().unwrap_or(""),
        server.port = req.url.port_or_known_default(),
        http.response.status_code = Empty,
        error.type = Empty,
        otel.status_code = Empty,
    )
}

/// Record how the call ended.
pub(crate) fn record(span: &tracing::Span, result: &Result<Response, Error>) {
    match result {
        Ok(resp) => {
            let status = resp.status().as_u16();
            span.record("http.response.status_code", status);
            if status >= 400 {
                span.record("error.type", status.to_string());
                span.record("otel.status_code", "ERROR");
            }
        }
        Err(err) => {
            span.record("error.type", err.kind().to_string());
            span.record("otel.status_code", "ERROR");
        }
    }
}

/// Turns the call's [`Event`]s into `tracing` events in its span, and
/// passes them on to the request's own hook.
pub(crate) struct TraceHook {
    pub span: tracing::Span,
    pub inner: Option<Arc<dyn Hook>>,
}

impl Hook for TraceHook {
    fn on_event(&self, request: &RequestInfo<'_>, event: &Event<'_>) {
        match event {
            // Heads carry credentials (Authorization, Cookie) and can be
            // large: their names go to the trace, their bytes never do.
            Event::RequestHead { .. } | Event::ResponseHead { .. } => {
                tracing::debug!(parent: &self.span, event = name(event));
            }
            _ => tracing::debug!(parent: &self.span, event = name(event), detail = ?event),
        }
        if let Some(inner) = &self.inner {
            inner.on_event(request, event);
        }
    }
}

fn name(event: &Event<'_>) -> &'static str {
    match event {
        Event::PoolWaitStart => "pool_wait_start",
        Event::PoolWaitEnd { .. } => "pool_wait_end",
        Event::DnsStart { .. } => "dns_start",
        Event::DnsDone { .. } => "dns_done",
        Event::ConnectStart { .. } => "connect_start",
        Event::ConnectDone { .. } => "connect_done",
        Event::TlsStart => "tls_start",
        Event::TlsDone { .. } => "tls_done",
        Event::GotConnection { .. } => "got_connection",
        Event::WroteHeaders => "wrote_headers",
        Event::WroteRequest => "wrote_request",
        Event::FirstByte => "first_byte",
        Event::ResponseDone { .. } => "response_done",
        Event::ConnectionReturned => "connection_returned",
        Event::ConnectionClosed { .. } => "connection_closed",
        Event::ProxyTlsStart => "proxy_tls_start",
        Event::ProxyHandshakeStart => "proxy_handshake_start",
        Event::ProxyHandshakeDone { .. } => "proxy_handshake_done",
        Event::RequestHead { .. } => "request_head",
        Event::ResponseHead { .. } => "response_head",
        Event::ExpectContinueStart => "expect_continue_start",
        Event::ExpectContinueDone { .. } => "expect_continue_done",
    }
}
