//! The PostgreSQL backend: the synchronous `postgres` client on the blocking pool, with a
//! small pool of connections.
//!
//! Why a pool of [`POOL_SIZE`] and not one connection: a change waits for the revision row
//! lock while another server (several may share one database) holds it, and reads (`GET
//! /config/{device}`, `/devices`, `/health`) should not queue behind that wait. Four is enough
//! for the few hundred short transactions a second a large fleet makes, and leaves most of
//! PostgreSQL's default 100 connections to other servers and tools. A connection that broke is
//! dropped when it comes back and a new one is opened on demand, so the server rides out a
//! database restart (its requests fail with 503 meanwhile, and `/health` says so).
//!
//! Plain TCP only (`NoTls`): run the database on the same host or network, or put a TLS
//! tunnel in front of it. Transactions are READ COMMITTED; writers serialise on the revision
//! row, which each change locks first (`UPDATE revision ... RETURNING rev`).

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

use postgres::types::ToSql;
use postgres::{Client, NoTls, Row};

use super::{
    device_page_query, device_where, limit_i64, parse_json, pending_migrations, redact,
    DeviceFilter, DeviceRow, Document, HistoryEntry, Position, SqlParam, Store, StoreError, Tx,
    DEVICE_COLUMNS, SCHEMA_TABLE,
};

const BACKEND: &str = "postgres";

/// Connections kept open at most.
pub const POOL_SIZE: usize = 4;

/// How long a connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an operation waits for a free connection before failing.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(10);

/// Key of the advisory lock that keeps two servers from migrating at once.
const MIGRATION_LOCK: i64 = 0x6564_6765_6366_6731; // "edgecfg1"

fn q(e: postgres::Error) -> StoreError {
    StoreError::Query {
        backend: BACKEND,
        reason: e.to_string(),
    }
}

struct Pool {
    idle: Vec<Client>,
    open: usize,
}

/// A PostgreSQL database.
pub struct PgStore {
    config: postgres::Config,
    url: String,
    pool: Mutex<Pool>,
    freed: Condvar,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("url", &self.url).finish()
    }
}

/// A pooled connection, returned to the pool when dropped (or closed for good if it broke).
struct Lease<'a> {
    store: &'a PgStore,
    client: Option<Client>,
}

impl Lease<'_> {
    fn client(&mut self) -> &mut Client {
        self.client
            .as_mut()
            .expect("invariant: a lease holds its client until dropped")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let mut pool = self
            .store
            .pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match self.client.take() {
            Some(c) if !c.is_closed() => pool.idle.push(c),
            _ => pool.open -= 1,
        }
        self.store.freed.notify_one();
    }
}

