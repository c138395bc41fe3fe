//! The request for a new activity, and its checking: every field of every
//! kind, with the offending one named, before anything is queued.

use marketer_protocol::activity::{
    ActivityInput, BlogArticle, Listing, ListingKit, Platform, SocialPostSet, Tone,
};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::store::ActivityKind;

/// A new activity. Which fields apply depends on `kind`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateActivity {
    pub kind: ActivityKind,
    /// A campaign of the same project.
    pub campaign_id: Option<Uuid>,
    /// The Ollama model the tenant's agents run it on. Default: the
    /// project's default model, else `llama3.2`. (In the cloud the provider's
    /// model is used.)
    pub model: Option<String>,
    /// Queue the activity even when no agent can run it now, instead of
    /// answering 409.
    #[serde(default)]
    pub wait_for_agent: bool,
    /// Blog articles and social post sets: what it is about, 3 to 200 characters.
    pub topic: Option<String>,
    /// Blog articles: up to 10 keywords.
    pub keywords: Option<Vec<String>>,
    /// Blog articles: who it is for (default "general readers").
    pub audience: Option<String>,
    /// `professional`, `casual`, `technical` or `friendly`.
    pub tone: Option<String>,
    /// Blog articles: 300 to 5000 words (default 1200).
    pub target_word_count: Option<u32>,
    /// Social platforms (`x`, `linkedin`, `facebook`, `instagram`, `tiktok`,
    /// `threads`, `pinterest`): companion posts of a blog article or a
    /// listing kit, the posts of a social post set.
    pub platforms: Option<Vec<String>>,
    /// Social post sets: text to adapt (an announcement, an article), up to
    /// 20,000 characters.
    pub source_text: Option<String>,
    /// Social post sets: variants per platform, 1 to 5 (default 1).
    pub variants_per_platform: Option<u32>,
    /// Listing kits: the property.
    pub listing: Option<ListingIn>,
    /// Listing kits: a property record to generate it from, instead of
    /// `listing` (the kit keeps the link and the property's version).
    #[serde(default)]
    pub property_id: Option<Uuid>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListingIn {
    pub address: String,
    /// In whole currency units.
    pub price: u64,
    pub beds: u32,
    /// Half baths count 0.5.
    pub baths: f64,
    pub square_feet: u32,
    #[serde(default)]
    pub key_features: Vec<String>,
    /// The agent's own description or notes.
    #[serde(default)]
    pub description: String,
    pub agent_name: String,
    /// A phone number or e-mail address.
    pub agent_contact: String,
}

const TONES: &str = "professional, casual, technical or friendly";

/// The request as pipeline input, and a title for lists.
pub(crate) fn parse(req: &CreateActivity) -> Result<(ActivityInput, String)> {
    let not_for = |field: &str, present: bool| -> Result<()> {
        if present {
            Err(Error::invalid(field, format!("does not apply to {} activities", req.kind)))
        } else {
            Ok(())
        }
    };
    match req.kind {
        ActivityKind::BlogArticle => {
            not_for("source_text", req.source_text.is_some())?;
            not_for("variants_per_platform", req.variants_per_platform.is_some())?;
            not_for("listing", req.listing.is_some())?;
            let topic = text("topic", req.topic.as_deref(), 3, 200)?;
            let keywords = list("keywords", req.keywords.as_deref().unwrap_or_default(), 10, 60)?;
            let audience = match req.audience.as_deref() {
                Some(a) => text("audience", Some(a), 2, 200)?,
                None => "general readers".to_owned(),
            };
            let target_word_count = req.target_word_count.unwrap_or(1200);
            if !(300..=5000).contains(&target_word_count) {
                return Err(Error::invalid("target_word_count", "must be between 300 and 5000"));
            }
            let input = BlogArticle {
                topic: topic.clone(),
                keywords,
                audience,
                tone: tone(req.tone.as_deref(), Tone::Professional)?,
                target_word_count,
                platforms: platforms(req.platforms.as_deref().unwrap_or_default(), false)?,
            };
            Ok((ActivityInput::BlogArticle(input), topic))
        }
        ActivityKind::SocialPostSet => {
            not_for("keywords", req.keywords.is_some())?;
            not_for("audience", req.audience.is_some())?;
            not_for("target_word_count", req.target_word_count.is_some())?;
            not_for("listing", req.listing.is_some())?;
            let topic = match req.topic.as_deref() {
                Some(t) => text("topic", Some(t), 3, 200)?,
                None => String::new(),
            };
            let source_text = match req.source_text.as_deref() {
                Some(s) => text("source_text", Some(s), 1, 20_000)?,
                None => String::new(),
            };
            if topic.is_empty() && source_text.is_empty() {
                return Err(Error::invalid("topic", "give a topic, a source_text, or both"));
            }
            let variants = req.variants_per_platform.unwrap_or(1);
            if !(1..=5).contains(&variants) {
                return Err(Error::invalid("variants_per_platform", "must be between 1 and 5"));
            }
            let title = if topic.is_empty() { excerpt_title(&source_text) } else { topic.clone() };
            let input = SocialPostSet {
                topic,
                source_text,
                platforms: platforms(req.platforms.as_deref().unwrap_or_default(), true)?,
                tone: tone(req.tone.as_deref(), Tone::Casual)?,
                variants_per_platform: variants,
            };
            Ok((ActivityInput::SocialPostSet(input), title))
        }
        ActivityKind::ListingKit => {
            for (field, present) in [
                ("topic", req.topic.is_some()),
                ("keywords", req.keywords.is_some()),
                ("audience", req.audience.is_some()),
                ("target_word_count", req.target_word_count.is_some()),
                ("source_text", req.source_text.is_some()),
                ("variants_per_platform", req.variants_per_platform.is_some()),
            ] {
                not_for(field, present)?;
            }
            let Some(l) = &req.listing else {
                return Err(Error::invalid("listing", "a listing kit needs the listing"));
            };
            let listing = listing(l)?;
            let title = listing.address.clone();
            let platforms = match req.platforms.as_deref() {
                Some(p) => platforms(p, false)?,
                None => vec![Platform::Facebook, Platform::Instagram],
            };
            let input = ListingKit { listing, platforms, tone: tone(req.tone.as_deref(), Tone::Friendly)? };
            Ok((ActivityInput::ListingKit(input), title))
        }
    }
}

