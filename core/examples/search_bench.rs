//! Search at scale: indexes generated documents into a fresh database until it holds N chunks, then
//! times full-text searches through [`SearchService::search`], the call the API and the Search page
//! make.
//!
//! ```text
//! cargo run --release -p goblin-core --example search_bench -- [--backend sqlite|postgres]
//!     [--chunks 100000] [--queries 400] [--pg-url postgres://postgres@127.0.0.1:5432/postgres]
//!     [--sqlite-file PATH]
//! ```
//!
//! The text is generated, deterministically: words drawn from a 40,000-word vocabulary with a Zipf
//! distribution (as natural text has), in sentences and paragraphs. Each document is added as a
//! client would add it (extract, chunk by tokens with overlap, one transaction with its chunks and
//! their full-text entries). Queries mix a rare word, two mid-frequency words, a common and a rare
//! word, and three words; each is timed on its own, after a warm-up, and the percentiles are printed.
//!
//! SQLite runs in a temporary file (WAL, as the server opens it); PostgreSQL in a database created
//! for the run and dropped after it.

use std::time::{Duration, Instant};

use goblin_core::{
    config::{Backend, DatabaseConfig, PoolConfig},
    search::{Filters, Format, NewCollection, NewDocument, SearchRequest, SearchService},
    secret::Secret,
};
use sea_orm::{ConnectionTrait, Database};

const VOCABULARY: usize = 40_000;
const CHUNK_TOKENS: i64 = 128;
const CHUNK_OVERLAP: i64 = 16;
/// Words a generated document has: these made-up words are about four tokens each, so a document
/// makes about 210 chunks.
const WORDS_PER_DOCUMENT: usize = 5_300;

/// xorshift64*: a fixed sequence, so every run indexes the same text.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Pronounceable made-up words, all distinct, and a Zipf sampler over them (rank 1 most frequent).
struct Words {
    words: Vec<String>,
    cumulative: Vec<f64>,
}

impl Words {
    fn new(rng: &mut Rng) -> Self {
        const ONSETS: [&str; 20] = [
            "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z", "br",
            "st",
        ];
        const VOWELS: [&str; 8] = ["a", "e", "i", "o", "u", "ai", "ou", "ea"];
        const CODAS: [&str; 8] = ["", "n", "r", "l", "s", "th", "ck", "m"];
        let mut seen = std::collections::HashSet::new();
        let mut words = Vec::with_capacity(VOCABULARY);
        while words.len() < VOCABULARY {
            let syllables = 2 + rng.below(3);
            let mut w = String::new();
            for _ in 0..syllables {
                w.push_str(ONSETS[rng.below(ONSETS.len())]);
                w.push_str(VOWELS[rng.below(VOWELS.len())]);
            }
            w.push_str(CODAS[rng.below(CODAS.len())]);
            if seen.insert(w.clone()) {
                words.push(w);
            }
        }
        let mut total = 0.0;
        let cumulative = (1..=VOCABULARY)
            .map(|rank| {
                total += 1.0 / rank as f64;
                total
            })
            .collect::<Vec<_>>();
        let cumulative = cumulative.into_iter().map(|c| c / total).collect();
        Self { words, cumulative }
    }

    fn zipf(&self, rng: &mut Rng) -> &str {
        let u = rng.unit();
        let i = self.cumulative.partition_point(|&c| c < u).min(VOCABULARY - 1);
        &self.words[i]
    }

    fn ranked(&self, rank: usize) -> &str {
        &self.words[rank.min(VOCABULARY) - 1]
    }

