//! Doctor's version findings on the SQLite library this build links: the bundled one (current) or the
//! system's (Debian 12: 3.40.1, which has the WAL-reset bug fixed in 3.51.3).

use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel_vector::database::DatabaseConnection;
use diesel_vector::doctor::{self, Level};

#[test]
fn doctor_flags_an_sqlite_library_with_the_wal_reset_bug() {
    let mut conn = DatabaseConnection::Sqlite(crate::conn());
    conn.run_pending_migrations().unwrap();
    #[derive(QueryableByName)]
    struct V {
        #[diesel(sql_type = Text)]
        v: String,
    }
    let DatabaseConnection::Sqlite(c) = &mut conn else { unreachable!() };
    let version = diesel::sql_query("SELECT sqlite_version() AS v").get_result::<V>(c).unwrap().v;
    let numbers: Vec<u32> = version.split('.').map(|n| n.parse().unwrap()).collect();
    let report = doctor::diagnose(&mut conn).unwrap();
    let flagged = report.findings.iter().any(|f| {
        f.level == Level::Warning && f.message.starts_with(&format!("SQLite {version} has the WAL-reset bug"))
    });
    assert_eq!(flagged, numbers < vec![3, 51, 3], "{version}: {:?}", report.findings);
    assert!(!report.needs_action(), "3.38 or later in every build: {:?}", report.findings);
}
