//! Properties over HTTP, on both backends: create, check, filter and
//! search, edit with a version (a stale edit is refused), photos (a JPEG
//! with GPS EXIF comes out without any metadata, turned upright; anything
//! that is not an image is refused by content; order and cover), the CSV
//! import (all rows or none, each problem named by line and field), a
//! listing kit generated from a property, and another organisation's
//! people getting 404 for all of it.

mod common;

use common::{Backend, TestServer};
use marketer_control_plane::api::ApiConfig;
use serde_json::{Value, json};

fn property(street: &str, city: &str, price: i64, status: &str, reference: &str) -> Value {
    json!({
        "street": street, "city": city, "region": "IL", "postal_code": "62704", "country": "us",
        "price": price, "currency": "usd", "beds": 3, "baths": 2.5, "floor_area": 1850, "area_unit": "sqft",
        "year_built": 1998, "property_type": "single_family", "status": status,
        "features": ["Renovated kitchen", "Two-car garage"], "description": "Bright and quiet.",
        "agent_name": "Dana Realtor", "agent_contact": "dana@example.com", "reference": reference
    })
}

/// A JPEG of `width`×`height` with an EXIF block: camera make
/// `CanaryCam`, orientation 6 (turn 90° clockwise to view) and a GPS
/// position, as a phone writes it.
fn jpeg_with_gps(width: u32, height: u32) -> Vec<u8> {
    let pixels = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([u8::try_from(x % 250).unwrap(), u8::try_from(y % 250).unwrap(), 90])
    });
    let mut plain = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut plain, 90).encode_image(&pixels).unwrap();
    // TIFF, little-endian: IFD0 at 8 (Make, Orientation, GPS pointer), the
    // make's text at 50, the GPS IFD at 60 (latitude ref and latitude),
    // the latitude's three rationals at 90.
    let mut t: Vec<u8> = b"II*\0".to_vec();
    t.extend(8u32.to_le_bytes());
    let entry = |t: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: [u8; 4]| {
        t.extend(tag.to_le_bytes());
        t.extend(kind.to_le_bytes());
        t.extend(count.to_le_bytes());
        t.extend(value);
    };
    t.extend(3u16.to_le_bytes());
    entry(&mut t, 0x010F, 2, 10, 50u32.to_le_bytes());
    entry(&mut t, 0x0112, 3, 1, [6, 0, 0, 0]);
    entry(&mut t, 0x8825, 4, 1, 60u32.to_le_bytes());
    t.extend(0u32.to_le_bytes());
    t.extend(b"CanaryCam\0");
    t.extend(2u16.to_le_bytes());
    entry(&mut t, 0x0001, 2, 2, *b"N\0\0\0");
    entry(&mut t, 0x0002, 5, 3, 90u32.to_le_bytes());
    t.extend(0u32.to_le_bytes());
    for (n, d) in [(41u32, 1u32), (53, 1), (2_417, 100)] {
        t.extend(n.to_le_bytes());
        t.extend(d.to_le_bytes());
    }
    assert_eq!(t.len(), 114);
    let mut segment = vec![0xFF, 0xE1];
    segment.extend(u16::try_from(2 + 6 + t.len()).unwrap().to_be_bytes());
    segment.extend(b"Exif\0\0");
    segment.extend(t);
    let mut out = plain[..2].to_vec();
    out.extend(segment);
    out.extend(&plain[2..]);
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn bytes(server: &TestServer, path: &str, token: &str) -> (u16, Vec<u8>) {
    let response = reqwest::Client::new().get(server.url(path)).bearer_auth(token).send().await.unwrap();
    (response.status().as_u16(), response.bytes().await.unwrap().to_vec())
}

