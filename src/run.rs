//! One request from start to finish, top to bottom:
//! defaults ► middleware ► redirects ► retries ► pool checkout ► connect ► write request ► read head ► hand over the body.

use std::io::Read;
use std::time::Instant;

use http::header::{
    ACCEPT, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, HOST,
    PROXY_AUTHORIZATION, TRANSFER_ENCODING, USER_AGENT,
};
use http::{Method, StatusCode};

use crate::agent::{Agent, AgentInner};
use crate::body::{Body, Held, RawBody};
use crate::conn::Conn;
use crate::deadline::Deadline;
use crate::error::{Chain, Error, ErrorKind, Phase};
use crate::exchange::{Exchange, Limit, Setting};
use crate::http1::{self, Decoder, Framing};
use crate::observe::{Event, Observer};
use crate::pool::{CloseReason, Lease};
use crate::redirect::{self, Next};
use crate::request::{Request, SendBody};
use crate::response::Response;
use crate::retry;
use crate::timings::Timings;

/// Request bodies up to this size go out in the same write as the head.
const COALESCE_BODY: usize = 16 * 1024;
/// Most 1xx responses skipped before the final one.
const MAX_INFORMATIONAL: usize = 16;
/// How long to look for a response the server sent before a request write
/// failed: anything it sent before closing has arrived by then.
const EARLY_RESPONSE_GRACE: std::time::Duration = std::time::Duration::from_millis(200);
/// Chunk size for streaming a reader body.
const UPLOAD_CHUNK: usize = 16 * 1024;

/// Run a request: add the agent's defaults, pass it through the middleware
/// chain, follow redirects, retry what may be retried.
pub(crate) fn run(agent: &Agent, mut req: Request) -> Result<Response, Error> {
    let inner = &*agent.inner;
    let defaults = &inner.config.defaults;
    defaults.apply_defaults(&mut req.headers);
    // The agent-wide token (`Agent::cancel_all`) reaches every request: as
    // its token, or linked with the caller's own.
    let agent_token = defaults.cancel_token();
    req.overrides.cancel = Some(match req.overrides.cancel.take() {
        None => agent_token,
        Some(own) => own.linked(&agent_token),
    });
    let chain: &[_] = if req.overrides.extras.skip_middleware {
        &[]
    } else {
        &defaults.middleware
    };
    #[cfg(feature = "tracing")]
    let span = crate::trace::span(&req);
    #[cfg(feature = "tracing")]
    let _entered = span.enter();
    #[cfg(feature = "tracing")]
    {
        let inner = req.overrides.hook.take();
        req.overrides.hook = Some(std::sync::Arc::new(crate::trace::TraceHook {
            span: span.clone(),
            inner,
        }));
    }
    let result = crate::middleware::run_chain(agent, chain, req);
    #[cfg(feature = "tracing")]
    crate::trace::record(&span, &result);
    if let Err(err) = &result {
        inner.metrics.error(err.kind());
    }
    result
}

