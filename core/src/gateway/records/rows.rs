//! Writing `routing_requests` rows: statements of a fixed shape, prepared once per connection, with
//! each row's values bound straight from it.
//!
//! The request log is the one table written at the gateway's request rate, so its insert skips the
//! general query builder. On SQLite a batch goes in as statements of 256, 128, … 1 rows (at most
//! nine shapes, all kept in each connection's statement cache) inside one transaction; on
//! PostgreSQL as one `INSERT … SELECT FROM UNNEST(…)` with one array per column, whatever the batch's
//! size. Both are `ON CONFLICT (id) DO NOTHING`. Values are stored exactly as SeaORM stores the
//! entity's fields, so [`routing_requests::Model`] reads them back.

use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use sea_orm::{
    DatabaseConnection, DbBackend, DbErr, RuntimeErr,
    sqlx::{self, PgPool, Postgres, Sqlite, SqlitePool},
};
use uuid::Uuid;

/// The columns in the order every statement here binds them.
const COLUMNS: [&str; 18] = [
    "id",
    "created_at",
    "user_id",
    "token_id",
    "requested_model",
    "route_alias",
    "attempts",
    "provider_id",
    "model",
    "stream",
    "status",
    "http_status",
    "ttft_ms",
    "latency_ms",
    "tokens_in",
    "tokens_out",
    "cost_micros",
    "error",
];

/// PostgreSQL array types of [`COLUMNS`], in order; `attempts` arrives as text and becomes JSON.
const PG_ARRAYS: [&str; 18] = [
    "uuid[]",
    "timestamptz[]",
    "uuid[]",
    "uuid[]",
    "text[]",
    "text[]",
    "json[]",
    "uuid[]",
    "text[]",
    "bool[]",
    "text[]",
    "int4[]",
    "int4[]",
    "int4[]",
    "int8[]",
    "int8[]",
    "int8[]",
    "text[]",
];

/// The rows of the largest SQLite statement: 18 × 256 parameters.
const SQLITE_MAX_ROWS_LOG2: u32 = 8;

/// One `routing_requests` row, its strings already cut to their columns and its attempts already
/// written as JSON text.
#[derive(Clone, Debug)]
pub(super) struct LogRow {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub user_id: Option<Uuid>,
    pub token_id: Option<Uuid>,
    pub requested_model: String,
    pub route_alias: Option<String>,
    pub attempts: String,
    pub provider_id: Option<Uuid>,
    pub model: Option<String>,
    pub stream: bool,
    pub status: &'static str,
    pub http_status: i32,
    pub ttft_ms: Option<i32>,
    pub latency_ms: i32,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub cost_micros: i64,
    pub error: Option<String>,
}

/// Inserts `rows` (skipping ids already stored) all or nothing.
pub(super) async fn insert(db: &DatabaseConnection, rows: &[LogRow]) -> Result<(), DbErr> {
    if rows.is_empty() {
        return Ok(());
    }
    let result = match db.get_database_backend() {
        DbBackend::Sqlite => insert_sqlite(db.get_sqlite_connection_pool(), rows).await,
        DbBackend::Postgres => insert_postgres(db.get_postgres_connection_pool(), rows).await,
        other => return Err(DbErr::Custom(format!("the request log cannot be written to {other:?}"))),
    };
    result.map_err(|e| DbErr::Exec(RuntimeErr::SqlxError(Arc::new(e))))
}

fn column_list() -> String {
    COLUMNS.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ")
}

/// The SQLite statement for `2^k` rows, for k in 0..=8.
fn sqlite_statement(log2_rows: u32) -> &'static str {
    static STATEMENTS: OnceLock<Vec<String>> = OnceLock::new();
    let all = STATEMENTS.get_or_init(|| {
        let row = format!("({})", vec!["?"; COLUMNS.len()].join(", "));
        (0..=SQLITE_MAX_ROWS_LOG2)
            .map(|k| {
                let values = vec![row.as_str(); 1 << k].join(", ");
                format!(
                    "INSERT INTO \"routing_requests\" ({}) VALUES {values} ON CONFLICT (\"id\") DO NOTHING",
                    column_list()
                )
            })
            .collect()
    });
    &all[log2_rows as usize]
}

/// `n` split into powers of two, largest first, none above `2^SQLITE_MAX_ROWS_LOG2`.
fn sqlite_chunks(mut n: usize) -> impl Iterator<Item = u32> {
    std::iter::from_fn(move || {
        if n == 0 {
            return None;
        }
        let k = n.ilog2().min(SQLITE_MAX_ROWS_LOG2);
        n -= 1 << k;
        Some(k)
    })
}

