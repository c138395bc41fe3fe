//! Lead-scoring weights fitted to a tenant's own outcomes. Until a tenant
//! has enough won and lost leads the default weights apply; then a
//! logistic regression of won-versus-lost on the six signals' values gives
//! each signal a weight (negative ones count zero; the weights are scaled
//! to add up to 100, so a score stays 0 to 100 and the bands keep their
//! meaning). Before and after are shown as how often a won lead outscores
//! a lost one (the area under the ROC curve). Applying the fit rescores
//! every lead of the tenant at once; it can be reset to the defaults.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::leads::{DEFAULT_WEIGHTS, RealEstateSettingsView, WeightedScorer};
use super::{App, TenantAccess, actions};
use crate::domain::{Permission, Timestamp};
use crate::error::{Error, Result};
use crate::store::{LeadFilter, LeadStatus, PageRequest, RealEstateSettings};

/// Won and lost leads each needed before fitting.
pub const MIN_EACH: usize = 10;
/// Leads of each outcome read for a fit.
const MAX_EACH: usize = 5_000;

/// One signal's weight: the default and the one in use.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WeightView {
    pub signal: String,
    pub default: f64,
    pub current: f64,
}

/// How a fit went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FitReport {
    #[schema(value_type = String, format = DateTime)]
    pub fitted_at: Timestamp,
    pub won: usize,
    pub lost: usize,
    /// How often a won lead outscored a lost one with the weights before
    /// the fit (0 to 1; 0.5 is a coin toss).
    pub before: f64,
    /// The same with the fitted weights.
    pub after: f64,
    /// The weights before the fit.
    pub previous: Vec<f64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScoringView {
    pub weights: Vec<WeightView>,
    /// The last fit, while its weights are in use.
    pub fit: Option<FitReport>,
    /// Won and lost leads so far, and how many of each a fit needs.
    pub won: usize,
    pub lost: usize,
    pub needed_each: usize,
}

/// The probability-free part of a logistic regression: weights and bias by
/// gradient descent on the mean log-loss, lightly L2-regularised (the
/// signals are 0 to 1, so no scaling is needed).
pub fn logistic(rows: &[([f64; 6], bool)]) -> [f64; 6] {
    let mut w = [0.0_f64; 6];
    let mut bias = 0.0_f64;
    #[allow(clippy::cast_precision_loss)]
    let n = rows.len().max(1) as f64;
    let (rate, l2) = (0.5, 0.001);
    for _ in 0..3_000 {
        let mut grad = [0.0_f64; 6];
        let mut grad_bias = 0.0;
        for (x, won) in rows {
            let z = bias + x.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>();
            let p = 1.0 / (1.0 + (-z).exp());
            let err = p - if *won { 1.0 } else { 0.0 };
            for (g, xi) in grad.iter_mut().zip(x) {
                *g += err * xi;
            }
            grad_bias += err;
        }
        for (wi, g) in w.iter_mut().zip(grad) {
            *wi -= rate * (g / n + l2 * *wi);
        }
        bias -= rate * grad_bias / n;
    }
    w
}

/// Coefficients as weights: negatives count zero, the rest scaled to add
/// up to 100 (rounded to tenths). `None` when no signal tells won from lost.
pub fn as_weights(coefficients: [f64; 6]) -> Option<[f64; 6]> {
    let positive = coefficients.map(|c| c.max(0.0));
    let total: f64 = positive.iter().sum();
    (total > 1e-6).then(|| positive.map(|c| (c / total * 1_000.0).round() / 10.0))
}

