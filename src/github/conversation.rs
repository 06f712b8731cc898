//! A pull request's conversation on GitHub's REST API, for revisions: its reviews, inline review
//! comments and PR comments read as [`Note`]s, who may write to the repository (the
//! collaborator permission API), the token's own login, and the daemon's answers (a PR comment,
//! a reply in an inline thread).
//!
//! Reads are retried per the [`super::RateLimitPolicy`] and paged (100 per page, at most
//! [`MAX_PAGES`] pages of each kind). Writes are sent once: a comment is not idempotent, so the
//! caller looks for its own marker before writing again.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{GitHub, GitHubError};
use crate::task::{Note, NoteKind};

/// Most pages of 100 read of each kind of note (10,000 notes).
pub const MAX_PAGES: u32 = 100;

/// A note as GitHub showed it, with what decides whether it counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    /// `new` and `ours` are false here; the watch decides them.
    pub note: Note,
    /// The author is a bot (`user.type` is `Bot`, or the login ends in `[bot]`).
    pub bot: bool,
}

#[derive(Deserialize)]
struct User {
    login: String,
    #[serde(rename = "type", default)]
    kind: String,
}

/// "List reviews for a pull request" item (the fields read).
#[derive(Deserialize)]
struct ReviewJson {
    id: u64,
    user: Option<User>,
    body: Option<String>,
    state: String,
    submitted_at: Option<DateTime<Utc>>,
}

/// "List review comments on a pull request" item.
#[derive(Deserialize)]
struct ReviewCommentJson {
    id: u64,
    user: Option<User>,
    body: String,
    path: String,
    line: Option<u64>,
    original_line: Option<u64>,
    #[serde(default)]
    diff_hunk: String,
    in_reply_to_id: Option<u64>,
    created_at: Option<DateTime<Utc>>,
}

/// "List issue comments" item.
#[derive(Deserialize)]
struct IssueCommentJson {
    id: u64,
    user: Option<User>,
    body: Option<String>,
    created_at: Option<DateTime<Utc>>,
}

/// "Get repository permissions for a user" answer.
#[derive(Deserialize)]
struct PermissionJson {
    permission: String,
    role_name: Option<String>,
}

#[derive(Deserialize)]
struct Created {
    id: u64,
}

impl GitHub {
    /// The login of the token's account (`GET /user`): the daemon's own notes are told apart
    /// by it. Errors: [`GitHubError::Status`] (e.g. 403 for a token that may not read its
    /// user), [`GitHubError::Api`].
    pub async fn login(&self) -> Result<String, GitHubError> {
        let user: User = self
            .retrying("get user", || async {
                self.octocrab
                    .get("/user", None::<&()>)
                    .await
                    .map_err(|e| self.error(e))
            })
            .await?;
        Ok(user.login)
    }

    /// Every review, inline review comment and PR comment of PR `number`, in that order, each
    /// kind in GitHub's order (oldest first). Notes by a deleted user ("ghost", no `user`)
    /// are left out.
    ///
    /// Errors: [`GitHubError::Status`], [`GitHubError::Api`] (after the policy's retries).
    pub async fn conversation(&self, number: u64) -> Result<Vec<Posted>, GitHubError> {
        let base = format!("/repos/{}/{}", self.owner, self.name);
        let reviews: Vec<ReviewJson> = self
            .pages(&format!("{base}/pulls/{number}/reviews"), &[])
            .await?;
        let inline: Vec<ReviewCommentJson> = self
            .pages(&format!("{base}/pulls/{number}/comments"), &[])
            .await?;
        let comments: Vec<IssueCommentJson> = self
            .pages(&format!("{base}/issues/{number}/comments"), &[])
            .await?;
        let mut notes = Vec::new();
        let posted = |id, user: Option<User>, kind, body: Option<String>, at| {
            let user = user?;
            let bot = user.kind.eq_ignore_ascii_case("bot") || user.login.ends_with("[bot]");
            Some(Posted {
                note: Note {
                    id,
                    author: user.login,
                    kind,
                    body: body.unwrap_or_default(),
                    at,
                    new: false,
                    ours: false,
                },
                bot,
            })
        };
        notes.extend(reviews.into_iter().filter_map(|r| {
            let kind = NoteKind::Review { state: r.state };
            posted(r.id, r.user, kind, r.body, r.submitted_at)
        }));
        notes.extend(inline.into_iter().filter_map(|c| {
            let kind = NoteKind::Inline {
                path: c.path,
                line: c.line.or(c.original_line),
                diff_hunk: c.diff_hunk,
                in_reply_to: c.in_reply_to_id,
            };
            posted(c.id, c.user, kind, Some(c.body), c.created_at)
        }));
        notes.extend(
            comments
                .into_iter()
                .filter_map(|c| posted(c.id, c.user, NoteKind::Comment, c.body, c.created_at)),
        );
        Ok(notes)
    }

