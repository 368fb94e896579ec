//! Who is looking: the API key from `authorization: Bearer <key>` (scripts, curl) or from the
//! cookie the login form sets (browsers), checked by [`Authenticator`] exactly as gRPC checks
//! it, and required to carry the `read` scope.
//!
//! The cookie holds the key itself (base64url, so any key is a valid cookie value), not a
//! session of ours: every request is checked against the configured keys, so removing a key
//! from the config ends its console sessions at the next reload, replicas need no shared session
//! store, and nothing is remembered server-side. It is `HttpOnly` (scripts never see it),
//! `SameSite=Strict` (no other site's page can make the browser send it, which is the CSRF
//! defence for the logout form too), scoped to `/console`, and `Secure` when the browser reached
//! the console over HTTPS through a proxy (`x-forwarded-proto: https`): the ops listener itself
//! speaks plain HTTP, and a `Secure` cookie set over plain HTTP would never come back.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;

use super::{BASE_PATH, Console, ConsoleError, pages};
use crate::auth::{AuthError, Principal, Scope};

/// The cookie the login form sets.
pub const COOKIE: &str = "hooknorm_console";

/// How long a browser keeps the key: a working day.
const COOKIE_MAX_AGE_SECONDS: u64 = 12 * 60 * 60;

/// The most a login form body may hold (a key and a return path).
const LOGIN_BODY_BYTES: usize = 16 * 1024;

/// The authenticated reader of a console request, put in its extensions by [`authenticate`].
#[derive(Debug, Clone)]
pub struct Viewer(pub Arc<Principal>);

/// The principal for these request headers: a bearer key first, else the cookie's.
pub fn viewer(console: &Console, headers: &HeaderMap) -> Result<Arc<Principal>, AuthError> {
    let key = match headers.get(header::AUTHORIZATION) {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(crate::auth::bearer)
                .map(str::to_owned)
                .ok_or(AuthError::UnknownKey)?,
        ),
        None => cookie_key(headers),
    };
    checked(console, key.as_deref())
}

/// The principal of `key`, which must be allowed to read.
fn checked(console: &Console, key: Option<&str>) -> Result<Arc<Principal>, AuthError> {
    let principal = console.authenticator.authenticate(key, [])?;
    principal.require(Scope::Read)?;
    Ok(principal)
}

/// Middleware in front of every page: a request without a usable key gets the login form
/// (401), one whose key may not read a refusal (403); others carry their [`Viewer`].
pub async fn authenticate(
    State(console): State<Console>,
    mut request: Request,
    next: Next,
) -> Response {
    match viewer(&console, request.headers()) {
        Ok(principal) => {
            request.extensions_mut().insert(Viewer(principal));
            next.run(request).await
        }
        Err(error @ (AuthError::MissingKey | AuthError::UnknownKey)) => {
            let had_key = request.headers().contains_key(header::AUTHORIZATION)
                || cookie_key(request.headers()).is_some();
            tracing::info!(reason = %error.reason(), %error, "console request refused");
            let next_path = return_path(request.uri());
            let message = had_key.then_some("that api key matches no configured key");
            let mut response = (
                StatusCode::UNAUTHORIZED,
                pages::login_page(&next_path, message),
            )
                .into_response();
            if had_key {
                // A key that no longer works is not worth sending again.
                set_cookie(&mut response, &clear_cookie());
            }
            response
        }
        Err(error) => ConsoleError::from(error).into_response(),
    }
}

/// `GET /console/login`: the form (or straight on, when auth is off).
pub async fn login_form(State(console): State<Console>, uri: Uri) -> Response {
    let next_path = query_next(uri.query());
    if console.authenticator.is_open() {
        return Redirect::to(&next_path).into_response();
    }
    pages::login_page(&next_path, None).into_response()
}

/// `POST /console/login` (`key`, `next`): sets the cookie and goes on to `next`.
pub async fn login(State(console): State<Console>, request: Request) -> Response {
    if cross_site(request.headers()) {
        return ConsoleError::CrossSite.into_response();
    }
    let secure = forwarded_https(request.headers());
    let body = match axum::body::to_bytes(request.into_body(), LOGIN_BODY_BYTES).await {
        Ok(body) => body,
        Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "login form too large").into_response(),
    };
    let mut key = String::new();
    let mut next_path = BASE_PATH.to_owned();
    for (name, value) in form_urlencoded::parse(&body) {
        match name.as_ref() {
            "key" => key = value.trim().to_owned(),
            "next" => next_path = safe_next(&value),
            _ => {}
        }
    }
    let key = Some(key.as_str()).filter(|key| !key.is_empty());
    match checked(&console, key) {
        Ok(principal) => {
            tracing::info!(key = %principal.name, "console login");
            let mut response = Redirect::to(&next_path).into_response();
            set_cookie(
                &mut response,
                &session_cookie(key.unwrap_or_default(), secure),
            );
            response
        }
        Err(error @ (AuthError::MissingKey | AuthError::UnknownKey)) => {
            tracing::info!(reason = %error.reason(), %error, "console login refused");
            let message = match error {
                AuthError::MissingKey => "enter an api key",
                _ => "that api key matches no configured key",
            };
            (
                StatusCode::UNAUTHORIZED,
                pages::login_page(&next_path, Some(message)),
            )
                .into_response()
        }
        Err(error) => ConsoleError::from(error).into_response(),
    }
}

