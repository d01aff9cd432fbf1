//! Storage: one trait, [`Store`], with a SQLite ([`sqlite`]) and a PostgreSQL ([`postgres`])
//! backend, and the migrations both apply at start.
//!
//! A [`Store`] runs a closure in one transaction over a [`Tx`], a handful of plain reads and
//! writes. The rules (layers, versions, the race) live above, in `service`, and are the same
//! whatever the backend; each backend only maps these calls to SQL. Both are synchronous and
//! are called from the blocking pool.
//!
//! Migrations are plain SQL files under `store/migrations/`, numbered, embedded in the binary,
//! the same text for both databases; each is applied once, in order, in a transaction, and
//! recorded in `schema_migrations` (version, name, time). A database whose schema is newer
//! than this binary knows is refused.
//!
//! Writers take turns: a change first raises the store's revision ([`Tx::next_revision`]),
//! which locks that one row in PostgreSQL until commit; SQLite writes under `BEGIN IMMEDIATE`.

pub mod postgres;
pub mod sqlite;

use serde_json::Value;

/// The migrations, in order: (version, name, SQL).
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("migrations/0001_initial.sql")),
    (
        2,
        "device_listing",
        include_str!("migrations/0002_device_listing.sql"),
    ),
];

/// The migrations a database at schema version `applied` lacks, in order. A schema newer
/// than this binary knows is refused: its tables may mean something this code does not.
pub(crate) fn pending_migrations(
    url: &str,
    applied: i64,
) -> Result<&'static [(i64, &'static str, &'static str)], StoreError> {
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    if applied > known {
        return Err(StoreError::TooNew {
            url: url.to_string(),
            found: applied,
            known,
        });
    }
    let first = MIGRATIONS
        .iter()
        .position(|m| m.0 > applied)
        .unwrap_or(MIGRATIONS.len());
    Ok(&MIGRATIONS[first..])
}

/// The schema table both backends create first.
pub(crate) const SCHEMA_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (\
     version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)";

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be opened or reached.
    #[error("cannot open the database {url}: {reason}")]
    Open {
        /// The URL, password hidden.
        url: String,
        /// What failed and what to check.
        reason: String,
    },
    /// The schema is newer than this binary.
    #[error("the database {url} has schema version {found}, newer than this server knows ({known}); run a newer edge-metrics-config-server")]
    TooNew {
        /// The URL, password hidden.
        url: String,
        /// The version in the database.
        found: i64,
        /// The newest version this binary has.
        known: i64,
    },
    /// A migration failed; the database keeps the schema it had.
    #[error("migration {version} ({name}) failed on {url}: {reason}")]
    Migration {
        /// The URL, password hidden.
        url: String,
        /// Which migration.
        version: i64,
        /// Its name.
        name: &'static str,
        /// The database's message.
        reason: String,
    },
    /// A query failed.
    #[error("{backend} query failed: {reason}")]
    Query {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// The database's message.
        reason: String,
    },
    /// Stored data is not what this server wrote (hand-edited rows, say).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The transaction was rolled back on purpose (the operation refused the request).
    #[error("rolled back")]
    Rollback,
}

/// A database URL as given with `--database`, checked before anything is opened.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `sqlite://<path>`: a file, created when absent.
    Sqlite(std::path::PathBuf),
    /// `postgres://user:pass@host:port/db` (or `postgresql://`).
    Postgres(String),
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// The default database: a file in the working directory.
pub const DEFAULT_DATABASE: &str = "sqlite://./config-server.db";