fn listing(l: &ListingIn) -> Result<Listing> {
    let field = |name: &str| format!("listing.{name}");
    let address = text(&field("address"), Some(&l.address), 5, 200)?;
    if l.price == 0 || l.price > 10_000_000_000 {
        return Err(Error::invalid(field("price"), "must be between 1 and 10,000,000,000"));
    }
    if l.beds > 100 {
        return Err(Error::invalid(field("beds"), "must be at most 100"));
    }
    if !(0.0..=100.0).contains(&l.baths) || (l.baths * 2.0).fract() != 0.0 {
        return Err(Error::invalid(field("baths"), "must be 0 to 100 in steps of 0.5"));
    }
    if !(50..=10_000_000).contains(&l.square_feet) {
        return Err(Error::invalid(field("square_feet"), "must be between 50 and 10,000,000"));
    }
    let description = if l.description.trim().is_empty() {
        String::new()
    } else {
        text(&field("description"), Some(&l.description), 1, 5_000)?
    };
    #[allow(clippy::cast_possible_truncation)]
    let baths = l.baths as f32;
    Ok(Listing {
        address,
        price: l.price,
        beds: l.beds,
        baths,
        square_feet: l.square_feet,
        key_features: list(&field("key_features"), &l.key_features, 20, 120)?,
        description,
        agent_name: text(&field("agent_name"), Some(&l.agent_name), 2, 100)?,
        agent_contact: text(&field("agent_contact"), Some(&l.agent_contact), 3, 200)?,
    })
}

/// A required text of `min..=max` characters, trimmed, without control
/// characters other than line breaks and tabs.
pub(super) fn text(field: &str, value: Option<&str>, min: usize, max: usize) -> Result<String> {
    let Some(value) = value.map(str::trim) else {
        return Err(Error::invalid(field, "is required"));
    };
    let n = value.chars().count();
    if n < min || n > max {
        return Err(Error::invalid(field, format!("must be {min} to {max} characters long")));
    }
    if value.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(value.to_owned())
}

pub(super) fn list(
    field: &str,
    values: &[String],
    max_items: usize,
    max_chars: usize,
) -> Result<Vec<String>> {
    if values.len() > max_items {
        return Err(Error::invalid(field, format!("at most {max_items} items")));
    }
    values.iter().enumerate().map(|(i, v)| text(&format!("{field}[{i}]"), Some(v), 1, max_chars)).collect()
}

fn tone(value: Option<&str>, default: Tone) -> Result<Tone> {
    match value {
        None => Ok(default),
        Some("professional") => Ok(Tone::Professional),
        Some("casual") => Ok(Tone::Casual),
        Some("technical") => Ok(Tone::Technical),
        Some("friendly") => Ok(Tone::Friendly),
        Some(_) => Err(Error::invalid("tone", format!("must be {TONES}"))),
    }
}

