//! Bearer tokens: who a request comes from.
//!
//! Tokens are never kept as text: a [`Token`] holds the SHA-256 digest and compares digests in
//! constant time ([`subtle`]), so neither the time taken nor a length difference tells a
//! guesser how close it came. Three kinds exist:
//!
//! - operator tokens (`CONFIG_SERVER_OPERATOR_TOKEN`), each with a name that the history
//!   records as who made a change: defaults, history, revert, `/devices`, and everything a
//!   device may do;
//! - fleet device tokens (`CONFIG_SERVER_DEVICE_TOKEN`): `GET`/`PUT /config/{device}` for any
//!   device that has no token of its own;
//! - per-device tokens, made by an operator (`POST /devices/{device}/token`) and kept in the
//!   store as digests: that one device only, and then the fleet token no longer works for it.
//!
//! With no operator and no fleet device token configured, everything is open ([`Caller::Open`]);
//! the settings refuse that beyond loopback.

use std::fmt;

use ring::rand::SecureRandom as _;
use subtle::ConstantTimeEq;

/// Shortest token accepted.
pub const TOKEN_MIN_LEN: usize = 16;
/// Longest token accepted.
pub const TOKEN_MAX_LEN: usize = 512;
/// The name of an operator token given without one.
pub const DEFAULT_OPERATOR_NAME: &str = "operator";
/// Who the history names for a device's own push.
pub const DEVICE_ACTOR: &str = "device";
/// Who the history names for a change made while no token is configured.
pub const ANONYMOUS_ACTOR: &str = "anonymous";

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// A secret, held as its SHA-256 digest.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    digest: [u8; 32],
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// A token from its text: 16 to 512 characters of the bearer-token alphabet
    /// (`A-Z a-z 0-9 - . _ ~ + /`, then `=` padding), so it travels in a header unchanged.
    pub fn new(text: &str) -> Result<Token, String> {
        check_token_text(text)?;
        Ok(Token::from_digest(sha256(text.as_bytes())))
    }

    /// A token from a stored digest.
    pub fn from_digest(digest: [u8; 32]) -> Token {
        Token { digest }
    }

    /// A token from its digest in hex, as the store keeps per-device tokens; `None` if it is
    /// not 64 hex digits.
    pub fn from_hex(hex: &str) -> Option<Token> {
        let bytes = hex.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut digest = [0u8; 32];
        for (i, pair) in bytes.chunks(2).enumerate() {
            let text = std::str::from_utf8(pair).ok()?;
            digest[i] = u8::from_str_radix(text, 16).ok()?;
        }
        Some(Token { digest })
    }

    /// The digest in hex, as the store keeps it.
    pub fn hex(&self) -> String {
        self.digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether `presented` (a digest of what a client sent) is this token, in time that does
    /// not depend on how much of it is right.
    pub fn matches(&self, presented: &Presented) -> bool {
        presented.digest.ct_eq(&self.digest).into()
    }
}

fn check_token_text(text: &str) -> Result<(), String> {
    let n = text.chars().count();
    if !(TOKEN_MIN_LEN..=TOKEN_MAX_LEN).contains(&n) {
        return Err(format!(
            "a token must be {TOKEN_MIN_LEN} to {TOKEN_MAX_LEN} characters long, got {n}; make \
             one with `openssl rand -hex 32`"
        ));
    }
    let body = text.trim_end_matches('=');
    if let Some(bad) = body
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '+' | '/')))
    {
        return Err(format!(
            "a token may only hold A-Z, a-z, 0-9 and - . _ ~ + / (then = padding), found {}",
            bad.escape_default()
        ));
    }
    Ok(())
}

/// A fresh random token for one device: 32 random bytes in hex.
pub fn generate() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| "the system random source failed".to_string())?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// What a client sent as its bearer token, digested once.
#[derive(Clone)]
pub struct Presented {
    digest: [u8; 32],
}

impl fmt::Debug for Presented {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Presented(<redacted>)")
    }
}

/// An operator token and the name the history gives its changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedToken {
    /// `[a-z0-9._-]`, 1 to 64 characters; never `device`.
    pub name: String,
    /// The secret.
    pub token: Token,
}

