//! The fake GitHub's issues, answering as GitHub's REST API documents (objects built from the
//! examples of GitHub's OpenAPI description, npm @octokit/openapi, in `tests/fixtures/github/`):
//! "List repository issues" filtered by `labels` (all of them) and `state`, pull requests
//! included as GitHub lists them (with a `pull_request` key), with an ETag and a 304 for a
//! matching If-None-Match; "Get an issue" (404 for an unknown one); "List issue events"
//! (`labeled` events with their actor). Comments on an issue are the conversation's
//! (`conversation.rs`: `GET`/`POST /issues/{number}/comments`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use super::FakeGitHub;
use super::conversation::{conditional, user};

/// The repository's issues (GitHub's objects) and their events.
#[derive(Default)]
pub struct Tracker {
    issues: Vec<Value>,
    events: HashMap<u64, Vec<Value>>,
    clock: u32,
}

fn fixture(name: &str) -> Value {
    let text = match name {
        "issue" => include_str!("../../fixtures/github/issue.json"),
        "issue_event" => include_str!("../../fixtures/github/issue_event.json"),
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(text).unwrap()
}

fn label(name: &str) -> Value {
    json!({
        "id": 208045946, "node_id": "MDU6TGFiZWwyMDgwNDU5NDY=",
        "url": format!("https://api.github.com/repos/o/r/labels/{name}"),
        "name": name, "description": null, "color": "f29513", "default": false
    })
}

impl Tracker {
    fn tick(&mut self) -> String {
        self.clock += 1;
        format!(
            "2026-12-03T09:{:02}:{:02}Z",
            self.clock / 60,
            self.clock % 60
        )
    }

    fn find(&mut self, number: u64) -> &mut Value {
        self.issues
            .iter_mut()
            .find(|i| i["number"] == number)
            .expect("a known issue")
    }

    fn labeled(&mut self, number: u64, name: &str, by: &str) {
        let at = self.tick();
        let mut event = fixture("issue_event");
        let events = self.events.entry(number).or_default();
        event["id"] = json!(1000 + events.len());
        event["event"] = json!("labeled");
        event["actor"] = user(by);
        event["label"] = json!({"name": name, "color": "f29513"});
        event["created_at"] = json!(at);
        events.push(event);
        let issue = self.find(number);
        issue["labels"].as_array_mut().unwrap().push(label(name));
        issue["updated_at"] = json!(at);
    }
}

impl Tracker {
    /// Takes label `name` off issue `number`.
    pub fn unlabel(&mut self, number: u64, name: &str) {
        let at = self.tick();
        let issue = self.find(number);
        issue["labels"]
            .as_array_mut()
            .unwrap()
            .retain(|l| l["name"] != name);
        issue["updated_at"] = json!(at);
    }
}

impl FakeGitHub {
    /// Opens issue `number` by `author` with `title` and `body`, then has `labelled_by` put
    /// each of `labels` on it (a `labeled` event each).
    pub fn open_issue(
        &self,
        number: u64,
        author: &str,
        (title, body): (&str, &str),
        labels: &[&str],
        labelled_by: &str,
    ) {
        let mut tracker = self.tracker.lock().unwrap();
        let at = tracker.tick();
        let mut issue = fixture("issue");
        issue["id"] = json!(5000 + number);
        issue["number"] = json!(number);
        issue["url"] = json!(format!("https://api.github.com/repos/o/r/issues/{number}"));
        issue["html_url"] = json!(format!("https://github.com/o/r/issues/{number}"));
        issue["title"] = json!(title);
        issue["body"] = json!(body);
        issue["user"] = user(author);
        issue["labels"] = json!([]);
        issue["state"] = json!("open");
        issue["closed_at"] = Value::Null;
        issue["closed_by"] = Value::Null;
        issue["state_reason"] = Value::Null;
        issue["created_at"] = json!(at);
        issue["updated_at"] = json!(at);
        issue.as_object_mut().unwrap().remove("pull_request");
        tracker.issues.push(issue);
        for name in labels {
            tracker.labeled(number, name, labelled_by);
        }
    }

    /// Lists pull request `number` among the issues with `labels`, as GitHub does.
    pub fn list_pull_request_as_issue(&self, number: u64, labels: &[&str]) {
        self.open_issue(number, "someone", ("A pull request", ""), &[], "someone");
        let mut tracker = self.tracker.lock().unwrap();
        for name in labels {
            tracker.labeled(number, name, "someone");
        }
        tracker.find(number)["pull_request"] = json!({
            "url": format!("https://api.github.com/repos/o/r/pulls/{number}"),
            "html_url": format!("https://github.com/o/r/pull/{number}"),
            "diff_url": format!("https://github.com/o/r/pull/{number}.diff"),
            "patch_url": format!("https://github.com/o/r/pull/{number}.patch")
        });
    }

    /// Closes issue `number`.
    pub fn close_issue(&self, number: u64) {
        let mut tracker = self.tracker.lock().unwrap();
        let at = tracker.tick();
        let issue = tracker.find(number);
        issue["state"] = json!("closed");
        issue["state_reason"] = json!("completed");
        issue["closed_at"] = json!(at);
        issue["updated_at"] = json!(at);
    }

    /// Sets issue `number`'s body.
    pub fn edit_issue(&self, number: u64, body: &str) {
        let mut tracker = self.tracker.lock().unwrap();
        let at = tracker.tick();
        let issue = tracker.find(number);
        issue["body"] = json!(body);
        issue["updated_at"] = json!(at);
    }

    /// The issue comments the daemon posted on `number`, in order.
    pub fn issue_comments(&self, number: u64) -> Vec<String> {
        self.posted()
            .into_iter()
            .filter(|(n, reply, _)| *n == number && reply.is_none())
            .map(|(_, _, body)| body)
            .collect()
    }
}

/// Mounts the issue endpoints of repository `o/r` on `server`.
pub(super) async fn mount(server: &MockServer) -> Arc<Mutex<Tracker>> {
    let tracker = Arc::new(Mutex::new(Tracker::default()));
    let list = tracker.clone();
    Mock::given(method("GET"))
        .and(path("/repos/o/r/issues"))
        .respond_with(move |request: &Request| {
            let query: HashMap<String, String> = request.url.query_pairs().into_owned().collect();
            let wanted: Vec<&str> = query
                .get("labels")
                .map(|l| l.split(',').collect())
                .unwrap_or_default();
            let state = query.get("state").map_or("open", String::as_str);
            let per_page: usize = query.get("per_page").map_or(30, |v| v.parse().unwrap());
            let page: usize = query.get("page").map_or(1, |v| v.parse().unwrap());
            let tracker = list.lock().unwrap();
            let items: Vec<Value> = tracker
                .issues
                .iter()
                .filter(|i| state == "all" || i["state"] == state)
                .filter(|i| {
                    wanted.iter().all(|w| {
                        i["labels"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|l| l["name"] == *w)
                    })
                })
                .skip(per_page * (page - 1))
                .take(per_page)
                .cloned()
                .collect();
            conditional(request, &json!(items))
        })
        .mount(server)
        .await;
    let get = tracker.clone();
    Mock::given(method("GET"))
        .and(path_regex(r"^/repos/o/r/issues/\d+$"))
        .respond_with(move |request: &Request| {
            let number: u64 = request
                .url
                .path()
                .split('/')
                .nth(5)
                .unwrap()
                .parse()
                .unwrap();
            let tracker = get.lock().unwrap();
            match tracker.issues.iter().find(|i| i["number"] == number) {
                Some(issue) => ResponseTemplate::new(200).set_body_json(issue),
                None => ResponseTemplate::new(404).set_body_json(json!({
                    "message": "Not Found",
                    "documentation_url": "https://docs.github.com/rest/issues/issues#get-an-issue",
                    "status": "404"
                })),
            }
        })
        .mount(server)
        .await;
    let events = tracker.clone();
    Mock::given(method("GET"))
        .and(path_regex(r"^/repos/o/r/issues/\d+/events$"))
        .respond_with(move |request: &Request| {
            let number: u64 = request
                .url
                .path()
                .split('/')
                .nth(5)
                .unwrap()
                .parse()
                .unwrap();
            let query: HashMap<String, String> = request.url.query_pairs().into_owned().collect();
            let per_page: usize = query.get("per_page").map_or(30, |v| v.parse().unwrap());
            let page: usize = query.get("page").map_or(1, |v| v.parse().unwrap());
            let tracker = events.lock().unwrap();
            let items: Vec<Value> = tracker
                .events
                .get(&number)
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .skip(per_page * (page - 1))
                .take(per_page)
                .collect();
            ResponseTemplate::new(200).set_body_json(items)
        })
        .mount(server)
        .await;
    tracker
}
