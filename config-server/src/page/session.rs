//! Browser sessions of the fleet page, kept in memory.
//!
//! A browser cannot attach a bearer header to a link or a form, so the page signs in once:
//! `POST /login` checks an operator token and starts a [`Session`], whose random id travels in
//! an `HttpOnly; SameSite=Strict` cookie. The store keeps only the id's SHA-256 digest, the
//! operator's name (the history records it), a per-session CSRF token that every form carries
//! back, the expiry, and one message for the next page ("switched ...").
//!
//! Sessions live in this process only: a restart signs everyone out, and several servers
//! behind one address need sticky routing for the page (the JSON API is unaffected). The
//! number of sessions is bounded; the one closest to expiry makes room for a new one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ring::rand::SecureRandom as _;
use subtle::ConstantTimeEq;

use crate::auth::sha256;

/// How long a session lasts after sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 60 * 60);
/// Most sessions kept at once.
pub const MAX_SESSIONS: usize = 1024;
/// The cookie that carries the session id.
pub const COOKIE: &str = "edge_metrics_session";

/// A message shown once on the next page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flash {
    /// Whether it reports a success (else a refusal).
    pub ok: bool,
    /// The text, unescaped.
    pub text: String,
}

/// What a request learns from its session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// Who signed in: an operator token's name, or `anonymous` on an open server.
    pub operator: String,
    /// The token every form of this session carries (64 hex digits).
    pub csrf: String,
}

#[derive(Debug)]
struct Entry {
    session: Session,
    expires: Instant,
    flash: Option<Flash>,
}

/// The sessions of this process.
#[derive(Debug)]
pub struct Sessions {
    map: Mutex<HashMap<[u8; 32], Entry>>,
    ttl: Duration,
    max: usize,
}

impl Default for Sessions {
    fn default() -> Sessions {
        Sessions::new(SESSION_TTL, MAX_SESSIONS)
    }
}

