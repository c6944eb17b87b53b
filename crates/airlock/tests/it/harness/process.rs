//! Airlock as its own process: the configuration file a [`Harness`] writes,
//! `airlock serve` started on it (as often as a test likes), and the
//! development identity provider on its own port (a real issuer, found
//! through discovery).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use airlock::devidp::{self, DevIdp};
use serde_json::Value;

use super::{Airbyte, AirlockToml, Client, Harness, Issuer};
use crate::support::http_client;

/// A directory of its own under the system's temporary directory, removed
/// when dropped.
#[derive(Debug)]
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    /// A new, empty directory named after `what`.
    pub fn new(what: &str) -> Self {
        let path = std::env::temp_dir().join(format!("{what}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).expect("temp dir");
        Self { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// What a deployment is made of: its database, its configuration file, and
/// the development identity provider when the harness has one.
#[derive(Debug)]
pub struct Deployment {
    pub idp: Option<IdpServer>,
    pub storage_url: String,
    /// The configuration as written.
    pub config: AirlockToml,
    launch: Launch,
    _dir: TempDir,
}

impl Harness {
    /// Writes the configuration for `airlock serve` processes; Airbyte must
    /// be given (`.airbyte(&sim)` or `.airbyte_at(...)`).
    pub async fn deploy(self) -> Deployment {
        assert!(
            matches!(self.airbyte, Airbyte::At { .. }),
            "a deployment needs a running Airbyte: .airbyte(&sim) or .airbyte_at(...)"
        );
        let storage_url = self.storage().await;
        let idp = if self.dev_idp {
            Some(IdpServer::start().await)
        } else {
            None
        };
        let dev_issuer = idp.as_ref().map(|idp| {
            self.dev_issuer_keys
                .iter()
                .fold(idp.issuer(), |issuer, (key, value)| {
                    issuer.with(key, value.clone())
                })
        });
        let config = self.render(&storage_url, &self.airbyte, dev_issuer, None);
        let dir = TempDir::new("airlock-it");
        let path = dir.path.join("airlock.toml");
        config.write(&path);
        let signer = idp.as_ref().map_or_else(
            || DevIdp::new("http://127.0.0.1:9").expect("identity provider"),
            |idp| idp.idp.clone(),
        );
        Deployment {
            idp,
            storage_url,
            config,
            launch: Launch {
                path,
                log_level: self.log_level,
                log_format: self.log_format,
                env: self.env,
                signer,
            },
            _dir: dir,
        }
    }
}

impl Deployment {
    /// Starts `airlock serve` and waits until it listens.
    pub fn serve(&self) -> Served {
        self.launch.serve()
    }

    /// What starts a process, to start some on other threads.
    pub fn launch(&self) -> Launch {
        self.launch.clone()
    }

    /// The configuration file.
    pub fn path(&self) -> &Path {
        &self.launch.path
    }

    /// Replaces the configuration file's contents (a reload's new file).
    pub fn rewrite(&self, config: &AirlockToml) {
        config.write(&self.launch.path);
    }

    /// The development identity provider, to stop or restart it.
    pub fn idp(&mut self) -> &mut IdpServer {
        self.idp
            .as_mut()
            .expect("the harness has the development identity provider")
    }
}

/// How `airlock serve` is started: its configuration, log level and
/// environment, and the provider that signs its client's tokens.
#[derive(Debug, Clone)]
pub struct Launch {
    path: PathBuf,
    log_level: String,
    log_format: &'static str,
    env: Vec<(String, String)>,
    signer: DevIdp,
}

impl Launch {
    /// Starts `airlock serve --config FILE` on a free port and waits until
    /// it listens. Its address is read from its log (JSON lines on stderr,
    /// or text lines with [`Harness::text_logs`]), which is kept for
    /// assertions.
    pub fn serve(&self) -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
            .args(["--log-format", self.log_format])
            .args(["serve", "--listen", "127.0.0.1:0"])
            .arg("--config")
            .arg(&self.path)
            .env("AIRLOCK_LOG", &self.log_level)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("airlock serve starts");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Log::default()));
        let (found, address) = std::sync::mpsc::channel();
        let kept = Arc::clone(&log);
        // Reads the log to its end, so that the child never blocks on it.
        std::thread::spawn(move || {
            let mut found = Some(found);
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let event = serde_json::from_str::<Value>(&line).ok();
                if let Some(addr) = listening_at(&line, event.as_ref())
                    && let Some(sender) = found.take()
                {
                    let _ = sender.send(Some(addr));
                }
                lock(&kept).push(line, event);
            }
            if let Some(sender) = found {
                let _ = sender.send(None);
            }
        });
        let addr = match address.recv_timeout(Duration::from_secs(60)) {
            Ok(Some(addr)) => addr,
            Ok(None) => panic!(
                "airlock serve ended before listening:\n{}",
                lock(&log).lines.join("\n")
            ),
            Err(error) => panic!(
                "airlock serve did not listen ({error}):\n{}",
                lock(&log).lines.join("\n")
            ),
        };
        Served {
            child,
            client: Client {
                http: http_client(),
                base: format!("http://{addr}"),
                idp: self.signer.clone(),
            },
            log,
        }
    }
}

