//! Documents on the edge: the project indexes that ground the content
//! pipeline, kept on the agent host. Their text, chunks and vectors never
//! cross the tunnel; only metadata is reported.
//!
//! - `extract.rs`: text out of text, Markdown, HTML, PDF and DOCX files;
//! - `chunk.rs`: structure-aware chunks with overlap;
//! - `index.rs`: the SQLite index with hybrid (vector + BM25) search;
//! - `ingest.rs`: indexing files (hash, extract, chunk, embed, store);
//! - `retrieve.rs`: the pipeline's retriever over a project's index;
//! - `download.rs`: uploaded documents fetched from the gateway;
//! - `report.rs`: the metadata reports to the control plane.

pub mod chunk;
pub mod download;
pub mod extract;
pub mod index;
pub mod ingest;
pub mod report;
pub mod retrieve;

pub use index::Index;
pub use ingest::{DEFAULT_EMBEDDING_MODEL, Ingester, Outcome};
