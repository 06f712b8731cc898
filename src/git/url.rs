//! Recognising `owner/name` in the URL of a GitHub (or GitHub Enterprise) remote, and the
//! https clone URL of `owner/name` on the host of a REST API URL.

/// The clone URL of `repository` (`owner/name`) on the GitHub host whose REST API is
/// `api_url` (GITHUB_API_URL): `https://api.github.com` → `https://github.com/owner/name.git`;
/// GitHub Enterprise Server's `https://HOST/api/v3` → `https://HOST/owner/name.git` (GitHub
/// documents the API of a server at `HOST/api/v3` and its repositories at `HOST/owner/name`);
/// any other URL (a proxy, a local test server) → the same scheme, host, port and path with
/// `/owner/name.git` appended. `None` when `api_url` is not an http(s) URL with a host. The
/// scheme is kept, so an `http://` result is as loopback-only as the API URL was checked to be.
pub fn clone_url(api_url: &str, repository: &str) -> Option<String> {
    let mut url = reqwest::Url::parse(api_url).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return None;
    }
    url.set_query(None);
    url.set_fragment(None);
    if url.scheme() == "https" && url.host_str() == Some("api.github.com") && url.port().is_none() {
        return Some(format!("https://github.com/{repository}.git"));
    }
    let path = url.path().trim_end_matches('/');
    let path = path.strip_suffix("/api/v3").unwrap_or(path).to_string();
    url.set_path(&format!("{path}/{repository}.git"));
    Some(url.to_string())
}

/// Parses `owner/name` from a GitHub remote URL (https, ssh `git@host:owner/name(.git)`).
///
/// Accepts `http(s)://`, `ssh://` and `git://` URLs on any host (GitHub Enterprise too), with
/// or without user-info (`https://x-access-token@github.com/o/n`) and port, and scp-like
/// `[user@]host:owner/name`; a trailing `.git` or `/` is dropped. The path must be exactly two
/// segments of letters, digits, `-`, `_` and `.`. Returns `None` for local paths, `file://`
/// URLs and anything else.
pub fn parse_github_repository(url: &str) -> Option<String> {
    let path = match url.split_once("://") {
        Some((scheme, rest)) => url_path(scheme, rest)?,
        None => scp_path(url)?,
    };
    owner_and_name(path)
}

/// The path of `scheme://authority/path` for network schemes.
fn url_path<'a>(scheme: &str, rest: &'a str) -> Option<&'a str> {
    let scheme = scheme.to_ascii_lowercase();
    if !matches!(
        scheme.as_str(),
        "https" | "http" | "ssh" | "git" | "git+ssh"
    ) {
        return None;
    }
    let (authority, path) = rest.split_once('/')?;
    let host = authority.rsplit('@').next().unwrap_or("");
    if host.is_empty() {
        return None;
    }
    Some(path)
}

/// The path of an scp-like `[user@]host:path`; `None` when it is a local path instead (git's
/// rule: a slash before the first colon, or no colon, means a path).
fn scp_path(url: &str) -> Option<&str> {
    let (authority, path) = url.split_once(':')?;
    if authority.contains('/') || authority.contains('\\') {
        return None;
    }
    let host = authority.rsplit('@').next().unwrap_or("");
    // A one-letter "host" is a Windows drive (`C:\repo`, `C:/repo`).
    if host.len() < 2 {
        return None;
    }
    Some(path)
}

/// `owner/name` from a path such as `/owner/name.git/`.
fn owner_and_name(path: &str) -> Option<String> {
    let path = path.trim_start_matches('/').trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    let (owner, name) = path.split_once('/')?;
    (is_segment(owner) && is_segment(name)).then(|| format!("{owner}/{name}"))
}

fn is_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment != "."
        && segment != ".."
        && segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_urls_follow_the_api_host() {
        let url = |api| clone_url(api, "bot/r");
        assert_eq!(
            url("https://api.github.com").as_deref(),
            Some("https://github.com/bot/r.git")
        );
        assert_eq!(
            url("https://api.github.com/").as_deref(),
            Some("https://github.com/bot/r.git")
        );
        assert_eq!(
            url("https://ghe.example.com/api/v3").as_deref(),
            Some("https://ghe.example.com/bot/r.git")
        );
        assert_eq!(
            url("http://127.0.0.1:8080").as_deref(),
            Some("http://127.0.0.1:8080/bot/r.git")
        );
        assert_eq!(url("ftp://x").as_deref(), None);
        assert_eq!(url("not a url").as_deref(), None);
    }

    fn parse(url: &str) -> Option<String> {
        parse_github_repository(url)
    }

    #[test]
    fn https_urls() {
        let expected = Some("o/n".to_string());
        assert_eq!(parse("https://github.com/o/n"), expected);
        assert_eq!(parse("https://github.com/o/n.git"), expected);
        assert_eq!(parse("https://github.com/o/n/"), expected);
        assert_eq!(parse("https://x-access-token@github.com/o/n"), expected);
        assert_eq!(parse("https://user:secret@github.com/o/n.git"), expected);
        assert_eq!(parse("http://github.com/o/n"), expected);
        assert_eq!(parse("HTTPS://github.com/o/n"), expected);
    }

    #[test]
    fn ssh_urls() {
        let expected = Some("octo-org/my.repo_1".to_string());
        assert_eq!(parse("git@github.com:octo-org/my.repo_1.git"), expected);
        assert_eq!(parse("git@github.com:octo-org/my.repo_1"), expected);
        assert_eq!(
            parse("ssh://git@github.com/octo-org/my.repo_1.git"),
            expected
        );
        assert_eq!(
            parse("ssh://git@github.com:22/octo-org/my.repo_1.git"),
            expected
        );
        assert_eq!(parse("git://github.com/octo-org/my.repo_1.git"), expected);
    }

    #[test]
    fn enterprise_hosts() {
        assert_eq!(
            parse("https://ghe.example.com/team/app.git"),
            Some("team/app".to_string())
        );
        assert_eq!(
            parse("git@ghe.example.com:team/app.git"),
            Some("team/app".to_string())
        );
    }

    #[test]
    fn local_and_odd_remotes_are_none() {
        for url in [
            "/srv/git/repo.git",
            "/srv/git/o/n",
            "./o/n",
            "../o/n",
            "o/n",
            "file:///srv/git/o/n.git",
            "file://localhost/o/n",
            "C:\\repos\\o\\n",
            "C:/repos/o/n",
            "https://github.com/o",
            "https://github.com/o/n/pulls",
            "https://github.com//n",
            "https:///o/n",
            "https://github.com/../n",
            "git@github.com:o",
            "",
        ] {
            assert_eq!(parse(url), None, "{url}");
        }
    }
}