/// Redirects, each hop decided by the redirect policy; retries per hop.
pub(crate) fn follow(inner: &AgentInner, mut req: Request) -> Result<Response, Error> {
    let started = Instant::now();
    let overall = Deadline::after(
        started,
        req.overrides.timeout.or(inner.config.timeouts.overall),
    )
    .min(req.overrides.deadline.map_or(Deadline::Never, Deadline::At));
    // A request's own maximum replaces the agent's, above it or below.
    let default_policy = redirect::DefaultRedirects::new(
        req.overrides
            .max_redirects
            .unwrap_or(inner.config.max_redirects),
    )
    .https_to_http(inner.config.https_to_http);
    let own_policy = req.overrides.extras.redirect_policy.take();
    let policy: &dyn redirect::RedirectPolicy =
        match (&own_policy, &inner.config.defaults.redirect_policy) {
            (Some(own), _) => &**own,
            (None, Some(agent)) => &**agent,
            (None, None) => &default_policy,
        };
    let mut redirects = 0;
    loop {
        let mut resp =
            with_retries(inner, &mut req, overall, started).map_err(|e| e.at_url(&req.url))?;
        resp.timings.redirects = redirects;
        // Whether https→http may be followed is the policy's call.
        let next = redirect::next(resp.status, &resp.headers, &req.method, &req.url, true)
            .map_err(|e| e.at_url(&req.url))?;
        let Next::Follow { mut url, to_get } = next else {
            return Ok(resp);
        };
        let to_get = to_get
            && !(req.method == Method::POST
                && req.overrides.form.keep_post.contains(&resp.status.as_u16()));
        // Credentials in a Location are neither used nor kept: they would
        // reach a proxy in the request line and show in `Response::url()`.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let hop = redirect::Hop {
            status: resp.status,
            method: &req.method,
            from: &req.url,
            to: &url,
            count: redirects + 1,
        };
        // A request's own maximum holds whatever the policy says, and so
        // does the ceiling that ends redirect loops.
        let action = req
            .overrides
            .max_redirects
            .and_then(|max| redirect::cap(max, hop.count))
            .or_else(|| redirect::cap(redirect::MAX_HOPS, hop.count))
            .unwrap_or_else(|| policy.redirect(&hop));
        match action.0 {
            redirect::Decision::Follow => {}
            redirect::Decision::Stop => return Ok(resp),
            redirect::Decision::Fail(err) => return Err(err.at_url(&req.url)),
        }
        if !to_get && !req.body.replayable() {
            // A 307/308 wants the same body again, and a streamed body is gone:
            // the caller gets the redirect and decides.
            return Ok(resp);
        }
        drop(resp);
        if to_get {
            req.method = Method::GET;
            req.body = SendBody::Empty;
            req.headers.remove(CONTENT_TYPE);
            req.headers.remove(CONTENT_LENGTH);
            req.headers.remove(TRANSFER_ENCODING);
        }
        if !redirect::same_origin(&req.url, &url) {
            let keep = &inner.config.redirect_keep_headers;
            let keep_here = &req.overrides.redirect_keep_headers;
            let keep: Vec<http::HeaderName> = keep.iter().chain(keep_here).cloned().collect();
            redirect::strip_for_new_origin(&mut req.headers, !to_get, &keep);
        }
        // An explicit request target was for the URL the caller named.
        req.overrides.form.target = None;
        log::debug!("following redirect to {}", crate::error::redacted(&url));
        inner.metrics.redirect();
        req.url = url;
        redirects += 1;
    }
}

/// One hop, with the stale-connection retry and the agent's retry policy.
fn with_retries(
    inner: &AgentInner,
    req: &mut Request,
    overall: Deadline,
    started: Instant,
) -> Result<Response, Error> {
    let own_policy = req.overrides.extras.retry.clone();
    let policy = own_policy.as_ref().unwrap_or(&inner.config.retry);
    let idempotent = retry::is_idempotent(&req.method, &req.headers, req.overrides.idempotent);
    let cancel = req.overrides.cancel.clone();
    let mut attempts = 0;
    let mut retries = 0;
    let mut fresh = false;
    let mut stale_retry_used = false;
    loop {
        attempts += 1;
        let outcome = send(inner, req, overall, fresh, started, attempts);
        let may_repeat = idempotent && req.body.replayable();
        let wait = match outcome {
            Ok(resp) => {
                if may_repeat
                    && retries < policy.max_retries()
                    && policy.retries_status(resp.status)
                    && policy.may_start(started)
                {
                    let wait = policy.delay(retries + 1, retry::retry_after(&resp.headers));
                    // A wait the deadline cannot cover would end in a timeout
                    // that throws this response away: the caller gets it
                    // (a 503 with its Retry-After) instead.
                    if overall.remaining().is_some_and(|left| left <= wait) {
                        return Ok(resp);
                    }
                    retries += 1;
                    wait
                } else {
                    return Ok(resp);
                }
            }
            Err(failure) => {
                let err = failure.err;
                // The server most likely closed the idle connection as we took
                // it; nothing reached it, so try once more on a new one.
                if failure.reused
                    && !failure.got_bytes
                    && may_repeat
                    && !stale_retry_used
                    && !matches!(err.kind(), ErrorKind::Cancelled | ErrorKind::Timeout(_))
                {
                    stale_retry_used = true;
                    fresh = true;
                    log::debug!(
                        "retrying on a new connection after a stale one failed: {}",
                        Chain(&err)
                    );
                    continue;
                }
                if may_repeat
                    && retries < policy.max_retries()
                    && policy.retries_error(&err)
                    && policy.may_start(started)
                {
                    retries += 1;
                    log::debug!("retry {retries} after: {}", Chain(&err));
                    policy.delay(retries, None)
                } else {
                    return Err(err);
                }
            }
        };
        if overall.remaining().is_some_and(|left| left <= wait) {
            return Err(Error::timeout(
                Phase::RetryWait,
                req.url.host_str().unwrap_or(""),
                started.elapsed(),
            ));
        }
        if crate::deadline::sleep(wait, cancel.as_ref()).is_err() {
            return Err(Error::cancelled(Phase::RetryWait));
        }
        fresh = false;
    }
}

