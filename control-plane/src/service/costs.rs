//! What cloud runs cost: the tenant's price table (per model, US dollars
//! per million input and output tokens, set by whoever manages settings)
//! and the estimate for a run (its own calls' tokens × the model's prices).
//! Runs on an edge agent cost nothing here; a model with no price gets no
//! estimate and says how to add one, never a made-up figure.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{App, TenantAccess, actions};
use crate::domain::{Permission, Timestamp};
use crate::error::{Error, Result};
use crate::store::{ModelPrice, StoreError};

/// The highest price accepted, in dollars per million tokens.
const MAX_USD_PER_MILLION: f64 = 10_000.0;
const MAX_MODEL_CHARS: usize = 200;
/// The most prices an organisation keeps.
const MAX_PRICES: usize = 200;

/// A model's price.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelPriceView {
    pub model: String,
    /// US dollars per million prompt (input) tokens.
    pub input_usd_per_million: f64,
    /// US dollars per million completion (output) tokens.
    pub output_usd_per_million: f64,
    pub updated_at: Timestamp,
}

impl From<&ModelPrice> for ModelPriceView {
    #[allow(clippy::cast_precision_loss)]
    fn from(p: &ModelPrice) -> Self {
        Self {
            model: p.model.clone(),
            input_usd_per_million: p.input_micros_per_million as f64 / 1e6,
            output_usd_per_million: p.output_micros_per_million as f64 / 1e6,
            updated_at: p.updated_at,
        }
    }
}

/// Sets (or replaces) a model's price.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetModelPrice {
    /// The model's name as the cloud provider knows it (`gpt-4o-mini`).
    pub model: String,
    /// US dollars per million prompt tokens, 0 to 10,000.
    pub input_usd_per_million: f64,
    /// US dollars per million completion tokens, 0 to 10,000.
    pub output_usd_per_million: f64,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ModelPriceQuery {
    /// The model whose price to remove.
    pub model: String,
}

/// What a cloud run cost, estimated from the price table.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CostEstimate {
    pub model: String,
    /// The run's own calls (steps reused from an earlier run are counted
    /// there).
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Null when the price table has no price for the model.
    pub usd: Option<f64>,
    pub input_usd_per_million: Option<f64>,
    pub output_usd_per_million: Option<f64>,
    /// How the figure was reached, or why there is none.
    pub explanation: String,
}

/// A price in dollars as micro-dollars, checked.
fn micros(field: &'static str, usd: f64) -> Result<i64> {
    if !usd.is_finite() || !(0.0..=MAX_USD_PER_MILLION).contains(&usd) {
        return Err(Error::invalid(field, "must be a number of US dollars per million tokens, 0 to 10,000"));
    }
    #[allow(clippy::cast_possible_truncation)]
    Ok((usd * 1e6).round() as i64)
}

fn model_name(model: &str) -> Result<String> {
    let model = model.trim();
    if model.is_empty() || model.chars().count() > MAX_MODEL_CHARS || model.chars().any(char::is_control) {
        return Err(Error::invalid("model", "must be a model's name, 1 to 200 characters, on one line"));
    }
    Ok(model.to_owned())
}

/// The estimate for `prompt` and `completion` tokens of `model`; models
/// match exactly, else ignoring case.
pub fn estimate(prices: &[ModelPrice], model: &str, prompt: u64, completion: u64) -> CostEstimate {
    let price = prices
        .iter()
        .find(|p| p.model == model)
        .or_else(|| prices.iter().find(|p| p.model.eq_ignore_ascii_case(model)));
    let Some(price) = price else {
        return CostEstimate {
            model: model.to_owned(),
            prompt_tokens: prompt,
            completion_tokens: completion,
            usd: None,
            input_usd_per_million: None,
            output_usd_per_million: None,
            explanation: format!(
                "No price for {model}: add it under Settings → Model prices to see what cloud runs cost."
            ),
        };
    };
    let view = ModelPriceView::from(price);
    #[allow(clippy::cast_precision_loss)]
    let usd =
        (prompt as f64 * view.input_usd_per_million + completion as f64 * view.output_usd_per_million) / 1e6;
    CostEstimate {
        model: model.to_owned(),
        prompt_tokens: prompt,
        completion_tokens: completion,
        usd: Some(usd),
        input_usd_per_million: Some(view.input_usd_per_million),
        output_usd_per_million: Some(view.output_usd_per_million),
        explanation: format!(
            "{prompt} prompt tokens × ${} and {completion} completion tokens × ${} per million \
             ({}'s prices in Settings)",
            view.input_usd_per_million, view.output_usd_per_million, price.model
        ),
    }
}

