//! `choir tokenize`: train a byte-level BPE tokenizer, encode text with it (or with OpenAI's encodings), and
//! decode ids back to text.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;
use tokenizer::{EncodeStats, Encoding, FILE_MAGIC, Pattern, TokenId, Tokenizer, TrainConfig};

use crate::exit::bad_input;
use crate::output::{print_json, write_atomic};

/// Subcommands of `choir tokenize`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Learn a BPE vocabulary from a text file and save it.
    Train(TrainArgs),
    /// Encode text (stdin, --input or --text): the tokens with their ids, counts and compression.
    Encode(EncodeArgs),
    /// Decode token ids (arguments, or stdin as numbers or JSON) back to text.
    Decode(DecodeArgs),
}

/// Which tokenizer to use.
#[derive(Debug, clap::Args)]
struct Which {
    /// A built-in encoding: cl100k_base, o200k_base or r50k_base (GPT-2). The default unless --tokenizer.
    #[arg(long, conflicts_with = "tokenizer")]
    encoding: Option<String>,
    /// A tokenizer file from `choir tokenize train`, or a plain tiktoken rank file (then see --pattern).
    #[arg(long, value_name = "FILE")]
    tokenizer: Option<PathBuf>,
    /// Split pattern for a plain tiktoken rank file given with --tokenizer: gpt2, cl100k or o200k.
    #[arg(long, default_value = "cl100k", requires = "tokenizer")]
    pattern: String,
}

/// Flags of `choir tokenize train`.
#[derive(Debug, clap::Args)]
pub(crate) struct TrainArgs {
    /// Training text.
    #[arg(long, value_name = "FILE")]
    input: PathBuf,
    /// Vocabulary size, counting the 256 bytes and the special tokens (e.g. 32000 or 32K).
    #[arg(long)]
    vocab_size: String,
    /// Pre-tokenization pattern: gpt2, cl100k or o200k.
    #[arg(long, default_value = "cl100k")]
    pattern: String,
    /// A special token (repeatable); its occurrences in the text separate documents.
    #[arg(long = "special", value_name = "TOKEN")]
    special: Vec<String>,
    /// Stop when the most frequent pair occurs fewer times than this.
    #[arg(long, default_value_t = 2)]
    min_count: u64,
    /// Where to write the tokenizer.
    #[arg(long, value_name = "FILE")]
    output: PathBuf,
    /// Print JSON instead of a summary.
    #[arg(long)]
    json: bool,
}

/// Flags of `choir tokenize encode`.
#[derive(Debug, clap::Args)]
pub(crate) struct EncodeArgs {
    #[command(flatten)]
    which: Which,
    /// Read the text from this file instead of stdin.
    #[arg(long, value_name = "FILE", conflicts_with = "text")]
    input: Option<PathBuf>,
    /// Encode this text instead of stdin.
    #[arg(long)]
    text: Option<String>,
    /// Turn special-token strings (like <|endoftext|>) into their tokens instead of encoding them as text.
    #[arg(long)]
    allow_special: bool,
    /// Show at most this many tokens in the human view (0: all).
    #[arg(long, default_value_t = 64)]
    limit: usize,
    /// Include each token's text in the JSON output.
    #[arg(long)]
    pieces: bool,
    /// Print JSON: tokens, count, characters, bytes, bytes_per_token.
    #[arg(long)]
    json: bool,
}

/// Flags of `choir tokenize decode`.
#[derive(Debug, clap::Args)]
pub(crate) struct DecodeArgs {
    #[command(flatten)]
    which: Which,
    /// Token ids; without them, stdin is read: numbers separated by spaces or commas, a JSON array, or the
    /// JSON that `encode --json` prints.
    ids: Vec<String>,
    /// Print JSON (the text, lossily as UTF-8, and counts) instead of the raw bytes.
    #[arg(long)]
    json: bool,
}

/// Runs `choir tokenize`.
pub(crate) fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Train(args) => train(args),
        Command::Encode(args) => encode(args),
        Command::Decode(args) => decode(args),
    }
}

/// Reads a whole file as bytes, naming it in the error.
fn read_bytes(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path)
        .with_context(|| format!("reading {}", path.display()))
        .map_err(|e| bad_input(format!("{e:#}")))
}

fn read_stdin() -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::io::stdin().read_to_end(&mut bytes).context("reading stdin")?;
    Ok(bytes)
}