impl DatabaseUrl {
    /// Parses `sqlite://PATH` or `postgres://...`; the error says what is accepted.
    pub fn parse(text: &str) -> Result<DatabaseUrl, String> {
        let text = text.trim();
        if let Some(path) = text.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(format!(
                    "`{text}` names no file; use e.g. {DEFAULT_DATABASE} or sqlite:///var/lib/edge-metrics/config-server.db"
                ));
            }
            return Ok(DatabaseUrl::Sqlite(path.into()));
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            text.parse::<::postgres::Config>().map_err(|e| {
                format!(
                    "`{}` is not a usable PostgreSQL URL: {e} (use postgres://user:pass@host:5432/db)",
                    redact(text)
                )
            })?;
            return Ok(DatabaseUrl::Postgres(text.to_string()));
        }
        Err(format!(
            "`{}` is not a database URL: use sqlite://PATH (e.g. {DEFAULT_DATABASE}) or postgres://user:pass@host:5432/db",
            redact(text)
        ))
    }

    /// The backend's name, as metrics and `/health` show it.
    pub fn backend(&self) -> &'static str {
        match self {
            DatabaseUrl::Sqlite(_) => "sqlite",
            DatabaseUrl::Postgres(_) => "postgres",
        }
    }

    /// The URL with any password replaced by `***`, for logs and messages.
    pub fn redacted(&self) -> String {
        match self {
            DatabaseUrl::Sqlite(p) => format!("sqlite://{}", p.display()),
            DatabaseUrl::Postgres(u) => redact(u),
        }
    }

    /// Opens the store and applies the migrations it lacks.
    pub fn open(&self) -> Result<Box<dyn Store>, StoreError> {
        Ok(match self {
            DatabaseUrl::Sqlite(path) => Box::new(sqlite::SqliteStore::open(path)?),
            DatabaseUrl::Postgres(url) => Box::new(postgres::PgStore::open(url)?),
        })
    }
}

/// `scheme://user:secret@host` → `scheme://user:***@host`; also `password=...` in the query.
pub fn redact(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..]
            .find(['/', '?'])
            .map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = &out[rest_start..rest_start + at];
            if let Some(colon) = userinfo.find(':') {
                out.replace_range(rest_start + colon + 1..rest_start + at, "***");
            }
        }
    }
    if let Some(i) = out.find("password=") {
        let start = i + "password=".len();
        let end = out[start..].find('&').map_or(out.len(), |j| start + j);
        out.replace_range(start..end, "***");
    }
    out
}

/// One stored layer.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// The layer: a JSON object.
    pub body: Value,
    /// Its version: the revision of its last change.
    pub rev: i64,
    /// When it last changed (ms since the epoch).
    pub updated_at: i64,
    /// Who changed it last.
    pub updated_by: String,
}

/// One change of a document.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryEntry {
    /// The revision this change made: the document's version after it.
    pub rev: i64,
    /// Which document (`fleet`, `type:...`, `device:...`).
    pub doc: String,
    /// When (ms since the epoch).
    pub at: i64,
    /// Who: an operator token's name, `device`, or `anonymous`.
    pub actor: String,
    /// `put` (an operator wrote the layer), `push` (a `PUT /config/{device}`), `revert`.
    pub action: String,
    /// For a revert: the version restored.
    pub reverted_to: Option<i64>,
    /// The document before (`None`: it did not exist).
    pub before: Option<Value>,
    /// The document after.
    pub after: Value,
    /// The leaf changes, as a JSON list of `{key, path, before, after}`.
    pub changes: Value,
}

/// What the store knows of one device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceRow {
    /// The device id.
    pub device: String,
    /// Its device type: what it says in `X-Edge-Metrics-Device-Type`, else its config's.
    pub device_type: Option<String>,
    /// Its exporter version, from `X-Edge-Metrics-Version`.
    pub exporter_version: Option<String>,
    /// First request (ms since the epoch).
    pub first_seen_at: i64,
    /// Last `GET /config/{device}` by the device.
    pub last_fetch_at: Option<i64>,
    /// Last `PUT /config/{device}` by the device.
    pub last_push_at: Option<i64>,
    /// The config version (store revision) its last successful fetch returned.
    pub fetched_rev: Option<i64>,
}

/// Which devices a listing wants; every field narrows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceFilter {
    /// Only devices whose stored type (`DeviceRow::device_type`) is this.
    pub device_type: Option<String>,
    /// Only devices that fetched or pushed at or after [`seen_since`](Self::seen_since)
    /// (`Some(true)`), or that did not (`Some(false)`, never seen included).
    pub seen_recently: Option<bool>,
    /// The start of the "seen recently" window (ms since the epoch).
    pub seen_since: i64,
}

