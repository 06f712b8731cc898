//! Verification on a repository with a dependency, against a local package index (wiremock
//! answering as PyPI's simple API does: a page of links per project, the wheel behind each):
//! the real bubblewrap, real pip and venv. Offline, the missing dependency is the environment's
//! failure, never repair material; the trusted setup on the base (with network) prepares a tree
//! once per base commit and warms it with one check on the base, every check runs offline on
//! its own copy (reusing the warm outputs only when their inputs are the base's), and a check
//! that writes into that copy leaves the next one pristine. End to end through the binary: the
//! repository's `.autonomous-dev.toml` is read from the base only, a malformed one fails the task
//! before any LLM call, and the daemon's settings override it.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use autonomous_dev::repo_config::RepoConfig;
use autonomous_dev::store::Store;
use autonomous_dev::task::{Outcome, TaskStatus};
use autonomous_dev::verify::{
    CheckPlan, Prepared, SetupPolicy, Verification, Verifier, VerifyConfig, VerifyStatus,
};
use common::{Deployment, Remote, Script};
use serde_json::{Value, json};
use sqlx::{PgPool, Row};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A project using the `greet` package, with its unittest.
const APP: [(&str, &str); 2] = [
    (
        "app.py",
        "import greet\n\n\ndef hello():\n    return greet.hello()\n",
    ),
    (
        "test_app.py",
        "import unittest\n\nimport app\n\n\nclass HelloTest(unittest.TestCase):\n    \
         def test_hello(self):\n        self.assertEqual(app.hello(), 'hello')\n",
    ),
];

const CHECK: &str = "python3 -m unittest -q";

/// A wheel of package `name` 1.0 whose `__init__.py` is `source` (built by Python's zipfile).
fn wheel(name: &str, source: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("w.whl");
    let script = r#"
import sys, zipfile
name, out, source = sys.argv[1], sys.argv[2], sys.argv[3]
info = f"{name}-1.0.dist-info"
with zipfile.ZipFile(out, "w") as z:
    z.writestr(f"{name}/__init__.py", source)
    z.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    z.writestr(f"{info}/RECORD", f"{name}/__init__.py,,\n{info}/METADATA,,\n{info}/WHEEL,,\n{info}/RECORD,,\n")
"#;
    let status = std::process::Command::new("python3")
        .args(["-c", script, name, out.to_str().unwrap(), source])
        .status()
        .expect("python3 runs");
    assert!(status.success());
    std::fs::read(out).unwrap()
}

/// A package index serving `greet` (PyPI's simple API: `/simple/<project>/`, then the file).
async fn index() -> MockServer {
    let server = MockServer::start().await;
    let file = "greet-1.0-py3-none-any.whl";
    Mock::given(method("GET"))
        .and(path("/simple/greet/"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            format!(
                "<!DOCTYPE html><html><body><a href=\"/files/{file}\">{file}</a></body></html>"
            ),
            "text/html",
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/files/{file}")))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            wheel("greet", "def hello():\n    return 'hello'\n"),
            "application/octet-stream",
        ))
        .mount(&server)
        .await;
    server
}

/// The setup that installs `greet` from `index` into the tree's venv.
fn setup_command(index: &MockServer) -> String {
    format!(
        "python3 -m venv .venv && .venv/bin/pip install --quiet --disable-pip-version-check \
         --index-url {}/simple greet",
        index.uri()
    )
}

fn verifier(cache: &Path, setup: SetupPolicy) -> Verifier {
    Verifier::new(VerifyConfig {
        setup,
        timeout: Some(Duration::from_secs(120)),
        cache_dir: cache.to_path_buf(),
        ..VerifyConfig::default()
    })
    .expect("bubblewrap sandbox available")
}

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        std::fs::write(dir.join(path), content).unwrap();
    }
}

/// Prepares base `commit` (its tree: [`APP`]) for `plan`.
async fn prepare(verifier: &Verifier, commit: &str, plan: &CheckPlan) -> Prepared {
    verifier
        .prepare(commit, plan, |dir: PathBuf| async move {
            write(&dir, &APP);
            Ok(())
        })
        .await
        .expect("the setup runs")
}