/// Why an attempt failed, and whether it may be repeated safely.
struct Failure {
    err: Error,
    /// The connection came from the pool.
    reused: bool,
    /// Some response byte arrived.
    got_bytes: bool,
}

/// An attempt holding a connection: what a failure must give back.
struct OnConn {
    conn: Box<Conn>,
    lease: Lease,
    reused: bool,
}

/// One attempt on one connection, as protocol steps. Each step enters its
/// phase through the exchange, which returns the limit the step runs under.
fn send(
    inner: &AgentInner,
    req: &mut Request,
    overall: Deadline,
    fresh: bool,
    started: Instant,
    attempts: u32,
) -> Result<Response, Failure> {
    let mut ex = exchange(inner, req, overall, started, attempts);
    let mut on = connection(inner, req, fresh, &mut ex)?;
    let mut expect = ExpectNote::default();
    // The proxy this connection goes through was chosen with its pool key.
    let proxy = on.lease.key().proxy.clone();
    let write_failed = match write(
        inner,
        req,
        &mut on.conn,
        proxy.as_deref(),
        &mut ex,
        &mut expect,
    ) {
        Ok(write_failed) => write_failed,
        Err(err) => return Err(give_back(inner, &mut ex, on, err, false)),
    };
    let head = match expect.answered.take() {
        // The server answered while the body waited for 100 Continue.
        Some(head) => {
            let _ = ex.enter(Phase::ResponseHead);
            ex.emit(Event::FirstByte);
            *head
        }
        None => match final_head(inner, &mut on.conn, &mut ex, write_failed.is_some()) {
            Ok(head) => head,
            // Without a whole head, a failed write's own error is the story.
            Err((err, got_bytes)) => {
                let err = write_failed.unwrap_or(err);
                return Err(give_back(inner, &mut ex, on, err, got_bytes));
            }
        },
    };
    inner.metrics.response(&req.method, head.status);
    if expect.sent && head.status == StatusCode::EXPECTATION_FAILED && body_can_go(&req.body) {
        // Once more without the expectation, on a new connection (curl).
        log::debug!("417 to Expect: 100-continue; sending again without it");
        ex.observer.connection_closed(CloseReason::NotReusable);
        inner
            .pool
            .discard(on.lease, on.conn, CloseReason::NotReusable);
        let _ = ex.finish();
        req.overrides.expect_refused = true;
        req.headers.remove(http::header::EXPECT);
        return send(inner, req, overall, true, started, attempts);
    }
    let (framing, reusable) = match http1::framing(&req.method, &head) {
        // After a failed write the request on the wire is incomplete; after
        // a body left unsent, it may be too.
        Ok((framing, reusable)) => (
            framing,
            reusable && write_failed.is_none() && expect.in_sync,
        ),
        Err(err) => return Err(give_back(inner, &mut ex, on, err, true)),
    };
    Ok(hand_over(inner, req, on, ex, head, framing, reusable))
}

/// What came of `Expect: 100-continue` on one attempt.
struct ExpectNote {
    /// The head carried the expectation.
    sent: bool,
    /// The final response that came instead of `100 Continue`.
    answered: Option<Box<http1::Head>>,
    /// The request on the wire is complete (false: a body with a
    /// Content-Length was left unsent, so the connection cannot be reused).
    in_sync: bool,
}

impl Default for ExpectNote {
    fn default() -> ExpectNote {
        ExpectNote {
            sent: false,
            answered: None,
            in_sync: true,
        }
    }
}

