//! Documents end to end, with the real binaries over real sockets: files
//! ingested on the agent host and reported to the control plane (metadata
//! only), uploads fetched and indexed by an agent, retrieval quality on a
//! known corpus, and the canary test: documents with unique strings and
//! fake PHI are indexed and used by a pipeline, and none of it reaches the
//! control plane (its database, files, logs, or what it received through
//! the tunnel).

use std::path::Path;
use std::time::Duration;

use marketer_tests::fleet::{Fleet, job_timings};
use marketer_tests::ollama::FakeModel;
use marketer_tests::{AgentHost, AgentProcess, TempDatabase, eventually, files};
use reqwest::Method;
use serde_json::{Value, json};

const MODEL: &str = "llama3.2:3b";
const EMBEDDER: &str = "nomic-embed-text:latest";

/// The fake Ollama's models, with embeddings long enough for retrieval.
fn models() -> Vec<FakeModel> {
    let mut embedder = FakeModel::new(EMBEDDER);
    embedder.embedding_length = 256;
    vec![FakeModel::new(MODEL), embedder]
}

async fn fleet(
    configure: impl FnOnce(marketer_tests::ServerOptions) -> marketer_tests::ServerOptions,
) -> Fleet {
    let fleet = Fleet::start(|o| configure(job_timings(o))).await;
    fleet.ollama.set_models(models());
    fleet
}

