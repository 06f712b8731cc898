//! What LLM calls cost: a price table per model (USD per million tokens of each kind), the price
//! of a call's reported usage, and the worst case of a call not yet made. The pipeline's cost
//! guard (`pipeline/budget.rs`) checks MAX_TASK_COST_USD and DAILY_BUDGET_USD with these.

use std::collections::BTreeMap;

use chrono::{DateTime, Days, Utc};

use crate::task::Usage;

/// Tokens one call may be billed beyond the bytes it sends: the system prompt Anthropic adds to
/// enable tool use (313–346 tokens per its pricing page) with room to spare.
const TOOL_USE_OVERHEAD_TOKENS: u64 = 1024;

/// Prices of one model in USD per million tokens, from Anthropic's pricing page ("Model
/// pricing": base input, 5-minute cache writes, cache hits and refreshes, output).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prices {
    pub input: f64,
    pub output: f64,
    /// Writing the prompt cache (5-minute lifetime, the only one the daemon asks for).
    pub cache_write: f64,
    /// Reading the prompt cache.
    pub cache_read: f64,
}

impl Prices {
    /// USD of a call that reported `usage` (each kind of token at its own price).
    pub fn cost(&self, usage: &Usage) -> f64 {
        (f64::from(usage.input_tokens) * self.input
            + f64::from(usage.output_tokens) * self.output
            + f64::from(usage.cache_creation_input_tokens) * self.cache_write
            + f64::from(usage.cache_read_input_tokens) * self.cache_read)
            / 1e6
    }

    /// The most a call can cost with at most `input_tokens` of prompt (each priced as the
    /// dearer of plain input and cache write) and its whole output budget `max_tokens` spent.
    pub fn worst_case(&self, input_tokens: u64, max_tokens: u32) -> f64 {
        (input_tokens as f64 * self.input.max(self.cache_write)
            + f64::from(max_tokens) * self.output)
            / 1e6
    }
}

/// An upper bound of the input tokens of a request of `bytes` bytes: no token is shorter than one
/// byte, plus the tool-use system prompt the provider adds.
pub fn input_token_bound(bytes: usize) -> u64 {
    bytes as u64 + TOOL_USE_OVERHEAD_TOKENS
}

/// The first instant of the UTC day after `now` (when DAILY_BUDGET_USD renews).
pub fn next_utc_midnight(now: DateTime<Utc>) -> DateTime<Utc> {
    let tomorrow = now.date_naive() + Days::new(1);
    tomorrow.and_time(chrono::NaiveTime::MIN).and_utc()
}

/// Prices by model name. A name matches its own entry, or an entry it extends with an 8-digit
/// date (`claude-sonnet-4-5-20250929` takes `claude-sonnet-4-5`'s prices).
#[derive(Debug, Clone, PartialEq)]
pub struct PriceTable(BTreeMap<String, Prices>);

/// Anthropic's published prices (USD per million tokens: input, output, 5-minute cache write,
/// cache read), as listed on platform.claude.com/docs/en/about-claude/pricing. The long-context
/// premium of Sonnet 4/4.5 (over 200k input tokens) never applies: the daemon does not ask for
/// the 1M-token context window, so such requests are refused, not billed.
const ANTHROPIC: &[(&str, [f64; 4])] = &[
    ("claude-opus-4-8", [5.0, 25.0, 6.25, 0.50]),
    ("claude-opus-4-7", [5.0, 25.0, 6.25, 0.50]),
    ("claude-opus-4-6", [5.0, 25.0, 6.25, 0.50]),
    ("claude-opus-4-5", [5.0, 25.0, 6.25, 0.50]),
    ("claude-opus-4-1", [15.0, 75.0, 18.75, 1.50]),
    ("claude-opus-4-0", [15.0, 75.0, 18.75, 1.50]),
    ("claude-opus-4", [15.0, 75.0, 18.75, 1.50]),
    ("claude-sonnet-4-6", [3.0, 15.0, 3.75, 0.30]),
    ("claude-sonnet-4-5", [3.0, 15.0, 3.75, 0.30]),
    ("claude-sonnet-4-0", [3.0, 15.0, 3.75, 0.30]),
    ("claude-sonnet-4", [3.0, 15.0, 3.75, 0.30]),
    ("claude-3-7-sonnet", [3.0, 15.0, 3.75, 0.30]),
    ("claude-3-7-sonnet-latest", [3.0, 15.0, 3.75, 0.30]),
    ("claude-haiku-4-5", [1.0, 5.0, 1.25, 0.10]),
    ("claude-3-5-haiku", [0.80, 4.0, 1.0, 0.08]),
    ("claude-3-5-haiku-latest", [0.80, 4.0, 1.0, 0.08]),
    ("claude-3-haiku", [0.25, 1.25, 0.30, 0.03]),
];

impl PriceTable {
    /// The built-in table: Anthropic's published prices for its current and recent models.
    pub fn anthropic() -> PriceTable {
        PriceTable(
            ANTHROPIC
                .iter()
                .map(|(model, [input, output, cache_write, cache_read])| {
                    (
                        (*model).to_owned(),
                        Prices {
                            input: *input,
                            output: *output,
                            cache_write: *cache_write,
                            cache_read: *cache_read,
                        },
                    )
                })
                .collect(),
        )
    }

