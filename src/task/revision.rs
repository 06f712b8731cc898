//! A revision: after a task's PR is opened, a person's review feedback (or a failing check)
//! starts another Engineer → QA → Security → consensus round on the PR's branch, whose approved
//! change is one new commit on that branch. This module holds what a revision is (its trigger,
//! the conversation or checks it answers, how it ended) as stored in the `revisions` table
//! (migration 0011), and how the watch last saw a PR's checks. No I/O here.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Consensus;

/// Ends every comment and reply the daemon writes on a PR (an HTML comment, invisible on
/// GitHub): the PR watch never takes a note carrying it for a person's feedback, so the daemon
/// cannot answer itself, whatever account it posts with.
pub const OWN_MARKER: &str = "<!-- autonomous-dev -->";

/// What started a revision, as `revisions.trigger` stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "varchar", rename_all = "snake_case")]
pub enum RevisionTrigger {
    /// A review requesting changes, an inline review comment, or a PR comment mentioning the
    /// daemon, by a user with write permission.
    Review,
    /// A check run or commit status on the PR's head failed.
    Check,
    /// The base moved and the PR no longer merges (GitHub's `mergeable` false, or
    /// `mergeable_state` dirty): the base is merged into the branch.
    Conflict,
}

impl RevisionTrigger {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            RevisionTrigger::Review => "review",
            RevisionTrigger::Check => "check",
            RevisionTrigger::Conflict => "conflict",
        }
    }
}

/// Where a revision stands, as `revisions.status` stores it: `pending` until it ends `pushed`
/// (one new commit on the PR's branch), `not_approved` (consensus did not approve it; nothing
/// pushed) or `failed` (an error ended it; nothing pushed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "varchar", rename_all = "snake_case")]
pub enum RevisionStatus {
    Pending,
    Pushed,
    NotApproved,
    Failed,
}

impl RevisionStatus {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            RevisionStatus::Pending => "pending",
            RevisionStatus::Pushed => "pushed",
            RevisionStatus::NotApproved => "not_approved",
            RevisionStatus::Failed => "failed",
        }
    }
}

/// What kind of PR conversation entry a [`Note`] is, with what only that kind has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum NoteKind {
    /// A submitted review (`GET /pulls/{n}/reviews`): its state (`APPROVED`,
    /// `CHANGES_REQUESTED`, `COMMENTED`, …) and body.
    Review { state: String },
    /// An inline review comment (`GET /pulls/{n}/comments`): the file and line it is on, the
    /// diff hunk it quotes, and the thread's first comment when it is a reply.
    Inline {
        path: String,
        line: Option<u64>,
        diff_hunk: String,
        in_reply_to: Option<u64>,
    },
    /// A comment on the PR's conversation tab (`GET /issues/{n}/comments`).
    Comment,
}

/// One entry of a PR's conversation, as a revision shows it to the roles. Its text is data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// GitHub's id of the review or comment (ids of one kind grow with time).
    pub id: u64,
    /// Author's login.
    pub author: String,
    #[serde(flatten)]
    pub kind: NoteKind,
    /// Markdown as written (may be empty for a review without a body).
    pub body: String,
    /// When it was submitted or created.
    pub at: Option<DateTime<Utc>>,
    /// True when the revision answers it: it came after the previous revision's conversation.
    pub new: bool,
    /// True for the daemon's own replies and summaries (shown so the model knows what it
    /// answered already).
    pub ours: bool,
}

impl Note {
    /// The review comment thread this note belongs to: its first comment's id (inline notes
    /// only).
    pub fn thread(&self) -> Option<u64> {
        match &self.kind {
            NoteKind::Inline { in_reply_to, .. } => Some(in_reply_to.unwrap_or(self.id)),
            _ => None,
        }
    }
}

/// A check run or commit status that failed on the PR's head, as a revision shows it. Its
/// texts are data (written by the CI, from the change's own output).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedCheck {
    /// The check run's name, or the commit status' context.
    pub name: String,
    /// GitHub's conclusion (`failure`, `timed_out`) or status state (`failure`, `error`).
    pub conclusion: String,
    /// The check run's output title and summary, or the status' description.
    pub title: String,
    pub summary: String,
    /// The check run's output text (cut).
    pub text: String,
    /// Its annotations, one `path:line: message` each.
    pub annotations: Vec<String>,
    /// For a GitHub Actions job: the end of its log (cut), timestamps removed.
    pub log_tail: String,
}

/// The conversation a revision answers: every note by a user with write permission and every
/// note of the daemon's, oldest first, each kind in GitHub's order; the notes by others are
/// counted, not shown. A revision for failing checks has the failed checks instead.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feedback {
    pub notes: Vec<Note>,
    /// Notes left out: by bots, or by users without write permission.
    pub omitted: u32,
    /// The checks that failed on the PR's head (a check revision).
    #[serde(default)]
    pub checks: Vec<FailedCheck>,
    /// The files merging the base conflicts in (a conflict revision, found by its run).
    #[serde(default)]
    pub conflicts: Vec<String>,
}

impl Feedback {
    /// The notes the revision answers.
    pub fn new_notes(&self) -> impl Iterator<Item = &Note> {
        self.notes.iter().filter(|note| note.new)
    }

