//! SQL identifiers: checked once, then always quoted.
//!
//! Table and column names come from users (a CLI flag, a registry row, a catalog), so they never reach SQL
//! unquoted. [`Ident`] is a name that passed [`Ident::new`]'s checks; [`Ident::quoted`] renders it as a
//! delimited identifier (`"..."`, inner quotes doubled), which both PostgreSQL and SQLite read back as
//! exactly the same name: case, spaces, quotes, unicode and reserved words included.

use std::fmt;

/// The longest identifier PostgreSQL keeps (`NAMEDATALEN - 1` bytes); longer names are silently
/// truncated by the server, so they are refused here.
pub const MAX_IDENT_BYTES: usize = 63;

/// Why a name cannot be an identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentError {
    /// The name is empty.
    #[error("{what} is empty: give a table or column name")]
    Empty {
        /// What the name is for (`table`, `column`, ...).
        what: &'static str,
    },
    /// The name is longer than PostgreSQL keeps.
    #[error(
        "{what} `{name}` is {len} bytes long: PostgreSQL keeps at most {MAX_IDENT_BYTES} bytes of an identifier \
         and would silently shorten it"
    )]
    TooLong {
        /// What the name is for.
        what: &'static str,
        /// The name.
        name: String,
        /// Its length in bytes.
        len: usize,
    },
    /// The name contains a character no database identifier can hold (NUL) or that would be invisible in
    /// every listing (another control character).
    #[error("{what} {name} contains a control character, which no SQL identifier can hold")]
    ControlCharacter {
        /// What the name is for.
        what: &'static str,
        /// The name, as Rust's debug form (control characters escaped).
        name: String,
    },
}

/// A checked SQL identifier: non-empty, at most [`MAX_IDENT_BYTES`] bytes, no control characters.
///
/// ```
/// use diesel_vector::index::Ident;
///
/// assert_eq!(Ident::new("documents", "table")?.quoted(), r#""documents""#);
/// assert_eq!(Ident::new(r#"my "odd" table"#, "table")?.quoted(), r#""my ""odd"" table""#);
/// assert!(Ident::new("", "column").is_err());
/// # Ok::<(), diesel_vector::index::IdentError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ident(String);

impl Ident {
    /// Checks `name`; `what` says what it names, for the error message.
    ///
    /// # Errors
    ///
    /// [`IdentError`] when the name is empty, too long for PostgreSQL, or holds a control character.
    pub fn new(name: &str, what: &'static str) -> Result<Self, IdentError> {
        if name.is_empty() {
            return Err(IdentError::Empty { what });
        }
        if name.chars().any(char::is_control) {
            return Err(IdentError::ControlCharacter { what, name: format!("{name:?}") });
        }
        if name.len() > MAX_IDENT_BYTES {
            return Err(IdentError::TooLong { what, name: name.to_owned(), len: name.len() });
        }
        Ok(Self(name.to_owned()))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as a delimited SQL identifier: `"name"`, with every `"` doubled.
    pub fn quoted(&self) -> String {
        quote(&self.0)
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Ident {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// `name` as a delimited SQL identifier (`"..."`, inner quotes doubled). For names that did not come
/// through [`Ident::new`], such as the ones the crate derives; the caller makes sure they hold no NUL.
pub(crate) fn quote(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `name` as messages show it: as it is when it is a plain identifier (ASCII letters, digits and `_`, not
/// starting with a digit), otherwise between double quotes (inner ones doubled), so that `table.column`
/// reads one way whatever the names hold (`"My Notes".emb`, `items."k=v"`).
///
/// ```
/// use diesel_vector::index::{shown, shown_column};
///
/// assert_eq!(shown("documents"), "documents");
/// assert_eq!(shown_column("My Notes", "emb"), r#""My Notes".emb"#);
/// ```
pub fn shown(name: &str) -> std::borrow::Cow<'_, str> {
    let plain = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        std::borrow::Cow::Borrowed(name)
    } else {
        std::borrow::Cow::Owned(quote(name))
    }
}

/// `table.column` as messages show it ([`shown`]).
pub fn shown_column(table: &str, column: &str) -> String {
    format!("{}.{}", shown(table), shown(column))
}

/// `text` as an SQL string literal (`'...'`, inner quotes doubled). Only for text the crate writes into
/// migration files, where no bind parameter exists; the caller makes sure it holds no NUL.
pub(crate) fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        if c == '\'' {
            out.push('\'');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_quoted_not_interpolated() {
        let cases = [
            ("plain", r#""plain""#),
            ("Mixed Case", r#""Mixed Case""#),
            ("select", r#""select""#),
            (r#"a"b"#, r#""a""b""#),
            (r#"x"; DROP TABLE t; --"#, r#""x""; DROP TABLE t; --""#),
            ("émbed ding", r#""émbed ding""#),
            ("'", r#""'""#),
        ];
        for (name, quoted) in cases {
            assert_eq!(Ident::new(name, "column").unwrap().quoted(), quoted, "{name}");
        }
    }

    #[test]
    fn literals_double_single_quotes() {
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal(r#"["a","b"]"#), r#"'["a","b"]'"#);
    }

    #[test]
    fn names_no_database_can_hold_are_refused() {
        assert_eq!(Ident::new("", "table"), Err(IdentError::Empty { what: "table" }));
        assert!(matches!(Ident::new("a\0b", "column"), Err(IdentError::ControlCharacter { .. })));
        assert!(matches!(Ident::new("a\nb", "column"), Err(IdentError::ControlCharacter { .. })));
        // Messages show plain names as they are and quote the others.
        assert_eq!(shown_column("documents", "embedding"), "documents.embedding");
        assert_eq!(shown_column("My Notes", "emb"), r#""My Notes".emb"#);
        assert_eq!(shown_column("a.b", r#"c "d""#), r#""a.b"."c ""d""""#);
        assert_eq!(shown("1st"), r#""1st""#);
        // The name as Rust's debug form, quoted once.
        let err = Ident::new("a\tb", "vector column").unwrap_err().to_string();
        assert_eq!(err, r#"vector column "a\tb" contains a control character, which no SQL identifier can hold"#);
        let long = "x".repeat(MAX_IDENT_BYTES + 1);
        let err = Ident::new(&long, "table").unwrap_err();
        assert!(err.to_string().contains("64 bytes long"), "{err}");
        assert!(Ident::new(&"x".repeat(MAX_IDENT_BYTES), "table").is_ok());
    }
}
