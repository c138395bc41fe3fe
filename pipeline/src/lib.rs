//! The content pipeline: a marketer's request becomes finished content
//! through a sequence of specialised LLM steps (seed 004's agents: SEO
//! research, content research, writer, editor, social media; and the listing
//! kit of seeds 000 and 001).
//!
//! It is written once, against the [`Llm`] interface: the edge agent runs it
//! on its local Ollama, the control plane on an OpenAI-compatible endpoint
//! when a project allows the cloud. What it knows of the world comes in the
//! [`ActivityJob`]; what it produced goes out as an [`ActivityResult`];
//! progress and partial text go to a [`Progress`] sink as they happen.
//!
//! - `run.rs`: a run's context, the two ways of calling the model (text;
//!   structured JSON that is parsed, validated and repaired once);
//! - `prompts.rs` and `prompts/`: the versioned prompt templates;
//! - `blog.rs`, `social.rs`, `listing.rs`: the pipelines;
//! - `platforms.rs`: the social platforms' rules, enforced in code;
//! - `fair_housing.rs`: the built-in Fair Housing screening;
//! - `formats.rs`: the document formats, told from content;
//! - `inbox.rs`: classifying the engagement inbox, many items per call.

mod blog;
pub mod fair_housing;
pub mod formats;
pub mod gates;
pub mod inbox;
pub mod lenient;
mod listing;
pub mod llm;
pub mod platforms;
pub mod prompts;
pub mod run;
mod social;

use marketer_protocol::activity::{ActivityInput, ActivityJob, ActivityResult};

pub use llm::{ChatRequest, Llm, LlmError, Message, NoDocuments, Passage, Progress, Reply, Retriever, Role};
pub use run::{PIPELINE_VERSION, PipelineError, usage};

