//! Fair Housing screening of listing text: a built-in list of phrases that
//! state or imply a preference by a protected class (the Fair Housing Act's
//! race, color, religion, sex, handicap, familial status and national
//! origin, following HUD's advertising guidance). It runs in code on every
//! text of a listing kit, whatever the model's own review says, so the
//! common cases are never missed.

use marketer_protocol::activity::Finding;

struct Rule {
    phrase: &'static str,
    reason: &'static str,
    suggestion: &'static str,
}

const FAMILIAL: &str = "states a preference based on familial status (who lives with whom, children)";
const AGE_FAMILY: &str = "implies a preference for buyers of an age or family situation (familial status)";
const RACE_ORIGIN: &str = "implies a preference or exclusion by race, color or national origin";
const RELIGION: &str = "states a preference based on religion";
const SEX: &str = "states a preference based on sex";
const DISABILITY: &str = "states or implies a limitation based on disability (handicap)";

const RULES: &[Rule] = &[
    Rule {
        phrase: "perfect for young couples",
        reason: AGE_FAMILY,
        suggestion: "describe the space, e.g. \"a comfortable two-bedroom layout\"",
    },
    Rule {
        phrase: "ideal for young couples",
        reason: AGE_FAMILY,
        suggestion: "describe the space instead of the buyer",
    },
    Rule {
        phrase: "perfect for couples",
        reason: FAMILIAL,
        suggestion: "describe the space instead of the buyer",
    },
    Rule {
        phrase: "ideal for couples",
        reason: FAMILIAL,
        suggestion: "describe the space instead of the buyer",
    },
    Rule {
        phrase: "perfect for families",
        reason: FAMILIAL,
        suggestion: "\"spacious layout with a large yard\"",
    },
    Rule {
        phrase: "ideal for families",
        reason: FAMILIAL,
        suggestion: "\"spacious layout with a large yard\"",
    },
    Rule {
        phrase: "great for families",
        reason: FAMILIAL,
        suggestion: "\"spacious layout with a large yard\"",
    },
    Rule {
        phrase: "family-friendly neighborhood",
        reason: FAMILIAL,
        suggestion: "name the amenities: \"near parks and a playground\"",
    },
    Rule {
        phrase: "family friendly neighborhood",
        reason: FAMILIAL,
        suggestion: "name the amenities: \"near parks and a playground\"",
    },
    Rule {
        phrase: "no children",
        reason: FAMILIAL,
        suggestion: "remove it; occupancy rules apply to everyone alike",
    },
    Rule {
        phrase: "no kids",
        reason: FAMILIAL,
        suggestion: "remove it; occupancy rules apply to everyone alike",
    },
    Rule {
        phrase: "adults only",
        reason: FAMILIAL,
        suggestion: "remove it unless the property is exempt senior housing, and then say so precisely",
    },
    Rule {
        phrase: "adult community",
        reason: FAMILIAL,
        suggestion: "\"55+ community\" only if it qualifies as housing for older persons",
    },
    Rule {
        phrase: "empty nesters",
        reason: AGE_FAMILY,
        suggestion: "\"low-maintenance single-level living\"",
    },
    Rule { phrase: "newlyweds", reason: FAMILIAL, suggestion: "describe the space instead of the buyer" },
    Rule {
        phrase: "young professionals",
        reason: AGE_FAMILY,
        suggestion: "\"close to downtown offices and transit\"",
    },
    Rule {
        phrase: "mature buyers",
        reason: AGE_FAMILY,
        suggestion: "describe the features: \"single-level living, quiet street\"",
    },
    Rule { phrase: "singles only", reason: FAMILIAL, suggestion: "remove it" },
    Rule { phrase: "bachelor pad", reason: SEX, suggestion: "\"studio\" or \"one-bedroom\"" },
    Rule {
        phrase: "exclusive neighborhood",
        reason: RACE_ORIGIN,
        suggestion: "name the features: \"a gated street with mature trees\"",
    },
    Rule {
        phrase: "exclusive neighbourhood",
        reason: RACE_ORIGIN,
        suggestion: "name the features: \"a gated street with mature trees\"",
    },
    Rule {
        phrase: "exclusive community",
        reason: RACE_ORIGIN,
        suggestion: "name the features: \"a gated community with a clubhouse\"",
    },
    Rule { phrase: "restricted community", reason: RACE_ORIGIN, suggestion: "remove it" },
    Rule {
        phrase: "traditional neighborhood",
        reason: RACE_ORIGIN,
        suggestion: "describe the architecture: \"tree-lined street of 1920s homes\"",
    },
    Rule { phrase: "integrated neighborhood", reason: RACE_ORIGIN, suggestion: "remove it" },
    Rule {
        phrase: "ethnic neighborhood",
        reason: RACE_ORIGIN,
        suggestion: "name nearby places: \"steps from shops and restaurants\"",
    },
    Rule { phrase: "english speakers", reason: RACE_ORIGIN, suggestion: "remove it" },
    Rule { phrase: "christian community", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "christian home", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "jewish community", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "muslim community", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "catholic neighborhood", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "christian families", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "christian family", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "christian buyers", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "christian neighborhood", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "christian neighbourhood", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "jewish families", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "jewish family", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "jewish buyers", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "jewish neighborhood", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "jewish neighbourhood", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "jewish home", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "muslim families", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "muslim family", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "muslim buyers", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "muslim neighborhood", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "muslim neighbourhood", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "muslim home", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "catholic families", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "catholic family", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "catholic buyers", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "catholic neighbourhood", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "catholic community", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "catholic home", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "hindu families", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "hindu family", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "hindu buyers", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "hindu neighborhood", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "hindu neighbourhood", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "hindu community", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "hindu home", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "buddhist families", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "buddhist family", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "buddhist buyers", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "buddhist neighborhood", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "buddhist neighbourhood", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "buddhist community", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "buddhist home", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "mormon families", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "mormon family", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "mormon buyers", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "mormon neighborhood", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "mormon neighbourhood", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "mormon community", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "mormon home", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "protestant families", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "protestant family", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "protestant buyers", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "protestant neighborhood", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "protestant neighbourhood", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "protestant community", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "protestant home", reason: RELIGION, suggestion: "remove it" },
    Rule { phrase: "female only", reason: SEX, suggestion: "remove it" },
    Rule { phrase: "male only", reason: SEX, suggestion: "remove it" },
    Rule {
        phrase: "no wheelchairs",
        reason: DISABILITY,
        suggestion: "describe access factually: \"second-floor unit, stairs only\"",
    },
    Rule {
        phrase: "able-bodied",
        reason: DISABILITY,
        suggestion: "describe access factually: \"second-floor unit, stairs only\"",
    },
    Rule {
        phrase: "not suitable for handicapped",
        reason: DISABILITY,
        suggestion: "describe access factually: \"three flights of stairs, no elevator\"",
    },
    Rule { phrase: "no disabled", reason: DISABILITY, suggestion: "remove it" },
    Rule {
        phrase: "must be able to climb stairs",
        reason: DISABILITY,
        suggestion: "\"third-floor walk-up\"",
    },
];

