//! Talking to a remote (`origin`, or the fork of PUSH_REPOSITORY): the credentials callback
//! (token as HTTP basic `x-access-token:<token>`, one attempt only, only where
//! [`crate::net::may_send_secret`] allows), the push status callback, and turning libgit2's
//! network errors into [`GitError`]s that never carry the token or the remote URL.

use std::cell::{Cell, RefCell};

use git2::{Cred, CredentialType, RemoteCallbacks};
use secrecy::{ExposeSecret, SecretString};

use super::GitError;

/// User name GitHub expects with an installation or personal access token over https.
pub const TOKEN_USER: &str = "x-access-token";

/// State shared with the callbacks of one fetch or push.
pub(super) struct Session<'t> {
    token: Option<&'t SecretString>,
    /// The remote's name in errors: `origin`, or `the fork` (PUSH_REPOSITORY).
    remote: &'static str,
    attempts: Cell<u32>,
    auth_failure: Cell<Option<&'static str>>,
    rejected: RefCell<Option<(String, String)>>,
}

impl<'t> Session<'t> {
    /// A session with `remote` (named so in errors: `origin`, `the fork`) authenticated by
    /// `token`.
    pub(super) fn new(token: Option<&'t SecretString>, remote: &'static str) -> Session<'t> {
        Session {
            token,
            remote,
            attempts: Cell::new(0),
            auth_failure: Cell::new(None),
            rejected: RefCell::new(None),
        }
    }

    /// Callbacks answering credential requests and recording rejected refs of a push.
    pub(super) fn callbacks(&self) -> RemoteCallbacks<'_> {
        let mut callbacks = RemoteCallbacks::new();
        callbacks.credentials(|url, _user, allowed| self.credentials(url, allowed));
        callbacks.push_update_reference(|refname, status| {
            if let Some(message) = status {
                self.record_rejection(refname, message);
            }
            Ok(())
        });
        callbacks
    }

    /// Answers libgit2's credential request. libgit2 asks again after the server refused the
    /// credentials, so a second request means they were wrong: fail instead of looping.
    fn credentials(&self, url: &str, allowed: CredentialType) -> Result<Cred, git2::Error> {
        match self.token_for(url, allowed) {
            Ok(token) => Cred::userpass_plaintext(TOKEN_USER, token.expose_secret()),
            Err(reason) => {
                self.auth_failure.set(Some(reason));
                Err(git2::Error::from_str(reason))
            }
        }
    }

    /// The token to answer this credential request with, or why there is none.
    fn token_for(
        &self,
        url: &str,
        allowed: CredentialType,
    ) -> Result<&'t SecretString, &'static str> {
        let attempt = self.attempts.get() + 1;
        self.attempts.set(attempt);
        if attempt > 1 {
            return Err("authentication failed: the remote refused the token");
        }
        if !allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
            return Err(
                "authentication failed: the remote asks for credentials other than a token",
            );
        }
        if !crate::net::may_send_secret(url) {
            return Err("authentication failed: refusing to send the token over plain http");
        }
        self.token
            .ok_or("authentication failed: the remote requires a token and none is set")
    }

    fn record_rejection(&self, refname: &str, message: &str) {
        let mut rejected = self.rejected.borrow_mut();
        if rejected.is_none() {
            *rejected = Some((refname.to_string(), message.to_string()));
        }
    }

    /// The push's first rejected ref, if any.
    pub(super) fn rejection(&self) -> Option<GitError> {
        let (refname, message) = self.rejected.borrow().clone()?;
        Some(GitError::PushRejected {
            remote: self.remote,
            refname,
            message: self.redact(&message, None),
        })
    }

    /// Maps a failed `operation` ("fetch", "push") to an error without secrets: an
    /// authentication failure seen by the callback wins over libgit2's message.
    pub(super) fn error(&self, operation: &str, err: &git2::Error, url: Option<&str>) -> GitError {
        if let Some(reason) = self.auth_failure.get() {
            return GitError::Auth(format!("{operation} {}: {reason}", self.remote));
        }
        let message = self.redact(err.message(), url);
        if err.code() == git2::ErrorCode::Auth {
            return GitError::Auth(format!("{operation} {}: {message}", self.remote));
        }
        GitError::Remote(format!("{operation} {}: {message}", self.remote))
    }

    /// `message` without the token, the remote URL, or any `scheme://user:pass@` credentials.
    fn redact(&self, message: &str, url: Option<&str>) -> String {
        let mut out = message.to_string();
        if let Some(url) = url.filter(|u| !u.is_empty()) {
            out = out.replace(url, &format!("<{}>", self.remote));
        }
        if let Some(token) = self
            .token
            .map(|t| t.expose_secret())
            .filter(|t| !t.is_empty())
        {
            out = out.replace(token, "***");
        }
        strip_userinfo(&out)
    }
}

/// Replaces the user-info part of every `scheme://user-info@host` in `text` with `***`.
fn strip_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        let authority_end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || c == '\'' || c == '"')
            .unwrap_or(tail.len());
        match tail[..authority_end].rfind('@') {
            Some(at) => {
                out.push_str("***");
                rest = &tail[at..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_stripped() {
        assert_eq!(
            strip_userinfo("failed for 'https://user:s3cret@github.com/o/n': 401"),
            "failed for 'https://***@github.com/o/n': 401"
        );
        assert_eq!(strip_userinfo("no url here"), "no url here");
        assert_eq!(
            strip_userinfo("https://github.com/a@b and ssh://git@h:x"),
            "https://github.com/a@b and ssh://***@h:x"
        );
    }

    #[test]
    fn redact_removes_token_and_url() {
        let token = SecretString::from("tok123");
        let session = Session::new(Some(&token), "origin");
        let url = "https://example.com/o/n.git";
        let message = "remote https://example.com/o/n.git said tok123";
        assert_eq!(
            session.redact(message, Some(url)),
            "remote <origin> said ***"
        );
    }

    #[test]
    fn second_credential_request_fails() {
        let token = SecretString::from("tok123");
        let session = Session::new(Some(&token), "origin");
        let url = "https://github.com/o/n.git";
        assert!(
            session
                .credentials(url, CredentialType::USER_PASS_PLAINTEXT)
                .is_ok()
        );
        let err = session
            .credentials(url, CredentialType::USER_PASS_PLAINTEXT)
            .err()
            .map(|e| e.message().to_string());
        assert_eq!(
            err.as_deref(),
            Some("authentication failed: the remote refused the token")
        );
    }

    #[test]
    fn missing_token_is_an_auth_failure() {
        let session = Session::new(None, "origin");
        let url = "https://github.com/o/n.git";
        assert!(
            session
                .credentials(url, CredentialType::USER_PASS_PLAINTEXT)
                .is_err()
        );
        let err = session.error("fetch", &git2::Error::from_str("x"), Some(url));
        assert!(matches!(err, GitError::Auth(_)), "{err}");
    }
}