/// The body is still there to send (not a reader already spent).
fn body_can_go(body: &SendBody) -> bool {
    !matches!(body, SendBody::Spent)
}

/// Wait for the host's rate limit, then take a pooled connection or a slot
/// to open one in, and open it.
fn connection(
    inner: &AgentInner,
    req: &Request,
    fresh: bool,
    ex: &mut Exchange,
) -> Result<OnConn, Failure> {
    let bare = |ex: &mut Exchange, err: Error| Failure {
        err: ex.fail(err),
        reused: false,
        got_bytes: false,
    };
    if ex.is_cancelled() {
        return Err(bare(ex, Error::cancelled(Phase::PoolWait)));
    }
    let key = inner
        .pool_key(&req.url, inner.route(req))
        .map_err(|e| bare(ex, e))?;
    if inner.limiter.is_active() {
        let limit = ex.enter(Phase::RateLimit);
        let acquired = inner
            .limiter
            .acquire(&key.authority(), limit.deadline, ex.cancel());
        acquired.map_err(|e| bare(ex, e))?;
    }
    let limit = ex.enter(Phase::PoolWait);
    let mut waited = false;
    let checkout = inner
        .pool
        .checkout_telling(&key, fresh, limit.deadline, ex.cancel(), || {
            waited = true;
            ex.emit(Event::PoolWaitStart);
        })
        .map_err(|e| bare(ex, e))?;
    if waited {
        ex.emit(Event::PoolWaitEnd {
            waited: checkout.waited,
        });
    }
    let mut lease = checkout.lease;
    let reused = checkout.conn.is_some();
    let conn = match checkout.conn {
        Some(conn) => conn,
        None => {
            let conn = crate::connect::open(inner, &key, ex).map_err(|e| bare(ex, e))?;
            lease.connected();
            conn
        }
    };
    let idle = reused
        .then(|| conn.info.idle_since.map(|t| t.elapsed()))
        .flatten();
    ex.got_connection(reused, idle, conn.info.remote);
    let mut on = OnConn {
        conn,
        lease,
        reused,
    };
    if !on.conn.watch(ex.cancel()) {
        return Err(give_back(
            inner,
            ex,
            on,
            Error::cancelled(Phase::Write),
            false,
        ));
    }
    Ok(on)
}

/// Write the request. `Ok(Some(err))`: the connection failed while writing,
/// which leaves one question: did the server answer before it stopped
/// reading? (A 413 or 401 to an upload it will not take, then a close.)
/// That answer is what the caller needs, so the head is read all the same.
fn write(
    inner: &AgentInner,
    req: &mut Request,
    conn: &mut Conn,
    proxy: Option<&crate::proxy::Proxy>,
    ex: &mut Exchange,
    expect: &mut ExpectNote,
) -> Result<Option<Error>, Error> {
    let limit = ex.enter(Phase::Write);
    match write_request(inner, req, conn, proxy, &limit, ex, expect) {
        Ok(sent) => {
            inner.metrics.sent(sent);
            ex.emit(Event::WroteRequest);
            Ok(None)
        }
        Err(WriteFailure::Body(err)) => Err(err),
        Err(WriteFailure::Conn(err)) if err.kind() == ErrorKind::Cancelled => Err(err),
        Err(WriteFailure::Conn(err)) => {
            log::debug!(
                "writing the request failed ({}); reading any early response",
                Chain(&err)
            );
            Ok(Some(err))
        }
    }
}

/// Read response heads until the final one: 1xx heads are skipped, 101 is
/// final (the connection then closes). After a failed write, only what the
/// server already sent is looked for. On failure, whether any response byte
/// arrived (which decides whether the attempt may be repeated).
fn final_head(
    inner: &AgentInner,
    conn: &mut Conn,
    ex: &mut Exchange,
    after_failed_write: bool,
) -> Result<http1::Head, (Error, bool)> {
    let mut limit = ex.enter(Phase::ResponseHead);
    if after_failed_write {
        let grace = Deadline::after(limit.started, Some(EARLY_RESPONSE_GRACE));
        limit.deadline = limit.deadline.min(grace);
    }
    let mut got_bytes = false;
    let mut closing = false;
    for _ in 0..=MAX_INFORMATIONAL {
        let reading = &mut conn.reading(&limit);
        let mut head = http1::read_head(reading, inner.config.max_head_size, &mut got_bytes)
            .map_err(|e| (e, got_bytes))?;
        inner.metrics.received(head.size as u64);
        ex.emit(Event::ResponseHead {
            status: head.status,
            version: head.version,
            headers: &head.headers,
            raw_head: &head.raw_head,
        });
        if !head.status.is_informational() || head.status == StatusCode::SWITCHING_PROTOCOLS {
            head.closed_by_informational = closing;
            ex.emit(Event::FirstByte);
            return Ok(head);
        }
        closing |= http1::says_close(&head.headers);
    }
    let err = Error::protocol(format!(
        "more than {MAX_INFORMATIONAL} informational (1xx) responses"
    ));
    Err((err, true))
}