    /// True when `login` may write to the repository: GitHub's collaborator permission
    /// (`GET /repos/{owner}/{repo}/collaborators/{login}/permission`) is `admin` or `write`
    /// (the `maintain` role reads as `write`), or its `role_name` is `admin`, `maintain` or
    /// `write`. A 404 (not a user, or the token may not ask) is no permission.
    ///
    /// Errors: [`GitHubError::Status`] other than 404, [`GitHubError::Api`].
    pub async fn can_write(&self, login: &str) -> Result<bool, GitHubError> {
        let route = format!(
            "/repos/{}/{}/collaborators/{login}/permission",
            self.owner, self.name
        );
        let answer = self
            .retrying("get collaborator permission", || async {
                self.octocrab
                    .get::<PermissionJson, _, _>(&route, None::<&()>)
                    .await
                    .map_err(|e| self.error(e))
            })
            .await;
        match answer {
            Ok(p) => Ok(matches!(p.permission.as_str(), "admin" | "write")
                || matches!(p.role_name.as_deref(), Some("admin" | "maintain" | "write"))),
            Err(e) if e.status() == Some(404) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Posts `body` as a comment on PR `number`'s conversation
    /// (`POST /repos/{owner}/{repo}/issues/{number}/comments`), once; the comment's id.
    ///
    /// Errors: [`GitHubError::Status`], [`GitHubError::Api`] (the comment may exist anyway
    /// after a network failure).
    pub async fn comment(&self, number: u64, body: &str) -> Result<u64, GitHubError> {
        let route = format!(
            "/repos/{}/{}/issues/{number}/comments",
            self.owner, self.name
        );
        self.post_note(route, body).await
    }

    /// Replies `body` in the inline thread of review comment `comment_id` on PR `number`
    /// (`POST /repos/{owner}/{repo}/pulls/{number}/comments/{comment_id}/replies`; GitHub
    /// attaches a reply to a reply to the thread's first comment), once; the reply's id.
    ///
    /// Errors: as [`GitHub::comment`].
    pub async fn reply(
        &self,
        number: u64,
        comment_id: u64,
        body: &str,
    ) -> Result<u64, GitHubError> {
        let route = format!(
            "/repos/{}/{}/pulls/{number}/comments/{comment_id}/replies",
            self.owner, self.name
        );
        self.post_note(route, body).await
    }

    /// One `POST route` of `{"body": body}`, no retry (not idempotent); the note's id.
    async fn post_note(&self, route: String, body: &str) -> Result<u64, GitHubError> {
        let created: Created = self
            .octocrab
            .post(route, Some(&serde_json::json!({ "body": body })))
            .await
            .map_err(|e| self.error(e))?;
        Ok(created.id)
    }

    /// Every item of the list at `route` with the query `params`, 100 a page, until a short
    /// page (or [`MAX_PAGES`]).
    pub(super) async fn pages<T: serde::de::DeserializeOwned>(
        &self,
        route: &str,
        params: &[(&str, String)],
    ) -> Result<Vec<T>, GitHubError> {
        let mut all = Vec::new();
        for page in 1..=MAX_PAGES {
            let mut params = params.to_vec();
            params.extend([("per_page", "100".to_owned()), ("page", page.to_string())]);
            let items: Vec<T> = self
                .retrying("list notes", || async {
                    self.octocrab
                        .get(route, Some(&params))
                        .await
                        .map_err(|e| self.error(e))
                })
                .await?;
            let last = items.len() < 100;
            all.extend(items);
            if last {
                break;
            }
        }
        Ok(all)
    }
}
