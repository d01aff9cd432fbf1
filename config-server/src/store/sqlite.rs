//! The SQLite backend: one file, one connection.
//!
//! - `journal_mode=WAL` and `synchronous=FULL`: a commit returns only after its WAL frames
//!   are on disk, so every acknowledged write survives `kill -9` and a power cut; WAL keeps
//!   readers in other processes (a backup, `sqlite3`) from blocking the server.
//! - One connection behind a mutex, every transaction `BEGIN IMMEDIATE`: the server's
//!   operations are short (a few indexed rows), so running them one at a time costs little and
//!   gives every transaction a consistent view without retry loops. `busy_timeout` lets a
//!   second process on the same file wait its turn instead of failing.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{
    device_page_query, device_where, history_from_row, limit_i64, parse_json, pending_migrations,
    DeviceFilter, DeviceRow, Document, HistoryEntry, Position, RawHistory, SqlParam, Store,
    StoreError, Tx, DEVICE_COLUMNS, SCHEMA_TABLE,
};

const BACKEND: &str = "sqlite";

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 64;

fn q(e: rusqlite::Error) -> StoreError {
    StoreError::Query {
        backend: BACKEND,
        reason: e.to_string(),
    }
}

/// A SQLite database file.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating when absent) the file at `path`, sets WAL and `synchronous=FULL`, and
    /// applies the migrations it lacks.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let url = format!("sqlite://{}", path.display());
        let open_err = |reason: String| StoreError::Open {
            url: url.clone(),
            reason,
        };
        let conn = Connection::open(path).map_err(|e| {
            open_err(format!(
                "{e} (does the directory exist, and may this user write there?)"
            ))
        })?;
        let setup = || -> Result<(), rusqlite::Error> {
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(rusqlite::Error::InvalidParameterName(format!(
                    "journal_mode stays {mode}, WAL is required"
                )));
            }
            conn.pragma_update(None, "synchronous", "FULL")?;
            conn.pragma_update(None, "foreign_keys", "ON")?;
            // Every statement the server runs stays prepared: about 25 shapes (the IN lists
            // and listing filters vary), more than rusqlite's default of 16, which would
            // evict and re-prepare on every push.
            conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
            Ok(())
        };
        setup().map_err(|e| open_err(format!("{e} (is it a SQLite database?)")))?;
        let mut store = SqliteStore {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
        };
        store.migrate(&url)?;
        Ok(store)
    }

    fn migrate(&mut self, url: &str) -> Result<(), StoreError> {
        let conn = self.conn.get_mut().unwrap_or_else(PoisonError::into_inner);
        let open_err = |e: rusqlite::Error| StoreError::Open {
            url: url.to_string(),
            reason: format!("{e} (is it a SQLite database?)"),
        };
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(open_err)?;
        tx.execute_batch(SCHEMA_TABLE).map_err(open_err)?;
        let applied: i64 = tx
            .query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                [],
                |r| r.get(0),
            )
            .map_err(open_err)?;
        for &(version, name, sql) in pending_migrations(url, applied)? {
            let failed = |e: rusqlite::Error| StoreError::Migration {
                url: url.to_string(),
                version,
                name,
                reason: e.to_string(),
            };
            tx.execute_batch(sql).map_err(failed)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
                params![version, name, crate::time::now_ms()],
            )
            .map_err(failed)?;
            tracing::info!(version, name, database = url, "Applied a migration.");
        }
        tx.commit().map_err(open_err)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn transaction(
        &self,
        work: &mut dyn FnMut(&mut dyn Tx) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        run(&mut conn, work)
    }

    /// `synchronous=NORMAL` for this one commit: its WAL frames reach the disk with the next
    /// `FULL` commit or checkpoint instead of before the answer. A `kill -9` loses nothing
    /// (the frames are in the file); a power cut may lose the fetches since the last sync.
    fn bookkeeping(
        &self,
        work: &mut dyn FnMut(&mut dyn Tx) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(q)?;
        let result = run(&mut conn, work);
        // Back to FULL whatever happened: every other transaction waits for the disk.
        let restored = conn.pragma_update(None, "synchronous", "FULL").map_err(q);
        result.and(restored)
    }

    fn ping(&self) -> Result<(), StoreError> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        conn.query_row("SELECT COUNT(*) FROM revision", [], |r| r.get::<_, i64>(0))
            .map(|_| ())
            .map_err(q)
    }
}

