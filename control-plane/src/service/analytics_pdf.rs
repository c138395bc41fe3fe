//! How an analytics report is shown: the headline numbers with their
//! change, the charts (drawn by `crate::charts`) and the wording of absent
//! numbers, shared by the analytics page and the PDF report; and the PDF
//! report of a period itself (laid out by `crate::pdf::report`, on the
//! tenant's paper size).

use uuid::Uuid;

use super::analytics_reports::{AnalyticsReport, FollowersSummary, ReportQuery, Totals};
use super::{App, PdfFile, RealEstateSettingsView, TenantAccess};
use crate::charts::{self, Series};
use crate::error::{Error, FoundExt, Result};
use crate::pdf::report::{Column, Report, Section, Tile};
use crate::pdf::{Paper, report};
use crate::publishing::schedule;
use crate::store::Network;

/// A headline number with the previous period's.
#[derive(Debug, Clone)]
pub struct Kpi {
    pub label: &'static str,
    pub value: String,
    pub previous: String,
    /// `+25 %`, `−3 %`, or empty when there is nothing to compare.
    pub change: String,
    /// `up`, `down` or empty.
    pub trend: &'static str,
}

/// A count, or that no post's platform reported it.
pub fn count(v: Option<i64>) -> String {
    v.map_or_else(|| "not reported".into(), |v| v.to_string())
}

/// An engagement rate as a percentage, or why there is none.
pub fn rate(v: Option<f64>) -> String {
    v.map_or_else(|| "no impressions or followers".into(), |r| format!("{:.2} %", r * 100.0))
}

fn change(now: Option<f64>, before: Option<f64>) -> (String, &'static str) {
    match (now, before) {
        (Some(n), Some(b)) if b > 0.0 => {
            let pct = (n - b) / b * 100.0;
            let sign = if pct >= 0.0 { "+" } else { "−" };
            (format!("{sign}{:.0} %", pct.abs()), if pct >= 0.0 { "up" } else { "down" })
        }
        _ => (String::new(), ""),
    }
}

/// Posts, impressions, engagements and engagement rate, each with the
/// previous period's and the change; then followers (where read) against
/// the period's start.
#[allow(clippy::cast_precision_loss)]
pub fn kpis(now: &Totals, before: &Totals, followers: Option<&FollowersSummary>) -> Vec<Kpi> {
    let f = |v: Option<i64>| v.map(|v| v as f64);
    let posts = |t: &Totals| Some(t.posts as f64);
    [
        ("Posts published", posts(now), posts(before), now.posts.to_string(), before.posts.to_string()),
        (
            "Impressions",
            f(now.impressions),
            f(before.impressions),
            count(now.impressions),
            count(before.impressions),
        ),
        (
            "Engagements",
            f(now.engagements),
            f(before.engagements),
            count(now.engagements),
            count(before.engagements),
        ),
        (
            "Engagement rate",
            now.engagement_rate,
            before.engagement_rate,
            rate(now.engagement_rate),
            rate(before.engagement_rate),
        ),
    ]
    .into_iter()
    .map(|(label, n, b, value, previous)| {
        let previous = if before.posts == 0 { "no posts".to_owned() } else { previous };
        let value = if now.posts == 0 && label != "Posts published" { "no posts".to_owned() } else { value };
        let (change, trend) = change(n, b);
        Kpi { label, value, previous, change, trend }
    })
    .chain(followers.map(|f| {
        let (change, trend) = change(Some(f.latest as f64), Some(f.at_start as f64));
        Kpi {
            label: "Followers",
            value: f.latest.to_string(),
            previous: f.at_start.to_string(),
            change,
            trend,
        }
    }))
    .collect()
}

/// A report's charts as SVG; empty where there is nothing to draw or the
/// drawing failed (logged: the numbers are still shown as tables).
#[derive(Debug, Clone)]
pub struct ReportCharts {
    pub over_time_title: String,
    pub over_time: String,
    pub by_network: String,
    /// Followers over the period; empty when none were read.
    pub followers: String,
}

fn chart(result: std::result::Result<String, String>) -> String {
    result.unwrap_or_else(|e| {
        tracing::error!(error = %e, "a chart failed to draw");
        String::new()
    })
}

