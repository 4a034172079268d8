//! cpppo's web API over HTTP (tiny_http), on a thread of its own, for a simulated
//! controller served by any runtime.
//!
//! [`serve_web`] takes the [`Serving`] handle of a running `Server<Controller>` (from this
//! runtime, smol or mio) and answers:
//!
//! - `GET /api/...`: [`cpppo_core::web`] parses the path, the command runs on the live
//!   server through [`Serving::with_server`], and the reply is its JSON; a bad path or
//!   value is a 4xx with the same JSON shape (`command.success` false, the reason in
//!   `command.message`). After an EOF, disable or done, the answer waits (at most
//!   `server.control.timeout`) until the connections have acted on it.
//! - A browser (`Accept: text/html`) gets the same JSON in a minimal HTML page, as
//!   cpppo answers; the page's own requests and `curl` get JSON.
//! - `GET /`: a page with a live table of the tags (polling the API), where a value can
//!   be edited in place, an error code forced, connections dropped and the delay changed.
//!
//! `server/control/done/true` stops the server: [`WebHandle::wait`] then returns its
//! state. The adapter knows no protocol: every decision is in [`cpppo_core::web`].

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cpppo_core::controller::Controller;
use cpppo_core::engine::{Serving, StopFn};
use cpppo_core::enip::server::Server;
use cpppo_core::web::{self, ApiData, ApiReply, CommandOutcome};
use tiny_http::{Header, Method, Request, Response};
use tracing::{debug, warn};

/// The simulated controller the web API drives.
pub type Simulator = Server<Controller>;

/// The page served at `/`.
pub const PAGE: &str = include_str!("web.html");

/// How often the HTTP thread looks whether it was asked to stop.
const STOP_CHECK: Duration = Duration::from_millis(50);
/// How often a settling answer looks whether the connections have acted.
const SETTLE_POLL: Duration = Duration::from_millis(10);
/// How long to wait for a command to run on the server before giving up on it.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP status of a method other than GET or POST.
const HTTP_METHOD_NOT_ALLOWED: u16 = 405;
/// HTTP status when the server state could not be reached (it has stopped).
const HTTP_UNAVAILABLE: u16 = 503;

/// The web API running: its address, and how to stop it or wait for the server's end.
pub struct WebHandle {
    local: SocketAddr,
    stopping: Arc<AtomicBool>,
    http: Arc<tiny_http::Server>,
    stop_server: StopFn,
    thread: JoinHandle<io::Result<Simulator>>,
}

impl std::fmt::Debug for WebHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebHandle")
            .field("local", &self.local)
            .field("stopping", &self.stopping)
            .finish_non_exhaustive()
    }
}

impl WebHandle {
    /// The address the API listens on (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Stops the server and the web API from any thread (a signal handler, a test).
    pub fn stopper(&self) -> StopFn {
        let stopping = self.stopping.clone();
        let http = self.http.clone();
        let stop_server = self.stop_server.clone();
        Arc::new(move || {
            stopping.store(true, Ordering::Release);
            stop_server();
            http.unblock();
        })
    }

    /// Wait until the server stops (`server/control/done`, or a [`stopper`](Self::stopper)),
    /// then return its state.
    pub fn wait(self) -> io::Result<Simulator> {
        self.thread
            .join()
            .map_err(|_| io::Error::other("the web API thread panicked"))?
    }

    /// Stop the server and the web API, and return the server's state.
    pub fn shutdown(self) -> io::Result<Simulator> {
        (self.stopper())();
        self.wait()
    }
}

/// Serve the web API of `serving` on `addr` (port 0 picks a free one) from a new thread,
/// which then owns the handle. Binding happens before this returns, so an address in use
/// is an error here.
pub fn serve_web(addr: SocketAddr, serving: Box<dyn Serving<Simulator>>) -> io::Result<WebHandle> {
    let http = tiny_http::Server::http(addr).map_err(|e| io::Error::other(e.to_string()))?;
    let local = http
        .server_addr()
        .to_ip()
        .ok_or_else(|| io::Error::other("the web API is not on an IP address"))?;
    let http = Arc::new(http);
    let stopping = Arc::new(AtomicBool::new(false));
    let stop_server = serving.stopper();
    let thread = {
        let (http, stopping) = (http.clone(), stopping.clone());
        thread::Builder::new()
            .name(format!("web {local}"))
            .spawn(move || run(&http, &stopping, serving))?
    };
    debug!(%local, "web API serving");
    Ok(WebHandle {
        local,
        stopping,
        http,
        stop_server,
        thread,
    })
}

