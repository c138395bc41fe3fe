//! Backups of the real `marketer-server`: `backup` while the server takes
//! writes, `restore` into a fresh data directory, and a server started on
//! the restored directory serving what the backup held, with the same
//! secrets (sessions still valid) and agent CA. On PostgreSQL, the README's
//! `pg_dump`/`pg_restore` procedure plus the archive of everything else.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use marketer_tests::{Api, ServerProcess, TempDatabase, server_command};
use reqwest::Method;
use serde_json::json;

const EMAIL: &str = "ops@example.com";
const PASSWORD: &str = "a long bootstrap password";

/// Every project id of the session's tenant.
async fn project_ids(api: &Api) -> HashSet<String> {
    let mut ids = HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let query =
            cursor.as_ref().map_or_else(|| "?limit=100".to_owned(), |c| format!("?limit=100&cursor={c}"));
        let (status, page) =
            api.call(Method::GET, &api.tenant_path(&format!("/projects{query}")), None).await;
        assert_eq!(status, 200, "{page}");
        for project in page["items"].as_array().unwrap() {
            ids.insert(project["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return ids,
        }
    }
}

async fn command(args: Vec<String>, data: &Path, env: Vec<(String, String)>) -> (bool, String) {
    let data = data.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = if env.is_empty() {
            server_command(&args, &data, None)
        } else {
            let mut command = std::process::Command::new(marketer_tests::binary("marketer-server"));
            command.args(&args).arg("--data-dir").arg(&data).env("MARKETER_LOG_LEVEL", "warn");
            for (key, value) in &env {
                command.env(key, value);
            }
            command.output().expect("run marketer-server")
        };
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_sqlite_backup_taken_under_write_load_restores_into_a_server_that_serves_it() {
    let data = tempfile::tempdir().unwrap();
    let env = [("MARKETER_BOOTSTRAP_EMAIL", EMAIL), ("MARKETER_BOOTSTRAP_PASSWORD", PASSWORD)];
    let server = ServerProcess::start(data.path(), &env);
    let api = Api::login(&server.base_url, EMAIL, PASSWORD).await;

    // A writer creating projects the whole time the backup runs.
    let created = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (api, created, stop) =
            (Api::login(&server.base_url, EMAIL, PASSWORD).await, created.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let body = json!({ "name": format!("Project {n}"), "llm_policy": "edge_only" });
                let (status, project) =
                    api.call(Method::POST, &api.tenant_path("/projects"), Some(body)).await;
                assert_eq!(status, 201, "{project}");
                created.lock().unwrap().push(project["id"].as_str().unwrap().to_owned());
                n += 1;
            }
        })
    };
    marketer_tests::eventually(std::time::Duration::from_secs(30), "some projects", || async {
        (created.lock().unwrap().len() >= 20).then_some(())
    })
    .await;
    let archive =
        data.path().parent().unwrap().join(format!("backup-{}.tar.gz", uuid::Uuid::now_v7().simple()));
    let before = created.lock().unwrap().len();
    let to = archive.to_str().unwrap().to_owned();
    let (ok, said) = command(vec!["backup".into(), "--to".into(), to.clone()], data.path(), Vec::new()).await;
    let after = created.lock().unwrap().len();
    assert!(ok, "{said}");
    assert!(said.contains("backed up the database"), "{said}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await.unwrap();
    assert!(after > before, "writes went on during the backup ({before} → {after})");

    // Restore refuses a data directory in use; a fresh one works.
    let (ok, said) =
        command(vec!["restore".into(), "--from".into(), to.clone()], data.path(), Vec::new()).await;
    assert!(!ok && said.contains("not empty"), "{said}");
    let restored = tempfile::tempdir().unwrap();
    let target = restored.path().join("data");
    let (ok, said) = command(vec!["restore".into(), "--from".into(), to.clone()], &target, Vec::new()).await;
    assert!(ok, "{said}");
    assert!(said.contains("passed its integrity check"), "{said}");
    assert!(server.terminate().success());

    let again = ServerProcess::start(&target, &[]);
    // The same secrets: the session from before the backup still works.
    let old_session = Api { base_url: again.base_url.clone(), http: reqwest::Client::new(), ..api };
    let (status, me) = old_session.call(Method::GET, "/api/v1/me", None).await;
    assert_eq!(status, 200, "{me}");
    let ids = project_ids(&old_session).await;
    let written: HashSet<String> = created.lock().unwrap().iter().cloned().collect();
    assert!(
        ids.len() >= before && ids.len() <= after,
        "{} projects restored, {before} to {after} expected",
        ids.len()
    );
    assert!(ids.is_subset(&written), "only projects that were written");
    // Consistent: every project written before the last restored one is there.
    let order = created.lock().unwrap().clone();
    let last = order.iter().rposition(|id| ids.contains(id)).unwrap();
    assert!(order[..=last].iter().all(|id| ids.contains(id)), "a prefix of the writes, with no hole");
    assert_eq!(
        std::fs::read(target.join("ca/ca.crt")).unwrap(),
        std::fs::read(data.path().join("ca/ca.crt")).unwrap(),
        "the same agent CA"
    );
    let _ = std::fs::remove_file(&archive);
}