    /// What makes two check failures "the same": each failed check's name with its failing
    /// lines (annotations, and the log tail's last 20 non-blank lines, digits dropped so run
    /// times and ids do not count), in name order. Empty without failed checks.
    pub fn failure_key(&self) -> Vec<String> {
        let mut key: Vec<String> = self
            .checks
            .iter()
            .map(|check| {
                let log: Vec<&str> = check
                    .log_tail
                    .lines()
                    .map(str::trim)
                    .filter(|line| !line.is_empty())
                    .collect();
                let tail = &log[log.len().saturating_sub(20)..];
                let lines = check
                    .annotations
                    .iter()
                    .map(String::as_str)
                    .chain(tail.iter().copied());
                let lines: Vec<String> = lines
                    .map(|line| line.chars().filter(|c| !c.is_ascii_digit()).collect())
                    .collect();
                format!("{}\n{}", check.name, lines.join("\n"))
            })
            .collect();
        key.sort();
        key
    }
}

/// How the PR watch last saw the checks of a PR's head (`tasks.checks_seen`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecksSeen {
    /// The head commit they ran on.
    pub head: String,
    /// ETag of the last answer of "List check runs for a Git reference".
    pub runs_etag: Option<String>,
    /// ETag of the last answer of "Get the combined status for a specific reference".
    pub status_etag: Option<String>,
    /// True once their failure was acted on (a revision requested, or why not said): the same
    /// head is not acted on twice.
    pub acted: bool,
}

/// How far the PR watch has read a PR's conversation (`tasks.feedback_cursor`): the highest id
/// seen of each kind; a note with a higher id is new.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedbackCursor {
    pub reviews: u64,
    pub inline: u64,
    pub comments: u64,
}

impl FeedbackCursor {
    /// True when `note` came after this cursor.
    pub fn is_new(&self, note: &Note) -> bool {
        let seen = match note.kind {
            NoteKind::Review { .. } => self.reviews,
            NoteKind::Inline { .. } => self.inline,
            NoteKind::Comment => self.comments,
        };
        note.id > seen
    }

    /// The cursor moved past `note`.
    pub fn advance(&mut self, note: &Note) {
        let seen = match note.kind {
            NoteKind::Review { .. } => &mut self.reviews,
            NoteKind::Inline { .. } => &mut self.inline,
            NoteKind::Comment => &mut self.comments,
        };
        *seen = (*seen).max(note.id);
    }
}

/// How a revision ended (`revisions.outcome`, JSONB).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "end")]
pub enum RevisionEnd {
    /// Approved: one commit on the PR's branch, on `head`.
    Pushed {
        consensus: Consensus,
        /// The new commit (hex SHA-1).
        commit: String,
        /// True when a previous attempt had pushed it already (crash after the push).
        reused: bool,
        /// The verification the votes rest on, as one line.
        verification: String,
    },
    /// The base merged into the branch without a conflict: one merge commit, no role asked.
    Merged {
        /// The merge commit (hex SHA-1).
        commit: String,
        /// True when a previous attempt had pushed it already.
        reused: bool,
    },
    /// Consensus did not approve it (or held it): nothing pushed.
    NotApproved {
        consensus: Consensus,
        verification: String,
    },
    /// An error ended it: nothing pushed.
    Failed { reason: String },
}

/// A revision as stored (`revisions` row).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Revision {
    /// `revisions.id`.
    pub id: i32,
    /// `tasks.id` of its task.
    pub task: i32,
    /// 1 for the PR's first revision.
    pub number: i32,
    pub trigger: RevisionTrigger,
    pub status: RevisionStatus,
    /// The conversation it answers.
    #[sqlx(json)]
    pub feedback: Feedback,
    /// The PR branch's tip it is built on, recorded when its run first read the branch.
    pub head_commit: Option<String>,
    #[sqlx(json(nullable))]
    pub outcome: Option<RevisionEnd>,
    /// USD its LLM calls cost (set when it ends).
    pub cost_usd: Option<f64>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(id: u64, kind: NoteKind) -> Note {
        Note {
            id,
            author: "a".into(),
            kind,
            body: String::new(),
            at: None,
            new: false,
            ours: false,
        }
    }

    #[test]
    fn the_cursor_tracks_each_kind_of_note_apart() {
        let review = note(
            7,
            NoteKind::Review {
                state: "CHANGES_REQUESTED".into(),
            },
        );
        let comment = note(3, NoteKind::Comment);
        let mut cursor = FeedbackCursor::default();
        assert!(cursor.is_new(&review) && cursor.is_new(&comment));
        cursor.advance(&review);
        assert!(!cursor.is_new(&review));
        assert!(cursor.is_new(&comment), "ids of another kind are apart");
        cursor.advance(&note(2, NoteKind::Comment));
        assert!(cursor.is_new(&comment));
        cursor.advance(&comment);
        cursor.advance(&note(1, NoteKind::Comment));
        assert_eq!(cursor.comments, 3, "never moves back");
    }

    #[test]
    fn an_inline_note_s_thread_is_its_first_comment() {
        let inline = |id, in_reply_to| {
            note(
                id,
                NoteKind::Inline {
                    path: "a".into(),
                    line: Some(1),
                    diff_hunk: String::new(),
                    in_reply_to,
                },
            )
        };
        assert_eq!(inline(5, None).thread(), Some(5));
        assert_eq!(inline(9, Some(5)).thread(), Some(5));
        assert_eq!(note(1, NoteKind::Comment).thread(), None);
    }
}