/// Parses a list of operator tokens: entries separated by commas or new lines, each `token`
/// (named `operator`) or `name:token`; blank lines and lines starting with `#` are ignored.
pub fn parse_named_tokens(text: &str) -> Result<Vec<NamedToken>, String> {
    let mut out: Vec<NamedToken> = Vec::new();
    for entry in entries(text) {
        let (name, secret) = match entry.split_once(':') {
            Some((name, secret)) => (name.trim(), secret.trim()),
            None => (DEFAULT_OPERATOR_NAME, entry),
        };
        check_name(name)?;
        if out.iter().any(|t| t.name == name) {
            return Err(format!(
                "the operator name {name:?} is given twice; give each token its own name \
                 (name:token)"
            ));
        }
        let token = Token::new(secret).map_err(|e| format!("token {name:?}: {e}"))?;
        out.push(NamedToken {
            name: name.to_string(),
            token,
        });
    }
    if out.is_empty() {
        return Err("holds no token".to_string());
    }
    Ok(out)
}

/// Parses a list of fleet device tokens: entries separated by commas or new lines (several let
/// a new token roll out before the old one is dropped); `#` lines are ignored.
pub fn parse_tokens(text: &str) -> Result<Vec<Token>, String> {
    let out = entries(text)
        .map(Token::new)
        .collect::<Result<Vec<_>, _>>()?;
    if out.is_empty() {
        return Err("holds no token".to_string());
    }
    Ok(out)
}

fn entries(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty())
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if !ok {
        return Err(format!(
            "operator name {:?} must be 1 to 64 characters of a-z, 0-9, . _ -",
            name.escape_default().to_string()
        ));
    }
    if name == DEVICE_ACTOR || name == ANONYMOUS_ACTOR {
        return Err(format!(
            "operator name {name:?} is reserved: the history uses it for other writers"
        ));
    }
    Ok(())
}

/// Who sent a request, as far as the configured tokens tell.
#[derive(Clone, Debug)]
pub enum Caller {
    /// No token is configured: everything is open (loopback only).
    Open,
    /// An operator token, by name.
    Operator(String),
    /// A fleet device token.
    Fleet,
    /// A token that is neither: it may be a device's own token, which the store knows.
    Unknown(Presented),
}

impl Caller {
    /// The name the history records for an operator-level write.
    pub fn operator_name(&self) -> &str {
        match self {
            Caller::Operator(name) => name,
            _ => ANONYMOUS_ACTOR,
        }
    }
}

/// Why a request was refused before any work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No usable `Authorization: Bearer` header while tokens are configured (401).
    #[error("this server requires a token: send Authorization: Bearer <token>")]
    Missing,
    /// The header is there but is not a bearer token (401).
    #[error("the Authorization header must be `Bearer <token>`")]
    Malformed,
    /// No configured or stored token matches (401).
    #[error("the token is not valid here")]
    Invalid,
    /// The token is valid but not for this (403); the text says why.
    #[error("{0}")]
    Forbidden(String),
}

/// The configured tokens.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tokens {
    /// Operator tokens.
    pub operators: Vec<NamedToken>,
    /// Fleet device tokens.
    pub devices: Vec<Token>,
}

impl Tokens {
    /// Whether no token is configured at all (the server is open).
    pub fn is_open(&self) -> bool {
        self.operators.is_empty() && self.devices.is_empty()
    }

    /// Who sent `authorization` (the header's value, if any).
    pub fn classify(&self, authorization: Option<&str>) -> Result<Caller, AuthError> {
        if self.is_open() {
            return Ok(Caller::Open);
        }
        let header = authorization.ok_or(AuthError::Missing)?;
        let (scheme, secret) = header.trim().split_once(' ').ok_or(AuthError::Malformed)?;
        if !scheme.eq_ignore_ascii_case("bearer") || secret.trim().is_empty() {
            return Err(AuthError::Malformed);
        }
        let presented = Presented {
            digest: sha256(secret.trim().as_bytes()),
        };
        // Every configured token is compared, so the time taken does not tell which matched.
        let mut operator: Option<&str> = None;
        for t in &self.operators {
            if t.token.matches(&presented) {
                operator = Some(&t.name);
            }
        }
        let mut fleet = false;
        for t in &self.devices {
            fleet |= t.matches(&presented);
        }
        Ok(match (operator, fleet) {
            (Some(name), _) => Caller::Operator(name.to_string()),
            (None, true) => Caller::Fleet,
            (None, false) => Caller::Unknown(presented),
        })
    }

