//! Importing leads from CSV over HTTP, on both backends: every row or
//! none, each refused row named by line and field (a bad address, one
//! used twice or already a lead, a property or owner that does not
//! exist here, a consent without its time), a dry run that creates
//! nothing, then the import itself: source `import`, the status, owner,
//! properties and consent from the file, and an `unsubscribed` row whose
//! address no sequence may mail. A viewer may not import, and another
//! organisation's property is not found.

mod common;

use common::{Backend, TestServer};
use marketer_control_plane::api::ApiConfig;
use serde_json::{Value, json};

fn problems(report: &Value) -> Vec<(i64, String)> {
    report["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["line"].as_i64().unwrap(), p["field"].as_str().unwrap().to_owned()))
        .collect()
}

async fn lead_import(backend: Backend) {
    let Some(server) = TestServer::start_with(backend, ApiConfig::default()).await else { return };
    let (owner, tenant) = server.owner().await;
    let t = |rest: &str| format!("/api/v1/tenants/{tenant}{rest}");
    let (_, project) = server.post(&t("/projects"), &owner, json!({ "name": "Listings" })).await;
    let property = json!({
        "project_id": project["id"], "street": "12 Elm Street", "city": "Springfield", "country": "US",
        "price": 450_000, "currency": "USD", "beds": 3, "baths": 2.0, "floor_area": 1850, "area_unit": "sqft",
        "property_type": "single_family", "status": "active", "agent_name": "Dana Realtor",
        "agent_contact": "555-0100", "reference": "MLS-1",
    });
    let (status, property) = server.post(&t("/properties"), &owner, property).await;
    assert_eq!(status, 201, "{property}");
    let property_id = property["id"].as_str().unwrap().to_owned();
    let (viewer, dana) = {
        let (viewer, _) = server.add_user(&owner, &tenant, "viewer@example.com", "viewer").await;
        let (_, dana) = server.add_user(&owner, &tenant, "dana@example.com", "member").await;
        (viewer, dana)
    };
    let (status, _) = server.post(&t("/leads"), &owner, json!({ "email": "old@example.com" })).await;
    assert_eq!(status, 201);

    let import = t("/leads/import");
    let header = "email,name,phone,status,properties,owner,note,consent_text,consented_at";
    let post = |query: &str, rows: &str| {
        let (path, body) = (format!("{import}{query}"), format!("{header}\n{rows}"));
        let (server, owner) = (&server, &owner);
        async move { server.post_text(&path, owner, "text/csv", body).await }
    };
    let count = || async {
        let (_, page) = server.get(&t("/leads?limit=100"), &owner).await;
        page["items"].as_array().unwrap().len()
    };
    assert_eq!(count().await, 1);

    // Every refused row is named; nothing is imported.
    let (status, report) = post(
        "",
        "ana@example.com,Ana Lima,+1 555 0100,won,MLS-1,dana@example.com,Met at the open house,I agree to be contacted,2026-03-01\n\
         OLD@example.com,Old Friend,,,,,,,\n\
         bo@example.com,Bo,,,MLS-404,,,,\n\
         cy@example.com,Cy,,,,nobody@example.com,,,\n\
         ana@example.com,Ana again,,,,,,,\n\
         di@example.com,Di,,,,,,I agree,\n\
         not an address,,,,,,,,\n",
    )
    .await;
    assert_eq!(
        (status, report["imported"].as_i64(), report["rows"].as_i64()),
        (200, Some(0), Some(7)),
        "{report}"
    );
    let expected: Vec<(i64, String)> =
        [(3, "email"), (4, "properties"), (5, "owner"), (6, "email"), (7, "consented_at"), (8, "email")]
            .into_iter()
            .map(|(l, f)| (l, f.to_owned()))
            .collect();
    assert_eq!(problems(&report), expected, "{report}");
    assert!(report["refused"][0]["message"].as_str().unwrap().contains("is a lead already"), "{report}");
    assert!(report["refused"][3]["message"].as_str().unwrap().contains("line 2"), "{report}");
    assert_eq!(count().await, 1, "nothing half-imported");

    let good = format!(
        "ana@example.com,Ana Lima,+1 555 0100,won,MLS-1,dana@example.com,Met at the open house,I agree to be contacted,2026-03-01\n\
         bo@example.com,Bo,,,{property_id},,,,\n\
         cy@example.com,,,unsubscribed,,,,,\n"
    );
    // A dry run checks and creates nothing.
    let (status, report) = post("?dry_run=true", &good).await;
    assert_eq!(
        (status, report["imported"].as_i64(), report["dry_run"].as_bool()),
        (200, Some(0), Some(true))
    );
    assert!(problems(&report).is_empty(), "{report}");
    assert_eq!(count().await, 1);

    // A viewer may not import.
    let (status, _) =
        server.post_text(&import, &viewer, "text/csv", format!("{header}\nx@example.com,,,,,,,,\n")).await;
    assert_eq!(status, 403);

    let (status, report) = post("", &good).await;
    assert_eq!((status, report["imported"].as_i64()), (200, Some(3)), "{report}");
    let ids: Vec<String> =
        report["ids"].as_array().unwrap().iter().map(|i| i.as_str().unwrap().into()).collect();
    assert_eq!(count().await, 4);
    let (_, ana) = server.get(&t(&format!("/leads/{}", ids[0])), &owner).await;
    assert_eq!(
        (ana["source"].as_str(), ana["status"].as_str(), ana["owner_id"].as_str()),
        (Some("import"), Some("won"), Some(dana.as_str())),
        "{ana}"
    );
    assert_eq!(ana["consent_text"], "I agree to be contacted", "{ana}");
    assert!(ana["consent_at"].as_str().unwrap().starts_with("2026-03-01T00:00:00"), "{ana}");
    assert_eq!(ana["property_ids"], json!([property_id]), "{ana}");
    let (_, bo) = server.get(&t(&format!("/leads/{}", ids[1])), &owner).await;
    assert_eq!(bo["property_ids"], json!([property_id]), "a property by its id: {bo}");

    // The unsubscribed address is suppressed: no sequence may mail it.
    let (_, mut settings) = server.get(&t("/real-estate-settings"), &owner).await;
    settings["postal_address"] = json!("Elm Realty, 400 Main Street, Springfield, IL 62701");
    let put =
        server.call(reqwest::Method::PUT, &t("/real-estate-settings"), Some(&owner), Some(settings)).await;
    assert_eq!(put.0, 200, "{}", put.1);
    let (_, sequences) = server.get(&t("/sequences"), &owner).await;
    let start = json!({ "sequence_id": sequences[0]["id"] });
    let (status, refused) = server.post(&t(&format!("/leads/{}/sequences", ids[2])), &owner, start).await;
    assert_eq!(status, 422, "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("unsubscribed"), "{refused}");

    // Another organisation cannot name our property, even by its id.
    let (_, other) = server.post("/api/v1/tenants", &owner, json!({ "name": "Other Realty" })).await;
    let other = other["id"].as_str().unwrap().to_owned();
    let (outsider, _) = server.add_user(&owner, &other, "outsider@example.com", "admin").await;
    let other_import = format!("/api/v1/tenants/{other}/leads/import");
    let (status, report) = server
        .post_text(
            &other_import,
            &outsider,
            "text/csv",
            format!("{header}\nzed@example.com,,,,{property_id},,,,\n"),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(problems(&report), [(2, "properties".to_owned())], "{report}");
}

#[tokio::test]
async fn lead_import_on_sqlite() {
    lead_import(Backend::Sqlite).await;
}

#[tokio::test]
async fn lead_import_on_postgres() {
    lead_import(Backend::Postgres).await;
}
