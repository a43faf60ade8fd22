//! `--trace`: where the time of one transfer went, in the spirit of httpstat.

use std::time::Duration;

use windlass::Timings;

use crate::progress::duration;

/// The breakdown printed after a transfer. `body_end` is when the body was
/// read to its end, measured from the start of the request; `None` when the
/// transfer failed before. `redirect` is the time taken by the hops (and
/// attempts) before the last one, which `Timings` counts from the start:
/// booked on its own line as curl's `time_redirect`, not as sending.
pub fn render(t: &Timings, body_end: Option<Duration>, redirect: Duration) -> String {
    let setup: Duration = [t.pool_wait, t.dns, t.connect, t.tls]
        .iter()
        .flatten()
        .sum::<Duration>()
        + redirect;
    let sending = t.request_written.map(|w| w.saturating_sub(setup));
    let server = match (t.first_byte, t.request_written) {
        (Some(fb), Some(w)) => Some(fb.saturating_sub(w)),
        _ => None,
    };
    let end = t.body_done.or(body_end);
    let transfer = match (end, t.first_byte) {
        (Some(end), Some(fb)) => Some(end.saturating_sub(fb)),
        _ => None,
    };
    let redirect = (redirect > Duration::ZERO).then_some(redirect);
    let cells = [
        ("Redirects", redirect),
        ("Pool wait", t.pool_wait),
        ("DNS lookup", t.dns),
        ("TCP connect", t.connect),
        ("TLS handshake", t.tls),
        ("Request sent", sending),
        ("Server processing", server),
        ("Content transfer", transfer),
    ];
    let mut labels = String::from(" ");
    let mut values = String::from("[");
    for (i, (label, value)) in cells.iter().enumerate() {
        let value = value.map(duration).unwrap_or_else(|| "-".to_string());
        let width = label.chars().count().max(value.chars().count()) + 2;
        labels.push_str(&format!("{label:^width$}"));
        values.push_str(&format!("{value:^width$}"));
        labels.push(' ');
        values.push(if i + 1 == cells.len() { ']' } else { '|' });
    }
    let connection = match (t.reused, t.idle_before_reuse) {
        (true, Some(idle)) => format!("reused (idle {} before)", duration(idle)),
        (true, None) => "reused".to_string(),
        (false, _) => "new".to_string(),
    };
    let remote = t
        .remote_addr
        .map(|a| format!(" to {a}"))
        .unwrap_or_default();
    let total = end.unwrap_or(t.total);
    let first_byte = t
        .first_byte
        .map(duration)
        .unwrap_or_else(|| "-".to_string());
    format!(
        "{}\n{}\n  connection   {connection}{remote}\n  first byte   {first_byte}\n  total        {}   ({} {}, {} {})\n",
        labels.trim_end(),
        values,
        duration(total),
        t.attempts,
        if t.attempts == 1 { "attempt" } else { "attempts" },
        t.redirects,
        if t.redirects == 1 { "redirect" } else { "redirects" },
    )
}