/// Where a page of devices starts, by device id (keyset, so inserts elsewhere move nothing).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Position {
    /// From the first device.
    #[default]
    Start,
    /// The devices after this id.
    After(String),
    /// The devices just before this id (the page before one that starts there).
    Before(String),
}

/// A row count as SQL's integer type.
pub(crate) fn limit_i64(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// The columns of a `devices` row, in the order both backends read them.
pub(crate) const DEVICE_COLUMNS: &str = "device, device_type, exporter_version, first_seen_at, \
     last_fetch_at, last_push_at, fetched_rev";

/// The query of one page of devices (`filter`, `position`, at most `limit` rows) with its
/// parameters, and whether the rows come newest first and must be reversed (a page before a
/// cursor is read backwards so that `LIMIT` keeps the rows next to it).
pub(crate) fn device_page_query(
    filter: &DeviceFilter,
    position: &Position,
    limit: usize,
    placeholder: fn(usize) -> String,
) -> (String, Vec<SqlParam>, bool) {
    let (clause, mut params) = device_where(filter, position, placeholder);
    let backwards = matches!(position, Position::Before(_));
    let order = if backwards { "DESC" } else { "ASC" };
    params.push(SqlParam::Int(limit_i64(limit)));
    let sql = format!(
        "SELECT {DEVICE_COLUMNS} FROM devices{clause} ORDER BY device {order} LIMIT {}",
        placeholder(params.len())
    );
    (sql, params, backwards)
}

/// A query parameter of [`device_page_query`] and [`device_where`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SqlParam {
    Text(String),
    Int(i64),
}

/// The `WHERE` clause (with a leading ` WHERE`, or empty) of `filter` and `position`, its
/// parameters numbered from 1 with `placeholder(n)` (`?n` or `$n`). Only the conditions in use
/// are written, so each query shape can use the primary key's order.
pub(crate) fn device_where(
    filter: &DeviceFilter,
    position: &Position,
    placeholder: fn(usize) -> String,
) -> (String, Vec<SqlParam>) {
    let mut clauses: Vec<String> = Vec::new();
    let mut params: Vec<SqlParam> = Vec::new();
    let mut bind = |p: SqlParam| {
        params.push(p);
        placeholder(params.len())
    };
    match position {
        Position::Start => {}
        Position::After(id) => {
            clauses.push(format!("device > {}", bind(SqlParam::Text(id.clone()))))
        }
        Position::Before(id) => {
            clauses.push(format!("device < {}", bind(SqlParam::Text(id.clone()))))
        }
    }
    if let Some(t) = &filter.device_type {
        clauses.push(format!("device_type = {}", bind(SqlParam::Text(t.clone()))));
    }
    if let Some(recent) = filter.seen_recently {
        let since = bind(SqlParam::Int(filter.seen_since));
        clauses.push(if recent {
            format!("(last_fetch_at >= {since} OR last_push_at >= {since})")
        } else {
            format!(
                "(COALESCE(last_fetch_at, -1) < {since} AND COALESCE(last_push_at, -1) < {since})"
            )
        });
    }
    let sql = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    (sql, params)
}

