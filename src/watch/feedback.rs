//! Reading a PR's conversation for revisions: which notes are the daemon's own, which are new
//! since the cursor, which ask for a revision, and the [`Feedback`] a revision is given. Pure
//! functions; the watch does the I/O.
//!
//! A note asks for a revision when it is new, by a person (not a bot, not the daemon) with write
//! permission, and is a review requesting changes, an inline review comment, or a review or PR
//! comment that mentions the trigger (REVISION_TRIGGER, e.g. `/autonomous-dev`) or `@<login>`
//! of the daemon's account. The rule follows GitHub's Copilot coding agent (it acts on comments
//! of users with write access, never on its own).

use std::collections::HashMap;

use crate::github::Posted;
use crate::task::{Feedback, FeedbackCursor, Note, NoteKind, OWN_MARKER};

/// True when `posted` is the daemon's own: written by its account `login`, or carrying
/// [`OWN_MARKER`].
pub fn is_ours(posted: &Posted, login: &str) -> bool {
    posted.note.author.eq_ignore_ascii_case(login) || posted.note.body.contains(OWN_MARKER)
}

/// True when `note`'s kind and text ask for a revision (whoever wrote it): a review with
/// `CHANGES_REQUESTED`, any inline comment, or a text mentioning one of `mentions`
/// (case-insensitive).
pub fn asks_for_revision(note: &Note, mentions: &[String]) -> bool {
    let mentioned = || {
        let body = note.body.to_lowercase();
        mentions
            .iter()
            .any(|m| !m.is_empty() && body.contains(&m.to_lowercase()))
    };
    match &note.kind {
        NoteKind::Review { state } => state == "CHANGES_REQUESTED" || mentioned(),
        NoteKind::Inline { .. } => true,
        NoteKind::Comment => mentioned(),
    }
}

/// What a read of the conversation found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    /// The cursor moved past every note read.
    pub cursor: FeedbackCursor,
    /// Authors of the new notes asking for a revision (people, not the daemon), whose write
    /// permission decides.
    pub askers: Vec<String>,
}

/// Reads `posted` against `cursor` for the daemon's account `login` and its `mentions`.
pub fn read(
    posted: &[Posted],
    cursor: FeedbackCursor,
    login: &str,
    mentions: &[String],
) -> Reading {
    let mut next = cursor;
    let mut askers: Vec<String> = Vec::new();
    for p in posted {
        next.advance(&p.note);
        let asks = !p.bot
            && !is_ours(p, login)
            && cursor.is_new(&p.note)
            && asks_for_revision(&p.note, mentions);
        if asks && !askers.contains(&p.note.author) {
            askers.push(p.note.author.clone());
        }
    }
    Reading {
        cursor: next,
        askers,
    }
}

/// The conversation a revision is given: the daemon's notes and those of people with write
/// permission (`writers`: login → may write; a login missing counts as no), marked new
/// against `cursor`; the rest (bots, people without write permission) only counted.
pub fn feedback(
    posted: &[Posted],
    cursor: FeedbackCursor,
    login: &str,
    writers: &HashMap<String, bool>,
) -> Feedback {
    let mut feedback = Feedback::default();
    for p in posted {
        let ours = is_ours(p, login);
        let writer = !p.bot && writers.get(&p.note.author).copied().unwrap_or(false);
        if ours || writer {
            feedback.notes.push(Note {
                new: !ours && cursor.is_new(&p.note),
                ours,
                ..p.note.clone()
            });
        } else {
            feedback.omitted += 1;
        }
    }
    feedback
}

#[cfg(test)]
mod tests {
    use super::*;

    fn posted(id: u64, author: &str, kind: NoteKind, body: &str) -> Posted {
        Posted {
            note: Note {
                id,
                author: author.into(),
                kind,
                body: body.into(),
                at: None,
                new: false,
                ours: false,
            },
            bot: author.ends_with("[bot]"),
        }
    }

    fn inline(id: u64, author: &str) -> Posted {
        let kind = NoteKind::Inline {
            path: "src/lib.rs".into(),
            line: Some(3),
            diff_hunk: "@@ -1 +1 @@".into(),
            in_reply_to: None,
        };
        posted(id, author, kind, "rename this")
    }

    fn mentions() -> Vec<String> {
        vec!["/autonomous-dev".into(), "@ad-bot".into()]
    }

    #[test]
    fn what_asks_for_a_revision() {
        let review = |state: &str, body| {
            let kind = NoteKind::Review {
                state: state.into(),
            };
            posted(1, "rev", kind, body).note
        };
        assert!(asks_for_revision(
            &review("CHANGES_REQUESTED", ""),
            &mentions()
        ));
        assert!(!asks_for_revision(&review("APPROVED", "nice"), &mentions()));
        assert!(asks_for_revision(
            &review("COMMENTED", "@AD-bot please"),
            &mentions()
        ));
        assert!(asks_for_revision(&inline(2, "rev").note, &mentions()));
        let comment = |body| posted(3, "rev", NoteKind::Comment, body).note;
        assert!(asks_for_revision(
            &comment("/autonomous-dev fix the typo"),
            &mentions()
        ));
        assert!(!asks_for_revision(&comment("looks fine"), &mentions()));
        assert!(!asks_for_revision(&comment("anything"), &[String::new()]));
    }

    #[test]
    fn only_new_notes_by_people_ask_and_the_cursor_passes_everything() {
        let own = posted(
            5,
            "someone",
            NoteKind::Comment,
            &format!("done /autonomous-dev {OWN_MARKER}"),
        );
        let notes = [
            inline(10, "old"),
            inline(11, "rev"),
            inline(12, "dependabot[bot]"),
            inline(13, "ad-bot"),
            own,
            posted(6, "rev", NoteKind::Comment, "/autonomous-dev again"),
        ];
        let cursor = FeedbackCursor {
            inline: 10,
            ..FeedbackCursor::default()
        };
        let reading = read(&notes, cursor, "ad-bot", &mentions());
        assert_eq!(reading.askers, ["rev"]);
        assert_eq!(
            reading.cursor,
            FeedbackCursor {
                reviews: 0,
                inline: 13,
                comments: 6
            }
        );
        let again = read(&notes, reading.cursor, "ad-bot", &mentions());
        assert!(again.askers.is_empty(), "nothing is new twice");
    }

    #[test]
    fn the_feedback_shows_writers_and_the_daemon_and_counts_the_rest() {
        let notes = [
            inline(10, "old"),
            inline(11, "rev"),
            inline(12, "stranger"),
            inline(13, "dependabot[bot]"),
            posted(1, "ad-bot", NoteKind::Comment, "summary"),
        ];
        let writers = HashMap::from([
            ("old".to_owned(), true),
            ("rev".to_owned(), true),
            ("stranger".to_owned(), false),
            ("dependabot[bot]".to_owned(), true),
        ]);
        let cursor = FeedbackCursor {
            inline: 10,
            ..FeedbackCursor::default()
        };
        let feedback = feedback(&notes, cursor, "ad-bot", &writers);
        let shown: Vec<(u64, bool, bool)> = feedback
            .notes
            .iter()
            .map(|n| (n.id, n.new, n.ours))
            .collect();
        assert_eq!(
            shown,
            [(10, false, false), (11, true, false), (1, false, true)]
        );
        assert_eq!(feedback.omitted, 2);
    }
}
