//! The A/B tests page (under Analytics): the organisation's tests with
//! their variants, the numbers (so far, or final), the verdict in words,
//! and a form to start a test of two variants.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use uuid::Uuid;

use super::page::{FormErrors, Shell, UiError, render_form, see_other};
use super::session::{Submit, TenantPage};
use super::view::When;
use crate::api::ApiState;
use crate::domain::Permission;
use crate::service::ab_tests::{AbTestView, CreateAbTest, Traits, p_text, platform_of, what_worked_line};
use crate::service::{CreatePost, count};

struct Choice {
    value: String,
    label: String,
}

struct VariantRow {
    label: String,
    account: String,
    text: String,
    status: String,
    post_href: String,
    engagements: String,
    base: String,
    rate: String,
    winner: bool,
}

struct TestCard {
    id: Uuid,
    name: String,
    status: String,
    split: &'static str,
    ends: When,
    decided: Option<When>,
    verdict: String,
    variants: Vec<VariantRow>,
    /// `B against A: difference 1.2 points, z = 2.10, p = 0.036`.
    comparisons: Vec<String>,
    traits: Option<String>,
    /// What later social posts are told (see `App::what_worked`).
    told: Option<String>,
}

#[derive(Template)]
#[template(path = "ab_tests.html")]
struct AbTestsPage {
    shell: Shell,
    tests: Vec<TestCard>,
    accounts: Vec<Choice>,
    can_create: bool,
    errors: FormErrors,
    typed: TestForm,
    action: String,
}

/// The form: a name, the window, and two variants (account, text, and a
/// local time or none for now).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TestForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    window_hours: String,
    #[serde(default)]
    a_account: String,
    #[serde(default)]
    a_text: String,
    #[serde(default)]
    a_time: String,
    #[serde(default)]
    b_account: String,
    #[serde(default)]
    b_text: String,
    #[serde(default)]
    b_time: String,
    /// A random id per form shown: the request's Idempotency-Key, so a
    /// second click of the button does not start the test twice.
    #[serde(default)]
    submission: String,
}

