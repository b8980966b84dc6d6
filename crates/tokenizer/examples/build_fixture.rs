//! Assembles `data/fixture/corpus.txt`, the small varied corpus of the always-on equality test, from real text
//! on this machine (see `data/fixture/README.md` for the sources and their licences).
//!
//! `cargo run -p tokenizer --example build_fixture -- [OUT_DIR] [BYTES]`
#![allow(clippy::print_stdout, reason = "a tool that reports what it wrote")]

#[path = "../tests/support/corpus.rs"]
mod corpus;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let out_dir = args.get(1).map_or("crates/tokenizer/data/fixture", String::as_str);
    let cap: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(320_000);
    let sources = corpus::machine_corpus(cap);
    let mut text = String::new();
    let mut manifest = String::from("bytes\tsource\n");
    for s in &sources {
        text.push_str(&s.text);
        manifest.push_str(&format!("{}\t{}\n", s.text.len(), s.label));
        println!("{:>8} bytes  {}", s.text.len(), s.label);
    }
    std::fs::create_dir_all(out_dir)?;
    std::fs::write(format!("{out_dir}/corpus.txt"), &text)?;
    std::fs::write(format!("{out_dir}/sources.tsv"), &manifest)?;
    println!("{:>8} bytes  total, written to {out_dir}/corpus.txt", text.len());
    Ok(())
}
