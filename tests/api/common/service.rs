//! The real binary, `uchat-billing serve`, as a child process on a port of its own, so a
//! test can kill it with SIGKILL at any moment and start it again on the same port and
//! database, as a crash and a supervisor's restart would.

use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a (re)started service gets to answer `/readyz`.
const START_TIMEOUT: Duration = Duration::from_secs(30);

pub struct ServiceProcess {
    /// `http://127.0.0.1:<port>`, the same across restarts.
    pub address: String,
    env: Vec<(String, String)>,
    child: Option<Child>,
    /// Where every run's stdout and stderr go, appended; removed unless the test fails.
    pub log: PathBuf,
    client: reqwest::Client,
    /// `ulimit -n` of the process, when the test sets one.
    open_file_limit: Option<u64>,
}

/// A loopback port nobody uses now, below Linux's ephemeral range (32768 up), so no
/// outgoing connection takes it while the service is down between two runs.
pub fn free_port() -> u16 {
    loop {
        let port = rand::random::<u16>() % 12_000 + 20_000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// What `serve` needs to start against `database_url`, with the test catalog and secret.
pub fn serve_env(database_url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", database_url.to_owned()),
        ("STRIPE_WEBHOOK_SECRET", super::WEBHOOK_SECRET.into()),
        (
            "CATALOG_PATH",
            super::fixture_path("catalog.toml").display().to_string(),
        ),
    ]
}

impl ServiceProcess {
    /// Starts `serve` with a clean environment plus `env` and `BIND_ADDR` on a free
    /// port, and waits until it is ready.
    pub async fn start(env: &[(&str, String)]) -> ServiceProcess {
        ServiceProcess::start_with(env, None).await
    }

    /// [`ServiceProcess::start`] with the process's open-file limit set to `limit`.
    pub async fn start_with_open_file_limit(env: &[(&str, String)], limit: u64) -> ServiceProcess {
        ServiceProcess::start_with(env, Some(limit)).await
    }

    async fn start_with(env: &[(&str, String)], open_file_limit: Option<u64>) -> ServiceProcess {
        let port = free_port();
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(name, value)| (name.to_string(), value.clone()))
            .collect();
        env.push(("BIND_ADDR".into(), format!("127.0.0.1:{port}")));
        let log = std::env::temp_dir().join(format!("uchat-billing-serve-{port}.log"));
        File::create(&log).unwrap();
        let mut service = ServiceProcess {
            address: format!("http://127.0.0.1:{port}"),
            env,
            child: None,
            log,
            client: reqwest::Client::new(),
            open_file_limit,
        };
        service.restart().await;
        service
    }

    /// Starts the process again (it must not be running) and waits until it is ready.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "the service is already running");
        let log = OpenOptions::new().append(true).open(&self.log).unwrap();
        const BIN: &str = env!("CARGO_BIN_EXE_uchat-billing");
        let mut command = match self.open_file_limit {
            None => Command::new(BIN),
            Some(limit) => {
                // The shell sets the limit and becomes the service: one process, one pid.
                let mut shell = Command::new("sh");
                shell.args(["-c", r#"ulimit -n "$1" && exec "$0" "$2""#, BIN]);
                shell.arg(limit.to_string());
                shell
            }
        };
        let child = command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            // No .env of the developer's leaks in.
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("the service binary starts");
        self.child = Some(child);
        self.wait_until_ready().await;
    }

    /// SIGKILL: no shutdown, no flush, no goodbye. Returns once the process is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap(); // SIGKILL on Unix
            child.wait().unwrap();
        }
    }

    /// The process id of the running service.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the service is running").id()
    }

    /// SIGTERM, as a supervisor stops a service.
    pub fn terminate(&self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    /// Waits up to `timeout` for the process to exit; `None` if it is still running.
    pub async fn exit_within(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.as_mut()?.try_wait().unwrap() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let exited = self.child.as_mut().unwrap().try_wait().unwrap();
            if let Some(status) = exited {
                panic!(
                    "the service exited at start ({status}):\n{}",
                    self.log_tail()
                );
            }
            let ready = self
                .client
                .get(format!("{}/readyz", self.address))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|response| response.status() == 200);
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the service was not ready after {START_TIMEOUT:?}:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last lines the service logged, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill();
        // Kept when the test failed, to read what the service said.
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}
