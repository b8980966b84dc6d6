//! Encodes the same text with choir's tokenizer, `tiktoken-rs` and `bpe-openai`; checks that the tokens are
//! identical and prints MB/s on one thread and on all cores, then BPE training speed at a 32k vocabulary.
//!
//! `cargo run --release -p tokenizer --example compare -- [FILE] [--encoding cl100k_base|o200k_base] [--runs N]`
//!
//! Without FILE it uses about 8 MB of real text gathered from this machine (see `tests/support/corpus.rs`).
#![allow(clippy::print_stdout, reason = "a benchmark prints its figures")]
#![allow(clippy::disallowed_methods, reason = "a benchmark reads the wall clock")]

#[path = "../tests/support/corpus.rs"]
mod corpus;

use std::time::Instant;

use tokenizer::{Encoding, Pattern, TrainConfig};

type EncodeFn<'a> = Box<dyn Fn(&str) -> Vec<u32> + Sync + 'a>;

fn mb(bytes: usize) -> f64 {
    bytes as f64 / 1e6
}

/// Best wall time of `runs` calls, and the last result.
fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::INFINITY;
    let mut out = None;
    for _ in 0..runs {
        let t = Instant::now();
        let r = f();
        best = best.min(t.elapsed().as_secs_f64());
        out = Some(r);
    }
    (best, out.expect("runs >= 1"))
}

/// Encodes `chunks` on `threads` threads (chunk i on thread i % threads); returns tokens in chunk order.
fn encode_parallel(encode: &EncodeFn<'_>, chunks: &[&str], threads: usize) -> Vec<Vec<u32>> {
    let mut results: Vec<Vec<u32>> = vec![Vec::new(); chunks.len()];
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    (t..chunks.len()).step_by(threads).map(|i| (i, encode(chunks[i]))).collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            for (i, ids) in h.join().expect("encoder thread panicked") {
                results[i] = ids;
            }
        }
    });
    results
}

/// Cuts the text into chunks of about `size` bytes at line ends (as a batch of documents would be).
fn chunks(text: &str, size: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = size.min(rest.len());
        while !rest.is_char_boundary(end) {
            end += 1;
        }
        let end = rest[end..].find('\n').map_or(rest.len(), |p| end + p + 1);
        out.push(&rest[..end]);
        rest = &rest[end..];
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let encoding =
        Encoding::from_name(&flag("--encoding").unwrap_or_else(|| "cl100k_base".into())).expect("encoding");
    let runs: usize = flag("--runs").and_then(|s| s.parse().ok()).unwrap_or(3);
    let file = args
        .iter()
        .enumerate()
        .find(|(i, a)| !a.starts_with("--") && (*i == 0 || !args[i - 1].starts_with("--")));
    let text = match file {
        Some((_, path)) => std::fs::read_to_string(path).expect("reading FILE as UTF-8"),
        None => corpus::machine_corpus(8_000_000).into_iter().map(|s| s.text).collect(),
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "text: {:.2} MB, encoding {}, {} cores, best of {runs} runs",
        mb(text.len()),
        encoding.name(),
        threads
    );

    let t = Instant::now();
    let ours = encoding.load().expect("embedded encoding");
    println!(
        "choir load: {:.0} ms ({} merge rules)",
        t.elapsed().as_secs_f64() * 1e3,
        ours.merge_rule_count()
    );
    let tiktoken = match encoding {
        Encoding::O200kBase => tiktoken_rs::o200k_base(),
        Encoding::R50kBase => tiktoken_rs::r50k_base(),
        Encoding::Cl100kBase => tiktoken_rs::cl100k_base(),
    }
    .expect("tiktoken-rs encoding");
    let bpe = match encoding {
        Encoding::O200kBase => Some(bpe_openai::o200k_base()),
        Encoding::Cl100kBase => Some(bpe_openai::cl100k_base()),
        Encoding::R50kBase => None,
    };
    let mut encoders: Vec<(&str, EncodeFn<'_>)> = vec![
        ("choir", Box::new(|s: &str| ours.encode(s))),
        ("tiktoken-rs", Box::new(|s: &str| tiktoken.encode_ordinary(s))),
    ];
    if let Some(bpe) = bpe {
        encoders.push(("bpe-openai", Box::new(move |s: &str| bpe.encode(s))));
    }

    let pieces = chunks(&text, 64 * 1024);
    let mut single = Vec::new();
    let mut multi = Vec::new();
    let mut reference: Option<(Vec<u32>, Vec<Vec<u32>>)> = None;
    println!(
        "\n{:<12} {:>10} {:>14} {:>16}",
        "encoder",
        "tokens",
        "1 thread MB/s",
        format!("{threads} threads MB/s")
    );
    for (name, encode) in &encoders {
        let (s1, ids) = best_of(runs, || encode(&text));
        let (sn, batch) = best_of(runs, || encode_parallel(encode, &pieces, threads));
        let same = match &reference {
            None => {
                reference = Some((ids.clone(), batch));
                "reference".to_owned()
            }
            Some((ref_ids, ref_batch)) => {
                let whole = if ids == *ref_ids { "identical" } else { "DIFFERENT" };
                let chunked = if batch == *ref_batch { "identical" } else { "DIFFERENT" };
                format!("{whole} (whole text), {chunked} (chunks)")
            }
        };
        println!(
            "{name:<12} {:>10} {:>14.2} {:>16.2}   tokens vs choir: {same}",
            ids.len(),
            mb(text.len()) / s1,
            mb(text.len()) / sn
        );
        single.push((*name, mb(text.len()) / s1));
        multi.push((*name, mb(text.len()) / sn));
    }
    for (label, rates) in [("1 thread", &single), ("all cores", &multi)] {
        let ours_rate = rates[0].1;
        for (name, rate) in &rates[1..] {
            println!("choir / {name} ({label}): {:.2}x", ours_rate / rate);
        }
    }

    let cut = text.len();
    let config = TrainConfig {
        vocab_size: 32_000,
        pattern: Pattern::Cl100k,
        special_tokens: vec!["<|endoftext|>".into()],
        min_pair_count: 2,
    };
    let t = Instant::now();
    let (trained, report) = tokenizer::train(&text.as_bytes()[..cut], &config).expect("training");
    let secs = t.elapsed().as_secs_f64();
    println!(
        "\ntraining (cl100k pattern, target 32,000): {:.2} MB in {:.2} s = {:.2} MB/s; {} unique pieces, {} merges, vocabulary {}{}",
        mb(cut),
        secs,
        mb(cut) / secs,
        report.unique_pieces,
        report.merges,
        trained.vocab_size(),
        if report.stopped_early { " (stopped early: no pair occurs twice)" } else { "" }
    );
}
