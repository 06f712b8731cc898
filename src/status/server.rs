//! The status page's HTTP server (axum): read-only pages of the queue, one task, the workers,
//! spend and pauses, `/metrics` (Prometheus) and `/healthz` (liveness), served while the daemon
//! runs when STATUS_ADDR is set.
//!
//! Access: a loopback address (127.0.0.0/8, `::1`) is served to anyone who can reach it,
//! unless STATUS_TOKEN is set; any other address requires STATUS_TOKEN, or the server refuses
//! to start. With a token every path but `/healthz` and `/login` asks for it, as a bearer token
//! (`Authorization: Bearer …`, what Prometheus' `authorization` sends) or the cookie the login
//! form sets; it is compared in constant time (`subtle`), and a wrong or missing one gets 401.
//! No page, header or error carries the token or any other secret.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::Markup;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::html;
use super::view::{Overview, StatusCount, TaskDetail, TaskPage};
use crate::metrics::{self, ListenerState, Pause};
use crate::shutdown::Shutdown;
use crate::store::{QueueFilter, Store};
use crate::task::TaskStatus;

/// Name of the cookie the login form sets (holds the token; `HttpOnly`, `SameSite=Strict`).
pub const COOKIE: &str = "autonomous_dev_status";

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// STATUS_ADDR is not loopback and STATUS_TOKEN is unset.
    #[error(
        "STATUS_ADDR {0} is not a loopback address: set STATUS_TOKEN so that the status page \
         asks for it (or bind to 127.0.0.1)"
    )]
    NeedsToken(SocketAddr),
    /// STATUS_TOKEN is shorter than [`MIN_TOKEN_CHARS`] or has a character other than ASCII
    /// letters, digits and `-._~+/=` (it travels in a header and a cookie). The message never
    /// holds the token.
    #[error(
        "STATUS_TOKEN must be at least 16 characters of ASCII letters, digits and -._~+/= \
         (e.g. the output of `openssl rand -hex 32`)"
    )]
    BadToken,
    /// The address cannot be bound (in use, not this host's, no permission).
    #[error("cannot listen on STATUS_ADDR {addr}: {error}")]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
}

/// What only the running daemon knows: its pause and its LISTEN connection. The product's is
/// [`ProcessLive`]; tests give their own.
pub trait Live: Send + Sync {
    /// The daemon's pause of all claiming, if one runs.
    fn pause(&self) -> Option<Pause>;
    /// Whether the daemon's LISTEN connection for new tasks is up.
    fn listener(&self) -> ListenerState;
}

/// [`Live`] read from this process's [`metrics::global`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessLive;

impl Live for ProcessLive {
    fn pause(&self) -> Option<Pause> {
        metrics::global().pause()
    }

    fn listener(&self) -> ListenerState {
        metrics::global().listener()
    }
}

#[derive(Clone)]
struct App {
    store: Store,
    token: Option<Arc<SecretString>>,
    live: Arc<dyn Live>,
}

/// A bound server, ready to [`StatusServer::serve`].
pub struct StatusServer {
    listener: tokio::net::TcpListener,
    app: Router,
}

impl StatusServer {
    /// Binds `addr` for the pages of `store`.
    ///
    /// # Errors
    /// [`StatusError::NeedsToken`] for a non-loopback `addr` without `token` (nothing is
    /// bound); [`StatusError::Bind`] when the address cannot be bound.
    pub async fn bind(
        addr: SocketAddr,
        token: Option<SecretString>,
        store: Store,
        live: Arc<dyn Live>,
    ) -> Result<StatusServer, StatusError> {
        check_access(addr, token.as_ref())?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|error| StatusError::Bind { addr, error })?;
        Ok(StatusServer {
            listener,
            app: router(store, token, live),
        })
    }

    /// The address bound (the port chosen when STATUS_ADDR said port 0).
    ///
    /// # Errors
    /// The socket's, which has none only if it was closed.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` is triggered (requests in flight are finished).
    ///
    /// # Errors
    /// The server's I/O error, which ends serving (the daemon logs it and goes on).
    pub async fn serve(self, shutdown: &Shutdown) -> std::io::Result<()> {
        let shutdown = shutdown.clone();
        axum::serve(self.listener, self.app)
            .with_graceful_shutdown(async move { shutdown.triggered().await })
            .await
    }
}

/// Shortest STATUS_TOKEN accepted, in characters.
pub const MIN_TOKEN_CHARS: usize = 16;