/// The head is in: make the response, its body holding the connection until
/// the framing ends.
fn hand_over(
    inner: &AgentInner,
    req: &Request,
    mut on: OnConn,
    mut ex: Exchange,
    mut head: http1::Head,
    framing: Framing,
    reusable: bool,
) -> Response {
    let reusable = reusable
        && head.status != StatusCode::SWITCHING_PROTOCOLS
        && !http1::says_close(&req.headers)
        && !req.overrides.form.http10;
    on.conn.info.server_keep_alive = http1::keep_alive_timeout(&head.headers);
    inner.config.extras.store_cookies(&head.headers, &req.url);
    log::trace!(
        "{} {} (called at {}) -> {} {:?}",
        req.method,
        crate::error::redacted(&req.url),
        req.call_site,
        head.status,
        crate::observe::redact_headers(&head.headers)
    );
    let (mut timings, limit) = ex.finish_into(Phase::Body);
    let held = Held {
        conn: on.conn,
        lease: on.lease,
        pool: inner.pool.clone(),
        reusable,
        limit,
        observer: ex.into_observer(),
    };
    let mut raw = RawBody::new(Some(Box::new(held)), Decoder::new(framing));
    if let Some(min) = req.overrides.min_speed.or(inner.config.min_speed) {
        raw.set_min_speed(min);
    }
    match raw.holder() {
        // No body to read (HEAD, 204, 304, an empty one): it is done already.
        None => timings.body_done = Some(timings.total),
        Some(held) => {
            if let Some(due) = inner.pool.in_flight().body_held(held.observer.tracked()) {
                inner.pool.watch_leak(due);
            }
        }
    }
    let (codings, limit) = codings_to_undo(inner, req, &mut head, framing);
    Response {
        status: head.status,
        version: head.version,
        headers: head.headers,
        url: req.url.clone(),
        timings,
        body: Body::new(raw, &codings, limit),
        body_limit: inner.config.body_limit,
        raw_head: head.raw_head,
    }
}

/// The exchange for one attempt of `req`.
fn exchange(
    inner: &AgentInner,
    req: &Request,
    overall: Deadline,
    started: Instant,
    attempts: u32,
) -> Exchange {
    let observer = Observer::new(
        std::sync::Arc::clone(&inner.metrics),
        inner.hook.clone(),
        req.overrides.hook.clone(),
        inner
            .pool
            .in_flight()
            .track(&req.method, &req.url, req.call_site),
        (&req.method, &req.url),
        started,
    );
    Exchange::new(
        observer,
        inner.config.timeouts.with(&req.overrides.phases),
        overall,
        overall_setting(inner, req),
        req.overrides.cancel.clone(),
        started,
        Timings {
            attempts,
            ..Timings::default()
        },
    )
}

/// Which setting makes the request's overall deadline, for messages.
fn overall_setting(inner: &AgentInner, req: &Request) -> Option<Setting> {
    if req.overrides.deadline.is_some() {
        return None;
    }
    let value = req.overrides.timeout.or(inner.config.timeouts.overall)?;
    Some(Setting::Overall(value))
}

/// The attempt failed with a connection in hand: close it, free its slot,
/// and say whether the attempt may be repeated.
fn give_back(
    inner: &AgentInner,
    ex: &mut Exchange,
    on: OnConn,
    err: Error,
    got_bytes: bool,
) -> Failure {
    let reason = if on.conn.was_cancelled() || err.kind() == ErrorKind::Cancelled {
        CloseReason::Cancelled
    } else {
        CloseReason::Error
    };
    ex.observer.connection_closed(reason);
    inner.pool.discard(on.lease, on.conn, reason);
    Failure {
        err: ex.fail(err),
        reused: on.reused,
        got_bytes,
    }
}

