//! Search in a project's document index: how long the research step waits
//! for its passages.
//!
//!     cargo bench -p marketer-edge-agent --bench search -- [CHUNKS] [DIMENSIONS]
//!
//! Builds an index of CHUNKS chunks (default 100,000) of about 300 words
//! each (what a 2,048-character chunk holds) with DIMENSIONS-dimensional
//! embeddings (default 768, nomic-embed-text's), in one project, then runs
//! 200 searches of one query (a few words and an embedding close to a
//! stored chunk's, as a real query about a covered topic is) and 100 of six
//! queries (the research step's topic, primary and related keywords). The
//! first search of a project loads its sign-bit codes into memory and is
//! timed apart. Results go to stdout; docs/benchmarks.md records them.
//! `SEARCH_PARTS=1` also times the vector and the keyword search alone;
//! `SEARCH_KEEP=DIR` builds the index in DIR and keeps it.

use std::time::{Duration, Instant};

use marketer_edge_agent::documents::index::{Index, NewChunk};
use uuid::Uuid;

const WORDS_PER_CHUNK: usize = 300;
const CHUNKS_PER_DOCUMENT: usize = 1000;

/// A small deterministic generator (xorshift), so every run builds the same index.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }
}

fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::EPSILON);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

/// A vocabulary of 20,000 made-up words with a Zipf-like use: common words
/// are common, most are rare, as in real text.
fn word(rng: &mut Rng, vocabulary: &[String]) -> String {
    let r = (rng.next() % 1_000_000) as f64 / 1_000_000.0;
    let index = ((vocabulary.len() as f64).powf(r) as usize).saturating_sub(1).min(vocabulary.len() - 1);
    vocabulary[index].clone()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn report(what: &str, mut times: Vec<Duration>) {
    times.sort();
    println!(
        "{what}: p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms ({} searches)",
        percentile(&times, 0.5).as_secs_f64() * 1000.0,
        percentile(&times, 0.95).as_secs_f64() * 1000.0,
        times.last().unwrap().as_secs_f64() * 1000.0,
        times.len()
    );
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let chunks = args.first().copied().unwrap_or(100_000);
    let dims = args.get(1).copied().unwrap_or(768);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(run(chunks, dims));
}

async fn run(chunks: usize, dims: usize) {
    let dir = tempfile::tempdir().unwrap();
    // SEARCH_KEEP=DIR builds the index there and keeps it, for inspection.
    let kept = std::env::var_os("SEARCH_KEEP").map(std::path::PathBuf::from);
    let root = kept.clone().unwrap_or_else(|| dir.path().to_path_buf());
    let index = Index::open(&root).await.unwrap();
    let project = Uuid::now_v7();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let vocabulary: Vec<String> = (0..20_000).map(|i| format!("w{i:x}q")).collect();
    let mut samples: Vec<(String, Vec<f32>)> = Vec::new();

    let began = Instant::now();
    let mut stored = 0;
    let mut document = 0;
    while stored < chunks {
        let count = CHUNKS_PER_DOCUMENT.min(chunks - stored);
        let batch: Vec<NewChunk> = (0..count)
            .map(|_| {
                let text =
                    (0..WORDS_PER_CHUNK).map(|_| word(&mut rng, &vocabulary)).collect::<Vec<_>>().join(" ");
                let embedding = normalised((0..dims).map(|_| rng.unit()).collect());
                NewChunk { text, section: "Section".into(), page: None, embedding }
            })
            .collect();
        // Keep a few chunks to aim queries at.
        for chunk in batch.iter().step_by(97).take(4) {
            let words: Vec<&str> = chunk.text.split(' ').skip(100).take(3).collect();
            samples.push((words.join(" "), chunk.embedding.clone()));
        }
        index
            .store(
                Uuid::now_v7(),
                project,
                &format!("/bench/{document}"),
                &format!("doc-{document}.md"),
                1,
                "00",
                "text/markdown",
                "bench",
                &batch,
            )
            .await
            .unwrap();
        stored += count;
        document += 1;
    }
    println!(
        "built {chunks} chunks of {WORDS_PER_CHUNK} words, {dims} dimensions, in {:.1} s",
        began.elapsed().as_secs_f64()
    );

    // A query near a stored chunk: its embedding plus noise.
    let query = |rng: &mut Rng, i: usize| {
        let (text, embedding) = &samples[i % samples.len()];
        let noisy = normalised(embedding.iter().map(|v| v + rng.unit() * 0.05).collect());
        (text.clone(), noisy)
    };

    let first = Instant::now();
    index.search(project, &[query(&mut rng, 0)], 8).await.unwrap();
    println!("first search (loads the project's codes): {:.1} ms", first.elapsed().as_secs_f64() * 1000.0);

    let mut one = Vec::new();
    for i in 0..200 {
        let q = query(&mut rng, i);
        let start = Instant::now();
        let hits = index.search(project, &[q], 8).await.unwrap();
        one.push(start.elapsed());
        assert!(!hits.is_empty());
    }
    report("one query, 8 passages", one);

    if std::env::var_os("SEARCH_PARTS").is_some() {
        let mut by_vector = Vec::new();
        let mut by_words = Vec::new();
        for i in 0..100 {
            let (text, embedding) = query(&mut rng, i);
            let start = Instant::now();
            index.search(project, &[(String::new(), embedding)], 8).await.unwrap();
            by_vector.push(start.elapsed());
            let start = Instant::now();
            index.search(project, &[(text, Vec::new())], 8).await.unwrap();
            by_words.push(start.elapsed());
        }
        report("vector only", by_vector);
        report("words only", by_words);
    }

    let mut six = Vec::new();
    for i in 0..100 {
        let queries: Vec<(String, Vec<f32>)> = (0..6).map(|j| query(&mut rng, i * 6 + j)).collect();
        let start = Instant::now();
        index.search(project, &queries, 8).await.unwrap();
        six.push(start.elapsed());
    }
    report("six queries (a research step), 8 passages", six);
}