fn run(
    http: &tiny_http::Server,
    stopping: &AtomicBool,
    serving: Box<dyn Serving<Simulator>>,
) -> io::Result<Simulator> {
    while !stopping.load(Ordering::Acquire) {
        match http.recv_timeout(STOP_CHECK) {
            Ok(Some(request)) => {
                if answer(request, &*serving) {
                    debug!("done: stopping");
                    break;
                }
            }
            Ok(None) => {}
            Err(error) => {
                warn!(%error, "web API receive failed");
                thread::sleep(STOP_CHECK);
            }
        }
    }
    serving.wait()
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn header(name: &str, value: &str) -> Option<Header> {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

fn respond(request: Request, status: u16, content_type: &str, body: String) {
    let mut response = Response::from_string(body).with_status_code(status);
    for h in [
        header("Content-Type", content_type),
        header("Cache-Control", "no-cache"),
    ]
    .into_iter()
    .flatten()
    {
        response.add_header(h);
    }
    if let Err(error) = request.respond(response) {
        debug!(%error, "web API reply not sent");
    }
}

/// Whether the client prefers HTML (a browser navigating to an API path), as cpppo
/// answers browsers: the JSON in a minimal page.
fn wants_html(request: &Request) -> bool {
    request
        .headers()
        .iter()
        .any(|h| h.field.equiv("Accept") && h.value.as_str().contains("text/html"))
}

/// The JSON `body` in a minimal HTML page.
fn html_page(title: &str, body: &str) -> String {
    let escape = |text: &str| {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>{}</title></head>\n\
         <body>\n<p><a href=\"/\">live tag page</a></p>\n<pre>{}</pre>\n</body>\n</html>\n",
        escape(title),
        escape(body)
    )
}

fn respond_json(request: Request, status: u16, reply: &ApiReply) {
    match serde_json::to_string_pretty(reply) {
        Ok(body) if wants_html(&request) => {
            let title = request.url().to_string();
            respond(
                request,
                status,
                "text/html; charset=utf-8",
                html_page(&title, &body),
            );
        }
        Ok(body) => respond(request, status, "application/json", body),
        Err(error) => respond(
            request,
            500,
            "text/plain; charset=utf-8",
            format!("cannot encode the reply: {error}"),
        ),
    }
}

fn respond_error(request: Request, status: u16, message: &str, since: Option<f64>) {
    let reply = ApiReply {
        alarm: Vec::new(),
        command: CommandOutcome {
            message: Some(message.to_string()),
            success: Some(false),
        },
        data: ApiData::default(),
        since,
        until: unix_now(),
    };
    respond_json(request, status, &reply);
}

/// Run `f` on the live server and bring its result back.
fn on_server<R: Send + 'static>(
    serving: &dyn Serving<Simulator>,
    f: impl FnOnce(&mut Simulator) -> R + Send + 'static,
) -> Option<R> {
    let (tx, rx) = mpsc::channel();
    serving
        .with_server(Box::new(move |server| {
            let _ = tx.send(f(server));
        }))
        .ok()?;
    rx.recv_timeout(COMMAND_TIMEOUT).ok()
}

/// Answer one HTTP request; true when the server is done.
fn answer(request: Request, serving: &dyn Serving<Simulator>) -> bool {
    let url = request.url().to_string();
    debug!(method = %request.method(), %url, "web request");
    if !matches!(request.method(), Method::Get | Method::Head | Method::Post) {
        respond_error(
            request,
            HTTP_METHOD_NOT_ALLOWED,
            "only GET and POST are served",
            None,
        );
        return false;
    }
    let path = url.split('?').next().unwrap_or_default();
    if path == "/" || path == "/index.html" {
        respond(request, 200, "text/html; charset=utf-8", PAGE.to_string());
        return false;
    }
    let parsed = match web::parse_request(&url) {
        Ok(parsed) => parsed,
        Err(error) => {
            let reply = ApiReply::failure(&error, None, unix_now());
            respond_json(request, error.http_status(), &reply);
            return false;
        }
    };
    let since = parsed.since;
    let settle = web::needs_settling(&parsed);
    let outcome = on_server(serving, move |server| {
        let reply = web::apply(server, &parsed, unix_now());
        (reply, server.is_done(), server.faults.timeout)
    });
    let Some((reply, done, timeout)) = outcome else {
        respond_error(request, HTTP_UNAVAILABLE, "the server has stopped", since);
        return true;
    };
    match reply {
        Ok(reply) => {
            if settle && !done {
                if let Some(timeout) = timeout {
                    wait_settled(serving, timeout);
                }
            }
            respond_json(request, 200, &reply);
        }
        Err(error) => {
            let reply = ApiReply::failure(&error, since, unix_now());
            respond_json(request, error.http_status(), &reply);
        }
    }
    done
}

/// Wait until no connection has yet to act on the fault settings, at most `timeout`.
fn wait_settled(serving: &dyn Serving<Simulator>, timeout: Duration) {
    let give_up = Instant::now() + timeout;
    while Instant::now() < give_up {
        match on_server(serving, |server| server.faults_pending()) {
            Some(true) => thread::sleep(SETTLE_POLL),
            _ => return,
        }
    }
    debug!(?timeout, "connections still acting on the change");
}
