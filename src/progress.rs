//! Progress: one indicatif bar per entity and phase (count, rate, ETA,
//! errors) on a terminal; plain periodic log lines when the output is not a
//! terminal or with `--quiet`.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// `n` with a comma between thousands: `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rate as a whole number with thousands separators: `12,345/s`.
pub fn rate(per_sec: f64) -> String {
    let r = if per_sec.is_finite() && per_sec > 0.0 {
        per_sec.round() as u64
    } else {
        0
    };
    format!("{}/s", thousands(r))
}

/// How often plain mode logs a line.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// The progress display of a run.
#[derive(Clone)]
pub struct Progress {
    multi: Option<MultiProgress>,
}

impl Progress {
    /// Bars on a terminal unless `quiet`; plain lines otherwise.
    pub fn new(quiet: bool) -> Progress {
        let tty = std::io::stderr().is_terminal();
        Progress {
            multi: (!quiet && tty)
                .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8))),
        }
    }

    /// The bars' owner, so log lines can be printed above them.
    pub fn multi(&self) -> Option<&MultiProgress> {
        self.multi.as_ref()
    }

    /// A bar for `phase` of `entity` over `total` records (if known).
    pub fn bar(&self, entity: &str, phase: &str, total: Option<u64>) -> Bar {
        let label = format!("{entity:>10} {phase:<9}");
        let bar = self.multi.as_ref().map(|m| {
            let pb = m.add(ProgressBar::new(total.unwrap_or(0)));
            let template = if total.is_some() {
                "{prefix} [{bar:30.cyan/blue}] {human_pos}/{human_len} {rate} ETA {eta} {msg}"
            } else {
                "{prefix} {spinner} {human_pos} {rate} {msg}"
            };
            pb.set_style(
                ProgressStyle::with_template(template)
                    .expect("valid template")
                    .with_key("rate", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = w.write_str(&rate(s.per_sec()));
                    })
                    .progress_chars("=> "),
            );
            pb.set_prefix(label.clone());
            pb.enable_steady_tick(Duration::from_millis(250));
            pb
        });
        Bar {
            bar,
            label,
            total,
            state: Mutex::new(Plain {
                pos: 0,
                errors: 0,
                note: String::new(),
                started: Instant::now(),
                last_log: Instant::now(),
            }),
        }
    }
}

struct Plain {
    pos: u64,
    errors: u64,
    note: String,
    started: Instant,
    last_log: Instant,
}

/// One entity's progress in one phase.
pub struct Bar {
    bar: Option<ProgressBar>,
    label: String,
    total: Option<u64>,
    state: Mutex<Plain>,
}

impl Bar {
    /// Starts counting at `pos` (a resumed load).
    pub fn set_position(&self, pos: u64) {
        if let Some(b) = &self.bar {
            b.set_position(pos);
        }
        self.state.lock().expect("progress lock").pos = pos;
    }

    /// Adds `n` records done.
    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
        let mut s = self.state.lock().expect("progress lock");
        s.pos += n;
        if self.bar.is_none() && s.last_log.elapsed() >= PLAIN_EVERY {
            s.last_log = Instant::now();
            self.log_line(&s);
        }
    }

    /// Sets the error count and a short note (retries, throttles) shown beside the bar.
    pub fn set_errors(&self, errors: u64, note: String) {
        let mut s = self.state.lock().expect("progress lock");
        s.errors = errors;
        s.note = note;
        if let Some(b) = &self.bar {
            b.set_message(format!("errors {errors} {}", s.note));
        }
    }

    fn log_line(&self, s: &Plain) {
        let secs = s.started.elapsed().as_secs_f64().max(0.001);
        let rate = s.pos as f64 / secs;
        let eta = match self.total {
            Some(t) if rate > 0.0 && t > s.pos => {
                format!(", ETA {:.0}s", (t - s.pos) as f64 / rate)
            }
            _ => String::new(),
        };
        let of = self
            .total
            .map(|t| format!("/{}", thousands(t)))
            .unwrap_or_default();
        tracing::info!(
            "{}: {}{of} ({}{eta}), errors {} {}",
            self.label.trim(),
            thousands(s.pos),
            self::rate(rate),
            s.errors,
            s.note
        );
    }

    /// Ends the bar, leaving its last state on screen.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish();
        } else {
            let s = self.state.lock().expect("progress lock");
            self.log_line(&s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers_with_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(rate(343.0615), "343/s");
        assert_eq!(rate(12345.6), "12,346/s");
        assert_eq!(rate(f64::NAN), "0/s");
    }
}