/// Verifies `change` over the base ([`APP`]) in a fresh worktree, over `prepared` when given.
async fn check(
    verifier: &Verifier,
    plan: &CheckPlan,
    change: &[(&str, &str)],
    prepared: Option<&Path>,
) -> Verification {
    let worktree = tempfile::tempdir().unwrap();
    write(worktree.path(), &APP);
    write(worktree.path(), change);
    verifier
        .verify(worktree.path(), plan, prepared)
        .await
        .expect("verification runs")
}

fn repo(index: &MockServer) -> RepoConfig {
    RepoConfig {
        setup: Some(setup_command(index)),
        verify: Some(CHECK.into()),
        ..RepoConfig::default()
    }
}

#[tokio::test]
async fn without_setup_a_missing_dependency_is_the_environment_s_failure() {
    let cache = tempfile::tempdir().unwrap();
    let index = index().await;
    let verifier = verifier(cache.path(), SetupPolicy::Off);
    let plan = verifier.plan(&[], &repo(&index)).expect("a check");
    assert_eq!(
        plan.setup, None,
        "SETUP=false overrides the repository's setup"
    );

    let v = check(&verifier, &plan, &[], None).await;
    assert_eq!(v.status, VerifyStatus::Failed, "{v:?}");
    let environment = v.environment.as_deref().expect("the environment's failure");
    assert!(
        environment.starts_with("dependency not available offline (")
            && environment.contains("No module named 'greet'")
            && environment.contains("add it in a separate, reviewed change or set it up"),
        "{environment}"
    );
    assert!(
        !v.needs_repair(),
        "no change of the Engineer's can fetch it"
    );
    assert!(v.blocks_approval());
    assert!(
        v.summary().contains("dependency not available offline"),
        "{}",
        v.summary()
    );
    assert!(
        index.received_requests().await.unwrap().is_empty(),
        "the check is offline"
    );
}

#[tokio::test]
async fn the_setup_prepares_a_base_once_and_every_check_runs_offline_on_a_copy() {
    let cache = tempfile::tempdir().unwrap();
    let index = index().await;
    let verifier = verifier(cache.path(), SetupPolicy::Auto);
    let plan = verifier.plan(&[], &repo(&index)).expect("a check");
    assert_eq!(plan.setup, Some(setup_command(&index)));

    let Prepared::Ready {
        dir,
        made: Some(made),
    } = prepare(&verifier, "1111", &plan).await
    else {
        panic!("the setup failed, or did not run");
    };
    assert_eq!(made.setup.status, VerifyStatus::Passed, "{made:?}");
    assert!(dir.starts_with(cache.path()), "{}", dir.display());
    let requests = index.received_requests().await.unwrap().len();
    assert!(
        requests >= 2,
        "the setup fetched greet from the index: {requests}"
    );

    let v = check(&verifier, &plan, &[], Some(&dir)).await;
    assert_eq!(v.status, VerifyStatus::Passed, "{v:?}");

    // A second task on the same base reuses the tree: the setup does not run again.
    let Prepared::Ready {
        dir: again,
        made: None,
    } = prepare(&verifier, "1111", &plan).await
    else {
        panic!("the setup failed, or ran again");
    };
    assert_eq!(again, dir);
    assert_eq!(index.received_requests().await.unwrap().len(), requests);

    // A change needing a dependency the prepared tree lacks: the environment's failure.
    let v = check(
        &verifier,
        &plan,
        &[(
            "app.py",
            "import greet\nimport requests\n\n\ndef hello():\n    return greet.hello()\n",
        )],
        Some(&dir),
    )
    .await;
    assert_eq!(v.status, VerifyStatus::Failed, "{v:?}");
    assert!(
        v.environment
            .as_deref()
            .is_some_and(|e| e.contains("No module named 'requests'")),
        "{v:?}"
    );
    assert!(!v.needs_repair());
    assert_eq!(
        index.received_requests().await.unwrap().len(),
        requests,
        "offline"
    );

    // A broken change is the change's failure, sent back for repair.
    let v = check(
        &verifier,
        &plan,
        &[(
            "app.py",
            "import greet\n\n\ndef hello():\n    return 'bye'\n",
        )],
        Some(&dir),
    )
    .await;
    assert_eq!(v.status, VerifyStatus::Failed, "{v:?}");
    assert_eq!(v.environment, None, "{v:?}");
    assert!(v.needs_repair());
}

