//! Multi-row inserts and upserts of vector rows through the `#[derive(MultiConnection)]` enum, which its
//! `MultiBackend` cannot build: `diesel_vector::multi_connection` runs them on the backend inside.

use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_vector::{multi_connection, Vector};

use crate::common::{assert_bit_exact, sample_1536};
use crate::{connections, items};

#[derive(Insertable)]
#[diesel(table_name = items)]
struct NewItem<'a> {
    id: i32,
    embedding: Option<&'a Vector>,
}

fn stored(conn: &mut crate::AnyConnection) -> Vec<(i32, Option<Vector>)> {
    items::table.order(items::id).load(conn).unwrap()
}

#[test]
fn many_rows_go_in_with_one_call_on_both_backends() {
    let vectors: Vec<Vector> = (0..50).map(sample_1536).collect();
    for (name, mut conn) in connections() {
        let rows: Vec<NewItem<'_>> = vectors
            .iter()
            .enumerate()
            .map(|(i, v)| NewItem { id: i as i32 + 1, embedding: (i % 7 != 3).then_some(v) })
            .collect();
        let inserted =
            multi_connection::insert_rows(&mut conn, items::table, &rows).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(inserted, 50, "{name}");
        let back = stored(&mut conn);
        assert_eq!(back.len(), 50, "{name}");
        for ((id, got), v) in back.iter().zip(&vectors) {
            match got {
                Some(got) => assert_bit_exact(got, v),
                None => assert_eq!(id % 7, 4, "{name}: only the rows inserted as NULL are NULL"),
            }
        }

        // All or nothing: a duplicate id fails the whole statement. (In a savepoint: the PostgreSQL
        // connection is inside the test's transaction, which a failed statement would abort.)
        let again = [NewItem { id: 100, embedding: Some(&vectors[0]) }, NewItem { id: 1, embedding: None }];
        let err = conn.transaction(|c| multi_connection::insert_rows(c, items::table, &again[..])).unwrap_err();
        assert!(
            matches!(err, diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)),
            "{name}: {err:?}"
        );
        assert_eq!(stored(&mut conn).len(), 50, "{name}: nothing of the failed insert is kept");
    }
}

#[test]
fn an_upsert_replaces_the_stored_vector_on_both_backends() {
    let (old, new) = (sample_1536(1), sample_1536(2));
    for (name, mut conn) in connections() {
        multi_connection::insert_rows(&mut conn, items::table, vec![NewItem { id: 7, embedding: Some(&old) }]).unwrap();
        let upsert = diesel::insert_into(items::table)
            .values(NewItem { id: 7, embedding: Some(&new) })
            .on_conflict(items::id)
            .do_update()
            .set(items::embedding.eq(excluded(items::embedding)))
            .returning(items::id);
        let id: i32 = multi_connection::get_result(&mut conn, upsert).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(id, 7);
        let back = stored(&mut conn);
        assert_eq!(back.len(), 1, "{name}: updated, not inserted");
        assert_bit_exact(back[0].1.as_ref().unwrap(), &new);

        // A new key is inserted. (Diesel builds no multi-row upsert for SQLite: one statement per row.)
        for (id, v) in [(7, &old), (8, &new)] {
            let upsert = diesel::insert_into(items::table)
                .values(NewItem { id, embedding: Some(v) })
                .on_conflict(items::id)
                .do_update()
                .set(items::embedding.eq(excluded(items::embedding)));
            assert_eq!(multi_connection::execute(&mut conn, upsert).unwrap(), 1, "{name}");
        }
        let back = stored(&mut conn);
        assert_eq!(back.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [7, 8], "{name}");
        assert_bit_exact(back[0].1.as_ref().unwrap(), &old);
        assert_bit_exact(back[1].1.as_ref().unwrap(), &new);

        let ids: Vec<i32> =
            multi_connection::load(&mut conn, items::table.select(items::id).order(items::id.desc())).unwrap();
        assert_eq!(ids, [8, 7], "{name}: load through the backend too");
    }
}