/// The address of the log line that says Airlock listens: a JSON event's
/// `addr`, or a text line's `addr=` field.
fn listening_at(line: &str, event: Option<&Value>) -> Option<String> {
    match event {
        Some(event) if event["message"] == "airlock listening" => {
            event["addr"].as_str().map(str::to_owned)
        }
        Some(_) => None,
        None if line.contains("airlock listening") => line
            .split_whitespace()
            .find_map(|word| word.strip_prefix("addr="))
            .map(str::to_owned),
        None => None,
    }
}

/// A process's log: every line, and those that are JSON parsed.
#[derive(Debug, Default)]
struct Log {
    lines: Vec<String>,
    events: Vec<Value>,
}

impl Log {
    fn push(&mut self, line: String, event: Option<Value>) {
        self.lines.push(line);
        self.events.extend(event);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `airlock serve` as a child process; killed when dropped.
#[derive(Debug)]
pub struct Served {
    child: Child,
    pub client: Client,
    log: Arc<Mutex<Log>>,
}

impl Served {
    /// The process id (for `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every line of its log so far.
    pub fn log_lines(&self) -> Vec<String> {
        lock(&self.log).lines.clone()
    }

    /// How many log lines so far carry `message`.
    pub fn logged(&self, message: &str) -> usize {
        lock(&self.log)
            .events
            .iter()
            .filter(|event| event["message"] == message)
            .count()
    }

    /// How many lines said `message` once `count` have, or a few seconds
    /// have passed (the log is read from the process as it comes).
    pub async fn logged_within(&self, message: &str, count: usize) -> usize {
        for _ in 0..100 {
            if self.logged(message) >= count {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        self.logged(message)
    }

    /// The log lines of level `level` (`ERROR`, `WARN`...) so far.
    pub fn log_at(&self, level: &str) -> Vec<Value> {
        lock(&self.log)
            .events
            .iter()
            .filter(|event| event["level"] == level)
            .cloned()
            .collect()
    }

    /// Resident memory in KiB (`VmRSS` of `/proc/PID/status`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the process is alive");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// Sends a signal (`TERM`, `HUP`...) with the system's `kill`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits up to `bound` for the process to exit; its status, or `None`
    /// if it is still running.
    pub fn wait_exit(&mut self, bound: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + bound;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no shutdown, no cleanup.
    pub fn kill(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("reaped");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The development identity provider served on its own port, as a real
/// issuer is: `serve` finds its keys through discovery. It can go away
/// and come back on the same port with the same keys.
#[derive(Debug)]
pub struct IdpServer {
    pub idp: DevIdp,
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl IdpServer {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let idp = DevIdp::new(&format!("http://{addr}")).expect("identity provider");
        let mut server = Self {
            idp,
            addr,
            stop: None,
            task: None,
        };
        server.serve(listener);
        server
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let routes = axum::Router::new().nest(devidp::MOUNT, self.idp.router());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        self.stop = Some(stop);
        self.task = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, routes)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        }));
    }

    /// Its `[[issuers]]` entry: ES256 over plain HTTP, audience `airlock`.
    pub fn issuer(&self) -> Issuer {
        Issuer::new(self.idp.issuer(), &["airlock"])
            .with("algorithms", vec!["ES256"])
            .with("allow_insecure_http", true)
    }

    /// Stops serving and closes its connections: the provider is gone.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Serves again on the same port, with the same keys.
    pub async fn restart(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .expect("the identity provider's port is free again");
        self.serve(listener);
    }
}

impl Drop for IdpServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
