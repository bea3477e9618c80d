//! Our outbound deliveries verified by another implementation: the PyPI `standardwebhooks`
//! package (pinned in tests/standardwebhooks/requirements.txt) in a small Python receiver.
//!
//! Needs the interpreter of a virtualenv with that package in `STANDARDWEBHOOKS_PYTHON` (.ci/run
//! makes one). Without it the test says it skipped, except under CI (`CI=true`), where it fails.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::body::Body;
use serde_json::{json, Value};

use crate::harness::{jira_server, jira_signature, TestApp};

struct PythonReceiver {
    child: Child,
    base: String,
}

impl Drop for PythonReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl PythonReceiver {
    /// Starts the receiver, or `None` (after saying so) when no interpreter is configured.
    fn start() -> Option<Self> {
        let Ok(python) = std::env::var("STANDARDWEBHOOKS_PYTHON") else {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "STANDARDWEBHOOKS_PYTHON must name a Python with standardwebhooks installed under CI"
            );
            eprintln!("skipped: STANDARDWEBHOOKS_PYTHON is not set (see .ci/run)");
            return None;
        };
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/standardwebhooks/receiver.py");
        let mut child = Command::new(python)
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the Python receiver starts");
        let mut port = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout)
            .read_line(&mut port)
            .expect("the receiver prints its port");
        let port: u16 = port.trim().parse().expect("a port number");
        Some(Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        })
    }

    async fn set_secrets(&self, secrets: &[&str]) {
        let response = reqwest::Client::new()
            .post(format!("{}/_secrets", self.base))
            .json(&secrets)
            .send()
            .await
            .expect("the receiver answers");
        assert_eq!(response.status(), 204);
    }

    async fn results(&self) -> Vec<Value> {
        reqwest::get(format!("{}/_results", self.base))
            .await
            .expect("the receiver answers")
            .json()
            .await
            .expect("JSON results")
    }

    async fn wait_for(&self, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let results = self.results().await;
            if results.len() >= count {
                return results;
            }
            assert!(
                Instant::now() < deadline,
                "expected {count} deliveries, got {results:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn emit(app: &TestApp, key: &str, event_type: &str) -> String {
    let emitted = app
        .post(
            "/v1/events",
            key,
            json!({"type": event_type, "data": {"note": "ünïcode ✓"}}),
        )
        .await;
    assert_eq!(emitted.status, 202, "{}", emitted.text());
    emitted.json()["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_standardwebhooks_package_verifies_every_delivery() {
    let Some(receiver) = PythonReceiver::start() else {
        return;
    };
    let app = TestApp::start_with(|config| config.webhook_retry_schedule = "0,1,2".parse().unwrap()).await;
    let key = app.tenant("acme", json!({})).await;
    let jira = jira_server().await;
    let installed = app.install_jira(&key, &jira.uri(), "t", Some("hook-secret")).await;
    assert_eq!(installed.status, 201);
    let created = app
        .post(
            "/v1/webhook-endpoints",
            &key,
            json!({"url": format!("{}/hook", receiver.base), "event_types": ["order.*", "jira.*"]}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let created = created.json();
    let old = created["secret"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    receiver.set_secrets(&[&old]).await;

    // A tenant event and a webhook-derived one.
    emit(&app, &key, "order.created").await;
    let body = br#"{"webhookEvent":"jira:issue_created","issue":{"key":"ABC-1"}}"#;
    let request = http::Request::post("/v1/webhooks/jira/acme")
        .header("content-type", "application/json")
        .header("x-atlassian-webhook-identifier", "d-1")
        .header("x-hub-signature", jira_signature("hook-secret", body))
        .body(Body::from(body.to_vec()))
        .unwrap();
    assert_eq!(app.send(request).await.status, 202);
    let before = receiver.wait_for(2).await;

    // After a rotation, both the new and the old secret verify.
    let rotated = app
        .post(&format!("/v1/webhook-endpoints/{id}/rotate-secret"), &key, json!({}))
        .await
        .json();
    let new = rotated["secret"].as_str().unwrap().to_owned();
    receiver.set_secrets(&[&new, &old]).await;
    let after_rotation = emit(&app, &key, "order.shipped").await;
    let results = receiver.wait_for(3).await;

    let types: Vec<&Value> = before.iter().map(|r| &r["type"]).collect();
    assert!(types.contains(&&json!("order.created")) && types.contains(&&json!("jira.issue_created")));
    for result in &results {
        let verdicts = result["verdicts"].as_array().expect("verdicts");
        assert!(
            !verdicts.is_empty() && verdicts.iter().all(|v| *v == json!(true)),
            "standardwebhooks refused a delivery: {result}"
        );
    }
    assert_eq!(results[2]["webhook_id"], after_rotation.as_str());
    assert_eq!(results[2]["verdicts"], json!([true, true]));
    // Every attempt succeeded: the receiver answers 401 to what it cannot verify.
    let attempts = app
        .get(&format!("/v1/webhook-endpoints/{id}/attempts"), &key)
        .await
        .json();
    assert!(attempts["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["status_code"] == 200));
}
