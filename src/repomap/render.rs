//! The ranked map as text within a token budget: the best files with their most relevant
//! signatures, then further files by path, then — when files are left out — the directory
//! tree with the number of files each directory holds. Tokens are estimated (4 bytes a token).

use std::collections::BTreeMap;

use super::{RepoMap, rank::Ranking, rank::definition_score};

/// Bytes per token of the estimate (English and code average about 4 in current tokenizers).
const BYTES_PER_TOKEN: usize = 4;
/// Files shown with their signatures at most.
const DETAILED_FILES: usize = 30;
/// Signatures shown for the best file; later files show fewer (down to 2).
const MAX_SIGNATURES: usize = 12;
/// Share of the budget the detailed part may use, in percent.
const DETAILED_SHARE: usize = 50;
/// Share of the budget kept for the directory tree when files are left out, in percent.
const TREE_SHARE: usize = 15;

/// A rendered map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The map's text (repository data: delimit it before showing it to a model).
    pub text: String,
    /// Estimated tokens of `text` ([`estimate_tokens`]).
    pub tokens: usize,
    /// Paths shown, in rank order.
    pub shown: Vec<String>,
    /// Files in the tree.
    pub total_files: usize,
}

/// Estimated tokens of `text`: its bytes / 4, rounded up.
pub fn estimate_tokens(text: &str) -> usize {
    text.len().div_ceil(BYTES_PER_TOKEN)
}

/// Renders `map` ranked by `ranking` in at most `budget_tokens` (estimated). Every line is a
/// path, or an indented `line: signature` under its path, or (last) a `dir/ (N files)` line.
pub fn render(map: &RepoMap, ranking: &Ranking, budget_tokens: usize) -> Rendered {
    let budget = budget_tokens * BYTES_PER_TOKEN;
    let mut text = String::new();
    let mut shown = Vec::new();
    let detailed_budget = budget * DETAILED_SHARE / 100;
    let mut order = ranking.files.iter().copied().peekable();

    // Part 1: the best files with their signatures.
    let mut rank_index = 0;
    while let Some(&index) = order.peek() {
        if rank_index >= DETAILED_FILES || text.len() >= detailed_budget {
            break;
        }
        let file = &map.files[index];
        let mut block = format!("{}\n", file.path);
        if block.len() + text.len() > budget {
            break;
        }
        let limit = MAX_SIGNATURES.saturating_sub(rank_index / 3).max(2);
        let mut defs: Vec<&super::Definition> = file.symbols.definitions.iter().collect();
        defs.sort_by(|a, b| {
            definition_score(b, &ranking.query)
                .total_cmp(&definition_score(a, &ranking.query))
                .then(a.line.cmp(&b.line))
        });
        let mut chosen: Vec<&super::Definition> = defs.into_iter().take(limit).collect();
        chosen.sort_by_key(|d| d.line);
        for def in chosen {
            let line = format!("  {}: {}\n", def.line, def.signature);
            if text.len() + block.len() + line.len() > detailed_budget {
                break;
            }
            block.push_str(&line);
        }
        text.push_str(&block);
        shown.push(file.path.clone());
        order.next();
        rank_index += 1;
    }

    // Part 2: more paths, in rank order, leaving room for the tree if not all fit.
    let remaining_paths: usize = order.clone().map(|i| map.files[i].path.len() + 1).sum();
    let fits_all = text.len() + remaining_paths <= budget;
    let paths_budget = if fits_all {
        budget
    } else {
        budget * (100 - TREE_SHARE) / 100
    };
    let mut first_path = true;
    while let Some(&index) = order.peek() {
        let path = &map.files[index].path;
        let header = if first_path {
            "More files, by relevance:\n"
        } else {
            ""
        };
        if text.len() + header.len() + path.len() + 1 > paths_budget {
            break;
        }
        text.push_str(header);
        first_path = false;
        text.push_str(path);
        text.push('\n');
        shown.push(path.clone());
        order.next();
    }

    // Part 3: the directory tree of what is left out.
    let left: Vec<&str> = order.map(|i| map.files[i].path.as_str()).collect();
    if !left.is_empty() {
        let mut dirs: BTreeMap<String, usize> = BTreeMap::new();
        for path in &left {
            let parts: Vec<&str> = path.split('/').collect();
            let depth = (parts.len() - 1).min(2);
            let dir = if depth == 0 {
                ".".to_string()
            } else {
                format!("{}/", parts[..depth].join("/"))
            };
            *dirs.entry(dir).or_default() += 1;
        }
        let header = format!("Not shown: {} files, by directory:\n", left.len());
        if text.len() + header.len() <= budget {
            text.push_str(&header);
            for (dir, count) in dirs {
                let line = format!("{dir} ({count} files)\n");
                if text.len() + line.len() > budget {
                    break;
                }
                text.push_str(&line);
            }
        }
    }
    while text.ends_with('\n') {
        text.pop();
    }
    Rendered {
        tokens: estimate_tokens(&text),
        text,
        shown,
        total_files: map.files.len(),
    }
}
