//! P4's receiver: a local endpoint that takes the service's signed deliveries and records, per
//! event id, how long after the event was accepted it arrived.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::Value;
use tokio::net::TcpListener;

use crate::BenchError;

/// What arrived.
#[derive(Default)]
pub struct Deliveries {
    /// Distinct `webhook-id`s.
    pub ids: HashSet<String>,
    /// Deliveries, redeliveries included.
    pub received: u64,
    /// Deliveries without the three Standard Webhooks headers.
    pub unsigned: u64,
    /// Accept-to-arrival latency of each first delivery, milliseconds (from the event's
    /// `occurred_at`, stamped when the service accepted it).
    pub latencies_ms: Vec<f64>,
    /// First and last arrival.
    pub first: Option<Instant>,
    /// Last arrival.
    pub last: Option<Instant>,
}

/// The receiver's shared record.
pub type Record = Arc<Mutex<Deliveries>>;

/// Serves the receiver on 127.0.0.1; answers 204 to every delivery.
pub async fn start() -> Result<(SocketAddr, Record), BenchError> {
    let record: Record = Arc::default();
    let router = Router::new().route("/hook", post(receive)).with_state(record.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            eprintln!("bench: receiver stopped: {error}");
        }
    });
    Ok((address, record))
}

async fn receive(State(record): State<Record>, headers: HeaderMap, body: axum::body::Bytes) -> StatusCode {
    let arrived = Instant::now();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let id = header("webhook-id");
    let signed = id.is_some() && header("webhook-timestamp").is_some() && header("webhook-signature").is_some();
    let occurred_ms = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|event| event.get("occurred_at").and_then(Value::as_str).and_then(rfc3339_ms));
    let mut deliveries = record.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    deliveries.received += 1;
    if !signed {
        deliveries.unsigned += 1;
    }
    deliveries.first.get_or_insert(arrived);
    deliveries.last = Some(arrived);
    if let Some(id) = id {
        if deliveries.ids.insert(id) {
            if let Some(occurred_ms) = occurred_ms {
                deliveries.latencies_ms.push((now_ms - occurred_ms).max(0.0));
            }
        }
    }
    StatusCode::NO_CONTENT
}

/// `2026-11-26T10:09:19.123Z` as unix milliseconds (the service writes exactly this shape).
fn rfc3339_ms(text: &str) -> Option<f64> {
    let (date, time) = text.strip_suffix('Z')?.split_once('T')?;
    let mut date = date.split('-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (date.next()??, date.next()??, date.next()??);
    let mut time = time.split(':');
    let (hour, minute) = (time.next()?.parse::<i64>().ok()?, time.next()?.parse::<i64>().ok()?);
    let (second, millis) = time.next()?.split_once('.')?;
    let (second, millis) = (second.parse::<i64>().ok()?, millis.parse::<i64>().ok()?);
    // Days from civil (Howard Hinnant), the inverse of the service's formatter.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + hour * 3600 + minute * 60 + second) * 1000 + millis) as f64)
}

/// The `p`-th percentile (0–100) of `samples`.
pub fn percentile(samples: &mut [f64], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * (samples.len() - 1) as f64).round() as usize;
    samples[rank.min(samples.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_services_timestamps() {
        assert_eq!(rfc3339_ms("1970-01-01T00:00:00.000Z"), Some(0.0));
        assert_eq!(rfc3339_ms("2026-11-26T10:09:19.001Z"), Some(1_795_687_759_001.0));
        assert_eq!(rfc3339_ms("2000-02-29T00:00:00.123Z"), Some(951_782_400_123.0));
    }

    #[test]
    fn percentiles_of_a_known_sample() {
        let mut samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&mut samples, 50.0), 51.0);
        assert_eq!(percentile(&mut samples, 99.0), 99.0);
    }
}