fn decoding_wanted(inner: &AgentInner, req: &Request) -> bool {
    decompress(inner, req) && !req.headers.contains_key(ACCEPT_ENCODING)
}

/// Whether this request asks for and decodes compressed bodies.
fn decompress(inner: &AgentInner, req: &Request) -> bool {
    req.overrides
        .extras
        .decompress
        .unwrap_or(inner.config.decompress)
}

/// The codings the body undoes and the most bytes it may then hand out. A
/// decoded response no longer claims its `Content-Encoding` nor the
/// compressed `Content-Length` (as reqwest); one left coded keeps both.
fn codings_to_undo(
    inner: &AgentInner,
    req: &Request,
    head: &mut http1::Head,
    framing: Framing,
) -> (Vec<crate::codings::Coding>, u64) {
    if framing == Framing::Empty {
        return (Vec::new(), u64::MAX);
    }
    // Unknown transfer codings were refused with the framing.
    let (codings, content_decoded) =
        crate::codings::to_undo(&head.headers, decoding_wanted(inner, req)).unwrap_or_default();
    if content_decoded {
        head.headers.remove(CONTENT_ENCODING);
        head.headers.remove(CONTENT_LENGTH);
    }
    if codings.is_empty() {
        (codings, u64::MAX)
    } else {
        (codings, inner.config.extras.decoded_limit)
    }
}

