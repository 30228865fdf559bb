//! Deciding, before anything changes, what to do with each pending migration: run it, adopt it (its
//! objects exist already), or refuse (they exist with another shape, or only some of them do).
//!
//! The input is a [`Rehearsal`]: the state after the applied migrations and after each pending one, as
//! the migrations' own SQL produced it in a scratch space. A pending migration's *objects* are those it
//! creates, changes or drops there. The real database is compared with the rehearsal on exactly those
//! objects, as it will be when the migration's turn comes (the plan's earlier runs included):
//!
//! 1. as the rehearsal left them after the migration: adopt;
//! 2. as they were before it: run it;
//! 3. as a later pending migration leaves them (the database is further along): adopt;
//! 4. none of them exists: run it (its own SQL says what is wrong, if anything);
//! 5. otherwise refuse, naming the differences.
//!
//! The vector indexes a migration adds to the registry are not objects: adopting a migration writes those
//! the registry lacks (an application that created its index by hand gets it registered), and a
//! migration that only registers indexes is adopted when they all are registered already.

use std::collections::BTreeSet;

use super::shape::{matches, table_differences, Focus, Object, Real, Rehearsal, Shape, Stage};
use super::MigrationError;
use crate::index::IndexSpec;

/// What to do with one pending migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Run its SQL.
    Run,
    /// Record it as applied, and register these indexes.
    Adopt(Vec<IndexSpec>),
}

/// The steps for `names` (the pending migrations, oldest first), from what the rehearsal found and the
/// real database. Migrations past the rehearsal's end run.
pub(crate) fn plan(names: &[String], rehearsal: &Rehearsal, real: Real) -> Result<Vec<Step>, MigrationError> {
    let mut projected = real;
    let stages = &rehearsal.stages;
    let mut steps = Vec::with_capacity(names.len());
    for (k, name) in names.iter().enumerate() {
        let step = match (stages.get(k), stages.get(k + 1)) {
            (Some(before), Some(after)) => decide(name, before, after, &stages[k + 2..], &mut projected)?,
            _ => Step::Run,
        };
        steps.push(step);
    }
    Ok(steps)
}

/// Where in a [`Stage`] an object was found: among the objects the migrations made, or among the
/// copies of the database's own tables. An object is compared with the rehearsal in the same place at
/// every stage: a table a migration creates did not exist before it, even though the copy of a real
/// table of that name did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Made,
    Copied,
}

fn lookup<'s>(stage: &'s Stage, place: Place, object: &Object) -> Option<&'s Shape> {
    match place {
        Place::Made => stage.objects.get(object),
        Place::Copied => stage.copies.get(object),
    }
}

/// An object a migration creates, changes or drops.
struct Touched<'s> {
    object: &'s Object,
    place: Place,
    focus: Focus,
}

fn decide(
    name: &str,
    before: &Stage,
    after: &Stage,
    later: &[Stage],
    projected: &mut Real,
) -> Result<Step, MigrationError> {
    let mut touched: Vec<Touched<'_>> = Vec::new();
    for place in [Place::Made, Place::Copied] {
        let (b, a) = match place {
            Place::Made => (&before.objects, &after.objects),
            Place::Copied => (&before.copies, &after.copies),
        };
        let keys: BTreeSet<&Object> = b.keys().chain(a.keys()).collect();
        for object in keys {
            if b.get(object) != a.get(object) {
                touched.push(Touched { object, place, focus: Focus::of_change(b.get(object), a.get(object)) });
            }
        }
    }
    let outside: Vec<&String> = after.outside.symmetric_difference(&before.outside).collect();
    let added: Vec<&IndexSpec> = after.registry.iter().filter(|s| !before.registry.contains(s)).collect();

    if touched.is_empty() && outside.is_empty() {
        // Data only (or nothing this runner compares): registrations decide.
        let registered = added.iter().filter(|s| projected.registry.iter().any(|r| r.name() == s.name())).count();
        if registered == 0 {
            register(projected, &added);
            return Ok(Step::Run);
        }
        if registered == added.len() {
            return adopt(name, &added, projected);
        }
        let present = added.iter().filter(|s| projected.registry.iter().any(|r| r.name() == s.name()));
        let missing = added.iter().filter(|s| !projected.registry.iter().any(|r| r.name() == s.name()));
        return Err(MigrationError::PartiallyPresent {
            migration: name.to_owned(),
            present: present.map(|s| s.name().to_owned()).collect(),
            missing: missing.map(|s| s.name().to_owned()).collect(),
        });
    }

    let matches_stage = |stage: &Stage, projected: &Real| {
        touched.iter().all(|t| matches(projected.objects.get(t.object), lookup(stage, t.place, t.object), &t.focus))
    };
    if outside.is_empty() && matches_stage(after, projected) {
        return adopt(name, &added, projected);
    }
    if matches_stage(before, projected) {
        run(&touched, after, &added, projected);
        return Ok(Step::Run);
    }
    if outside.is_empty() && later.iter().any(|stage| matches_stage(stage, projected)) {
        return adopt(name, &added, projected);
    }
    if touched.iter().all(|t| !projected.objects.contains_key(t.object)) {
        run(&touched, after, &added, projected);
        return Ok(Step::Run);
    }
    Err(refusal(name, &touched, after, projected, &outside))
}

