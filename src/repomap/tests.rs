//! Unit tests of the map on real git repositories in temporary directories.

use std::path::Path;

use super::*;

/// Commits `files` (path, content) on top of HEAD (or as the first commit) with `message`;
/// returns the commit's id.
pub(super) fn commit(repo: &git2::Repository, files: &[(&str, &str)], message: &str) -> git2::Oid {
    let mut index = repo.index().unwrap();
    let workdir = repo.workdir().unwrap().to_path_buf();
    for (path, content) in files {
        let full = workdir.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(&full, content).unwrap();
        index.add_path(Path::new(path)).unwrap();
    }
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = git2::Signature::now("t", "t@example.com").unwrap();
    let parents: Vec<git2::Commit<'_>> = repo
        .head()
        .ok()
        .and_then(|h| h.peel_to_commit().ok())
        .into_iter()
        .collect();
    let parents: Vec<&git2::Commit<'_>> = parents.iter().collect();
    repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
        .unwrap()
}

fn sample() -> (tempfile::TempDir, git2::Repository) {
    let dir = tempfile::tempdir().unwrap();
    let repo = git2::Repository::init(dir.path()).unwrap();
    commit(
        &repo,
        &[
            (
                "src/session.py",
                "class SessionInterface:\n    \"\"\"Stores the session in a signed cookie.\"\"\"\n    def open_session(self, app, request):\n        return decode_cookie(request)\n",
            ),
            (
                "src/cookies.py",
                "def decode_cookie(request):\n    return request.cookies\n\ndef encode_cookie(value):\n    return value\n",
            ),
            (
                "src/app.py",
                "from .session import SessionInterface\n\nclass App:\n    def run(self):\n        SessionInterface().open_session(self, None)\n",
            ),
            (
                "src/templating.py",
                "def render_template(name):\n    return name\n",
            ),
            ("docs/index.md", "# Docs\n"),
            ("blob.py", "\0binary"),
        ],
        "initial",
    );
    (dir, repo)
}

fn head_tree(repo: &git2::Repository) -> git2::Tree<'_> {
    repo.head().unwrap().peel_to_tree().unwrap()
}

#[test]
fn build_lists_every_blob_and_parses_source() {
    let (_dir, repo) = sample();
    let map = build(&repo, &head_tree(&repo)).unwrap();
    let paths: Vec<&str> = map.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "blob.py",
            "docs/index.md",
            "src/app.py",
            "src/cookies.py",
            "src/session.py",
            "src/templating.py"
        ]
    );
    let session = &map.files[4].symbols;
    assert_eq!(session.definitions[0].name, "SessionInterface");
    assert_eq!(session.definitions[0].signature, "class SessionInterface:");
    assert!(session.references.iter().any(|(n, _)| n == "decode_cookie"));
    assert!(
        map.files[0].symbols.definitions.is_empty(),
        "NUL bytes: path only"
    );
    assert_eq!(map.tree, head_tree(&repo).id().to_string());
}

#[test]
fn the_cache_is_reused_per_tree_and_a_broken_one_rebuilt() {
    let (_dir, repo) = sample();
    let cache = tempfile::tempdir().unwrap();
    let tree = head_tree(&repo);
    let first = load_or_build(&repo, &tree, Some(cache.path())).unwrap();
    assert!(!first.cached);
    let file = cache.path().join(format!("{}.json", tree.id()));
    assert!(file.exists());
    let second = load_or_build(&repo, &tree, Some(cache.path())).unwrap();
    assert!(second.cached);
    assert_eq!(second.map, first.map);

    std::fs::write(&file, b"{not json").unwrap();
    let rebuilt = load_or_build(&repo, &tree, Some(cache.path())).unwrap();
    assert!(!rebuilt.cached);
    assert_eq!(rebuilt.map, first.map);
    assert!(
        load_or_build(&repo, &tree, Some(cache.path()))
            .unwrap()
            .cached
    );

    // Another tree gets its own entry.
    commit(&repo, &[("src/extra.rs", "fn extra() {}\n")], "more");
    let other = load_or_build(&repo, &head_tree(&repo), Some(cache.path())).unwrap();
    assert!(!other.cached);
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 2);
}

#[test]
fn ranking_follows_the_task_and_the_reference_graph() {
    let (_dir, repo) = sample();
    let map = build(&repo, &head_tree(&repo)).unwrap();
    let ranking = rank(
        &map,
        "The signed session cookie is not refreshed by open_session",
        &History::none(),
    );
    let order: Vec<&str> = ranking
        .files
        .iter()
        .map(|&i| map.files[i].path.as_str())
        .collect();
    assert_eq!(order[0], "src/session.py", "{order:?}");
    // cookies.py defines what session.py calls: reached through the graph.
    let cookies = order.iter().position(|p| *p == "src/cookies.py").unwrap();
    let templating = order
        .iter()
        .position(|p| *p == "src/templating.py")
        .unwrap();
    assert!(cookies < templating, "{order:?}");

    let ranking = rank(&map, "render_template ignores the name", &History::none());
    assert_eq!(map.files[ranking.files[0]].path, "src/templating.py");
    // Same input, same output: the shared prompt prefix depends on it.
    assert_eq!(
        rank(&map, "render_template ignores the name", &History::none()),
        ranking
    );
}

