//! wrk, the load generator: finding (or installing) it, writing the Lua script of a scenario, and
//! reading the figures that the script's `done` callback prints.

use std::fmt::Write as _;
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::Serialize;

use crate::BenchError;

/// The line prefix the generated `done` callback prints its figures after.
const RESULT_PREFIX: &str = "BENCH_RESULT";

/// Shared tail of every script: numbers each thread, then prints one parseable result line.
/// Status errors are wrk's own count of responses with a status of 400 or more; the endpoints
/// measured here answer no 3xx, and each scenario is probed once for its exact status first.
const DONE_CALLBACK: &str = r#"
local threads = {}
function setup(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d status_errors=%d socket_errors=%d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.status, e.connect + e.read + e.write + e.timeout))
end
"#;

/// What varies from one request to the next.
#[derive(Clone, Debug)]
pub enum Variation {
    /// Every request is the same bytes.
    None,
    /// This header gets a value never sent before (run tag + thread + random + counter).
    UniqueHeader(&'static str),
    /// `Authorization: Bearer <key>` with a key drawn at random for each request.
    RandomBearer(Vec<String>),
}

/// One request shape that wrk repeats.
#[derive(Clone, Debug)]
pub struct RequestShape {
    /// HTTP method.
    pub method: &'static str,
    /// Path and query.
    pub path: String,
    /// Constant headers.
    pub headers: Vec<(String, String)>,
    /// Constant body.
    pub body: Option<String>,
    /// The per-request part.
    pub variation: Variation,
    /// Milliseconds each connection waits after an answer before its next request (wrk's
    /// `delay()`), to offer a set rate instead of as many requests as the service answers.
    pub pause_ms: Option<u32>,
}

impl RequestShape {
    /// A `GET` of `path` with no headers of its own.
    pub fn get(path: &str) -> Self {
        Self {
            method: "GET",
            path: path.to_owned(),
            headers: Vec::new(),
            body: None,
            variation: Variation::None,
            pause_ms: None,
        }
    }

    /// A `POST` of a JSON body.
    pub fn post_json(path: &str, body: String) -> Self {
        Self {
            method: "POST",
            path: path.to_owned(),
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: Some(body),
            variation: Variation::None,
            pause_ms: None,
        }
    }

    /// Adds a constant header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Makes each connection pause this long between an answer and its next request.
    pub fn paused(mut self, pause_ms: u32) -> Self {
        self.pause_ms = Some(pause_ms);
        self
    }

    /// Sets what varies per request.
    pub fn varying(mut self, variation: Variation) -> Self {
        self.variation = variation;
        self
    }

    /// The Lua script that makes wrk send this request; `run_tag` differs for every wrk run, so
    /// unique headers never repeat across the warm-up and the measured run.
    fn script(&self, run_tag: &str) -> String {
        let mut lua = String::new();
        let _ = writeln!(lua, "wrk.method = {}", lua_string(self.method));
        let _ = writeln!(lua, "wrk.path = {}", lua_string(&self.path));
        for (name, value) in &self.headers {
            let _ = writeln!(lua, "wrk.headers[{}] = {}", lua_string(name), lua_string(value));
        }
        if let Some(body) = &self.body {
            let _ = writeln!(lua, "wrk.body = {}", lua_string(body));
        }
        let _ = writeln!(lua, "local run_tag = {}", lua_string(run_tag));
        match &self.variation {
            Variation::None => {}
            Variation::UniqueHeader(name) => {
                let _ = write!(
                    lua,
                    r#"
local counter = 0
local prefix = ""
function init(args)
  math.randomseed(os.time() + thread_id)
  prefix = run_tag .. "-" .. thread_id .. "-" .. math.random(1, 1000000000) .. "-"
end
function request()
  counter = counter + 1
  wrk.headers[{name}] = prefix .. counter
  return wrk.format()
end
"#,
                    name = lua_string(name)
                );
            }
            Variation::RandomBearer(keys) => {
                lua.push_str("local keys = {\n");
                for key in keys {
                    let _ = writeln!(lua, "  {},", lua_string(&format!("Bearer {key}")));
                }
                lua.push_str(
                    r#"}
function init(args)
  math.randomseed(os.time() + thread_id)
end
function request()
  wrk.headers["Authorization"] = keys[math.random(#keys)]
  return wrk.format()
end
"#,
                );
            }
        }
        if let Some(pause) = self.pause_ms {
            let _ = writeln!(lua, "function delay()\n  return {pause}\nend");
        }
        lua.push_str(DONE_CALLBACK);
        lua
    }
}

/// How hard and how long to drive one scenario.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    /// Open connections (wrk runs one thread).
    pub connections: u32,
    /// Measured duration.
    pub duration: Duration,
    /// Unmeasured warm-up before it.
    pub warmup: Duration,
}

/// What wrk measured in one run.
#[derive(Clone, Debug, Serialize)]
pub struct WrkStats {
    /// Completed requests.
    pub requests: u64,
    /// Requests per second.
    pub req_per_sec: f64,
    /// Latency percentiles and maximum, milliseconds.
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Maximum, ms.
    pub max_ms: f64,
    /// Responses with a status of 400 or more.
    pub non_2xx: u64,
    /// Connect, read, write errors and timeouts.
    pub socket_errors: u64,
}

impl WrkStats {
    /// Every failed request, whatever the reason.
    pub fn errors(&self) -> u64 {
        self.non_2xx + self.socket_errors
    }
}

/// Makes sure wrk can be run: installs Debian's package when running as root with apt-get.
pub fn ensure_installed() -> Result<String, BenchError> {
    if let Some(version) = wrk_version() {
        return Ok(version);
    }
    let is_root = std::fs::read_to_string("/proc/self/status")
        .map(|status| {
            status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1))
                == Some("0")
        })
        .unwrap_or(false);
    let has_apt = Command::new("apt-get").arg("--version").output().is_ok();
    if !(is_root && has_apt) {
        return Err(BenchError::new(
            "wrk is not installed: install it (Debian/Ubuntu: `sudo apt-get install -y wrk`) and rerun",
        ));
    }
    eprintln!("bench: wrk not found, installing it with apt-get");
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-q", "wrk"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(to_stderr())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if !install() {
        // A fresh machine may not have read the package lists yet.
        let _ = Command::new("apt-get")
            .args(["update", "-q"])
            .stdout(to_stderr())
            .status();
        if !install() {
            return Err(BenchError::new(
                "`apt-get install -y wrk` failed; install wrk and rerun",
            ));
        }
    }
    wrk_version().ok_or_else(|| BenchError::new("wrk was installed but cannot be run"))
}