    /// This table with the entries of `spec` (MODEL_PRICES) added or replacing built-in ones:
    /// `model=input/output/cache_write/cache_read[,…]`, USD per million tokens.
    ///
    /// Errors: a message naming the entry that is not of that form or has a negative or
    /// non-finite price.
    pub fn with_overrides(mut self, spec: &str) -> Result<PriceTable, String> {
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let invalid = |why: &str| {
                format!(
                    "'{entry}': {why} (expected model=input/output/cache_write/cache_read in \
                     USD per million tokens)"
                )
            };
            let (model, prices) = entry.split_once('=').ok_or_else(|| invalid("no '='"))?;
            let model = model.trim();
            if model.is_empty() {
                return Err(invalid("no model name"));
            }
            let numbers = prices
                .split('/')
                .map(|n| n.trim().parse::<f64>())
                .collect::<Result<Vec<f64>, _>>()
                .map_err(|_| invalid("a price is not a number"))?;
            let [input, output, cache_write, cache_read] = numbers[..] else {
                return Err(invalid("four prices are needed"));
            };
            if numbers.iter().any(|n| !n.is_finite() || *n < 0.0) {
                return Err(invalid("prices must be finite and not negative"));
            }
            self.0.insert(
                model.to_owned(),
                Prices {
                    input,
                    output,
                    cache_write,
                    cache_read,
                },
            );
        }
        Ok(self)
    }

    /// The prices of `model`: its own entry, else the entry it extends with `-YYYYMMDD`.
    pub fn get(&self, model: &str) -> Option<Prices> {
        if let Some(prices) = self.0.get(model) {
            return Some(*prices);
        }
        let (base, date) = model.rsplit_once('-')?;
        let dated = date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit());
        if dated {
            self.0.get(base).copied()
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u32, output: u32, write: u32, read: u32) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            cache_creation_input_tokens: write,
            cache_read_input_tokens: read,
        }
    }

    #[test]
    fn cost_prices_each_kind_of_token() {
        let sonnet = PriceTable::anthropic().get("claude-sonnet-4-5").unwrap();
        // 1M of each: 3 + 15 + 3.75 + 0.30.
        let all = usage(1_000_000, 1_000_000, 1_000_000, 1_000_000);
        assert!((sonnet.cost(&all) - 22.05).abs() < 1e-9);
        assert!((sonnet.cost(&usage(2000, 500, 0, 0)) - 0.0135).abs() < 1e-12);
        assert_eq!(sonnet.cost(&Usage::default()), 0.0);
    }

    #[test]
    fn worst_case_takes_the_dearer_input_price_and_the_whole_output_budget() {
        let opus = PriceTable::anthropic().get("claude-opus-4-5").unwrap();
        // 100k tokens at the cache-write price (6.25) + 4096 output tokens at 25.
        let expected = (100_000.0 * 6.25 + 4096.0 * 25.0) / 1e6;
        assert!((opus.worst_case(100_000, 4096) - expected).abs() < 1e-12);
        assert_eq!(input_token_bound(10), 10 + TOOL_USE_OVERHEAD_TOKENS);
    }

    #[test]
    fn dated_model_ids_take_their_alias_prices_and_nothing_else_matches_loosely() {
        let table = PriceTable::anthropic();
        assert_eq!(
            table.get("claude-sonnet-4-5-20250929"),
            table.get("claude-sonnet-4-5")
        );
        // claude-opus-4-5 is its own entry, not claude-opus-4 with a suffix.
        assert_eq!(table.get("claude-opus-4-5").unwrap().input, 5.0);
        assert_eq!(table.get("claude-opus-4-20250514").unwrap().input, 15.0);
        assert_eq!(table.get("claude-opus-4-9"), None);
        assert_eq!(table.get("claude-sonnet-4-5-latest"), None);
        assert_eq!(table.get("gpt-4o"), None);
    }

    #[test]
    fn overrides_add_and_replace_entries() {
        let table = PriceTable::anthropic()
            .with_overrides(" smollm2=0/0/0/0 , claude-sonnet-4-5=1/2/3/0.5")
            .unwrap();
        assert_eq!(table.get("smollm2").unwrap().output, 0.0);
        let sonnet = table.get("claude-sonnet-4-5").unwrap();
        assert_eq!(
            (
                sonnet.input,
                sonnet.output,
                sonnet.cache_write,
                sonnet.cache_read
            ),
            (1.0, 2.0, 3.0, 0.5)
        );
        assert_eq!(
            PriceTable::anthropic().with_overrides("").unwrap(),
            PriceTable::anthropic()
        );
    }

    #[test]
    fn bad_overrides_are_refused_with_the_entry_named() {
        for bad in [
            "m",
            "=1/2/3/4",
            "m=1/2/3",
            "m=1/2/3/x",
            "m=1/2/3/-1",
            "m=1/2/3/inf",
        ] {
            let error = PriceTable::anthropic().with_overrides(bad).unwrap_err();
            assert!(error.contains(bad), "{bad}: {error}");
        }
    }

    #[test]
    fn the_budget_renews_at_the_next_utc_midnight() {
        let now: DateTime<Utc> = "2026-12-31T23:59:30Z".parse().unwrap();
        let midnight: DateTime<Utc> = "2027-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(next_utc_midnight(now), midnight);
        assert_eq!(
            next_utc_midnight(midnight),
            "2027-01-02T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }
}