/// Refuses a non-loopback `addr` without a token, and a token too short or with characters a
/// header or cookie cannot carry as they are.
///
/// # Errors
/// [`StatusError::NeedsToken`], [`StatusError::BadToken`].
pub fn check_access(addr: SocketAddr, token: Option<&SecretString>) -> Result<(), StatusError> {
    if let Some(token) = token {
        let token = token.expose_secret();
        let allowed = |c: char| c.is_ascii_alphanumeric() || "-._~+/=".contains(c);
        if token.chars().count() < MIN_TOKEN_CHARS || !token.chars().all(allowed) {
            return Err(StatusError::BadToken);
        }
    }
    if addr.ip().is_loopback() || token.is_some() {
        Ok(())
    } else {
        Err(StatusError::NeedsToken(addr))
    }
}

/// The routes: `/`, `/tasks/{task_id}`, `/workers`, `/spend`, `/pauses`, `/metrics`,
/// `/healthz`, `/login`, `/static/status.js`.
pub fn router(store: Store, token: Option<SecretString>, live: Arc<dyn Live>) -> Router {
    let app = App {
        store,
        token: token.map(Arc::new),
        live,
    };
    let guarded = Router::new()
        .route("/", get(queue))
        .route("/tasks/{task_id}", get(task))
        .route("/workers", get(workers))
        .route("/spend", get(spend))
        .route("/pauses", get(pauses))
        .route("/metrics", get(metrics_text))
        .route("/static/status.js", get(script))
        .route_layer(middleware::from_fn_with_state(app.clone(), authorize));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/login", get(login_form).post(login))
        .merge(guarded)
        .layer(middleware::from_fn(security_headers))
        .with_state(app)
}

/// Headers every answer carries: no script but ours, no framing, no sniffing, no referrer.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The token a request presents: its bearer token, else the login cookie.
fn presented(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    bearer.or_else(|| {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == COOKIE)
            .map(|(_, value)| value)
    })
}

/// Whether `given` is the token, compared in constant time.
fn matches(token: &SecretString, given: &str) -> bool {
    bool::from(token.expose_secret().as_bytes().ct_eq(given.as_bytes()))
}

async fn authorize(State(app): State<App>, request: Request, next: Next) -> Response {
    let Some(token) = &app.token else {
        return next.run(request).await;
    };
    match presented(request.headers()) {
        Some(given) if matches(token, given) => next.run(request).await,
        _ => {
            let mut response = (
                StatusCode::UNAUTHORIZED,
                html::problem(
                    "Unauthorized",
                    "This page needs STATUS_TOKEN: send it as a bearer token, or log in at /login.",
                ),
            )
                .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"autonomous-dev\""),
            );
            response
        }
    }
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login_form() -> Markup {
    html::login(false)
}

async fn login(State(app): State<App>, Form(form): Form<LoginForm>) -> Response {
    match &app.token {
        Some(token) if matches(token, &form.token) => {
            let mut response = Redirect::to("/").into_response();
            let cookie = format!("{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict", form.token);
            match HeaderValue::from_str(&cookie) {
                Ok(value) => {
                    response.headers_mut().insert(header::SET_COOKIE, value);
                    response
                }
                Err(_) => (StatusCode::BAD_REQUEST, html::login(true)).into_response(),
            }
        }
        Some(_) => (StatusCode::UNAUTHORIZED, html::login(true)).into_response(),
        None => Redirect::to("/").into_response(),
    }
}

/// A failed read of the store: 503, the error's kind only (never a connection string).
fn unavailable(error: &crate::store::StoreError) -> Response {
    tracing::warn!(%error, "status page: cannot read the store");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        html::problem("Unavailable", "The database cannot be read right now."),
    )
        .into_response()
}

fn bad_request(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        html::problem("Bad request", message),
    )
        .into_response()
}

/// The queue page's query: `status`, `label`, `offset` (all optional; empty means unset).
#[derive(Deserialize)]
struct QueueQuery {
    status: Option<String>,
    label: Option<String>,
    offset: Option<String>,
}

