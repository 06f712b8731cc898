//! Where a secret may travel: the one rule, shared by the settings (API URLs, PUSH_REPOSITORY)
//! and the git layer's credentials callback, that a token or key goes over `https://`, or over
//! plain `http://` only to a loopback host. A leaf module: it depends on nothing in the crate.

/// Whether `url`'s host is 127.0.0.0/8, `::1` or exactly `localhost`. The host is the one the
/// url crate parses (the one reqwest and libgit2's http transport connect to), so
/// `http://127.0.0.1.example.com` and `http://127.0.0.1@evil.com` are not loopback.
pub fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host_str() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// Whether a secret may be sent to `url`: `https://` anywhere, `http://` only to a loopback
/// host ([`is_loopback`]); any other scheme, or text that is not a URL, is `false`.
pub fn may_send_secret(url: &str) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return false;
    };
    match parsed.scheme() {
        "https" => true,
        "http" => is_loopback(&parsed),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_go_to_https_and_loopback_http_only() {
        for ok in [
            "https://github.com/o/n.git",
            "http://127.0.0.1:8080/repo.git",
            "http://127.3.2.1/repo.git",
            "http://localhost/repo.git",
            "http://[::1]:9/repo.git",
        ] {
            assert!(may_send_secret(ok), "{ok}");
        }
        for bad in [
            "http://github.com/o/n.git",
            "http://127.0.0.1.evil.com/x",
            "http://127.0.0.1@evil.com/x",
            "http://localhost.evil.com/x",
            "http://[::ffff:8.8.8.8]/x",
            "ssh://git@github.com/o/n.git",
            "not a url",
        ] {
            assert!(!may_send_secret(bad), "{bad}");
        }
    }
}