/// How often a won lead scores above a lost one (ties count half).
pub fn auc(rows: &[([f64; 6], bool)], weights: &[f64; 6]) -> f64 {
    let score = |x: &[f64; 6]| x.iter().zip(weights).map(|(a, b)| a * b).sum::<f64>();
    let won: Vec<f64> = rows.iter().filter(|r| r.1).map(|r| score(&r.0)).collect();
    let lost: Vec<f64> = rows.iter().filter(|r| !r.1).map(|r| score(&r.0)).collect();
    if won.is_empty() || lost.is_empty() {
        return 0.5;
    }
    let mut wins = 0.0;
    for w in &won {
        for l in &lost {
            wins += if w > l {
                1.0
            } else if (w - l).abs() < 1e-9 {
                0.5
            } else {
                0.0
            };
        }
    }
    #[allow(clippy::cast_precision_loss)]
    let pairs = (won.len() * lost.len()) as f64;
    (wins / pairs * 1_000.0).round() / 1_000.0
}

fn parse_weights(json: Option<&str>) -> Option<[f64; 6]> {
    let v: Vec<f64> = serde_json::from_str(json?).ok()?;
    <[f64; 6]>::try_from(v).ok().filter(|w| w.iter().all(|x| x.is_finite() && *x >= 0.0))
}

/// The scoring engine with these weights.
fn scorer_with(fitted: [f64; 6]) -> WeightedScorer {
    let mut scorer = WeightedScorer::default();
    for ((_, w), f) in scorer.weights.iter_mut().zip(fitted) {
        *w = f;
    }
    scorer
}

/// The scoring engine with a tenant's weights (fitted, else default).
fn scorer_of(settings: Option<&RealEstateSettings>) -> WeightedScorer {
    settings
        .and_then(|s| parse_weights(s.score_weights.as_deref()))
        .map_or_else(WeightedScorer::default, scorer_with)
}

impl App {
    /// The scoring engine with the tenant's weights (fitted, else default).
    pub(super) async fn scorer(&self, tenant_id: Uuid) -> Result<WeightedScorer> {
        let settings = self.store.real_estate_settings(tenant_id).await?;
        Ok(scorer_of(settings.as_ref()))
    }

    /// Each won or lost lead's signal values (as of its last score).
    async fn outcomes(&self, tenant_id: Uuid) -> Result<Vec<([f64; 6], bool)>> {
        let mut rows = Vec::new();
        for (status, won) in [(LeadStatus::Won, true), (LeadStatus::Lost, false)] {
            let filter = LeadFilter { status: Some(status), ..LeadFilter::default() };
            let mut after = None;
            let mut seen = 0;
            loop {
                let page = self.store.leads(tenant_id, &filter, PageRequest { after, limit: 500 }).await?;
                for lead in &page.items {
                    let mut x = [0.0; 6];
                    for (slot, (name, _)) in x.iter_mut().zip(DEFAULT_WEIGHTS) {
                        *slot = lead.score.signals.iter().find(|s| s.name == name).map_or(0.0, |s| s.value);
                    }
                    rows.push((x, won));
                }
                seen += page.items.len();
                match page.next {
                    Some(next) if seen < MAX_EACH => after = Some(next),
                    _ => break,
                }
            }
        }
        Ok(rows)
    }

    pub async fn lead_scoring(&self, access: &TenantAccess) -> Result<ScoringView> {
        access.require(Permission::ProjectsRead)?;
        let settings = self.store.real_estate_settings(access.tenant_id).await?;
        let current = scorer_of(settings.as_ref());
        let fit = settings
            .as_ref()
            .filter(|s| s.score_weights.is_some())
            .and_then(|s| s.score_fit.as_deref())
            .and_then(|f| serde_json::from_str(f).ok());
        let (won, lost) = self.store.lead_outcome_counts(access.tenant_id).await?;
        let count = |n: i64| usize::try_from(n).unwrap_or(0);
        Ok(ScoringView {
            weights: DEFAULT_WEIGHTS
                .iter()
                .zip(current.weights)
                .map(|((name, default), (_, current))| WeightView {
                    signal: (*name).into(),
                    default: *default,
                    current,
                })
                .collect(),
            fit,
            won: count(won),
            lost: count(lost),
            needed_each: MIN_EACH,
        })
    }

