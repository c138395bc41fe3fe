//! The real-estate listing kit (seeds 000 and 001): listing analysis → the
//! listing description → the Fair Housing review → flyer text and social
//! posts, with every text of the kit screened by the built-in rules at the
//! end.

use marketer_protocol::activity::{ComplianceReview, Finding, FlyerText, ListingKit, SocialVariant};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::blog::with;
use crate::fair_housing;
use crate::llm::Llm;
use crate::prompts;
use crate::run::{Result, Run, Validate, check_chars, check_filled, check_items};
use crate::social::{self, Brief};

/// The statement every flyer carries, whatever the model wrote.
pub const EQUAL_HOUSING: &str = "Equal Housing Opportunity.";

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct AnalysisReply {
    #[schemars(length(min = 3, max = 3))]
    headline_ideas: Vec<String>,
    /// Facts from the listing, strongest first.
    #[schemars(length(min = 3, max = 8))]
    selling_points: Vec<String>,
    #[schemars(length(min = 3, max = 40))]
    property_type: String,
    #[schemars(length(min = 10, max = 300))]
    price_positioning: String,
}

impl Validate for AnalysisReply {
    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        check_items(&mut p, "headline_ideas", &self.headline_ideas, 3, 3);
        check_filled(&mut p, "headline_ideas", &self.headline_ideas);
        check_items(&mut p, "selling_points", &self.selling_points, 3, 8);
        check_filled(&mut p, "selling_points", &self.selling_points);
        check_chars(&mut p, "property_type", &self.property_type, 3, 40);
        check_chars(&mut p, "price_positioning", &self.price_positioning, 10, 300);
        p
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ReviewReply {
    /// Empty when the text is compliant.
    #[schemars(length(max = 20))]
    findings: Vec<ModelFinding>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ModelFinding {
    /// The exact phrase as written in the text.
    #[schemars(length(min = 2, max = 200))]
    phrase: String,
    #[schemars(length(min = 5, max = 400))]
    reason: String,
    /// A compliant rewrite.
    #[schemars(length(min = 2, max = 400))]
    suggestion: String,
}

impl Validate for ReviewReply {
    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        check_items(&mut p, "findings", &self.findings, 0, 20);
        for (i, f) in self.findings.iter().enumerate() {
            check_chars(&mut p, &format!("findings[{i}].phrase"), &f.phrase, 2, 200);
            check_chars(&mut p, &format!("findings[{i}].reason"), &f.reason, 5, 400);
            check_chars(&mut p, &format!("findings[{i}].suggestion"), &f.suggestion, 2, 400);
        }
        p
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct FlyerReply {
    #[schemars(length(min = 5, max = 60))]
    headline: String,
    #[schemars(length(min = 20, max = 600))]
    property_summary: String,
    #[schemars(length(min = 4, max = 10))]
    features: Vec<String>,
    #[schemars(length(min = 10, max = 300))]
    call_to_action: String,
    #[schemars(length(min = 10, max = 600))]
    disclaimers: String,
}

impl Validate for FlyerReply {
    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        check_chars(&mut p, "headline", &self.headline, 5, 60);
        check_chars(&mut p, "property_summary", &self.property_summary, 20, 600);
        check_items(&mut p, "features", &self.features, 4, 10);
        check_filled(&mut p, "features", &self.features);
        check_chars(&mut p, "call_to_action", &self.call_to_action, 10, 300);
        check_chars(&mut p, "disclaimers", &self.disclaimers, 10, 600);
        p
    }
}

#[derive(Debug)]
pub(crate) struct Kit {
    pub description: String,
    pub flyer: FlyerText,
    pub social: Vec<SocialVariant>,
    pub compliance: ComplianceReview,
}

pub(crate) async fn kit<L: Llm>(run: &mut Run<'_, L>, input: &ListingKit, brand_voice: &str) -> Result<Kit> {
    let listing = &input.listing;
    let base = json!({
        "listing": listing,
        "price": format_price(listing.price),
        "tone": input.tone.as_str(),
        "brand_voice": brand_voice,
    });

    run.step("analysis", 5, "Analysing the listing");
    let analysis: AnalysisReply = run.structured("analysis", prompts::LISTING_ANALYSIS, &base).await?;
    let with_analysis = with(&base, json!({ "analysis": analysis }));

    run.step("writing", 20, "Writing the listing description");
    let description = run.text("writing", prompts::LISTING_COPY, &with_analysis, 0.7, true).await?;

    run.step("compliance", 45, "Reviewing the wording for Fair Housing compliance");
    let mut findings = fair_housing::screen_listing(listing);
    fair_housing::merge(&mut findings, fair_housing::screen(&description, "description"));
    let review: ReviewReply =
        run.structured("compliance", prompts::FAIR_HOUSING_REVIEW, &json!({ "text": description })).await?;
    fair_housing::merge(&mut findings, model_findings(review, &description));

    run.step("flyer", 60, "Writing the flyer text");
    let flyer: FlyerReply = run.structured("flyer", prompts::FLYER, &with_analysis).await?;
    let mut disclaimers = flyer.disclaimers.trim().to_owned();
    if !disclaimers.to_lowercase().contains("equal housing opportunity") {
        disclaimers = format!("{disclaimers} {EQUAL_HOUSING}");
    }
    let flyer = FlyerText {
        headline: flyer.headline,
        property_summary: flyer.property_summary,
        features: flyer.features,
        call_to_action: flyer.call_to_action,
        disclaimers,
    };

    let brief = Brief {
        topic: &listing.address,
        tone: input.tone,
        source: &description,
        brand_voice,
        hashtags: LISTING_HASHTAGS.iter().map(|t| (*t).to_owned()).collect(),
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
    let compliance = ComplianceReview { passed: findings.is_empty(), findings };
    Ok(Kit { description, flyer, social, compliance })
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
