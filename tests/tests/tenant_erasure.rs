//! Erasing a whole organisation across the control plane and its edge
//! agents, with the real binaries on SQLite and PostgreSQL: a canary
//! string in the organisation's name, a project, documents indexed on two
//! agents' hosts and a stored file; one agent online, one offline. After
//! the erasure the online agent deletes what it holds, confirms and stops;
//! the record shows the offline one pending until it comes back and does
//! the same. Then the canary is found nowhere: not in the database, the
//! stored files, the server's logs, or either agent's directory; the audit
//! trail is still there, under pseudonyms.

use std::path::Path;
use std::time::Duration;

use marketer_tests::fleet::{Fleet, PASSWORD, job_timings};
use marketer_tests::ollama::FakeModel;
use marketer_tests::{AgentHost, AgentProcess, TempDatabase, eventually, files_under};
use reqwest::Method;
use serde_json::{Value, json};

const CANARY: &str = "WOMBAT-QUILL-93KD";
const EMBEDDER: &str = "nomic-embed-text:latest";

async fn agent(fleet: &Fleet, home: &Path) -> (AgentHost, String, AgentProcess) {
    let host = fleet.host(home);
    let id = fleet.enroll(&host, &[]).await;
    let process = host.spawn_run(&[]);
    fleet.wait_state(&id, "online", Duration::from_secs(30)).await;
    (host, id, process)
}