/// Runs the pipeline for `job` on `llm`, grounded in what `documents`
/// finds, reporting to `progress`: each step as it begins, partial text,
/// and a checkpoint of what is complete after each step (what a run that
/// fails or is cancelled keeps). With `job.resume`, the steps an earlier
/// run completed are reused.
pub async fn run_activity<L: Llm, R: Retriever>(
    llm: &L,
    documents: &R,
    job: &ActivityJob,
    progress: &mut dyn Progress,
) -> Result<ActivityResult, PipelineError> {
    let mut run = run::Run::new(llm, progress, &job.output_budgets, job.resume.as_deref());
    match &job.input {
        ActivityInput::BlogArticle(input) => {
            blog::article(&mut run, documents, input, &job.brand_voice, &job.what_worked).await?;
        }
        ActivityInput::SocialPostSet(input) => {
            social::post_set(&mut run, input, &job.brand_voice, &job.what_worked).await?;
        }
        ActivityInput::ListingKit(input) => {
            listing::kit(&mut run, input, &job.brand_voice, &job.what_worked).await?;
        }
    };
    run.step("finalise", 98, "Putting the result together");
    Ok(run.finish())
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use marketer_protocol::activity::{BlogArticle, Listing, ListingKit, Platform, SocialPostSet, Tone};
    use serde_json::{Value, json};

    use super::*;

    /// A model that answers from a script: each answer is chosen by a phrase
    /// of the request's system prompt; unscripted requests fail the test.
    /// An answer starting with this was cut off at its budget.
    const CUT: &str = "[length]";

    struct Scripted {
        answers: Mutex<Vec<(&'static str, VecDeque<String>)>>,
        requests: Mutex<Vec<String>>,
        /// Each request's seed and output budget.
        options: Mutex<Vec<(Option<u32>, Option<u32>)>>,
    }

    impl Scripted {
        fn new(script: Vec<(&'static str, Vec<String>)>) -> Self {
            Self {
                answers: Mutex::new(script.into_iter().map(|(k, v)| (k, v.into())).collect()),
                requests: Mutex::new(Vec::new()),
                options: Mutex::new(Vec::new()),
            }
        }

        fn asked(&self, phrase: &str) -> usize {
            self.requests.lock().unwrap().iter().filter(|r| r.contains(phrase)).count()
        }
    }

    impl Llm for Scripted {
        fn backend(&self) -> &'static str {
            "scripted"
        }

        fn model(&self) -> &str {
            "test-model"
        }

        async fn chat(
            &self,
            request: ChatRequest<'_>,
            on_text: &mut (dyn FnMut(&str) + Send),
        ) -> Result<Reply, LlmError> {
            let all: String =
                request.messages.iter().map(|m| m.content.as_str()).collect::<Vec<_>>().join("\n");
            self.requests.lock().unwrap().push(all.clone());
            self.options.lock().unwrap().push((request.seed, request.max_tokens));
            let mut answers = self.answers.lock().unwrap();
            let (_, queue) = answers
                .iter_mut()
                .find(|(marker, queue)| all.contains(marker) && !queue.is_empty())
                .unwrap_or_else(|| panic!("no scripted answer for: {}", &all[..all.len().min(300)]));
            let content = queue.pop_front().unwrap();
            let (content, done_reason) = match content.strip_prefix(CUT) {
                Some(cut) => (cut.to_owned(), "length"),
                None => (content, "stop"),
            };
            on_text(&content);
            Ok(Reply {
                content,
                prompt_tokens: 10,
                completion_tokens: 20,
                done_reason: done_reason.into(),
                eval_duration_ns: 1_000_000,
                ..Reply::default()
            })
        }
    }

    /// The fields of a job the tests do not set.
    fn job_defaults() -> ActivityJob {
        ActivityJob {
            input: ActivityInput::SocialPostSet(SocialPostSet {
                topic: String::new(),
                source_text: String::new(),
                platforms: vec![],
                tone: Tone::Casual,
                variants_per_platform: 1,
            }),
            brand_voice: String::new(),
            project_id: None,
            output_budgets: Default::default(),
            resume: None,
            what_worked: Vec::new(),
        }
    }

    #[derive(Default)]
    struct Recorder {
        steps: Vec<(String, u8)>,
        text: String,
        checkpoints: Vec<ActivityResult>,
    }

    impl Progress for Recorder {
        fn step(&mut self, step: &str, percent: u8, _message: &str) {
            self.steps.push((step.to_owned(), percent));
        }

        fn text(&mut self, text: &str) {
            self.text.push_str(text);
        }

        fn checkpoint(&mut self, partial: &ActivityResult, _usage: &marketer_protocol::Usage) {
            self.checkpoints.push(partial.clone());
        }
    }

    fn seo_answer() -> String {
        json!({
            "primary_keyword": "solar roof cost",
            "related_keywords": ["solar panels", "roof installation", "energy savings"],
            "search_intent": "commercial",
            "title": "Solar Roof Cost in 2026: What Homeowners Really Pay",
            "meta_description": "What does a solar roof cost in 2026? See real price ranges, what drives them, the incentives that cut the bill, and how to get a quote you can trust today.",
            "headings": { "h1": "Solar Roof Cost in 2026", "h2": ["Price ranges", "What drives cost", "Incentives"], "h3": [] },
            "outline": ["ranges", "drivers", "incentives"],
            "target_word_count": 1200
        })
        .to_string()
    }

    /// A draft of `words` different words, in sentences, under a title.
    fn draft(title: &str, words: usize) -> String {
        let body: Vec<String> = (0..words)
            .collect::<Vec<_>>()
            .chunks(10)
            .map(|chunk| {
                let sentence: Vec<String> = chunk.iter().map(|i| format!("word{i}")).collect();
                format!("{}.", sentence.join(" "))
            })
            .collect();
        format!("# {title}\n\n{}", body.join(" "))
    }

    fn research_answer() -> String {
        json!({ "facts": ["Solar roofs last decades."], "brand_voice_notes": [], "gaps": [] }).to_string()
    }

    fn review(score: f32) -> String {
        json!({
            "grammar": score, "readability": score, "seo": score, "brand_voice": score,
            "structure": score, "factual_risk": score, "engagement": score,
            "suggestions": ["tighten the intro"]
        })
        .to_string()
    }

    #[tokio::test]
    async fn a_blog_article_goes_through_every_step_with_a_repair_and_a_refinement() {
        let llm = Scripted::new(vec![
            // The SEO plan: broken JSON first, repaired on the second try.
            ("SEO strategist", vec!["{\"primary_keyword\": \"solar".into(), seo_answer()]),
            ("research assistant", vec![json!({ "facts": ["Solar roofs last decades."], "brand_voice_notes": [], "gaps": ["local prices"] }).to_string()]),
            ("expert content writer", vec![draft("Solar Roof Cost", 500)]),
            ("demanding professional editor", vec![review(6.0), review(9.0)]),
            ("You are a professional editor. You improve", vec![draft("Better Solar Roof Cost", 520)]),
            ("social media copywriter", vec![format!("{} #solar", "x".repeat(300)), "Short and sweet. #solar #home #roof".into()]),
        ]);
        let job = ActivityJob {
            input: ActivityInput::BlogArticle(BlogArticle {
                topic: "Solar roofs".into(),
                keywords: vec!["solar".into()],
                audience: "homeowners".into(),
                tone: Tone::Friendly,
                target_word_count: 900,
                platforms: vec![Platform::X],
            }),
            brand_voice: "Warm, plain English.".into(),
            project_id: None,
            ..job_defaults()
        };
        let mut recorder = Recorder::default();
        let result = run_activity(&llm, &NoDocuments("none".into()), &job, &mut recorder).await.unwrap();

        assert_eq!(result.content, draft("Better Solar Roof Cost", 520));
        let seo = result.seo.unwrap();
        assert_eq!(seo.target_word_count, 900, "the marketer's length wins");
        let quality = result.quality.unwrap();
        assert_eq!((quality.refinement_rounds, quality.history.clone()), (1, vec![6.0, 9.0]));
        assert!((quality.overall - 9.0).abs() < f32::EPSILON);
        assert_eq!(result.research.unwrap().grounding, "inputs_only");
        // The X post was 304 characters: regenerated, and its hashtags capped at 2.
        let post = &result.social[0];
        assert_eq!((post.platform, post.enforcement.as_str()), (Platform::X, "regenerated"));
        assert_eq!(post.text, "Short and sweet. #solar #home");
        assert_eq!(post.hashtags, ["#solar", "#home"]);
        let steps: Vec<(&str, &str)> =
            result.steps.iter().map(|s| (s.step.as_str(), s.note.as_str())).collect();
        assert_eq!(
            steps,
            [
                ("seo", "repaired"),
                ("research", ""),
                ("writing", ""),
                ("editing", ""),
                ("refining", ""),
                ("editing", ""),
                ("social", ""),
                ("social_shorten", ""),
            ]
        );
        assert!(result.provenance.templates.contains(&"repair@2".to_owned()));
        assert_eq!(result.provenance.model, "test-model");
        // Progress: each step announced in order, percentages rising.
        let percents: Vec<u8> = recorder.steps.iter().map(|(_, p)| *p).collect();
        assert!(percents.windows(2).all(|w| w[0] <= w[1]), "{:?}", recorder.steps);
        assert!(
            recorder.text.contains("# Solar Roof Cost") && recorder.text.contains("# Better Solar Roof Cost")
        );
        // The brand voice reached the writer.
        let requests = llm.requests.lock().unwrap();
        assert!(
            requests
                .iter()
                .any(|r| r.contains("expert content writer") && r.contains("Warm, plain English."))
        );
    }

    /// Documents with fixed passages, recording what was asked.
    struct Library {
        passages: Vec<Passage>,
        queries: Mutex<Vec<String>>,
    }

    impl Retriever for Library {
        fn unavailable(&self) -> Option<String> {
            None
        }

        async fn search(&self, queries: &[String], limit: usize) -> Result<Vec<Passage>, LlmError> {
            self.queries.lock().unwrap().extend(queries.iter().cloned());
            Ok(self.passages.iter().take(limit).cloned().collect())
        }
    }

    #[tokio::test]
    async fn documents_ground_the_research_and_the_editor_and_are_cited() {
        let passage = |file: &str, section: &str, page, text: &str| Passage {
            text: text.into(),
            file: file.into(),
            section: section.into(),
            page,
        };
        let library = Library {
            passages: vec![
                passage("specs.pdf", "", Some(2), "Tiles carry a thirty year warranty."),
                passage("voice.md", "Words", None, "Say home, never unit."),
            ],
            queries: Mutex::new(Vec::new()),
        };
        let llm = Scripted::new(vec![
            ("SEO strategist", vec![seo_answer()]),
            ("research assistant", vec![json!({ "facts": ["Tiles carry a thirty year warranty [1]."], "brand_voice_notes": [], "gaps": [] }).to_string()]),
            ("expert content writer", vec![draft("Solar Roof Cost", 500)]),
            ("demanding professional editor", vec![review(9.0)]),
        ]);
        let job = ActivityJob {
            input: ActivityInput::BlogArticle(BlogArticle {
                topic: "Solar roofs".into(),
                keywords: vec!["tile warranty".into()],
                audience: "homeowners".into(),
                tone: Tone::Friendly,
                target_word_count: 900,
                platforms: vec![],
            }),
            brand_voice: String::new(),
            project_id: None,
            ..job_defaults()
        };
        let result = run_activity(&llm, &library, &job, &mut Recorder::default()).await.unwrap();
        let research = result.research.unwrap();
        assert_eq!((research.grounding.as_str(), research.note.as_str()), ("documents", ""));
        let sources: Vec<(&str, &str)> =
            research.sources.iter().map(|s| (s.title.as_str(), s.detail.as_str())).collect();
        assert_eq!(
            sources,
            [
                ("The request", "topic, keywords, audience and tone as the marketer gave them"),
                ("specs.pdf", "passage 1: page 2"),
                ("voice.md", "passage 2: Words"),
                ("specs.pdf", "the editor's guidance: page 2"),
                ("voice.md", "the editor's guidance: Words"),
            ]
        );
        // Seed 004's queries: the topic, the primary keyword, then related
        // ones (the marketer's first); then the editor's guidance.
        let queries = library.queries.lock().unwrap().clone();
        assert_eq!(&queries[..4], ["Solar roofs", "solar roof cost", "tile warranty", "solar panels"]);
        assert!(queries.contains(&"brand voice".to_owned()));
        let requests = llm.requests.lock().unwrap();
        assert!(
            requests
                .iter()
                .any(|r| r.contains("research assistant") && r.contains("[1] specs.pdf - page 2:"))
        );
        assert!(
            requests
                .iter()
                .any(|r| r.contains("demanding professional editor")
                    && r.contains("voice.md (Words): Say home"))
        );
    }

    #[tokio::test]
    async fn a_structured_step_that_stays_broken_fails_saying_why() {
        let llm = Scripted::new(vec![("SEO strategist", vec!["not json".into(), "{\"title\": 5}".into()])]);
        let job = ActivityJob {
            input: ActivityInput::BlogArticle(BlogArticle {
                topic: "t".into(),
                keywords: vec![],
                audience: "a".into(),
                tone: Tone::Casual,
                target_word_count: 500,
                platforms: vec![],
            }),
            brand_voice: String::new(),
            project_id: None,
            ..job_defaults()
        };
        let error = run_activity(&llm, &NoDocuments("none".into()), &job, &mut Recorder::default())
            .await
            .unwrap_err();
        assert_eq!(error.code, "invalid_output");
        assert!(error.message.contains("seo step"), "{}", error.message);
        assert!(error.message.contains("title"), "{}", error.message);
    }

    fn listing(description: &str) -> ActivityJob {
        ActivityJob {
            input: ActivityInput::ListingKit(ListingKit {
                listing: Listing {
                    address: "12 Elm Street, Springfield".into(),
                    price: 450_000,
                    beds: 3,
                    baths: 2.5,
                    square_feet: 1_850,
                    key_features: vec!["renovated kitchen".into(), "fenced yard".into()],
                    description: description.into(),
                    agent_name: "Dana Reyes".into(),
                    agent_contact: "dana@example.com".into(),
                },
                platforms: vec![Platform::Instagram],
                tone: Tone::Friendly,
            }),
            brand_voice: String::new(),
            project_id: None,
            ..job_defaults()
        }
    }

    fn listing_script(copy: &str) -> Scripted {
        Scripted::new(vec![
            (
                "marketing analyst",
                vec![
                    json!({
                        "headline_ideas": ["Renovated on Elm", "Room to grow", "Yard and kitchen"],
                        "selling_points": ["renovated kitchen", "fenced yard", "2.5 baths"],
                        "property_type": "house",
                        "price_positioning": "Priced in line with renovated homes nearby."
                    })
                    .to_string(),
                ],
            ),
            ("real estate copywriter. You write vivid", vec![copy.into()]),
            ("compliance reviewer", vec![json!({ "findings": [] }).to_string()]),
            (
                "print flyer text",
                vec![
                    json!({
                        "headline": "Renovated 3-Bed on Elm",
                        "property_summary": "A renovated three-bedroom home with a fenced yard.",
                        "features": ["3 bedrooms", "2.5 baths", "renovated kitchen", "fenced yard"],
                        "call_to_action": "Call Dana Reyes at dana@example.com today.",
                        "disclaimers": "Information deemed reliable but not guaranteed."
                    })
                    .to_string(),
                ],
            ),
            ("social media copywriter", vec!["Tour 12 Elm! #home #realestate".into()]),
        ])
    }

    #[tokio::test]
    async fn a_listing_kit_with_discriminatory_wording_is_flagged() {
        let llm = listing_script("A lovely home, perfect for young couples, in an exclusive neighborhood.");
        let result = run_activity(
            &llm,
            &NoDocuments("none".into()),
            &listing("Quiet street. No children please."),
            &mut Recorder::default(),
        )
        .await
        .unwrap();
        let compliance = result.compliance.unwrap();
        assert!(!compliance.passed);
        let found: Vec<(&str, &str)> =
            compliance.findings.iter().map(|f| (f.location.as_str(), f.phrase.as_str())).collect();
        assert_eq!(
            found,
            [
                ("input.description", "No children"),
                ("description", "perfect for young couples"),
                ("description", "exclusive neighborhood")
            ]
        );
        let flyer = result.flyer.unwrap();
        assert!(flyer.disclaimers.ends_with("Equal Housing Opportunity."), "{}", flyer.disclaimers);
    }

    #[tokio::test]
    async fn a_clean_listing_kit_passes() {
        let llm = listing_script("Sunlit three-bedroom home with a renovated kitchen and a fenced yard.");
        let result = run_activity(
            &llm,
            &NoDocuments("none".into()),
            &listing("Renovated kitchen, fenced yard."),
            &mut Recorder::default(),
        )
        .await
        .unwrap();
        let compliance = result.compliance.unwrap();
        assert!(compliance.passed, "{:?}", compliance.findings);
        assert_eq!(result.social[0].platform, Platform::Instagram);
        // Hashtags on the last line; Instagram asks for ten, so buyers'
        // search tags fill the rest (never the address).
        let post = &result.social[0];
        assert!(
            post.text.starts_with("Tour 12 Elm!\n\n#home #realestate #HomeForSale #JustListed"),
            "{}",
            post.text
        );
        assert_eq!((post.hashtags.len(), post.enforcement.as_str()), (10, "hashtags_added"), "{}", post.text);
        assert!(!post.text.contains("Elm #") && !post.text.contains("#Street"), "{}", post.text);
    }

    #[tokio::test]
    async fn a_social_post_set_writes_each_variant() {
        let llm = Scripted::new(vec![(
            "social media copywriter",
            vec!["One. #a".into(), "Two. #b".into(), "Three #c".into(), "Four #d".into()],
        )]);
        let job = ActivityJob {
            input: ActivityInput::SocialPostSet(SocialPostSet {
                topic: "Spring sale".into(),
                source_text: String::new(),
                platforms: vec![Platform::Linkedin, Platform::Threads],
                tone: Tone::Casual,
                variants_per_platform: 2,
            }),
            brand_voice: String::new(),
            project_id: None,
            ..job_defaults()
        };
        let mut recorder = Recorder::default();
        let result = run_activity(&llm, &NoDocuments("none".into()), &job, &mut recorder).await.unwrap();
        let platforms: Vec<Platform> = result.social.iter().map(|v| v.platform).collect();
        assert_eq!(platforms, [Platform::Linkedin, Platform::Linkedin, Platform::Threads, Platform::Threads]);
        assert!(result.content.contains("## LinkedIn") && result.content.contains("## Threads"));
        let requests = llm.requests.lock().unwrap();
        assert!(requests[1].contains("variant 2 of 2"));
    }

    #[tokio::test]
    async fn what_won_a_platforms_ab_tests_reaches_its_posts_prompt_only() {
        let llm = Scripted::new(vec![(
            "social media copywriter",
            vec!["Spring is here, come by. #a".into(), "Spring sale on now, visit us. #b".into()],
        )]);
        let note = "@acme: the winner had 96 characters and a question.";
        let job = ActivityJob {
            input: ActivityInput::SocialPostSet(SocialPostSet {
                topic: "Spring sale".into(),
                source_text: String::new(),
                platforms: vec![Platform::X, Platform::Linkedin],
                tone: Tone::Casual,
                variants_per_platform: 1,
            }),
            what_worked: vec![marketer_protocol::activity::WhatWorked {
                platform: Platform::X,
                note: note.into(),
            }],
            ..job_defaults()
        };
        let result =
            run_activity(&llm, &NoDocuments("none".into()), &job, &mut Recorder::default()).await.unwrap();
        assert_eq!(result.social.len(), 2);
        let requests = llm.requests.lock().unwrap();
        assert!(requests[0].contains("What worked for this brand on X (its A/B tests"), "{}", requests[0]);
        assert!(requests[0].contains(note));
        assert!(!requests[1].contains("What worked"), "LinkedIn has no note: {}", requests[1]);
        assert!(result.steps.iter().any(|s| s.template == "social_post" && s.template_version == 2));
    }

    fn blog_job(target_word_count: u32, platforms: Vec<Platform>) -> ActivityJob {
        ActivityJob {
            input: ActivityInput::BlogArticle(BlogArticle {
                topic: "Solar roofs".into(),
                keywords: vec!["solar".into()],
                audience: "homeowners".into(),
                tone: Tone::Friendly,
                target_word_count,
                platforms,
            }),
            ..job_defaults()
        }
    }

    #[tokio::test]
    async fn a_structured_answer_cut_off_twice_fails_as_truncated_and_the_repair_asks_differently() {
        let llm = Scripted::new(vec![(
            "SEO strategist",
            vec![
                format!("{CUT}{{\"primary_keyword\": \"solar roof solar roof solar"),
                format!("{CUT}{{\"primary"),
            ],
        )]);
        let error =
            run_activity(&llm, &NoDocuments("none".into()), &blog_job(900, vec![]), &mut Recorder::default())
                .await
                .unwrap_err();
        assert_eq!(error.code, "truncated", "{}", error.message);
        assert!(error.message.contains("1400-token output budget"), "{}", error.message);
        assert!(error.message.contains("regenerate"), "{}", error.message);
        // The repair is a different request: the answer quoted, what is
        // wrong, the cut said, another seed, the same budget.
        let requests = llm.requests.lock().unwrap();
        assert!(requests[1].contains("You check and correct JSON answers"), "{}", requests[1]);
        assert!(
            requests[1].contains("\"primary_keyword\": \"solar roof solar roof solar"),
            "{}",
            requests[1]
        );
        assert!(requests[1].contains("It was cut off before it ended"), "{}", requests[1]);
        assert!(requests[1].contains("1. the JSON ends too early"), "{}", requests[1]);
        let options = llm.options.lock().unwrap();
        assert_eq!(options[0], (None, Some(1_400)));
        assert!(options[1].0.is_some() && options[1].1 == Some(1_400), "{:?}", options[1]);
    }

    #[tokio::test]
    async fn the_repair_lists_every_problem_at_once_and_small_errors_are_fixed_not_failed() {
        // Missing fields and a wrong enum: repaired in one go. An over-long
        // title, an empty outline item and an unknown field: fixed in place.
        let broken = json!({ "primary_keyword": "solar roof cost", "search_intent": "curious" }).to_string();
        let mut fixable: Value = serde_json::from_str(&seo_answer()).unwrap();
        fixable["title"] = json!("Solar Roof Cost in 2026: What Homeowners Really Pay, Explained Fully");
        fixable["outline"] = json!(["ranges", "", "drivers", "incentives"]);
        fixable["target_word_count"] = json!(1_000_000_000_000_000u64);
        let llm = Scripted::new(vec![
            ("SEO strategist", vec![broken, fixable.to_string()]),
            ("research assistant", vec![research_answer()]),
            ("expert content writer", vec![draft("Solar Roof Cost", 500)]),
            ("demanding professional editor", vec![review(9.0)]),
        ]);
        let result =
            run_activity(&llm, &NoDocuments("none".into()), &blog_job(900, vec![]), &mut Recorder::default())
                .await
                .unwrap();
        let repair = llm.requests.lock().unwrap()[1].clone();
        for expected in [
            "(6 problems)",
            "search_intent: must be one of informational, commercial, transactional, navigational, not \"curious\"",
            "related_keywords: is missing",
            "outline: is missing",
        ] {
            assert!(repair.contains(expected), "{expected} not in {repair}");
        }
        let seo = result.seo.unwrap();
        assert_eq!(seo.title, "Solar Roof Cost in 2026: What Homeowners Really Pay,".trim_end_matches(','));
        assert_eq!(seo.outline, ["ranges", "drivers", "incentives"]);
        assert_eq!(seo.target_word_count, 900);
        let record = &result.steps[0];
        assert_eq!((record.step.as_str(), record.note.as_str()), ("seo", "repaired"));
        assert!(
            record.adjustments.iter().any(|a| a.starts_with("title: cut from 68")),
            "{:?}",
            record.adjustments
        );
        assert!(
            record.adjustments.iter().any(|a| a.contains("target_word_count")),
            "{:?}",
            record.adjustments
        );
        assert!(
            record.adjustments.iter().any(|a| a == "outline: dropped 1 empty item(s)"),
            "{:?}",
            record.adjustments
        );
    }

    #[tokio::test]
    async fn output_budgets_are_sized_per_step_and_a_job_can_replace_them() {
        let llm = Scripted::new(vec![
            ("SEO strategist", vec![seo_answer()]),
            ("research assistant", vec![research_answer()]),
            ("expert content writer", vec![draft("Solar Roof Cost", 500)]),
            ("demanding professional editor", vec![review(9.0)]),
        ]);
        let mut job = blog_job(900, vec![]);
        job.output_budgets.insert("writing".into(), 3_000);
        let result =
            run_activity(&llm, &NoDocuments("none".into()), &job, &mut Recorder::default()).await.unwrap();
        let budgets: Vec<(&str, u64)> =
            result.steps.iter().map(|s| (s.step.as_str(), s.max_tokens)).collect();
        assert_eq!(budgets, [("seo", 1_400), ("research", 1_600), ("writing", 3_000), ("editing", 700)]);
        let sent: Vec<Option<u32>> = llm.options.lock().unwrap().iter().map(|o| o.1).collect();
        assert_eq!(sent, [Some(1_400), Some(1_600), Some(3_000), Some(700)]);
        // Usage adds up the calls' real durations.
        let usage = usage(&result.steps);
        assert_eq!((usage.completion_tokens, usage.eval_duration_ns), (80, 4_000_000));
    }

    #[tokio::test]
    async fn a_draft_far_below_its_length_is_extended_once_then_flagged() {
        let llm = Scripted::new(vec![
            ("SEO strategist", vec![seo_answer()]),
            ("research assistant", vec![research_answer()]),
            ("expand drafts", vec![draft("Solar Roof Cost", 150)]),
            ("expert content writer", vec![draft("Solar Roof Cost", 100)]),
            ("demanding professional editor", vec![review(9.0)]),
        ]);
        let result =
            run_activity(&llm, &NoDocuments("none".into()), &blog_job(900, vec![]), &mut Recorder::default())
                .await
                .unwrap();
        assert_eq!(result.content, draft("Solar Roof Cost", 150), "the longer draft is kept");
        let warning = result.warnings.iter().find(|w| w.code == "too_short").unwrap();
        assert!(warning.message.contains("far below the 900 asked for"), "{}", warning.message);
        assert!(result.steps.iter().any(|s| s.step == "extend"));
    }

    const ECHO: &str = "You are a social media copywriter. You write one post at a time, native to its platform, and you output the post text only.";

    #[tokio::test]
    async fn a_post_that_repeats_its_instructions_is_written_again_then_withheld() {
        let llm = Scripted::new(vec![(
            "social media copywriter",
            vec![ECHO.into(), ECHO.into(), "Fresh sourdough every morning! Come early. #bread".into()],
        )]);
        let job = ActivityJob {
            input: ActivityInput::SocialPostSet(SocialPostSet {
                topic: "Sourdough".into(),
                source_text: String::new(),
                platforms: vec![Platform::Linkedin, Platform::X],
                tone: Tone::Casual,
                variants_per_platform: 1,
            }),
            ..job_defaults()
        };
        let result =
            run_activity(&llm, &NoDocuments("none".into()), &job, &mut Recorder::default()).await.unwrap();
        let platforms: Vec<Platform> = result.social.iter().map(|v| v.platform).collect();
        assert_eq!(platforms, [Platform::X], "the LinkedIn post was withheld");
        let withheld = result.warnings.iter().find(|w| w.code == "withheld").unwrap();
        assert!(
            withheld.message.contains("LinkedIn") && withheld.message.contains("instructions"),
            "{withheld:?}"
        );
        assert!(!result.content.contains("copywriter"), "{}", result.content);
        assert_eq!(result.steps[0].note, "regenerated");
        // The regeneration had another seed.
        assert!(llm.options.lock().unwrap()[1].0.is_some());

        // Every post withheld: the run fails, saying what to do.
        let llm = Scripted::new(vec![("social media copywriter", vec![ECHO.into(), ECHO.into()])]);
        let job = ActivityJob {
            input: ActivityInput::SocialPostSet(SocialPostSet {
                topic: "Sourdough".into(),
                source_text: String::new(),
                platforms: vec![Platform::Linkedin],
                tone: Tone::Casual,
                variants_per_platform: 1,
            }),
            ..job_defaults()
        };
        let error = run_activity(&llm, &NoDocuments("none".into()), &job, &mut Recorder::default())
            .await
            .unwrap_err();
        assert_eq!(error.code, "unusable_output");
        assert!(error.message.contains("larger model"), "{}", error.message);
    }

    #[tokio::test]
    async fn hashtag_rules_hold_after_generation() {
        // Instagram asks for ten: the post had none, and is long enough
        // that the tags only fit once the text is cut.
        let body = draft("Fresh sourdough", 273);
        assert!((2_100..2_200).contains(&body.chars().count()), "{}", body.chars().count());
        let llm = Scripted::new(vec![("social media copywriter", vec![body])]);
        let job = ActivityJob {
            input: ActivityInput::SocialPostSet(SocialPostSet {
                topic: "Sourdough bread bakery mornings fresh loaves ovens town".into(),
                source_text: "Sourdough loaves, rye, baguettes, croissants and pastries baked before dawn."
                    .into(),
                platforms: vec![Platform::Instagram],
                tone: Tone::Casual,
                variants_per_platform: 1,
            }),
            ..job_defaults()
        };
        let result =
            run_activity(&llm, &NoDocuments("none".into()), &job, &mut Recorder::default()).await.unwrap();
        let post = &result.social[0];
        assert!(post.hashtags.len() >= 10, "{}", post.text);
        assert!(post.char_count <= post.char_limit);
        assert!(post.text.lines().last().unwrap().starts_with('#'), "{}", post.text);
    }

    #[tokio::test]
    async fn a_failed_run_keeps_its_completed_steps_and_a_regeneration_resumes_them() {
        let mut script = listing_script(
            "Sunlit three-bedroom home with a renovated kitchen and a fenced yard, close to parks, schools and shops, with a bright living room and a sunny deck.",
        );
        script.answers.get_mut().unwrap().retain(|(marker, _)| *marker != "print flyer text");
        script
            .answers
            .get_mut()
            .unwrap()
            .insert(0, ("print flyer text", vec!["{\"headline\": 5}".into(), "nope".into()].into()));
        let mut recorder = Recorder::default();
        let job = listing("Renovated kitchen, fenced yard.");
        let error =
            run_activity(&script, &NoDocuments("none".into()), &job, &mut recorder).await.unwrap_err();
        assert_eq!(error.code, "invalid_output");
        assert!(error.message.contains("flyer step"), "{}", error.message);
        let kept = recorder.checkpoints.last().unwrap().clone();
        assert!(kept.analysis.is_some() && kept.compliance.is_some() && !kept.content.is_empty());
        assert!(kept.flyer.is_none());
        let steps: Vec<&str> = kept.steps.iter().map(|s| s.step.as_str()).collect();
        assert_eq!(steps, ["analysis", "writing", "compliance"]);

        // Regenerated: what was completed is reused, only the rest is asked.
        let llm = listing_script("not used");
        let resumed = ActivityJob {
            resume: Some(Box::new(kept.clone())),
            ..listing("Renovated kitchen, fenced yard.")
        };
        let result = run_activity(&llm, &NoDocuments("none".into()), &resumed, &mut Recorder::default())
            .await
            .unwrap();
        assert_eq!(llm.asked("marketing analyst"), 0);
        assert_eq!(llm.asked("real estate copywriter. You write vivid"), 0);
        assert_eq!(llm.asked("compliance reviewer"), 0);
        assert_eq!(llm.asked("print flyer text"), 1);
        assert_eq!(result.content, kept.content);
        let notes: Vec<(&str, &str)> =
            result.steps.iter().map(|s| (s.step.as_str(), s.note.as_str())).collect();
        assert_eq!(
            notes,
            [
                ("analysis", "reused"),
                ("writing", "reused"),
                ("compliance", "reused"),
                ("flyer", ""),
                ("social", "")
            ]
        );
        // Usage counts this run's calls only.
        assert_eq!(usage(&result.steps).completion_tokens, 40);
    }

    fn label(n: u32, intent: &str) -> Value {
        json!({ "n": n, "sentiment": "neutral", "score": 0.1, "intent": intent, "urgency": "normal",
            "language": "EN", "personal_data": false })
    }

    #[tokio::test]
    async fn inbox_items_are_labelled_ten_a_call_and_one_left_out_is_asked_again() {
        let first: Vec<Value> = (1..=9).rev().map(|n| label(n, "question")).collect();
        let llm = Scripted::new(vec![(
            "You sort what people write to a brand",
            vec![
                // The first ten: the tenth left out (and the order shuffled).
                json!({ "items": first }).to_string(),
                json!({ "items": [label(1, "praise"), label(2, "spam")] }).to_string(),
                // Asked again, alone.
                json!({ "items": [label(1, "complaint")] }).to_string(),
            ],
        )]);
        let texts: Vec<String> = (1..=12).map(|n| format!("message number {n}")).collect();
        let items: Vec<inbox::Item<'_>> =
            texts.iter().map(|t| inbox::Item { platform: "mastodon", kind: "mention", text: t }).collect();
        let (labels, usage) = inbox::classify(&llm, &items).await.unwrap();
        assert_eq!(labels.len(), 12);
        let intents: Vec<&str> = labels.iter().map(|l| l.intent.as_str()).collect();
        assert_eq!(intents[..9], ["question"; 9]);
        assert_eq!(intents[9..], ["complaint", "praise", "spam"], "in the items' order");
        assert_eq!(labels[0].language, "en", "read leniently");
        assert!((labels[0].sentiment_score - 0.1).abs() < 1e-6);
        assert_eq!(llm.asked("You sort what people write"), 3, "two batches, then the one left out");
        let requests = llm.requests.lock().unwrap();
        assert!(requests[2].contains("message number 10") && !requests[2].contains("message number 9\n"));
        assert!(requests[0].contains("Message 10 (mention on mastodon)"));
        assert_eq!(usage.completion_tokens, 60);
    }

    #[tokio::test]
    async fn a_reply_is_grounded_in_the_passages_it_cites_and_fits_the_platform() {
        let library = Library {
            passages: vec![
                Passage {
                    text: "The open house runs Saturdays from 10 to 2.".into(),
                    file: "open-house.md".into(),
                    section: String::new(),
                    page: None,
                },
                Passage {
                    text: "Parking is on Elm Street.".into(),
                    file: "parking.md".into(),
                    section: String::new(),
                    page: None,
                },
            ],
            queries: Mutex::new(Vec::new()),
        };
        let long = format!("Yes, Saturdays from 10 to 2. {}", "More words here. ".repeat(40));
        let llm = Scripted::new(vec![(
            "You answer people who wrote to a brand",
            vec![
                json!({ "reply": "Yes: Saturdays from 10 to 2. See you there!", "sources": [1, 1, 7] })
                    .to_string(),
                json!({ "reply": long, "sources": [] }).to_string(),
            ],
        )]);
        let input = inbox::ReplyInput {
            platform: "mastodon",
            kind: "mention",
            text: "When is the open house?",
            post_text: Some("Our loft is for sale"),
            author: Some("Dana"),
            brand_voice: "Warm, plain English.",
            max_chars: 100,
        };
        let (draft, usage) = inbox::draft_reply(&llm, &library, &input).await.unwrap();
        assert_eq!(draft.text, "Yes: Saturdays from 10 to 2. See you there!");
        assert_eq!(draft.sources, ["open-house.md"], "cited once; a number without a source is ignored");
        assert!(draft.ungrounded.is_none());
        assert!(usage.completion_tokens > 0);
        assert_eq!(*library.queries.lock().unwrap(), ["When is the open house?", "Our loft is for sale"]);
        {
            let requests = llm.requests.lock().unwrap();
            assert!(
                requests[0].contains("Source 1 (open-house.md)")
                    && requests[0].contains("Warm, plain English.")
            );
            assert!(requests[0].contains("At most 100 characters"));
        }
        // Too long, citing nothing: cut at a sentence, and said to be ungrounded.
        let (draft, _) = inbox::draft_reply(&llm, &library, &input).await.unwrap();
        assert!(draft.text.chars().count() <= 100 && draft.text.ends_with('.'), "{}", draft.text);
        assert_eq!(draft.ungrounded.as_deref(), Some("the reply uses none of the passages found"));
        // No documents: said why.
        let none = NoDocuments("no index of this project on this agent".into());
        let llm = Scripted::new(vec![(
            "You answer people who wrote to a brand",
            vec![json!({ "reply": "Thanks! The team will follow up.", "sources": [] }).to_string()],
        )]);
        let (draft, _) = inbox::draft_reply(&llm, &none, &input).await.unwrap();
        assert_eq!(draft.ungrounded.as_deref(), Some("no index of this project on this agent"));
        assert!(llm.requests.lock().unwrap()[0].contains("There are no sources"));
    }
}
