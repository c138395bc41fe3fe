//! The pipeline's retriever on the edge: a project's index searched with
//! queries embedded by the model the index was built with. Every passage it
//! hands the pipeline is remembered by the verbatim guard, so the result can
//! be checked for copied document text before it leaves the host.

use std::sync::Mutex;

use marketer_pipeline::{LlmError, Passage, Retriever};
use uuid::Uuid;

use super::index::{Hit, Index};
use crate::ollama::Ollama;
use crate::privacy::VerbatimGuard;

/// One job's view of one project's documents.
#[derive(Debug)]
pub struct EdgeRetriever<'a> {
    index: &'a Index,
    ollama: &'a Ollama,
    project: Uuid,
    /// The model the project's vectors come from; queries must use it.
    model: String,
    guard: Mutex<VerbatimGuard>,
}

/// What a job can search.
#[derive(Debug)]
pub enum Documents<'a> {
    Searchable(EdgeRetriever<'a>),
    /// Nothing to search, and why (the result's research notes say it).
    Unavailable(String),
}

impl<'a> Documents<'a> {
    /// The documents of `project` on this agent, if it holds an index of
    /// them. `max_verbatim_chars` sizes the guard's windows.
    pub async fn for_project(
        index: Option<&'a Index>,
        ollama: &'a Ollama,
        project: Option<Uuid>,
        max_verbatim_chars: u32,
    ) -> Self {
        let Some(project) = project else {
            return Self::Unavailable("the activity belongs to no project".into());
        };
        let Some(index) = index else {
            return Self::Unavailable("this agent has no document index".into());
        };
        match index.project_model(project).await {
            Ok(Some((model, _))) if has_documents(index, project).await => Self::Searchable(EdgeRetriever {
                index,
                ollama,
                project,
                model,
                guard: Mutex::new(VerbatimGuard::new(max_verbatim_chars)),
            }),
            Ok(_) => {
                Self::Unavailable("no documents of this project are indexed on the agent that ran it".into())
            }
            Err(e) => {
                tracing::warn!(%project, error = %format!("{e:#}"), "the document index could not be read");
                Self::Unavailable("the agent's document index could not be read".into())
            }
        }
    }

    /// The passages handed out so far, as a guard against their verbatim
    /// return.
    pub fn guard(&self) -> Option<VerbatimGuard> {
        match self {
            Self::Searchable(r) => Some(r.guard.lock().unwrap_or_else(|p| p.into_inner()).clone()),
            Self::Unavailable(_) => None,
        }
    }
}

async fn has_documents(index: &Index, project: Uuid) -> bool {
    index.projects().await.is_ok_and(|projects| projects.contains(&project))
}

impl Retriever for Documents<'_> {
    fn unavailable(&self) -> Option<String> {
        match self {
            Self::Searchable(_) => None,
            Self::Unavailable(why) => Some(why.clone()),
        }
    }

    async fn search(&self, queries: &[String], limit: usize) -> Result<Vec<Passage>, LlmError> {
        match self {
            Self::Searchable(r) => r.search(queries, limit).await,
            Self::Unavailable(_) => Ok(Vec::new()),
        }
    }
}

impl EdgeRetriever<'_> {
    async fn search(&self, queries: &[String], limit: usize) -> Result<Vec<Passage>, LlmError> {
        let hits = self.hits(queries, limit).await?;
        let mut guard = self.guard.lock().unwrap_or_else(|p| p.into_inner());
        Ok(hits
            .into_iter()
            .map(|hit| {
                guard.add(&hit.text);
                Passage { text: hit.text, file: hit.file, section: hit.section, page: hit.page }
            })
            .collect())
    }

    /// The best chunks for the queries, with their scores (what the
    /// research step reads; `marketer-agent documents search` shows it).
    pub async fn hits(&self, queries: &[String], limit: usize) -> Result<Vec<Hit>, LlmError> {
        let queries: Vec<String> = queries.iter().filter(|q| !q.trim().is_empty()).cloned().collect();
        if queries.is_empty() {
            return Ok(Vec::new());
        }
        let embedded = self.ollama.embed(&self.model, queries.clone()).await.map_err(|f| LlmError {
            code: f.code.to_owned(),
            message: format!("embedding the research queries with {}: {}", self.model, f.message),
            retryable: f.retryable,
        })?;
        if embedded.embeddings.len() != queries.len() {
            return Err(LlmError {
                code: "model_error".into(),
                message: format!(
                    "Ollama returned {} embeddings for {} queries",
                    embedded.embeddings.len(),
                    queries.len()
                ),
                retryable: true,
            });
        }
        let pairs: Vec<(String, Vec<f32>)> = queries.into_iter().zip(embedded.embeddings).collect();
        self.index.search(self.project, &pairs, limit).await.map_err(|e| LlmError {
            code: "index_error".into(),
            message: format!("searching the project's documents: {e:#}"),
            retryable: true,
        })
    }
}