#[tokio::test]
async fn a_check_that_writes_into_the_prepared_state_leaves_the_next_check_pristine() {
    let cache = tempfile::tempdir().unwrap();
    let index = index().await;
    let verifier = verifier(cache.path(), SetupPolicy::Auto);
    let plan = verifier.plan(&[], &repo(&index)).expect("a check");
    let Prepared::Ready { dir, .. } = prepare(&verifier, "2222", &plan).await else {
        panic!("the setup failed");
    };
    // The hostile change's test rewrites the installed dependency to always pass.
    let poison = (
        "test_poison.py",
        "import greet\n\nwith open(greet.__file__, 'w') as f:\n    \
         f.write(\"def hello():\\n    return 'POISONED'\\n\")\n",
    );
    let v = check(&verifier, &plan, &[poison], Some(&dir)).await;
    assert_eq!(v.status, VerifyStatus::Passed, "{v:?}");

    // The next task's check sees the dependency as the setup installed it.
    let pristine = (
        "test_pristine.py",
        "import unittest\n\nimport greet\n\n\nclass Pristine(unittest.TestCase):\n    \
         def test_not_poisoned(self):\n        self.assertEqual(greet.hello(), 'hello')\n",
    );
    let v = check(&verifier, &plan, &[pristine], Some(&dir)).await;
    assert_eq!(v.status, VerifyStatus::Passed, "{v:?}");
    let installed = glob_one(&dir, "greet/__init__.py");
    assert!(
        !std::fs::read_to_string(&installed)
            .unwrap()
            .contains("POISONED"),
        "{}",
        installed.display()
    );
}

#[tokio::test]
async fn a_setup_that_fails_on_the_base_is_reported_as_the_environment_s() {
    let cache = tempfile::tempdir().unwrap();
    let verifier = verifier(
        cache.path(),
        SetupPolicy::Command("echo no registry; exit 3".into()),
    );
    let plan = verifier.plan(
        &[],
        &RepoConfig {
            verify: Some(CHECK.into()),
            ..RepoConfig::default()
        },
    );
    let plan = plan.expect("a check");
    let Prepared::Failed(v) = prepare(&verifier, "3333", &plan).await else {
        panic!("the setup passed");
    };
    assert_eq!(v.exit_code, Some(3));
    assert_eq!(v.output_tail, "no registry");
    assert!(
        v.environment
            .as_deref()
            .is_some_and(|e| e.contains("failed on the base commit")),
        "{v:?}"
    );
    assert!(!v.needs_repair() && v.blocks_approval());
    assert!(
        std::fs::read_dir(cache.path().join("prepared")).map_or(true, |mut d| d.next().is_none()),
        "a failed setup keeps nothing"
    );
}

/// A base whose check builds `out.txt` from `src.txt` (make, which compares modification
/// times) and tests it.
const BUILT: [(&str, &str); 2] = [
    (
        "Makefile",
        "test: out.txt\n\t@grep -qx good out.txt\n\nout.txt: src.txt\n\t@echo building\n\t@cp src.txt out.txt\n",
    ),
    ("src.txt", "good\n"),
];

