//! `integrations-bench`: the hot paths as a user meets them. wrk sends real HTTP to the release
//! binary started as `integrations serve`; an empty axum handler measured with the same settings in
//! the same run is the baseline, and a fast loopback Jira stand-in is what tool calls reach.
//!
//! Run it through `cargo xtask bench [--quick] [--postgres | --sqlite]`, which builds the release
//! binaries first. Prints a markdown table and writes `target/bench/latest.json` (and `.md`).
//! Timings never fail the command: it exits non-zero only when the bench itself broke.

mod postgres;
mod receiver;
mod report;
mod service;
mod stubs;
mod wrk;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use base64::Engine as _;
use ring::rand::SecureRandom as _;
use serde_json::json;

use report::{Figure, Machine, Report, Row, Verdict};
use service::{Service, ServiceEnv, Setup};
use wrk::{Load, RequestShape, Variation, WrkStats};

/// The webhook secret configured on the benchmark tenants.
const WEBHOOK_SECRET: &str = "s";
/// Connections of the throughput scenarios.
const CONNECTIONS: u32 = 32;
/// Parallel admin requests while creating the P5 tenants.
const SETUP_CONCURRENCY: usize = 16;
/// P4's paced run: enough connections that a pause of whole milliseconds between requests still
/// offers just over 5,000/s.
const P4_PACED_CONNECTIONS: u32 = 72;

/// What one P4 load came to.
struct P4Figures {
    stats: WrkStats,
    accepted_per_sec: f64,
    delivered_per_sec: f64,
    p99_ms: f64,
    lost: u64,
    unsigned: u64,
}

/// Starts measured for P6.
const STARTS: usize = 5;

/// Why the bench could not run (a slow figure is never one).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BenchError(String);

impl BenchError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl From<std::io::Error> for BenchError {
    fn from(error: std::io::Error) -> Self {
        Self(error.to_string())
    }
}

impl From<reqwest::Error> for BenchError {
    fn from(error: reqwest::Error) -> Self {
        Self(error.to_string())
    }
}

impl From<sqlx::Error> for BenchError {
    fn from(error: sqlx::Error) -> Self {
        Self(format!("PostgreSQL: {error}"))
    }
}

/// Whether to measure on PostgreSQL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PostgresMode {
    /// When it is reachable (the default).
    IfReachable,
    /// Always; unreachable is an error (`--postgres`).
    Required,
    /// Never (`--sqlite`).
    Skip,
}

/// Command-line options.
#[derive(Debug)]
struct Options {
    quick: bool,
    postgres: PostgresMode,
    tenants: usize,
    service_bin: PathBuf,
    /// `--service-env NAME=VALUE`: set for the service under test (a rate limit, say).
    service_env: Vec<(String, String)>,
    out_dir: PathBuf,
    /// Scenarios to measure (P0 always runs: it is the baseline); empty means all.
    only: Vec<String>,
}

const USAGE: &str = "usage: integrations-bench [--quick] [--postgres | --sqlite] [--tenants N] \
                     [--service-bin PATH] [--service-env NAME=VALUE]... [--out-dir DIR] \
                     [--only P1,P4,...]";