/// Indexes a document naming the canary on the host, and waits until the
/// control plane lists it.
async fn ingest(fleet: &Fleet, host: &AgentHost, project: &str, name: &str) {
    let docs = tempfile::tempdir().unwrap();
    std::fs::write(docs.path().join(name), format!("# Notes\n\nThe launch code name is {CANARY}.\n"))
        .unwrap();
    let out = host.run_command(&["ingest", docs.path().to_str().unwrap(), "--project", project]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    eventually(Duration::from_secs(30), &format!("{name} listed"), || async {
        let (_, page) = fleet.call(Method::GET, &format!("/projects/{project}/documents"), None).await;
        page["items"].as_array().unwrap().iter().any(|d| d["name"] == name).then_some(())
    })
    .await;
}

async fn erasure(fleet: &Fleet, id: &str) -> Value {
    let (status, record) = fleet.api.call(Method::GET, &format!("/api/v1/tenant-erasures/{id}"), None).await;
    assert_eq!(status, 200, "{record}");
    record
}

fn confirmed(record: &Value, agent: &str) -> bool {
    record["agents"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["agent_id"] == agent && !a["confirmed_at"].is_null())
}

async fn erase_across_edge(database: Option<&TempDatabase>) {
    let mut fleet = Fleet::start(|o| {
        let o = job_timings(o);
        match database {
            Some(db) => o.env("MARKETER_DATABASE_URL", &db.url),
            None => o,
        }
    })
    .await;
    let mut embedder = FakeModel::new(EMBEDDER);
    embedder.embedding_length = 256;
    fleet.ollama.set_models(vec![FakeModel::new("llama3.2:3b"), embedder]);
    let tenant = fleet.api.tenant.clone();

    // The canary everywhere: the organisation's name, a project, documents
    // on both agents' hosts; and a stored file.
    let (status, renamed) =
        fleet.call(Method::PATCH, "", Some(json!({ "name": format!("Acme {CANARY}") }))).await;
    assert_eq!(status, 200, "{renamed}");
    let slug = renamed["slug"].as_str().unwrap().to_owned();
    let (status, project) = fleet
        .call(
            Method::POST,
            "/projects",
            Some(json!({ "name": format!("Launch {CANARY}"), "llm_policy": "edge_only" })),
        )
        .await;
    assert_eq!(status, 201, "{project}");
    let project = project["id"].as_str().unwrap().to_owned();
    let (home_a, home_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (host_a, agent_a, mut process_a) = agent(&fleet, home_a.path()).await;
    let (host_b, agent_b, mut process_b) = agent(&fleet, home_b.path()).await;
    ingest(&fleet, &host_a, &project, "launch-a.md").await;
    ingest(&fleet, &host_b, &project, "launch-b.md").await;
    fleet.upload_logo().await;
    let files_dir = fleet.data.path().join("files");
    assert!(files_dir.join(format!("tenants/{tenant}")).exists(), "the logo is stored");
    // Agent C was revoked: it cannot be told, and does not hold the
    // erasure open.
    let home_c = tempfile::tempdir().unwrap();
    let agent_c = fleet.enroll(&fleet.host(home_c.path()), &[]).await;
    let (status, revoked) = fleet.call(Method::POST, &format!("/agents/{agent_c}/revoke"), None).await;
    assert!(status == 200 || status == 204, "{status} {revoked}");
    // Agent B goes offline before the erasure.
    assert!(process_b.terminate().success());
    fleet.wait_state(&agent_b, "offline", Duration::from_secs(30)).await;
    // The agents' hosts do hold the canary: the test could fail.
    for home in [home_a.path(), home_b.path()] {
        assert!(!leaks(&directory(home)).is_empty(), "the canary is indexed under {}", home.display());
    }

    // Refused to an admin (owners only), and without the organisation's
    // short name or the password.
    let erase = tenant_erase_path(&tenant);
    let admin =
        fleet.add_member(&tenant, "admin@example.com", "An Admin", "admin", "a long admin password").await;
    let (status, body) = admin
        .call(Method::POST, &erase, Some(json!({ "password": "a long admin password", "confirm": slug })))
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = fleet
        .api
        .call(Method::POST, &erase, Some(json!({ "password": PASSWORD, "confirm": "not-it" })))
        .await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (422, Some("confirm")), "{body}");
    let (status, body) = fleet
        .api
        .call(Method::POST, &erase, Some(json!({ "password": "not the password", "confirm": slug })))
        .await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (422, Some("password")), "{body}");

    // Erased: the control plane at once, the agents pending.
    let (status, record) =
        fleet.api.call(Method::POST, &erase, Some(json!({ "password": PASSWORD, "confirm": slug }))).await;
    assert_eq!(status, 202, "{record}");
    let id = record["id"].as_str().unwrap().to_owned();
    assert_eq!(record["control_plane"]["projects"], 1, "{record}");
    assert_eq!(record["control_plane"]["agents"], 3, "{record}");
    assert_eq!(record["control_plane"]["documents"], 2, "{record}");
    assert!(record["control_plane"]["audit_entries_pseudonymised"].as_u64().unwrap() >= 5, "{record}");
    assert_eq!(record["files_pending"], false, "{record}");
    assert_eq!(record["agents"].as_array().unwrap().len(), 3, "{record}");
    let c = record["agents"].as_array().unwrap().iter().find(|a| a["agent_id"] == agent_c.as_str()).unwrap();
    assert_eq!(c["unreachable"], "revoked", "{record}");
    assert!(record["completed_at"].is_null(), "{record}");
    assert!(!files_dir.join(format!("tenants/{tenant}")).exists(), "the stored files are gone");
    let (status, _) = fleet.api.call(Method::GET, &format!("/api/v1/tenants/{tenant}"), None).await;
    assert_eq!(status, 404);
    let (_, mine) = fleet.api.call(Method::GET, "/api/v1/me/tenant-erasures", None).await;
    assert_eq!(mine[0]["id"], id.as_str(), "{mine}");

    // The online agent deletes, confirms and stops for good (status 3).
    let status = process_a.wait(Duration::from_secs(60)).expect("agent A stops after erasing");
    assert_eq!(status.code(), Some(3), "{}", process_a.logs.text());
    let record = erasure(&fleet, &id).await;
    assert!(confirmed(&record, &agent_a) && !confirmed(&record, &agent_b), "{record}");
    let a = record["agents"].as_array().unwrap().iter().find(|a| a["agent_id"] == agent_a.as_str()).unwrap();
    assert_eq!(a["report"]["documents"], 1, "{record}");
    assert!(a["report"]["chunks"].as_u64().unwrap() >= 1, "{record}");
    assert!(record["completed_at"].is_null(), "agent B is pending: {record}");
    assert!(!host_a.home.join("identity.pem").exists(), "agent A forgot its identity");

    // The offline agent comes back, is told, and does the same.
    let mut process_b = host_b.spawn_run(&[]);
    let status = process_b.wait(Duration::from_secs(60)).expect("agent B stops after erasing");
    assert_eq!(status.code(), Some(3), "{}", process_b.logs.text());
    let record = erasure(&fleet, &id).await;
    assert!(confirmed(&record, &agent_b) && !record["completed_at"].is_null(), "{record}");
    // Nobody else can read the record; the admin's account stays, without
    // the organisation.
    let (status, _) = admin.call(Method::GET, &format!("/api/v1/tenant-erasures/{id}"), None).await;
    assert_eq!(status, 404);
    let (status, me) = admin.call(Method::GET, "/api/v1/me", None).await;
    assert_eq!(status, 200, "{me}");
    assert!(!me.to_string().contains(&tenant), "{me}");

    // The canary is nowhere: database, stored files, logs, agents' homes.
    let logs = format!("{}{}", fleet.server().stderr.text(), fleet.server().stdout.join("\n"));
    let server = fleet.server.take().unwrap();
    assert!(server.terminate().success());
    let mut places = directory(fleet.data.path());
    places.push(("the server's logs".into(), logs.into_bytes()));
    places.extend(directory(home_a.path()));
    places.extend(directory(home_b.path()));
    let audit_kept = if let Some(db) = database {
        let dump = db.dump().await;
        let kept = dump.contains("tenant.erase_confirmed") && dump.contains("project.create");
        places.push(("the PostgreSQL database".into(), dump.into_bytes()));
        kept
    } else {
        let db: Vec<u8> =
            places.iter().filter(|(p, _)| p.contains(".db")).flat_map(|(_, b)| b.clone()).collect();
        let text = String::from_utf8_lossy(&db);
        text.contains("tenant.erase_confirmed") && text.contains("project.create")
    };
    assert!(audit_kept, "the audit trail stays, erasure included");
    let found = leaks(&places);
    assert!(found.is_empty(), "the erased organisation is still in:\n{}", found.join("\n"));
}