fn card(page: &TenantPage, t: &AbTestView) -> TestCard {
    let decision = t.decision.as_ref();
    let winner = decision.and_then(|d| d.winner.clone());
    let numbers = |label: &str| decision.and_then(|d| d.variants.iter().find(|v| v.label == label));
    TestCard {
        id: t.id,
        name: t.name.clone(),
        status: t.status.clone(),
        split: if t.split == "times" { "one account at different times" } else { "different accounts at the same time" },
        ends: When::of(t.ends_at),
        decided: When::maybe(t.decided_at),
        verdict: decision.map(|d| d.verdict.clone()).unwrap_or_default(),
        variants: t
            .variants
            .iter()
            .map(|v| {
                let n = numbers(&v.label);
                VariantRow {
                    label: v.label.clone(),
                    account: format!(
                        "{} ({})",
                        v.handle,
                        v.network.parse::<crate::store::Network>().map_or(v.network.as_str(), |n| n.label())
                    ),
                    text: v.text.clone(),
                    status: v.status.to_string(),
                    post_href: page.path(&format!("/posts/{}", v.post_id)),
                    engagements: match n {
                        Some(n) if n.engagements.is_some() || n.base.is_some() => count(n.engagements),
                        _ => "not read yet".into(),
                    },
                    base: n
                        .and_then(|n| n.base.map(|b| format!("{b} {}", n.base_kind.as_deref().unwrap_or(""))))
                        .unwrap_or_else(|| "not read yet".into()),
                    rate: n.and_then(|n| n.rate).map_or_else(|| "—".into(), |r| format!("{:.2} %", r * 100.0)),
                    winner: winner.as_deref() == Some(v.label.as_str()),
                }
            })
            .collect(),
        comparisons: decision
            .map(|d| {
                d.comparisons
                    .iter()
                    .map(|c| {
                        format!(
                            "{} against {}: {:+.2} percentage points{}, z = {:.2}, {} (beyond chance below {:.4})",
                            c.best,
                            c.other,
                            c.difference * 100.0,
                            c.lift.map(|l| format!(" ({:+.0} %)", l * 100.0)).unwrap_or_default(),
                            c.z,
                            p_text(c.p_value),
                            d.alpha
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
        traits: decision.and_then(|d| d.winner_traits.as_ref()).map(Traits::describe),
        told: told(t),
    }
}

/// The line later social posts for the winner's network are told, when
/// the pipeline writes for that network.
fn told(t: &AbTestView) -> Option<String> {
    let decision = t.decision.as_ref().filter(|_| t.status == "decided")?;
    let winner = t.variants.iter().find(|v| decision.winner.as_deref() == Some(v.label.as_str()))?;
    let network = winner.network.parse::<crate::store::Network>().ok()?;
    platform_of(network)?;
    what_worked_line(&winner.handle, decision)
}

async fn show(
    state: &ApiState,
    page: TenantPage,
    errors: FormErrors,
    typed: TestForm,
) -> Result<Response, UiError> {
    page.access.require(Permission::PostsRead)?;
    let tests = state.app.ab_tests(&page.access).await?;
    let can_create = page.can(Permission::PostsWrite);
    let accounts = if can_create { state.app.social_accounts(&page.access).await? } else { Vec::new() };
    let view = AbTestsPage {
        tests: tests.iter().map(|t| card(&page, t)).collect(),
        accounts: accounts
            .iter()
            .map(|a| Choice {
                value: a.id.to_string(),
                label: format!("{} ({})", a.handle, a.network.label()),
            })
            .collect(),
        can_create,
        action: page.path("/analytics/ab-tests"),
        errors,
        typed,
        shell: page.shell,
    };
    Ok(render_form(&view, &view.errors))
}

pub async fn page(State(state): State<ApiState>, page: TenantPage) -> Result<Response, UiError> {
    let form = TestForm {
        window_hours: "24".into(),
        submission: crate::domain::new_id().to_string(),
        ..TestForm::default()
    };
    show(&state, page, FormErrors::default(), form).await
}

/// The form's submission id as an Idempotency-Key (none if it is not an id).
fn submission_key(submission: &str) -> Option<String> {
    Uuid::parse_str(submission.trim()).ok().map(|id| format!("ui-ab-{id}"))
}

fn variant(field: &str, account: &str, text: &str, time: &str) -> Result<CreatePost, FormErrors> {
    let account_id = Uuid::parse_str(account.trim()).map_err(|_| {
        let mut e = FormErrors::default();
        e.add(field, "choose an account");
        e
    })?;
    let time = time.trim();
    Ok(CreatePost {
        account_id,
        text: Some(text.to_owned()),
        approve: true,
        now: time.is_empty(),
        local_time: (!time.is_empty()).then(|| time.to_owned()),
        ..CreatePost::default()
    })
}

/// A variant's error named as the form's field: `variants[1].text` is `b_text`.
fn form_field(e: crate::error::Error) -> crate::error::Error {
    match e {
        crate::error::Error::Invalid { field, message } => {
            let mapped = ["a", "b"].iter().enumerate().find_map(|(i, side)| {
                let rest = field.strip_prefix(&format!("variants[{i}]."))?;
                Some(match rest {
                    "account_id" => format!("{side}_account"),
                    "text" | "activity_id" | "variant" => format!("{side}_text"),
                    _ => format!("{side}_time"),
                })
            });
            crate::error::Error::invalid(mapped.unwrap_or(field), message)
        }
        other => other,
    }
}

pub async fn create(State(state): State<ApiState>, submit: Submit<TestForm>) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let typed = form.clone();
    let request = (|| {
        let window_hours =
            FormErrors::whole_number("window_hours", Some(&form.window_hours), "hours, 1 to 720")?
                .unwrap_or(24);
        let variants = vec![
            variant("a_account", &form.a_account, &form.a_text, &form.a_time)?,
            variant("b_account", &form.b_account, &form.b_text, &form.b_time)?,
        ];
        Ok::<_, FormErrors>(CreateAbTest { name: form.name.clone(), window_hours, variants })
    })();
    let result = match request {
        Ok(req) => state
            .app
            .create_ab_test(&page.access, req, submission_key(&form.submission))
            .await
            .map_err(|e| FormErrors::from_error(form_field(e))),
        Err(errors) => Err(Ok(errors)),
    };
    match result {
        Ok((test, _)) => Ok(see_other(&page.path(&format!("/analytics/ab-tests#test-{}", test.id)))),
        Err(errors) => show(&state, page, errors?, typed).await,
    }
}