/// Loads the tokenizer named by the flags; returns it with a name to show.
fn load(which: &Which) -> anyhow::Result<(Tokenizer, String)> {
    if let Some(path) = &which.tokenizer {
        let bytes = read_bytes(path)?;
        let text =
            String::from_utf8(bytes).map_err(|_| bad_input(format!("{}: not UTF-8 text", path.display())))?;
        let tokenizer = if text.starts_with(FILE_MAGIC) {
            Tokenizer::load(&text)
        } else {
            let pattern: Pattern = which.pattern.parse().map_err(|e| bad_input(format!("--pattern: {e}")))?;
            Tokenizer::from_tiktoken(&text, pattern, Vec::new())
        }
        .map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
        return Ok((tokenizer, path.display().to_string()));
    }
    let name = which.encoding.as_deref().unwrap_or("cl100k_base");
    let encoding = Encoding::from_name(name).map_err(|e| bad_input(format!("--encoding: {e}")))?;
    Ok((encoding.load()?, encoding.name().to_owned()))
}

#[derive(Debug, Serialize)]
struct TrainJson {
    output: String,
    pattern: String,
    vocab_size: usize,
    ordinary_tokens: usize,
    special_tokens: Vec<SpecialJson>,
    merges: usize,
    input_bytes: usize,
    pieces: u64,
    unique_pieces: usize,
    stopped_early: bool,
    last_pair_count: u64,
    seconds: f64,
    mb_per_s: f64,
}

#[derive(Debug, Serialize)]
struct SpecialJson {
    token: String,
    id: TokenId,
}