fn tenant_erase_path(tenant: &str) -> String {
    format!("/api/v1/tenants/{tenant}/erase")
}

/// Every file under `dir`, read.
fn directory(dir: &Path) -> Vec<(String, Vec<u8>)> {
    files_under(dir)
        .into_iter()
        .map(|f| (f.display().to_string(), std::fs::read(&f).unwrap_or_default()))
        .collect()
}

/// Where the canary is, with some context.
fn leaks(places: &[(String, Vec<u8>)]) -> Vec<String> {
    let mut found = Vec::new();
    for (place, bytes) in places {
        let text = String::from_utf8_lossy(bytes);
        if let Some(at) = text.find(CANARY) {
            let start = text.floor_char_boundary(at.saturating_sub(120));
            let end = text.ceil_char_boundary((at + 120).min(text.len()));
            found.push(format!("{place}: …{}…", &text[start..end]));
        }
    }
    found
}

#[tokio::test]
async fn an_organisation_is_erased_on_sqlite_and_on_its_agents_online_and_offline() {
    erase_across_edge(None).await;
}

#[tokio::test]
async fn an_organisation_is_erased_on_postgresql_and_on_its_agents_online_and_offline() {
    let Some(database) = TempDatabase::create().await else { return };
    erase_across_edge(Some(&database)).await;
    database.drop_database().await;
}

/// The operator erases an organisation with `marketer-server admin
/// erase-tenant` while the server runs: the command does what the API
/// does, and the agent connected to the server (not to the command) hears
/// of it from its next heartbeat, deletes what it holds, confirms and
/// stops; `admin tenant-erasure` then shows it confirmed.
#[tokio::test]
async fn the_operator_erases_an_organisation_from_the_command_line_and_its_connected_agent_follows() {
    let fleet = Fleet::start(job_timings).await;
    let (status, tenant) = fleet.call(Method::GET, "", None).await;
    assert_eq!(status, 200, "{tenant}");
    let slug = tenant["slug"].as_str().unwrap().to_owned();
    let home = tempfile::tempdir().unwrap();
    let (_host, agent_id, mut process) = agent(&fleet, home.path()).await;

    let run = |args: &[&str]| {
        let out = marketer_tests::server_command_on(args, fleet.data.path(), None, None);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, _, err) = run(&["admin", "erase-tenant", "--tenant", &slug, "--confirm", "not-it"]);
    assert!(!ok && err.contains("--confirm must be the organisation's short name"), "{err}");
    let (status, _) = fleet.call(Method::GET, "", None).await;
    assert_eq!(status, 200, "nothing was erased");

    let (ok, out, err) = run(&["admin", "erase-tenant", "--tenant", &slug, "--confirm", &slug]);
    assert!(ok, "{err}");
    assert!(out.contains(&agent_id), "{out}");
    assert!(out.contains("pending: told when it next connects"), "{out}");
    let id = out.split_whitespace().nth(1).unwrap().to_owned();
    let (status, _) = fleet.call(Method::GET, "", None).await;
    assert_eq!(status, 404, "the organisation is gone");

    let status = process.wait(Duration::from_secs(60)).expect("the agent stops after erasing");
    assert_eq!(status.code(), Some(3), "{}", process.logs.text());
    let shown = eventually(Duration::from_secs(10), "the confirmation", || async {
        let (ok, out, _) = run(&["admin", "tenant-erasure", "--id", &id]);
        (ok && out.contains("confirmed at")).then_some(out)
    })
    .await;
    assert!(shown.contains("complete since"), "{shown}");
    let (ok, _, err) = run(&["admin", "tenant-erasure", "--id", &uuid::Uuid::now_v7().to_string()]);
    assert!(!ok && err.contains("no erasure has the id"), "{err}");
}
