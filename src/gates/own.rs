//! The daemon's own secret values (GITHUB_TOKEN, the API keys, DATABASE_URL) in every form a
//! hostile change could use to smuggle them out: raw, reversed, hex (either case) and base64
//! (standard and URL-safe alphabets, at each of the three byte alignments a value can take
//! inside a longer encoded stream). A change carrying one is refused by the gates; an output
//! carrying one is withheld by the verifier.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use secrecy::{ExposeSecret, SecretString};

/// Shortest secret, in bytes, whose derived forms are searched for: below this an encoded
/// form is too short to tell from ordinary text.
const MIN_SECRET_BYTES: usize = 8;

/// The searchable forms of the daemon's secrets. `Debug` prints only how many there are.
#[derive(Clone, Default)]
pub struct OwnSecrets {
    /// (kind of form, the form), sorted.
    forms: Vec<(&'static str, SecretString)>,
}

impl std::fmt::Debug for OwnSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OwnSecrets({} forms)", self.forms.len())
    }
}

impl PartialEq for OwnSecrets {
    /// Equal when both hold the same forms (compared in memory, never printed).
    fn eq(&self, other: &OwnSecrets) -> bool {
        self.forms.len() == other.forms.len()
            && self
                .forms
                .iter()
                .zip(&other.forms)
                .all(|(a, b)| a.0 == b.0 && a.1.expose_secret() == b.1.expose_secret())
    }
}

impl OwnSecrets {
    /// The forms of `secrets`; empty values are skipped, and values shorter than 8 bytes are
    /// searched for only raw.
    ///
    /// Base64: a value at byte offset `o` of an encoded stream is encoded, from its
    /// `(3 - o % 3) % 3`-th byte on, into whole 4-character groups; so for each start `i` in
    /// 0..3 the encoding of `value[i..]` cut to a multiple of 3 bytes appears in any encoding
    /// of a stream holding the value at an offset with `(o + i) % 3 == 0`.
    pub fn new(secrets: &[SecretString]) -> OwnSecrets {
        let mut forms: Vec<(&'static str, String)> = Vec::new();
        for secret in secrets {
            let value = secret.expose_secret();
            if value.is_empty() {
                continue;
            }
            forms.push(("raw", value.to_owned()));
            let bytes = value.as_bytes();
            if bytes.len() < MIN_SECRET_BYTES {
                continue;
            }
            forms.push(("reversed", value.chars().rev().collect()));
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            forms.push(("hex", hex.to_ascii_uppercase()));
            forms.push(("hex", hex));
            for start in 0..3 {
                let rest = &bytes[start..];
                let whole = &rest[..rest.len() - rest.len() % 3];
                if whole.len() >= 6 {
                    forms.push(("base64", STANDARD_NO_PAD.encode(whole)));
                    forms.push(("base64", URL_SAFE_NO_PAD.encode(whole)));
                }
            }
        }
        forms.sort();
        forms.dedup();
        OwnSecrets {
            forms: forms
                .into_iter()
                .map(|(kind, form)| (kind, SecretString::from(form)))
                .collect(),
        }
    }

    /// The kind of form ("raw", "reversed", "hex", "base64") of the first secret found in
    /// `text`; `None` when it carries none.
    pub fn find(&self, text: &str) -> Option<&'static str> {
        self.forms
            .iter()
            .find(|(_, form)| text.contains(form.expose_secret()))
            .map(|(kind, _)| *kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "ghs_0123456789abcdefghijKLMNOPqrstuvWXYZ";

    fn own() -> OwnSecrets {
        OwnSecrets::new(&[SecretString::from(TOKEN), SecretString::from("")])
    }

    #[test]
    fn every_form_at_every_alignment_is_found() {
        let own = own();
        assert_eq!(own.find(&format!("x {TOKEN} y")), Some("raw"));
        let reversed: String = TOKEN.chars().rev().collect();
        assert_eq!(own.find(&reversed), Some("reversed"));
        let hex: String = TOKEN.bytes().map(|b| format!("{b:02X}")).collect();
        assert_eq!(own.find(&hex), Some("hex"));
        assert_eq!(own.find(&hex.to_lowercase()), Some("hex"));
        for prefix in ["", "a", "ab", "abc"] {
            let stream = format!("{prefix}{TOKEN}\n");
            for engine in [
                base64::engine::general_purpose::STANDARD,
                base64::engine::general_purpose::URL_SAFE,
            ] {
                let encoded = engine.encode(&stream);
                assert_eq!(own.find(&encoded), Some("base64"), "{prefix:?} {encoded}");
            }
        }
    }

    #[test]
    fn other_text_and_debug_show_nothing() {
        let own = own();
        assert_eq!(own.find("ghs_ ordinary output, 0123456789"), None);
        assert_eq!(
            format!("{own:?}"),
            format!("OwnSecrets({} forms)", own.forms.len())
        );
        assert!(!format!("{own:?}").contains("ghs_"));
    }
}
