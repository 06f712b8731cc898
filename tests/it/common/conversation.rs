//! The fake GitHub's pull request conversations and checks, answering as GitHub's REST API
//! documents (responses built from the examples of GitHub's OpenAPI description, npm
//! @octokit/openapi, in `tests/fixtures/github/`): list reviews, review comments
//! (`in_reply_to_id`) and issue comments (paged by `per_page`/`page`), reply in a review
//! thread, comment on the PR, the collaborator permission of a user, the token's user; a
//! commit's check runs and combined status (with ETags and 304s), a run's annotations, and an
//! Actions job's log (302 to a download URL on another origin, which must be fetched without
//! the token). A note
//! added bumps the PR's `updated_at`, as GitHub does, so its ETag changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use super::FakeGitHub;

/// Login of the token's account (`GET /user`).
pub const DAEMON_LOGIN: &str = "autonomous-dev-bot";

/// Every PR's notes and who may write.
#[derive(Default)]
pub struct Talk {
    /// PR number → reviews, review comments, issue comments (GitHub's objects), oldest first.
    notes: HashMap<u64, [Vec<Value>; 3]>,
    next_id: [u64; 3],
    /// login → GitHub's `permission` (`admin`, `write`, `read`); others get `read`.
    pub permissions: HashMap<String, String>,
    /// Replies and comments the daemon posted: (PR, in reply to, body).
    pub posted: Vec<(u64, Option<u64>, String)>,
    /// How long a reply takes to answer (it is recorded at once).
    pub reply_delay: Duration,
    clock: u32,
    /// Commit → its check runs (GitHub's objects) and commit statuses.
    checks: HashMap<String, (Vec<Value>, Vec<Value>)>,
    /// Check run id → annotations; job id → log text.
    annotations: HashMap<u64, Vec<Value>>,
    logs: HashMap<u64, String>,
    /// Log downloads that carried an Authorization header (the token leaving GitHub's API).
    pub log_downloads_with_auth: usize,
    /// Where job logs are downloaded from: another origin, as GitHub's are.
    downloads: Option<MockServer>,
}

const REVIEWS: usize = 0;
const INLINE: usize = 1;
const COMMENTS: usize = 2;