/// One `BEGIN IMMEDIATE` transaction on `conn`: committed when `work` succeeds.
fn run(
    conn: &mut Connection,
    work: &mut dyn FnMut(&mut dyn Tx) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(q)?;
    let mut t = SqliteTx { tx: &tx };
    work(&mut t)?; // dropping `tx` rolls back
    tx.commit().map_err(q)
}

struct SqliteTx<'a> {
    tx: &'a rusqlite::Transaction<'a>,
}

type Row<'a> = rusqlite::Row<'a>;

fn document_of(row: &Row<'_>) -> rusqlite::Result<(String, String, i64, i64, String)> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    ))
}

fn to_document(
    (key, body, rev, updated_at, updated_by): (String, String, i64, i64, String),
) -> Result<(String, Document), StoreError> {
    let body = parse_json(&body, &format!("document {key}"))?;
    Ok((
        key,
        Document {
            body,
            rev,
            updated_at,
            updated_by,
        },
    ))
}

const HISTORY_COLUMNS: &str =
    "rev, doc, at, actor, action, reverted_to, before_body, after_body, changes";

fn history_of(row: &Row<'_>) -> rusqlite::Result<RawHistory> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
    ))
}

fn device_of(row: &Row<'_>) -> rusqlite::Result<DeviceRow> {
    Ok(DeviceRow {
        device: row.get(0)?,
        device_type: row.get(1)?,
        exporter_version: row.get(2)?,
        first_seen_at: row.get(3)?,
        last_fetch_at: row.get(4)?,
        last_push_at: row.get(5)?,
        fetched_rev: row.get(6)?,
    })
}