fn train(args: TrainArgs) -> anyhow::Result<()> {
    let vocab = units::parse_count(&args.vocab_size).map_err(|e| bad_input(format!("--vocab-size: {e}")))?;
    if !(vocab.is_finite() && vocab >= 1.0 && vocab.fract() == 0.0 && vocab <= 4.0e9) {
        return Err(bad_input(format!(
            "--vocab-size {}: expected a whole number of tokens",
            args.vocab_size
        )));
    }
    let pattern: Pattern = args.pattern.parse().map_err(|e| bad_input(format!("--pattern: {e}")))?;
    if args.min_count == 0 {
        return Err(bad_input("--min-count 0: expected at least 1"));
    }
    let text = read_bytes(&args.input)?;
    let config = TrainConfig {
        vocab_size: vocab as usize,
        pattern,
        special_tokens: args.special.clone(),
        min_pair_count: args.min_count,
    };
    let start = Instant::now();
    let (tokenizer, report) = tokenizer::train(&text, &config).map_err(bad_input)?;
    let seconds = start.elapsed().as_secs_f64();
    write_atomic(&args.output, tokenizer.save().as_bytes())?;
    let mb_per_s = if seconds > 0.0 { text.len() as f64 / 1e6 / seconds } else { 0.0 };
    let specials: Vec<SpecialJson> =
        tokenizer.special_tokens().iter().map(|(t, id)| SpecialJson { token: t.clone(), id: *id }).collect();
    if args.json {
        return print_json(&TrainJson {
            output: args.output.display().to_string(),
            pattern: pattern.name().to_owned(),
            vocab_size: tokenizer.vocab_size(),
            ordinary_tokens: report.ordinary_tokens,
            special_tokens: specials,
            merges: report.merges,
            input_bytes: report.input_bytes,
            pieces: report.pieces,
            unique_pieces: report.unique_pieces,
            stopped_early: report.stopped_early,
            last_pair_count: report.last_pair_count,
            seconds,
            mb_per_s,
        });
    }
    println!(
        "trained a {}-token vocabulary on {} ({}) in {} ({:.2} MB/s)",
        tokenizer.vocab_size(),
        args.input.display(),
        units::format_bytes(text.len() as f64),
        units::format_duration(seconds),
        mb_per_s
    );
    println!(
        "  pattern {} · {} pieces, {} distinct · {} merges, the last seen {} times",
        pattern.name(),
        report.pieces,
        report.unique_pieces,
        report.merges,
        report.last_pair_count
    );
    if report.stopped_early {
        println!(
            "  stopped before {} tokens: no pair occurs {} or more times (lower --min-count or give more text)",
            config.vocab_size, args.min_count
        );
    }
    for s in &specials {
        println!("  special {} = {}", s.token, s.id);
    }
    let learned: Vec<TokenId> = (256..report.ordinary_tokens as TokenId).collect();
    let show = |ids: &[TokenId]| -> String {
        ids.iter()
            .filter_map(|&id| tokenizer.token_bytes(id))
            .map(|b| format!("\"{}\"", tokenizer::display_token(b)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    if !learned.is_empty() {
        println!("  first tokens learned: {}", show(&learned[..learned.len().min(12)]));
        println!("  last tokens learned:  {}", show(&learned[learned.len().saturating_sub(8)..]));
    }
    println!("wrote {}", args.output.display());
    Ok(())
}

#[derive(Debug, Serialize)]
struct EncodeJson {
    encoding: String,
    tokens: Vec<TokenId>,
    count: usize,
    characters: usize,
    bytes: usize,
    bytes_per_token: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pieces: Option<Vec<PieceJson>>,
}

#[derive(Debug, Serialize)]
struct PieceJson {
    id: TokenId,
    text: String,
}

fn encode(args: EncodeArgs) -> anyhow::Result<()> {
    let (tokenizer, name) = load(&args.which)?;
    let input = match (&args.text, &args.input) {
        (Some(text), _) => text.clone().into_bytes(),
        (None, Some(path)) => read_bytes(path)?,
        (None, None) => read_stdin()?,
    };
    let ids = if args.allow_special {
        tokenizer.encode_bytes_with_special(&input)
    } else {
        tokenizer.encode_bytes(&input)
    };
    let stats = EncodeStats::new(&input, ids.len());
    if args.json {
        let pieces = args.pieces.then(|| {
            tokenizer::pieces(&tokenizer, &ids)
                .into_iter()
                .map(|p| PieceJson { id: p.id, text: p.text })
                .collect()
        });
        return print_json(&EncodeJson {
            encoding: name,
            count: ids.len(),
            tokens: ids,
            characters: stats.characters,
            bytes: stats.bytes,
            bytes_per_token: stats.bytes_per_token,
            pieces,
        });
    }
    let shown = if args.limit == 0 { ids.len() } else { ids.len().min(args.limit) };
    let pieces = tokenizer::pieces(&tokenizer, &ids[..shown]);
    let width = pieces.iter().map(|p| p.id.to_string().len()).max().unwrap_or(2).max(2);
    let mut out = String::new();
    out.push_str(&format!("{:>width$}  token\n", "id"));
    for p in &pieces {
        let text = if p.special { format!("{} (special)", p.text) } else { format!("\"{}\"", p.text) };
        out.push_str(&format!("{:>width$}  {text}\n", p.id));
    }
    if shown < ids.len() {
        out.push_str(&format!("… {} more tokens (--limit 0 shows all)\n", ids.len() - shown));
    }
    out.push_str(&format!(
        "{} tokens · {} characters · {} bytes · {:.2} bytes/token · {:.2} characters/token ({name})\n",
        stats.tokens, stats.characters, stats.bytes, stats.bytes_per_token, stats.characters_per_token
    ));
    print!("{out}");
    Ok(())
}

#[derive(Debug, Serialize)]
struct DecodeJson {
    encoding: String,
    text: String,
    valid_utf8: bool,
    count: usize,
    bytes: usize,
}

/// Token ids from arguments or stdin text: a JSON array, an object with `tokens`, or numbers separated by
/// white space or commas.
fn parse_ids(words: &[String]) -> anyhow::Result<Vec<TokenId>> {
    let text = if words.is_empty() {
        String::from_utf8(read_stdin()?).map_err(|_| bad_input("stdin: not UTF-8; expected token ids"))?
    } else {
        words.join(" ")
    };
    let trimmed = text.trim();
    if trimmed.starts_with('[') || trimmed.starts_with('{') {
        let value: serde_json::Value =
            serde_json::from_str(trimmed).map_err(|e| bad_input(format!("token ids as JSON: {e}")))?;
        let list = value.get("tokens").unwrap_or(&value);
        let items = list
            .as_array()
            .ok_or_else(|| bad_input("JSON: expected an array of ids or {\"tokens\": [...]}"))?;
        return items
            .iter()
            .map(|v| {
                v.as_u64().and_then(|n| TokenId::try_from(n).ok()).ok_or_else(|| {
                    bad_input(format!("token id {v}: expected an integer from 0 to {}", TokenId::MAX))
                })
            })
            .collect();
    }
    trimmed
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .map(|w| {
            w.parse::<TokenId>().map_err(|_| {
                bad_input(format!("token id {w:?}: expected an integer from 0 to {}", TokenId::MAX))
            })
        })
        .collect()
}

fn decode(args: DecodeArgs) -> anyhow::Result<()> {
    let (tokenizer, name) = load(&args.which)?;
    let ids = parse_ids(&args.ids)?;
    let bytes = tokenizer.decode(&ids).map_err(bad_input)?;
    if args.json {
        let valid_utf8 = std::str::from_utf8(&bytes).is_ok();
        return print_json(&DecodeJson {
            encoding: name,
            text: String::from_utf8_lossy(&bytes).into_owned(),
            valid_utf8,
            count: ids.len(),
            bytes: bytes.len(),
        });
    }
    // The exact bytes, so that `encode | decode` reproduces the input, invalid UTF-8 included.
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&bytes).context("writing to stdout")?;
    stdout.flush().context("writing to stdout")?;
    Ok(())
}
