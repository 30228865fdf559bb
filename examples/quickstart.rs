//! Writes a few embeddings to an SQLite file and reads them back, with no server.
//!
//! ```text
//! cargo run --example quickstart [PATH]
//! ```

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_vector::Vector;

diesel::table! {
    use diesel::sql_types::*;
    use diesel_vector::sql_types::Vector;

    notes (id) {
        id -> Integer,
        body -> Text,
        embedding -> Vector,
    }
}

/// A toy, deterministic embedding: each word bumps a few dimensions chosen by its hash.
fn embed(text: &str, dims: usize) -> Result<Vector, diesel_vector::VectorError> {
    let mut values = vec![0f32; dims];
    for word in text.split_whitespace() {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in word.to_lowercase().bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        for k in 0..4 {
            let i = ((h >> (k * 16)) as usize) % dims;
            values[i] += if (h >> (k + 60)) & 1 == 0 { 1.0 } else { -1.0 };
        }
    }
    let norm = values.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::MIN_POSITIVE);
    Vector::new(values.into_iter().map(|x| x / norm).collect())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).unwrap_or_else(|| "quickstart.db".to_owned());
    let mut conn = diesel_vector::sqlite::establish(&path)?;
    conn.batch_execute(
        "DROP TABLE IF EXISTS notes;
         CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL, embedding BLOB NOT NULL);",
    )?;

    let bodies = ["rust embeds sqlite", "postgres stores vectors", "vectors in a sqlite file"];
    for (id, body) in (1..).zip(bodies) {
        diesel::insert_into(notes::table)
            .values((notes::id.eq(id), notes::body.eq(body), notes::embedding.eq(embed(body, 1536)?)))
            .execute(&mut conn)?;
    }

    let rows: Vec<(i32, String, Vector)> = notes::table.order(notes::id).load(&mut conn)?;
    let version = diesel_vector::sqlite::sqlite_vec_version(&mut conn)?;
    println!("{} ({} notes, sqlite-vec {})", path, rows.len(), version.as_deref().unwrap_or("absent"));
    for (id, body, embedding) in rows {
        println!("{id:>3}  {body:<28} {} dims, first {:.4}", embedding.dims(), embedding.as_slice()[0]);
    }
    Ok(())
}
