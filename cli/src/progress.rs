//! A one-line progress bar on stderr, drawn only when stderr is a terminal,
//! and the human-readable number formatting the other modules share.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Redraw at most this often.
const REDRAW: Duration = Duration::from_millis(100);

/// Whether progress output makes sense: stderr is a terminal.
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// Terminal width from `$COLUMNS`, else 80.
pub fn term_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .filter(|&w: &usize| w >= 40)
        .unwrap_or(80)
}

/// `1.5 KiB`, `12.3 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// `850 µs`, `12.3 ms`, `1.25 s`.
pub fn duration(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 1e6 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

/// Bytes per second over `elapsed`.
pub fn rate(n: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return "-".to_string();
    }
    format!("{}/s", bytes((n as f64 / secs) as u64))
}

/// A byte-count progress bar for one transfer.
pub struct Bar {
    enabled: bool,
    total: Option<u64>,
    done: u64,
    started: Instant,
    last_draw: Option<Instant>,
}

impl Bar {
    /// `total` is the expected size when known; nothing is drawn unless `enabled`.
    pub fn new(total: Option<u64>, enabled: bool) -> Bar {
        Bar {
            enabled,
            total,
            done: 0,
            started: Instant::now(),
            last_draw: None,
        }
    }

    pub fn add(&mut self, n: usize) {
        self.done += n as u64;
        if self.enabled && self.last_draw.is_none_or(|t| t.elapsed() >= REDRAW) {
            self.draw();
        }
    }

    /// Draws the final state and ends the line.
    pub fn finish(&mut self) {
        if self.enabled {
            self.draw();
            eprintln!();
            self.enabled = false;
        }
    }

    fn draw(&mut self) {
        self.last_draw = Some(Instant::now());
        let line = render(self.done, self.total, self.started.elapsed(), term_width());
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{line}");
        let _ = err.flush();
    }
}

impl Drop for Bar {
    /// An interrupted transfer leaves the cursor on a fresh line.
    fn drop(&mut self) {
        if self.enabled && self.last_draw.is_some() {
            eprintln!();
        }
    }
}

/// One line, at most `width` columns:
/// ` 45% [#########...........] 12.3 MiB / 27.0 MiB  4.1 MiB/s  ETA 3 s`.
pub fn render(done: u64, total: Option<u64>, elapsed: Duration, width: usize) -> String {
    let speed = rate(done, elapsed);
    match total.filter(|&t| t > 0) {
        Some(total) => {
            let frac = (done as f64 / total as f64).clamp(0.0, 1.0);
            let eta = if done > 0 && done < total {
                let left = elapsed.as_secs_f64() * (total - done) as f64 / done as f64;
                format!("  ETA {}", eta(left))
            } else {
                String::new()
            };
            let tail = format!(" {} / {}  {speed}{eta}", bytes(done), bytes(total));
            // A fixed width, so the bar does not jump as the numbers change.
            let bar_width = width.saturating_sub(62).clamp(10, 40);
            let filled = (frac * bar_width as f64) as usize;
            let line = format!(
                "{:>3.0}% [{}{}]{tail}",
                frac * 100.0,
                "#".repeat(filled),
                ".".repeat(bar_width - filled)
            );
            pad(line, width)
        }
        None => pad(format!("{} received  {speed}", bytes(done)), width),
    }
}

/// Whole seconds, or minutes and seconds.
fn eta(secs: f64) -> String {
    let s = secs.ceil().min(1e7) as u64;
    if s < 60 {
        format!("{s} s")
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// Pads with spaces (to erase a longer previous line) and cuts to `width - 1`.
fn pad(line: String, width: usize) -> String {
    let w = width.saturating_sub(1);
    let mut s: String = line.chars().take(w).collect();
    let n = s.chars().count();
    s.extend(std::iter::repeat_n(' ', w - n));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers_for_people() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(100 << 20), "100.0 MiB");
        assert_eq!(duration(Duration::from_micros(850)), "850 µs");
        assert_eq!(duration(Duration::from_micros(12_300)), "12.3 ms");
        assert_eq!(duration(Duration::from_millis(1250)), "1.25 s");
    }

    #[test]
    fn bar_fits_the_width_and_shows_the_fraction() {
        let line = render(50, Some(100), Duration::from_secs(1), 60);
        assert_eq!(line.chars().count(), 59);
        assert!(line.starts_with(" 50% ["), "{line}");
        assert_eq!(eta(0.2), "1 s");
        assert_eq!(eta(125.0), "2m05s");
        let line = render(10, None, Duration::from_secs(1), 80);
        assert!(line.starts_with("10 B received"), "{line}");
    }
}