impl Options {
    fn parse(args: impl Iterator<Item = String>) -> Result<Self, BenchError> {
        // Both release binaries sit in target/release; results go to target/bench.
        let exe = std::env::current_exe()?;
        let release_dir = exe.parent().unwrap_or(Path::new("."));
        let mut options = Self {
            quick: false,
            postgres: PostgresMode::IfReachable,
            tenants: 10_000,
            service_bin: release_dir.join("integrations"),
            service_env: Vec::new(),
            out_dir: release_dir.parent().unwrap_or(release_dir).join("bench"),
            only: Vec::new(),
        };
        let mut args = args.peekable();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| {
                args.next()
                    .ok_or_else(|| BenchError::new(format!("{name} needs a value")))
            };
            match arg.as_str() {
                "--quick" => options.quick = true,
                "--postgres" => options.postgres = PostgresMode::Required,
                "--sqlite" => options.postgres = PostgresMode::Skip,
                "--tenants" => {
                    options.tenants = value("--tenants")?
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| BenchError::new("--tenants needs a positive number"))?
                }
                "--service-bin" => options.service_bin = value("--service-bin")?.into(),
                "--service-env" => {
                    let setting = value("--service-env")?;
                    let (name, value) = setting
                        .split_once('=')
                        .ok_or_else(|| BenchError::new("--service-env needs NAME=VALUE"))?;
                    options.service_env.push((name.to_owned(), value.to_owned()));
                }
                "--out-dir" => options.out_dir = value("--out-dir")?.into(),
                "--only" => {
                    options.only = value("--only")?
                        .split(',')
                        .map(|id| id.trim().to_ascii_uppercase())
                        .filter(|id| !id.is_empty())
                        .collect()
                }
                other => return Err(BenchError::new(format!("unknown argument {other}\n{USAGE}"))),
            }
        }
        Ok(options)
    }

    /// Whether scenario `id` (`"P4"`) is to be measured.
    fn wants(&self, id: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|only| only == id)
    }

    fn load(&self, connections: u32) -> Load {
        let (duration, warmup) = if self.quick { (3, 1) } else { (10, 2) };
        Load {
            connections,
            duration: Duration::from_secs(duration),
            warmup: Duration::from_secs(warmup),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(error) => {
            eprintln!("bench: {error}");
            return ExitCode::from(2);
        }
    };
    match run(&options).await {
        Ok(report) => {
            let markdown = report.markdown();
            println!("\n{markdown}");
            match write_outputs(&options.out_dir, &report, &markdown) {
                Ok(path) => {
                    println!("JSON: {}", path.display());
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("bench: cannot write results: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(error) => {
            eprintln!("bench: {error}");
            ExitCode::FAILURE
        }
    }
}

fn write_outputs(dir: &Path, report: &Report, markdown: &str) -> Result<PathBuf, BenchError> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(report).map_err(|e| BenchError::new(e.to_string()))?;
    let path = dir.join("latest.json");
    std::fs::write(&path, json + "\n")?;
    std::fs::write(dir.join("latest.md"), markdown)?;
    Ok(path)
}

/// Everything one run measures, in the order it is measured.
struct Bench<'a> {
    options: &'a Options,
    scratch: tempfile::TempDir,
    admin_token: String,
    vendor_url: String,
    baseline_rps: f64,
    rows: Vec<Row>,
    startup: Vec<Figure>,
    notes: Vec<String>,
}

async fn run(options: &Options) -> Result<Report, BenchError> {
    if !options.service_bin.is_file() {
        return Err(BenchError::new(format!(
            "{} not found: build it with `cargo build --release -p integrations` (cargo xtask bench does)",
            options.service_bin.display()
        )));
    }
    let wrk_version = wrk::ensure_installed()?;
    let machine = Machine::read(wrk_version);
    let baseline = stubs::start_baseline().await?;
    let vendor = stubs::start_vendor().await?;
    let mut bench = Bench {
        options,
        scratch: tempfile::Builder::new().prefix("integrations-bench-").tempdir()?,
        admin_token: random_hex(16),
        vendor_url: format!("http://{vendor}"),
        baseline_rps: 0.0,
        rows: Vec::new(),
        startup: Vec::new(),
        notes: Vec::new(),
    };

    let p0 = bench.wrk(&format!("http://{baseline}"), &RequestShape::get("/"), CONNECTIONS)?;
    bench.baseline_rps = p0.req_per_sec;
    bench.row(
        "P0",
        "baseline: empty axum handler",
        CONNECTIONS,
        p0,
        "—".into(),
        Verdict::Reference,
    );

    bench.sqlite().await?;
    match options.postgres {
        _ if !options.wants("P2") => {}
        PostgresMode::Skip => bench.notes.push("P2 skipped (--sqlite).".into()),
        PostgresMode::IfReachable if !postgres::reachable() => bench.notes.push(format!(
            "P2 skipped: PostgreSQL not reachable at {} (pass --postgres to require it).",
            postgres::server_url()
        )),
        _ => bench.postgres().await?,
    }

    Ok(Report {
        finished_at_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        quick: options.quick,
        duration_secs: options.load(CONNECTIONS).duration.as_secs(),
        warmup_secs: options.load(CONNECTIONS).warmup.as_secs(),
        machine,
        rows: bench.rows,
        startup: bench.startup,
        notes: bench.notes,
    })
}

impl Bench<'_> {
    /// Warm-up plus measured wrk run (wrk blocks; the stand-ins keep serving on other threads).
    fn wrk(&self, base_url: &str, shape: &RequestShape, connections: u32) -> Result<WrkStats, BenchError> {
        eprintln!(
            "bench: wrk {} {base_url}{} ({connections} conns)",
            shape.method, shape.path
        );
        let load = self.options.load(connections);
        tokio::task::block_in_place(|| wrk::measure(base_url, shape, load, self.scratch.path()))
    }

    fn row(
        &mut self,
        id: &'static str,
        scenario: &str,
        connections: u32,
        stats: WrkStats,
        target: String,
        verdict: Verdict,
    ) {
        let percent_of_baseline = percent(stats.req_per_sec, self.baseline_rps);
        self.rows.push(Row {
            id,
            scenario: scenario.to_owned(),
            connections,
            stats,
            percent_of_baseline,
            expected_status: None,
            target,
            verdict,
        });
    }

    fn env(&self, name: &str, postgres: Option<(String, String)>) -> Result<ServiceEnv, BenchError> {
        let data_dir = self.scratch.path().join(name);
        std::fs::create_dir_all(&data_dir)?;
        Ok(ServiceEnv {
            bin: self.options.service_bin.clone(),
            data_dir,
            admin_token: self.admin_token.clone(),
            postgres,
            extra_env: self.options.service_env.clone(),
        })
    }

    /// Starts a service and creates the benchmark tenant with Jira installed; returns its key.
    async fn start_with_tenant(&self, env: &ServiceEnv) -> Result<(Service, Setup, String), BenchError> {
        let service = tokio::task::block_in_place(|| env.start())?;
        let setup = Setup::new(service.base_url(), self.admin_token.clone())?;
        let api_key = setup.create_tenant("bench").await?;
        setup.install_jira(&api_key, &self.vendor_url, WEBHOOK_SECRET).await?;
        Ok((service, setup, api_key))
    }

    /// P1, P3, P5 and P6 on the embedded SQLite database.
    async fn sqlite(&mut self) -> Result<(), BenchError> {
        let env = self.env("sqlite", None)?;
        let (service, setup, api_key) = self.start_with_tenant(&env).await?;
        let base = service.base_url();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let idle_rss = service.memory_kib("VmRSS")?;

        if self.options.wants("P1") {
            // P1: signed webhook ingest.
            let stats = self.webhook(&setup, &base).await?;
            let ok = percent(stats.req_per_sec, self.baseline_rps) >= 40.0 && stats.p99_ms < 10.0;
            let verdict = Verdict::of(ok, stats.errors());
            self.row(
                "P1",
                "signed webhook ingest, 1 KiB, SQLite",
                CONNECTIONS,
                stats,
                "≥ 40%, p99 < 10 ms".into(),
                verdict,
            );
        }
        if self.options.wants("P4") {
            self.p4(&setup, &base, &api_key).await?;
        }
        if self.options.wants("P3") {
            self.p3(&setup, &base, &api_key).await?;
        }
        if self.options.wants("P7") {
            self.p7(&setup, &base).await?;
        }
        if !self.options.wants("P5") && !self.options.wants("P6") {
            return tokio::task::block_in_place(|| service.stop());
        }

        // P5: the tool catalog with many tenants, each request from a random one.
        let tenants = self.options.tenants;
        eprintln!("bench: creating {tenants} tenants with Jira installed ({SETUP_CONCURRENCY} in flight)");
        let started = std::time::Instant::now();
        let keys = setup
            .create_many("t", tenants, SETUP_CONCURRENCY, Some(&self.vendor_url))
            .await?;
        self.notes.push(format!(
            "P5: {tenants} tenants (plus `bench`), each with Jira installed, created through the admin API in {:.1} s.",
            started.elapsed().as_secs_f64()
        ));
        let catalog = RequestShape::get("/v1/tools").varying(Variation::RandomBearer(keys.clone()));
        let first = RequestShape::get("/v1/tools").header("Authorization", &format!("Bearer {}", keys[0]));
        probe(&setup, &first, 200).await?;
        let stats = self.wrk(&base, &catalog, CONNECTIONS)?;
        let verdict = Verdict::of(percent(stats.req_per_sec, self.baseline_rps) >= 40.0, stats.errors());
        self.row(
            "P5",
            &format!("GET /v1/tools, random of {tenants} tenants"),
            CONNECTIONS,
            stats,
            "≥ 40%".into(),
            verdict,
        );

        // P6: memory after the loads, then start-to-ready on this (now populated) data dir.
        let peak_rss = service.memory_kib("VmHWM")?;
        tokio::task::block_in_place(|| service.stop())?;
        let mut starts = Vec::new();
        for _ in 0..STARTS {
            let measured = tokio::task::block_in_place(|| {
                let mut service = env.spawn()?;
                let ready = service.wait_ready(Duration::from_secs(60))?;
                service.stop()?;
                Ok::<_, BenchError>(ready)
            })?;
            starts.push(measured);
        }
        let start_ms = service::median(starts.clone()).as_secs_f64() * 1000.0;
        self.notes.push(format!(
            "P6 starts (ms): {}; on the SQLite data dir holding the P1/P5 data.",
            starts
                .iter()
                .map(|d| format!("{:.1}", d.as_secs_f64() * 1000.0))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let mib = |kib: u64| kib as f64 / 1024.0;
        self.startup = vec![
            Figure {
                name: format!("start to ready (median of {STARTS})"),
                value: start_ms,
                unit: "ms",
                target: "< 200 ms".into(),
                verdict: Verdict::of(start_ms < 200.0, 0),
            },
            Figure {
                name: "idle RSS after setup (VmRSS)".into(),
                value: mib(idle_rss),
                unit: "MiB",
                target: "< 50 MiB".into(),
                verdict: Verdict::of(mib(idle_rss) < 50.0, 0),
            },
            Figure {
                name: "peak RSS after the loads (VmHWM)".into(),
                value: mib(peak_rss),
                unit: "MiB",
                target: "< 150 MiB".into(),
                verdict: Verdict::of(mib(peak_rss) < 150.0, 0),
            },
        ];
        Ok(())
    }

    /// P3: a tool call against the stand-in, and the stand-in called directly.
    async fn p3(&mut self, setup: &Setup, base: &str, api_key: &str) -> Result<(), BenchError> {
        let tool = RequestShape::post_json("/v1/tools/jira_get_issue", json!({"issue_key": "ABC-1"}).to_string())
            .header("Authorization", &format!("Bearer {api_key}"));
        probe(setup, &tool, 200).await?;
        let direct = RequestShape::get("/rest/api/3/issue/ABC-1");
        let vendor_32 = self.wrk(&self.vendor_url, &direct, CONNECTIONS)?;
        let tool_32 = self.wrk(base, &tool, CONNECTIONS)?;
        let vendor_1 = self.wrk(&self.vendor_url, &direct, 1)?;
        let tool_1 = self.wrk(base, &tool, 1)?;
        let of_vendor = percent(tool_32.req_per_sec, vendor_32.req_per_sec);
        let added_p50 = tool_1.p50_ms - vendor_1.p50_ms;
        let (vendor_rps, tool_errors, tool_1_errors) = (vendor_32.req_per_sec, tool_32.errors(), tool_1.errors());
        self.row(
            "P3",
            "Jira stand-in called directly",
            CONNECTIONS,
            vendor_32,
            "reference for P3".into(),
            Verdict::Reference,
        );
        self.row(
            "P3",
            "tool call jira_get_issue",
            CONNECTIONS,
            tool_32,
            format!("≥ 30% of direct (now {of_vendor:.1}% of {vendor_rps:.0})"),
            Verdict::of(of_vendor >= 30.0, tool_errors),
        );
        self.row(
            "P3",
            "Jira stand-in called directly",
            1,
            vendor_1,
            "reference for P3".into(),
            Verdict::Reference,
        );
        self.row(
            "P3",
            "tool call jira_get_issue",
            1,
            tool_1,
            format!("≤ +0.30 ms p50 vs direct (now {added_p50:+.2} ms)"),
            Verdict::of(added_p50 <= 0.3, tool_1_errors),
        );

        Ok(())
    }

    /// P7: tool calls of a tenant whose breaker for the vendor is open, answered at once (503)
    /// without a request; against the empty handler, since no vendor is involved.
    async fn p7(&mut self, setup: &Setup, base: &str) -> Result<(), BenchError> {
        let api_key = setup.create_tenant("bench-breaker").await?;
        setup.install_jira(&api_key, &self.vendor_url, WEBHOOK_SECRET).await?;
        let failing = RequestShape::post_json("/v1/tools/jira_get_issue", json!({"issue_key": "DOWN-1"}).to_string())
            .header("Authorization", &format!("Bearer {api_key}"));
        // Install's credential check and nine failed calls (a 500 is not retried): ten requests in
        // the breaker's window, nine failed, and it opens.
        for _ in 0..9 {
            probe(setup, &failing, 502).await?;
        }
        probe(setup, &failing, 503).await?;
        let stats = self.wrk(base, &failing, CONNECTIONS)?;
        let of_baseline = percent(stats.req_per_sec, self.baseline_rps);
        // Every answer is the expected 503 (the probe above saw it): only socket errors count as
        // failures.
        let errors = stats.socket_errors;
        self.row(
            "P7",
            "tool call answered by an open breaker (503)",
            CONNECTIONS,
            stats,
            format!("≥ 50% (now {of_baseline:.1}%)"),
            Verdict::of(of_baseline >= 50.0, errors),
        );
        if let Some(row) = self.rows.last_mut() {
            row.expected_status = Some(503);
        }
        Ok(())
    }

    /// P4: events accepted by `POST /v1/events` and delivered, signed, to a local receiver; once
    /// at a set rate a little over the target's 5,000/s (accept-to-delivery latency), once as fast
    /// as wrk can send (the rate sustained end to end).
    async fn p4(&mut self, setup: &Setup, base: &str, api_key: &str) -> Result<(), BenchError> {
        let (receiver, record) = receiver::start().await?;
        setup
            .create_endpoint(api_key, &format!("http://{receiver}/hook"), &["bench.*"])
            .await?;
        // 72 connections pausing 11 ms between requests offer about 5,500/s (each cycle
        // is the pause, the answer, and wrk's timer slack of about a millisecond).
        let paced = self
            .p4_run(
                setup,
                base,
                api_key,
                &record,
                "bench.paced",
                P4_PACED_CONNECTIONS,
                Some(11),
            )
            .await?;
        let ok = paced.accepted_per_sec >= 5000.0 && paced.p99_ms < 50.0 && paced.lost == 0 && paced.unsigned == 0;
        let summary = format!(
            "at {:.0}/s offered: p99 < 50 ms from accept to delivery, none lost (now p99 {:.1} ms, {} lost)",
            paced.accepted_per_sec, paced.p99_ms, paced.lost
        );
        let errors = paced.stats.errors();
        self.row(
            "P4",
            "events accepted and delivered, signed, SQLite, at a set rate",
            P4_PACED_CONNECTIONS,
            paced.stats,
            summary,
            Verdict::of(ok, errors),
        );
        let max = self
            .p4_run(setup, base, api_key, &record, "bench.max", CONNECTIONS, None)
            .await?;
        let sustained = max.delivered_per_sec.min(max.accepted_per_sec);
        let ok = sustained >= 5000.0 && max.lost == 0 && max.unsigned == 0;
        let summary = format!(
            "≥ 5,000/s accepted and delivered, none lost (now {sustained:.0}/s, {} lost)",
            max.lost
        );
        let errors = max.stats.errors();
        self.row(
            "P4",
            "events accepted and delivered, signed, SQLite, flat out",
            CONNECTIONS,
            max.stats,
            summary,
            Verdict::of(ok, errors),
        );
        Ok(())
    }

    /// One P4 load of events typed `event_type`; waits until the receiver has them all, or until
    /// deliveries stop arriving for 10 s.
    #[allow(clippy::too_many_arguments)]
    async fn p4_run(
        &mut self,
        setup: &Setup,
        base: &str,
        api_key: &str,
        record: &receiver::Record,
        event_type: &str,
        connections: u32,
        pause_ms: Option<u32>,
    ) -> Result<P4Figures, BenchError> {
        if let Ok(mut record) = record.lock() {
            *record = receiver::Deliveries::default();
        }
        let mut emit = RequestShape::post_json("/v1/events", json!({"type": event_type, "data": {"n": 1}}).to_string())
            .header("Authorization", &format!("Bearer {api_key}"));
        if let Some(pause) = pause_ms {
            emit = emit.paused(pause);
        }
        probe(setup, &emit, 202).await?;
        let stats = self.wrk(base, &emit, connections)?;
        let accepted = setup.count_events(api_key, event_type).await?;
        let (mut seen, mut stalled_since) = (0, std::time::Instant::now());
        loop {
            let delivered = record.lock().map(|r| r.ids.len() as u64).unwrap_or(0);
            if delivered >= accepted || stalled_since.elapsed() > Duration::from_secs(10) {
                break;
            }
            if delivered > seen {
                (seen, stalled_since) = (delivered, std::time::Instant::now());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (delivered, received, unsigned, mut latencies, span) = {
            let mut record = record.lock().map_err(|_| BenchError::new("receiver poisoned"))?;
            let span = match (record.first, record.last) {
                (Some(first), Some(last)) => (last - first).as_secs_f64(),
                _ => 0.0,
            };
            (
                record.ids.len() as u64,
                record.received,
                record.unsigned,
                std::mem::take(&mut record.latencies_ms),
                span,
            )
        };
        let delivered_per_sec = if span > 0.0 { delivered as f64 / span } else { 0.0 };
        let p50 = receiver::percentile(&mut latencies, 50.0);
        let p99 = receiver::percentile(&mut latencies, 99.0);
        let lost = accepted.saturating_sub(delivered);
        let how = match pause_ms {
            Some(pause) => format!("{connections} connections pausing {pause} ms"),
            None => format!("{connections} connections flat out"),
        };
        self.notes.push(format!(
            "P4 ({how}): {accepted} events accepted at {:.0}/s (warm-up and probe included), {delivered} delivered \
             to the receiver ({received} deliveries in all, {unsigned} unsigned, {lost} lost), \
             {delivered_per_sec:.0} delivered/s over {span:.1} s; accept-to-delivery latency p50 {p50:.1} ms, \
             p99 {p99:.1} ms.",
            stats.req_per_sec
        ));
        Ok(P4Figures {
            accepted_per_sec: stats.req_per_sec,
            stats,
            delivered_per_sec,
            p99_ms: p99,
            lost,
            unsigned,
        })
    }

    /// P2 on a fresh PostgreSQL database, dropped afterwards whatever happened.
    async fn postgres(&mut self) -> Result<(), BenchError> {
        let database = postgres::Database::create().await?;
        let measured = self.postgres_webhook(database.url()).await;
        let dropped = database.drop_database().await;
        let stats = measured?;
        dropped?;
        let verdict = Verdict::of(percent(stats.req_per_sec, self.baseline_rps) >= 20.0, stats.errors());
        self.row(
            "P2",
            "signed webhook ingest, 1 KiB, PostgreSQL",
            CONNECTIONS,
            stats,
            "≥ 20%".into(),
            verdict,
        );
        Ok(())
    }

    async fn postgres_webhook(&self, database_url: &str) -> Result<WrkStats, BenchError> {
        let env = self.env("postgres", Some((database_url.to_owned(), random_master_key())))?;
        let (service, setup, _) = self.start_with_tenant(&env).await?;
        let stats = self.webhook(&setup, &service.base_url()).await;
        tokio::task::block_in_place(|| service.stop())?;
        stats
    }

    /// The signed webhook scenario: constant 1 KiB body and signature, a new delivery id each time.
    async fn webhook(&self, setup: &Setup, base: &str) -> Result<WrkStats, BenchError> {
        let body = webhook_body(1024);
        let shape = RequestShape::post_json("/v1/webhooks/jira/bench", body.clone())
            .header(
                "X-Hub-Signature",
                &integrations_hub_signature::sign(WEBHOOK_SECRET, body.as_bytes()),
            )
            .varying(Variation::UniqueHeader("X-Atlassian-Webhook-Identifier"));
        let probe_shape = shape
            .clone()
            .header("X-Atlassian-Webhook-Identifier", &format!("probe-{}", random_hex(8)));
        probe(setup, &probe_shape, 202).await?;
        self.wrk(base, &shape, CONNECTIONS)
    }
}

/// Sends the scenario's request once and checks the status.
async fn probe(setup: &Setup, shape: &RequestShape, expected: u16) -> Result<(), BenchError> {
    setup
        .probe(
            shape.method,
            &shape.path,
            &shape.headers,
            shape.body.as_deref(),
            expected,
        )
        .await
}

fn percent(value: f64, of: f64) -> f64 {
    if of > 0.0 {
        value * 100.0 / of
    } else {
        0.0
    }
}

/// A Jira `issue_updated` webhook body padded to exactly `size` bytes.
fn webhook_body(size: usize) -> String {
    let head = r#"{"webhookEvent":"jira:issue_updated","timestamp":1700000000000,"issue":{"id":"10001","key":"ABC-1","fields":{"summary":"Printer on fire"}},"padding":""#;
    let tail = r#""}"#;
    let padding = size.saturating_sub(head.len() + tail.len());
    format!("{head}{}{tail}", "x".repeat(padding))
}

/// `n` random bytes as hex.
pub fn random_hex(n: usize) -> String {
    hex::encode(random_bytes(n))
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    // The system RNG failing is not something the bench can recover from or work around.
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random number generator failed");
    bytes
}

/// A fresh `INTEGRATIONS_MASTER_KEY`: base64 of 32 random bytes.
fn random_master_key() -> String {
    base64::engine::general_purpose::STANDARD.encode(random_bytes(32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_body_is_the_requested_size_and_valid_json() {
        let body = webhook_body(1024);
        assert_eq!(body.len(), 1024);
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(value["webhookEvent"], "jira:issue_updated");
    }
}
