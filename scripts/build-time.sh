#!/usr/bin/env bash
# Clean release build time of a program that depends on windlass, against one
# that depends on ureq 3, with default features and with default-features = false.
#
# Creates four throwaway cargo projects in a temporary directory, fetches their
# dependencies first (so network time is not counted), then builds each one from
# an empty target directory, one at a time, RUNS times (default 2), interleaved.
# Prints a markdown table: crates compiled, wall-clock and CPU seconds per
# build, and the windlass / ureq ratios.
#
# Usage:  scripts/build-time.sh
# Environment:
#   RUNS=N                 builds per project (default 2)
#   BUILD_TIME_DIR=DIR     where to create the projects (default: a new
#                          directory under ${TMPDIR:-/tmp}); removed at the end
#                          unless KEEP=1
#   CARGO_NET_OFFLINE=true never use the network (needs the crates in cargo's cache)
#   TIMINGS_DIR=DIR        also pass --timings and keep each build's HTML
#                          report (which crates took how long) in DIR
#
# Network: only cargo's own access to crates.io during `cargo fetch`. If that
# fails (no network), the fetch is retried with --offline from cargo's cache.
# The timed builds themselves run with --offline --locked.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-2}
KEEP=${KEEP:-0}

if [[ -n "${BUILD_TIME_DIR:-}" ]]; then
    mkdir -p "$BUILD_TIME_DIR"
    WORK=$(mktemp -d "$BUILD_TIME_DIR/windlass-build-time.XXXXXX")
else
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/windlass-build-time.XXXXXX")
fi
cleanup() { [[ "$KEEP" == 1 ]] || rm -rf "$WORK"; }
trap cleanup EXIT

# Builds must not be skewed by a compiler cache or local flags.
unset RUSTC_WRAPPER CARGO_BUILD_RUSTC_WRAPPER CARGO_TARGET_DIR CARGO_BUILD_TARGET_DIR
export CARGO_TERM_COLOR=never CARGO_TERM_PROGRESS_WHEN=never

# name | dependency line | features label | main.rs body
PROJECTS=(wl-default wl-nodefault ureq-default ureq-nodefault)

dep_line() {
    case $1 in
        wl-default)     echo "windlass = { path = \"$REPO_ROOT\" }" ;;
        wl-nodefault)   echo "windlass = { path = \"$REPO_ROOT\", default-features = false }" ;;
        ureq-default)   echo 'ureq = "3"' ;;
        ureq-nodefault) echo 'ureq = { version = "3", default-features = false }' ;;
    esac
}

main_rs() {
    case $1 in
        wl-*) cat <<'RS'
fn main() {
    let agent = windlass::Agent::builder().build().expect("agent");
    let request = agent.get("http://127.0.0.1:1/");
    std::hint::black_box((&agent, &request));
    if std::env::args().count() > 1 {
        let _ = request.call().map(|r| r.status());
    }
}
RS
        ;;
        ureq-*) cat <<'RS'
fn main() {
    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    let request = agent.get("http://127.0.0.1:1/");
    std::hint::black_box(&agent);
    if std::env::args().count() > 1 {
        let _ = request.call().map(|r| r.status());
    }
}
RS
        ;;
    esac
}

label() { case $1 in wl-*) echo windlass ;; ureq-*) echo "ureq 3" ;; esac; }
features() { case $1 in *-default) echo default ;; *-nodefault) echo "no-default" ;; esac; }

for p in "${PROJECTS[@]}"; do
    mkdir -p "$WORK/$p/src"
    cat > "$WORK/$p/Cargo.toml" <<TOML
[package]
name = "bt-$p"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
$(dep_line "$p")

# Not part of any enclosing workspace.
[workspace]
TOML
    main_rs "$p" > "$WORK/$p/src/main.rs"
done

echo "fetching dependencies (not timed) in $WORK" >&2
for p in "${PROJECTS[@]}"; do
    (
        cd "$WORK/$p"
        if ! cargo fetch --quiet 2>"$WORK/$p.fetch.log"; then
            echo "  $p: online fetch failed, using cargo's cache" >&2
            cargo fetch --offline --quiet
        fi
    )
