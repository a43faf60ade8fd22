//! Results, the markdown report and `target/compare.json`.

use std::fmt::Write as _;

/// The clients in the order every table lists them.
pub const CLIENTS: [&str; 3] = ["windlass", "ureq", "raw"];

/// One client's rounds in one scenario.
pub struct ClientRow {
    pub client: &'static str,
    /// The scenario's metric, one value per round.
    pub rounds: Vec<f64>,
    /// The process's CPU time per request, µs, per round.
    pub cpu: Vec<f64>,
    /// Connections the server accepted, per round (empty when the server
    /// cannot say).
    pub conns: Vec<u64>,
    /// Peak resident set of a process that ran this client alone through
    /// the scenario's warm-up and one round.
    pub peak_rss_kib: Option<u64>,
    /// Anonymous and file-backed resident KiB at the end of that round.
    pub anon_file_kib: Option<(u64, u64)>,
    pub error: Option<String>,
}

pub struct ScenarioResult {
    pub id: &'static str,
    pub title: String,
    pub unit: &'static str,
    pub higher_is_better: bool,
    pub rows: Vec<ClientRow>,
    /// A remark on the run, printed under the table.
    pub note: Option<String>,
}

impl ScenarioResult {
    /// The rounds of `client`, if it finished every round.
    pub fn rounds(&self, client: &str) -> Option<&[f64]> {
        let row = self.rows.iter().find(|r| r.client == client)?;
        (row.error.is_none() && !row.rounds.is_empty()).then_some(&row.rounds[..])
    }

    /// `a / b` per round, both measured in the same round.
    pub fn paired(&self, a: &str, b: &str) -> Option<Vec<f64>> {
        let (a, b) = (self.rounds(a)?, self.rounds(b)?);
        Some(a.iter().zip(b).map(|(x, y)| x / y).collect())
    }

    /// The peak RSS of `client`'s own process, KiB.
    pub fn peak_rss(&self, client: &str) -> Option<f64> {
        let row = self.rows.iter().find(|r| r.client == client)?;
        row.peak_rss_kib.map(|k| k as f64)
    }

    /// The median of the per-round ratios of CPU time per request, `a / b`.
    pub fn cpu_ratio(&self, a: &str, b: &str) -> Option<f64> {
        let cpu = |c: &str| {
            let row = self.rows.iter().find(|r| r.client == c)?;
            (row.error.is_none() && !row.cpu.is_empty()).then_some(&row.cpu[..])
        };
        let (a, b) = (cpu(a)?, cpu(b)?);
        Some(median(
            &a.iter().zip(b).map(|(x, y)| x / y).collect::<Vec<_>>(),
        ))
    }

    /// The median of the per-round ratios `a / b`: what the targets use,
    /// since pairing cancels drift that affects both clients of one round.
    pub fn ratio(&self, a: &str, b: &str) -> Option<f64> {
        self.paired(a, b).map(|p| median(&p))
    }
}

/// Memory held per idle connection by one client.
pub struct MemoryRow {
    pub tls: bool,
    pub client: &'static str,
    pub requested: usize,
    pub idle: Option<usize>,
    pub opened: usize,
    pub heap_per_conn: f64,
    pub rss_per_conn: f64,
    pub error: Option<String>,
}

/// A target from the issue, checked against this run.
pub struct Target {
    pub name: String,
    pub measured: Option<f64>,
    pub limit: f64,
    /// true: pass when `measured <= limit`; false: when `>=`.
    pub at_most: bool,
    pub unit: &'static str,
}

impl Target {
    pub fn pass(&self) -> bool {
        match self.measured {
            Some(m) if self.at_most => m <= self.limit,
            Some(m) => m >= self.limit,
            None => false,
        }
    }
}

pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => s[n / 2],
        _ => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

fn min_max(v: &[f64]) -> (f64, f64) {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min, max)
}