/// Write the head and the body. Small bodies share the head's write.
fn write_request(
    inner: &AgentInner,
    req: &mut Request,
    conn: &mut Conn,
    proxy: Option<&crate::proxy::Proxy>,
    limit: &Limit,
    ex: &mut Exchange,
    expect: &mut ExpectNote,
) -> Result<u64, WriteFailure> {
    // Plain http through a proxy goes to the proxy in absolute form; https
    // goes through a tunnel, where the origin reads the head.
    let via_proxy = proxy.is_some_and(|p| p.kind.is_http()) && req.url.scheme() == "http";
    let mut out = std::mem::take(&mut conn.wbuf);
    out.clear();
    http1::put_request_line_as(
        &mut out,
        &req.method,
        http1::target(&req.url, via_proxy),
        &req.overrides.form,
    );
    let headers = &req.headers;
    if !headers.contains_key(HOST) {
        let host = req.url.host_str().unwrap_or("");
        match req.url.port() {
            Some(port) => http1::put_host_port(&mut out, host, port),
            None => http1::put_header(&mut out, "host", host.as_bytes()),
        }
    }
    for (name, value) in headers {
        // windlass frames the body itself (below); a caller's framing header
        // that disagreed with the body would desynchronise the connection.
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
            continue;
        }
        // Proxy credentials are for a proxy that reads this head (plain http
        // in absolute form); sent anywhere else they reach the origin, inside
        // a tunnel or straight. A tunnel's credentials come from the proxy URL.
        if name == PROXY_AUTHORIZATION && !via_proxy {
            continue;
        }
        http1::put_header(&mut out, name.as_str(), value.as_bytes());
    }
    if !headers.contains_key(USER_AGENT) && req.overrides.form.writes_default(&USER_AGENT) {
        http1::put_header(&mut out, "user-agent", inner.config.user_agent.as_bytes());
    }
    // The jar's cookies for this hop's URL, unless the caller set their own.
    if !headers.contains_key(http::header::COOKIE) {
        if let Some(cookies) = inner.config.extras.cookie_header(&req.url) {
            http1::put_header(&mut out, "cookie", cookies.as_bytes());
        }
    }
    if !headers.contains_key(ACCEPT) && req.overrides.form.writes_default(&ACCEPT) {
        http1::put_header(&mut out, "accept", b"*/*");
    }
    if decompress(inner, req)
        && !headers.contains_key(ACCEPT_ENCODING)
        && req.overrides.form.writes_default(&ACCEPT_ENCODING)
    {
        if let Some(codings) = crate::codings::accept_encoding() {
            http1::put_header(&mut out, "accept-encoding", codings.as_bytes());
        }
    }
    if via_proxy && !headers.contains_key(PROXY_AUTHORIZATION) {
        if let Some(auth) = proxy.and_then(|p| p.auth.as_ref()) {
            http1::put_header(&mut out, "proxy-authorization", auth.as_bytes());
        }
    }
    if log::log_enabled!(log::Level::Trace) {
        log::trace!(
            "request head to {}: {} {} {:?}",
            req.url.host_str().unwrap_or(""),
            req.method,
            req.url.path(),
            crate::observe::redact_headers(headers)
        );
    }
    let wait = expect_wait(inner, req);
    if wait.is_some() && !crate::expect::caller_expects(headers) {
        http1::put_header(&mut out, "expect", b"100-continue");
    }
    expect.sent = wait.is_some();
    let body = std::mem::replace(&mut req.body, SendBody::Spent);
    let head_written = |ex: &Exchange| ex.emit(Event::WroteHeaders);
    let result = match body {
        SendBody::Spent => Err(WriteFailure::Body(Error::new(
            ErrorKind::Io,
            "the request body was a reader that is already spent; it cannot be sent again",
        ))),
        SendBody::Empty => {
            if matches!(req.method, Method::POST | Method::PUT | Method::PATCH) {
                http1::put_header(&mut out, "content-length", b"0");
            }
            out.extend_from_slice(b"\r\n");
            ex.emit(Event::RequestHead { head: &out });
            req.body = SendBody::Empty;
            let sent = conn.write_all(&out, limit);
            head_written(ex);
            sent.map(|()| out.len() as u64).map_err(WriteFailure::conn)
        }
        SendBody::Bytes(bytes) => {
            http1::put_header_number(&mut out, "content-length", bytes.len() as u64);
            out.extend_from_slice(b"\r\n");
            ex.emit(Event::RequestHead { head: &out });
            let result = if bytes.len() <= COALESCE_BODY && wait.is_none() {
                out.extend_from_slice(&bytes);
                let sent = conn.write_all(&out, limit);
                head_written(ex);
                sent.map(|()| out.len() as u64).map_err(WriteFailure::conn)
            } else {
                conn.write_all(&out, limit)
                    .map_err(WriteFailure::conn)
                    .inspect(|()| head_written(ex))
                    .and_then(|()| verdict(inner, conn, ex, wait, limit, expect, false))
                    .and_then(|limit| match limit {
                        Some(limit) => conn
                            .write_all(&bytes, &limit)
                            .map(|()| bytes.len())
                            .map_err(WriteFailure::conn),
                        // Answered first: the body stays unsent.
                        None => Ok(0),
                    })
                    .map(|body| (out.len() + body) as u64)
            };
            req.body = SendBody::Bytes(bytes);
            result
        }
        SendBody::Reader(mut reader, length) => {
            match length {
                Some(n) => http1::put_header_number(&mut out, "content-length", n),
                None if req.overrides.form.http10 => {
                    return Err(WriteFailure::Body(Error::new(
                        ErrorKind::InvalidConfig,
                        "an HTTP/1.0 request body needs a known length (no chunked coding)",
                    )))
                }
                None => http1::put_header(&mut out, "transfer-encoding", b"chunked"),
            }
            out.extend_from_slice(b"\r\n");
            ex.emit(Event::RequestHead { head: &out });
            let head = conn
                .write_all(&out, limit)
                .map_err(WriteFailure::conn)
                .inspect(|()| head_written(ex))
                .and_then(|()| verdict(inner, conn, ex, wait, limit, expect, length.is_none()));
            match head {
                Ok(Some(limit)) => match length {
                    Some(n) => send_sized(conn, &mut reader, n, &limit),
                    None => send_chunked(conn, &mut reader, &limit),
                }
                .map(|body| out.len() as u64 + body),
                Ok(None) => {
                    // Answered before the body went: it is still the caller's
                    // to send again (after a 417).
                    req.body = SendBody::Reader(reader, length);
                    Ok(out.len() as u64)
                }
                Err(e) => Err(e),
            }
        }
    };
    out.clear();
    if out.capacity() <= 4 * 1024 {
        conn.wbuf = out;
    }
    result
}

