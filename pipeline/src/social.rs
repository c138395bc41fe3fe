//! Social posts: one LLM call per post, then the platform's rules applied in
//! code (hashtags capped and placed, a post over the limit regenerated once
//! with the overage stated, then cut at a sentence boundary).

use marketer_protocol::activity::{Platform, SocialPostSet, SocialVariant, Tone};
use serde_json::json;

use crate::llm::Llm;
use crate::platforms::{self, char_count, spec};
use crate::prompts;
use crate::run::{PipelineError, Result, Run, codes};

/// What posts are about.
#[derive(Debug, Clone)]
pub(crate) struct Brief<'a> {
    pub topic: &'a str,
    pub tone: Tone,
    /// Text to adapt (an article, a description); may be empty.
    pub source: &'a str,
    pub brand_voice: &'a str,
    /// Hashtags to add, in order, to a post with fewer than its platform
    /// asks for.
    pub hashtags: Vec<String>,
}

/// Writes one post for `platform` and makes it follow the platform's rules.
pub(crate) async fn post<L: Llm>(
    run: &mut Run<'_, L>,
    platform: Platform,
    brief: &Brief<'_>,
    variant: u32,
    variant_count: u32,
) -> Result<SocialVariant> {
    let spec = spec(platform);
    let context = json!({
        "platform_name": spec.name,
        "topic": brief.topic,
        "tone": brief.tone.as_str(),
        "source": excerpt(brief.source, 2_000),
        "brand_voice": brief.brand_voice,
        "char_limit": spec.char_limit,
        "optimal_length": spec.optimal_length,
        "hashtag_rule": spec.hashtag_rule(),
        "style": spec.style,
        "variant": variant,
        "variant_count": variant_count,
    });
    let written = run.text("social", prompts::SOCIAL_POST, &context, 0.8, false).await?;
    let mut text = platforms::arrange_hashtags(&written, &spec);
    let mut enforcement = "as_written";
    if char_count(&text) > spec.char_limit {
        // Once more, saying by how much it is over; aim a little under.
        let target = spec.char_limit - spec.char_limit / 10;
        let context = json!({
            "platform_name": spec.name,
            "char_count": char_count(&text),
            "char_limit": spec.char_limit,
            "target": target,
            "hashtag_rule": spec.hashtag_rule(),
            "post": text,
        });
        let shorter = run.text("social_shorten", prompts::SOCIAL_SHORTEN, &context, 0.5, false).await?;
        text = platforms::arrange_hashtags(&shorter, &spec);
        enforcement = "regenerated";
        if char_count(&text) > spec.char_limit {
            text = platforms::trim_to(&text, spec.char_limit);
            enforcement = "trimmed";
        }
    }
    // Too few hashtags for the platform: the topic's words make up the rest.
    let (filled, added) = platforms::fill_hashtags(&text, &spec, &brief.hashtags);
    if added && char_count(&filled) <= spec.char_limit {
        text = filled;
        if enforcement == "as_written" {
            enforcement = "hashtags_added";
        }
    }
    if text.trim().is_empty() {
        return Err(PipelineError {
            code: codes::INVALID_OUTPUT.into(),
            message: format!("the model wrote an empty {} post", spec.name),
            retryable: true,
        });
    }
    Ok(SocialVariant {
        platform,
        char_count: u32::try_from(char_count(&text)).unwrap_or(u32::MAX),
        char_limit: u32::try_from(spec.char_limit).unwrap_or(u32::MAX),
        hashtags: platforms::hashtags(&text),
        text,
        enforcement: enforcement.to_owned(),
    })
}

/// Posts for several platforms, announcing each as a step between `from`
/// and `to` percent.
pub(crate) async fn posts<L: Llm>(
    run: &mut Run<'_, L>,
    platforms: &[Platform],
    brief: &Brief<'_>,
    per_platform: u32,
    (from, to): (u8, u8),
) -> Result<Vec<SocialVariant>> {
    let total = platforms.len() * per_platform as usize;
    let mut variants = Vec::with_capacity(total);
    for platform in platforms {
        for variant in 1..=per_platform {
            let done = variants.len();
            let percent = from + u8::try_from((usize::from(to - from) * done) / total.max(1)).unwrap_or(0);
            let name = spec(*platform).name;
            let message = if per_platform > 1 {
                format!("Writing the {name} post ({variant} of {per_platform})")
            } else {
                format!("Writing the {name} post")
            };
            run.step("social", percent, &message);
            variants.push(post(run, *platform, brief, variant, per_platform).await?);
        }
    }
    Ok(variants)
}

/// The social post set pipeline: the posts, and a Markdown document of them
/// as the content.
pub(crate) async fn post_set<L: Llm>(
    run: &mut Run<'_, L>,
    set: &SocialPostSet,
    brand_voice: &str,
) -> Result<(String, Vec<SocialVariant>)> {
    let topic = if set.topic.trim().is_empty() { "the text below" } else { set.topic.as_str() };
    let brief = Brief {
        topic,
        tone: set.tone,
        source: &set.source_text,
        brand_voice,
        hashtags: platforms::topic_hashtags(topic),
    };
    let variants = posts(run, &set.platforms, &brief, set.variants_per_platform, (5, 90)).await?;
    Ok((document(topic, &variants), variants))
}

/// The posts as one Markdown document, by platform (and variant, where a
/// platform has several): only what is to be published, no counts or notes.
pub(crate) fn document(topic: &str, variants: &[SocialVariant]) -> String {
    let mut out = format!("# Social posts: {topic}\n");
    let mut last = None;
    let mut number = 0;
    for variant in variants {
        let several = variants.iter().filter(|v| v.platform == variant.platform).count() > 1;
        if last != Some(variant.platform) {
            out.push_str(&format!("\n## {}\n", spec(variant.platform).name));
            last = Some(variant.platform);
            number = 0;
        }
        number += 1;
        if several {
            out.push_str(&format!("\n### Variant {number}\n"));
        }
        out.push_str(&format!("\n{}\n", variant.text));
    }
    out
}

/// At most `max` characters of `text`, cut at a paragraph or word.
fn excerpt(text: &str, max: usize) -> String {
    if char_count(text) <= max {
        return text.to_owned();
    }
    let prefix: String = text.chars().take(max).collect();
    let cut = prefix.rfind("\n\n").or_else(|| prefix.rfind(char::is_whitespace)).unwrap_or(prefix.len());
    format!("{}…", prefix[..cut].trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_end_at_a_boundary() {
        assert_eq!(excerpt("short", 10), "short");
        assert_eq!(excerpt("one two three four", 10), "one two…");
        assert_eq!(excerpt("para one\n\npara two is long", 15), "para one…");
    }
}