/// A value with as many decimals as its size deserves.
fn num(v: f64) -> String {
    match v.abs() {
        x if x >= 10_000.0 => {
            let s = format!("{:.0}", v);
            let (sign, digits) = s.split_at(usize::from(v < 0.0));
            let mut out = String::new();
            for (i, c) in digits.chars().enumerate() {
                if i > 0 && (digits.len() - i) % 3 == 0 {
                    out.push(',');
                }
                out.push(c);
            }
            format!("{sign}{out}")
        }
        x if x >= 100.0 => format!("{v:.0}"),
        x if x >= 10.0 => format!("{v:.1}"),
        _ => format!("{v:.2}"),
    }
}

fn ratios(v: &[f64]) -> String {
    v.iter()
        .map(|r| format!("{r:.2}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn ratio_cell(r: Option<f64>) -> String {
    // A round too short for the CPU clock's 10 ms ticks gives 0 / 0.
    match r {
        Some(r) if r.is_finite() => format!("{r:.2}×"),
        _ => "–".into(),
    }
}

/// Everything one run measured.
pub struct Run {
    /// What served the scenarios.
    pub server: &'static str,
    pub rounds: usize,
    pub quick: bool,
    /// `/proc/loadavg` before and after: other work on the machine shows
    /// up as spread between rounds.
    pub load: [String; 2],
    pub scenarios: Vec<ScenarioResult>,
    pub memory: Vec<MemoryRow>,
    pub targets: Vec<Target>,
}

/// The load average line of the machine, for the record.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

pub fn markdown(run: &Run) -> String {
    let Run {
        server,
        rounds,
        quick,
        load,
        scenarios,
        memory,
        targets,
    } = run;
    let mut o = String::new();
    let mode = if *quick {
        ", quick mode: timings mean nothing"
    } else {
        ""
    };
    let _ = writeln!(
        o,
        "## windlass vs ureq 3 vs raw floor against {server} ({rounds} rounds, interleaved{mode})\n"
    );
    let _ = writeln!(
        o,
        "Ratios are client / reference in the scenario's unit (for µs/req lower is \
         better, for req/s and MiB/s higher is better); the × columns are the median \
         of the per-round paired ratios listed on the right. CPU µs/req is the user + \
         system time of the bench process per request (nginx's not included; the \
         embedded servers run in it, so theirs is), which \
         other work on the machine barely moves; its ratios are paired the same way. \
         Peak RSS is VmHWM of a \
         process that ran that client alone through the scenario's warm-up and one \
         round; in brackets, what was resident at its end: anonymous (heap, stacks) + \
         file-backed (code pages of the one bench binary every child runs). Load \
         average {} at the start, {} at the end.\n",
        load[0], load[1]
    );
    let _ = writeln!(
        o,
        "| scenario | client | median | min–max | × ureq | × raw | CPU µs/req | CPU × ureq | CPU × raw | \
         peak RSS | conns/round | paired × ureq per round | paired × raw per round |"
    );
    let _ = writeln!(
        o,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
    );
    for s in scenarios {
        for (i, row) in s.rows.iter().enumerate() {
            let title = if i == 0 {
                format!("({}) {}", s.id, s.title)
            } else {
                String::new()
            };
            if let Some(e) = &row.error {
                let _ = writeln!(
                    o,
                    "| {title} | {} | error: {e} | | | | | | | | | | |",
                    row.client
                );
                continue;
            }
            let (lo, hi) = min_max(&row.rounds);
            let conns = median(&row.conns.iter().map(|&c| c as f64).collect::<Vec<_>>());
            let conns = if conns.is_nan() {
                "–".to_string()
            } else if conns.fract() == 0.0 {
                format!("{conns:.0}")
            } else {
                format!("{conns:.1}")
            };
            let vs = |other: &str| {
                if other == row.client {
                    (String::new(), String::new())
                } else {
                    (
                        ratio_cell(s.ratio(row.client, other)),
                        s.paired(row.client, other)
                            .map_or(String::new(), |p| ratios(&p)),
                    )
                }
            };
            let (u, up) = vs("ureq");
            let (r, rp) = vs("raw");
            let cpu_vs = |other: &str| {
                if other == row.client {
                    String::new()
                } else {
                    ratio_cell(s.cpu_ratio(row.client, other))
                }
            };
            let _ = writeln!(
                o,
                "| {title} | {} | {} {} | {}–{} | {u} | {r} | {} | {} | {} | {} | {} | {up} | {rp} |",
                row.client,
                num(median(&row.rounds)),
                s.unit,
                num(lo),
                num(hi),
                num(median(&row.cpu)),
                cpu_vs("ureq"),
                cpu_vs("raw"),
                match (row.peak_rss_kib, row.anon_file_kib) {
                    (Some(k), Some((anon, file))) => format!(
                        "{:.1} MiB ({:.1} + {:.1})",
                        k as f64 / 1024.0,
                        anon as f64 / 1024.0,
                        file as f64 / 1024.0
                    ),
                    (Some(k), None) => format!("{:.1} MiB", k as f64 / 1024.0),
                    _ => "–".into(),
                },
                conns,
            );
        }
    }

    for s in scenarios {
        if let Some(note) = &s.note {
            let _ = writeln!(o, "\n({}) {note}", s.id);
        }
    }

    let _ = writeln!(o, "\n### Memory held per idle pooled connection\n");
    let _ = writeln!(
        o,
        "Net heap (counting global allocator, requested sizes) and VmRSS growth over the \
         connections opened, server in a child process. The targets use the heap figure; \
         VmRSS is coarse (pages freed earlier are reused, untouched buffers are not \
         resident).\n"
    );
    let _ = writeln!(
        o,
        "| transport | client | idle conns | heap / conn | VmRSS / conn |"
    );
    let _ = writeln!(o, "|---|---|---:|---:|---:|");
    for m in memory {
        let transport = if m.tls { "TLS" } else { "plain" };
        if let Some(e) = &m.error {
            let _ = writeln!(o, "| {transport} | {} | error: {e} | | |", m.client);
            continue;
        }
        let idle = m
            .idle
            .map_or(format!("{} requested", m.requested), |i| i.to_string());
        let _ = writeln!(
            o,
            "| {transport} | {} | {idle} | {:.1} KiB | {:.1} KiB |",
            m.client,
            m.heap_per_conn / 1024.0,
            m.rss_per_conn / 1024.0,
        );
    }

    let _ = writeln!(o, "\n### Targets (windlass)\n");
    let _ = writeln!(o, "| target | measured | limit | result |");
    let _ = writeln!(o, "|---|---:|---:|---|");
    for t in targets {
        let measured = t
            .measured
            .map_or("–".into(), |m| format!("{:.2}{}", m, t.unit));
        let op = if t.at_most { "≤" } else { "≥" };
        let result = if t.pass() { "PASS" } else { "MISS" };
        let _ = writeln!(
            o,
            "| {} | {measured} | {op} {:.2}{} | {result} |",
            t.name, t.limit, t.unit
        );
    }
    o
}

/// A JSON string literal.
fn js(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// A JSON number (`null` for NaN and infinities, which JSON lacks).
fn jn(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".into()
    }
}

fn jopt(v: Option<f64>) -> String {
    v.map_or("null".into(), jn)
}

fn jlist<T>(v: &[T], f: impl Fn(&T) -> String) -> String {
    format!("[{}]", v.iter().map(f).collect::<Vec<_>>().join(", "))
}

pub fn json(run: &Run) -> String {
    let Run {
        server,
        rounds,
        quick,
        load,
        scenarios,
        memory,
        targets,
    } = run;
    let mut o = String::new();
    let _ = writeln!(o, "{{");
    let _ = writeln!(o, "  \"server\": {},", js(server));
    let _ = writeln!(o, "  \"rounds\": {rounds},");
    let _ = writeln!(o, "  \"quick\": {quick},");
    let _ = writeln!(
        o,
        "  \"load_average\": {{\"start\": {}, \"end\": {}}},",
        js(&load[0]),
        js(&load[1])
    );
    let _ = writeln!(o, "  \"scenarios\": [");
    for (i, s) in scenarios.iter().enumerate() {
        let _ = writeln!(o, "    {{");
        let _ = writeln!(o, "      \"id\": {},", js(s.id));
        let _ = writeln!(o, "      \"title\": {},", js(&s.title));
        let _ = writeln!(o, "      \"unit\": {},", js(s.unit));
        let _ = writeln!(o, "      \"higher_is_better\": {},", s.higher_is_better);
        let _ = writeln!(
            o,
            "      \"note\": {},",
            s.note.as_deref().map_or("null".into(), js)
        );
        let _ = writeln!(o, "      \"clients\": {{");
        for (j, row) in s.rows.iter().enumerate() {
            let comma = if j + 1 < s.rows.len() { "," } else { "" };
            let (lo, hi) = min_max(&row.rounds);
            let _ = writeln!(
                o,
                "        {}: {{\"rounds\": {}, \"median\": {}, \"min\": {}, \"max\": {}, \
                 \"cpu_us_per_request\": {}, \"conns_per_round\": {}, \"peak_rss_kib\": {}, \
                 \"end_anon_file_kib\": {}, \
                 \"error\": {}}}{comma}",
                js(row.client),
                jlist(&row.rounds, |v| jn(*v)),
                jn(median(&row.rounds)),
                jn(lo),
                jn(hi),
                jlist(&row.cpu, |v| jn(*v)),
                jlist(&row.conns, |c| c.to_string()),
                row.peak_rss_kib.map_or("null".into(), |k| k.to_string()),
                row.anon_file_kib
                    .map_or("null".into(), |(a, f)| format!("[{a}, {f}]")),
                row.error.as_deref().map_or("null".into(), js),
            );
        }
        let _ = writeln!(o, "      }},");
        let _ = writeln!(o, "      \"ratios\": {{");
        let pairs = [("windlass", "ureq"), ("windlass", "raw"), ("ureq", "raw")];
        for (j, (a, b)) in pairs.iter().enumerate() {
            let comma = if j + 1 < pairs.len() { "," } else { "" };
            let _ = writeln!(
                o,
                "        \"{a}/{b}\": {{\"median_paired\": {}, \"paired\": {}}}{comma}",
                jopt(s.ratio(a, b)),
                s.paired(a, b)
                    .map_or("null".into(), |p| jlist(&p, |v| jn(*v))),
            );
        }
        let _ = writeln!(o, "      }}");
        let comma = if i + 1 < scenarios.len() { "," } else { "" };
        let _ = writeln!(o, "    }}{comma}");
    }
    let _ = writeln!(o, "  ],");
    let _ = writeln!(o, "  \"memory_per_idle_connection\": [");
    for (i, m) in memory.iter().enumerate() {
        let comma = if i + 1 < memory.len() { "," } else { "" };
        let _ = writeln!(
            o,
            "    {{\"transport\": {}, \"client\": {}, \"requested\": {}, \"idle\": {}, \
             \"opened\": {}, \"heap_bytes\": {}, \"rss_bytes\": {}, \"error\": {}}}{comma}",
            js(if m.tls { "tls" } else { "plain" }),
            js(m.client),
            m.requested,
            m.idle.map_or("null".into(), |i| i.to_string()),
            m.opened,
            jn(m.heap_per_conn),
            jn(m.rss_per_conn),
            m.error.as_deref().map_or("null".into(), js),
        );
    }
    let _ = writeln!(o, "  ],");
    let _ = writeln!(o, "  \"targets\": [");
    for (i, t) in targets.iter().enumerate() {
        let comma = if i + 1 < targets.len() { "," } else { "" };
        let _ = writeln!(
            o,
            "    {{\"name\": {}, \"measured\": {}, \"limit\": {}, \"at_most\": {}, \
             \"unit\": {}, \"pass\": {}}}{comma}",
            js(&t.name),
            jopt(t.measured),
            jn(t.limit),
            t.at_most,
            js(t.unit),
            t.pass(),
        );
    }
    let _ = writeln!(o, "  ]");
    let _ = writeln!(o, "}}");
    o
}