#[test]
fn render_keeps_to_the_budget_and_summarises_what_is_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let repo = git2::Repository::init(dir.path()).unwrap();
    let mut files = Vec::new();
    for d in 0..20 {
        for f in 0..50 {
            files.push((
                format!("pkg{d}/sub/module_{f}.go"),
                format!("package sub\n\nfunc Handler{d}x{f}(w Writer) error {{ return nil }}\n"),
            ));
        }
    }
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    commit(&repo, &refs, "many");
    let map = build(&repo, &head_tree(&repo)).unwrap();
    assert_eq!(map.files.len(), 1000);
    let ranking = rank(&map, "Handler3x7 returns the wrong error", &History::none());
    let rendered = render(&map, &ranking, 1024);
    assert!(rendered.tokens <= 1024, "{}", rendered.tokens);
    assert_eq!(rendered.shown[0], "pkg3/sub/module_7.go");
    assert!(
        rendered
            .text
            .starts_with("pkg3/sub/module_7.go\n  3: func Handler3x7(w Writer) error")
    );
    assert!(rendered.text.contains("Not shown: "), "{}", rendered.text);
    assert!(rendered.text.contains("pkg19/sub/ ("));
    assert!(rendered.shown.len() < 1000);

    // A budget that holds everything shows every path and no directory tree.
    let all = render(&map, &ranking, 100_000);
    assert_eq!(all.shown.len(), 1000);
    assert!(!all.text.contains("Not shown"));
}

#[test]
fn an_empty_tree_renders_empty() {
    let dir = tempfile::tempdir().unwrap();
    let repo = git2::Repository::init(dir.path()).unwrap();
    commit(&repo, &[], "empty");
    let map = build(&repo, &head_tree(&repo)).unwrap();
    let rendered = render(&map, &rank(&map, "anything", &History::none()), 4096);
    assert_eq!(rendered.text, "");
    assert!(rendered.shown.is_empty());
}

#[test]
fn history_weighs_recent_and_frequent_changes_up_to_the_base_only() {
    let (_dir, repo) = sample();
    commit(
        &repo,
        &[("src/cookies.py", "def decode_cookie(r):\n    return r\n")],
        "one",
    );
    commit(&repo, &[("src/app.py", "class App:\n    pass\n")], "two");
    let wide: Vec<(String, String)> = (0..11)
        .map(|i| (format!("gen/f{i}.py"), format!("X = {i}\n")))
        .collect();
    let wide: Vec<(&str, &str)> = wide.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
    commit(&repo, &wide, "a reformat touching eleven files");
    let base = commit(&repo, &[("src/app.py", "class App:\n    x = 1\n")], "three");
    commit(
        &repo,
        &[(
            "src/templating.py",
            "def render_template(n):\n    return n\n",
        )],
        "after",
    );

    let history = History::of(&repo, &repo.find_commit(base).unwrap()).unwrap();
    assert_eq!(history.weight("src/app.py"), 1.0, "changed most, and last");
    let cookies = history.weight("src/cookies.py");
    assert!(cookies > 0.0 && cookies < 1.0, "{cookies}");
    assert_eq!(
        history.weight("gen/f0.py"),
        0.0,
        "a wide commit says nothing"
    );
    assert_eq!(
        history.weight("src/templating.py"),
        0.0,
        "after the base: not seen"
    );
    assert_eq!(History::none().weight("src/app.py"), 0.0);

    // A task that names no code ranks by where the work has been.
    let map = build(&repo, &repo.find_commit(base).unwrap().tree().unwrap()).unwrap();
    let place = |history: &History| {
        let ranking = rank(&map, "Fix typos", history);
        ranking
            .files
            .iter()
            .position(|&i| map.files[i].path == "src/app.py")
            .unwrap()
    };
    assert!(
        place(&history) < place(&History::none()),
        "{} vs {}",
        place(&history),
        place(&History::none())
    );
    // The text still comes first when it names something.
    let ranking = rank(&map, "render_template ignores the name", &history);
    assert_eq!(map.files[ranking.files[0]].path, "src/templating.py");
}

#[test]
fn a_word_only_in_a_file_s_text_still_finds_it() {
    let (_dir, repo) = sample();
    commit(
        &repo,
        &[(
            "src/tracing.py",
            "# Export spans to the AWS X-Ray daemon.\ndef setup():\n    return 'xray'\n",
        )],
        "tracing",
    );
    let map = build(&repo, &head_tree(&repo)).unwrap();
    let tracing = map
        .files
        .iter()
        .find(|f| f.path == "src/tracing.py")
        .unwrap();
    assert!(
        tracing
            .symbols
            .terms
            .iter()
            .any(|(t, n)| t == "xray" && *n == 1)
    );
    let ranking = rank(&map, "Update the X-Ray link", &History::none());
    assert_eq!(map.files[ranking.files[0]].path, "src/tracing.py");
}
