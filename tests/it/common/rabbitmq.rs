//! A real RabbitMQ (the Debian `rabbitmq-server` package) for the connector tests: started on
//! free loopback ports with its own config, data and log directories and its own `epmd`, so
//! tests run side by side and leave nothing behind; it can be stopped and started again on the
//! same data (durable queues survive, as in a broker restart). Required under `CI=true`;
//! elsewhere a missing server skips the test with a notice.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The broker user the tests and the connector use.
pub const USER: &str = "octi";
/// Its password.
pub const PASS: &str = "octi-broker-SECRET-77";

const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";

use super::child::free_port;

fn epmd() -> Option<PathBuf> {
    let root = Path::new("/usr/lib/erlang");
    let entries = std::fs::read_dir(root).ok()?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with("erts-") {
            let candidate = entry.path().join("bin").join("epmd");
            if candidate.exists() {
                return Some(candidate);
            }
        }
    }
    None
}

/// A running broker; stopped and its directory removed on drop.
pub struct RabbitMq {
    /// The AMQP port on 127.0.0.1.
    pub port: u16,
    /// The AMQPS port on 127.0.0.1, when started with a certificate.
    pub tls_port: Option<u16>,
    dist_port: u16,
    epmd_port: u16,
    dir: PathBuf,
    node: String,
    server: Option<Child>,
    epmd: Child,
}

impl RabbitMq {
    /// Starts a broker, or `None` (with a notice) when rabbitmq-server is not installed and
    /// this is not CI.
    pub fn start() -> Option<Self> {
        Self::start_with(None)
    }

    /// Like [`RabbitMq::start`], with an AMQPS listener too (on [`RabbitMq::tls_port`]) that
    /// presents `cert` and asks no client certificate.
    pub fn start_with_tls(cert: &super::tls::ServerCert) -> Option<Self> {
        Self::start_with(Some(cert))
    }

    fn start_with(cert: Option<&super::tls::ServerCert>) -> Option<Self> {
        let Some(epmd_binary) = epmd().filter(|_| Path::new(SERVER).exists()) else {
            super::missing(
                "rabbitmq-server",
                "it is not installed",
                "`apt-get install rabbitmq-server`",
            );
            return None;
        };
        let port = free_port();
        let dist_port = free_port();
        let epmd_port = free_port();
        let dir = std::env::temp_dir().join(format!("misp-domaintools-rabbitmq-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["mnesia", "log", "home"] {
            std::fs::create_dir_all(dir.join(sub)).expect("broker directories");
        }
        let mut config = format!(
            "listeners.tcp.1 = 127.0.0.1:{port}\nloopback_users = none\n\
             default_user = {USER}\ndefault_pass = {PASS}\n"
        );
        let tls_port = cert.map(|cert| {
            let tls_port = free_port();
            let (cert_file, key_file) = (dir.join("server.crt"), dir.join("server.key"));
            std::fs::write(&cert_file, &cert.cert_pem).expect("broker certificate");
            std::fs::write(&key_file, &cert.key_pem).expect("broker key");
            config.push_str(&format!(
                "listeners.ssl.1 = 127.0.0.1:{tls_port}\n\
                 ssl_options.certfile = {}\nssl_options.keyfile = {}\n\
                 ssl_options.verify = verify_none\nssl_options.fail_if_no_peer_cert = false\n",
                cert_file.display(),
                key_file.display()
            ));
            tls_port
        });
        std::fs::write(dir.join("rabbitmq.conf"), config).expect("broker config");
        std::fs::write(dir.join("enabled_plugins"), "[].\n").expect("broker plugins");
        // Our own epmd, in the foreground: one started by the server would outlive the test.
        let epmd = Command::new(epmd_binary)
            .arg("-port")
            .arg(epmd_port.to_string())
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("epmd starts");
        let mut broker = Self {
            port,
            tls_port,
            dist_port,
            epmd_port,
            node: format!("misp-dt-{port}@localhost"),
            dir,
            server: None,
            epmd,
        };
        broker.start_server();
        Some(broker)
    }

    /// Starts the server (again) on the same data, and waits until it takes connections.
    pub fn start_server(&mut self) {
        assert!(self.server.is_none(), "the broker already runs");
        let log = std::fs::File::create(self.dir.join("server.out")).expect("broker log");
        let child = Command::new(SERVER)
            .current_dir(&self.dir)
            .env_clear()
            .env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin")
            .env("HOME", self.dir.join("home"))
            .env("RABBITMQ_MNESIA_BASE", self.dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", self.dir.join("log"))
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_CONFIG_FILE", self.dir.join("rabbitmq.conf"))
            .env(
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                self.dir.join("enabled_plugins"),
            )
            .env("RABBITMQ_PID_FILE", self.dir.join("server.pid"))
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env(
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "-kernel inet_dist_use_interface {127,0,0,1}",
            )
            .stdout(log.try_clone().expect("broker log"))
            .stderr(log)
            .spawn()
            .expect("rabbitmq-server starts");
        self.server = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        let ports: Vec<u16> = std::iter::once(self.port).chain(self.tls_port).collect();
        let listening = |port: &u16| std::net::TcpStream::connect(("127.0.0.1", *port)).is_ok();
        while !ports.iter().all(listening) {
            if let Some(server) = self.server.as_mut() {
                if let Ok(Some(status)) = server.try_wait() {
                    panic!(
                        "rabbitmq-server exited ({status}): {}",
                        std::fs::read_to_string(self.dir.join("server.out")).unwrap_or_default()
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "rabbitmq-server did not start in 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server (SIGTERM, as a restart does) and waits for it to exit.
    pub fn stop_server(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(server.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if server.try_wait().ok().flatten().is_some() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = server.kill();
                    let _ = server.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            // The script normally takes the Erlang VM down with it; make sure of it.
            if let Some(pid) = std::fs::read_to_string(self.dir.join("server.pid"))
                .ok()
                .and_then(|text| text.trim().parse::<u32>().ok())
            {
                // A zombie (state Z) is gone, only not yet reaped by its new parent.
                let alive = |pid: u32| {
                    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                        stat.rsplit_once(") ")
                            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
                    })
                };
                if alive(pid) {
                    let _ = Command::new("kill")
                        .arg("-TERM")
                        .arg(pid.to_string())
                        .status();
                    let deadline = Instant::now() + Duration::from_secs(20);
                    while alive(pid) && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    if alive(pid) {
                        let _ = Command::new("kill")
                            .arg("-KILL")
                            .arg(pid.to_string())
                            .status();
                    }
                }
            }
            let _ = std::fs::remove_file(self.dir.join("server.pid"));
        }
    }
}

impl Drop for RabbitMq {
    fn drop(&mut self) {
        self.stop_server();
        let _ = self.epmd.kill();
        let _ = self.epmd.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