/// How long the body waits for `100 Continue`, if it does.
fn expect_wait(inner: &AgentInner, req: &Request) -> Option<std::time::Duration> {
    // An HTTP/1.0 server ignores the expectation (RFC 9110 §10.1.1): the
    // body would only wait out the timeout.
    if req.overrides.form.http10 {
        return None;
    }
    let len = match &req.body {
        SendBody::Bytes(bytes) => Some(bytes.len() as u64),
        SendBody::Reader(_, len) => *len,
        SendBody::Empty | SendBody::Spent => return None,
    };
    crate::expect::wait_for(
        &inner.config.extras,
        &req.headers,
        len,
        req.overrides.expect_refused,
    )
}

/// The head is written: with an expectation, wait for the verdict. The
/// limit to send the body under, or `None` when a final response came
/// first (noted in `expect`; a chunked body is then ended empty, which
/// keeps the connection in step).
fn verdict(
    inner: &AgentInner,
    conn: &mut Conn,
    ex: &mut Exchange,
    wait: Option<std::time::Duration>,
    limit: &Limit,
    expect: &mut ExpectNote,
    chunked: bool,
) -> Result<Option<Limit>, WriteFailure> {
    let Some(wait) = wait else {
        return Ok(Some(*limit));
    };
    let answer = crate::expect::await_verdict(conn, ex, wait, inner.config.max_head_size)
        .map_err(WriteFailure::Conn)?;
    match answer {
        crate::expect::Answer::Send => Ok(Some(ex.enter(Phase::Write))),
        crate::expect::Answer::Final(head) => {
            inner.metrics.received(head.size as u64);
            expect.answered = Some(head);
            let limit = ex.enter(Phase::Write);
            expect.in_sync = chunked && conn.write_all(b"0\r\n\r\n", &limit).is_ok();
            Ok(None)
        }
    }
}

/// Why writing a request failed.
enum WriteFailure {
    /// The caller's body reader failed or fell short: nothing to hear back.
    Body(Error),
    /// The connection failed: the server may have answered before it closed
    /// (a 413 to an upload it will not take), so its answer is worth reading.
    Conn(Error),
}

impl WriteFailure {
    fn conn(e: std::io::Error) -> WriteFailure {
        WriteFailure::Conn(Error::from_io(e))
    }
}

fn send_chunked(
    conn: &mut Conn,
    reader: &mut dyn Read,
    limit: &Limit,
) -> Result<u64, WriteFailure> {
    let mut buf = vec![0u8; UPLOAD_CHUNK + 32];
    let mut sent = 0u64;
    loop {
        // Leave room for the size line in front and the CRLF behind.
        let n = read_some(reader, &mut buf[16..16 + UPLOAD_CHUNK])?;
        if n == 0 {
            conn.write_all(b"0\r\n\r\n", limit)
                .map_err(WriteFailure::conn)?;
            return Ok(sent + 5);
        }
        let size = format!("{n:x}\r\n");
        let start = 16 - size.len();
        buf[start..16].copy_from_slice(size.as_bytes());
        buf[16 + n..16 + n + 2].copy_from_slice(b"\r\n");
        conn.write_all(&buf[start..16 + n + 2], limit)
            .map_err(WriteFailure::conn)?;
        sent += (16 + n + 2 - start) as u64;
    }
}

fn send_sized(
    conn: &mut Conn,
    reader: &mut dyn Read,
    length: u64,
    limit: &Limit,
) -> Result<u64, WriteFailure> {
    let mut buf = vec![0u8; UPLOAD_CHUNK];
    let mut left = length;
    while left > 0 {
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        let n = read_some(reader, &mut buf[..want])?;
        if n == 0 {
            return Err(WriteFailure::Body(Error::new(
                ErrorKind::Io,
                format!("the request body ended {left} bytes short of its Content-Length"),
            )));
        }
        conn.write_all(&buf[..n], limit)
            .map_err(WriteFailure::conn)?;
        left -= n as u64;
    }
    Ok(length)
}

fn read_some(reader: &mut dyn Read, buf: &mut [u8]) -> Result<usize, WriteFailure> {
    loop {
        match reader.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(WriteFailure::Body(Error::with_source(
                    ErrorKind::Io,
                    "cannot read the request body",
                    e,
                )))
            }
        }
    }
}