/// apt's progress goes to stderr: stdout is the bench's table.
fn to_stderr() -> Stdio {
    std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map_or_else(|_| Stdio::null(), Stdio::from)
}

/// wrk's version line, or `None` when wrk cannot be run.
fn wrk_version() -> Option<String> {
    // `wrk -v` prints its version and exits non-zero.
    let output = Command::new("wrk").arg("-v").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    text.lines()
        .find(|l| l.starts_with("wrk "))
        .map(|l| l.split(" [").next().unwrap_or(l).trim().to_owned())
}

/// Runs the warm-up then the measured run of one scenario against `base_url`.
pub fn measure(base_url: &str, shape: &RequestShape, load: Load, script_dir: &Path) -> Result<WrkStats, BenchError> {
    if !load.warmup.is_zero() {
        run_once(base_url, shape, load.connections, load.warmup, script_dir)?;
    }
    run_once(base_url, shape, load.connections, load.duration, script_dir)
}

fn run_once(
    base_url: &str,
    shape: &RequestShape,
    connections: u32,
    duration: Duration,
    script_dir: &Path,
) -> Result<WrkStats, BenchError> {
    let run_tag = crate::random_hex(8);
    let script_path = script_dir.join(format!("scenario-{run_tag}.lua"));
    std::fs::write(&script_path, shape.script(&run_tag))?;
    let output = Command::new("wrk")
        .arg("-t1")
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .arg("--timeout")
        .arg("5s")
        .arg("-s")
        .arg(&script_path)
        .arg(format!("{base_url}{}", shape.path))
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().find(|l| l.starts_with(RESULT_PREFIX)).ok_or_else(|| {
        BenchError::new(format!(
            "wrk printed no result ({}):\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ))
    })?;
    parse_result(line)
}

fn parse_result(line: &str) -> Result<WrkStats, BenchError> {
    let field = |name: &str| -> Result<u64, BenchError> {
        line.split_whitespace()
            .filter_map(|pair| pair.split_once('='))
            .find(|(key, _)| *key == name)
            .and_then(|(_, value)| value.parse().ok())
            .ok_or_else(|| BenchError::new(format!("wrk result lacks {name}: {line}")))
    };
    let ms = |name: &str| field(name).map(|us| us as f64 / 1000.0);
    let requests = field("requests")?;
    let duration_s = field("duration_us")? as f64 / 1e6;
    Ok(WrkStats {
        requests,
        req_per_sec: if duration_s > 0.0 {
            requests as f64 / duration_s
        } else {
            0.0
        },
        p50_ms: ms("p50_us")?,
        p90_ms: ms("p90_us")?,
        p99_ms: ms("p99_us")?,
        max_ms: ms("max_us")?,
        non_2xx: field("status_errors")?,
        socket_errors: field("socket_errors")?,
    })
}

/// A Lua string literal of `text`.
fn lua_string(text: &str) -> String {
    let mut literal = String::with_capacity(text.len() + 2);
    literal.push('"');
    for c in text.chars() {
        match c {
            '"' => literal.push_str("\\\""),
            '\\' => literal.push_str("\\\\"),
            '\n' => literal.push_str("\\n"),
            '\r' => literal.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(literal, "\\{}", c as u32);
            }
            c => literal.push(c),
        }
    }
    literal.push('"');
    literal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_done_callback_line() {
        let stats = parse_result(
            "BENCH_RESULT requests=2000 duration_us=2000000 p50_us=1500 p90_us=2000 p99_us=3000 max_us=9000 status_errors=3 socket_errors=1",
        )
        .unwrap();
        assert_eq!(stats.requests, 2000);
        assert!((stats.req_per_sec - 1000.0).abs() < 1e-9);
        assert!((stats.p50_ms - 1.5).abs() < 1e-9);
        assert_eq!(stats.errors(), 4);
    }

    #[test]
    fn quotes_lua_strings() {
        assert_eq!(lua_string(r#"{"a":"b\c"}"#), r#""{\"a\":\"b\\c\"}""#);
    }
}