fn platforms(values: &[String], required: bool) -> Result<Vec<Platform>> {
    if required && values.is_empty() {
        return Err(Error::invalid("platforms", "name at least one platform"));
    }
    let mut out: Vec<Platform> = Vec::with_capacity(values.len());
    for (i, value) in values.iter().enumerate() {
        let platform = parse_platform(value).ok_or_else(|| {
            let names: Vec<&str> = Platform::ALL.iter().map(|p| p.as_str()).collect();
            Error::invalid(format!("platforms[{i}]"), format!("must be one of {}", names.join(", ")))
        })?;
        if out.contains(&platform) {
            return Err(Error::invalid(format!("platforms[{i}]"), "is listed twice"));
        }
        out.push(platform);
    }
    Ok(out)
}

fn parse_platform(value: &str) -> Option<Platform> {
    if value == "twitter" {
        return Some(Platform::X);
    }
    Platform::ALL.into_iter().find(|p| p.as_str() == value)
}

fn excerpt_title(text: &str) -> String {
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or(text).trim();
    let title: String = first.chars().take(80).collect();
    if first.chars().count() > 80 { format!("{title}…") } else { title }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(kind: ActivityKind) -> CreateActivity {
        CreateActivity {
            kind,
            campaign_id: None,
            model: None,
            wait_for_agent: false,
            topic: None,
            keywords: None,
            audience: None,
            tone: None,
            target_word_count: None,
            platforms: None,
            source_text: None,
            variants_per_platform: None,
            listing: None,
            property_id: None,
        }
    }

    fn field(result: Result<(ActivityInput, String)>) -> String {
        match result {
            Err(Error::Invalid { field, .. }) => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn blog_articles_are_checked_field_by_field() {
        let mut req = request(ActivityKind::BlogArticle);
        assert_eq!(field(parse(&req)), "topic");
        req.topic = Some("Solar roofs for homeowners".into());
        let (input, title) = parse(&req).unwrap();
        assert_eq!(title, "Solar roofs for homeowners");
        let ActivityInput::BlogArticle(blog) = input else { panic!() };
        assert_eq!(
            (blog.target_word_count, blog.tone, blog.audience.as_str()),
            (1200, Tone::Professional, "general readers")
        );
        req.tone = Some("sarcastic".into());
        assert_eq!(field(parse(&req)), "tone");
        req.tone = None;
        req.platforms = Some(vec!["linkedin".into(), "myspace".into()]);
        assert_eq!(field(parse(&req)), "platforms[1]");
        req.platforms = Some(vec!["twitter".into(), "x".into()]);
        assert_eq!(field(parse(&req)), "platforms[1]", "the same platform twice");
        req.platforms = None;
        req.target_word_count = Some(50);
        assert_eq!(field(parse(&req)), "target_word_count");
        req.target_word_count = None;
        req.source_text = Some("x".into());
        assert_eq!(field(parse(&req)), "source_text");
    }

    #[test]
    fn social_sets_need_platforms_and_something_to_say() {
        let mut req = request(ActivityKind::SocialPostSet);
        req.platforms = Some(vec!["threads".into()]);
        assert_eq!(field(parse(&req)), "topic");
        req.source_text = Some("We open a second shop on Main Street.\nMore soon.".into());
        let (_, title) = parse(&req).unwrap();
        assert_eq!(title, "We open a second shop on Main Street.");
        req.platforms = Some(vec![]);
        assert_eq!(field(parse(&req)), "platforms");
        req.platforms = Some(vec!["x".into()]);
        req.variants_per_platform = Some(9);
        assert_eq!(field(parse(&req)), "variants_per_platform");
    }

    #[test]
    fn listings_are_checked() {
        let mut req = request(ActivityKind::ListingKit);
        assert_eq!(field(parse(&req)), "listing");
        req.listing = Some(ListingIn {
            address: "12 Elm Street, Springfield".into(),
            price: 450_000,
            beds: 3,
            baths: 2.25,
            square_feet: 1850,
            key_features: vec!["fenced yard".into()],
            description: String::new(),
            agent_name: "Dana Reyes".into(),
            agent_contact: "dana@example.com".into(),
        });
        assert_eq!(field(parse(&req)), "listing.baths");
        if let Some(l) = req.listing.as_mut() {
            l.baths = 2.5;
        }
        let (input, title) = parse(&req).unwrap();
        assert_eq!(title, "12 Elm Street, Springfield");
        let ActivityInput::ListingKit(kit) = input else { panic!() };
        assert_eq!(kit.platforms, [Platform::Facebook, Platform::Instagram], "default platforms");
        req.topic = Some("a topic".into());
        assert_eq!(field(parse(&req)), "topic", "not for listing kits");
    }
}