impl AnalyticsReport {
    pub fn charts(&self) -> ReportCharts {
        let labels: Vec<String> = self.series.iter().map(|p| p.start.clone()).collect();
        #[allow(clippy::cast_precision_loss)]
        let values: Vec<Option<f64>> = self
            .series
            .iter()
            .map(|p| if p.totals.posts == 0 { Some(0.0) } else { p.totals.engagements.map(|e| e as f64) })
            .collect();
        let described = self
            .series
            .iter()
            .map(|p| format!("{}: {}", p.start, count(p.totals.engagements)))
            .collect::<Vec<_>>()
            .join("; ");
        let over_time_title =
            format!("Engagements per {}, {} to {} ({})", self.bucket, self.from, self.to, self.time_zone);
        let over_time = chart(charts::line(
            &over_time_title,
            &described,
            &labels,
            &[Series { name: "Engagements", values }],
            "engagements",
        ));
        #[allow(clippy::cast_precision_loss)]
        let bars: Vec<(String, f64)> = self
            .by_network
            .iter()
            .map(|n| (n.network.label().to_owned(), n.totals.engagements.unwrap_or(0) as f64))
            .collect();
        let by_network = if bars.is_empty() {
            String::new()
        } else {
            chart(charts::bars(
                "Engagements by network",
                &bars.iter().map(|(l, v)| format!("{l}: {v}")).collect::<Vec<_>>().join("; "),
                &bars,
                "engagements",
            ))
        };
        let followers = match &self.followers {
            Some(f) => {
                let values: Vec<Option<f64>> =
                    f.series.iter().map(|p| p.followers.map(|n| n as f64)).collect();
                let described = f
                    .series
                    .iter()
                    .map(|p| {
                        format!(
                            "{}: {}",
                            p.start,
                            p.followers.map_or("not read yet".into(), |n| n.to_string())
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                chart(charts::line(
                    &format!("Followers by the end of each {}, {} to {}", self.bucket, self.from, self.to),
                    &described,
                    &labels,
                    &[Series { name: "Followers", values }],
                    "followers",
                ))
            }
            None => String::new(),
        };
        ReportCharts { over_time_title, over_time, by_network, followers }
    }
}

fn totals_row(label: String, t: &Totals) -> Vec<String> {
    vec![label, t.posts.to_string(), count(t.impressions), count(t.engagements), rate(t.engagement_rate)]
}

fn totals_columns(first: &str) -> Vec<Column> {
    vec![
        Column::text(first, 2.0),
        Column::number("Posts", 1.0),
        Column::number("Impressions", 1.3),
        Column::number("Engagements", 1.3),
        Column::number("Engagement rate", 1.6),
    ]
}

fn parsed(value: Option<&String>) -> Option<Uuid> {
    value.and_then(|v| Uuid::parse_str(v.trim()).ok())
}

impl App {
    /// What a report's filters select, in words: "Campaign Spring launch
    /// (project Acme) · X only".
    async fn report_subject(&self, access: &TenantAccess, q: &ReportQuery) -> Result<String> {
        let mut parts = Vec::new();
        let project = match parsed(q.project_id.as_ref()) {
            Some(id) => Some(self.project(access, id).await?),
            None => None,
        };
        match (parsed(q.campaign_id.as_ref()), &project) {
            (Some(campaign), Some(p)) => {
                let c = self.campaign(access, p.id, campaign).await?;
                parts.push(format!("Campaign {} (project {})", c.name, p.name));
            }
            (Some(_), None) => {
                return Err(Error::invalid(
                    "project_id",
                    "choose the campaign's project too (campaign_id needs it)",
                ));
            }
            (None, Some(p)) => parts.push(format!("Project {}", p.name)),
            (None, None) => {}
        }
        if let Some(account) = parsed(q.account_id.as_ref()) {
            let a = self.social_account(access, account).await?;
            parts.push(format!("Account {} on {}", a.handle, a.network.label()));
        }
        if let Some(network) = q.network.as_deref().and_then(|n| n.trim().parse::<Network>().ok()) {
            parts.push(format!("{} only", network.label()));
        }
        Ok(if parts.is_empty() { "All accounts, projects and campaigns".into() } else { parts.join(" · ") })
    }

    /// The report of a period as a PDF: the headline numbers against the
    /// period before, the charts, the numbers by network and over time, and
    /// the top posts.
    pub async fn analytics_pdf(&self, access: &TenantAccess, q: &ReportQuery) -> Result<PdfFile> {
        let r = self.analytics_report(access, q).await?;
        let subject = self.report_subject(access, q).await?;
        let tenant = self.store.tenant(access.tenant_id).await.found("tenant")?;
        let settings = self.store.real_estate_settings(access.tenant_id).await?;
        let brand = settings.map(RealEstateSettingsView::from).unwrap_or_default();
        let charts = r.charts();
        let mut context = vec![
            format!("{} to {}, days in {}", r.from, r.to, r.time_zone),
            subject,
            format!("Compared with {} to {}", r.previous_from, r.previous_to),
        ];
        if r.truncated {
            context.push("More than 50,000 posts: this report covers the first 50,000.".into());
        }
        let mut sections = Vec::new();
        if !charts.over_time.is_empty() {
            sections.push(Section::Chart { title: "Engagements over time".into(), svg: charts.over_time });
        }
        if !charts.by_network.is_empty() {
            sections.push(Section::Chart { title: "Engagements by network".into(), svg: charts.by_network });
        }
        if !charts.followers.is_empty() {
            sections.push(Section::Chart { title: "Followers".into(), svg: charts.followers });
        }
        sections.push(Section::Table {
            title: "By network".into(),
            columns: totals_columns("Network"),
            rows: r.by_network.iter().map(|n| totals_row(n.network.label().into(), &n.totals)).collect(),
            empty: "No posts were published in this period.".into(),
        });
        sections.push(Section::Table {
            title: format!("By {}", r.bucket),
            columns: totals_columns(if r.bucket == "day" { "Day" } else { "Starting" }),
            rows: r.series.iter().map(|p| totals_row(p.start.clone(), &p.totals)).collect(),
            empty: "No days in this period.".into(),
        });
        sections.push(Section::Table {
            title: "Top posts by engagements".into(),
            columns: vec![
                Column::text("Published", 1.3),
                Column::text("Account", 1.4),
                Column::text("Post", 3.6),
                Column::number("Impressions", 1.2),
                Column::number("Engagements", 1.2),
                Column::number("Rate", 1.0),
            ],
            rows: r
                .top_posts
                .iter()
                .map(|t| {
                    vec![
                        schedule::instant_to_local(t.published_at, &r.time_zone).replace('T', " "),
                        format!("{} ({})", t.handle, t.network.label()),
                        t.text.clone(),
                        count(t.impressions),
                        count(t.engagements),
                        rate(t.engagement_rate),
                    ]
                })
                .collect(),
            empty: "No post in this period has been read yet.".into(),
        });
        let document = Report {
            paper: if brand.paper_size == "a4" { Paper::A4 } else { Paper::Letter },
            title: "Analytics report".into(),
            organisation: tenant.name.to_string(),
            context,
            tiles: kpis(&r.totals, &r.previous, r.followers.as_ref())
                .into_iter()
                .map(|k| Tile {
                    label: k.label.into(),
                    note: if k.change.is_empty() {
                        format!("before: {}", k.previous)
                    } else {
                        format!("before: {} ({})", k.previous, k.change)
                    },
                    value: k.value,
                })
                .collect(),
            sections,
            footnote: format!(
                "{} A number shown as \"not reported\" is one no post's platform gave; it is not zero.",
                r.engagement_rate_definition
            ),
            generated: format!(
                "{} ({})",
                schedule::instant_to_local(crate::domain::Timestamp::now(), &r.time_zone).replace('T', " "),
                r.time_zone
            ),
        };
        // Drawn on the blocking pool, a few at a time, as flyers are.
        let pdf = self
            .images
            .blocking(move || report::render(&document).map_err(|e| Error::Internal(anyhow::anyhow!(e))))
            .await?;
        Ok(PdfFile { filename: format!("analytics-{}-to-{}.pdf", r.from, r.to), pdf })
    }
}
