//! Ranking a map's files and definitions for a task: BM25 of the task's words against each
//! file's path, definition names, doc comments and text gives the personalisation of a
//! PageRank over the reference graph (an edge from a file to the files defining a name it
//! references); the two are blended with a prior from where the recent commits changed
//! ([`History`]). Deterministic: ties are broken by path.

use std::collections::{HashMap, HashSet};

use super::{History, RepoMap};

/// BM25's term-frequency saturation.
const K1: f64 = 1.2;
/// BM25's length normalisation.
const B: f64 = 0.75;
/// PageRank's damping factor.
const DAMPING: f64 = 0.85;
/// PageRank iterations at most (it stops earlier once converged).
const ITERATIONS: usize = 50;
/// Weight of the normalised BM25 score against the normalised PageRank in a file's score.
const LEXICAL_WEIGHT: f64 = 1.0;
/// How many times a path's words count against a definition's in a file's document.
const PATH_REPEAT: usize = 3;
/// Share of the personalisation spread evenly over the source files, so a file the task's
/// words miss still ranks by how central it is.
const UNIFORM_SHARE: f64 = 0.15;
/// Score added to a source file (one with a language) over a file known by path only, so
/// among files the task says nothing about, code comes first.
const SOURCE_PRIOR: f64 = 0.05;

/// Weight of the history prior ([`History::weight`], 0–1) in a file's score.
const HISTORY_WEIGHT: f64 = 0.5;

/// Words too common in tasks and code to say anything.
const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "for", "from", "has", "have",
    "if", "in", "into", "is", "it", "its", "not", "of", "on", "or", "so", "that", "the", "this",
    "to", "use", "used", "was", "we", "when", "which", "will", "with", "you", "add", "fix", "make",
    "new", "now", "should", "also", "more", "than", "then", "there", "these", "they", "but", "all",
    "any", "been", "only", "other", "some", "such", "instead", "py", "rs", "go", "js", "ts", "src",
    "self", "none", "true", "false", "return", "def", "fn", "func", "pub",
];

/// Files and definitions ranked for a task.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranking {
    /// Indexes into [`RepoMap::files`], best first; every file appears once.
    pub files: Vec<usize>,
    /// Score of each file (same indexing as [`RepoMap::files`]), 0 to about 2.5.
    pub scores: Vec<f64>,
    /// The task's words and identifiers (lowercase), for ranking definitions.
    pub query: HashSet<String>,
}

/// Splits `text` into lowercase words: identifiers whole (`send_file`, `urlfor`) and in their
/// parts (`send`, `file`; `URLFor` → `url`, `for`), at least 2 characters, no stopwords.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for ident in text.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
        let ident = ident.trim_matches('_');
        if ident.len() < 2 {
            continue;
        }
        let whole = ident.to_lowercase();
        let parts = split_identifier(ident);
        if parts.len() > 1 {
            push_word(&mut out, whole);
        }
        for part in parts {
            push_word(&mut out, part);
        }
    }
    out
}

fn push_word(out: &mut Vec<String>, word: String) {
    if word.len() >= 2
        && !STOPWORDS.contains(&word.as_str())
        && !word.bytes().all(|b| b.is_ascii_digit())
    {
        out.push(word);
    }
}

/// `snake_case`, `camelCase` and `HTTPServer` into lowercase parts.
fn split_identifier(ident: &str) -> Vec<String> {
    let mut parts = Vec::new();
    for piece in ident.split('_').filter(|p| !p.is_empty()) {
        let chars: Vec<char> = piece.chars().collect();
        let mut start = 0;
        for i in 1..chars.len() {
            let boundary = (chars[i].is_uppercase() && chars[i - 1].is_lowercase())
                || (chars[i].is_uppercase()
                    && chars[i - 1].is_uppercase()
                    && chars.get(i + 1).is_some_and(|c| c.is_lowercase()))
                || (chars[i].is_ascii_digit() != chars[i - 1].is_ascii_digit());
            if boundary {
                parts.push(chars[start..i].iter().collect::<String>().to_lowercase());
                start = i;
            }
        }
        parts.push(chars[start..].iter().collect::<String>().to_lowercase());
    }
    parts
}

/// The stemmed [`words`] of `text` with their counts, sorted by word.
pub fn terms(text: &str) -> Vec<(String, u32)> {
    let mut counts = std::collections::BTreeMap::<String, u32>::new();
    for word in words(text) {
        *counts.entry(stem(&word)).or_default() += 1;
    }
    counts.into_iter().collect()
}

