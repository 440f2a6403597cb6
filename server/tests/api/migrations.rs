//! The schema: all 14 tables on both backends, and down-to-zero then up again.

use migration::{Migrator, MigratorTrait, TABLES};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};

use crate::helpers::{Backend, TestDb};

async fn tables(db: &DatabaseConnection) -> Vec<String> {
    let sql = match db.get_database_backend() {
        DbBackend::Postgres => {
            "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public'"
        }
        _ => "SELECT name FROM sqlite_master WHERE type = 'table'",
    };
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap();
    let mut names: Vec<String> = rows.iter().map(|r| r.try_get::<String>("", "name").unwrap()).collect();
    names.retain(|n| TABLES.contains(&n.as_str()));
    names.sort();
    names
}

/// Column names and how many foreign keys point out of `table`, to see the schema is the same on both.
async fn foreign_key_count(db: &DatabaseConnection, table: &str) -> i64 {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => format!(
            "SELECT COUNT(*)::bigint AS n FROM information_schema.table_constraints \
             WHERE table_name = '{table}' AND constraint_type = 'FOREIGN KEY'"
        ),
        _ => format!("SELECT COUNT(*) AS n FROM pragma_foreign_key_list('{table}')"),
    };
    let row = db.query_one_raw(Statement::from_string(backend, sql)).await.unwrap().unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

async fn down_to_zero_and_up_again(backend: Backend) {
    let Some(test_db) = TestDb::new(backend).await else { return };
    let db = Database::connect(&test_db.url).await.unwrap();

    Migrator::up(&db, None).await.unwrap();
    let mut expected: Vec<String> = TABLES.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(tables(&db).await, expected);
    // Deliberate foreign keys, the same on both backends.
    for (table, fks) in [
        ("provider_credentials", 2),
        ("model_configs", 1),
        ("routing_requests", 2),
        ("streams", 3),
        ("stream_chunks", 1),
        ("search_documents", 1),
        ("users", 0),
    ] {
        assert_eq!(foreign_key_count(&db, table).await, fks, "{table} on {backend:?}");
    }

    Migrator::down(&db, None).await.unwrap();
    assert!(tables(&db).await.is_empty(), "down to zero leaves none of the tables");
    assert!(Migrator::get_applied_migrations(&db).await.unwrap().is_empty());

    Migrator::up(&db, None).await.unwrap();
    assert_eq!(tables(&db).await, expected);
    assert_eq!(Migrator::get_pending_migrations(&db).await.unwrap().len(), 0);

    db.close().await.unwrap();
    test_db.drop_db().await;
}

#[tokio::test]
async fn migrations_round_trip_on_sqlite() {
    down_to_zero_and_up_again(Backend::Sqlite).await;
}

#[tokio::test]
async fn migrations_round_trip_on_postgres() {
    down_to_zero_and_up_again(Backend::Postgres).await;
}