done

declare -A CRATES SECS CPU
TIMEFORMAT='%R %U %S'
for run in $(seq 1 "$RUNS"); do
    for p in "${PROJECTS[@]}"; do
        target="$WORK/target-$p-$run"
        rm -rf "$target"
        log="$WORK/$p.build-$run.log"
        # bash's `time`: wall clock, and user + system CPU of cargo and every
        # rustc it ran. CPU time moves much less than wall time when something
        # else is using the two cores.
        status=0
        timings=()
        [[ -n "${TIMINGS_DIR:-}" ]] && timings=(--timings)
        { time (cd "$WORK/$p" && CARGO_TARGET_DIR="$target" cargo build --release --offline --locked "${timings[@]}" >"$log" 2>&1); } \
            2>"$WORK/time" || status=$?
        if [[ $status != 0 ]]; then cat "$log" >&2; echo "build of $p failed" >&2; exit 1; fi
        read -r wall user sys <"$WORK/time"
        SECS[$p,$run]=$(awk -v x="$wall" 'BEGIN { printf "%.1f", x }')
        CPU[$p,$run]=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.1f", u + s }')
        # Every package compiled, build scripts and proc-macros included, the
        # throwaway project itself excluded.
        CRATES[$p]=$(( $(grep -c '^ *Compiling ' "$log") - 1 ))
        echo "  run $run $p: ${CRATES[$p]} crates, ${SECS[$p,$run]} s wall, ${CPU[$p,$run]} s CPU" >&2
        if [[ -n "${TIMINGS_DIR:-}" ]]; then
            mkdir -p "$TIMINGS_DIR"
            cp "$target/cargo-timings/cargo-timing.html" "$TIMINGS_DIR/$p-$run.html"
        fi
        rm -rf "$target"
    done
done

mean() { # array name, project
    local -n arr=$1
    local p=$2 r
    for r in $(seq 1 "$RUNS"); do echo "${arr[$p,$r]}"; done | awk '{ s += $1 } END { printf "%.1f", s / NR }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

idna_adapter_of() {
    (cd "$WORK/$1" && cargo tree --offline -e normal -i idna_adapter --prefix none --depth 0 2>/dev/null | head -1) || true
}

echo
rev=$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null) \
    && { git -C "$REPO_ROOT" diff --quiet HEAD -- Cargo.toml || rev+=" + local Cargo.toml changes"; } \
    || rev="$REPO_ROOT (not a git checkout)"
echo "rustc: $(rustc -V); cores: $(nproc); windlass: $rev"
ia=$(idna_adapter_of wl-default); echo "idna_adapter resolved for windlass: ${ia:-none}"
echo
header="| project | features | crates |"; sep="|---|---|---:|"
for r in $(seq 1 "$RUNS"); do header+=" wall $r (s) |"; sep+="---:|"; done
for r in $(seq 1 "$RUNS"); do header+=" CPU $r (s) |"; sep+="---:|"; done
header+=" mean wall (s) | mean CPU (s) |"; sep+="---:|---:|"
echo "$header"; echo "$sep"
for p in "${PROJECTS[@]}"; do
    row="| $(label "$p") | $(features "$p") | ${CRATES[$p]} |"
    for r in $(seq 1 "$RUNS"); do row+=" ${SECS[$p,$r]} |"; done
    for r in $(seq 1 "$RUNS"); do row+=" ${CPU[$p,$r]} |"; done
    row+=" $(mean SECS "$p") | $(mean CPU "$p") |"
    echo "$row"
done
echo
echo "| windlass / ureq 3 | crates | wall (mean) | CPU (mean) |"
echo "|---|---:|---:|---:|"
for f in default nodefault; do
    name=$([[ $f == default ]] && echo default || echo no-default)
    echo "| $name | $(ratio "${CRATES[wl-$f]}" "${CRATES[ureq-$f]}") | $(ratio "$(mean SECS "wl-$f")" "$(mean SECS "ureq-$f")") | $(ratio "$(mean CPU "wl-$f")" "$(mean CPU "ureq-$f")") |"
done