#[tokio::test]
async fn postgresql_is_backed_up_with_pg_dump_and_the_archive_restores_the_rest() {
    let Some(database) = TempDatabase::create().await else { return };
    let Some(copy) = TempDatabase::create().await else { return };
    let data = tempfile::tempdir().unwrap();
    let env = [
        ("MARKETER_DATABASE_URL", database.url.as_str()),
        ("MARKETER_BOOTSTRAP_EMAIL", EMAIL),
        ("MARKETER_BOOTSTRAP_PASSWORD", PASSWORD),
    ];
    let server = ServerProcess::start(data.path(), &env);
    let api = Api::login(&server.base_url, EMAIL, PASSWORD).await;
    let (status, project) = api
        .call(
            Method::POST,
            &api.tenant_path("/projects"),
            Some(json!({ "name": "Kept", "llm_policy": "edge_only" })),
        )
        .await;
    assert_eq!(status, 201, "{project}");

    // The README's procedure: pg_dump, then the archive of everything else.
    let dump = data.path().parent().unwrap().join(format!("dump-{}.pgdump", uuid::Uuid::now_v7().simple()));
    let out = std::process::Command::new("pg_dump")
        .args(["--format=custom", "--no-owner", "--file"])
        .arg(&dump)
        .arg(&database.url)
        .output()
        .expect("run pg_dump (postgresql-client)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let archive =
        data.path().parent().unwrap().join(format!("backup-{}.tar.gz", uuid::Uuid::now_v7().simple()));
    let to = archive.to_str().unwrap().to_owned();
    let url = vec![("MARKETER_DATABASE_URL".to_owned(), database.url.clone())];
    let (ok, said) = command(vec!["backup".into(), "--to".into(), to.clone()], data.path(), url).await;
    assert!(ok && said.contains("pg_dump"), "{said}");
    assert!(server.terminate().success());

    let out = std::process::Command::new("pg_restore")
        .args(["--no-owner", "--exit-on-error", "--dbname"])
        .arg(&copy.url)
        .arg(&dump)
        .output()
        .expect("run pg_restore");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let restored = tempfile::tempdir().unwrap();
    let target = restored.path().join("data");
    let url = vec![("MARKETER_DATABASE_URL".to_owned(), copy.url.clone())];
    let (ok, said) = command(vec!["restore".into(), "--from".into(), to], &target, url).await;
    assert!(ok && said.contains("pg_restore"), "{said}");

    let again = ServerProcess::start(&target, &[("MARKETER_DATABASE_URL", copy.url.as_str())]);
    let old_session = Api { base_url: again.base_url.clone(), http: reqwest::Client::new(), ..api };
    let ids = project_ids(&old_session).await;
    assert!(ids.contains(project["id"].as_str().unwrap()), "{ids:?}");
    assert!(again.terminate().success());
    let _ = std::fs::remove_file(&archive);
    let _ = std::fs::remove_file(&dump);
    database.drop_database().await;
    copy.drop_database().await;
}