/// A dollar amount for people: cents, or more digits below a cent.
pub fn dollars(usd: f64) -> String {
    match usd {
        u if u >= 0.01 => format!("${u:.2}"),
        u if u > 0.0 && u < 0.000_05 => "less than $0.0001".into(),
        u => format!("${u:.4}"),
    }
}

impl App {
    pub async fn model_prices(&self, access: &TenantAccess) -> Result<Vec<ModelPriceView>> {
        access.require(Permission::SettingsView)?;
        Ok(self.store.model_prices(access.tenant_id).await?.iter().map(ModelPriceView::from).collect())
    }

    pub async fn set_model_price(&self, access: &TenantAccess, req: SetModelPrice) -> Result<ModelPriceView> {
        access.require(Permission::SettingsManage)?;
        let price = ModelPrice {
            tenant_id: access.tenant_id,
            model: model_name(&req.model)?,
            input_micros_per_million: micros("input_usd_per_million", req.input_usd_per_million)?,
            output_micros_per_million: micros("output_usd_per_million", req.output_usd_per_million)?,
            updated_at: Timestamp::now(),
        };
        let existing = self.store.model_prices(access.tenant_id).await?;
        if existing.len() >= MAX_PRICES && !existing.iter().any(|p| p.model == price.model) {
            return Err(Error::invalid(
                "model",
                "an organisation keeps at most 200 model prices; remove one first",
            ));
        }
        let view = ModelPriceView::from(&price);
        let audit = access.audit(actions::MODEL_PRICE_SET).resource("model_price", access.tenant_id).details(
            serde_json::json!({
                "model": view.model,
                "input_usd_per_million": view.input_usd_per_million,
                "output_usd_per_million": view.output_usd_per_million,
            }),
        );
        self.store.set_model_price(&price, &audit).await?;
        Ok(view)
    }

    pub async fn delete_model_price(&self, access: &TenantAccess, model: &str) -> Result<()> {
        access.require(Permission::SettingsManage)?;
        let model = model_name(model)?;
        let audit = access
            .audit(actions::MODEL_PRICE_DELETE)
            .resource("model_price", access.tenant_id)
            .details(serde_json::json!({ "model": model }));
        match self.store.delete_model_price(access.tenant_id, &model, &audit).await {
            Err(StoreError::NotFound) => Err(Error::NotFound("model price")),
            other => Ok(other?),
        }
    }

    /// What a run on the cloud provider cost, from the price table.
    pub async fn cloud_cost(
        &self,
        tenant_id: uuid::Uuid,
        model: &str,
        prompt: u64,
        completion: u64,
    ) -> Result<CostEstimate> {
        Ok(estimate(&self.store.model_prices(tenant_id).await?, model, prompt, completion))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(model: &str, input: i64, output: i64) -> ModelPrice {
        ModelPrice {
            tenant_id: uuid::Uuid::nil(),
            model: model.into(),
            input_micros_per_million: input,
            output_micros_per_million: output,
            updated_at: Timestamp::now(),
        }
    }

    #[test]
    fn a_run_costs_its_tokens_at_the_models_prices() {
        let prices = [price("gpt-4o-mini", 150_000, 600_000), price("Other", 1_000_000, 1_000_000)];
        let e = estimate(&prices, "gpt-4o-mini", 2_000_000, 500_000);
        assert_eq!(e.usd, Some(0.6));
        assert!(e.explanation.contains("2000000 prompt tokens × $0.15"), "{}", e.explanation);
        assert_eq!(estimate(&prices, "other", 1_000_000, 0).usd, Some(1.0), "case is ignored");
        let none = estimate(&prices, "llama3", 10, 10);
        assert_eq!(none.usd, None);
        assert!(none.explanation.contains("Settings → Model prices"));
        assert_eq!(dollars(0.6), "$0.60");
        assert_eq!(dollars(0.000_42), "$0.0004");
        assert_eq!(dollars(0.000_001), "less than $0.0001");
        assert_eq!(dollars(0.0), "$0.0000");
    }

    #[test]
    fn prices_and_names_are_checked() {
        assert_eq!(micros("p", 0.15).unwrap(), 150_000);
        assert_eq!(micros("p", 0.0).unwrap(), 0);
        for bad in [-0.01, f64::NAN, f64::INFINITY, 10_000.5] {
            assert!(micros("p", bad).is_err(), "{bad}");
        }
        assert!(model_name("  gpt-4o  ").is_ok_and(|m| m == "gpt-4o"));
        assert!(model_name("").is_err());
        assert!(model_name("a\nb").is_err());
        assert!(model_name(&"m".repeat(201)).is_err());
    }
}