    /// Fits the weights to the tenant's won and lost leads, applies them
    /// and rescores every lead.
    pub async fn fit_lead_scoring(&self, access: &TenantAccess) -> Result<ScoringView> {
        access.require(Permission::SettingsManage)?;
        let rows = self.outcomes(access.tenant_id).await?;
        let won = rows.iter().filter(|r| r.1).count();
        let lost = rows.len() - won;
        if won < MIN_EACH || lost < MIN_EACH {
            return Err(Error::Conflict {
                code: "not_enough_outcomes",
                message: format!(
                    "fitting needs at least {MIN_EACH} won and {MIN_EACH} lost leads; there are {won} won and {lost} lost"
                ),
            });
        }
        let previous = self.scorer(access.tenant_id).await?.weights.map(|(_, w)| w);
        let fitted = as_weights(logistic(&rows)).ok_or_else(|| Error::Conflict {
            code: "no_signal",
            message: "none of the signals tells your won leads from your lost ones yet; the weights stay as they are".into(),
        })?;
        let report = FitReport {
            fitted_at: Timestamp::now(),
            won,
            lost,
            before: auc(&rows, &previous),
            after: auc(&rows, &fitted),
            previous: previous.to_vec(),
        };
        let weights = serde_json::to_string(&fitted.to_vec()).map_err(|e| Error::Internal(e.into()))?;
        let fit = serde_json::to_string(&report).map_err(|e| Error::Internal(e.into()))?;
        let scorer = scorer_with(fitted);
        let defaults = RealEstateSettingsView::default().stored_defaults();
        let audit = access.audit(actions::LEAD_SCORING_FIT).details(
            serde_json::json!({ "weights": fitted, "before": report.before, "after": report.after }),
        );
        self.store
            .set_score_weights(access.tenant_id, Some((&weights, &fit)), &defaults, &scorer, &audit)
            .await?;
        self.lead_scoring(access).await
    }

    /// Back to the default weights; every lead is rescored.
    pub async fn reset_lead_scoring(&self, access: &TenantAccess) -> Result<ScoringView> {
        access.require(Permission::SettingsManage)?;
        let defaults = RealEstateSettingsView::default().stored_defaults();
        let audit = access.audit(actions::LEAD_SCORING_RESET);
        self.store
            .set_score_weights(access.tenant_id, None, &defaults, &WeightedScorer::default(), &audit)
            .await?;
        self.lead_scoring(access).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Won leads show intent and recent engagement; lost ones gave a
    /// complete profile but no intent; the other signals are noise.
    fn synthetic() -> Vec<([f64; 6], bool)> {
        let mut rows = Vec::new();
        for i in 0..40_u32 {
            let noise = f64::from(i % 7) / 7.0;
            let won = i % 2 == 0;
            let intent = if won { 0.6 + f64::from(i % 3) * 0.15 } else { f64::from(i % 3) * 0.1 };
            let engagement = if won { 0.7 } else { 0.3 + noise * 0.2 };
            let profile = if won { 0.5 } else { 1.0 };
            rows.push(([engagement, profile, noise, 1.0 - noise, noise, intent], won));
        }
        rows
    }

    #[test]
    fn fitted_weights_move_towards_what_tells_won_from_lost() {
        let rows = synthetic();
        let fitted = as_weights(logistic(&rows)).unwrap();
        let defaults = DEFAULT_WEIGHTS.map(|(_, w)| w);
        assert!((fitted.iter().sum::<f64>() - 100.0).abs() < 0.5, "{fitted:?}");
        assert!(fitted[5] > defaults[5], "intent gains: {fitted:?}");
        assert!(fitted[1] < defaults[1], "a complete profile (the lost leads') loses: {fitted:?}");
        assert!(
            auc(&rows, &fitted) >= auc(&rows, &defaults),
            "{} < {}",
            auc(&rows, &fitted),
            auc(&rows, &defaults)
        );
        assert!(auc(&rows, &fitted) > 0.9);
        assert_eq!(as_weights([-1.0; 6]), None);
    }
}
