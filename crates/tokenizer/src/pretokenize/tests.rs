//! The state machines against the reference regexes (run by `fancy-regex`, as tiktoken does).

use super::Pattern;

fn reference_split(pattern: Pattern, text: &str) -> Vec<String> {
    let re = fancy_regex::Regex::new(pattern.regex()).unwrap();
    re.find_iter(text).map(|m| m.unwrap().as_str().to_owned()).collect()
}

fn our_split(pattern: Pattern, text: &str) -> Vec<String> {
    pattern.split(text.as_bytes()).map(|p| String::from_utf8(p.to_vec()).unwrap()).collect()
}

/// Characters chosen to exercise every branch: each letter class, marks, numbers in several scripts, every
/// kind of white space the patterns distinguish, the contraction letters in both cases plus `ſ` and the Kelvin
/// sign, `'`, `/`, and punctuation.
const POOL: &[char] = &[
    'a',
    'b',
    'A',
    'B',
    's',
    'S',
    't',
    'T',
    'd',
    'D',
    'm',
    'M',
    'l',
    'L',
    'v',
    'V',
    'e',
    'E',
    'r',
    'R',
    'k',
    'ſ',
    '\u{212A}',
    '\'',
    '\'',
    '\'',
    ' ',
    ' ',
    ' ',
    '\n',
    '\r',
    '\t',
    '\u{a0}',
    '\u{3000}',
    '\u{85}',
    '\u{2028}',
    '1',
    '2',
    '٣',
    '½',
    'Ⅻ',
    '.',
    ',',
    '/',
    '/',
    '-',
    '"',
    '(',
    '😀',
    '👍',
    '\u{200d}',
    'é',
    'É',
    'ǅ',
    'ʰ',
    '中',
    'ー',
    'ا',
    '\u{301}',
    '\u{93f}',
    'न',
    '\u{94d}',
    'ß',
    'Ω',
    'ω',
    '\u{1F3FB}',
    '\u{FE0F}',
    '$',
    '_',
];

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn hand_picked_cases_match_the_reference() {
    let cases = [
        "hello world",
        "Hello, World! It's 2024 and we'LL see'S ſ",
        "today\n ",
        "today\n \n",
        "today\n  \n",
        " \u{85}0",
        "  leading spaces   and trailing   ",
        "tabs\t\tand\r\nCRLF\r\n\r\n  x",
        "HTTPServer getHTTPResponse ABCdef aBC",
        "I'M here, you'RE THERE'S",
        "path/to/file.rs\n//comment\n/",
        "12345 ١٢٣٤ ½Ⅻ",
        "नमस्ते दुनिया",
        "中文字符，日本語のテキスト。",
        "emoji 😀👍🏻 and ZWJ 👨\u{200d}👩\u{200d}👧",
        "\u{301}accent first ǅungla ʰmodifier",
        "x\u{3000}\u{3000}y",
        "",
        " ",
        "\n",
        "'",
        "'s",
        "a'sB'ſ",
    ];
    for pattern in Pattern::ALL {
        for text in cases {
            assert_eq!(our_split(pattern, text), reference_split(pattern, text), "{pattern} on {text:?}");
        }
    }
}

#[test]
fn random_strings_match_the_reference() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let regexes: Vec<(Pattern, fancy_regex::Regex)> =
        Pattern::ALL.iter().map(|&p| (p, fancy_regex::Regex::new(p.regex()).unwrap())).collect();
    for _ in 0..6000 {
        let len = (rng.next() % 24) as usize;
        let text: String = (0..len).map(|_| POOL[(rng.next() % POOL.len() as u64) as usize]).collect();
        for (pattern, re) in &regexes {
            let expected: Vec<&str> = re.find_iter(&text).map(|m| m.unwrap().as_str()).collect();
            let ours: Vec<&str> =
                pattern.split(text.as_bytes()).map(|p| std::str::from_utf8(p).unwrap()).collect();
            assert_eq!(ours, expected, "{pattern} on {text:?}");
        }
    }
}

#[test]
fn pieces_cover_invalid_utf8_exactly() {
    let mut rng = XorShift(42);
    for _ in 0..2000 {
        let len = (rng.next() % 40) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        for pattern in Pattern::ALL {
            let joined: Vec<u8> = pattern.split(&bytes).flatten().copied().collect();
            assert_eq!(joined, bytes);
            assert!(pattern.split(&bytes).all(|p| !p.is_empty()));
        }
    }
}

#[test]
fn names_parse_back() {
    for pattern in Pattern::ALL {
        assert_eq!(pattern.name().parse::<Pattern>().unwrap(), pattern);
    }
    let err = "bert".parse::<Pattern>().unwrap_err();
    assert!(err.to_string().contains("\"bert\""), "{err}");
}
