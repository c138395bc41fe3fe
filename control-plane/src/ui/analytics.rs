//! The analytics page: what the organisation's published posts achieved
//! over a period, compared with the period before, with charts drawn on the
//! server (`crate::charts`), the numbers as tables, the top posts and a CSV
//! export of the same selection.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;

use super::page::{Shell, UiError, every, render};
use super::session::{Query, TenantPage};
use crate::api::ApiState;
use crate::api::routes::analytics::csv_download;
use crate::domain::Permission;
use crate::service::{AnalyticsReport, Kpi, ReportQuery, Totals, count, kpis, rate};

struct Choice {
    value: String,
    label: String,
    selected: bool,
}

struct Row {
    label: String,
    posts: i64,
    impressions: String,
    engagements: String,
    rate: String,
}

struct Top {
    href: String,
    url: Option<String>,
    network: &'static str,
    handle: String,
    text: String,
    published: String,
    impressions: String,
    engagements: String,
    rate: String,
}

#[derive(Template)]
#[template(path = "analytics.html")]
struct AnalyticsPage {
    shell: Shell,
    report: AnalyticsReport,
    kpis: Vec<Kpi>,
    over_time: String,
    by_network: String,
    /// Followers over the period (SVG); empty when none were read.
    followers_chart: String,
    /// Each bucket's first day and its followers, for the table.
    followers: Vec<(String, String)>,
    series: Vec<Row>,
    networks: Vec<Row>,
    top: Vec<Top>,
    accounts: Vec<Choice>,
    projects: Vec<Choice>,
    /// The chosen project's campaigns (campaigns belong to a project).
    campaigns: Vec<Choice>,
    network_choices: Vec<Choice>,
    buckets: Vec<Choice>,
    csv_href: String,
    pdf_href: String,
}

fn row(label: String, t: &Totals) -> Row {
    Row {
        label,
        posts: t.posts,
        impressions: count(t.impressions),
        engagements: count(t.engagements),
        rate: rate(t.engagement_rate),
    }
}

/// The form sends every field; empty ones mean "any".
#[derive(Debug, Default, Deserialize)]
pub struct AnalyticsForm {
    from: Option<String>,
    to: Option<String>,
    bucket: Option<String>,
    account_id: Option<String>,
    project_id: Option<String>,
    campaign_id: Option<String>,
    network: Option<String>,
}

impl AnalyticsForm {
    fn query(self) -> ReportQuery {
        ReportQuery {
            from: self.from,
            to: self.to,
            bucket: self.bucket,
            account_id: self.account_id,
            // A campaign is chosen within its project.
            campaign_id: self
                .campaign_id
                .filter(|_| self.project_id.as_deref().is_some_and(|p| !p.is_empty())),
            project_id: self.project_id,
            network: self.network,
            ..ReportQuery::default()
        }
    }
}

fn query_string(q: &ReportQuery) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("from", &q.from),
        ("to", &q.to),
        ("bucket", &q.bucket),
        ("account_id", &q.account_id),
        ("project_id", &q.project_id),
        ("campaign_id", &q.campaign_id),
        ("network", &q.network),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            out.append_pair(k, v);
        }
    }
    out.finish()
}

pub async fn page(
    State(state): State<ApiState>,
    page: TenantPage,
    Query(form): Query<AnalyticsForm>,
) -> Result<Response, UiError> {
    page.access.require(Permission::PostsRead)?;
    let q = form.query();
    let report = state.app.analytics_report(&page.access, &q).await?;
    let charts = report.charts();
    let accounts = state.app.social_accounts(&page.access).await?;
    let projects = every(|p| state.app.projects(&page.access, p)).await?;
    let selected = |value: &Option<String>, id: &str| value.as_deref() == Some(id);
    let project = projects.iter().find(|p| selected(&q.project_id, &p.id.to_string())).map(|p| p.id);
    let campaigns = match project {
        Some(project) => every(|p| state.app.campaigns(&page.access, project, p)).await?,
        None => Vec::new(),
    };
    let view = AnalyticsPage {
        kpis: kpis(&report.totals, &report.previous, report.followers.as_ref()),
        series: report.series.iter().map(|p| row(p.start.clone(), &p.totals)).collect(),
        networks: report.by_network.iter().map(|n| row(n.network.label().to_owned(), &n.totals)).collect(),
        top: report
            .top_posts
            .iter()
            .map(|t| Top {
                href: page.path(&format!("/posts/{}", t.post_id)),
                url: t.platform_url.clone(),
                network: t.network.label(),
                handle: t.handle.clone(),
                text: t.text.clone(),
                published: crate::publishing::schedule::instant_to_local(t.published_at, &report.time_zone)
                    .replace('T', " "),
                impressions: count(t.impressions),
                engagements: count(t.engagements),
                rate: rate(t.engagement_rate),
            })
            .collect(),
        accounts: accounts
            .iter()
            .map(|a| Choice {
                value: a.id.to_string(),
                label: format!("{} ({})", a.handle, a.network.label()),
                selected: selected(&q.account_id, &a.id.to_string()),
            })
            .collect(),
        projects: projects
            .iter()
            .map(|p| Choice {
                value: p.id.to_string(),
                label: p.name.to_string(),
                selected: selected(&q.project_id, &p.id.to_string()),
            })
            .collect(),
        campaigns: campaigns
            .iter()
            .map(|c| Choice {
                value: c.id.to_string(),
                label: c.name.to_string(),
                selected: selected(&q.campaign_id, &c.id.to_string()),
            })
            .collect(),
        network_choices: <crate::store::Network as strum::IntoEnumIterator>::iter()
            .map(|n| {
                let value: &'static str = n.into();
                Choice { value: value.into(), label: n.label().into(), selected: selected(&q.network, value) }
            })
            .collect(),
        buckets: ["day", "week", "month"]
            .iter()
            .map(|b| Choice { value: (*b).into(), label: format!("By {b}"), selected: report.bucket == *b })
            .collect(),
        csv_href: format!("{}?{}", page.path("/analytics/posts.csv"), query_string(&q)),
        pdf_href: format!("{}?{}", page.path("/analytics/report.pdf"), query_string(&q)),
        over_time: charts.over_time,
        by_network: charts.by_network,
        followers_chart: charts.followers,
        followers: report
            .followers
            .as_ref()
            .map(|f| {
                f.series
                    .iter()
                    .map(|p| (p.start.clone(), p.followers.map_or("not read yet".into(), |n| n.to_string())))
                    .collect()
            })
            .unwrap_or_default(),
        report,
        shell: page.shell,
    };
    Ok(render(&view))
}

/// The page's selection as a PDF report.
pub async fn report_pdf(
    State(state): State<ApiState>,
    page: TenantPage,
    Query(form): Query<AnalyticsForm>,
) -> Result<Response, UiError> {
    Ok(crate::api::routes::flyers::pdf(state.app.analytics_pdf(&page.access, &form.query()).await?))
}

/// The page's selection as CSV.
pub async fn posts_csv(
    State(state): State<ApiState>,
    page: TenantPage,
    Query(form): Query<AnalyticsForm>,
) -> Result<Response, UiError> {
    Ok(csv_download(state.app.analytics_csv(&page.access, &form.query()).await?))
}
