#!/usr/bin/env bash
# Peak resident memory (VmHWM) of a small program that makes GET requests
# with windlass, against the same program written with ureq 3, each built on
# its own (so each binary holds only its own client's code), default
# features, release profile.
#
# Each program takes: URL COUNT MODE [CA_PEM_FILE]
#   MODE keep: one agent with default settings for all COUNT requests
#   MODE new:  a new agent per request, dropped after it (a one-shot program)
#   CA_PEM_FILE: trust only this CA (for an https:// URL on loopback)
# reads every body to the end, then prints its VmHWM in KiB.
#
# Usage:  scripts/peak-rss.sh URL [CA_PEM_FILE]
# Any server will do; `cargo bench --bench compare` prints none, so for
# example start nginx or `python3 -m http.server` on 127.0.0.1 first.
# Environment:
#   RUNS=N      runs per program and mode, interleaved (default 5)
#   COUNT=N     requests per run (default 2000)
#   KEEP=1      keep the temporary projects
#   CARGO_NET_OFFLINE=true  never use the network (needs cargo's cache)
set -euo pipefail

URL=${1:?usage: scripts/peak-rss.sh URL [CA_PEM_FILE]}
CA=${2:-}
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-5}
COUNT=${COUNT:-2000}
KEEP=${KEEP:-0}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/windlass-peak-rss.XXXXXX")
cleanup() { [[ "$KEEP" == 1 ]] || rm -rf "$WORK"; }
trap cleanup EXIT
unset RUSTC_WRAPPER CARGO_BUILD_RUSTC_WRAPPER CARGO_TARGET_DIR CARGO_BUILD_TARGET_DIR
export CARGO_TERM_COLOR=never CARGO_TERM_PROGRESS_WHEN=never

# The part both programs share: arguments, the loop, VmHWM.
COMMON='
fn vm_hwm_kib() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line["VmHWM:".len()..].trim().trim_end_matches("kB").trim().to_string()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (url, count, mode) = (&args[1], args[2].parse::<usize>().unwrap(), args[3].as_str());
    let ca = args.get(4).map(|p| std::fs::read(p).unwrap());
    let mut bytes = 0u64;
    if mode == "keep" {
        let agent = agent(ca.as_deref());
        for _ in 0..count {
            bytes += get(&agent, url);
        }
    } else {
        for _ in 0..count {
            bytes += get(&agent(ca.as_deref()), url);
        }
    }
    std::hint::black_box(bytes);
    println!("{}", vm_hwm_kib());
}
'

mkdir -p "$WORK/wl/src" "$WORK/ureq/src"
cat > "$WORK/wl/Cargo.toml" <<TOML
[package]
name = "rss-windlass"
version = "0.0.0"
edition = "2021"
publish = false
[dependencies]
windlass = { path = "$REPO_ROOT" }
[workspace]
TOML
cat > "$WORK/ureq/Cargo.toml" <<'TOML'
[package]
name = "rss-ureq"
version = "0.0.0"
edition = "2021"
publish = false
[dependencies]
ureq = "3"
[workspace]
TOML
{
    cat <<'RS'
fn agent(ca: Option<&[u8]>) -> windlass::Agent {
    let mut builder = windlass::Agent::builder();
    if let Some(pem) = ca {
        builder = builder.add_root_certificate(pem).only_added_roots(true);
    }
    builder.build().unwrap()
}

fn get(agent: &windlass::Agent, url: &str) -> u64 {
    let mut body = agent.get(url).call().unwrap().into_body();
    std::io::copy(&mut body, &mut std::io::sink()).unwrap()
}
RS
    echo "$COMMON"
} > "$WORK/wl/src/main.rs"
{
    cat <<'RS'
fn agent(ca: Option<&[u8]>) -> ureq::Agent {
    let Some(pem) = ca else {
        return ureq::Agent::new_with_defaults();
    };
    let ca = ureq::tls::Certificate::from_pem(pem).unwrap();
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(vec![ca])))
        .build();
    ureq::Agent::config_builder().tls_config(tls).build().into()
}

fn get(agent: &ureq::Agent, url: &str) -> u64 {
    let mut resp = agent.get(url).call().unwrap();
    std::io::copy(&mut resp.body_mut().as_reader(), &mut std::io::sink()).unwrap()
}
RS
    echo "$COMMON"
} > "$WORK/ureq/src/main.rs"

for p in wl ureq; do
    echo "building $p" >&2
    (cd "$WORK/$p" && cargo build --release --quiet)
done

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "| mode | windlass VmHWM (KiB) | ureq 3 VmHWM (KiB) | windlass / ureq |"
echo "|---|---:|---:|---:|"
for mode in keep new; do
    : > "$WORK/wl.$mode"
    : > "$WORK/ureq.$mode"
    for _ in $(seq 1 "$RUNS"); do
        for p in wl ureq; do
            "$WORK/$p/target/release/rss-$([[ $p == wl ]] && echo windlass || echo ureq)" \
                "$URL" "$COUNT" "$mode" ${CA:+"$CA"} >> "$WORK/$p.$mode"
        done
    done
    w=$(median < "$WORK/wl.$mode")
    u=$(median < "$WORK/ureq.$mode")
    echo "| $mode ($COUNT GETs of $URL, median of $RUNS) | $w | $u | $(awk -v a="$w" -v b="$u" 'BEGIN { printf "%.2f", a / b }') |"
done