async fn properties_end_to_end(backend: Backend) {
    let Some(server) = TestServer::start_with(backend, ApiConfig::default()).await else { return };
    let (owner, tenant) = server.owner().await;
    let t = |rest: &str| format!("/api/v1/tenants/{tenant}{rest}");
    let (_, project) = server.post(&t("/projects"), &owner, json!({ "name": "Listings" })).await;
    let project = project["id"].as_str().unwrap().to_owned();

    // Checked field by field.
    let mut bad = property("12 Elm Street", "Springfield", 450_000, "active", "MLS-1");
    bad["project_id"] = json!(project);
    bad["country"] = json!("USA");
    let (status, body) = server.post(&t("/properties"), &owner, bad.clone()).await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (422, Some("country")), "{body}");
    bad["country"] = json!("US");
    bad["baths"] = json!(2.25);
    let (status, body) = server.post(&t("/properties"), &owner, bad).await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (422, Some("baths")), "{body}");

    let mut created = Vec::new();
    for (street, city, price, status, reference) in [
        ("12 Elm Street", "Springfield", 450_000, "active", "MLS-1"),
        ("3 Oak Lane", "Springfield", 300_000, "pending", "MLS-2"),
        ("9 Harbour View", "Shelbyville", 800_000, "active", "MLS-3"),
    ] {
        let mut body = property(street, city, price, status, reference);
        body["project_id"] = json!(project);
        let (code, p) = server.post(&t("/properties"), &owner, body).await;
        assert_eq!(code, 201, "{p}");
        created.push(p);
    }
    let elm = created[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(created[0]["version"], 1);
    assert_eq!(created[0]["country"], "US");
    assert_eq!(created[0]["currency"], "USD");
    assert_eq!(created[0]["address"], "12 Elm Street, Springfield, IL 62704");
    let mut dup = property("1 Other", "Springfield", 1, "active", "MLS-1");
    dup["project_id"] = json!(project);
    let (status, body) = server.post(&t("/properties"), &owner, dup).await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (422, Some("reference")), "{body}");

    // Filters and search.
    let count = |body: &Value| body["items"].as_array().unwrap().len();
    for (query, expected) in [
        ("status=active", 2),
        ("city=SPRINGFIELD", 2),
        ("min_price=400000", 2),
        ("min_price=400000&max_price=500000", 1),
        ("q=elm", 1),
        ("q=mls-", 3),
        ("q=%25", 0),
        (&format!("project_id={project}&status=sold"), 0),
    ] {
        let (status, body) = server.get(&t(&format!("/properties?{query}")), &owner).await;
        assert_eq!(status, 200, "{query}: {body}");
        assert_eq!(count(&body), expected, "{query}");
    }
    let (status, _) = server.get(&t("/properties?min_price=5&max_price=1"), &owner).await;
    assert_eq!(status, 422);
    let (status, _) = server.get(&t("/properties?status=haunted"), &owner).await;
    assert_eq!(status, 422);

    // An edit names the version it was made on.
    let mut edit = property("12 Elm Street", "Springfield", 440_000, "active", "MLS-1");
    edit["version"] = json!(1);
    let (status, updated) = server
        .call(reqwest::Method::PUT, &t(&format!("/properties/{elm}")), Some(&owner), Some(edit.clone()))
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!((updated["version"].as_i64(), updated["price"].as_i64()), (Some(2), Some(440_000)));
    let (status, stale) =
        server.call(reqwest::Method::PUT, &t(&format!("/properties/{elm}")), Some(&owner), Some(edit)).await;
    assert_eq!((status, stale["error"]["code"].as_str()), (409, Some("version_changed")), "{stale}");

    // Photos: the EXIF (camera, GPS) does not survive; the photo is upright.
    let photos = t(&format!("/properties/{elm}/photos"));
    let original = jpeg_with_gps(800, 600);
    assert!(contains(&original, b"Exif") && contains(&original, b"CanaryCam"));
    let (status, first) = server.upload(&photos, &owner, "front.jpg", original).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!((first["width"].as_i64(), first["height"].as_i64()), (Some(600), Some(800)), "turned upright");
    assert_eq!(first["cover"], true);
    let (status, stored) = bytes(&server, first["url"].as_str().unwrap(), &owner).await;
    assert_eq!(status, 200);
    assert!(!contains(&stored, b"Exif"), "no EXIF block in the stored photo");
    assert!(!contains(&stored, b"CanaryCam"), "no camera make in the stored photo");
    let decoded = image::load_from_memory(&stored).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (600, 800));
    let (status, thumb) = bytes(&server, first["thumbnail_url"].as_str().unwrap(), &owner).await;
    assert_eq!(status, 200);
    let thumb = image::load_from_memory(&thumb).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (360, 480));

    let (status, body) = server.upload(&photos, &owner, "plan.jpg", b"%PDF-1.7 not a photo".to_vec()).await;
    assert_eq!(status, 415, "{body}");
    let (status, second) = server
        .upload(&photos, &owner, "back.png", {
            let mut png = Vec::new();
            image::DynamicImage::ImageRgb8(image::RgbImage::new(400, 300))
                .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                .unwrap();
            png
        })
        .await;
    assert_eq!(status, 201, "{second}");
    assert_eq!(second["position"], 1);
    let second_id = second["id"].as_str().unwrap();
    let (status, order) = server
        .patch(
            &format!("{photos}/{second_id}"),
            &owner,
            json!({ "position": 0, "alt": "The back garden at dusk" }),
        )
        .await;
    assert_eq!(status, 200, "{order}");
    assert_eq!(order[0]["id"], second["id"], "the cover now");
    assert_eq!(order[0]["alt"], "The back garden at dusk");
    assert_eq!(order[1]["id"], first["id"]);
    let (_, with_photos) = server.get(&t(&format!("/properties/{elm}")), &owner).await;
    assert_eq!(with_photos["photo_count"], 2);
    assert_eq!(with_photos["cover_thumbnail_url"], second["thumbnail_url"]);
    let (status, _) = server.delete(&format!("{photos}/{second_id}"), &owner).await;
    assert_eq!(status, 204);
    let (_, after) = server.get(&t(&format!("/properties/{elm}")), &owner).await;
    assert_eq!(after["photos"][0]["id"], first["id"]);
    assert_eq!(after["photos"][0]["position"], 0, "renumbered: the first photo is the cover again");
    let (status, _) = bytes(&server, second["url"].as_str().unwrap(), &owner).await;
    assert_eq!(status, 404);

    // CSV import: any refused row means nothing is imported.
    let import = t(&format!("/projects/{project}/properties/import"));
    let header = "street,city,region,postal_code,country,price,currency,beds,baths,floor_area,area_unit,property_type,status,features,agent_name,agent_contact,reference";
    let csv = |rows: &str| format!("{header}\n{rows}");
    let post_csv = |body: String| server.post_text(&import, &owner, "text/csv", body);
    let (status, report) = post_csv(csv(
        "1 Good Road,Capital City,IL,60001,US,250000,USD,2,1,900,sqft,condo,active,Balcony|Lift,Dana Realtor,555-0100,MLS-10\n\
         2 Bad Road,Capital City,IL,60001,US,lots,USD,2,1,900,sqft,condo,active,,Dana Realtor,555-0100,MLS-11\n\
         3 Taken Road,Capital City,IL,60001,US,250000,USD,2,1,900,sqft,condo,active,,Dana Realtor,555-0100,MLS-10\n",
    ))
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["imported"], 0, "{report}");
    let problems: Vec<(i64, &str)> = report["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["line"].as_i64().unwrap(), p["field"].as_str().unwrap()))
        .collect();
    assert_eq!(problems, [(3, "price"), (4, "reference")], "{report}");
    let (_, all) = server.get(&t("/properties"), &owner).await;
    assert_eq!(count(&all), 3, "nothing half-imported");
    let (status, report) = post_csv(csv(
        "1 Good Road,Capital City,IL,60001,US,250000,USD,2,1,900,sqft,condo,active,Balcony|Lift,Dana Realtor,555-0100,MLS-10\n\
         2 Fine Road,Capital City,IL,60001,US,260000,USD,2,1.5,950,m2,townhouse,coming_soon,,Dana Realtor,555-0100,\n",
    ))
    .await;
    assert_eq!((status, report["imported"].as_i64()), (200, Some(2)), "{report}");
    let (_, report) = post_csv(csv(
        "9 Again Road,Capital City,IL,60001,US,250000,USD,2,1,900,sqft,condo,active,,Dana Realtor,555-0100,MLS-3\n",
    ))
    .await;
    assert_eq!(report["imported"], 0, "{report}");
    assert_eq!(report["refused"][0]["field"], "reference", "{report}");
    assert_eq!(report["refused"][0]["line"], 2, "{report}");
    let (status, body) = post_csv("street,city,colour\n".into()).await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (422, Some("file")), "{body}");

    // A listing kit from the property keeps the link and the version.
    let activities = t(&format!("/projects/{project}/activities"));
    let (status, kit) = server
        .post(
            &activities,
            &owner,
            json!({ "kind": "listing_kit", "property_id": elm, "platforms": ["instagram"], "wait_for_agent": true }),
        )
        .await;
    assert_eq!(status, 202, "{kit}");
    assert_eq!(kit["property_id"], json!(elm));
    assert_eq!(kit["property_version"], 2);
    assert_eq!(kit["title"], "12 Elm Street, Springfield, IL 62704");
    let (_, listed) = server.get(&t(&format!("/properties/{elm}/activities")), &owner).await;
    assert_eq!(listed["items"][0]["id"], kit["id"], "{listed}");
    let (status, body) = server
        .post(
            &activities,
            &owner,
            json!({ "kind": "blog_article", "topic": "Homes", "property_id": elm, "wait_for_agent": true }),
        )
        .await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (422, Some("property_id")), "{body}");

    // A viewer reads and cannot change; another organisation sees nothing.
    let (viewer, _) = server.add_user(&owner, &tenant, "viewer@example.com", "viewer").await;
    let (status, _) = server.get(&t(&format!("/properties/{elm}")), &viewer).await;
    assert_eq!(status, 200);
    let (status, _) = server.delete(&t(&format!("/properties/{elm}")), &viewer).await;
    assert_eq!(status, 403);
    let (_, other) = server.post("/api/v1/tenants", &owner, json!({ "name": "Other" })).await;
    let other = other["id"].as_str().unwrap().to_owned();
    let (outsider, _) = server.add_user(&owner, &other, "outsider@example.com", "admin").await;
    let mine = |rest: &str| format!("/api/v1/tenants/{other}/properties/{elm}{rest}");
    for path in [mine(""), mine("/activities"), mine(&format!("/photos/{}", first["id"].as_str().unwrap()))] {
        let (status, _) = server.get(&path, &outsider).await;
        assert_eq!(status, 404, "{path}");
    }
    let (status, _) = server.delete(&mine(""), &outsider).await;
    assert_eq!(status, 404);
    let (_, theirs) = server.get(&format!("/api/v1/tenants/{other}/properties"), &outsider).await;
    assert_eq!(count(&theirs), 0);
    // Their own tenant id with our property: the URL's tenant decides.
    let (status, _) = server.get(&t(&format!("/properties/{elm}")), &outsider).await;
    assert_eq!(status, 404);

    // Deleting removes the photos' files; the kit stays, unlinked.
    let (status, _) = server.delete(&t(&format!("/properties/{elm}")), &owner).await;
    assert_eq!(status, 204);
    let (status, _) = bytes(&server, first["url"].as_str().unwrap(), &owner).await;
    assert_eq!(status, 404);
    let (_, kit) = server.get(&format!("{activities}/{}", kit["id"].as_str().unwrap()), &owner).await;
    assert_eq!(kit["property_id"], Value::Null);
}

#[tokio::test]
async fn properties_end_to_end_on_sqlite() {
    properties_end_to_end(Backend::Sqlite).await;
}

#[tokio::test]
async fn properties_end_to_end_on_postgres() {
    properties_end_to_end(Backend::Postgres).await;
}
