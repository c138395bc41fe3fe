//! Edge agents end to end, over real sockets with the real binaries:
//! enrollment, the mutually authenticated tunnel, fleet monitoring,
//! renewal, revocation, restarts, proxies and refusals.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use marketer_tests::fleet::{Fleet, PASSWORD, agent_id};
use marketer_tests::ollama::FakeModel;
use marketer_tests::proxy::{ConnectProxy, Impostor, ProxyOptions};
use marketer_tests::{ServerOptions, TempDatabase, eventually};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn enroll_run_and_watch_the_agent_in_the_fleet() {
    let fleet = Fleet::start(ServerOptions::fast_heartbeats).await;
    let created = fleet.enrollment_token(json!({ "labels": { "site": "berlin" } })).await;
    let token = created["token"].as_str().unwrap();
    let command = created["install_command"].as_str().unwrap();
    assert_eq!(
        command,
        format!("marketer-agent enroll --server {} --token {token}", fleet.server().gateway_url)
    );

    // Run exactly the command an admin would paste, plus a name and a label.
    let home = tempfile::tempdir().unwrap();
    let host = fleet.host(home.path());
    let mut args: Vec<&str> = command.split_whitespace().skip(1).collect();
    args.extend(["--name", "edge-01", "--label", "gpu=none"]);
    let out = host.run_command(&args).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("enrolled as edge-01"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(home.path().join("identity.pem")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the private key is the agent's alone");
    }
    let id = agent_id(&host);

    // Enrolled, not yet connected.
    let agent = fleet.agent(&id).await;
    assert_eq!((agent["state"].as_str(), agent["name"].as_str()), (Some("offline"), Some("edge-01")));
    assert_eq!(agent["labels"], json!({ "site": "berlin", "gpu": "none" }));

    let mut run = host.spawn_run(&[]);
    let online = fleet.wait_state(&id, "online", Duration::from_secs(20)).await;
    let models: Vec<&str> =
        online["models"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(models, ["llama3.2:3b", "nomic-embed-text:latest"]);
    assert_eq!(online["ollama_reachable"], true);
    assert_eq!(online["max_concurrency"], 2);
    assert_eq!(online["agent_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(online["protocol_version"], 1);
    assert_eq!(online["os"], std::env::consts::OS);
    assert!(online["connected_since"].is_string());
    assert_eq!(online["cert_expiring"], false);

    // Heartbeats keep it fresh, and a model pulled later shows up.
    fleet.ollama.set_models(vec![FakeModel::new("llama3.2:3b"), FakeModel::new("mistral:7b")]);
    let first_beat = online["last_heartbeat_at"].as_str().unwrap().to_owned();
    eventually(Duration::from_secs(10), "a newer heartbeat with the new model", || async {
        let agent = fleet.agent(&id).await;
        let fresh = agent["last_heartbeat_at"].as_str().unwrap() > first_beat.as_str();
        let has_mistral = agent["models"].as_array().unwrap().iter().any(|m| m["name"] == "mistral:7b");
        (fresh && has_mistral).then_some(())
    })
    .await;

    let status = host.run_command(&["status"]).await;
    let report = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success());
    assert!(
        report.contains(&id) && report.contains("last connected:") && !report.contains("never"),
        "{report}"
    );

    let metrics =
        fleet.api.http.get(fleet.server().url("/metrics")).send().await.unwrap().text().await.unwrap();
    // No tenant ids as labels: the counts are per replica and per state.
    assert!(metrics.lines().any(|l| l == "marketer_agents_connected 1"), "{metrics}");
    assert!(metrics.lines().any(|l| l == "marketer_agents{state=\"online\"} 1"), "{metrics}");
    assert!(!metrics.contains(&fleet.api.tenant), "{metrics}");
    assert!(metrics.contains("marketer_agent_heartbeats_total"));

    // A clean stop is an immediate, graceful offline.
    assert!(run.terminate().success());
    let offline = fleet.wait_state(&id, "offline", Duration::from_secs(5)).await;
    assert!(offline["connected_since"].is_null());
    let kinds = fleet.event_kinds(&id).await;
    assert_eq!(kinds[..3], ["enrolled", "connected", "disconnected"], "{kinds:?}");
    let events = fleet.events(&id).await;
    assert_eq!(events[0]["details"]["graceful"], true, "{events:?}");
}

#[tokio::test]
async fn enrollment_refusals_say_what_to_do() {
    let fleet = Fleet::start(|o| o).await;
    let gateway = fleet.server().gateway_url.clone();
    let enroll = async |home: &std::path::Path, server: &str, token: &str| {
        let out = fleet.host(home).run_command(&["enroll", "--server", server, "--token", token]).await;
        assert!(!out.status.success(), "enrollment should fail");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        err
    };

    // Single use.
    let created = fleet.enrollment_token(json!({})).await;
    let token = created["token"].as_str().unwrap().to_owned();
    let first = tempfile::tempdir().unwrap();
    fleet.host(first.path()).enroll(&gateway, &token, &[]).await;
    let second = tempfile::tempdir().unwrap();
    assert!(enroll(second.path(), &gateway, &token).await.contains("already been used"));
    assert!(!second.path().join("identity.pem").exists(), "nothing is saved on failure");

    // Enrolling an enrolled host needs --force.
    let again = fleet.enrollment_token(json!({})).await;
    let err = enroll(first.path(), &gateway, again["token"].as_str().unwrap()).await;
    assert!(err.contains("--force"), "{err}");

    // Several uses when asked for.
    let shared = fleet.enrollment_token(json!({ "max_uses": 2 })).await;
    let shared = shared["token"].as_str().unwrap();
    let (a, b, c) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    fleet.host(a.path()).enroll(&gateway, shared, &[]).await;
    fleet.host(b.path()).enroll(&gateway, shared, &[]).await;
    assert!(enroll(c.path(), &gateway, shared).await.contains("already been used"));

    // Revoked.
    let revoked = fleet.enrollment_token(json!({})).await;
    let (status, _) = fleet
        .call(
            reqwest::Method::DELETE,
            &format!("/enrollment-tokens/{}", revoked["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let home = tempfile::tempdir().unwrap();
    assert!(enroll(home.path(), &gateway, revoked["token"].as_str().unwrap()).await.contains("revoked"));

    // Expired: age the token in the server's database.
    let expired = fleet.enrollment_token(json!({})).await;
    let db = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        fleet.options.data_dir.join("marketer.db").display()
    ))
    .await
    .unwrap();
    sqlx::query("UPDATE enrollment_tokens SET expires_at = '2000-01-01T00:00:00.000000Z' WHERE id = ?")
        .bind(uuid::Uuid::parse_str(expired["id"].as_str().unwrap()).unwrap())
        .execute(&db)
        .await
        .unwrap();
    assert!(enroll(home.path(), &gateway, expired["token"].as_str().unwrap()).await.contains("expired"));

    // A token pinning another CA: the agent does not trust the server.
    let good = fleet.enrollment_token(json!({})).await;
    let good = good["token"].as_str().unwrap();
    let (secret, _) = good.rsplit_once('.').unwrap();
    let err = enroll(home.path(), &gateway, &format!("{secret}.{}", "0".repeat(64))).await;
    assert!(err.contains("CA hash mismatch"), "{err}");
    let err = enroll(home.path(), &gateway, "not-a-token").await;
    assert!(err.contains("not a Marketer enrollment token"), "{err}");
    let err = enroll(home.path(), &format!("https://127.0.0.1:{}", marketer_tests::free_port()), good).await;
    assert!(err.contains("refused the connection"), "{err}");
    let err = enroll(home.path(), "http://localhost:8443", good).await;
    assert!(err.contains("https://"), "{err}");
    // After all those failures the token still works.
    fleet.host(home.path()).enroll(&gateway, good, &[]).await;

    let (_, tokens) = fleet.call(reqwest::Method::GET, "/enrollment-tokens", None).await;
    let listed = tokens.to_string();
    assert!(!listed.contains(good.rsplit_once('.').unwrap().0), "secrets are never listed");
    let statuses: Vec<&str> =
        tokens["items"].as_array().unwrap().iter().map(|t| t["status"].as_str().unwrap()).collect();
    assert!(
        statuses.contains(&"used_up") && statuses.contains(&"revoked") && statuses.contains(&"expired"),
        "{statuses:?}"
    );
}

type RawSocket = tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// The next close frame, skipping pings.
async fn next_close(socket: &mut RawSocket) -> (u16, String) {
    loop {
        match socket.next().await {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Close(Some(frame)))) => {
                return (u16::from(frame.code), frame.reason.to_string());
            }
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

/// A raw TLS + WebSocket client, to do what the real agent never does.
async fn raw_connect(
    gateway: &str,
    identity: Option<(&str, &str)>,
    trust_pem: &str,
) -> Result<RawSocket, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(trust_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        Some((cert_pem, key_pem)) => {
            let certs: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(cert_pem.as_bytes()).map(Result::unwrap).collect();
            builder
                .with_client_auth_cert(certs, PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap())
                .unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    let port: u16 = gateway.rsplit_once(':').unwrap().1.parse().unwrap();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| format!("tls: {e}"))?;
    match tokio_tungstenite::client_async(format!("wss://localhost:{port}/agent/v1/connect"), tls).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(format!(
            "http {}: {}",
            response.status(),
            String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
        )),
        // rustls reports a refused client certificate on the first read.
        Err(e) => Err(format!("tls: {e}")),
    }
}

fn split_identity(pem: &str) -> (String, String) {
    let cert_start = pem.find("-----BEGIN CERTIFICATE-----").unwrap();
    (pem[cert_start..].to_owned(), pem[..cert_start].to_owned())
}

/// A client certificate for a fresh key, signed by the given CA files, valid
/// in the given window.
fn forge_certificate(
    ca_cert: &str,
    ca_key: &str,
    not_before: time::OffsetDateTime,
    not_after: time::OffsetDateTime,
) -> (String, String) {
    let issuer = rcgen::Issuer::from_ca_cert_pem(ca_cert, rcgen::KeyPair::from_pem(ca_key).unwrap()).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.not_before = not_before;
    params.not_after = not_after;
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

#[tokio::test]
async fn the_gateway_refuses_what_it_should() {
    let fleet = Fleet::start(|o| o).await;
    let gateway = fleet.server().gateway_url.clone();
    let ca_cert = std::fs::read_to_string(fleet.options.data_dir.join("ca/ca.crt")).unwrap();
    let ca_key = std::fs::read_to_string(fleet.options.data_dir.join("ca/ca.key")).unwrap();
    let now = time::OffsetDateTime::now_utc();

    // Refusals of the framework itself are in the JSON error shape: a body
    // over the limit, a body that is not JSON.
    // A new connection for each request: the server closes one whose body
    // it refused unread.
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_cert.as_bytes()).unwrap())
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let enroll = format!("{gateway}/agent/v1/enroll");
    let too_big = http
        .post(&enroll)
        .header("content-type", "application/json")
        // Just over the gateway's 64 KiB limit: small enough that the whole
        // body is written before the server answers and closes.
        .body(format!("{{\"token\":\"{}\"}}", "x".repeat(66 * 1024)))
        .send()
        .await
        .unwrap();
    assert_eq!(too_big.status(), 413);
    let body: serde_json::Value = too_big.json().await.expect("a JSON error body");
    assert_eq!(body["error"]["code"], "payload_too_large", "{body}");
    let not_json =
        http.post(&enroll).header("content-type", "text/plain").body("hello").send().await.unwrap();
    assert!(not_json.status().is_client_error());
    let body: serde_json::Value = not_json.json().await.expect("a JSON error body");
    assert!(body["error"]["message"].is_string(), "{body}");

    // Failed enrollments slow down the token tried, not every enrollment
    // from the address: after many wrong tokens, the same wrong token is
    // throttled, and a valid enrollment from here still goes through (below).
    let attempt = |token: String| {
        let (http, enroll) = (http.clone(), enroll.clone());
        async move {
            let body = json!({
                "token": token, "csr": "x", "agent_version": "0.1.0",
                "host": { "hostname": "h", "os": "linux", "arch": "x86_64" }, "labels": {},
            });
            http.post(&enroll).json(&body).send().await.unwrap().status().as_u16()
        }
    };
    for i in 0..8 {
        let status = attempt(format!("mkt_et_{i:0>40}")).await;
        assert!(status != 429 && (400..500).contains(&status), "distinct tokens are not throttled: {status}");
    }
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(attempt("mkt_et_guessing_the_same_one_over_and_over".into()).await);
    }
    assert_eq!(statuses.last(), Some(&429), "one token tried over and over is throttled: {statuses:?}");

    // No certificate: the TLS handshake succeeds (enrollment needs that) but
    // the tunnel is refused with a reason.
    let err = raw_connect(&gateway, None, &ca_cert).await.unwrap_err();
    assert!(err.contains("401") && err.contains("client_certificate_required"), "{err}");

    // A certificate from another CA: refused during TLS.
    let mut other = rcgen::CertificateParams::default();
    other.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let other_key = rcgen::KeyPair::generate().unwrap();
    let other_ca = other.self_signed(&other_key).unwrap();
    let (cert, key) = forge_certificate(
        &other_ca.pem(),
        &other_key.serialize_pem(),
        now - time::Duration::hours(1),
        now + time::Duration::hours(1),
    );
    let err = raw_connect(&gateway, Some((&cert, &key)), &ca_cert).await.unwrap_err();
    assert!(err.starts_with("tls"), "{err}");

    // Signed by the right CA but expired: refused during TLS.
    let (cert, key) =
        forge_certificate(&ca_cert, &ca_key, now - time::Duration::days(2), now - time::Duration::days(1));
    let err = raw_connect(&gateway, Some((&cert, &key)), &ca_cert).await.unwrap_err();
    assert!(err.starts_with("tls"), "{err}");

    // Signed by the right CA, valid, but never issued to an agent.
    let (cert, key) =
        forge_certificate(&ca_cert, &ca_key, now - time::Duration::hours(1), now + time::Duration::hours(1));
    let err = raw_connect(&gateway, Some((&cert, &key)), &ca_cert).await.unwrap_err();
    assert!(err.contains("401") && err.contains("client_certificate_unknown"), "{err}");

    // An enrolled agent's own identity works; once revoked it is refused.
    let home = tempfile::tempdir().unwrap();
    let host = fleet.host(home.path());
    let id = fleet.enroll(&host, &[]).await;
    let (cert, key) = split_identity(&std::fs::read_to_string(home.path().join("identity.pem")).unwrap());
    let socket = raw_connect(&gateway, Some((&cert, &key)), &ca_cert).await;
    assert!(socket.is_ok(), "{:?}", socket.err());
    drop(socket);
    let (status, _) = fleet.call(reqwest::Method::POST, &format!("/agents/{id}/revoke"), None).await;
    assert_eq!(status, 200);
    let err = raw_connect(&gateway, Some((&cert, &key)), &ca_cert).await.unwrap_err();
    assert!(err.contains("403") && err.contains("agent_revoked"), "{err}");

    let metrics =
        fleet.api.http.get(fleet.server().url("/metrics")).send().await.unwrap().text().await.unwrap();
    for reason in ["no_certificate", "unknown_certificate", "revoked"] {
        assert!(
            metrics.contains(&format!("marketer_agent_handshake_failures_total{{reason=\"{reason}\"}}")),
            "{reason}: {metrics}"
        );
    }

    // An agent whose own certificate has expired says so and stops.
    let stale = tempfile::tempdir().unwrap();
    let stale_host = fleet.host(stale.path());
    fleet.enroll(&stale_host, &[]).await;
    let (expired_cert, expired_key) =
        forge_certificate(&ca_cert, &ca_key, now - time::Duration::days(2), now - time::Duration::days(1));
    std::fs::write(stale.path().join("identity.pem"), format!("{expired_key}\n{expired_cert}")).unwrap();
    let mut run = stale_host.spawn_run(&[]);
    let status = run.wait(Duration::from_secs(15)).expect("the agent gives up on an expired certificate");
    assert!(!status.success());
    assert!(
        run.logs.text().contains("expired") && run.logs.text().contains("enroll --force"),
        "{}",
        run.logs.text()
    );
}

#[tokio::test]
async fn the_tunnel_survives_server_restarts_and_notices_silence() {
    // Heartbeats every second, offline after 2 x 1 s + 5 s = 7 s: room for a
    // server restart and a reconnect inside the window.
    let mut fleet = Fleet::start(|o| {
        o.arg("--agent-heartbeat-ms").arg("1000").arg("--agent-offline-grace-ms").arg("5000")
    })
    .await;
    let home = tempfile::tempdir().unwrap();
    let host = fleet.host(home.path());
    let id = fleet.enroll(&host, &[]).await;
    let mut run = host.spawn_run(&[]);
    fleet.wait_state(&id, "online", Duration::from_secs(20)).await;

    // Kill the control plane and bring it back on the same addresses: the
    // agent reconnects on its own.
    fleet.restart_server();
    fleet.wait_connections(&id, 2).await;
    fleet.wait_state(&id, "online", Duration::from_secs(30)).await;
    assert!(run.wait(Duration::ZERO).is_none(), "the agent kept running through the outage");

    // Once the connection has been healthy for three heartbeats the backoff
    // is back at its base, so after the next restart the agent is back well
    // inside the window: the blip never shows as offline.
    tokio::time::sleep(Duration::from_secs(4)).await;
    fleet.restart_server();
    fleet.wait_connections(&id, 3).await;
    assert_eq!(fleet.agent(&id).await["state"], "online");
    let kinds = fleet.event_kinds(&id).await;
    assert!(!kinds.contains(&"offline".to_owned()), "a blip within the window is not an outage: {kinds:?}");

    // SIGKILL the agent: no goodbye, so the server must notice the silence.
    run.kill();
    let offline = fleet.wait_state(&id, "offline", Duration::from_secs(20)).await;
    let offline_event = eventually(Duration::from_secs(5), "the offline event", || async {
        fleet.events(&id).await.into_iter().find(|e| e["kind"] == "offline")
    })
    .await;
    let last_seen = time::OffsetDateTime::parse(
        offline["last_heartbeat_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let noticed = time::OffsetDateTime::parse(
        offline_event["occurred_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let delay = (noticed - last_seen).as_seconds_f64();
    // Never before 2 x interval + grace = 7 s; then within a reaper pass
    // (0.5 s), with slack for a loaded CI machine.
    assert!((7.0..=9.5).contains(&delay), "offline noticed {delay:.2} s after the last heartbeat");
}

#[tokio::test]
async fn certificates_renew_in_band_and_are_used_after_a_reconnect() {
    let mut fleet =
        Fleet::start(|o| o.fast_heartbeats().arg("--agent-cert-lifetime-seconds").arg("12")).await;
    let home = tempfile::tempdir().unwrap();
    let host = fleet.host(home.path());
    let id = fleet.enroll(&host, &[]).await;
    let first_identity = std::fs::read_to_string(home.path().join("identity.pem")).unwrap();
    let first_expiry = fleet.agent(&id).await["cert_not_after"].as_str().unwrap().to_owned();
    let mut run = host.spawn_run(&[]);
    fleet.wait_state(&id, "online", Duration::from_secs(20)).await;

    eventually(Duration::from_secs(20), "a renewal", || async {
        fleet.event_kinds(&id).await.contains(&"renewed".to_owned()).then_some(())
    })
    .await;
    let renewed_identity = eventually(Duration::from_secs(5), "the new identity on disk", || async {
        let now = std::fs::read_to_string(home.path().join("identity.pem")).unwrap();
        (now != first_identity).then_some(now)
    })
    .await;
    let key_of = |pem: &str| pem[..pem.find("-----BEGIN CERTIFICATE-----").unwrap()].to_owned();
    assert_ne!(key_of(&first_identity), key_of(&renewed_identity), "a new key, not just a new certificate");
    let agent = fleet.agent(&id).await;
    assert!(agent["cert_not_after"].as_str().unwrap() > first_expiry.as_str());

    // Once the first certificate has expired, force a reconnect: only the
    // renewed certificate can get the agent back in.
    let parse =
        |t: &str| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).unwrap();
    let expired_at = parse(&first_expiry);
    let wait = Duration::try_from(expired_at - time::OffsetDateTime::now_utc()).unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_secs(1)).await;
    fleet.restart_server();
    let second = eventually(Duration::from_secs(30), "a reconnect", || async {
        let events = fleet.events(&id).await;
        let connects: Vec<Value> = events.into_iter().filter(|e| e["kind"] == "connected").collect();
        (connects.len() >= 2).then(|| connects[0].clone())
    })
    .await;
    assert!(
        parse(second["occurred_at"].as_str().unwrap()) > expired_at,
        "reconnected after the first certificate expired"
    );
    fleet.wait_state(&id, "online", Duration::from_secs(10)).await;
    assert!(run.wait(Duration::ZERO).is_none());
    let doctor = host.run_command(&["doctor"]).await;
    let report = String::from_utf8_lossy(&doctor.stdout);
    assert!(report.contains("ok    certificate"), "{report}");
}

#[tokio::test]
async fn revocation_closes_the_tunnel_at_once_and_for_good() {
    let fleet = Fleet::start(ServerOptions::fast_heartbeats).await;
    let home = tempfile::tempdir().unwrap();
    let host = fleet.host(home.path());
    let id = fleet.enroll(&host, &[]).await;
    let mut run = host.spawn_run(&[]);
    fleet.wait_state(&id, "online", Duration::from_secs(20)).await;

    let started = Instant::now();
    let (status, revoked) = fleet.call(reqwest::Method::POST, &format!("/agents/{id}/revoke"), None).await;
    assert_eq!((status, revoked["state"].as_str()), (200, Some("revoked")));
    let exit = run.wait(Duration::from_secs(10)).expect("the agent stops");
    let elapsed = started.elapsed();
    assert_eq!(exit.code(), Some(3), "exit status 3 means revoked: do not restart");
    assert!(elapsed < Duration::from_secs(3), "the agent stopped {elapsed:?} after the revocation");
    assert!(run.logs.text().contains("revoked"), "{}", run.logs.text());
    let events = fleet.events(&id).await;
    let closed = events.iter().find(|e| e["kind"] == "disconnected").expect("a disconnect");
    let revoked_at =
        events.iter().find(|e| e["kind"] == "revoked").unwrap()["occurred_at"].as_str().unwrap().to_owned();
    let parse =
        |t: &str| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).unwrap();
    let gap = parse(closed["occurred_at"].as_str().unwrap()) - parse(&revoked_at);
    assert!(gap < time::Duration::seconds(1), "the connection closed {gap} after the revocation");

    // Every later attempt is refused, and the agent explains why.
    let mut again = host.spawn_run(&[]);
    let exit = again.wait(Duration::from_secs(15)).expect("the agent stops at once");
    assert_eq!(exit.code(), Some(3));
    assert!(again.logs.text().contains("revoked"));
    assert_eq!(fleet.agent(&id).await["state"], "revoked");
}

#[tokio::test]
async fn agents_work_through_an_http_connect_proxy() {
    let fleet = Fleet::start(ServerOptions::fast_heartbeats).await;
    let proxy =
        ConnectProxy::start(ProxyOptions { credentials: Some("alice:s3cret".into()), divert_to: None }).await;

    // Wrong credentials: the proxy's 407 is explained.
    let home = tempfile::tempdir().unwrap();
    let token = fleet.enrollment_token(json!({})).await;
    let token = token["token"].as_str().unwrap();
    let wrong = fleet.host(home.path()).env("HTTPS_PROXY", &proxy.url(Some("alice:wrong")));
    let out = wrong.run_command(&["enroll", "--server", &fleet.server().gateway_url, "--token", token]).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("requires authentication"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("wrong"), "proxy credentials are never printed");

    let host = fleet.host(home.path()).env("HTTPS_PROXY", &proxy.url(Some("alice:s3cret")));
    host.enroll(&fleet.server().gateway_url, token, &[]).await;
    let id = agent_id(&host);
    let _run = host.spawn_run(&[]);
    fleet.wait_state(&id, "online", Duration::from_secs(20)).await;
    assert!(proxy.tunnels() >= 2, "enrollment and the tunnel both went through the proxy");
    let doctor = host.run_command(&["doctor"]).await;
    let report = String::from_utf8_lossy(&doctor.stdout);
    assert!(doctor.status.success(), "{report}");
    assert!(report.contains("connecting through http://***@127.0.0.1"), "{report}");

    // NO_PROXY exempts the gateway.
    let tunnels = proxy.tunnels();
    let direct = tempfile::tempdir().unwrap();
    let bypass = fleet.host(direct.path()).env("HTTPS_PROXY", &proxy.url(None)).env("NO_PROXY", "localhost");
    fleet.enroll(&bypass, &[]).await;
    assert_eq!(proxy.tunnels(), tunnels);

    // A TLS-inspecting proxy that swaps the certificate is named as the cause.
    let impostor = Impostor::start().await;
    let inspecting =
        ConnectProxy::start(ProxyOptions { credentials: None, divert_to: Some(impostor.addr) }).await;
    let victim = tempfile::tempdir().unwrap();
    let token = fleet.enrollment_token(json!({})).await;
    let out = fleet
        .host(victim.path())
        .env("HTTPS_PROXY", &inspecting.url(None))
        .run_command(&[
            "enroll",
            "--server",
            &fleet.server().gateway_url,
            "--token",
            token["token"].as_str().unwrap(),
        ])
        .await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("inspects TLS") && err.contains("exempted"), "{err}");
}

#[tokio::test]
async fn agents_and_tokens_belong_to_one_tenant() {
    let fleet = Fleet::start(ServerOptions::fast_heartbeats).await;
    let home = tempfile::tempdir().unwrap();
    let host = fleet.host(home.path());
    let id = fleet.enroll(&host, &[]).await;
    let token_a = fleet.enrollment_token(json!({})).await;

    // Tenant B with an admin who belongs to B only.
    let api = &fleet.api;
    let (status, beta) =
        api.call(reqwest::Method::POST, "/api/v1/tenants", Some(json!({ "name": "Beta" }))).await;
    assert_eq!(status, 201);
    let beta_id = beta["id"].as_str().unwrap();
    let b = fleet.add_member(beta_id, "b-admin@example.com", "B Admin", "admin", PASSWORD).await;
    assert_eq!(b.tenant, beta_id);

    let a = &api.tenant;
    let token_a_id = token_a["id"].as_str().unwrap();
    for (method, path) in [
        (reqwest::Method::GET, format!("/api/v1/tenants/{a}/agents")),
        (reqwest::Method::GET, format!("/api/v1/tenants/{a}/agents/{id}")),
        (reqwest::Method::GET, format!("/api/v1/tenants/{a}/enrollment-tokens")),
        // A's agent and token under B's path.
        (reqwest::Method::GET, format!("/api/v1/tenants/{beta_id}/agents/{id}")),
        (reqwest::Method::GET, format!("/api/v1/tenants/{beta_id}/agents/{id}/events")),
        (reqwest::Method::POST, format!("/api/v1/tenants/{beta_id}/agents/{id}/revoke")),
        (reqwest::Method::DELETE, format!("/api/v1/tenants/{beta_id}/enrollment-tokens/{token_a_id}")),
    ] {
        assert_eq!(b.call(method.clone(), &path, None).await.0, 404, "{method} {path}");
    }
    let (_, beta_agents) = b.call(reqwest::Method::GET, &b.tenant_path("/agents"), None).await;
    assert_eq!(beta_agents["items"], json!([]));

    // B's token enrolls into B, whatever the agent asks for.
    let (_, token_b) =
        b.call(reqwest::Method::POST, &b.tenant_path("/enrollment-tokens"), Some(json!({}))).await;
    let other = tempfile::tempdir().unwrap();
    let other_host = fleet.host(other.path());
    other_host.enroll(&fleet.server().gateway_url, token_b["token"].as_str().unwrap(), &[]).await;
    let b_agent = agent_id(&other_host);
    assert_eq!(fleet.call(reqwest::Method::GET, &format!("/agents/{b_agent}"), None).await.0, 404);
    assert_eq!(fleet.agent(&id).await["state"], "offline");
    let ours: Vec<String> =
        fleet.agents().await.iter().map(|a| a["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ours, std::slice::from_ref(&id), "A's fleet lists A's agent only");

    // A's owner renames and relabels A's agent.
    assert_eq!(
        fleet
            .call(
                reqwest::Method::PATCH,
                &format!("/agents/{id}"),
                Some(json!({ "name": "renamed", "labels": { "tier": "gold" } }))
            )
            .await
            .0,
        200
    );
    let renamed = fleet.agent(&id).await;
    assert_eq!(
        (renamed["name"].as_str(), renamed["labels"].clone()),
        (Some("renamed"), json!({ "tier": "gold" }))
    );
}

#[tokio::test]
async fn protocol_violations_close_only_the_offender() {
    let fleet = Fleet::start(ServerOptions::fast_heartbeats).await;
    let gateway = fleet.server().gateway_url.clone();
    let ca_cert = std::fs::read_to_string(fleet.options.data_dir.join("ca/ca.crt")).unwrap();

    // A well-behaved agent runs alongside throughout.
    let good_home = tempfile::tempdir().unwrap();
    let good = fleet.host(good_home.path());
    let good_id = fleet.enroll(&good, &[]).await;
    let mut good_run = good.spawn_run(&[]);
    fleet.wait_state(&good_id, "online", Duration::from_secs(20)).await;

    // A second enrolled identity, driven by hand.
    let bad_home = tempfile::tempdir().unwrap();
    let bad = fleet.host(bad_home.path());
    let bad_id = fleet.enroll(&bad, &[]).await;
    let (cert, key) = split_identity(&std::fs::read_to_string(bad_home.path().join("identity.pem")).unwrap());

    let hello = |version: u32| {
        json!({ "type": "hello", "protocol_version": version, "agent_version": "x", "labels": {},
                "host": { "hostname": "h", "os": "linux", "arch": "x86_64" }, "max_concurrency": 1,
                "ollama": { "reachable": false, "models": [] }, "running_jobs": [] })
        .to_string()
    };

    let mut socket = raw_connect(&gateway, Some((&cert, &key)), &ca_cert).await.unwrap();
    socket.send(Message::Text(hello(99).into())).await.unwrap();
    let (code, reason) = next_close(&mut socket).await;
    assert_eq!(code, marketer_protocol::close::INCOMPATIBLE_VERSION);
    assert!(reason.contains("99") && reason.contains('1'), "{reason}");

    let mut socket = raw_connect(&gateway, Some((&cert, &key)), &ca_cert).await.unwrap();
    socket.send(Message::Text("{not json".into())).await.unwrap();
    let (code, reason) = next_close(&mut socket).await;
    assert_eq!(code, marketer_protocol::close::PROTOCOL_VIOLATION);
    assert!(reason.contains("malformed"), "{reason}");

    let mut socket = raw_connect(&gateway, Some((&cert, &key)), &ca_cert).await.unwrap();
    socket.send(Message::Text(hello(1).into())).await.unwrap();
    let welcome = socket.next().await.unwrap().unwrap();
    assert!(welcome.to_text().unwrap().contains("\"type\":\"welcome\""));
    socket.send(Message::Binary(vec![1, 2, 3].into())).await.unwrap();
    let (code, _) = next_close(&mut socket).await;
    assert_eq!(code, marketer_protocol::close::PROTOCOL_VIOLATION);

    // A flood of messages (tens of thousands a second): disconnected. Every
    // frame counts, pings too; pings cost the server nothing else, so the
    // flood outruns the budget however busy the machine is (a flood of
    // events that each wait for the database is slowed by TCP backpressure
    // instead, which protects the server as well).
    let mut socket = raw_connect(&gateway, Some((&cert, &key)), &ca_cert).await.unwrap();
    socket.send(Message::Text(hello(1).into())).await.unwrap();
    let _ = socket.next().await;
    let flood = async {
        for _ in 0..20_000 {
            if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(20), flood).await;
    // Answers to the bogus events may come first; then the close.
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return Some((u16::from(frame.code), frame.reason.to_string()));
                }
                Some(Ok(_)) => {}
                _ => return None,
            }
        }
    })
    .await
    .expect("the flooding connection is closed");
    match closed {
        Some((code, reason)) => {
            assert_eq!(code, marketer_protocol::close::PROTOCOL_VIOLATION, "{reason}");
            assert!(reason.contains("messages a second"), "{reason}");
        }
        // The server closed while unread pings were still arriving: its
        // kernel answered with a reset, which can overtake the close frame.
        // The reason is then in the agent's history.
        None => {
            eventually(
                Duration::from_secs(10),
                "the flood's disconnection in the agent's history",
                || async {
                    let events = fleet.events(&bad_id).await;
                    events
                        .iter()
                        .any(|e| e["details"].to_string().contains("messages a second"))
                        .then_some(())
                },
            )
            .await;
        }
    }

    // Oversized: 5 MiB against a 4 MiB limit.
    let mut socket = raw_connect(&gateway, Some((&cert, &key)), &ca_cert).await.unwrap();
    socket.send(Message::Text(hello(1).into())).await.unwrap();
    let _ = socket.next().await;
    let huge = format!("{{\"type\":\"heartbeat\",\"pad\":\"{}\"}}", "x".repeat(5 * 1024 * 1024));
    let _ = socket.send(Message::Text(huge.into())).await;
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "an oversized message ends that connection");

    // The well-behaved agent never noticed.
    assert_eq!(fleet.agent(&good_id).await["state"], "online");
    assert!(good_run.wait(Duration::ZERO).is_none());
    let kinds = fleet.event_kinds(&good_id).await;
    assert_eq!(kinds.iter().filter(|k| *k == "connected").count(), 1, "{kinds:?}");
}