/// 32 random bytes in hex.
fn random_hex() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| "the system random source failed".to_string())?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Sessions {
    /// Sessions that last `ttl`, at most `max` at once.
    pub fn new(ttl: Duration, max: usize) -> Sessions {
        Sessions {
            map: Mutex::new(HashMap::new()),
            ttl,
            max: max.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a session for `operator` at `now`; returns its id (the cookie's value).
    pub fn start(&self, operator: &str, now: Instant) -> Result<(String, Session), String> {
        let id = random_hex()?;
        let session = Session {
            operator: operator.to_string(),
            csrf: random_hex()?,
        };
        let mut map = self.lock();
        map.retain(|_, e| e.expires > now);
        while map.len() >= self.max {
            let Some(oldest) = map.iter().min_by_key(|(_, e)| e.expires).map(|(k, _)| *k) else {
                break;
            };
            map.remove(&oldest);
        }
        map.insert(
            sha256(id.as_bytes()),
            Entry {
                session: session.clone(),
                expires: now + self.ttl,
                flash: None,
            },
        );
        Ok((id, session))
    }

    /// The live session of cookie value `id`; an expired one is dropped.
    pub fn get(&self, id: &str, now: Instant) -> Option<Session> {
        let key = sha256(id.as_bytes());
        let mut map = self.lock();
        match map.get(&key) {
            Some(e) if e.expires > now => Some(e.session.clone()),
            Some(_) => {
                map.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends the session of `id` (signing out).
    pub fn end(&self, id: &str) {
        self.lock().remove(&sha256(id.as_bytes()));
    }

    /// Leaves `flash` for the next page of session `id`.
    pub fn set_flash(&self, id: &str, flash: Flash) {
        if let Some(e) = self.lock().get_mut(&sha256(id.as_bytes())) {
            e.flash = Some(flash);
        }
    }

    /// Takes the message left for session `id`, if any.
    pub fn take_flash(&self, id: &str) -> Option<Flash> {
        self.lock()
            .get_mut(&sha256(id.as_bytes()))
            .and_then(|e| e.flash.take())
    }

    /// How many sessions are kept (expired ones included until the next start).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no session is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether a form's `presented` CSRF token is the session's, compared in constant time.
pub fn csrf_matches(session: &Session, presented: &str) -> bool {
    let (a, b) = (session.csrf.as_bytes(), presented.as_bytes());
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// The cookie's value in a `Cookie` header, if present.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name && !v.is_empty()).then_some(v)
    })
}

/// The `Set-Cookie` value that hands session `id` to the browser: `HttpOnly` (no script reads
/// it), `SameSite=Strict` (no other site's page sends it), `Path=/`, expiring with the session;
/// `Secure` when the request came over HTTPS through a proxy.
pub fn set_cookie(id: &str, ttl: Duration, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        ttl.as_secs()
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_by_its_id_until_it_expires() {
        let s = Sessions::new(Duration::from_secs(60), 10);
        let t0 = Instant::now();
        let (id, session) = s.start("alice", t0).unwrap();
        assert_eq!(id.len(), 64);
        assert_eq!(session.csrf.len(), 64);
        assert_ne!(
            id, session.csrf,
            "the cookie and the form token are different secrets"
        );
        assert_eq!(s.get(&id, t0 + Duration::from_secs(59)), Some(session));
        assert_eq!(s.get("not-a-session", t0), None);
        assert_eq!(s.get(&id, t0 + Duration::from_secs(60)), None, "expired");
        assert!(s.is_empty(), "an expired session is dropped when met");
    }

    #[test]
    fn signing_out_ends_the_session() {
        let s = Sessions::default();
        let now = Instant::now();
        let (id, _) = s.start("alice", now).unwrap();
        s.end(&id);
        assert_eq!(s.get(&id, now), None);
    }

    #[test]
    fn the_number_of_sessions_is_bounded() {
        let s = Sessions::new(Duration::from_secs(60), 3);
        let t0 = Instant::now();
        let first = s.start("a", t0).unwrap().0;
        for i in 1..=5 {
            s.start("a", t0 + Duration::from_secs(i)).unwrap();
        }
        assert_eq!(s.len(), 3);
        assert_eq!(s.get(&first, t0), None, "the oldest made room");
    }

    #[test]
    fn a_flash_is_shown_once() {
        let s = Sessions::default();
        let (id, _) = s.start("alice", Instant::now()).unwrap();
        let flash = Flash {
            ok: true,
            text: "done".into(),
        };
        s.set_flash(&id, flash.clone());
        assert_eq!(s.take_flash(&id), Some(flash));
        assert_eq!(s.take_flash(&id), None);
    }

    #[test]
    fn csrf_tokens_must_match_exactly() {
        let s = Sessions::default();
        let (_, session) = s.start("alice", Instant::now()).unwrap();
        let other = s.start("alice", Instant::now()).unwrap().1;
        assert!(csrf_matches(&session, &session.csrf.clone()));
        assert!(!csrf_matches(&session, &other.csrf));
        assert!(!csrf_matches(&session, ""));
        assert!(!csrf_matches(&session, &session.csrf[..63]));
        assert!(!csrf_matches(&session, &format!("{}0", session.csrf)));
    }

    #[test]
    fn cookies_are_read_and_written_strictly() {
        let h = "theme=dark; edge_metrics_session=abc123; other=x";
        assert_eq!(cookie_value(h, COOKIE), Some("abc123"));
        assert_eq!(cookie_value("edge_metrics_session=", COOKIE), None);
        assert_eq!(cookie_value("xedge_metrics_session=1", COOKIE), None);
        let c = set_cookie("abc", Duration::from_secs(60), false);
        assert_eq!(
            c,
            "edge_metrics_session=abc; Path=/; HttpOnly; SameSite=Strict; Max-Age=60"
        );
        assert!(set_cookie("abc", Duration::from_secs(60), true).ends_with("; Secure"));
        assert!(clear_cookie().contains("Max-Age=0"));
    }
}