async fn queue(State(app): State<App>, Query(query): Query<QueueQuery>) -> Response {
    let status = match query.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => match TaskStatus::ALL.into_iter().find(|s| s.to_string() == text) {
            Some(status) => Some(status),
            None => {
                return bad_request(
                    "status must be one of pending, in_progress, completed, failed, \
                     needs_review, cancelled, blocked",
                );
            }
        },
    };
    let offset = match query.offset.as_deref().filter(|s| !s.is_empty()) {
        None => 0,
        Some(text) => match text.parse::<i64>() {
            Ok(n) if n >= 0 => n,
            _ => return bad_request("offset must be a whole number, at least 0"),
        },
    };
    let label = query.label.filter(|l| !l.is_empty());
    let filter = QueueFilter {
        status,
        label: label.clone(),
        limit: Some(html::PAGE_SIZE),
        offset,
    };
    let page = match TaskPage::load(&app.store, &filter).await {
        Ok(page) => page,
        Err(e) => return unavailable(&e),
    };
    let counts: Vec<StatusCount> = match app.store.status_counts().await {
        Ok(counts) => counts
            .into_iter()
            .map(|(status, count)| StatusCount { status, count })
            .collect(),
        Err(e) => return unavailable(&e),
    };
    html::queue(&counts, &page, status, label.as_deref(), chrono::Utc::now()).into_response()
}

async fn task(State(app): State<App>, Path(task_id): Path<String>) -> Response {
    match TaskDetail::load(&app.store, &task_id).await {
        Ok(Some(detail)) => html::task(&detail).into_response(),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            html::problem("Not found", &format!("No task '{task_id}'.")),
        )
            .into_response(),
        Err(e) => unavailable(&e),
    }
}

async fn overview_page(app: &App, page: fn(&Overview) -> Markup) -> Response {
    match Overview::load(&app.store, app.live.pause()).await {
        Ok(overview) => page(&overview).into_response(),
        Err(e) => unavailable(&e),
    }
}

async fn workers(State(app): State<App>) -> Response {
    overview_page(&app, |o| html::workers(o, chrono::Utc::now())).await
}

async fn spend(State(app): State<App>) -> Response {
    overview_page(&app, html::spend).await
}

async fn pauses(State(app): State<App>) -> Response {
    overview_page(&app, html::pauses).await
}

async fn script() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/javascript; charset=utf-8"),
        )],
        html::SCRIPT,
    )
        .into_response()
}

/// `/metrics`: every metric, and the queue gauges read from the database now.
async fn metrics_text(State(app): State<App>) -> Response {
    // A database that cannot be read leaves the queue gauges out; /healthz says why.
    let counts = app.store.status_counts().await.ok();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(metrics::CONTENT_TYPE),
        )],
        metrics::global().encode_with_queue(counts.as_deref()),
    )
        .into_response()
}

/// `/healthz`: 200 `ok` when the database answers and the LISTEN connection is up (or not
/// used: `run --once`); otherwise 503 and what is wrong, a line each.
async fn healthz(State(app): State<App>) -> Response {
    let mut problems = Vec::new();
    if app.store.ping().await.is_err() {
        problems.push("database unreachable");
    }
    if app.live.listener() == ListenerState::Disconnected {
        problems.push("listener disconnected (new tasks are picked up by the poll only)");
    }
    let plain = [(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    )];
    if problems.is_empty() {
        (StatusCode::OK, plain, "ok\n".to_owned()).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            plain,
            format!("{}\n", problems.join("\n")),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_goes_without_a_token() {
        let token = SecretString::from("t0ken-long-enough-1234".to_owned());
        let local: SocketAddr = "127.0.0.1:9464".parse().unwrap();
        let local6: SocketAddr = "[::1]:9464".parse().unwrap();
        let public: SocketAddr = "0.0.0.0:9464".parse().unwrap();
        assert!(check_access(local, None).is_ok());
        assert!(check_access(local6, None).is_ok());
        let e = check_access(public, None).unwrap_err().to_string();
        assert!(e.contains("STATUS_TOKEN"), "{e}");
        assert!(check_access(public, Some(&token)).is_ok());
        for bad in [
            "short",
            "has a space in it, long enough",
            "semi;colon;long;enough;;",
        ] {
            let bad = SecretString::from(bad.to_owned());
            let e = check_access(local, Some(&bad)).unwrap_err().to_string();
            assert!(e.contains("at least 16"), "{e}");
            assert!(!e.contains("colon") && !e.contains("space"), "{e}");
        }
    }

    #[test]
    fn the_token_comes_as_bearer_or_cookie() {
        let token = SecretString::from("s3cret".to_owned());
        let mut headers = HeaderMap::new();
        assert_eq!(presented(&headers), None);
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; autonomous_dev_status=s3cret"),
        );
        assert_eq!(presented(&headers), Some("s3cret"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer nope"),
        );
        assert_eq!(presented(&headers), Some("nope"));
        assert!(matches(&token, "s3cret"));
        assert!(!matches(&token, "s3cre"));
        assert!(!matches(&token, "s3cret!"));
    }
}