#[tokio::test]
async fn doctor_reports_each_check() {
    let fleet = Fleet::start(|o| o).await;
    let home = tempfile::tempdir().unwrap();
    let host = fleet.host(home.path());

    let out = host.run_command(&["doctor"]).await;
    assert!(!out.status.success());
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("FAIL  enrollment"), "{report}");

    fleet.enroll(&host, &[]).await;
    let out = host.run_command(&["doctor"]).await;
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    for check in [
        "config directory",
        "enrollment",
        "key permissions",
        "certificate",
        "proxy",
        "dns",
        "tcp",
        "tls",
        "clock",
        "ollama",
    ] {
        assert!(
            report.lines().any(|l| l.starts_with("ok") && l.contains(check)),
            "{check} missing or failing:\n{report}"
        );
    }
    assert!(report.contains("llama3.2:3b"));

    // Ollama down: that line fails, and so does the command.
    fleet.ollama.fail(Some(marketer_tests::ollama::Failure::Status(500)));
    let out = host.run_command(&["doctor"]).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).lines().any(|l| l.starts_with("FAIL") && l.contains("ollama"))
    );
}

/// The same fleet on PostgreSQL, in a database of its own.
#[tokio::test]
async fn agents_on_postgresql() {
    let Some(database) = TempDatabase::create().await else { return };
    {
        let fleet = Fleet::start(|o| o.fast_heartbeats().env("MARKETER_DATABASE_URL", &database.url)).await;
        let home = tempfile::tempdir().unwrap();
        let host = fleet.host(home.path());
        let id = fleet.enroll(&host, &[]).await;
        let mut run = host.spawn_run(&[]);
        let online = fleet.wait_state(&id, "online", Duration::from_secs(20)).await;
        assert_eq!(online["models"].as_array().unwrap().len(), 2);
        let (status, _) = fleet.call(reqwest::Method::POST, &format!("/agents/{id}/revoke"), None).await;
        assert_eq!(status, 200);
        assert_eq!(run.wait(Duration::from_secs(10)).and_then(|s| s.code()), Some(3));
        let kinds = fleet.event_kinds(&id).await;
        assert_eq!(kinds[..2], ["enrolled", "connected"], "{kinds:?}");
        assert!(kinds.contains(&"revoked".to_owned()));
        assert!(!fleet.options.data_dir.join("marketer.db").exists(), "nothing went to SQLite");
    }
    database.drop_database().await;
}
