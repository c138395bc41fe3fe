//! Social posts: one LLM call per post, then the platform's rules applied in
//! code (hashtags capped and placed, a post over the limit regenerated once
//! with the overage stated, then cut at a sentence boundary).

use marketer_protocol::activity::{Platform, SocialPostSet, SocialVariant, Tone, WhatWorked};
use serde_json::json;

use crate::gates;
use crate::llm::Llm;
use crate::platforms::{self, PlatformSpec, char_count, spec};
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
    /// What won the tenant's A/B tests, by platform.
    pub what_worked: &'a [WhatWorked],
}

/// Writes one post for `platform` and makes it follow the platform's rules:
/// `None` when the model's answers had nothing usable (said in a warning).
pub(crate) async fn post<L: Llm>(
    run: &mut Run<'_, L>,
    platform: Platform,
    brief: &Brief<'_>,
    variant: u32,
    variant_count: u32,
) -> Result<Option<SocialVariant>> {
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
        "what_worked": brief.what_worked.iter().find(|w| w.platform == platform).map(|w| excerpt(&w.note, 600)),
    });
    let budget = run.budget("social", budget_for(&spec));
    let written = run.text("social", prompts::SOCIAL_POST, &context, 0.8, false, budget).await?;
    let label = if variant_count > 1 {
        format!("The {} post (variant {variant})", spec.name)
    } else {
        format!("The {} post", spec.name)
    };
    if let Some(problem) = &written.problem {
        if gates::word_count(&written.content) < MIN_POST_WORDS {
            run.warn("social", "withheld", format!("{label} was withheld: {}, twice", problem.describe()));
            return Ok(None);
        }
        run.warn(
            "social",
            problem.code(),
            format!("{label}: {}, twice; the sentences that did were removed", problem.describe()),
        );
    }
    let mut text = platforms::arrange_hashtags(&written.content, &spec);
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
        let shorter =
            run.text("social_shorten", prompts::SOCIAL_SHORTEN, &context, 0.5, false, budget).await?;
        // A shortening that echoed or looped is not used: the original is
        // cut instead.
        if shorter.problem.is_none() && gates::word_count(&shorter.content) >= MIN_POST_WORDS {
            text = platforms::arrange_hashtags(&shorter.content, &spec);
            enforcement = "regenerated";
        }
        if char_count(&text) > spec.char_limit {
            text = platforms::trim_to(&text, spec.char_limit);
            enforcement = "trimmed";
        }
    }
    // Too few hashtags for the platform: the brief's make up the rest, and
    // the text is cut to make room for them if it must.
    let (filled, added) = platforms::fill_hashtags(&text, &spec, &brief.hashtags);
    if added {
        text = if char_count(&filled) <= spec.char_limit {
            filled
        } else {
            enforcement = "trimmed";
            platforms::trim_to(&filled, spec.char_limit)
        };
        if enforcement == "as_written" {
            enforcement = "hashtags_added";
        }
    }
    let tags = platforms::hashtags(&text);
    let wanted = spec.suggested_hashtags.0.min(spec.max_hashtags);
    if tags.len() < wanted {
        run.warn(
            "social",
            "hashtags",
            format!("{label} has {} hashtag(s); {} asks for at least {wanted}", tags.len(), spec.name),
        );
    }
    if text.trim().is_empty() {
        run.warn("social", "withheld", format!("{label} was withheld: the model wrote nothing usable"));
        return Ok(None);
    }
    Ok(Some(SocialVariant {
        platform,
        char_count: u32::try_from(char_count(&text)).unwrap_or(u32::MAX),
        char_limit: u32::try_from(spec.char_limit).unwrap_or(u32::MAX),
        hashtags: tags,
        text,
        enforcement: enforcement.to_owned(),
    }))
}

/// A post with fewer words than this is not a post.
const MIN_POST_WORDS: usize = 4;

/// Tokens for a post: its platform's limit (about three characters a
/// token in English, so a post at the limit fits with room), within
/// 200 to 1,200.
fn budget_for(spec: &PlatformSpec) -> u32 {
    u32::try_from(spec.char_limit / 3 + 64).unwrap_or(u32::MAX).clamp(200, 1_200)
}

/// Posts for several platforms, announcing each as a step between `from`
/// and `to` percent; each kept as it is written. Variants an earlier run
/// wrote are reused. Fails only when every post was withheld.
pub(crate) async fn posts<L: Llm>(
    run: &mut Run<'_, L>,
    platforms: &[Platform],
    brief: &Brief<'_>,
    per_platform: u32,
    (from, to): (u8, u8),
) -> Result<Vec<SocialVariant>> {
    let total = platforms.len() * per_platform as usize;
    let earlier: Vec<SocialVariant> = run.resumed().map(|r| r.social.clone()).unwrap_or_default();
    let mut variants = Vec::with_capacity(total);
    let mut done = 0;
    for platform in platforms {
        let mut reused = earlier.iter().filter(|v| v.platform == *platform);
        for variant in 1..=per_platform {
            done += 1;
            if let Some(kept) = reused.next() {
                run.reuse(&["social", "social_shorten"]);
                variants.push(kept.clone());
                run.keep(|r| r.social.push(kept.clone()));
                continue;
            }
            let percent =
                from + u8::try_from((usize::from(to - from) * (done - 1)) / total.max(1)).unwrap_or(0);
            let name = spec(*platform).name;
            let message = if per_platform > 1 {
                format!("Writing the {name} post ({variant} of {per_platform})")
            } else {
                format!("Writing the {name} post")
            };
            run.step("social", percent, &message);
            if let Some(written) = post(run, *platform, brief, variant, per_platform).await? {
                variants.push(written.clone());
                run.keep(|r| r.social.push(written));
            }
        }
    }
    if variants.is_empty() && total > 0 {
        return Err(PipelineError {
            code: codes::UNUSABLE_OUTPUT.into(),
            message: format!(
                "every social post was withheld: {} repeated its instructions or looped instead of writing posts; \
                 regenerate, or use a larger model (1B parameters or more)",
                run.model()
            ),
            retryable: false,
        });
    }
    Ok(variants)
}

/// The social post set pipeline: the posts, and a Markdown document of them
/// as the content.
pub(crate) async fn post_set<L: Llm>(
    run: &mut Run<'_, L>,
    set: &SocialPostSet,
    brand_voice: &str,
    what_worked: &[WhatWorked],
) -> Result<()> {
    let topic = if set.topic.trim().is_empty() { "the text below" } else { set.topic.as_str() };
    let mut hashtags = platforms::topic_hashtags(topic);
    hashtags.extend(platforms::topic_hashtags(&excerpt(&set.source_text, 400)));
    let brief = Brief { topic, tone: set.tone, source: &set.source_text, brand_voice, hashtags, what_worked };
    let variants = posts(run, &set.platforms, &brief, set.variants_per_platform, (5, 90)).await?;
    let content = document(topic, &variants);
    run.keep(|r| r.content = content);
    Ok(())
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
