//! Flyers over HTTP, on both backends: the tenant's paper, colours and
//! logo; a flyer only from an approved listing kit; the PDF's text holds
//! every piece (extracted with pdftotext), its fonts are embedded, its page
//! is the tenant's paper, page 1 rendered (pdftoppm) is not blank, and it
//! is a few hundred kilobytes with five camera-sized photos; an edit shows
//! in the next flyer once approved; a Fair Housing finding in the flyer's
//! text is named and needs acknowledging (audited); another organisation
//! gets 404.

mod common;

use std::process::Command;

use common::fixtures::enrolled;
use common::{Backend, TestServer};
use marketer_control_plane::api::ApiConfig;
use marketer_protocol::activity::{ActivityResult, FlyerText};
use serde_json::{Value, json};
use uuid::Uuid;

/// A camera-sized JPEG with some structure in it.
fn photo(seed: u8) -> Vec<u8> {
    let pixels = image::RgbImage::from_fn(2400, 1600, |x, y| {
        let v = u8::try_from((x / 40 + y / 40) % 2).unwrap() * 120;
        image::Rgb([v.wrapping_add(seed), u8::try_from(y % 256).unwrap(), u8::try_from(x % 256).unwrap()])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 92).encode_image(&pixels).unwrap();
    out
}

fn logo() -> Vec<u8> {
    let pixels =
        image::RgbaImage::from_fn(400, 120, |x, _| image::Rgba([200, 16, 46, u8::from(x % 2 == 0) * 255]));
    let mut out = std::io::Cursor::new(Vec::new());
    pixels.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn kit_result(feature: &str, description: &str) -> ActivityResult {
    ActivityResult {
        content: format!("# 12 Elm Street\n\n{description}"),
        flyer: Some(FlyerText {
            headline: "Sunlit craftsman near Lincoln Park".into(),
            property_summary: "Three bedrooms and a deep garden on a maple-lined street.".into(),
            features: vec!["Renovated chef's kitchen".into(), feature.into()],
            call_to_action: "Book your private showing this weekend.".into(),
            disclaimers: "Information deemed reliable but not guaranteed. Equal Housing Opportunity.".into(),
        }),
        ..ActivityResult::default()
    }
}

async fn download(server: &TestServer, path: &str, token: &str) -> (u16, Vec<u8>, String) {
    let response = reqwest::Client::new().get(server.url(path)).bearer_auth(token).send().await.unwrap();
    let status = response.status().as_u16();
    let kind =
        response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, response.bytes().await.unwrap().to_vec(), kind)
}

fn error(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

/// Runs a poppler tool on the PDF; its standard output.
fn poppler(tool: &str, args: &[&str], pdf: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flyer.pdf");
    std::fs::write(&path, pdf).unwrap();
    let mut command = Command::new(tool);
    command.args(args).arg(&path);
    if tool == "pdftotext" {
        command.arg("-");
    }
    if tool == "pdftoppm" {
        command.arg(dir.path().join("page"));
    }
    let out =
        command.output().unwrap_or_else(|e| panic!("{tool} (Debian's poppler-utils) must be installed: {e}"));
    assert!(out.status.success(), "{tool}: {}", String::from_utf8_lossy(&out.stderr));
    if tool == "pdftoppm" {
        return std::fs::read(dir.path().join("page-1.png")).unwrap();
    }
    out.stdout
}

async fn flyers_end_to_end(backend: Backend) {
    let Some(server) = TestServer::start_with(backend, ApiConfig::default()).await else { return };
    let (owner, tenant) = server.owner().await;
    let t = |rest: &str| format!("/api/v1/tenants/{tenant}{rest}");
    let agent = enrolled(server.db.store.as_ref(), tenant.parse().unwrap(), 7, 7).await.id;
    let (_, project) = server.post(&t("/projects"), &owner, json!({ "name": "Listings" })).await;
    let project = project["id"].as_str().unwrap().to_owned();

    // The brand: A4, two colours, a logo (checked; a text file is refused).
    let (status, settings) = server.get(&t("/real-estate-settings"), &owner).await;
    assert_eq!(
        (status, settings["paper_size"].as_str(), settings["has_logo"].as_bool()),
        (200, Some("letter"), Some(false))
    );
    let mut brand = settings.clone();
    brand["paper_size"] = json!("a4");
    brand["brand_color"] = json!("#0B3D2E");
    brand["accent_color"] = json!("not a colour");
    let (status, refused) = server
        .call(reqwest::Method::PUT, &t("/real-estate-settings"), Some(&owner), Some(brand.clone()))
        .await;
    assert_eq!(
        (status, refused["error"]["details"]["field"].as_str()),
        (422, Some("accent_color")),
        "{refused}"
    );
    brand["accent_color"] = json!("#C9A227");
    let (status, saved) =
        server.call(reqwest::Method::PUT, &t("/real-estate-settings"), Some(&owner), Some(brand)).await;
    assert_eq!((status, saved["brand_color"].as_str()), (200, Some("#0b3d2e")), "{saved}");
    let (status, refused) =
        server.upload(&t("/real-estate-settings/logo"), &owner, "logo.png", b"plain text".to_vec()).await;
    assert_eq!(status, 415, "{refused}");
    let (status, saved) = server.upload(&t("/real-estate-settings/logo"), &owner, "logo.png", logo()).await;
    assert_eq!((status, saved["has_logo"].as_bool()), (200, Some(true)), "{saved}");
    let (status, stored, kind) = download(&server, &t("/real-estate-settings/logo"), &owner).await;
    assert_eq!((status, kind.as_str()), (200, "image/png"));
    assert!(image::load_from_memory(&stored).is_ok());

    // A property with five photos, and a listing kit from it.
    let (status, property) = server
        .post(
            &t("/properties"),
            &owner,
            json!({
                "project_id": project, "street": "12 Elm Street", "city": "Springfield", "region": "IL", "postal_code": "62704", "country": "us",
                "price": 450_000, "currency": "usd", "beds": 3, "baths": 2.5, "floor_area": 1850, "area_unit": "sqft",
                "year_built": 1998, "property_type": "single_family", "status": "active",
                "features": ["Renovated kitchen"], "description": "Bright and quiet.",
                "agent_name": "Dana Reyes", "agent_contact": "dana@example.com · (217) 555-0100", "reference": "MLS-4471"
            }),
        )
        .await;
    assert_eq!(status, 201, "{property}");
    let property = property["id"].as_str().unwrap().to_owned();
    for seed in 0..5 {
        let (status, body) = server
            .upload(&t(&format!("/properties/{property}/photos")), &owner, "p.jpg", photo(seed * 40))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, kit) = server
        .post(
            &t(&format!("/projects/{project}/activities")),
            &owner,
            json!({ "kind": "listing_kit", "property_id": property, "platforms": ["instagram"], "wait_for_agent": true }),
        )
        .await;
    assert_eq!(status, 202, "{kit}");
    let kit_id: Uuid = kit["id"].as_str().unwrap().parse().unwrap();
    let kit_path = t(&format!("/projects/{project}/activities/{kit_id}"));
    server
        .generated(
            tenant.parse().unwrap(),
            agent,
            kit_id,
            kit_result("Two-car garage", "A bright home with a wraparound porch and original oak floors."),
        )
        .await;

    // Not approved: no flyer yet, from the kit or the property.
    let (status, body, _) = download(&server, &format!("{kit_path}/flyer"), &owner).await;
    assert_eq!(
        (status, error(&body)["error"]["code"].as_str()),
        (409, Some("not_approved")),
        "{}",
        error(&body)
    );
    let (status, body, _) = download(&server, &t(&format!("/properties/{property}/flyer")), &owner).await;
    assert_eq!(
        (status, error(&body)["error"]["code"].as_str()),
        (409, Some("no_approved_kit")),
        "{}",
        error(&body)
    );

    let (status, approved) = server.post(&format!("{kit_path}/approve"), &owner, json!({})).await;
    assert_eq!(status, 200, "{approved}");
    let (status, pdf, kind) = download(&server, &format!("{kit_path}/flyer"), &owner).await;
    assert_eq!((status, kind.as_str()), (200, "application/pdf"), "{}", String::from_utf8_lossy(&pdf));
    // MARKETER_FLYER_OUT=<dir> keeps the flyer, to look at.
    if let Some(dir) = std::env::var_os("MARKETER_FLYER_OUT") {
        std::fs::write(std::path::Path::new(&dir).join(format!("flyer-{backend:?}.pdf")), &pdf).unwrap();
    }
    assert!(pdf.len() < 900_000, "a flyer with five photos is {} bytes", pdf.len());
    let text = String::from_utf8(poppler("pdftotext", &[], &pdf)).unwrap();
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for piece in [
        "Sunlit craftsman near Lincoln Park",
        "Three bedrooms and a deep garden",
        "A bright home with a wraparound porch and original oak floors.",
        "Renovated chef's kitchen",
        "Two-car garage",
        "Book your private showing this weekend.",
        "Dana Reyes",
        "dana@example.com",
        "$450,000",
        "ACTIVE",
        "12 Elm Street, Springfield",
        "3 bd · 2.5 ba · 1,850 sq ft",
        "Built 1998",
        "Equal Housing Opportunity",
    ] {
        assert!(flat.contains(piece), "the flyer's text lacks {piece:?}:\n{text}");
    }
    assert!(!flat.contains("# 12 Elm Street"), "the Markdown heading is not printed:\n{text}");
    let info = String::from_utf8(poppler("pdfinfo", &[], &pdf)).unwrap();
    assert!(info.contains("595.28 x 841.89 pts (A4)") || info.contains("595.28 x 841.89"), "{info}");
    assert!(
        info.lines().any(|l| l.starts_with("Pages:") && l.split_whitespace().last() == Some("1")),
        "{info}"
    );
    let fonts = String::from_utf8(poppler("pdffonts", &[], &pdf)).unwrap();
    let font_rows: Vec<&str> = fonts.lines().skip(2).collect();
    assert!(!font_rows.is_empty(), "{fonts}");
    for row in &font_rows {
        // name type encoding emb sub uni object ID
        let cols: Vec<&str> = row.split_whitespace().collect();
        let n = cols.len();
        assert_eq!(
            &cols[n - 5..n - 2],
            ["yes", "yes", "yes"],
            "every font embedded, subset, with a Unicode map:\n{fonts}"
        );
    }
    let page =
        image::load_from_memory(&poppler("pdftoppm", &["-png", "-r", "30", "-f", "1", "-l", "1"], &pdf))
            .unwrap()
            .to_rgb8();
    let inked = page.pixels().filter(|p| p.0.iter().any(|c| *c < 200)).count();
    let share = inked as f64 / f64::from(page.width() * page.height());
    assert!(share > 0.3, "page 1 is mostly blank ({share:.2} inked)");
    // The brand colour prints (the footer band): #0b3d2e, give or take.
    assert!(
        page.pixels().any(|p| p.0[0] < 30 && (50..80).contains(&p.0[1]) && (30..60).contains(&p.0[2])),
        "no brand colour"
    );

    // The property's page offers the same flyer.
    let (status, from_property, _) =
        download(&server, &t(&format!("/properties/{property}/flyer")), &owner).await;
    assert_eq!(status, 200);
    let text = String::from_utf8(poppler("pdftotext", &[], &from_property)).unwrap();
    assert!(text.contains("Sunlit craftsman"), "{text}");

    // An edit restarts review: no flyer until it is approved again, and
    // then the flyer prints the edited text.
    let (status, body) = server
        .call(
            reqwest::Method::PUT,
            &format!("{kit_path}/content"),
            Some(&owner),
            Some(json!({ "content": "# 12 Elm Street\n\nNow with a new slate roof and solar panels." })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, _, _) = download(&server, &format!("{kit_path}/flyer"), &owner).await;
    assert_eq!(status, 409);
    let (status, approved) = server.post(&format!("{kit_path}/approve"), &owner, json!({})).await;
    assert_eq!(status, 200, "{approved}");
    let (status, pdf, _) = download(&server, &format!("{kit_path}/flyer"), &owner).await;
    assert_eq!(status, 200);
    let text = String::from_utf8(poppler("pdftotext", &[], &pdf)).unwrap();
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains("Now with a new slate roof and solar panels."), "{text}");
    assert!(!flat.contains("wraparound porch"), "{text}");

    // A Fair Housing finding in the flyer's text is named; the download
    // needs acknowledging it, and that is audited.
    let (_, flagged) = server
        .post(
            &t(&format!("/projects/{project}/activities")),
            &owner,
            json!({ "kind": "listing_kit", "property_id": property, "platforms": ["instagram"], "wait_for_agent": true }),
        )
        .await;
    let flagged: Uuid = flagged["id"].as_str().unwrap().parse().unwrap();
    let flagged_path = t(&format!("/projects/{project}/activities/{flagged}"));
    server
        .generated(
            tenant.parse().unwrap(),
            agent,
            flagged,
            kit_result("Perfect for families", "A quiet home."),
        )
        .await;
    let (status, approved) = server
        .post(&format!("{flagged_path}/approve"), &owner, json!({ "acknowledge_findings": true }))
        .await;
    assert_eq!(status, 200, "{approved}");
    let (status, body, _) = download(&server, &format!("{flagged_path}/flyer"), &owner).await;
    let body = error(&body);
    assert_eq!(
        (status, body["error"]["details"]["field"].as_str()),
        (422, Some("acknowledge_findings")),
        "{body}"
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("Perfect for families") && message.contains("flyer.features[2]"), "{message}");
    let (status, pdf, _) =
        download(&server, &format!("{flagged_path}/flyer?acknowledge_findings=true"), &owner).await;
    assert_eq!(status, 200);
    assert!(String::from_utf8(poppler("pdftotext", &[], &pdf)).unwrap().contains("Perfect for families"));
    let (_, events) = server.get(&t("/audit-events?action=flyer.findings_acknowledged"), &owner).await;
    assert_eq!(events["items"].as_array().map(Vec::len), Some(1), "{events}");
    assert_eq!(events["items"][0]["resource_id"].as_str(), Some(flagged.to_string().as_str()), "{events}");

    // Another organisation's people get 404 for all of it.
    server.create_account("mallory@example.com").await;
    let mallory = server.access_token("mallory@example.com", "correct horse battery staple").await;
    let (_, other) = server.post("/api/v1/tenants", &mallory, json!({ "name": "Other Realty" })).await;
    let other = other["id"].as_str().unwrap();
    for path in [
        format!("{kit_path}/flyer"),
        t(&format!("/properties/{property}/flyer")),
        format!("/api/v1/tenants/{other}/projects/{project}/activities/{kit_id}/flyer"),
        format!("/api/v1/tenants/{other}/properties/{property}/flyer"),
    ] {
        let (status, _, _) = download(&server, &path, &mallory).await;
        assert_eq!(status, 404, "{path}");
    }
    let (status, _, _) =
        download(&server, &format!("/api/v1/tenants/{other}/real-estate-settings/logo"), &mallory).await;
    assert_eq!(status, 404, "a tenant without a logo has none, whoever else has one");
}

#[tokio::test]
async fn flyers_end_to_end_on_sqlite() {
    flyers_end_to_end(Backend::Sqlite).await;
}

#[tokio::test]
async fn flyers_end_to_end_on_postgres() {
    flyers_end_to_end(Backend::Postgres).await;
}
