//! The real `marketer-server` binary, started as a process on a temporary
//! data directory.

use std::time::Duration;

use marketer_tests::{ServerProcess, TempDatabase, binary, server_command};
use serde_json::{Value, json};

const EMAIL: &str = "ops@example.com";
const PASSWORD: &str = "a long bootstrap password";

async fn login(server: &ServerProcess, email: &str, password: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(server.url("/api/v1/auth/login"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn bootstrap_login_create_and_read_a_project_across_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let env = [("MARKETER_BOOTSTRAP_EMAIL", EMAIL), ("MARKETER_BOOTSTRAP_PASSWORD", PASSWORD)];
    // A data directory anyone may read: the database is still the owner's only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let server = ServerProcess::start(data.path(), &env);
    assert!(!server.stdout.iter().any(|l| l.contains(PASSWORD)), "a supplied password is never printed");
    let output = server.stdout.join("\n") + &server.stderr.text();
    assert!(output.contains("INFO starting marketer-server"), "{output}");
    assert!(!output.contains('\u{1b}'), "no colour codes when not on a terminal: {output:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for file in ["marketer.db", "marketer.db-wal", "marketer.db-shm"] {
            let mode = std::fs::metadata(data.path().join(file)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{file}: {mode:o}");
        }
    }

    let (status, tokens) = login(&server, EMAIL, PASSWORD).await;
    assert_eq!(status, 200, "{tokens}");
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    let http = reqwest::Client::new();
    let me: Value =
        http.get(server.url("/api/v1/me")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    let tenant = me["memberships"][0]["tenant_id"].as_str().unwrap().to_owned();

    let created = http
        .post(server.url(&format!("/api/v1/tenants/{tenant}/projects")))
        .bearer_auth(&token)
        .json(&json!({ "name": "Launch", "brand_voice": "Plain and friendly." }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let project: Value = created.json().await.unwrap();
    let path = format!("/api/v1/tenants/{tenant}/projects/{}", project["id"].as_str().unwrap());
    let read: Value =
        http.get(server.url(&path)).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(read, project);

    // SIGTERM stops it cleanly; a restart on the same data directory keeps
    // the data, does not bootstrap again, and still honours the old token
    // (the signing key persisted with 0600 permissions).
    let status = server.terminate();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = data.path().join("secrets/jwt-signing.key");
        assert_eq!(std::fs::metadata(key).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let server = ServerProcess::start(data.path(), &[]);
    assert!(!server.stdout.iter().any(|l| l.contains("First start")), "{:?}", server.stdout);
    let again: Value =
        http.get(server.url(&path)).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(again, project);
    assert_eq!(login(&server, EMAIL, PASSWORD).await.0, 200);
}

#[tokio::test]
async fn a_generated_password_is_printed_once_and_works() {
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("fresh");
    let server = ServerProcess::start(&data, &[]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "a new data directory is private");
    }
    let password = server
        .stdout
        .iter()
        .find_map(|l| l.trim().strip_prefix("password: "))
        .expect("the generated password is printed")
        .to_owned();
    let email = server
        .stdout
        .iter()
        .find_map(|l| l.trim().strip_prefix("e-mail: "))
        .expect("the account is printed")
        .trim()
        .to_owned();
    assert!(password.len() >= 20);
    assert_eq!(login(&server, &email, &password).await.0, 200);
}

#[tokio::test]
async fn operator_commands_work_on_the_database() {
    let data = tempfile::tempdir().unwrap();
    let migrated = server_command(&["migrate"], data.path(), None);
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    assert!(data.path().join("marketer.db").exists());

    let created = server_command(
        &["admin", "create-user", "--email", "ann@example.com", "--name", "Ann"],
        data.path(),
        None,
    );
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let out = String::from_utf8_lossy(&created.stdout);
    let generated =
        out.lines().find_map(|l| l.strip_prefix("password: ")).expect("a generated password").to_owned();

    let duplicate = server_command(
        &["admin", "create-user", "--email", "ANN@example.com", "--name", "Ann"],
        data.path(),
        None,
    );
    assert!(!duplicate.status.success());
    assert!(String::from_utf8_lossy(&duplicate.stderr).contains("already exists"));

    let reset = server_command(
        &["admin", "reset-password", "--email", "ann@example.com", "--password-stdin"],
        data.path(),
        Some("a brand new password\n"),
    );
    assert!(reset.status.success(), "{}", String::from_utf8_lossy(&reset.stderr));
    assert!(!String::from_utf8_lossy(&reset.stdout).contains("a brand new password"));

    // Ann exists, so the server does not bootstrap: tenants are the operator's.
    let server = ServerProcess::start(
        data.path(),
        &[("MARKETER_BOOTSTRAP_EMAIL", EMAIL), ("MARKETER_BOOTSTRAP_PASSWORD", PASSWORD)],
    );
    assert!(server.stdout.iter().all(|l| !l.contains("First start")), "users exist already, so no bootstrap");
    drop(server);
    let added = server_command(
        &["admin", "add-member", "--email", "ann@example.com", "--tenant", "acme", "--role", "admin"],
        data.path(),
        None,
    );
    assert!(!added.status.success());
    assert!(
        String::from_utf8_lossy(&added.stderr).contains("no tenant"),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let bob = server_command(
        &["admin", "create-user", "--email", "bob@example.com", "--name", "Bob", "--password-stdin"],
        data.path(),
        Some("bob's long password\n"),
    );
    assert!(bob.status.success());
    let tenant = server_command(
        &[
            "admin",
            "create-tenant",
            "--name",
            "Acme Corp",
            "--slug",
            "acme",
            "--owner-email",
            "bob@example.com",
        ],
        data.path(),
        None,
    );
    assert!(tenant.status.success(), "{}", String::from_utf8_lossy(&tenant.stderr));
    let added = server_command(
        &["admin", "add-member", "--email", "ann@example.com", "--tenant", "acme", "--role", "admin"],
        data.path(),
        None,
    );
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    assert_eq!(String::from_utf8_lossy(&added.stdout).trim(), "added ann@example.com to acme as admin");

    let server = ServerProcess::start(data.path(), &[]);
    assert_eq!(
        login(&server, "ann@example.com", &generated).await.0,
        401,
        "the old password no longer works"
    );
    let (status, tokens) = login(&server, "ann@example.com", "a brand new password").await;
    assert_eq!(status, 200);
    let me: Value = reqwest::Client::new()
        .get(server.url("/api/v1/me"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (me["memberships"][0]["tenant_slug"].as_str(), me["memberships"][0]["role"].as_str()),
        (Some("acme"), Some("admin"))
    );

    drop(server);
    let disabled =
        server_command(&["admin", "disable-user", "--email", "ann@example.com"], data.path(), None);
    assert!(disabled.status.success(), "{}", String::from_utf8_lossy(&disabled.stderr));
    let server = ServerProcess::start(data.path(), &[]);
    assert_eq!(login(&server, "ann@example.com", "a brand new password").await.0, 403);
    drop(server);
    assert!(
        server_command(&["admin", "enable-user", "--email", "ann@example.com"], data.path(), None)
            .status
            .success()
    );
    let server = ServerProcess::start(data.path(), &[]);
    assert_eq!(login(&server, "ann@example.com", "a brand new password").await.0, 200);

    let bad_role = server_command(
        &["admin", "add-member", "--email", "ann@example.com", "--tenant", "x", "--role", "king"],
        data.path(),
        None,
    );
    assert_eq!(bad_role.status.code(), Some(2), "clap rejects the value");
    assert!(String::from_utf8_lossy(&bad_role.stderr).contains("owner, admin, member, viewer"));
}

#[tokio::test]
async fn bad_configuration_fails_fast_with_a_clear_message() {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("marketer.toml");
    std::fs::write(&config, "listen = \"not an address\"\n").unwrap();
    let out = server_command(&["serve", "--config", config.to_str().unwrap()], data.path(), None);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("marketer.toml") && stderr.contains("listen"), "{stderr}");

    let out = server_command(&["serve", "--database-url", "mysql://db/x"], data.path(), None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported database URL"));
    let out = server_command(
        &["serve", "--database-url", "postgres://user:hunter2@127.0.0.1:1/none"],
        data.path(),
        None,
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("hunter2"), "database passwords are never printed: {stderr}");

    let version = std::process::Command::new(binary("marketer-server")).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("marketer-server {}", env!("CARGO_PKG_VERSION"))
    );
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// The same binary against PostgreSQL, in a database of its own.
#[tokio::test]
async fn runs_on_postgresql() {
    let Some(database) = TempDatabase::create().await else { return };
    let data = tempfile::tempdir().unwrap();
    {
        let env = [
            ("MARKETER_DATABASE_URL", database.url.as_str()),
            ("MARKETER_BOOTSTRAP_EMAIL", EMAIL),
            ("MARKETER_BOOTSTRAP_PASSWORD", PASSWORD),
        ];
        let server = ServerProcess::start(data.path(), &env);
        let (status, _) = login(&server, EMAIL, PASSWORD).await;
        assert_eq!(status, 200);
        let ready = reqwest::get(server.url("/readyz")).await.unwrap();
        assert_eq!(ready.status(), 200);
        assert!(server.terminate().success());
        assert!(!data.path().join("marketer.db").exists(), "nothing was written to SQLite");
    }
    database.drop_database().await;
}

#[test]
fn the_install_script_stages_a_service_layout() {
    let root = tempfile::tempdir().unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../install/install-server.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .args([
            "--binary",
            binary("marketer-server").to_str().unwrap(),
            "--destdir",
            root.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("Installed marketer-server {}", env!("CARGO_PKG_VERSION"))), "{stdout}");
    for file in [
        "usr/local/bin/marketer-server",
        "etc/systemd/system/marketer-server.service",
        "etc/marketer/marketer.toml",
    ] {
        assert!(root.path().join(file).exists(), "{file}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let env = std::fs::metadata(root.path().join("etc/marketer/environment")).unwrap();
        assert_eq!(env.permissions().mode() & 0o777, 0o600, "secrets file is private");
    }
    // The shipped example configuration is one the server accepts.
    let data = tempfile::tempdir().unwrap();
    let config = root.path().join("etc/marketer/marketer.toml");
    let text =
        std::fs::read_to_string(&config).unwrap().replace("/var/lib/marketer", data.path().to_str().unwrap());
    std::fs::write(&config, text).unwrap();
    let migrated = server_command(&["migrate", "--config", config.to_str().unwrap()], data.path(), None);
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));

    let bad =
        std::process::Command::new("bash").arg(&script).args(["--binary", "/nonexistent"]).output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no marketer-server binary"));
}

#[test]
fn the_agent_install_script_stages_a_service_layout() {
    let root = tempfile::tempdir().unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../install/install-agent.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .args([
            "--binary",
            binary("marketer-agent").to_str().unwrap(),
            "--destdir",
            root.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("Installed marketer-agent {}", env!("CARGO_PKG_VERSION")))
    );
    let unit =
        std::fs::read_to_string(root.path().join("etc/systemd/system/marketer-agent.service")).unwrap();
    assert!(unit.contains("RestartPreventExitStatus=3"), "a revoked agent is not restarted");
    assert!(root.path().join("usr/local/bin/marketer-agent").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let env = std::fs::metadata(root.path().join("etc/marketer-agent/environment")).unwrap();
        assert_eq!(env.permissions().mode() & 0o777, 0o600);
    }
}

#[tokio::test]
async fn operators_create_enrollment_tokens_at_the_command_line() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(
        data.path(),
        &[("MARKETER_BOOTSTRAP_EMAIL", EMAIL), ("MARKETER_BOOTSTRAP_PASSWORD", PASSWORD)],
    );
    let out = server_command(
        &[
            "admin",
            "create-enrollment-token",
            "--tenant",
            "default",
            "--label",
            "site=berlin",
            "--max-uses",
            "3",
            "--agent-public-url",
            &server.gateway_url,
        ],
        data.path(),
        None,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let command = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("marketer-agent enroll"))
        .expect("an install command")
        .trim();
    assert!(
        command
            .starts_with(&format!("marketer-agent enroll --server {} --token mkt_et_", server.gateway_url)),
        "{command}"
    );
    // The pin in the token is the CA the running server uses.
    let token = command.rsplit(' ').next().unwrap();
    let ca = std::fs::read(data.path().join("ca/ca.crt")).unwrap();
    let der = rustls_pem_to_der(&ca);
    let hash: String = sha256_hex(&der);
    assert!(token.ends_with(&hash), "{token} pins {hash}");

    let bad = server_command(&["admin", "create-enrollment-token", "--tenant", "nope"], data.path(), None);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no tenant"));
    let bad = server_command(
        &["admin", "create-enrollment-token", "--tenant", "default", "--label", "Bad Key=x"],
        data.path(),
        None,
    );
    assert_eq!(bad.status.code(), Some(2));
}

fn rustls_pem_to_der(pem: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let text = String::from_utf8_lossy(pem);
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body).unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