/// The plan runs the migration: from then on the database holds what the rehearsal left.
fn run(touched: &[Touched<'_>], after: &Stage, added: &[&IndexSpec], projected: &mut Real) {
    for t in touched {
        match lookup(after, t.place, t.object) {
            Some(shape) => projected.objects.insert(t.object.clone(), shape.clone()),
            None => projected.objects.remove(t.object),
        };
    }
    register(projected, added);
}

fn register(projected: &mut Real, added: &[&IndexSpec]) {
    projected.registry.retain(|r| !added.iter().any(|s| s.name() == r.name()));
    projected.registry.extend(added.iter().map(|s| (*s).clone()));
}

/// Adopts: registers the indexes the registry lacks; one registered otherwise is an error.
fn adopt(name: &str, added: &[&IndexSpec], projected: &mut Real) -> Result<Step, MigrationError> {
    let mut missing = Vec::new();
    for spec in added {
        match projected.registry.iter().find(|r| r.name() == spec.name()) {
            Some(found) if found == *spec => {}
            Some(found) => {
                return Err(MigrationError::RegisteredDifferently {
                    migration: name.to_owned(),
                    index: spec.name().to_owned(),
                    registered: describe(found),
                    expected: describe(spec),
                })
            }
            None => missing.push((*spec).clone()),
        }
    }
    projected.registry.extend(missing.iter().cloned());
    Ok(Step::Adopt(missing))
}

/// `documents.embedding vector(768) cosine, partitioned by lang, hnsw documents_embedding_cosine_idx`.
fn describe(spec: &IndexSpec) -> String {
    let partitions: Vec<&str> = spec.partition_by().collect();
    let mut out =
        format!("{}.{} {} {}", spec.table(), spec.column(), spec.element().pg_type(spec.dims()), spec.metric().name());
    if !partitions.is_empty() {
        out.push_str(&format!(", partitioned by {}", partitions.join(", ")));
    }
    out.push_str(&format!(", {}", spec.pg_index().name()));
    if let Some(index) = spec.pg_index_name() {
        out.push_str(&format!(" {index}"));
    }
    out.push_str(&format!(", sqlite {}", spec.sqlite_index().name()));
    out
}

/// The error for a migration whose objects are neither all there nor all absent: a table (or index) of
/// another shape first, then what exists and what does not.
fn refusal(
    name: &str,
    touched: &[Touched<'_>],
    expected: &Stage,
    projected: &Real,
    outside: &[&String],
) -> MigrationError {
    let wanted = |t: &Touched<'_>| lookup(expected, t.place, t.object);
    let index_difference = |t: &Touched<'_>| match (projected.objects.get(t.object), wanted(t)) {
        (Some(Shape::Index(found)), Some(Shape::Index(wanted))) if found != wanted => {
            Some(format!("index {} is {found}, expected {wanted}", t.object.name()))
        }
        _ => None,
    };
    for t in touched {
        if let (Object::Table(table), Some(Shape::Table(found)), Some(Shape::Table(wanted))) =
            (t.object, projected.objects.get(t.object), wanted(t))
        {
            let mut differences = table_differences(wanted, found, &t.focus);
            differences.extend(
                touched
                    .iter()
                    .filter(|i| matches!(i.object, Object::Index { table: of, .. } if of == table))
                    .filter_map(index_difference),
            );
            if !differences.is_empty() {
                return MigrationError::IncompatibleTable { table: table.clone(), differences };
            }
        }
    }
    for t in touched {
        if let (Object::Index { table, .. }, Some(difference)) = (t.object, index_difference(t)) {
            return MigrationError::IncompatibleTable { table: table.clone(), differences: vec![difference] };
        }
    }
    // Indexes count with their table: listed when missing, not when present.
    let present = touched
        .iter()
        .filter(|t| !matches!(t.object, Object::Index { .. }) && projected.objects.contains_key(t.object))
        .map(|t| t.object.name().to_owned());
    let missing = touched
        .iter()
        .filter(|t| wanted(t).is_some() && !projected.objects.contains_key(t.object))
        .map(|t| t.object.name().to_owned())
        .chain(outside.iter().map(|line| (*line).clone()));
    MigrationError::PartiallyPresent {
        migration: name.to_owned(),
        present: present.collect(),
        missing: missing.collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrations::shape::{FoundColumn, Snapshot, TableShape};

    fn table(columns: &[(&str, &str)]) -> Shape {
        Shape::Table(TableShape {
            columns: columns
                .iter()
                .map(|(n, t)| FoundColumn { name: (*n).into(), ty: (*t).into(), not_null: false })
                .collect(),
            unique: vec![],
        })
    }

    fn stage(objects: &[(Object, Shape)]) -> Stage {
        Stage { objects: objects.iter().cloned().collect(), ..Stage::default() }
    }

    fn t(name: &str) -> Object {
        Object::Table(name.into())
    }

    fn idx(table: &str, name: &str) -> Object {
        Object::Index { table: table.into(), name: name.into() }
    }

    fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("m{i}")).collect()
    }

    fn real(objects: &[(Object, Shape)]) -> Real {
        Real { objects: objects.iter().cloned().collect::<Snapshot>(), registry: vec![] }
    }

    fn rehearsal(stages: Vec<Stage>) -> Rehearsal {
        Rehearsal { stages, failure: None }
    }

    #[test]
    fn absent_objects_run_and_present_ones_are_adopted() {
        let docs = table(&[("id", "bigint")]);
        let with_index = [(t("docs"), docs.clone()), (idx("docs", "i"), Shape::Index("hnsw (v)".into()))];
        let r = rehearsal(vec![stage(&[]), stage(&[(t("docs"), docs.clone())]), stage(&with_index)]);
        assert_eq!(plan(&names(2), &r, real(&[])).unwrap(), [Step::Run, Step::Run]);
        assert_eq!(plan(&names(2), &r, real(&[(t("docs"), docs.clone())])).unwrap(), [Step::Adopt(vec![]), Step::Run]);
        assert_eq!(plan(&names(2), &r, real(&with_index)).unwrap(), [Step::Adopt(vec![]), Step::Adopt(vec![])]);
    }

    #[test]
    fn a_database_further_along_adopts_earlier_migrations() {
        // m1 creates q(embedding_id), m2 renames the column to id; the database has q(id).
        let old = table(&[("embedding_id", "INTEGER")]);
        let new = table(&[("id", "INTEGER")]);
        let r = rehearsal(vec![stage(&[]), stage(&[(t("q"), old.clone())]), stage(&[(t("q"), new.clone())])]);
        assert_eq!(plan(&names(2), &r, real(&[(t("q"), new)])).unwrap(), [Step::Adopt(vec![]), Step::Adopt(vec![])]);
        assert_eq!(plan(&names(2), &r, real(&[(t("q"), old)])).unwrap(), [Step::Adopt(vec![]), Step::Run]);
    }

    #[test]
    fn a_table_created_then_renamed_away_runs_on_a_database_before_both() {
        let r = rehearsal(vec![
            stage(&[(t("docs"), table(&[("a", "int")]))]),
            stage(&[(t("docs"), table(&[("a", "int")])), (t("new_docs"), table(&[("a", "int")]))]),
            stage(&[(t("docs"), table(&[("a", "int")]))]),
        ]);
        let db = real(&[(t("docs"), table(&[("a", "int")]))]);
        assert_eq!(plan(&names(2), &r, db).unwrap(), [Step::Run, Step::Run]);
    }

    #[test]
    fn another_shape_or_half_the_objects_is_refused() {
        let docs = table(&[("id", "bigint")]);
        let with_index = [(t("docs"), docs.clone()), (idx("docs", "i"), Shape::Index("hnsw (v)".into()))];
        let r = rehearsal(vec![stage(&[]), stage(&with_index)]);
        let err = plan(&names(1), &r, real(&[(t("docs"), table(&[("id", "text")]))])).unwrap_err();
        assert!(
            matches!(&err, MigrationError::IncompatibleTable { table, differences } if table == "docs" && differences == &["column id is text, expected bigint"]),
            "{err:?}"
        );
        let err = plan(&names(1), &r, real(&[(t("docs"), docs.clone())])).unwrap_err();
        assert!(
            matches!(&err, MigrationError::PartiallyPresent { present, missing, .. } if present == &["docs"] && missing == &["i"]),
            "{err:?}"
        );
        let other = [(t("docs"), docs), (idx("docs", "i"), Shape::Index("hnsw (v l2)".into()))];
        let err = plan(&names(1), &r, real(&other)).unwrap_err();
        assert!(err.to_string().contains("index i is hnsw (v l2), expected hnsw (v)"), "{err}");
    }

    #[test]
    fn a_migration_past_the_rehearsal_runs() {
        let r = rehearsal(vec![stage(&[])]);
        assert_eq!(plan(&names(2), &r, real(&[])).unwrap(), [Step::Run, Step::Run]);
    }
}
