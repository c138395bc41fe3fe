//! The real-estate listing kit (seeds 000 and 001): listing analysis → the
//! listing description → the Fair Housing review → flyer text and social
//! posts, with every text of the kit screened by the built-in rules at the
//! end.

use marketer_protocol::activity::{
    ComplianceReview, Finding, FlyerText, ListingAnalysis, ListingKit, WhatWorked,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::blog::with;
use crate::fair_housing;
use crate::gates;
use crate::llm::Llm;
use crate::prompts;
use crate::run::{PipelineError, Result, Run, codes};
use crate::social::{self, Brief};

/// The statement every flyer carries, whatever the model wrote.
pub const EQUAL_HOUSING: &str = "Equal Housing Opportunity.";

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct AnalysisReply {
    #[schemars(length(min = 3, max = 3), inner(length(min = 5, max = 80)))]
    headline_ideas: Vec<String>,
    /// Facts from the listing, strongest first.
    #[schemars(length(min = 3, max = 8), inner(length(min = 3, max = 120)))]
    selling_points: Vec<String>,
    #[schemars(length(min = 3, max = 40))]
    property_type: String,
    #[schemars(length(min = 10, max = 300))]
    price_positioning: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ReviewReply {
    /// Empty when the text is compliant.
    #[schemars(length(max = 6))]
    findings: Vec<ModelFinding>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ModelFinding {
    /// The exact phrase as written in the text.
    #[schemars(length(min = 2, max = 100))]
    phrase: String,
    #[schemars(length(min = 5, max = 200))]
    reason: String,
    /// A compliant rewrite.
    #[schemars(length(min = 2, max = 200))]
    suggestion: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct FlyerReply {
    #[schemars(length(min = 5, max = 60))]
    headline: String,
    #[schemars(length(min = 20, max = 500))]
    property_summary: String,
    #[schemars(length(min = 4, max = 10), inner(length(min = 3, max = 80)))]
    features: Vec<String>,
    #[schemars(length(min = 10, max = 200))]
    call_to_action: String,
    #[schemars(length(min = 10, max = 400))]
    disclaimers: String,
}

/// Output budgets of the structured steps, in tokens: each fits the
/// longest answer its schema allows (a test holds them to it).
const ANALYSIS_BUDGET: u32 = 700;
const COMPLIANCE_BUDGET: u32 = 1_200;
const FLYER_BUDGET: u32 = 800;

/// A description with fewer words than this is not a description.
const MIN_DESCRIPTION_WORDS: usize = 25;

/// The pipeline, its outputs kept in the run as each step completes; steps
/// an earlier run completed are reused.
pub(crate) async fn kit<L: Llm>(
    run: &mut Run<'_, L>,
    input: &ListingKit,
    brand_voice: &str,
    what_worked: &[WhatWorked],
) -> Result<()> {
    let listing = &input.listing;
    let base = json!({
        "listing": listing,
        "price": format_price(listing.price),
        "tone": input.tone.as_str(),
        "brand_voice": brand_voice,
    });
    let earlier = run.resumed();

    let analysis = if let Some(analysis) = earlier.and_then(|r| r.analysis.clone()) {
        run.reuse(&["analysis"]);
        analysis
    } else {
        run.step("analysis", 5, "Analysing the listing");
        let budget = run.budget("analysis", ANALYSIS_BUDGET);
        let reply: AnalysisReply =
            run.structured("analysis", prompts::LISTING_ANALYSIS, &base, budget).await?;
        ListingAnalysis {
            headline_ideas: reply.headline_ideas,
            selling_points: reply.selling_points,
            property_type: reply.property_type,
            price_positioning: reply.price_positioning,
        }
    };
    run.keep(|r| r.analysis = Some(analysis.clone()));
    let with_analysis = with(&base, json!({ "analysis": analysis }));

    let earlier_description = earlier.filter(|r| !r.content.trim().is_empty());
    let description = if let Some(earlier) = earlier_description {
        run.reuse(&["writing"]);
        earlier.content.clone()
    } else {
        run.step("writing", 20, "Writing the listing description");
        let budget = run.budget("writing", 900);
        let written = run.text("writing", prompts::LISTING_COPY, &with_analysis, 0.7, true, budget).await?;
        if let Some(problem) = &written.problem {
            if gates::word_count(&written.content) < MIN_DESCRIPTION_WORDS {
                return Err(PipelineError {
                    code: codes::UNUSABLE_OUTPUT.into(),
                    message: format!(
                        "the listing description from {} was unusable: {}, twice. The analysis is kept: \
                         regenerate to resume from the description, or use a larger model (1B parameters or more)",
                        run.model(),
                        problem.describe()
                    ),
                    retryable: false,
                });
            }
            run.warn(
                "writing",
                problem.code(),
                format!(
                    "The description: {}, twice; the sentences that did were removed",
                    problem.describe()
                ),
            );
        }
        written.content
    };
    run.keep(|r| r.content.clone_from(&description));

    // The rules screen the listing's own words and the description; the
    // model's review is kept with them.
    let mut findings = fair_housing::screen_listing(listing);
    fair_housing::merge(&mut findings, fair_housing::screen(&description, "description"));
    let reviewed = earlier_description.and_then(|r| r.compliance.as_ref()).filter(|c| {
        c.findings.iter().all(|f| f.location == "description" || f.location.starts_with("input."))
    });
    if let Some(compliance) = reviewed {
        run.reuse(&["compliance"]);
        fair_housing::merge(&mut findings, compliance.findings.clone());
    } else {
        run.step("compliance", 45, "Reviewing the wording for Fair Housing compliance");
        let budget = run.budget("compliance", COMPLIANCE_BUDGET);
        let review: ReviewReply = run
            .structured("compliance", prompts::FAIR_HOUSING_REVIEW, &json!({ "text": description }), budget)
            .await?;
        fair_housing::merge(&mut findings, model_findings(review, &description));
    }
    run.keep(|r| {
        r.compliance = Some(ComplianceReview { passed: findings.is_empty(), findings: findings.clone() });
    });

    let flyer = if let Some(flyer) = earlier.and_then(|r| r.flyer.clone()) {
        run.reuse(&["flyer"]);
        flyer
    } else {
        run.step("flyer", 60, "Writing the flyer text");
        let budget = run.budget("flyer", FLYER_BUDGET);
        let flyer: FlyerReply = run.structured("flyer", prompts::FLYER, &with_analysis, budget).await?;
        let mut disclaimers = flyer.disclaimers.trim().to_owned();
        if !disclaimers.to_lowercase().contains("equal housing opportunity") {
            disclaimers = format!("{disclaimers} {EQUAL_HOUSING}");
        }
        FlyerText {
            headline: flyer.headline,
            property_summary: flyer.property_summary,
            features: flyer.features,
            call_to_action: flyer.call_to_action,
            disclaimers,
        }
    };
    run.keep(|r| r.flyer = Some(flyer.clone()));

    let brief = Brief {
        topic: &listing.address,
        tone: input.tone,
        source: &description,
        brand_voice,
        hashtags: LISTING_HASHTAGS.iter().map(|t| (*t).to_owned()).collect(),
        what_worked,
    };
    let social = social::posts(run, &input.platforms, &brief, 1, (70, 92)).await?;

    // The built-in rules see every text of the kit, not only what the
    // model reviewed.
    run.step("finalise", 95, "Checking every text of the kit");
    let flyer_text =
        [flyer.headline.as_str(), &flyer.property_summary, &flyer.features.join("\n"), &flyer.call_to_action]
            .join("\n");
    fair_housing::merge(&mut findings, fair_housing::screen(&flyer_text, "flyer"));
    for variant in &social {
        let location = format!("social:{}", variant.platform.as_str());
        fair_housing::merge(&mut findings, fair_housing::screen(&variant.text, &location));
    }
    run.keep(|r| r.compliance = Some(ComplianceReview { passed: findings.is_empty(), findings }));
    Ok(())
}

/// Hashtags of a listing's posts when the model wrote too few: what buyers
/// search for (never the address: a street name makes a poor tag).
const LISTING_HASHTAGS: &[&str] = &[
    "#RealEstate",
    "#HomeForSale",
    "#JustListed",
    "#NewListing",
    "#HouseHunting",
    "#DreamHome",
    "#OpenHouse",
    "#HomeSweetHome",
    "#RealtorLife",
    "#PropertyForSale",
    "#HomeBuyers",
    "#ForSale",
];

/// The model's findings that quote the text: a phrase that is not in it
/// cannot be shown to anyone, and is dropped.
fn model_findings(review: ReviewReply, text: &str) -> Vec<Finding> {
    let lower = text.to_lowercase();
    review
        .findings
        .into_iter()
        .filter(|f| lower.contains(&f.phrase.trim().to_lowercase()))
        .map(|f| Finding {
            phrase: f.phrase.trim().to_owned(),
            location: "description".into(),
            reason: f.reason,
            suggestion: f.suggestion,
            source: "model".into(),
        })
        .collect()
}

/// `$1,250,000`.
pub fn format_price(price: u64) -> String {
    let digits = price.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    format!("${out}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_structured_budget_fits_its_longest_answer() {
        use crate::run::{budget_fits, schema_for};
        let max = |schema| crate::lenient::max_chars(&schema);
        assert!(budget_fits::<AnalysisReply>(ANALYSIS_BUDGET), "{:?}", max(schema_for::<AnalysisReply>()));
        assert!(budget_fits::<ReviewReply>(COMPLIANCE_BUDGET), "{:?}", max(schema_for::<ReviewReply>()));
        assert!(budget_fits::<FlyerReply>(FLYER_BUDGET), "{:?}", max(schema_for::<FlyerReply>()));
    }

    #[test]
    fn prices_have_separators() {
        assert_eq!(format_price(0), "$0");
        assert_eq!(format_price(950), "$950");
        assert_eq!(format_price(1_250_000), "$1,250,000");
        assert_eq!(format_price(125_000), "$125,000");
    }

    #[test]
    fn model_findings_must_quote_the_text() {
        let review = ReviewReply {
            findings: vec![
                ModelFinding {
                    phrase: "Walking distance to the Church".into(),
                    reason: "religious landmark used as a selling point".into(),
                    suggestion: "walking distance to downtown".into(),
                },
                ModelFinding {
                    phrase: "not in the text".into(),
                    reason: "invented".into(),
                    suggestion: "n/a".into(),
                },
            ],
        };
        let found = model_findings(review, "Bright home, walking distance to the church and shops.");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].source, "model");
    }
}