async fn project(fleet: &Fleet, policy: &str) -> String {
    let body = json!({ "name": format!("Project {}", uuid::Uuid::now_v7()), "llm_policy": policy, "default_model": MODEL });
    let (status, created) = fleet.call(Method::POST, "/projects", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

/// An enrolled agent host with `policy` as its policy.toml, running.
async fn agent(fleet: &Fleet, home: &Path, policy: Option<&str>) -> (AgentHost, String, AgentProcess) {
    let host = fleet.host(home);
    let id = fleet.enroll(&host, &[]).await;
    if let Some(policy) = policy {
        std::fs::write(home.join("policy.toml"), policy).unwrap();
    }
    let process = host.spawn_run(&[]);
    fleet.wait_state(&id, "online", Duration::from_secs(30)).await;
    (host, id, process)
}

async fn run(host: &AgentHost, args: &[&str]) -> (bool, String) {
    let out = host.run_command(args).await;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

async fn ingest(host: &AgentHost, path: &Path, project: &str) -> (bool, String) {
    run(host, &["ingest", path.to_str().unwrap(), "--project", project]).await
}

async fn documents(fleet: &Fleet, project: &str) -> Vec<Value> {
    let (status, page) =
        fleet.call(Method::GET, &format!("/projects/{project}/documents?limit=200"), None).await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

/// Waits until the control plane lists exactly `names` for the project.
async fn wait_listed(fleet: &Fleet, project: &str, names: &[&str]) -> Vec<Value> {
    let mut expected: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    expected.sort();
    eventually(Duration::from_secs(30), &format!("the documents {names:?}"), || async {
        let listed = documents(fleet, project).await;
        let mut got: Vec<String> = listed.iter().map(|d| d["name"].as_str().unwrap().to_owned()).collect();
        got.sort();
        (got == expected).then_some(listed)
    })
    .await
}

fn by_name<'a>(listed: &'a [Value], name: &str) -> &'a Value {
    listed.iter().find(|d| d["name"] == name).unwrap_or_else(|| panic!("{name} in {listed:?}"))
}

/// One file of each supported type, a corrupt PDF and a hidden file.
fn write_brand_folder(dir: &Path) {
    std::fs::create_dir_all(dir.join("web")).unwrap();
    std::fs::write(
        dir.join("voice.md"),
        "# Voice\n\nWarm and plain. We say home, never unit.\n\n## Words\n\nShort sentences.",
    )
    .unwrap();
    std::fs::write(dir.join("faq.txt"), "Do tiles need cleaning?\n\nRarely: rain does most of the work.")
        .unwrap();
    std::fs::write(
        dir.join("web/about.html"),
        "<html><head><style>p{}</style></head><body><h1>About</h1><p>Family owned since 1987.</p><script>var x;</script></body></html>",
    )
    .unwrap();
    std::fs::write(dir.join("specs.pdf"), files::pdf("SunShield tiles carry a thirty year warranty"))
        .unwrap();
    std::fs::write(
        dir.join("sheet.docx"),
        files::docx("Specs", &["Rated for hail up to 50 mm.", "Fits any roof."]),
    )
    .unwrap();
    std::fs::write(dir.join("broken.pdf"), b"%PDF-1.4\nthis is not really a PDF at all").unwrap();
    std::fs::write(dir.join(".notes.txt"), "hidden files are skipped").unwrap();
}

#[tokio::test]
async fn documents_ingested_on_the_agent_host_are_listed_changed_and_removed() {
    let fleet = fleet(|o| o).await;
    let home = tempfile::tempdir().unwrap();
    let (host, agent_id, _process) = agent(&fleet, home.path(), None).await;
    let project = project(&fleet, "edge_only").await;
    let folder = tempfile::tempdir().unwrap();
    write_brand_folder(folder.path());

    // One command indexes the folder; the corrupt PDF fails alone, with why.
    let (ok, out) = ingest(&host, folder.path(), &project).await;
    assert!(!ok, "a failed file makes the command fail: {out}");
    assert!(out.contains("5 indexed, 0 unchanged, 1 failed, 0 skipped"), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("failed") && l.contains("broken.pdf") && l.contains("PDF")),
        "{out}"
    );
    assert!(!out.contains(".notes.txt"), "{out}");

    // The running agent reports the metadata; the control plane lists it.
    let listed = wait_listed(
        &fleet,
        &project,
        &["about.html", "broken.pdf", "faq.txt", "sheet.docx", "specs.pdf", "voice.md"],
    )
    .await;
    for name in ["about.html", "faq.txt", "sheet.docx", "specs.pdf", "voice.md"] {
        let doc = by_name(&listed, name);
        assert_eq!(
            (doc["status"].as_str(), doc["origin"].as_str()),
            (Some("indexed"), Some("edge")),
            "{doc}"
        );
        assert!(doc["chunk_count"].as_i64().unwrap() >= 1, "{doc}");
        assert_eq!(doc["agent_id"].as_str(), Some(agent_id.as_str()));
        assert_eq!(doc["sha256"].as_str().unwrap().len(), 64);
    }
    let types: Vec<&str> = ["about.html", "sheet.docx", "specs.pdf", "voice.md", "faq.txt"]
        .iter()
        .map(|n| by_name(&listed, n)["media_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "text/html",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/pdf",
            "text/markdown",
            "text/plain"
        ]
    );
    let broken = by_name(&listed, "broken.pdf");
    assert_eq!(broken["status"], "failed");
    assert!(broken["error"].as_str().unwrap().contains("PDF"), "{broken}");
    // The fleet view says which projects the agent holds, and its policy.
    let fleet_agent = eventually(Duration::from_secs(10), "the agent's projects", || async {
        let a = fleet.agent(&agent_id).await;
        a["projects"].as_array().is_some_and(|p| p.iter().any(|p| p == project.as_str())).then_some(a)
    })
    .await;
    assert_eq!(fleet_agent["policy"]["redact_phi"], false, "{fleet_agent}");

    // Again: nothing changed, nothing is done (the broken file still fails).
    let (_, out) = ingest(&host, folder.path(), &project).await;
    assert!(out.contains("0 indexed, 5 unchanged, 1 failed"), "{out}");

    // A changed file keeps its id and replaces its chunks.
    let voice = by_name(&listed, "voice.md").clone();
    std::fs::write(
        folder.path().join("voice.md"),
        "# Voice\n\nWarm and plain.\n\n## Words\n\nShort sentences.\n\n## Numbers\n\nSpell out one to nine.",
    )
    .unwrap();
    let (_, out) = ingest(&host, folder.path(), &project).await;
    assert!(out.contains("1 indexed, 4 unchanged"), "{out}");
    eventually(Duration::from_secs(30), "the changed file's metadata", || async {
        let listed = documents(&fleet, &project).await;
        let now = by_name(&listed, "voice.md").clone();
        (now["sha256"] != voice["sha256"]).then_some(())
    })
    .await;
    let listed = documents(&fleet, &project).await;
    assert_eq!(by_name(&listed, "voice.md")["id"], voice["id"], "the same document");
    let (_, found) =
        run(&host, &["documents", "search", "spell out numbers", "--project", &project, "--limit", "1"])
            .await;
    assert!(found.contains("voice.md / Numbers"), "{found}");

    // Removed on the host: gone from the control plane. Deleted through the
    // API: gone from the host.
    let faq = by_name(&listed, "faq.txt")["id"].as_str().unwrap().to_owned();
    let (ok, out) = run(&host, &["documents", "remove", &faq]).await;
    assert!(ok, "{out}");
    wait_listed(&fleet, &project, &["about.html", "broken.pdf", "sheet.docx", "specs.pdf", "voice.md"]).await;
    let about = by_name(&listed, "about.html")["id"].as_str().unwrap().to_owned();
    let (status, _) =
        fleet.call(Method::DELETE, &format!("/projects/{project}/documents/{about}"), None).await;
    assert_eq!(status, 204);
    assert_eq!(documents(&fleet, &project).await.len(), 4, "hidden at once");
    eventually(Duration::from_secs(30), "the agent to remove the deleted document", || async {
        let (_, list) = run(&host, &["documents", "list"]).await;
        (!list.contains("about.html") && list.contains("sheet.docx")).then_some(())
    })
    .await;
    let (_, found) = run(&host, &["documents", "search", "family owned", "--project", &project]).await;
    assert!(!found.contains("about.html"), "its chunks went with it: {found}");
}

#[tokio::test]
async fn uploads_are_fetched_and_indexed_by_an_agent_and_deleted_everywhere() {
    let fleet = fleet(|o| o).await;
    let home = tempfile::tempdir().unwrap();
    let (host, agent_id, _process) = agent(&fleet, home.path(), None).await;
    let project = project(&fleet, "cloud_allowed").await;
    let path = fleet.api.tenant_path(&format!("/projects/{project}/documents"));
    let (status, uploaded) = fleet
        .api
        .upload(&path, "guide.docx", files::docx("Voice", &["Warm, plain English.", "Say home, not unit."]))
        .await;
    assert_eq!(status, 202, "{uploaded}");
    let id = uploaded["id"].as_str().unwrap().to_owned();
    let indexed = eventually(Duration::from_secs(30), "the upload to be indexed", || async {
        let (_, doc) = fleet.call(Method::GET, &format!("/projects/{project}/documents/{id}"), None).await;
        assert_ne!(doc["status"], "failed", "{doc}");
        (doc["status"] == "indexed").then_some(doc)
    })
    .await;
    assert_eq!(indexed["agent_id"].as_str(), Some(agent_id.as_str()));
    assert_eq!(indexed["chunk_count"], 1, "two short paragraphs make one chunk");
    let (_, list) = run(&host, &["documents", "list"]).await;
    assert!(
        list.contains(&format!("{id}  {project}  guide.docx  1 chunks  indexed  (upload:{id})")),
        "{list}"
    );

    let stored = fleet.data.path().join("files/documents").join(&fleet.api.tenant);
    assert_eq!(std::fs::read_dir(&stored).unwrap().count(), 1);
    let (status, _) = fleet.call(Method::DELETE, &format!("/projects/{project}/documents/{id}"), None).await;
    assert_eq!(status, 204);
    assert_eq!(std::fs::read_dir(&stored).unwrap().count(), 0, "the file is gone at once");
    eventually(Duration::from_secs(30), "the agent to drop the deleted upload", || async {
        let (_, list) = run(&host, &["documents", "list"]).await;
        list.contains("no documents are indexed").then_some(())
    })
    .await;
}

/// Eight short documents about distinct things, and queries with known
/// answers: six that share rare words with their answer, eight that share
/// only meaning (no word, and no word stem, in common).
const CORPUS: &[(&str, &str)] = &[
    (
        "protection.md",
        "# Protection\n\nEvery SunShield tile is covered by a thirty year guarantee against defects, labour and parts included.",
    ),
    (
        "installation.txt",
        "Our certified crews install a complete roof in two to three days, removal of the old shingles included.",
    ),
    (
        "pricing.html",
        "<html><body><h1>Pricing</h1><p>A typical home pays between 18,000 and 32,000 dollars. We quote every roof after a free visit.</p></body></html>",
    ),
    (
        "maintenance.pdf",
        "Cleaning the panels twice a year keeps output high. An annual inspection is free for members of the CareClub plan.",
    ),
    (
        "story.md",
        "# Our story\n\nThe company was founded in 1987 by the Okafor family in Tucson. Since then it has fitted forty thousand rooftops.",
    ),
    (
        "hail.txt",
        "SunShield tiles are rated for hail up to 50 mm and winds of 210 km/h. They passed the HurriCert 5 test.",
    ),
    (
        "eco.md",
        "Each tile is made from 70 percent recycled glass. Over its life a roof avoids about 90 tonnes of carbon emissions.",
    ),
];

const QUERIES: &[(&str, &str)] = &[
    // By words.
    ("SunShield thirty year guarantee", "protection.md"),
    ("CareClub plan", "maintenance.pdf"),
    ("Okafor family Tucson", "story.md"),
    ("HurriCert", "hail.txt"),
    ("fixed-rate loan", "financing.docx"),
    ("recycled glass", "eco.md"),
    // By meaning only.
    ("warranty", "protection.md"),
    ("what will it cost me", "pricing.html"),
    ("who started this business, and its origins", "story.md"),
    ("how long does fitting take", "installation.txt"),
    ("upkeep of modules", "maintenance.pdf"),
    ("withstand bad weather", "hail.txt"),
    ("credit options", "financing.docx"),
    ("environmental impact", "eco.md"),
];

#[tokio::test]
async fn retrieval_finds_the_right_source_by_words_and_by_meaning() {
    let ollama = marketer_tests::ollama::FakeOllama::start(models()).await;
    let home = tempfile::tempdir().unwrap();
    let host = AgentHost::new(home.path(), &ollama.url());
    let corpus = tempfile::tempdir().unwrap();
    for (name, text) in CORPUS {
        let bytes = if name.ends_with(".pdf") { files::pdf(text) } else { text.as_bytes().to_vec() };
        std::fs::write(corpus.path().join(name), bytes).unwrap();
    }
    std::fs::write(
        corpus.path().join("financing.docx"),
        files::docx(
            "Financing",
            &[
                "Homeowners can spread payments over 5 to 20 years with a fixed-rate loan.",
                "Monthly instalments start at 99.",
            ],
        ),
    )
    .unwrap();
    let project = uuid::Uuid::now_v7().to_string();
    let (ok, out) = ingest(&host, corpus.path(), &project).await;
    assert!(ok && out.contains("8 indexed"), "{out}");

    let mut misses = Vec::new();
    for (query, expected) in QUERIES {
        let (ok, out) =
            run(&host, &["documents", "search", query, "--project", &project, "--limit", "3"]).await;
        assert!(ok, "{out}");
        let top: Vec<&str> = out
            .lines()
            .filter_map(|l| {
                l.split_once(". ").filter(|(n, _)| n.parse::<u32>().is_ok()).map(|(_, rest)| rest)
            })
            .map(|rest| rest.split([' ', '/']).next().unwrap_or(""))
            .collect();
        if !top.contains(expected) {
            misses.push(format!("{query:?}: expected {expected} in the top 3, got {top:?}"));
        }
    }
    assert!(misses.is_empty(), "retrieval misses:\n{}", misses.join("\n"));
}

/// Unique strings that exist only in the documents on the agent host.
const CANARIES: &[&str] = &["ZEBRA-LANTERN-7Q4X", "OBSIDIAN-WALRUS-22K9"];
/// Fake PHI in the documents, and the placeholders the agent puts instead.
const PHI: &[(&str, &str)] = &[
    ("123-45-6789", "[SSN]"),
    ("jane.roe@clinic-example.org", "[EMAIL]"),
    ("(555) 201-3344", "[PHONE]"),
    ("MRN: 00482913", "[MRN]"),
];

const CLINIC_NOTES: &str = "Patient outreach guide for the spring vaccination campaign. The clinic's internal code \
    ZEBRA-LANTERN-7Q4X marks the pilot cohort and must never appear in public copy. Contact the coordinator Jane Roe \
    at jane.roe@clinic-example.org or (555) 201-3344 about patient 123-45-6789, MRN: 00482913, before any mailing.";
const CLINIC_FAQ: &str = "Flu shots are free for members and take about ten minutes at any of our clinics. \
    Internal reference OBSIDIAN-WALRUS-22K9 identifies the reimbursement contract with the county health plan.";

async fn canary_test(fleet: &Fleet, database: Option<&TempDatabase>) {
    // A hipaa tenant: its agents redact by default, and its projects are edge_only.
    let (status, tenant) = fleet.call(Method::PATCH, "", Some(json!({ "compliance_mode": "hipaa" }))).await;
    assert_eq!(status, 200, "{tenant}");
    let home = tempfile::tempdir().unwrap();
    let (host, agent_id, process) =
        agent(fleet, home.path(), Some("allow_document_text_in_results = false\nmax_verbatim_chars = 60\n"))
            .await;
    let project = project(fleet, "edge_only").await;
    let docs = tempfile::tempdir().unwrap();
    std::fs::write(docs.path().join("outreach.md"), format!("# Outreach\n\n{CLINIC_NOTES}")).unwrap();
    std::fs::write(docs.path().join("faq.pdf"), files::pdf(CLINIC_FAQ)).unwrap();
    let (ok, out) = ingest(&host, docs.path(), &project).await;
    assert!(ok, "{out}");
    wait_listed(fleet, &project, &["faq.pdf", "outreach.md"]).await;
    // The agent host does hold the canaries: the test could fail.
    let (_, found) =
        run(&host, &["documents", "search", "vaccination campaign outreach", "--project", &project]).await;
    assert!(found.contains("ZEBRA-LANTERN-7Q4X"), "{found}");

    // A model that copies its sources and their PHI into everything.
    let leaky_fact = CLINIC_NOTES.to_owned();
    fleet.ollama.script(
        "research assistant for a marketing team",
        vec![
            json!({ "facts": [leaky_fact, CLINIC_FAQ], "brand_voice_notes": [], "gaps": ["Confirm dates"] })
                .to_string(),
        ],
    );
    // The draft copies both documents, and repeats PHI in its own words.
    fleet.ollama.script(
        "expert content writer",
        vec![format!(
            "# Get your flu shot\n\n{CLINIC_NOTES}\n\n{CLINIC_FAQ}\n\nQuestions? Write to jane.roe@clinic-example.org \
             or call (555) 201-3344 about patient record 123-45-6789 (MRN: 00482913).\n\nBook today."
        )],
    );
    let review = json!({
        "grammar": 9.0, "readability": 9.0, "seo": 9.0, "brand_voice": 9.0, "structure": 9.0,
        "factual_risk": 9.0, "engagement": 9.0, "suggestions": ["None"],
    })
    .to_string();
    fleet.ollama.script("demanding professional editor", vec![review.clone(), review]);
    let body = json!({
        "kind": "blog_article", "topic": "Spring vaccination outreach", "keywords": ["flu shots"],
        "audience": "patients", "tone": "friendly", "target_word_count": 400, "platforms": [],
        // The compliance-mode change above closed the agent's tunnel: it may
        // still be reconnecting.
        "wait_for_agent": true,
    });
    let (status, created) =
        fleet.call(Method::POST, &format!("/projects/{project}/activities"), Some(body)).await;
    assert_eq!(status, 202, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let activity = eventually(Duration::from_secs(60), "the article", || async {
        let (_, a) = fleet.call(Method::GET, &format!("/projects/{project}/activities/{id}"), None).await;
        assert_ne!(a["status"], "failed", "{a}");
        (a["status"] == "review").then_some(a)
    })
    .await;

    // The article was grounded in the documents, says so, and cites them...
    let research = &activity["result"]["research"];
    assert_eq!(research["grounding"], "documents", "{research}");
    let cited: Vec<&str> =
        research["sources"].as_array().unwrap().iter().filter_map(|s| s["title"].as_str()).collect();
    assert!(cited.contains(&"outreach.md") && cited.contains(&"faq.pdf"), "{cited:?}");
    // ...but what came back has the copies withheld, and the PHI outside
    // them replaced by placeholders where the values were.
    let content = activity["content"].as_str().unwrap();
    assert!(content.contains("[document text withheld]"), "{content}");
    assert!(
        content.contains("Write to [EMAIL] or call [PHONE] about patient record [SSN] (MRN: [MRN])."),
        "{content}"
    );
    let counts = &activity["run"]["usage"]["redactions"];
    assert!(counts["DOCUMENT_TEXT"].as_u64().unwrap() >= 3, "{counts}");
    for (_, placeholder) in PHI {
        let kind = placeholder.trim_matches(['[', ']']);
        assert!(counts[kind].as_u64().unwrap() >= 1, "{kind}: {counts}");
    }
    // The reads of this content were audited (a hipaa tenant).
    let (_, log) = fleet.call(Method::GET, "/audit-events?action=content.read", None).await;
    assert!(!log["items"].as_array().unwrap().is_empty(), "{log}");

    // Stop the server so everything it holds is on disk, then search it all.
    drop(process);
    let transcript = std::fs::read_to_string(fleet.data.path().join("agent-transcript.jsonl")).unwrap();
    // It recorded the tunnel: the agent's reports and the job's results.
    assert!(transcript.contains(&agent_id) && transcript.contains("outreach.md"), "{transcript}");
    assert!(transcript.contains("[EMAIL]") && transcript.contains("[document text withheld]"));
    let mut places: Vec<(String, Vec<u8>)> = vec![
        ("the transcript".into(), transcript.into_bytes()),
        ("the server's logs".into(), fleet.server().stderr.text().into_bytes()),
        ("the server's output".into(), fleet.server().stdout.join("\n").into_bytes()),
    ];
    for file in marketer_tests::files_under(fleet.data.path()) {
        places.push((file.display().to_string(), std::fs::read(&file).unwrap()));
    }
    if let Some(database) = database {
        places.push(("the PostgreSQL database".into(), database.dump().await.into_bytes()));
    }
    let mut leaks = Vec::new();
    for (place, bytes) in &places {
        let text = String::from_utf8_lossy(bytes);
        for secret in CANARIES.iter().copied().chain(PHI.iter().map(|(value, _)| *value)) {
            if text.contains(secret) {
                leaks.push(format!("{secret} in {place}"));
            }
        }
    }
    assert!(leaks.is_empty(), "document text or PHI reached the control plane:\n{}", leaks.join("\n"));
}

#[tokio::test]
async fn no_document_text_or_phi_reaches_the_control_plane_on_sqlite() {
    let fleet = fleet(|o| {
        let path = o.data_dir.join("agent-transcript.jsonl");
        o.arg("--agent-transcript").arg(path.to_str().unwrap())
    })
    .await;
    canary_test(&fleet, None).await;
}

#[tokio::test]
async fn no_document_text_or_phi_reaches_the_control_plane_on_postgresql() {
    let Some(database) = TempDatabase::create().await else { return };
    {
        let fleet = fleet(|o| {
            let path = o.data_dir.join("agent-transcript.jsonl");
            o.env("MARKETER_DATABASE_URL", &database.url)
                .arg("--agent-transcript")
                .arg(path.to_str().unwrap())
        })
        .await;
        canary_test(&fleet, Some(&database)).await;
    }
    database.drop_database().await;
}

#[tokio::test]
async fn the_agents_policy_limits_its_models_and_its_output() {
    let fleet = fleet(|o| o).await;
    let home = tempfile::tempdir().unwrap();
    let policy = "allowed_models = [\"llama3.2:3b\"]\nmax_output_chars = 40\n";
    let (_host, agent_id, _process) = agent(&fleet, home.path(), Some(policy)).await;

    // The control plane reads the policy and sees only the allowed models.
    let seen = fleet.agent(&agent_id).await;
    let models: Vec<&str> =
        seen["models"].as_array().unwrap().iter().filter_map(|m| m["name"].as_str()).collect();
    assert_eq!(models, [MODEL], "{seen}");
    assert_eq!(seen["policy"]["allowed_models"], json!([MODEL]));
    assert_eq!(seen["policy"]["max_output_chars"], 40);

    // An answer longer than the policy allows stops the job, saying why.
    let chat = json!({ "kind": "chat", "model": MODEL, "messages": [{ "role": "user", "content": "Write a long story" }], "max_attempts": 1 });
    let (status, job) = fleet.call(Method::POST, "/jobs", Some(chat)).await;
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let failed = eventually(Duration::from_secs(30), "the job to fail", || async {
        let (_, job) = fleet.call(Method::GET, &format!("/jobs/{id}"), None).await;
        (job["status"] == "failed").then_some(job)
    })
    .await;
    assert_eq!(failed["error"]["code"], "policy", "{failed}");
    assert!(failed["error"]["message"].as_str().unwrap().contains("max_output_chars"), "{failed}");

    // A model the policy does not allow is not offered: a job for it is
    // refused, naming the models that are.
    let embed = json!({ "kind": "embed", "model": "nomic-embed-text", "input": ["x"] });
    let (status, refused) = fleet.call(Method::POST, "/jobs", Some(embed)).await;
    assert_eq!(status, 422, "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("use one of: llama3.2:3b"), "{refused}");
}
