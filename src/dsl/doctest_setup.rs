// Shared set-up for the `dsl` doctests (included with `include!`, never compiled as a module): an
// `items` table and, with the `sqlite` feature, an in-memory database holding three rows.
#[allow(unused_imports)]
use diesel::prelude::*;
#[allow(unused_imports)]
use diesel_vector::{Vector, VectorExpressionMethods};

diesel::table! {
    use diesel::sql_types::*;
    use diesel_vector::sql_types::Vector;

    items (id) {
        id -> Integer,
        embedding -> Vector,
    }
}

/// An in-memory database set up by the crate, with `items` 1: [1, 0, 0], 2: [0, 1, 0], 3: [-1, 0, 0].
#[cfg(feature = "sqlite")]
#[allow(dead_code)]
fn establish() -> Result<diesel::SqliteConnection, Box<dyn std::error::Error>> {
    let mut conn = diesel_vector::sqlite::establish(":memory:")?;
    diesel::sql_query("CREATE TABLE items (id INTEGER PRIMARY KEY, embedding BLOB NOT NULL)").execute(&mut conn)?;
    for (id, values) in [(1, [1.0, 0.0, 0.0]), (2, [0.0, 1.0, 0.0]), (3, [-1.0, 0.0, 0.0])] {
        diesel::insert_into(items::table)
            .values((items::id.eq(id), items::embedding.eq(Vector::try_from(values)?)))
            .execute(&mut conn)?;
    }
    Ok(conn)
}