impl PgStore {
    /// Connects to `url`, checks that the database answers, and applies the migrations it
    /// lacks (under an advisory lock, so servers starting together migrate once).
    pub fn open(url: &str) -> Result<PgStore, StoreError> {
        let shown = redact(url);
        let mut config: postgres::Config = url.parse().map_err(|e| StoreError::Open {
            url: shown.clone(),
            reason: format!("{e}"),
        })?;
        config.connect_timeout(CONNECT_TIMEOUT);
        config.application_name("edge-metrics-config-server");
        let store = PgStore {
            config,
            url: shown.clone(),
            pool: Mutex::new(Pool {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
        };
        let mut lease = store.lease().map_err(|e| StoreError::Open {
            url: shown.clone(),
            reason: match e {
                StoreError::Query { reason, .. } => format!(
                    "{reason} (is PostgreSQL running there, and are the user, password and \
                     database right?)"
                ),
                other => other.to_string(),
            },
        })?;
        migrate(lease.client(), &shown)?;
        drop(lease);
        Ok(store)
    }

    fn connect(&self) -> Result<Client, StoreError> {
        self.config.connect(NoTls).map_err(q)
    }

    fn lease(&self) -> Result<Lease<'_>, StoreError> {
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            while let Some(c) = pool.idle.pop() {
                if c.is_closed() {
                    pool.open -= 1;
                } else {
                    return Ok(Lease {
                        store: self,
                        client: Some(c),
                    });
                }
            }
            if pool.open < POOL_SIZE {
                pool.open += 1;
                drop(pool);
                return match self.connect() {
                    Ok(c) => Ok(Lease {
                        store: self,
                        client: Some(c),
                    }),
                    Err(e) => {
                        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
                        pool.open -= 1;
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            let (guard, timeout) = self
                .freed
                .wait_timeout(pool, CHECKOUT_TIMEOUT)
                .unwrap_or_else(PoisonError::into_inner);
            pool = guard;
            if timeout.timed_out() && pool.idle.is_empty() && pool.open >= POOL_SIZE {
                return Err(StoreError::Query {
                    backend: BACKEND,
                    reason: format!(
                        "all {POOL_SIZE} connections stayed busy for {}s",
                        CHECKOUT_TIMEOUT.as_secs()
                    ),
                });
            }
        }
    }
}

fn migrate(client: &mut Client, url: &str) -> Result<(), StoreError> {
    let open_err = |e: postgres::Error| StoreError::Open {
        url: url.to_string(),
        reason: e.to_string(),
    };
    let mut tx = client.transaction().map_err(open_err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(open_err)?;
    tx.batch_execute(SCHEMA_TABLE).map_err(open_err)?;
    let applied: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations",
            &[],
        )
        .map_err(open_err)?
        .get(0);
    for &(version, name, sql) in pending_migrations(url, applied)? {
        let failed = |e: postgres::Error| StoreError::Migration {
            url: url.to_string(),
            version,
            name,
            reason: e.to_string(),
        };
        tx.batch_execute(sql).map_err(failed)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            &[&version, &name, &crate::time::now_ms()],
        )
        .map_err(failed)?;
        tracing::info!(version, name, database = url, "Applied a migration.");
    }
    tx.commit().map_err(open_err)
}

impl Store for PgStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn transaction(
        &self,
        work: &mut dyn FnMut(&mut dyn Tx) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut lease = self.lease()?;
        let mut tx = lease.client().transaction().map_err(q)?;
        work(&mut PgTx { tx: &mut tx })?; // dropping `tx` rolls back
        tx.commit().map_err(q)
    }

    fn ping(&self) -> Result<(), StoreError> {
        let mut lease = self.lease()?;
        lease
            .client()
            .query_one("SELECT COUNT(*) FROM revision", &[])
            .map(|_| ())
            .map_err(q)
    }
}

struct PgTx<'a, 'b> {
    tx: &'a mut postgres::Transaction<'b>,
}

impl PgTx<'_, '_> {
    fn rows(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, StoreError> {
        let stmt = self.tx.prepare(sql).map_err(q)?;
        self.tx.query(&stmt, params).map_err(q)
    }

    fn exec(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        let stmt = self.tx.prepare(sql).map_err(q)?;
        self.tx.execute(&stmt, params).map_err(q)
    }
}

const DOCUMENT_COLUMNS: &str = "doc, body, rev, updated_at, updated_by";

fn to_document(row: &Row) -> Result<(String, Document), StoreError> {
    let key: String = row.get(0);
    let body: String = row.get(1);
    Ok((
        key.clone(),
        Document {
            body: parse_json(&body, &format!("document {key}"))?,
            rev: row.get(2),
            updated_at: row.get(3),
            updated_by: row.get(4),
        },
    ))
}

const HISTORY_COLUMNS: &str =
    "rev, doc, at, actor, action, reverted_to, before_body, after_body, changes";

fn to_history(row: &Row) -> Result<HistoryEntry, StoreError> {
    super::history_from_row((
        row.get(0),
        row.get(1),
        row.get(2),
        row.get(3),
        row.get(4),
        row.get(5),
        row.get(6),
        row.get(7),
        row.get(8),
    ))
}

fn to_device(row: &Row) -> DeviceRow {
    DeviceRow {
        device: row.get(0),
        device_type: row.get(1),
        exporter_version: row.get(2),
        first_seen_at: row.get(3),
        last_fetch_at: row.get(4),
        last_push_at: row.get(5),
        fetched_rev: row.get(6),
    }
}

fn sql_values(params: &[SqlParam]) -> Vec<Box<dyn ToSql + Sync>> {
    params
        .iter()
        .map(|p| -> Box<dyn ToSql + Sync> {
            match p {
                SqlParam::Text(t) => Box::new(t.clone()),
                SqlParam::Int(i) => Box::new(*i),
            }
        })
        .collect()
}

impl Tx for PgTx<'_, '_> {
    fn next_revision(&mut self) -> Result<i64, StoreError> {
        let rows = self.rows(
            "UPDATE revision SET rev = rev + 1 WHERE id = 1 RETURNING rev",
            &[],
        )?;
        rows.first()
            .map(|r| r.get(0))
            .ok_or_else(|| StoreError::Corrupt("the revision row is missing".to_string()))
    }