/// Light stemming so `routes`/`route`, `handling`/`handled`/`handle` meet: `ies` → `y`, one
/// of `ing`/`ed`/`s` (not `ss`) off, then a final `e`.
fn stem(word: &str) -> String {
    let mut w = word.to_string();
    if let Some(base) = w.strip_suffix("ies").filter(|b| b.len() >= 3) {
        w = format!("{base}y");
    } else if let Some(base) = w
        .strip_suffix("ing")
        .or_else(|| w.strip_suffix("ed"))
        .filter(|b| b.len() >= 3)
    {
        w = base.to_string();
    } else if w.len() > 3 && w.ends_with('s') && !w.ends_with("ss") {
        w.pop();
    }
    if w.len() > 4 && w.ends_with('e') {
        w.pop();
    }
    w
}

/// Ranks `map`'s files for the task `text`, adding `HISTORY_WEIGHT` times each file's weight in
/// `history` (where the base's recent commits changed; [`History::none`] for no prior). A text
/// with no useful word ranks by PageRank alone (uniform personalisation).
pub fn rank(map: &RepoMap, text: &str, history: &History) -> Ranking {
    let n = map.files.len();
    let query_words = words(text);
    let query: HashSet<String> = query_words.iter().cloned().collect();
    let query_stems: HashSet<String> = query_words.iter().map(|w| stem(w)).collect();

    // BM25 over each file's document: path words (repeated), definition names, doc words,
    // and the file's text. Only the task's terms are counted; the length counts every word.
    let docs: Vec<(std::collections::BTreeMap<&str, f64>, f64)> = map
        .files
        .iter()
        .map(|file| {
            let mut tf: std::collections::BTreeMap<&str, f64> = std::collections::BTreeMap::new();
            let mut len = 0.0;
            let mut add = |word: &str, count: f64| {
                len += count;
                if let Some(term) = query_stems.get(word) {
                    *tf.entry(term.as_str()).or_default() += count;
                }
            };
            for word in words(&file.path) {
                add(&stem(&word), PATH_REPEAT as f64);
            }
            for def in &file.symbols.definitions {
                for word in words(&def.name).into_iter().chain(words(&def.doc)) {
                    add(&stem(&word), 1.0);
                }
            }
            for (term, count) in &file.symbols.terms {
                add(term, f64::from(*count));
            }
            (tf, len)
        })
        .collect();
    let mut df: HashMap<&str, usize> = HashMap::new();
    for (tf, _) in &docs {
        for term in tf.keys() {
            *df.entry(term).or_default() += 1;
        }
    }
    let avg_len = docs.iter().map(|(_, len)| len).sum::<f64>() / n.max(1) as f64;
    let lexical: Vec<f64> = docs
        .iter()
        .map(|(tf, len)| {
            // Ordered, so the sum (and so the ranking and the shared prompt prefix) is the same
            // in every process: float addition is not associative.
            tf.iter()
                .map(|(term, f)| {
                    let df = df[term] as f64;
                    let idf = ((n as f64 - df + 0.5) / (df + 0.5) + 1.0).ln();
                    idf * f * (K1 + 1.0) / (f + K1 * (1.0 - B + B * len / avg_len.max(1.0)))
                })
                .sum()
        })
        .collect();
    // A path or file name the task spells out counts on top.
    let lexical: Vec<f64> = lexical
        .iter()
        .zip(&map.files)
        .map(|(score, file)| {
            let name = file.path.rsplit('/').next().unwrap_or(&file.path);
            let stem_name = name.split('.').next().unwrap_or(name);
            let spelled = text.contains(&file.path)
                || (name.contains('.') && text.contains(name))
                || (stem_name.len() > 3 && query.contains(&stem_name.to_lowercase()));
            score + if spelled { 5.0 } else { 0.0 }
        })
        .collect();

    let pagerank = pagerank(map, &lexical, &query);
    let max_lex = lexical.iter().cloned().fold(0.0, f64::max);
    let max_pr = pagerank.iter().cloned().fold(0.0, f64::max);
    let scores: Vec<f64> = (0..n)
        .map(|i| {
            let lex = if max_lex > 0.0 {
                lexical[i] / max_lex
            } else {
                0.0
            };
            let pr = if max_pr > 0.0 {
                pagerank[i] / max_pr
            } else {
                0.0
            };
            let prior = if super::Lang::of(&map.files[i].path).is_some() {
                SOURCE_PRIOR
            } else {
                0.0
            };
            pr + LEXICAL_WEIGHT * lex + prior + HISTORY_WEIGHT * history.weight(&map.files[i].path)
        })
        .collect();
    let mut files: Vec<usize> = (0..n).collect();
    files.sort_by(|&a, &b| {
        scores[b]
            .total_cmp(&scores[a])
            .then_with(|| map.files[a].path.cmp(&map.files[b].path))
    });
    Ranking {
        files,
        scores,
        query,
    }
}

