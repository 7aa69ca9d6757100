//! Running a service binary as a real process: configured through `GAVEL_…` variables, found
//! through the `listening` line it logs, and stopped with a real SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct ServiceProcess {
    child: Child,
    pub http: String,
    pub admin: String,
    logs: std::sync::mpsc::Receiver<String>,
}

impl ServiceProcess {
    /// Starts `binary` on ephemeral ports with `env` and waits for it to listen.
    #[expect(
        clippy::zombie_processes,
        reason = "the child is owned by Self, whose Drop waits for it"
    )]
    pub fn spawn(binary: &str, env: &[(&str, String)]) -> Self {
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("GAVEL_HTTP__ADDR", "127.0.0.1:0")
            .env("GAVEL_ADMIN__ADDR", "127.0.0.1:0")
            .env("GAVEL_LOG__FORMAT", "json")
            .env("GAVEL_LOG__FILTER", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {binary}: {error}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let (sender, logs) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let line = logs.recv_timeout(remaining).unwrap_or_else(|_| {
                panic!("{binary} exited, or did not log `listening` within 30s")
            });
            let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let fields = &entry["fields"];
            if fields["message"] == "listening" {
                let http = format!("http://{}", fields["http"].as_str().expect("http address"));
                let admin = format!(
                    "http://{}",
                    fields["admin"].as_str().expect("admin address")
                );
                return Self {
                    child,
                    http,
                    admin,
                    logs,
                };
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process with SIGKILL, as a crash or the OOM killer would, and reaps it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the process to exit, at most `deadline`.
    pub fn terminate(mut self, deadline: Duration) -> (ExitStatus, Vec<String>) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill is installed");
        assert!(status.success(), "kill -TERM failed");
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("can wait for the child") {
                let logs = self.logs.try_iter().collect();
                return (status, logs);
            }
            if started.elapsed() > deadline {
                let _ = self.child.kill();
                panic!("the service did not exit within {deadline:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The life of every service binary: it starts, reports ready with real dependency checks, serves
/// its admin endpoints, and exits cleanly on SIGTERM.
pub async fn assert_lifecycle(binary: &str, service: &str, env: &[(&str, String)]) {
    let mut env = env.to_vec();
    env.push(("GAVEL_SHUTDOWN__DRAIN_DEADLINE", "5s".to_owned()));
    let process = ServiceProcess::spawn(binary, &env);
    let client = reqwest::Client::new();
    // Some readiness checks turn true a moment after listening (a consumer binding its queue).
    let mut last = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = client
            .get(format!("{}/readyz", process.admin))
            .send()
            .await
            .expect("admin answers");
        if ready.status() == 200 {
            break;
        }
        last = ready.text().await.unwrap_or_default();
        assert!(Instant::now() < deadline, "never ready: {last}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = last;
    let health = client
        .get(format!("{}/healthz", process.admin))
        .send()
        .await
        .expect("admin answers");
    assert_eq!(health.status(), 200);
    let metrics = client
        .get(format!("{}/metrics", process.admin))
        .send()
        .await
        .expect("admin answers");
    let metrics = metrics.text().await.expect("text");
    assert!(
        metrics.contains(&format!(r#"service="{service}""#)),
        "{metrics}"
    );

    let (status, logs) = process.terminate(Duration::from_secs(10));
    assert!(
        status.success(),
        "exit status {status}; logs:\n{}",
        logs.join("\n")
    );
    assert!(
        logs.iter().any(|line| line.contains("SIGTERM received")),
        "{logs:?}"
    );
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
