//! A PostgreSQL server of a test's own: `initdb` into a temporary directory
//! and `pg_ctl` on a free loopback port, so a test can crash and restart
//! the database itself without touching the shared server the other tests
//! use at the same time. It needs the server's binaries (Debian's
//! `postgresql` package, under `/usr/lib/postgresql/<version>/bin`), which
//! every machine with the shared server has. As root (CI), the server runs
//! as the `postgres` user, since PostgreSQL refuses to run as root.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::free_port;

#[derive(Debug)]
pub struct PostgresServer {
    /// A superuser connection URL to the `postgres` database.
    pub url: String,
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    run_as: Option<String>,
    dir: tempfile::TempDir,
}

impl PostgresServer {
    /// `None` (the test is skipped) without the server's binaries, unless
    /// CI requires PostgreSQL with `MARKETER_REQUIRE_POSTGRES`.
    pub fn start() -> Option<Self> {
        let Some(bin) = binaries() else {
            assert!(
                std::env::var_os("MARKETER_REQUIRE_POSTGRES").is_none(),
                "MARKETER_REQUIRE_POSTGRES is set but no PostgreSQL server binaries are under /usr/lib/postgresql"
            );
            eprintln!("skipping: no PostgreSQL server binaries under /usr/lib/postgresql");
            return None;
        };
        let dir = tempfile::tempdir().expect("a directory for PostgreSQL");
        let run_as = is_root().then(|| "postgres".to_owned());
        if run_as.is_some() {
            let ids = |flag: &str| -> u32 {
                let out = Command::new("id").arg(flag).arg("postgres").output().expect("run id");
                String::from_utf8_lossy(&out.stdout).trim().parse().expect("the postgres user's ids")
            };
            std::os::unix::fs::chown(dir.path(), Some(ids("-u")), Some(ids("-g")))
                .expect("give the directory to the postgres user");
        }
        let data = dir.path().join("data");
        let port = free_port();
        let server = Self {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            bin,
            data,
            port,
            run_as,
            dir,
        };
        let data = server.data.to_string_lossy().into_owned();
        let out = server.run(
            "initdb",
            &["-D", &data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--no-instructions"],
        );
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        server.pg_ctl_start();
        Some(server)
    }

    /// Stops the server as a crash would (`pg_ctl stop -m immediate`: every
    /// connection dropped, no checkpoint), keeps it down for `down`, and
    /// starts it again (crash recovery replays the WAL).
    pub fn crash_and_restart(&self, down: Duration) {
        self.pg_ctl_stop();
        std::thread::sleep(down);
        self.pg_ctl_start();
    }

    /// The server's log, for a failing test's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    fn pg_ctl_start(&self) {
        // fsync off: a process crash loses nothing (the kernel holds the
        // writes); only a machine crash would, and tests do not do that.
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off \
             -c max_connections=400 -c shared_buffers=64MB",
            self.port,
            self.dir.path().display()
        );
        let data = self.data.to_string_lossy().into_owned();
        let log = self.dir.path().join("postgres.log").to_string_lossy().into_owned();
        let out = self.run("pg_ctl", &["start", "-D", &data, "-l", &log, "-w", "-t", "60", "-o", &options]);
        assert!(
            out.status.success(),
            "pg_ctl start: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    fn pg_ctl_stop(&self) {
        let data = self.data.to_string_lossy().into_owned();
        let out = self.run("pg_ctl", &["stop", "-D", &data, "-m", "immediate", "-w"]);
        assert!(out.status.success(), "pg_ctl stop: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        let program = self.bin.join(program);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.arg("-u").arg(user).arg("--").arg(&program);
                c
            }
            None => Command::new(&program),
        };
        command.args(args).current_dir(self.dir.path());
        command.output().unwrap_or_else(|e| panic!("run {}: {e}", program.display()))
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let data = self.data.to_string_lossy().into_owned();
        let _ = self.run("pg_ctl", &["stop", "-D", &data, "-m", "immediate", "-w"]);
    }
}

/// The newest installed version's `bin` directory.
fn binaries() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse().ok()?;
            let bin = entry.path().join("bin");
            Path::new(&bin.join("pg_ctl")).exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}