/// `?1, ?2, ...` for `n` parameters.
fn placeholders(n: usize, first: usize) -> String {
    (first..first + n)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn value(p: &SqlParam) -> rusqlite::types::Value {
    match p {
        SqlParam::Text(t) => t.clone().into(),
        SqlParam::Int(i) => (*i).into(),
    }
}

impl Tx for SqliteTx<'_> {
    fn next_revision(&mut self) -> Result<i64, StoreError> {
        self.tx
            .query_row(
                "UPDATE revision SET rev = rev + 1 WHERE id = 1 RETURNING rev",
                [],
                |r| r.get(0),
            )
            .map_err(q)
    }

    fn revision(&mut self) -> Result<i64, StoreError> {
        self.tx
            .query_row("SELECT rev FROM revision WHERE id = 1", [], |r| r.get(0))
            .map_err(q)
    }

    fn documents(&mut self, keys: &[&str]) -> Result<Vec<(String, Document)>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT doc, body, rev, updated_at, updated_by FROM documents WHERE doc IN ({})",
            placeholders(keys.len(), 1)
        );
        let mut stmt = self.tx.prepare_cached(&sql).map_err(q)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(keys.iter()), document_of)
            .map_err(q)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(q)?;
        rows.into_iter().map(to_document).collect()
    }

    fn documents_with_prefix(
        &mut self,
        prefix: &str,
    ) -> Result<Vec<(String, Document)>, StoreError> {
        // substr, not LIKE: device ids may hold `%` and `_`.
        let mut stmt = self
            .tx
            .prepare_cached(
                "SELECT doc, body, rev, updated_at, updated_by FROM documents \
                 WHERE substr(doc, 1, length(?1)) = ?1 ORDER BY doc",
            )
            .map_err(q)?;
        let rows = stmt
            .query_map(params![prefix], document_of)
            .map_err(q)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(q)?;
        rows.into_iter().map(to_document).collect()
    }

    fn put_document(&mut self, key: &str, doc: &Document) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO documents (doc, body, rev, updated_at, updated_by) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (doc) DO UPDATE SET \
                 body = excluded.body, rev = excluded.rev, updated_at = excluded.updated_at, \
                 updated_by = excluded.updated_by",
            )
            .and_then(|mut s| {
                s.execute(params![
                    key,
                    doc.body.to_string(),
                    doc.rev,
                    doc.updated_at,
                    doc.updated_by
                ])
            })
            .map(|_| ())
            .map_err(q)
    }

    fn delete_document(&mut self, key: &str) -> Result<bool, StoreError> {
        self.tx
            .execute("DELETE FROM documents WHERE doc = ?1", params![key])
            .map(|n| n > 0)
            .map_err(q)
    }

    fn add_history(&mut self, e: &HistoryEntry) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(&format!(
                "INSERT INTO history ({HISTORY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
            ))
            .and_then(|mut s| {
                s.execute(params![
                    e.rev,
                    e.doc,
                    e.at,
                    e.actor,
                    e.action,
                    e.reverted_to,
                    e.before.as_ref().map(|b| b.to_string()),
                    e.after.to_string(),
                    e.changes.to_string()
                ])
            })
            .map(|_| ())
            .map_err(q)
    }

    fn history(
        &mut self,
        key: &str,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        let mut stmt = self
            .tx
            .prepare_cached(&format!(
                "SELECT {HISTORY_COLUMNS} FROM history WHERE doc = ?1 AND rev < ?2 \
                 ORDER BY rev DESC LIMIT ?3"
            ))
            .map_err(q)?;
        let rows = stmt
            .query_map(
                params![key, before.unwrap_or(i64::MAX), limit_i64(limit)],
                history_of,
            )
            .map_err(q)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(q)?;
        rows.into_iter().map(history_from_row).collect()
    }

    fn history_entry(&mut self, key: &str, rev: i64) -> Result<Option<HistoryEntry>, StoreError> {
        let raw = self
            .tx
            .query_row(
                &format!("SELECT {HISTORY_COLUMNS} FROM history WHERE doc = ?1 AND rev = ?2"),
                params![key, rev],
                history_of,
            )
            .optional()
            .map_err(q)?;
        raw.map(history_from_row).transpose()
    }

    fn history_since(
        &mut self,
        keys: &[&str],
        after: i64,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {HISTORY_COLUMNS} FROM history WHERE rev > ?1 AND doc IN ({}) ORDER BY rev",
            placeholders(keys.len(), 2)
        );
        let mut values: Vec<rusqlite::types::Value> = vec![after.into()];
        values.extend(
            keys.iter()
                .map(|k| rusqlite::types::Value::from(k.to_string())),
        );
        let mut stmt = self.tx.prepare_cached(&sql).map_err(q)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(values), history_of)
            .map_err(q)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(q)?;
        rows.into_iter().map(history_from_row).collect()
    }

    fn device(&mut self, device: &str) -> Result<Option<DeviceRow>, StoreError> {
        self.tx
            .prepare_cached(&format!(
                "SELECT {DEVICE_COLUMNS} FROM devices WHERE device = ?1"
            ))
            .and_then(|mut s| s.query_row(params![device], device_of).optional())
            .map_err(q)
    }

    fn put_device(&mut self, d: &DeviceRow) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(&format!(
                "INSERT INTO devices ({DEVICE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT (device) DO UPDATE SET device_type = excluded.device_type, \
                 exporter_version = excluded.exporter_version, \
                 first_seen_at = excluded.first_seen_at, last_fetch_at = excluded.last_fetch_at, \
                 last_push_at = excluded.last_push_at, fetched_rev = excluded.fetched_rev"
            ))
            .and_then(|mut s| {
                s.execute(params![
                    d.device,
                    d.device_type,
                    d.exporter_version,
                    d.first_seen_at,
                    d.last_fetch_at,
                    d.last_push_at,
                    d.fetched_rev
                ])
            })
            .map(|_| ())
            .map_err(q)
    }

    fn devices(&mut self) -> Result<Vec<DeviceRow>, StoreError> {
        let mut stmt = self
            .tx
            .prepare_cached(&format!(
                "SELECT {DEVICE_COLUMNS} FROM devices ORDER BY device"
            ))
            .map_err(q)?;
        let rows = stmt
            .query_map([], device_of)
            .map_err(q)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(q)?;
        Ok(rows)
    }

    fn list_devices(
        &mut self,
        filter: &DeviceFilter,
        position: &Position,
        limit: usize,
    ) -> Result<Vec<DeviceRow>, StoreError> {
        let (sql, params, backwards) =
            device_page_query(filter, position, limit, |n| format!("?{n}"));
        let mut stmt = self.tx.prepare_cached(&sql).map_err(q)?;
        let mut rows = stmt
            .query_map(
                rusqlite::params_from_iter(params.iter().map(value)),
                device_of,
            )
            .map_err(q)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(q)?;
        if backwards {
            rows.reverse();
        }
        Ok(rows)
    }

    fn count_matching(&mut self, filter: &DeviceFilter) -> Result<u64, StoreError> {
        let (clause, params) = device_where(filter, &Position::Start, |n| format!("?{n}"));
        let sql = format!("SELECT COUNT(*) FROM devices{clause}");
        let mut stmt = self.tx.prepare_cached(&sql).map_err(q)?;
        stmt.query_row(rusqlite::params_from_iter(params.iter().map(value)), |r| {
            r.get::<_, i64>(0)
        })
        .map(|n| n.max(0).unsigned_abs())
        .map_err(q)
    }

    fn delete_device(&mut self, device: &str) -> Result<bool, StoreError> {
        self.tx
            .execute("DELETE FROM devices WHERE device = ?1", params![device])
            .map(|n| n > 0)
            .map_err(q)
    }

    fn device_token(&mut self, device: &str) -> Result<Option<String>, StoreError> {
        self.tx
            .prepare_cached("SELECT digest FROM device_tokens WHERE device = ?1")
            .and_then(|mut s| s.query_row(params![device], |r| r.get(0)).optional())
            .map_err(q)
    }

    fn tokens_among(&mut self, devices: &[&str]) -> Result<Vec<String>, StoreError> {
        if devices.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT device FROM device_tokens WHERE device IN ({})",
            placeholders(devices.len(), 1)
        );
        let mut stmt = self.tx.prepare_cached(&sql).map_err(q)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(devices.iter()), |r| r.get(0))
            .map_err(q)?
            .collect::<Result<Vec<String>, _>>()
            .map_err(q)?;
        Ok(rows)
    }

    fn put_device_token(
        &mut self,
        device: &str,
        digest: &str,
        at: i64,
        by: &str,
    ) -> Result<(), StoreError> {
        self.tx
            .execute(
                "INSERT INTO device_tokens (device, digest, created_at, created_by) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (device) DO UPDATE SET \
                 digest = excluded.digest, created_at = excluded.created_at, \
                 created_by = excluded.created_by",
                params![device, digest, at, by],
            )
            .map(|_| ())
            .map_err(q)
    }

    fn delete_device_token(&mut self, device: &str) -> Result<bool, StoreError> {
        self.tx
            .execute(
                "DELETE FROM device_tokens WHERE device = ?1",
                params![device],
            )
            .map(|n| n > 0)
            .map_err(q)
    }

    fn count_devices(&mut self, since: i64) -> Result<(u64, u64), StoreError> {
        self.tx
            .query_row(
                "SELECT COALESCE(SUM(CASE WHEN last_fetch_at >= ?1 OR last_push_at >= ?1 \
                 THEN 1 ELSE 0 END), 0), COUNT(*) FROM devices",
                params![since],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
            )
            .map(|(a, b)| (a.max(0).unsigned_abs(), b.max(0).unsigned_abs()))
            .map_err(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synchronous(store: &SqliteStore) -> i64 {
        let conn = store.conn.lock().unwrap();
        conn.query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn bookkeeping_skips_the_sync_for_its_own_commit_only() {
        let dir = test_support::TempDir::new("sqlite-sync");
        let store = SqliteStore::open(&dir.join("db.sqlite")).unwrap();
        const FULL: i64 = 2;
        assert_eq!(synchronous(&store), FULL);
        let mut seen = None;
        store
            .bookkeeping(&mut |tx| {
                seen = Some(tx.revision()?);
                Ok(())
            })
            .unwrap();
        assert_eq!(seen, Some(0));
        assert_eq!(synchronous(&store), FULL, "back to FULL after it");
        // A bookkeeping transaction that fails restores FULL too, and reports the failure.
        let e = store
            .bookkeeping(&mut |_| Err(StoreError::Rollback))
            .unwrap_err();
        assert!(matches!(e, StoreError::Rollback), "{e:?}");
        assert_eq!(synchronous(&store), FULL);
    }
}