    /// The caller of an operator route: an operator token (or the open server).
    pub fn operator(&self, authorization: Option<&str>) -> Result<Caller, AuthError> {
        match self.classify(authorization)? {
            c @ (Caller::Open | Caller::Operator(_)) => Ok(c),
            Caller::Fleet => Err(AuthError::Forbidden(
                "a device token cannot do this: use an operator token \
                 (CONFIG_SERVER_OPERATOR_TOKEN)"
                    .to_string(),
            )),
            // A device's own token may be what was sent; it is no operator token either way.
            Caller::Unknown(_) => Err(AuthError::Invalid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbb";
    const D: &str = "dddddddddddddddddddd";

    fn tokens() -> Tokens {
        Tokens {
            operators: parse_named_tokens(&format!("alice:{A}\nbob:{B}")).unwrap(),
            devices: parse_tokens(D).unwrap(),
        }
    }

    #[test]
    fn token_text_rules() {
        assert!(Token::new("short").unwrap_err().contains("16 to 512"));
        assert!(Token::new("aaaaaaaaaaaaaaaa aaaa")
            .unwrap_err()
            .contains("may only hold"));
        assert!(Token::new("YWJjZGVmZ2hpamtsbW5vcA==").is_ok());
        let t = Token::new(A).unwrap();
        assert_eq!(Token::from_hex(&t.hex()), Some(t.clone()));
        assert_eq!(format!("{t:?}"), "Token(<redacted>)");
        assert_eq!(Token::from_hex("zz"), None);
    }

    #[test]
    fn named_lists_and_their_mistakes() {
        let list = parse_named_tokens(&format!("# ops\n{A}, ci:{B}\n")).unwrap();
        assert_eq!(list[0].name, "operator");
        assert_eq!(list[1].name, "ci");
        assert!(parse_named_tokens(&format!("x:{A},x:{B}"))
            .unwrap_err()
            .contains("twice"));
        assert!(parse_named_tokens(&format!("device:{A}"))
            .unwrap_err()
            .contains("reserved"));
        assert!(parse_named_tokens(&format!("Alice:{A}"))
            .unwrap_err()
            .contains("a-z"));
        assert!(parse_named_tokens(" \n# none\n")
            .unwrap_err()
            .contains("no token"));
        assert_eq!(parse_tokens(&format!("{A},{B}")).unwrap().len(), 2);
    }

    #[test]
    fn callers_are_told_apart() {
        let t = tokens();
        let bearer = |s: &str| format!("Bearer {s}");
        assert!(matches!(t.classify(Some(&bearer(A))), Ok(Caller::Operator(n)) if n == "alice"));
        assert!(matches!(t.classify(Some(&bearer(B))), Ok(Caller::Operator(n)) if n == "bob"));
        assert!(matches!(t.classify(Some(&bearer(D))), Ok(Caller::Fleet)));
        assert!(matches!(
            t.classify(Some("bearer zzzzzzzzzzzzzzzzzzzz")),
            Ok(Caller::Unknown(_))
        ));
        assert_eq!(t.classify(None).unwrap_err(), AuthError::Missing);
        assert_eq!(
            t.classify(Some("Basic abc")).unwrap_err(),
            AuthError::Malformed
        );
        assert!(matches!(
            t.operator(Some(&bearer(D))),
            Err(AuthError::Forbidden(_))
        ));
        assert_eq!(
            t.operator(Some("Bearer nope")).unwrap_err(),
            AuthError::Invalid
        );
        assert!(matches!(Tokens::default().classify(None), Ok(Caller::Open)));
    }

    #[test]
    fn a_stored_device_token_matches_what_the_device_sends() {
        let own = generate().unwrap();
        assert_eq!(own.len(), 64);
        let stored = Token::new(&own).unwrap().hex();
        let Ok(Caller::Unknown(presented)) = tokens().classify(Some(&format!("Bearer {own}")))
        else {
            panic!("a per-device token is unknown to the configured ones")
        };
        assert!(Token::from_hex(&stored).unwrap().matches(&presented));
        assert!(!Token::new(A).unwrap().matches(&presented));
    }
}