    fn revision(&mut self) -> Result<i64, StoreError> {
        let rows = self.rows("SELECT rev FROM revision WHERE id = 1", &[])?;
        rows.first()
            .map(|r| r.get(0))
            .ok_or_else(|| StoreError::Corrupt("the revision row is missing".to_string()))
    }

    fn documents(&mut self, keys: &[&str]) -> Result<Vec<(String, Document)>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<&str> = keys.to_vec();
        self.rows(
            &format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE doc = ANY($1)"),
            &[&keys],
        )?
        .iter()
        .map(to_document)
        .collect()
    }

    fn documents_with_prefix(
        &mut self,
        prefix: &str,
    ) -> Result<Vec<(String, Document)>, StoreError> {
        // starts_with, not LIKE: device ids may hold `%` and `_`.
        self.rows(
            &format!(
                "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE starts_with(doc, $1) ORDER BY doc"
            ),
            &[&prefix],
        )?
        .iter()
        .map(to_document)
        .collect()
    }

    fn put_document(&mut self, key: &str, doc: &Document) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO documents (doc, body, rev, updated_at, updated_by) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (doc) DO UPDATE SET \
             body = excluded.body, rev = excluded.rev, updated_at = excluded.updated_at, \
             updated_by = excluded.updated_by",
            &[
                &key,
                &doc.body.to_string(),
                &doc.rev,
                &doc.updated_at,
                &doc.updated_by,
            ],
        )
        .map(|_| ())
    }

    fn delete_document(&mut self, key: &str) -> Result<bool, StoreError> {
        self.exec("DELETE FROM documents WHERE doc = $1", &[&key])
            .map(|n| n > 0)
    }

    fn add_history(&mut self, e: &HistoryEntry) -> Result<(), StoreError> {
        self.exec(
            &format!(
                "INSERT INTO history ({HISTORY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            ),
            &[
                &e.rev,
                &e.doc,
                &e.at,
                &e.actor,
                &e.action,
                &e.reverted_to,
                &e.before.as_ref().map(|b| b.to_string()),
                &e.after.to_string(),
                &e.changes.to_string(),
            ],
        )
        .map(|_| ())
    }

    fn history(
        &mut self,
        key: &str,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        self.rows(
            &format!(
                "SELECT {HISTORY_COLUMNS} FROM history WHERE doc = $1 AND rev < $2 \
                 ORDER BY rev DESC LIMIT $3"
            ),
            &[&key, &before.unwrap_or(i64::MAX), &limit_i64(limit)],
        )?
        .iter()
        .map(to_history)
        .collect()
    }

    fn history_entry(&mut self, key: &str, rev: i64) -> Result<Option<HistoryEntry>, StoreError> {
        self.rows(
            &format!("SELECT {HISTORY_COLUMNS} FROM history WHERE doc = $1 AND rev = $2"),
            &[&key, &rev],
        )?
        .first()
        .map(to_history)
        .transpose()
    }

    fn history_since(
        &mut self,
        keys: &[&str],
        after: i64,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<&str> = keys.to_vec();
        self.rows(
            &format!(
                "SELECT {HISTORY_COLUMNS} FROM history WHERE rev > $1 AND doc = ANY($2) ORDER BY rev"
            ),
            &[&after, &keys],
        )?
        .iter()
        .map(to_history)
        .collect()
    }

    fn device(&mut self, device: &str) -> Result<Option<DeviceRow>, StoreError> {
        Ok(self
            .rows(
                &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE device = $1"),
                &[&device],
            )?
            .first()
            .map(to_device))
    }

    fn put_device(&mut self, d: &DeviceRow) -> Result<(), StoreError> {
        self.exec(
            &format!(
                "INSERT INTO devices ({DEVICE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (device) DO UPDATE SET device_type = excluded.device_type, \
                 exporter_version = excluded.exporter_version, \
                 first_seen_at = excluded.first_seen_at, last_fetch_at = excluded.last_fetch_at, \
                 last_push_at = excluded.last_push_at, fetched_rev = excluded.fetched_rev"
            ),
            &[
                &d.device,
                &d.device_type,
                &d.exporter_version,
                &d.first_seen_at,
                &d.last_fetch_at,
                &d.last_push_at,
                &d.fetched_rev,
            ],
        )
        .map(|_| ())
    }

    fn devices(&mut self) -> Result<Vec<DeviceRow>, StoreError> {
        Ok(self
            .rows(
                &format!("SELECT {DEVICE_COLUMNS} FROM devices ORDER BY device"),
                &[],
            )?
            .iter()
            .map(to_device)
            .collect())
    }

    fn list_devices(
        &mut self,
        filter: &DeviceFilter,
        position: &Position,
        limit: usize,
    ) -> Result<Vec<DeviceRow>, StoreError> {
        let (sql, params, backwards) =
            device_page_query(filter, position, limit, |n| format!("${n}"));
        let values = sql_values(&params);
        let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v.as_ref()).collect();
        let mut rows: Vec<DeviceRow> = self.rows(&sql, &refs)?.iter().map(to_device).collect();
        if backwards {
            rows.reverse();
        }
        Ok(rows)
    }

    fn count_matching(&mut self, filter: &DeviceFilter) -> Result<u64, StoreError> {
        let (clause, params) = device_where(filter, &Position::Start, |n| format!("${n}"));
        let values = sql_values(&params);
        let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v.as_ref()).collect();
        let rows = self.rows(&format!("SELECT COUNT(*) FROM devices{clause}"), &refs)?;
        let n: i64 = rows
            .first()
            .ok_or_else(|| StoreError::Corrupt("COUNT returned no row".to_string()))?
            .get(0);
        Ok(n.max(0).unsigned_abs())
    }

    fn delete_device(&mut self, device: &str) -> Result<bool, StoreError> {
        self.exec("DELETE FROM devices WHERE device = $1", &[&device])
            .map(|n| n > 0)
    }

    fn device_token(&mut self, device: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .rows(
                "SELECT digest FROM device_tokens WHERE device = $1",
                &[&device],
            )?
            .first()
            .map(|r| r.get(0)))
    }

    fn tokens_among(&mut self, devices: &[&str]) -> Result<Vec<String>, StoreError> {
        if devices.is_empty() {
            return Ok(Vec::new());
        }
        let devices: Vec<&str> = devices.to_vec();
        Ok(self
            .rows(
                "SELECT device FROM device_tokens WHERE device = ANY($1)",
                &[&devices],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    fn put_device_token(
        &mut self,
        device: &str,
        digest: &str,
        at: i64,
        by: &str,
    ) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO device_tokens (device, digest, created_at, created_by) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (device) DO UPDATE SET \
             digest = excluded.digest, created_at = excluded.created_at, \
             created_by = excluded.created_by",
            &[&device, &digest, &at, &by],
        )
        .map(|_| ())
    }

    fn delete_device_token(&mut self, device: &str) -> Result<bool, StoreError> {
        self.exec("DELETE FROM device_tokens WHERE device = $1", &[&device])
            .map(|n| n > 0)
    }

    fn count_devices(&mut self, since: i64) -> Result<(u64, u64), StoreError> {
        let rows = self.rows(
            "SELECT COALESCE(SUM(CASE WHEN last_fetch_at >= $1 OR last_push_at >= $1 \
             THEN 1 ELSE 0 END), 0)::BIGINT, COUNT(*) FROM devices",
            &[&since],
        )?;
        let row = rows
            .first()
            .ok_or_else(|| StoreError::Corrupt("COUNT returned no row".to_string()))?;
        let (a, b): (i64, i64) = (row.get(0), row.get(1));
        Ok((a.max(0).unsigned_abs(), b.max(0).unsigned_abs()))
    }
}