#[tokio::test]
async fn the_warm_up_runs_the_check_on_the_base_and_every_check_starts_warm() {
    let cache = tempfile::tempdir().unwrap();
    let verifier = verifier(cache.path(), SetupPolicy::Auto);
    let repo = RepoConfig {
        setup: Some("true".into()),
        verify: Some("make -s test".into()),
        ..RepoConfig::default()
    };
    let plan = verifier.plan(&[], &repo).expect("a check");
    let Prepared::Ready { dir, .. } = verifier
        .prepare("4444", &plan, |dir: PathBuf| async move {
            write(&dir, &BUILT);
            Ok(())
        })
        .await
        .expect("the setup runs")
    else {
        panic!("the setup failed");
    };
    assert!(
        dir.join("out.txt").is_file(),
        "the warm-up ran the check on the base"
    );
    let check = |change: &'static [(&'static str, &'static str)]| {
        let (verifier, plan, dir) = (&verifier, &plan, &dir);
        async move {
            let worktree = tempfile::tempdir().unwrap();
            write(worktree.path(), &BUILT);
            write(worktree.path(), change);
            verifier
                .verify(worktree.path(), plan, Some(dir))
                .await
                .expect("verification runs")
        }
    };

    // A change elsewhere: the base's build output is reused.
    let v = check(&[("notes.txt", "unrelated\n")]).await;
    assert_eq!(v.status, VerifyStatus::Passed, "{v:?}");
    assert_eq!(v.output_tail, "", "nothing rebuilt: {v:?}");

    // A change to the source: the output the warm-up made is older than the checkout, so it is
    // rebuilt from the change and the check sees the change (never the base's stale output).
    let v = check(&[("src.txt", "bad\n")]).await;
    assert_eq!(v.status, VerifyStatus::Failed, "{v:?}");
    assert!(v.output_tail.starts_with("building\n"), "rebuilt: {v:?}");
}

/// The one file under `dir` whose path ends with `suffix`.
fn glob_one(dir: &Path, suffix: &str) -> PathBuf {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.to_string_lossy().ends_with(suffix) {
            return path;
        }
        if path.is_dir() && !path.is_symlink() {
            stack.extend(
                std::fs::read_dir(&path)
                    .unwrap()
                    .flatten()
                    .map(|e| e.path()),
            );
        }
    }
    panic!("no {suffix} under {}", dir.display())
}

// --- End to end ------------------------------------------------------------------------------

const TASK: &str = "app-1";