async fn insert_sqlite(pool: &SqlitePool, rows: &[LogRow]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut rest = rows;
    for k in sqlite_chunks(rows.len()) {
        let (chunk, tail) = rest.split_at(1 << k);
        rest = tail;
        let mut query = sqlx::query::<Sqlite>(sqlite_statement(k));
        for r in chunk {
            query = query
                .bind(r.id)
                .bind(r.created_at)
                .bind(r.user_id)
                .bind(r.token_id)
                .bind(r.requested_model.as_str())
                .bind(r.route_alias.as_deref())
                .bind(r.attempts.as_str())
                .bind(r.provider_id)
                .bind(r.model.as_deref())
                .bind(r.stream)
                .bind(r.status)
                .bind(r.http_status)
                .bind(r.ttft_ms)
                .bind(r.latency_ms)
                .bind(r.tokens_in)
                .bind(r.tokens_out)
                .bind(r.cost_micros)
                .bind(r.error.as_deref());
        }
        query.execute(&mut *tx).await?;
    }
    tx.commit().await
}

fn postgres_statement() -> &'static str {
    static STATEMENT: OnceLock<String> = OnceLock::new();
    STATEMENT.get_or_init(|| {
        let arrays: Vec<String> =
            PG_ARRAYS.iter().enumerate().map(|(i, ty)| format!("${}::{ty}", i + 1)).collect();
        format!(
            "INSERT INTO \"routing_requests\" ({}) SELECT * FROM UNNEST({}) ON CONFLICT (\"id\") DO NOTHING",
            column_list(),
            arrays.join(", ")
        )
    })
}

async fn insert_postgres(pool: &PgPool, rows: &[LogRow]) -> Result<(), sqlx::Error> {
    fn column<'a, T>(rows: &'a [LogRow], f: impl Fn(&'a LogRow) -> T) -> Vec<T> {
        rows.iter().map(f).collect()
    }
    sqlx::query::<Postgres>(postgres_statement())
        .bind(column(rows, |r| r.id))
        .bind(column(rows, |r| r.created_at))
        .bind(column(rows, |r| r.user_id))
        .bind(column(rows, |r| r.token_id))
        .bind(column(rows, |r| r.requested_model.as_str()))
        .bind(column(rows, |r| r.route_alias.as_deref()))
        .bind(column(rows, |r| r.attempts.as_str()))
        .bind(column(rows, |r| r.provider_id))
        .bind(column(rows, |r| r.model.as_deref()))
        .bind(column(rows, |r| r.stream))
        .bind(column(rows, |r| r.status))
        .bind(column(rows, |r| r.http_status))
        .bind(column(rows, |r| r.ttft_ms))
        .bind(column(rows, |r| r.latency_ms))
        .bind(column(rows, |r| r.tokens_in))
        .bind(column(rows, |r| r.tokens_out))
        .bind(column(rows, |r| r.cost_micros))
        .bind(column(rows, |r| r.error.as_deref()))
        .execute(pool)
        .await
        .map(drop)
}

#[cfg(test)]
mod tests {
    use sea_orm::{IdenStatic, Iterable};

    use super::*;
    use crate::entities::routing_requests;

    #[test]
    fn the_columns_are_the_entitys_in_its_order() {
        let entity: Vec<&str> = routing_requests::Column::iter().map(|c| c.as_str()).collect();
        assert_eq!(entity, COLUMNS);
    }

    #[test]
    fn batches_split_into_at_most_nine_statement_shapes() {
        let sizes = |n| sqlite_chunks(n).map(|k| 1usize << k).collect::<Vec<_>>();
        assert_eq!(sizes(0), Vec::<usize>::new());
        assert_eq!(sizes(1), [1]);
        assert_eq!(sizes(500), [256, 128, 64, 32, 16, 4]);
        assert_eq!(sizes(1_500), [256, 256, 256, 256, 256, 128, 64, 16, 8, 4]);
        for n in 0..2_000 {
            assert_eq!(sizes(n).iter().sum::<usize>(), n);
        }
        assert_eq!(sqlite_statement(0).matches('?').count(), COLUMNS.len());
        assert_eq!(sqlite_statement(8).matches('?').count(), COLUMNS.len() * 256);
    }
}