    /// About `words` words of prose: sentences of 6 to 20 words, paragraphs of 3 to 8 sentences.
    fn text(&self, rng: &mut Rng, words: usize) -> String {
        let mut out = String::with_capacity(words * 8);
        let mut written = 0;
        while written < words {
            for _ in 0..3 + rng.below(6) {
                let n = 6 + rng.below(15);
                for i in 0..n {
                    let w = self.zipf(rng);
                    if i == 0 {
                        let mut cs = w.chars();
                        if let Some(c) = cs.next() {
                            out.extend(c.to_uppercase());
                            out.push_str(cs.as_str());
                        }
                    } else {
                        out.push(' ');
                        out.push_str(w);
                    }
                }
                out.push_str(". ");
                written += n;
            }
            out.push_str("\n\n");
        }
        out
    }
}

struct Args {
    backend: Backend,
    chunks: usize,
    queries: usize,
    pg_url: String,
    /// Keep the SQLite database in this file (which must not exist) instead of a temporary one.
    sqlite_file: Option<String>,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        backend: Backend::Sqlite,
        chunks: 100_000,
        queries: 400,
        pg_url: std::env::var("GOBLIN_BENCH_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
        sqlite_file: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| anyhow::anyhow!("{flag} needs a value"));
        match flag.as_str() {
            "--backend" => {
                a.backend = match value()?.as_str() {
                    "sqlite" => Backend::Sqlite,
                    "postgres" => Backend::Postgres,
                    other => anyhow::bail!("--backend: sqlite or postgres, not {other}"),
                }
            }
            "--chunks" => a.chunks = value()?.parse()?,
            "--queries" => a.queries = value()?.parse()?,
            "--pg-url" => a.pg_url = value()?,
            "--sqlite-file" => a.sqlite_file = Some(value()?),
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    Ok(a)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let tmp = tempfile::tempdir()?;
    let db_name = format!("goblin_bench_search_{}", std::process::id());
    let url = match args.backend {
        Backend::Sqlite => match &args.sqlite_file {
            Some(file) => format!("sqlite://{file}?mode=rwc"),
            None => format!("sqlite://{}/bench.db?mode=rwc", tmp.path().display()),
        },
        Backend::Postgres => {
            let admin = Database::connect(args.pg_url.as_str()).await?;
            admin.execute_unprepared(&format!("CREATE DATABASE \"{db_name}\"")).await?;
            let (base, _) =
                args.pg_url.rsplit_once('/').ok_or_else(|| anyhow::anyhow!("--pg-url: no database"))?;
            format!("{base}/{db_name}")
        }
    };
    let result = run(&args, &url).await;
    if args.backend == Backend::Postgres {
        let admin = Database::connect(args.pg_url.as_str()).await?;
        admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{db_name}\" WITH (FORCE)")).await?;
    }
    result
}

