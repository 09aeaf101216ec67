//! The hub's web dashboard, server-rendered HTML built into the binary (no
//! scripts: every page works with JavaScript off). People sign in with a
//! staff token (`cairn hub token --role operator|auditor|admin`), kept in
//! an HttpOnly, SameSite=Strict cookie for the token's life; each page
//! checks it exactly as the API checks a bearer token. Pages: the fleet
//! (`fleet`), the review queues with resolve actions for the roles allowed
//! (`reviews`), the log and the audit trail (`log`), reports and artifacts
//! (`reports`).
//!
//! The HTML is written out here rather than with a template engine: a few
//! small pages, every value passing through one escaping function.

mod fleet;
mod log;
mod reports;
mod reviews;

use crate::error::AppError;
use crate::hub::HubState;
use axum::Router;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
pub use cairn_hub::report::html::escape;

/// The session cookie's name.
const COOKIE: &str = "cairn_session";
/// Largest form a page posts.
const FORM_BYTES_MAX: usize = 16 * 1024;

/// The dashboard's routes.
pub fn routes() -> Router<HubState> {
    Router::new()
        .route("/dashboard", get(fleet::page))
        .route("/dashboard/signin", get(signin_page).post(signin))
        .route("/dashboard/signout", post(signout))
        .route("/dashboard/reviews", get(reviews::list))
        .route("/dashboard/reviews/{id}", get(reviews::detail))
        .route("/dashboard/reviews/{id}/resolve", post(reviews::resolve))
        .route("/dashboard/log", get(log::page))
        .route("/dashboard/reports", get(reports::page).post(reports::make))
        .layer(axum::extract::DefaultBodyLimit::max(FORM_BYTES_MAX))
}

/// Who is signed in.
pub(crate) struct Staff {
    /// Their name (the token's subject).
    pub name: String,
    /// operator, auditor or admin.
    pub role: String,
}

impl Staff {
    /// Whether they may resolve review items.
    pub fn resolves(&self) -> bool {
        self.role == "operator" || self.role == "admin"
    }
}

/// The session's token as a bearer header, for the API's checks.
fn bearer_from_cookie(headers: &HeaderMap) -> HeaderMap {
    let mut bearer = HeaderMap::new();
    let token = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            pair.trim()
                .strip_prefix(&format!("{COOKIE}="))
                .map(String::from)
        });
    if let Some(value) =
        token.and_then(|token| HeaderValue::from_str(&format!("Bearer {token}")).ok())
    {
        bearer.insert(header::AUTHORIZATION, value);
    }
    bearer
}

/// The signed-in person, or a redirect to sign in.
pub(crate) fn staff(state: &HubState, headers: &HeaderMap) -> Result<Staff, Redirect> {
    let bearer = bearer_from_cookie(headers);
    let subject =
        crate::hub::staff_of(state, &bearer).map_err(|_| Redirect::to("/dashboard/signin"))?;
    Ok(subject)
}

/// A page in the dashboard's frame.
pub(crate) fn page(title: &str, who: Option<&Staff>, body: &str) -> Html<String> {
    let nav = match who {
        Some(who) => format!(
            "<nav><a href=\"/dashboard\">Fleet</a> <a href=\"/dashboard/reviews?open=true\">Reviews</a> \
             <a href=\"/dashboard/log\">Log</a> <a href=\"/dashboard/reports\">Reports</a> \
             <span class=\"who\">{} ({})</span> <form method=\"post\" action=\"/dashboard/signout\" class=\"inline\">\
             <button>Sign out</button></form></nav>",
            escape(&who.name),
            escape(&who.role)
        ),
        None => String::new(),
    };
    Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} · Cairn hub</title>\
         <style>body{{font-family:sans-serif;margin:1.5rem;color:#222}}nav a{{margin-right:1rem}}\
         .who{{color:#555;margin-left:2rem}}.inline{{display:inline}}table{{border-collapse:collapse}}\
         td,th{{border-bottom:1px solid #ddd;padding:.3rem .7rem;text-align:left;vertical-align:top}}\
         .offline{{color:#b03a2e;font-weight:bold}}.online{{color:#1e7d32;font-weight:bold}}\
         .side{{display:flex;gap:2rem}}.side pre{{background:#f4f4f4;padding:.5rem;max-width:40rem;overflow:auto}}\
         </style></head><body>{nav}<h1>{}</h1>\n{body}\n</body></html>\n",
        escape(title),
        escape(title)
    ))
}

/// A server fault as a page (logged once by `AppError`).
pub(crate) fn fault(error: AppError) -> Response {
    error.into_response()
}

async fn signin_page() -> Html<String> {
    page(
        "Sign in",
        None,
        "<p>Paste a staff token (<code>cairn --data HUB hub token --subject NAME --role operator|auditor|admin</code>).</p>\
         <form method=\"post\" action=\"/dashboard/signin\"><label>Token <input name=\"token\" size=\"80\" autocomplete=\"off\"></label> \
         <button>Sign in</button></form>",
    )
}

#[derive(serde::Deserialize)]
struct SignIn {
    token: String,
}

async fn signin(State(state): State<HubState>, Form(form): Form<SignIn>) -> Response {
    let token = form.token.trim().to_string();
    let mut bearer = HeaderMap::new();
    let checked = HeaderValue::from_str(&format!("Bearer {token}"))
        .ok()
        .map(|value| {
            bearer.insert(header::AUTHORIZATION, value);
            crate::hub::staff_of(&state, &bearer)
        });
    match checked {
        Some(Ok(_)) => {
            let cookie = format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/dashboard");
            ([(header::SET_COOKIE, cookie)], Redirect::to("/dashboard")).into_response()
        }
        _ => (
            StatusCode::UNAUTHORIZED,
            page(
                "Sign in",
                None,
                "<p class=\"offline\">That token is not a valid staff token of this hub (expired, or for another hub).</p>\
                 <p><a href=\"/dashboard/signin\">Try again</a></p>",
            ),
        )
            .into_response(),
    }
}

async fn signout() -> Response {
    let cookie = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/dashboard; Max-Age=0");
    (
        [(header::SET_COOKIE, cookie)],
        Redirect::to("/dashboard/signin"),
    )
        .into_response()
}

/// Milliseconds as a short age: `42 s`, `5 min`, `3 h`, `2 d`.
pub(crate) fn age(ms: u64) -> String {
    let seconds = ms / 1000;
    match seconds {
        0..=119 => format!("{seconds} s"),
        120..=7_199 => format!("{} min", seconds / 60),
        7_200..=172_799 => format!("{} h", seconds / 3600),
        _ => format!("{} d", seconds / 86_400),
    }
}
