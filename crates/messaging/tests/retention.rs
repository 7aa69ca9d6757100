//! Inbox retention against a real PostgreSQL: a consumer's rows past `broker.inbox_retention`
//! are deleted, newer ones and other consumers' rows are kept.

use std::time::Duration;

use gavel_messaging::consumer::prune_inbox;
use gavel_test_support::TestDatabase;

#[tokio::test]
async fn only_the_consumers_own_rows_past_the_retention_are_deleted() {
    let db = TestDatabase::create().await;
    gavel_messaging::migrator()
        .run(&db.pool)
        .await
        .expect("migrations apply");
    // 25,000 old rows of `a` (more than one batch), 5 recent ones, and old rows of `b`.
    sqlx::query(
        "INSERT INTO inbox (consumer, event_id, event_type, handled_at)
         SELECT 'a', gen_random_uuid(), 'note.noted', now() - interval '40 days' FROM generate_series(1, 25000)
         UNION ALL
         SELECT 'a', gen_random_uuid(), 'note.noted', now() - interval '1 day' FROM generate_series(1, 5)
         UNION ALL
         SELECT 'b', gen_random_uuid(), 'note.noted', now() - interval '40 days' FROM generate_series(1, 7)",
    )
    .execute(&db.pool)
    .await
    .expect("rows");
    let deleted = prune_inbox(&db.pool, "a", Duration::from_secs(30 * 24 * 3600))
        .await
        .expect("pruned");
    assert_eq!(deleted, 25_000);
    let left: Vec<(String, i64)> =
        sqlx::query_as("SELECT consumer, count(*) FROM inbox GROUP BY consumer ORDER BY consumer")
            .fetch_all(&db.pool)
            .await
            .expect("counts");
    assert_eq!(left, [("a".to_owned(), 5), ("b".to_owned(), 7)]);
}