/// The daemon on a target holding `base`, every role approving, the Engineer writing `change`,
/// QA adding no test, with `env` set.
async fn deployment(
    pool: &PgPool,
    base: &[(&str, &str)],
    change: &[(&str, &str)],
    env: &[(&str, &str)],
) -> Deployment {
    let written: Vec<Value> = change
        .iter()
        .map(|(path, content)| json!({"path": path, "content": content}))
        .collect();
    let engineer =
        json!({"summary": "changes app", "files": written, "score": 90, "rationale": "done"});
    let answer = move |tool: &str, _| match tool {
        "submit_implementation" => engineer.clone(),
        "submit_review" => {
            let mut qa = common::answer(tool, TASK, Script::Approve);
            qa["test_files"] = json!([]);
            qa
        }
        _ => common::answer(tool, TASK, Script::Approve),
    };
    let usage = json!({"input_tokens": 1000, "output_tokens": 200,
                       "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0});
    let env = [&[("VERIFY_OPTIONAL", "false")], env].concat();
    Deployment::start(pool, Remote::with_files(base), answer, usage, &env, TASK).await
}

async fn task(pool: &PgPool) -> autonomous_dev::task::Task {
    let store = Store::from_pool(pool.clone());
    store.get_task(TASK).await.unwrap().expect("the task")
}

/// The verification the Engineer's stage recorded.
async fn engineer_verification(pool: &PgPool) -> Value {
    let evidence: Option<Value> = sqlx::query(
        "SELECT s.evidence FROM task_stages s JOIN tasks t ON t.id = s.task \
         WHERE t.task_id = $1 AND s.stage = 'engineer'",
    )
    .bind(TASK)
    .fetch_one(pool)
    .await
    .unwrap()
    .get("evidence");
    evidence.expect("evidence recorded")["verification"].clone()
}

fn held(task: &autonomous_dev::task::Task) -> Vec<String> {
    match task.result.clone().expect("an outcome") {
        Outcome::Conditional { consensus } => consensus.held,
        other => panic!("not held: {other:?}"),
    }
}

#[sqlx::test]
async fn a_malformed_repository_config_fails_the_task_before_any_llm_call(pool: PgPool) {
    let base = [
        APP[0],
        APP[1],
        (
            ".autonomous-dev.toml",
            "verify = \"make\"\nverify_timeout = \"soon\"\n",
        ),
    ];
    let run = deployment(&pool, &base, &[APP[0]], &[]).await;
    run.run_once().await;
    let task = task(&pool).await;
    assert_eq!(task.status, TaskStatus::Failed);
    let error = task.error.unwrap_or_default();
    assert!(
        error.contains(".autonomous-dev.toml line 2, field `verify_timeout`: invalid type"),
        "{error}"
    );
    assert!(run.model.requests.lock().unwrap().is_empty(), "no LLM call");
    assert!(run.nothing_published());
}

#[sqlx::test]
async fn an_offline_dependency_is_not_repaired_and_holds_the_approval(pool: PgPool) {
    let base = [
        APP[0],
        APP[1],
        (
            ".autonomous-dev.toml",
            "verify = \"python3 -m unittest -q\"\n",
        ),
    ];
    let change = [(
        "app.py",
        "import greet\n\n\ndef hello():\n    return greet.hello()  # same\n",
    )];
    let run = deployment(
        &pool,
        &base,
        &change,
        &[("REPAIR_ROUNDS", "2"), ("SETUP", "false")],
    )
    .await;
    run.run_once().await;
    assert_eq!(
        run.model.requests_to("submit_implementation").len(),
        1,
        "no repair round"
    );
    let task = task(&pool).await;
    assert_eq!(task.status, TaskStatus::NeedsReview);
    let held = held(&task);
    assert!(
        held.iter()
            .any(|h| h.contains("dependency not available offline")),
        "{held:?}"
    );
    assert!(run.nothing_published());
}

#[sqlx::test]
async fn the_repository_config_comes_from_the_base_and_a_change_to_it_is_held(pool: PgPool) {
    let calc = [
        ("calc.py", "def add(a, b):\n    return a + b\n"),
        (
            "test_calc.py",
            "import unittest\n\nimport calc\n\n\nclass AddTest(unittest.TestCase):\n    \
             def test_add(self):\n        self.assertEqual(calc.add(2, 3), 5)\n",
        ),
        (
            ".autonomous-dev.toml",
            "verify = \"python3 -m unittest -q\"\nlabels = [\"from-config\"]\n",
        ),
    ];
    // The change breaks `add` and rewrites the config to a check that always passes.
    let change = [
        ("calc.py", "def add(a, b):\n    return a - b\n"),
        (".autonomous-dev.toml", "verify = \"true\"\n"),
    ];
    let run = deployment(&pool, &calc, &change, &[("REPAIR_ROUNDS", "0")]).await;
    run.run_once().await;
    let verification = engineer_verification(&pool).await;
    assert_eq!(
        verification["command"], "python3 -m unittest -q",
        "{verification}"
    );
    assert_eq!(verification["status"], "failed", "{verification}");
    assert_eq!(
        verification["check_changed"],
        json!([".autonomous-dev.toml"])
    );
    assert_eq!(task(&pool).await.status, TaskStatus::NeedsReview);
    assert!(run.nothing_published());
}

#[sqlx::test]
async fn the_daemon_s_settings_override_the_repository_config_whose_labels_reach_the_pr(
    pool: PgPool,
) {
    let calc = [
        ("calc.py", "def add(a, b):\n    return a + b\n"),
        (
            ".autonomous-dev.toml",
            "verify = \"false\"\nlabels = [\"from-config\"]\n",
        ),
    ];
    let change = [("calc.py", "def add(a, b):\n    return b + a\n")];
    let run = deployment(
        &pool,
        &calc,
        &change,
        &[("VERIFY_COMMAND", "python3 -c pass")],
    )
    .await;
    run.run_once().await;
    let verification = engineer_verification(&pool).await;
    assert_eq!(verification["command"], "python3 -c pass", "{verification}");
    assert_eq!(verification["status"], "passed", "{verification}");
    let task = task(&pool).await;
    assert_eq!(task.status, TaskStatus::Completed, "{:?}", task.result);
    let labels = run.github.labels().await;
    assert!(
        labels
            .iter()
            .any(|(_, l)| l.iter().any(|l| l == "from-config")),
        "{labels:?}"
    );
}