/// Personalised PageRank over the reference graph. Edge weights follow Aider's: a name the
/// task mentions counts 10×, a private (`_`) one or one defined in more than 5 files 0.1×,
/// and a file's count of a name enters as its square root.
fn pagerank(map: &RepoMap, personal: &[f64], query: &HashSet<String>) -> Vec<f64> {
    let n = map.files.len();
    if n == 0 {
        return Vec::new();
    }
    let mut definers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, file) in map.files.iter().enumerate() {
        for def in &file.symbols.definitions {
            let list = definers.entry(def.name.as_str()).or_default();
            if list.last() != Some(&i) {
                list.push(i);
            }
        }
    }
    let mut edges: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n];
    for (i, file) in map.files.iter().enumerate() {
        let mut out: HashMap<usize, f64> = HashMap::new();
        for (name, count) in &file.symbols.references {
            let Some(targets) = definers.get(name.as_str()) else {
                continue;
            };
            let mut weight = 1.0;
            if query.contains(&name.to_lowercase()) {
                weight *= 10.0;
            }
            if name.starts_with('_') {
                weight *= 0.1;
            }
            if targets.len() > 5 {
                weight *= 0.1;
            }
            if name.len() < 3 {
                weight *= 0.1;
            }
            let weight = weight * f64::from(*count).sqrt() / targets.len() as f64;
            for &t in targets {
                if t != i {
                    *out.entry(t).or_default() += weight;
                }
            }
        }
        let mut out: Vec<(usize, f64)> = out.into_iter().collect();
        out.sort_by_key(|(t, _)| *t);
        edges[i] = out;
    }
    let total: f64 = personal.iter().sum();
    let sources = map
        .files
        .iter()
        .filter(|f| super::Lang::of(&f.path).is_some())
        .count();
    let uniform: Vec<f64> = map
        .files
        .iter()
        .map(|f| match sources {
            0 => 1.0 / n as f64,
            _ if super::Lang::of(&f.path).is_some() => 1.0 / sources as f64,
            _ => 0.0,
        })
        .collect();
    let p: Vec<f64> = if total > 0.0 {
        personal
            .iter()
            .zip(&uniform)
            .map(|(x, u)| (1.0 - UNIFORM_SHARE) * x / total + UNIFORM_SHARE * u)
            .collect()
    } else {
        uniform
    };
    let out_weight: Vec<f64> = edges
        .iter()
        .map(|e| e.iter().map(|(_, w)| w).sum())
        .collect();
    let mut rank = p.clone();
    for _ in 0..ITERATIONS {
        let mut next: Vec<f64> = p.iter().map(|x| (1.0 - DAMPING) * x).collect();
        let mut dangling = 0.0;
        for i in 0..n {
            if out_weight[i] > 0.0 {
                for &(t, w) in &edges[i] {
                    next[t] += DAMPING * rank[i] * w / out_weight[i];
                }
            } else {
                dangling += rank[i];
            }
        }
        for (x, pi) in next.iter_mut().zip(&p) {
            *x += DAMPING * dangling * pi;
        }
        let change: f64 = next.iter().zip(&rank).map(|(a, b)| (a - b).abs()).sum();
        rank = next;
        if change < 1e-10 {
            break;
        }
    }
    rank
}

/// Score of a definition for the task: its name's and doc's words the task mentions (whole
/// name 3, a part 1, a doc word 0.2), so a file shows first what the task is about.
pub fn definition_score(def: &super::Definition, query: &HashSet<String>) -> f64 {
    let mut score = 0.0;
    if query.contains(&def.name.to_lowercase()) {
        score += 3.0;
    }
    for part in split_identifier(&def.name) {
        if query.contains(&part) {
            score += 1.0;
        }
    }
    for word in words(&def.doc) {
        if query.contains(&word) {
            score += 0.2;
        }
    }
    score
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_identifiers_and_drop_noise() {
        assert_eq!(
            words("Fix send_file for HTTPServer in the URLFor path 42"),
            [
                "send_file",
                "send",
                "file",
                "httpserver",
                "http",
                "server",
                "urlfor",
                "url",
                "path"
            ]
        );
        for (a, b) in [
            ("routes", "route"),
            ("handling", "handle"),
            ("handled", "handle"),
            ("classes", "class"),
            ("queries", "query"),
        ] {
            assert_eq!(stem(a), stem(b), "{a} {b}");
        }
        assert_eq!(stem("is"), "is");
        assert_ne!(stem("route"), stem("router"));
    }
}