fn fixture(name: &str) -> Value {
    let text = match name {
        "review" => include_str!("../../fixtures/github/review.json"),
        "review_comment" => include_str!("../../fixtures/github/review_comment.json"),
        "issue_comment" => include_str!("../../fixtures/github/issue_comment.json"),
        "permission" => include_str!("../../fixtures/github/collaborator_permission.json"),
        "user" => include_str!("../../fixtures/github/user.json"),
        "check_runs" => include_str!("../../fixtures/github/check_runs.json"),
        "check_annotations" => include_str!("../../fixtures/github/check_annotations.json"),
        "combined_status" => include_str!("../../fixtures/github/combined_status.json"),
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(text).unwrap()
}

pub(super) fn user(login: &str) -> Value {
    let mut user = fixture("user")
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| {
            // The simple-user shape a note carries.
            !matches!(
                k.as_str(),
                "name"
                    | "company"
                    | "blog"
                    | "location"
                    | "email"
                    | "hireable"
                    | "bio"
                    | "twitter_username"
                    | "public_repos"
                    | "public_gists"
                    | "followers"
                    | "following"
                    | "created_at"
                    | "updated_at"
                    | "private_gists"
                    | "total_private_repos"
                    | "owned_private_repos"
                    | "disk_usage"
                    | "collaborators"
                    | "two_factor_authentication"
                    | "plan"
            )
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect::<serde_json::Map<_, _>>();
    user.insert("login".into(), json!(login));
    let bot = login.ends_with("[bot]");
    user.insert("type".into(), json!(if bot { "Bot" } else { "User" }));
    Value::Object(user)
}

impl Talk {
    fn add(&mut self, pr: u64, kind: usize, mut note: Value) -> u64 {
        self.next_id[kind] += 1;
        let id = [80, 10, 1][kind] + self.next_id[kind];
        self.clock += 1;
        let at = format!(
            "2026-12-02T10:{:02}:{:02}Z",
            self.clock / 60,
            self.clock % 60
        );
        note["id"] = json!(id);
        note[if kind == REVIEWS {
            "submitted_at"
        } else {
            "created_at"
        }] = json!(at);
        if kind != REVIEWS {
            note["updated_at"] = json!(at);
        }
        self.notes.entry(pr).or_default()[kind].push(note);
        id
    }
}

impl FakeGitHub {
    /// Adds a review by `author` (`APPROVED`, `CHANGES_REQUESTED`, `COMMENTED`) on PR `pr`.
    pub fn review(&self, pr: u64, author: &str, state: &str, body: &str) -> u64 {
        let mut review = fixture("review");
        review["user"] = user(author);
        review["state"] = json!(state);
        review["body"] = json!(body);
        self.noted(pr, REVIEWS, review)
    }

    /// Adds an inline review comment by `author` on `path` line `line` of PR `pr`, replying
    /// to `in_reply_to` when given.
    pub fn inline(
        &self,
        pr: u64,
        author: &str,
        (path, line): (&str, u64),
        body: &str,
        in_reply_to: Option<u64>,
    ) -> u64 {
        let mut comment = fixture("review_comment");
        comment["user"] = user(author);
        comment["path"] = json!(path);
        comment["line"] = json!(line);
        comment["original_line"] = json!(line);
        comment["body"] = json!(body);
        comment["diff_hunk"] = json!(format!("@@ -1,1 +1,1 @@\n+line {line} of {path}"));
        comment["in_reply_to_id"] = json!(in_reply_to);
        self.noted(pr, INLINE, comment)
    }

    /// Adds a comment by `author` on PR `pr`'s conversation.
    pub fn comment(&self, pr: u64, author: &str, body: &str) -> u64 {
        let mut comment = fixture("issue_comment");
        comment["user"] = user(author);
        comment["body"] = json!(body);
        self.noted(pr, COMMENTS, comment)
    }

    /// Gives `login` the collaborator permission `permission`.
    pub fn permit(&self, login: &str, permission: &str) {
        let mut talk = self.talk.lock().unwrap();
        talk.permissions.insert(login.into(), permission.into());
    }

    /// What the daemon posted: (PR, the thread it replied in, body), in order.
    pub fn posted(&self) -> Vec<(u64, Option<u64>, String)> {
        self.talk.lock().unwrap().posted.clone()
    }

    fn noted(&self, pr: u64, kind: usize, note: Value) -> u64 {
        let id = self.talk.lock().unwrap().add(pr, kind, note);
        self.touch(pr);
        id
    }

    fn touch(&self, pr: u64) {
        touch_open(&self.open, pr);
    }

    /// Sets PR `pr`'s head to commit `sha`, as a push to its branch does on GitHub.
    pub fn set_head(&self, pr: u64, sha: &str) {
        {
            let mut open = self.open.lock().unwrap();
            let found = open.iter_mut().find(|p| p["number"] == pr).unwrap();
            found["head"]["sha"] = json!(sha);
        }
        self.touch(pr);
    }

    /// Marks PR `pr` as no longer merging into its base, as GitHub shows a conflict:
    /// `mergeable` false, `mergeable_state` dirty.
    pub fn conflicted(&self, pr: u64) {
        {
            let mut open = self.open.lock().unwrap();
            let found = open.iter_mut().find(|p| p["number"] == pr).unwrap();
            found["mergeable"] = json!(false);
            found["mergeable_state"] = json!("dirty");
        }
        self.touch(pr);
    }

    /// Adds a completed check run `name` with `conclusion` on commit `sha`, made by GitHub
    /// Actions, with `annotations` (`(path, line, message)`) and, as its job's log, `log`.
    pub fn check_run(
        &self,
        sha: &str,
        (name, conclusion): (&str, &str),
        annotations: &[(&str, u64, &str)],
        log: &str,
    ) -> u64 {
        let mut talk = self.talk.lock().unwrap();
        let runs = fixture("check_runs");
        let mut run = runs["check_runs"][0].clone();
        let id = 4 + talk.annotations.len() as u64;
        run["id"] = json!(id);
        run["head_sha"] = json!(sha);
        run["name"] = json!(name);
        run["status"] = json!("completed");
        run["conclusion"] = json!(conclusion);
        run["output"]["title"] = json!(format!("{name}: {conclusion}"));
        run["output"]["summary"] = json!(format!("{} annotation(s)", annotations.len()));
        run["output"]["annotations_count"] = json!(annotations.len());
        run["app"]["slug"] = json!("github-actions");
        let mut listed = Vec::new();
        for (path, line, message) in annotations {
            let mut annotation = fixture("check_annotations")[0].clone();
            annotation["path"] = json!(path);
            annotation["start_line"] = json!(line);
            annotation["end_line"] = json!(line);
            annotation["annotation_level"] = json!("failure");
            annotation["title"] = json!(name);
            annotation["message"] = json!(message);
            listed.push(annotation);
        }
        talk.annotations.insert(id, listed);
        talk.logs.insert(id, log.to_owned());
        talk.checks.entry(sha.to_owned()).or_default().0.push(run);
        id
    }
}

/// A counter making each bump of `updated_at` differ.
fn open_clock() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static CLOCK: AtomicU32 = AtomicU32::new(0);
    CLOCK.fetch_add(1, Ordering::Relaxed) % 60
}

/// Mounts the conversation endpoints of repository `o/r` on `server`.
pub(super) async fn mount(server: &MockServer, open: Arc<Mutex<Vec<Value>>>) -> Arc<Mutex<Talk>> {
    let talk = Arc::new(Mutex::new(Talk::default()));
    Mock::given(method("GET"))
        .and(path("/user"))
        .respond_with(ResponseTemplate::new(200).set_body_json({
            let mut me = fixture("user");
            me["login"] = json!(DAEMON_LOGIN);
            me
        }))
        .mount(server)
        .await;
    let lists = talk.clone();
    Mock::given(method("GET"))
        .and(path_regex(
            r"^/repos/o/r/(pulls/\d+/reviews|pulls/\d+/comments|issues/\d+/comments)$",
        ))
        .respond_with(move |request: &Request| {
            let parts: Vec<&str> = request.url.path().split('/').collect();
            let pr: u64 = parts[5].parse().unwrap();
            let kind = match (parts[4], parts[6]) {
                ("pulls", "reviews") => REVIEWS,
                ("pulls", _) => INLINE,
                _ => COMMENTS,
            };
            let query = |key: &str, default: usize| {
                request
                    .url
                    .query_pairs()
                    .find(|(k, _)| k == key)
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(default)
            };
            let (per_page, page) = (query("per_page", 30), query("page", 1));
            let talk = lists.lock().unwrap();
            let all = talk
                .notes
                .get(&pr)
                .map(|n| n[kind].clone())
                .unwrap_or_default();
            let items: Vec<Value> = all
                .into_iter()
                .skip(per_page * (page - 1))
                .take(per_page)
                .collect();
            ResponseTemplate::new(200).set_body_json(items)
        })
        .mount(server)
        .await;
    let permissions = talk.clone();
    Mock::given(method("GET"))
        .and(path_regex(r"^/repos/o/r/collaborators/[^/]+/permission$"))
        .respond_with(move |request: &Request| {
            let login = request.url.path().split('/').nth(5).unwrap().to_owned();
            let permission = permissions
                .lock()
                .unwrap()
                .permissions
                .get(&login)
                .cloned()
                .unwrap_or_else(|| "read".into());
            let mut answer = fixture("permission");
            answer["permission"] = json!(permission);
            answer["role_name"] = json!(permission);
            answer["user"] = user(&login);
            ResponseTemplate::new(200).set_body_json(answer)
        })
        .mount(server)
        .await;
    let comments = talk.clone();
    let comments_open = open.clone();
    Mock::given(method("POST"))
        .and(path_regex(r"^/repos/o/r/issues/\d+/comments$"))
        .respond_with(move |request: &Request| {
            let pr: u64 = segment(request, 5);
            let body: Value = serde_json::from_slice(&request.body).unwrap();
            let text = body["body"].as_str().unwrap().to_owned();
            let mut comment = fixture("issue_comment");
            comment["user"] = user(DAEMON_LOGIN);
            comment["body"] = json!(text);
            let mut talk = comments.lock().unwrap();
            talk.add(pr, COMMENTS, comment.clone());
            talk.posted.push((pr, None, text));
            touch_open(&comments_open, pr);
            let created = talk.notes[&pr][COMMENTS].last().unwrap().clone();
            ResponseTemplate::new(201).set_body_json(created)
        })
        .mount(server)
        .await;
    let replies = talk.clone();
    let replies_open = open.clone();
    Mock::given(method("POST"))
        .and(path_regex(r"^/repos/o/r/pulls/\d+/comments/\d+/replies$"))
        .respond_with(move |request: &Request| {
            let (pr, to) = (segment(request, 5), segment(request, 7));
            let body: Value = serde_json::from_slice(&request.body).unwrap();
            let text = body["body"].as_str().unwrap().to_owned();
            let mut talk = replies.lock().unwrap();
            let Some(first) = talk
                .notes
                .get(&pr)
                .and_then(|n| n[INLINE].iter().find(|c| c["id"] == to).cloned())
            else {
                return ResponseTemplate::new(404).set_body_json(json!({
                    "message": "Not Found",
                    "documentation_url": "https://docs.github.com/rest/pulls/comments#create-a-reply-for-a-review-comment",
                    "status": "404"
                }));
            };
            let mut reply = first;
            reply["user"] = user(DAEMON_LOGIN);
            reply["body"] = json!(text);
            reply["in_reply_to_id"] = json!(to);
            talk.add(pr, INLINE, reply);
            talk.posted.push((pr, Some(to), text));
            touch_open(&replies_open, pr);
            let created = talk.notes[&pr][INLINE].last().unwrap().clone();
            ResponseTemplate::new(201)
                .set_delay(talk.reply_delay)
                .set_body_json(created)
        })
        .mount(server)
        .await;
    mount_checks(server, &talk).await;
    talk
}

/// A 200 with `body` and its ETag, or a 304 when If-None-Match matches.
pub(super) fn conditional(request: &Request, body: &Value) -> ResponseTemplate {
    use std::hash::{Hash, Hasher};
    let text = body.to_string();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    let etag = format!("W/\"{:016x}\"", hasher.finish());
    let matches = request
        .headers
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str());
    let response =
        ResponseTemplate::new(if matches { 304 } else { 200 }).insert_header("etag", etag.as_str());
    if matches {
        response
    } else {
        response.set_body_raw(text, "application/json; charset=utf-8")
    }
}