/// `POST /console/logout`: forgets the key.
pub async fn logout(request: Request<Body>) -> Response {
    if cross_site(request.headers()) {
        return ConsoleError::CrossSite.into_response();
    }
    let mut response = Redirect::to("/console/login").into_response();
    set_cookie(&mut response, &clear_cookie());
    response
}

/// The key in the console cookie, if any.
fn cookie_key(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .and_then(|(_, value)| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(value)
                .ok()
        })
        .and_then(|bytes| String::from_utf8(bytes).ok())
}

fn session_cookie(key: &str, secure: bool) -> String {
    let value = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key);
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{COOKIE}={value}; Path={BASE_PATH}; Max-Age={COOKIE_MAX_AGE_SECONDS}; HttpOnly; \
         SameSite=Strict{secure}"
    )
}

fn clear_cookie() -> String {
    format!("{COOKIE}=; Path={BASE_PATH}; Max-Age=0; HttpOnly; SameSite=Strict")
}

fn set_cookie(response: &mut Response, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// Whether the browser says another site made this request: form posts must come from the
/// console's own pages (the cookie's `SameSite` covers logout; login sets no cookie yet to
/// protect, but a page elsewhere must not log a browser in with a key of its choosing).
fn cross_site(headers: &HeaderMap) -> bool {
    let fetch_site = headers
        .get("sec-fetch-site")
        .and_then(|value| value.to_str().ok());
    if matches!(fetch_site, Some("cross-site" | "same-site")) {
        return true;
    }
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    // `null` says nothing: the console's own pages send it, as their referrer policy is
    // `no-referrer`; `sec-fetch-site` above is what current browsers decide by.
    match (origin, host) {
        (Some("null"), _) => false,
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_none_or(|(_, authority)| authority != host),
        _ => false,
    }
}

fn forwarded_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

/// Where to come back to after logging in: this request, when it was a page.
fn return_path(uri: &Uri) -> String {
    let path = uri.path_and_query().map_or(BASE_PATH, |path| path.as_str());
    safe_next(path)
}

fn query_next(query: Option<&str>) -> String {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(name, _)| name == "next")
        .map_or_else(|| BASE_PATH.to_owned(), |(_, value)| safe_next(&value))
}

/// `next` only ever leads to a console page of this server (never `//elsewhere` or a scheme):
/// a login link must not be a way to send an operator to another site.
fn safe_next(next: &str) -> String {
    let inside = next == BASE_PATH
        || next.starts_with("/console/") && !next.starts_with("/console/live")
        || next.starts_with("/console?");
    if inside && !next.contains('\\') && !next.chars().any(char::is_control) {
        next.to_owned()
    } else {
        BASE_PATH.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_console_pages() {
        assert_eq!(safe_next("/console?type=sim.*"), "/console?type=sim.*");
        assert_eq!(
            safe_next("/console/events/gigs:1"),
            "/console/events/gigs:1"
        );
        assert_eq!(safe_next("//evil.example/console"), "/console");
        assert_eq!(safe_next("https://evil.example/"), "/console");
        assert_eq!(safe_next("/consolex"), "/console");
        assert_eq!(safe_next("/console/live?after=1"), "/console");
        assert_eq!(safe_next("/console/\\evil"), "/console");
    }

    #[test]
    fn the_cookie_carries_any_key_and_is_locked_down() {
        let cookie = session_cookie("k; e=y", false);
        assert!(cookie.contains("HttpOnly; SameSite=Strict"), "{cookie}");
        assert!(cookie.contains("Path=/console;"), "{cookie}");
        assert!(!cookie.contains("Secure"));
        assert!(session_cookie("k", true).ends_with("; Secure"));
        let value = cookie.split(';').next().unwrap_or_default();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {value}")).unwrap(),
        );
        assert_eq!(cookie_key(&headers).as_deref(), Some("k; e=y"));
    }

    #[test]
    fn cross_site_posts_are_told_apart() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, HeaderValue::from_static(value));
            }
            map
        };
        assert!(!cross_site(&headers(&[])));
        assert!(!cross_site(&headers(&[
            ("origin", "http://127.0.0.1:8081"),
            ("host", "127.0.0.1:8081")
        ])));
        assert!(cross_site(&headers(&[
            ("origin", "http://evil.example"),
            ("host", "127.0.0.1:8081")
        ])));
        assert!(cross_site(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(!cross_site(&headers(&[("sec-fetch-site", "same-origin")])));
    }
}