async fn run(args: &Args, url: &str) -> anyhow::Result<()> {
    let cfg = DatabaseConfig {
        url: Secret::new(url.to_owned()),
        backend: args.backend,
        pool: PoolConfig::defaults_for(args.backend),
    };
    let db = goblin_core::db::connect(&cfg).await?;
    goblin_core::db::migrate_up(&db).await?;
    let search = SearchService::new(db.clone());
    let collection = search
        .create_collection(
            None,
            NewCollection {
                name: "bench".into(),
                chunk_size: Some(CHUNK_TOKENS),
                chunk_overlap: Some(CHUNK_OVERLAP),
                ..Default::default()
            },
        )
        .await?;

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let words = Words::new(&mut rng);
    println!(
        "backend {}: indexing {} chunks ({} tokens each, {} overlap), documents of {} words",
        args.backend.as_str(),
        args.chunks,
        CHUNK_TOKENS,
        CHUNK_OVERLAP,
        WORDS_PER_DOCUMENT
    );
    let (mut chunks, mut documents, mut bytes) = (0usize, 0usize, 0usize);
    let started = Instant::now();
    while chunks < args.chunks {
        let text = words.text(&mut rng, WORDS_PER_DOCUMENT);
        bytes += text.len();
        let doc = search
            .add_document(
                collection.id,
                NewDocument {
                    title: Some(format!("Document {documents}")),
                    source: Some(format!("bench/{}", documents % 10)),
                    tags: vec![format!("t{}", documents % 7)],
                    format: Format::Text,
                    file_name: None,
                    bytes: text.into_bytes(),
                },
            )
            .await?;
        chunks += doc.chunks.len();
        documents += 1;
    }
    let took = started.elapsed();
    if args.backend == Backend::Postgres {
        db.execute_unprepared("ANALYZE search_chunks").await?;
    }
    println!(
        "ingestion: {documents} documents, {chunks} chunks, {:.1} MB of text in {:.1} s: \
         {:.0} chunks/s, {:.2} MB/s",
        bytes as f64 / 1e6,
        took.as_secs_f64(),
        chunks as f64 / took.as_secs_f64(),
        bytes as f64 / 1e6 / took.as_secs_f64()
    );

    // Query shapes; ranks are a word's frequency rank in the vocabulary (1 = most frequent). The
    // index leaves English's most common words (the, of, and...) out of queries; the generated
    // vocabulary's own equivalents are its top 50, which are in 11% to 99% of chunks. Queries with
    // one of those are measured on their own, outside the mix.
    type Shape = fn(&Words, &mut Rng) -> String;
    let shapes: [(&str, Shape); 4] = [
        ("one rare word (rank 5,000-40,000)", |w, r| w.ranked(5_000 + r.below(35_000)).to_owned()),
        ("two mid words (rank 200-2,000)", |w, r| {
            format!("{} {}", w.ranked(200 + r.below(1_800)), w.ranked(200 + r.below(1_800)))
        }),
        ("a common and a rare word", |w, r| {
            format!("{} {}", w.ranked(50 + r.below(450)), w.ranked(2_000 + r.below(20_000)))
        }),
        ("three words (rank 50-5,000)", |w, r| {
            (0..3).map(|_| w.ranked(50 + r.below(4_950))).collect::<Vec<_>>().join(" ")
        }),
    ];
    let stopword: (&str, Shape) = ("a top-50 word and a rare word", |w, r| {
        format!("{} {}", w.ranked(1 + r.below(50)), w.ranked(2_000 + r.below(20_000)))
    });
    let mut qrng = Rng(0xD1B5_4A32_D192_ED03);
    let collection_name = collection.id.to_string();
    let request = |query: String| SearchRequest {
        collection: collection_name.clone(),
        query,
        k: 10,
        filters: Filters::default(),
    };
    for _ in 0..50 {
        let (_, make) = &shapes[qrng.below(shapes.len())];
        search.search(request(make(&words, &mut qrng))).await?;
    }
    println!("search, k = 10, {} queries a shape after 50 warm-up:", args.queries);
    let mut all = Vec::new();
    for (label, make) in &shapes {
        let mut times = Vec::with_capacity(args.queries);
        let mut hits = 0;
        for _ in 0..args.queries {
            let q = make(&words, &mut qrng);
            let t = Instant::now();
            let r = search.search(request(q)).await?;
            times.push(t.elapsed());
            hits += r.hits.len();
        }
        times.sort();
        println!(
            "  {label:<36} p50 {:>9}  p95 {:>9}  p99 {:>9}  ({:.1} hits a query)",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.95)),
            ms(percentile(&times, 0.99)),
            hits as f64 / args.queries as f64
        );
        all.extend(times);
    }
    all.sort();
    println!(
        "  {:<36} p50 {:>9}  p95 {:>9}  p99 {:>9}",
        "all of the above",
        ms(percentile(&all, 0.5)),
        ms(percentile(&all, 0.95)),
        ms(percentile(&all, 0.99))
    );
    let (label, make) = stopword;
    let mut times = Vec::with_capacity(args.queries);
    for _ in 0..args.queries {
        let q = make(&words, &mut qrng);
        let t = Instant::now();
        search.search(request(q)).await?;
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "  {label:<36} p50 {:>9}  p95 {:>9}  p99 {:>9}  (outside the mix)",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.95)),
        ms(percentile(&times, 0.99))
    );
    Ok(())
}