/// The reads and writes an operation makes inside one transaction.
pub trait Tx {
    /// Raises the store's revision and returns the new value. Call it before reading what a
    /// change depends on: from here on, other writers wait until this transaction ends.
    fn next_revision(&mut self) -> Result<i64, StoreError>;
    /// The store's current revision.
    fn revision(&mut self) -> Result<i64, StoreError>;
    /// The documents among `keys` that exist, read together (one consistent view).
    fn documents(&mut self, keys: &[&str]) -> Result<Vec<(String, Document)>, StoreError>;
    /// Every document whose key starts with `prefix`.
    fn documents_with_prefix(
        &mut self,
        prefix: &str,
    ) -> Result<Vec<(String, Document)>, StoreError>;
    /// Creates or replaces a document.
    fn put_document(&mut self, key: &str, doc: &Document) -> Result<(), StoreError>;
    /// Deletes a document; whether it existed.
    fn delete_document(&mut self, key: &str) -> Result<bool, StoreError>;
    /// Appends a history entry.
    fn add_history(&mut self, entry: &HistoryEntry) -> Result<(), StoreError>;
    /// A document's history, newest first: at most `limit` entries older than `before`.
    fn history(
        &mut self,
        key: &str,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError>;
    /// The entry of `key` that made version `rev`.
    fn history_entry(&mut self, key: &str, rev: i64) -> Result<Option<HistoryEntry>, StoreError>;
    /// The entries of the documents `keys` made after revision `after`, oldest first.
    fn history_since(&mut self, keys: &[&str], after: i64)
        -> Result<Vec<HistoryEntry>, StoreError>;
    /// One device's row.
    fn device(&mut self, device: &str) -> Result<Option<DeviceRow>, StoreError>;
    /// Creates or replaces a device's row.
    fn put_device(&mut self, row: &DeviceRow) -> Result<(), StoreError>;
    /// Every device's row, by id.
    fn devices(&mut self) -> Result<Vec<DeviceRow>, StoreError>;
    /// At most `limit` rows that match `filter`, from `position`, in id order (for
    /// [`Position::Before`], the `limit` rows just before it, still in id order).
    fn list_devices(
        &mut self,
        filter: &DeviceFilter,
        position: &Position,
        limit: usize,
    ) -> Result<Vec<DeviceRow>, StoreError>;
    /// How many rows match `filter`.
    fn count_matching(&mut self, filter: &DeviceFilter) -> Result<u64, StoreError>;
    /// The devices among `devices` that have a token of their own.
    fn tokens_among(&mut self, devices: &[&str]) -> Result<Vec<String>, StoreError>;
    /// Deletes a device's row; whether it existed.
    fn delete_device(&mut self, device: &str) -> Result<bool, StoreError>;
    /// The digest (hex) of a device's own token.
    fn device_token(&mut self, device: &str) -> Result<Option<String>, StoreError>;
    /// Sets a device's own token (its digest in hex).
    fn put_device_token(
        &mut self,
        device: &str,
        digest: &str,
        at: i64,
        by: &str,
    ) -> Result<(), StoreError>;
    /// Removes a device's own token; whether it had one.
    fn delete_device_token(&mut self, device: &str) -> Result<bool, StoreError>;
    /// (devices whose last fetch or push is at or after `since`, all devices).
    fn count_devices(&mut self, since: i64) -> Result<(u64, u64), StoreError>;
}

/// A storage backend.
pub trait Store: Send + Sync {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// Runs `work` in one transaction: committed when it returns `Ok`, rolled back otherwise.
    fn transaction(
        &self,
        work: &mut dyn FnMut(&mut dyn Tx) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
    /// Whether the database answers a trivial query.
    fn ping(&self) -> Result<(), StoreError>;
    /// [`Store::transaction`] for bookkeeping whose loss in a power cut harms nothing (a
    /// device's fetch: when it fetched and which version it got). A backend may commit it
    /// without waiting for the disk; a crash of the server process still loses nothing.
    fn bookkeeping(
        &self,
        work: &mut dyn FnMut(&mut dyn Tx) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.transaction(work)
    }
}

/// Runs `work` in one transaction of `store` and returns what it returns. `work` answers
/// `Ok(Err(e))` to refuse without writing: the transaction is rolled back and `e` returned.
pub fn with_tx<T, E>(
    store: &dyn Store,
    work: impl FnMut(&mut dyn Tx) -> Result<Result<T, E>, StoreError>,
) -> Result<Result<T, E>, StoreError> {
    run_tx(store, false, work)
}

/// [`with_tx`] as [`Store::bookkeeping`].
pub fn with_bookkeeping_tx<T, E>(
    store: &dyn Store,
    work: impl FnMut(&mut dyn Tx) -> Result<Result<T, E>, StoreError>,
) -> Result<Result<T, E>, StoreError> {
    run_tx(store, true, work)
}

fn run_tx<T, E>(
    store: &dyn Store,
    bookkeeping: bool,
    mut work: impl FnMut(&mut dyn Tx) -> Result<Result<T, E>, StoreError>,
) -> Result<Result<T, E>, StoreError> {
    let mut out: Option<Result<T, E>> = None;
    let mut run = |tx: &mut dyn Tx| {
        let r = work(tx)?;
        let refused = r.is_err();
        out = Some(r);
        if refused {
            Err(StoreError::Rollback)
        } else {
            Ok(())
        }
    };
    let result = if bookkeeping {
        store.bookkeeping(&mut run)
    } else {
        store.transaction(&mut run)
    };
    match (result, out) {
        (Ok(()), Some(r)) => Ok(r),
        (Err(StoreError::Rollback), Some(r @ Err(_))) => Ok(r),
        (Err(e), _) => Err(e),
        (Ok(()), None) => Err(StoreError::Corrupt(
            "a transaction ended without running its work".to_string(),
        )),
    }
}

/// The columns of a `history` row, in `HISTORY_COLUMNS` order.
pub(crate) type RawHistory = (
    i64,
    String,
    i64,
    String,
    String,
    Option<i64>,
    Option<String>,
    String,
    String,
);

/// A history entry from its columns, as both backends read them.
pub(crate) fn history_from_row(raw: RawHistory) -> Result<HistoryEntry, StoreError> {
    let (rev, doc, at, actor, action, reverted_to, before, after, changes) = raw;
    let what = format!("history {doc} v{rev}");
    Ok(HistoryEntry {
        before: before.map(|b| parse_json(&b, &what)).transpose()?,
        after: parse_json(&after, &what)?,
        changes: parse_json(&changes, &what)?,
        rev,
        doc,
        at,
        actor,
        action,
        reverted_to,
    })
}

/// Parses a stored JSON text.
pub(crate) fn parse_json(text: &str, what: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls() {
        assert_eq!(
            DatabaseUrl::parse(DEFAULT_DATABASE).unwrap(),
            DatabaseUrl::Sqlite("./config-server.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///var/lib/x.db").unwrap(),
            DatabaseUrl::Sqlite("/var/lib/x.db".into())
        );
        let pg = DatabaseUrl::parse("postgres://cfg:s3cret@db:5432/cfg").unwrap();
        assert_eq!(pg.backend(), "postgres");
        assert_eq!(pg.redacted(), "postgres://cfg:***@db:5432/cfg");
        assert_eq!(format!("{pg:?}"), "postgres://cfg:***@db:5432/cfg");
        assert!(DatabaseUrl::parse("sqlite://")
            .unwrap_err()
            .contains("names no file"));
        let e = DatabaseUrl::parse("mysql://u:pw@h/db").unwrap_err();
        assert!(e.contains("use sqlite://PATH") && !e.contains("pw"), "{e}");
        assert!(DatabaseUrl::parse("postgres://u@h:notaport/db").is_err());
    }

    #[test]
    fn pending_migrations_in_order_and_a_newer_schema_refused() {
        assert_eq!(pending_migrations("u", 0).unwrap().len(), MIGRATIONS.len());
        let last = MIGRATIONS.last().unwrap().0;
        assert!(pending_migrations("u", last).unwrap().is_empty());
        assert!(matches!(
            pending_migrations("u", last + 1),
            Err(StoreError::TooNew { found, .. }) if found == last + 1
        ));
        let versions: Vec<i64> = MIGRATIONS.iter().map(|m| m.0).collect();
        assert!(
            versions.windows(2).all(|w| w[0] < w[1]),
            "numbered in order"
        );
    }

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(redact("postgres://u:p@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact("postgres://h/db?user=u&password=p&x=1"),
            "postgres://h/db?user=u&password=***&x=1"
        );
        assert_eq!(redact("postgres://u:p@ss@h/db"), "postgres://u:***@h/db");
    }
}
