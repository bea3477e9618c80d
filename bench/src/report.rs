//! The bench's results: one row per measured scenario, the start-up and memory figures, the
//! machine; printed as markdown and written as JSON.

use std::fmt::Write as _;

use serde::Serialize;

use crate::wrk::WrkStats;

/// How a figure compares with its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Meets the target.
    Pass,
    /// Misses the target (or had errors).
    Fail,
    /// A reference figure without a target.
    Reference,
}

impl Verdict {
    /// Pass when `ok`, and never when requests failed.
    pub fn of(ok: bool, errors: u64) -> Self {
        if ok && errors == 0 {
            Self::Pass
        } else {
            Self::Fail
        }
    }

    fn label(self, errors: u64) -> &'static str {
        match (self, errors) {
            (Self::Pass, _) => "pass",
            (Self::Fail, 0) => "FAIL",
            (Self::Fail, _) => "FAIL (errors)",
            (Self::Reference, 0) => "—",
            (Self::Reference, _) => "flagged (errors)",
        }
    }
}

/// One wrk-measured scenario.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// `P0`…`P5`.
    pub id: &'static str,
    /// What was measured.
    pub scenario: String,
    /// Open connections.
    pub connections: u32,
    /// wrk's figures.
    pub stats: WrkStats,
    /// req/s as a percentage of the baseline's.
    pub percent_of_baseline: f64,
    /// The status every answer is meant to have when it is not a 2xx (P7's 503): wrk counts
    /// those as status errors, but they are the scenario's answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_status: Option<u16>,
    /// The target, in words, with the compared figure where it is not in another column.
    pub target: String,
    /// The comparison.
    pub verdict: Verdict,
}

/// One start-up or memory figure.
#[derive(Clone, Debug, Serialize)]
pub struct Figure {
    /// What was measured.
    pub name: String,
    /// The value, in `unit`.
    pub value: f64,
    /// `ms` or `MiB`.
    pub unit: &'static str,
    /// The target, in words.
    pub target: String,
    /// The comparison.
    pub verdict: Verdict,
}

/// Where the figures were taken.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// Logical CPUs available.
    pub nproc: usize,
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// Kernel release.
    pub kernel: String,
    /// wrk's version line.
    pub wrk: String,
}

impl Machine {
    /// Reads /proc; unknown parts say so.
    pub fn read(wrk: String) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, model)| model.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|k| k.trim().to_owned())
            .unwrap_or_else(|_| "unknown".into());
        Self {
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            kernel,
            wrk,
        }
    }
}

/// The whole run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Seconds since the Unix epoch when the run ended.
    pub finished_at_unix: u64,
    /// `--quick` shortens every scenario.
    pub quick: bool,
    /// Measured seconds per scenario.
    pub duration_secs: u64,
    /// Warm-up seconds before each.
    pub warmup_secs: u64,
    /// The machine.
    pub machine: Machine,
    /// wrk-measured scenarios.
    pub rows: Vec<Row>,
    /// P6: start-up and memory.
    pub startup: Vec<Figure>,
    /// What was skipped or approximated, and why.
    pub notes: Vec<String>,
}

impl Report {
    /// The markdown printed at the end of the run.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(
            out,
            "Machine: {} CPUs, {}, Linux {}; {}; wrk 1 thread, {} s per scenario after a {} s warm-up{}.\n",
            m.nproc,
            m.cpu_model,
            m.kernel,
            m.wrk,
            self.duration_secs,
            self.warmup_secs,
            if self.quick { " (--quick)" } else { "" }
        );
        out.push_str(
            "| scenario | conns | req/s | % of baseline | p50 ms | p99 ms | max ms | errors | target | result |\n",
        );
        out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---|---|\n");
        for row in &self.rows {
            let s = &row.stats;
            let _ = writeln!(
                out,
                "| {} {} | {} | {:.0} | {:.1}% | {:.2} | {:.2} | {:.2} | {} | {} | {} |",
                row.id,
                row.scenario,
                row.connections,
                s.req_per_sec,
                row.percent_of_baseline,
                s.p50_ms,
                s.p99_ms,
                s.max_ms,
                errors_cell(s, row.expected_status),
                row.target,
                row.verdict.label(row.errors())
            );
        }
        if !self.startup.is_empty() {
            out.push_str("\n| P6 | value | target | result |\n|---|---:|---|---|\n");
            for figure in &self.startup {
                let _ = writeln!(
                    out,
                    "| {} | {:.1} {} | {} | {} |",
                    figure.name,
                    figure.value,
                    figure.unit,
                    figure.target,
                    figure.verdict.label(0)
                );
            }
        }
        if !self.notes.is_empty() {
            out.push('\n');
            for note in &self.notes {
                let _ = writeln!(out, "- {note}");
            }
        }
        out
    }
}

impl Row {
    /// Failed requests: socket errors, and status errors unless a non-2xx status is expected.
    pub fn errors(&self) -> u64 {
        match self.expected_status {
            Some(_) => self.stats.socket_errors,
            None => self.stats.errors(),
        }
    }
}

fn errors_cell(stats: &WrkStats, expected_status: Option<u16>) -> String {
    if let Some(status) = expected_status {
        return match stats.socket_errors {
            0 => format!("0 (all {status}, as expected)"),
            socket => format!("{socket} socket ⚠"),
        };
    }
    match (stats.non_2xx, stats.socket_errors) {
        (0, 0) => "0".into(),
        (status, 0) => format!("{status} non-2xx ⚠"),
        (0, socket) => format!("{socket} socket ⚠"),
        (status, socket) => format!("{status} non-2xx + {socket} socket ⚠"),
    }
}