async fn mount_checks(server: &MockServer, talk: &Arc<Mutex<Talk>>) {
    let runs = talk.clone();
    Mock::given(method("GET"))
        .and(path_regex(r"^/repos/o/r/commits/[0-9a-f]+/check-runs$"))
        .respond_with(move |request: &Request| {
            let sha = request.url.path().split('/').nth(5).unwrap();
            let talk = runs.lock().unwrap();
            let list = talk
                .checks
                .get(sha)
                .map(|c| c.0.clone())
                .unwrap_or_default();
            conditional(
                request,
                &json!({"total_count": list.len(), "check_runs": list}),
            )
        })
        .mount(server)
        .await;
    let statuses = talk.clone();
    Mock::given(method("GET"))
        .and(path_regex(r"^/repos/o/r/commits/[0-9a-f]+/status$"))
        .respond_with(move |request: &Request| {
            let sha = request.url.path().split('/').nth(5).unwrap();
            let talk = statuses.lock().unwrap();
            let list = talk
                .checks
                .get(sha)
                .map(|c| c.1.clone())
                .unwrap_or_default();
            let mut combined = fixture("combined_status");
            combined["sha"] = json!(sha);
            combined["total_count"] = json!(list.len());
            combined["state"] = json!(if list.is_empty() {
                "pending"
            } else {
                "success"
            });
            combined["statuses"] = json!(list);
            conditional(request, &combined)
        })
        .mount(server)
        .await;
    let annotations = talk.clone();
    Mock::given(method("GET"))
        .and(path_regex(r"^/repos/o/r/check-runs/\d+/annotations$"))
        .respond_with(move |request: &Request| {
            let id: u64 = segment(request, 5);
            let talk = annotations.lock().unwrap();
            ResponseTemplate::new(200)
                .set_body_json(talk.annotations.get(&id).cloned().unwrap_or_default())
        })
        .mount(server)
        .await;
    let downloads = MockServer::start().await;
    let uri = downloads.uri();
    Mock::given(method("GET"))
        .and(path_regex(r"^/repos/o/r/actions/jobs/\d+/logs$"))
        .respond_with(move |request: &Request| {
            let id = request.url.path().split('/').nth(6).unwrap();
            // GitHub's documented answer: 302 to a short-lived download URL.
            ResponseTemplate::new(302).insert_header(
                "location",
                format!("{uri}/download/jobs/{id}/log?sig=x").as_str(),
            )
        })
        .mount(server)
        .await;
    let logs = talk.clone();
    Mock::given(method("GET"))
        .and(path_regex(r"^/download/jobs/\d+/log$"))
        .respond_with(move |request: &Request| {
            let id: u64 = segment(request, 3);
            let mut talk = logs.lock().unwrap();
            if request.headers.contains_key("authorization") {
                talk.log_downloads_with_auth += 1;
            }
            let log = talk.logs.get(&id).cloned().unwrap_or_default();
            ResponseTemplate::new(200).set_body_raw(log, "text/plain")
        })
        .mount(&downloads)
        .await;
    talk.lock().unwrap().downloads = Some(downloads);
}

/// Path segment `n` of `request` (`/repos/o/r/pulls/7/…`: 5 is `7`), as a number.
fn segment(request: &Request, n: usize) -> u64 {
    let part = request
        .url
        .path()
        .split('/')
        .nth(n)
        .expect("a path segment");
    part.parse().expect("a number in the path")
}

/// Bumps PR `pr`'s `updated_at`, as any new note does on GitHub.
fn touch_open(open: &Arc<Mutex<Vec<Value>>>, pr: u64) {
    let mut open = open.lock().unwrap();
    if let Some(found) = open.iter_mut().find(|p| p["number"] == pr) {
        found["updated_at"] = json!(format!("2026-12-02T12:00:{:02}Z", open_clock()));
    }
}