/// Findings of the built-in rules in `text`, at `location`. Matching ignores
/// case and requires word boundaries; the phrase is reported as written.
pub fn screen(text: &str, location: &str) -> Vec<Finding> {
    let lower = text.to_lowercase();
    let mut findings = Vec::new();
    // Lowercasing can change byte lengths outside ASCII; map positions
    // through characters only when it did.
    let same_layout = lower.len() == text.len();
    for rule in RULES {
        let mut from = 0;
        while let Some(found) = lower[from..].find(rule.phrase) {
            let start = from + found;
            let end = start + rule.phrase.len();
            from = end;
            let before = lower[..start].chars().next_back();
            let after = lower[end..].chars().next();
            let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric());
            if word(before) || word(after) {
                continue;
            }
            let phrase = if same_layout && text.is_char_boundary(start) && text.is_char_boundary(end) {
                text[start..end].to_owned()
            } else {
                rule.phrase.to_owned()
            };
            findings.push(Finding {
                phrase,
                location: location.to_owned(),
                reason: rule.reason.to_owned(),
                suggestion: rule.suggestion.to_owned(),
                source: "rules".to_owned(),
            });
        }
    }
    findings
}

/// Findings in every text a person typed into a listing (its description
/// and each key feature), located as `input.<field>`. Run before
/// generation, to warn on the form, and by the pipeline, so the kit's
/// review lists them.
pub fn screen_listing(listing: &marketer_protocol::activity::Listing) -> Vec<Finding> {
    let mut findings = screen(&listing.description, "input.description");
    for (i, feature) in listing.key_features.iter().enumerate() {
        merge(&mut findings, screen(feature, &format!("input.key_features[{}]", i + 1)));
    }
    merge(&mut findings, screen(&listing.address, "input.address"));
    findings
}

/// Adds `more` to `findings`, skipping a phrase already found at the same
/// location (case-insensitively).
pub fn merge(findings: &mut Vec<Finding>, more: Vec<Finding>) {
    for finding in more {
        let seen = findings.iter().any(|f| {
            f.location == finding.location && f.phrase.to_lowercase() == finding.phrase.to_lowercase()
        });
        if !seen {
            findings.push(finding);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listing_input_is_screened() {
        let listing = marketer_protocol::activity::Listing {
            address: "12 Oak St".into(),
            price: 450_000,
            beds: 3,
            baths: 2.0,
            square_feet: 1850,
            key_features: vec!["fenced yard".into(), "Perfect for young couples, no children".into()],
            description: "Bright rooms. Ideal for Christian families. No wheelchairs.".into(),
            agent_name: "Ann".into(),
            agent_contact: "ann@example.com".into(),
        };
        let found: Vec<(String, String)> =
            screen_listing(&listing).into_iter().map(|f| (f.location, f.phrase)).collect();
        for expected in [
            ("input.key_features[2]", "Perfect for young couples"),
            ("input.key_features[2]", "no children"),
            ("input.description", "No wheelchairs"),
        ] {
            assert!(
                found.iter().any(|(l, p)| l == expected.0 && p == expected.1),
                "{expected:?} not in {found:?}"
            );
        }
    }

    #[test]
    fn discriminatory_phrases_are_flagged_as_written() {
        let text =
            "Charming bungalow, Perfect for young couples! Quiet, exclusive neighborhood. No children.";
        let findings = screen(text, "description");
        let phrases: Vec<&str> = findings.iter().map(|f| f.phrase.as_str()).collect();
        assert_eq!(phrases, ["Perfect for young couples", "No children", "exclusive neighborhood"]);
        assert!(findings.iter().all(|f| f.location == "description" && f.source == "rules"));
        assert!(findings[0].reason.contains("familial status"));
        assert!(!findings[2].suggestion.is_empty());
    }

    #[test]
    fn clean_text_passes_and_words_inside_words_do_not_match() {
        let clean = "Sun-filled 3-bedroom home with a family room, a fenced yard and a two-car garage. \
                     Walk to parks, shops and the light rail.";
        assert!(screen(clean, "description").is_empty());
        assert!(screen("no kidsroom here", "x").is_empty());
    }

    #[test]
    fn merging_skips_repeats() {
        let mut all = screen("No kids.", "description");
        merge(&mut all, screen("NO KIDS", "description"));
        merge(&mut all, screen("no kids", "flyer"));
        assert_eq!(all.len(), 2);
    }
}
