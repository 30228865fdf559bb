//! The backend-neutral form of a column and of its values, and the one conversion table between them.
//!
//! Each column is read from its catalog as a [`Class`]: what its values are, whatever backend holds them
//! (PostgreSQL's `int4` and an SQLite `INTEGER` are both integers; a `timestamp` and an SQLite `DATETIME`
//! both timestamps with microseconds). Each value is read into a [`Value`] of its column's class,
//! converted to the target column's class by [`Step`] (the conversion table: [`step`]), and written. Rows
//! are hashed over their values in this form, so the two sides of a copy compare equal exactly when the
//! target holds what the conversion promised.

use std::fmt;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};

use super::checksum::RowHasher;
use crate::index::Element;

/// What a column holds, as the copy sees it on either backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// A signed integer of 16, 32 or 64 bits (PostgreSQL `int2`/`int4`/`int8`; SQLite `INTEGER`: 64).
    Integer { bits: u8 },
    /// A float of 32 or 64 bits. `sqlite`: an SQLite `REAL`, which turns NaN into NULL and -0.0 into 0.0.
    Real { bits: u8, sqlite: bool },
    /// Text; `max_chars` for `varchar(n)`; `nul`: whether it may hold a NUL character (SQLite yes,
    /// PostgreSQL no).
    Text { max_chars: Option<u32>, nul: bool },
    /// A boolean (SQLite: the integers 0 and 1, as Diesel reads and writes them).
    Bool,
    /// A timestamp without time zone, to the microsecond (SQLite: Diesel's text form).
    Timestamp,
    /// PostgreSQL `timestamptz`: an instant, kept as its UTC timestamp.
    #[cfg_attr(not(any(feature = "pg", feature = "jsonl")), allow(dead_code))]
    TimestampTz,
    /// A date (SQLite: `YYYY-MM-DD`).
    Date,
    /// A time of day, to the microsecond (SQLite: `HH:MM:SS.ffffff`).
    Time,
    /// Bytes (`bytea`, `BLOB`).
    Bytes,
    /// A vector column of one of pgvector's types, with its dimensions when the catalog or the index
    /// registry says them. SQLite keeps it as a BLOB in the crate's format for the element type.
    Vector { element: Element, dims: Option<u32> },
}

impl Class {
    /// The neutral type name, as JSON lines headers spell it: `int64`, `float32`, `text`, `bool`,
    /// `timestamp`, `timestamptz`, `date`, `time`, `bytes`, `vector(768)`...
    pub(crate) fn name(&self) -> String {
        match self {
            Self::Integer { bits } => format!("int{bits}"),
            Self::Real { bits, .. } => format!("float{bits}"),
            Self::Text { .. } => "text".into(),
            Self::Bool => "bool".into(),
            Self::Timestamp => "timestamp".into(),
            Self::TimestampTz => "timestamptz".into(),
            Self::Date => "date".into(),
            Self::Time => "time".into(),
            Self::Bytes => "bytes".into(),
            Self::Vector { element, dims: Some(d) } => format!("{}({d})", element.name()),
            Self::Vector { element, dims: None } => element.name().into(),
        }
    }

    /// Parses [`Class::name`]'s output (texts and floats with no backend limits).
    #[cfg(any(test, feature = "jsonl"))]
    pub(crate) fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "int16" => Self::Integer { bits: 16 },
            "int32" => Self::Integer { bits: 32 },
            "int64" => Self::Integer { bits: 64 },
            "float32" => Self::Real { bits: 32, sqlite: false },
            "float64" => Self::Real { bits: 64, sqlite: false },
            "text" => Self::Text { max_chars: None, nul: true },
            "bool" => Self::Bool,
            "timestamp" => Self::Timestamp,
            "timestamptz" => Self::TimestampTz,
            "date" => Self::Date,
            "time" => Self::Time,
            "bytes" => Self::Bytes,
            _ => {
                let (element, dims) = match name.split_once('(') {
                    Some((e, rest)) => (e, Some(rest.strip_suffix(')')?.parse().ok()?)),
                    None => (name, None),
                };
                Self::Vector { element: element.parse().ok()?, dims }
            }
        })
    }

    /// Whether keys of this class can page a table (the same order on both backends).
    pub(crate) fn key_kind(&self) -> Option<KeyKind> {
        match self {
            Self::Integer { .. } => Some(KeyKind::Int),
            Self::Text { .. } => Some(KeyKind::Text),
            _ => None,
        }
    }
}

/// A column's type: the class it is read as (`None`: no conversion exists), and the catalog's spelling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ColumnType {
    pub(crate) class: Option<Class>,
    /// As the catalog writes it (`varchar(255)`, `DATETIME`, `vector(768)`), for messages.
    pub(crate) name: String,
}

/// A value in the neutral form.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Bool(bool),
    /// Microseconds since 1970-01-01 00:00:00 (UTC for `timestamptz`).
    Timestamp(i64),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since midnight.
    Time(i64),
    Bytes(Vec<u8>),
    /// A vector in the crate's SQLite BLOB format for its column's element type (little-endian `f32`
    /// for `vector`), validated.
    Vector(Vec<u8>),
}

impl Value {
    /// Adds the value to a row hash: a tag per kind, then its bytes (floats by their bits, every NaN as
    /// one; text and bytes with their length).
    pub(crate) fn hash(&self, h: &mut RowHasher) {
        match self {
            Self::Null => h.bytes(&[0]),
            Self::Int(v) => h.bytes(&[1]).int(*v),
            Self::Real(v) => h.bytes(&[2]).int(if v.is_nan() { 0x7ff8 } else { v.to_bits() as i64 }),
            Self::Text(v) => h.bytes(&[3]).text(v),
            Self::Bool(v) => h.bytes(&[4, u8::from(*v)]),
            Self::Timestamp(v) => h.bytes(&[5]).int(*v),
            Self::Date(v) => h.bytes(&[6]).int(i64::from(*v)),
            Self::Time(v) => h.bytes(&[7]).int(*v),
            Self::Bytes(v) => h.bytes(&[8]).int(len(v)).bytes(v),
            Self::Vector(v) => h.bytes(&[9]).int(len(v)).bytes(v),
        };
    }

    /// The key part this value is, for a key column.
    pub(crate) fn key_part(&self) -> Option<KeyPart> {
        match self {
            Self::Int(v) => Some(KeyPart::Int(*v)),
            Self::Text(v) => Some(KeyPart::Text(v.clone())),
            _ => None,
        }
    }
}

fn len(bytes: &[u8]) -> i64 {
    i64::try_from(bytes.len()).unwrap_or(i64::MAX)
}

/// The kinds of key column a table can be paged by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Int,
    Text,
}

/// One column of a primary key's value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyPart {
    /// An integer column's value.
    Int(i64),
    /// A text column's value (ordered by its UTF-8 bytes on both backends).
    Text(String),
}

/// A row's primary key value: one part per key column. Keys order rows the same way on both backends
/// (integers by value, texts by their bytes).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(pub Vec<KeyPart>);

impl Key {
    /// The key of a single integer column (as most tables have).
    pub fn int(id: i64) -> Self {
        Self(vec![KeyPart::Int(id)])
    }

    /// The value when the key is one integer column.
    pub fn as_int(&self) -> Option<i64> {
        match self.0.as_slice() {
            [KeyPart::Int(id)] => Some(*id),
            _ => None,
        }
    }
}

/// `42`, `'abc'`, or `(1, 'abc')` for a key of several columns.
impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let part = |f: &mut fmt::Formatter<'_>, p: &KeyPart| match p {
            KeyPart::Int(v) => write!(f, "{v}"),
            KeyPart::Text(v) => write!(f, "'{}'", v.replace('\'', "''")),
        };
        match self.0.as_slice() {
            [one] => part(f, one),
            parts => {
                f.write_str("(")?;
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    part(f, p)?;
                }
                f.write_str(")")
            }
        }
    }
}

/// How a value of one class becomes a value of another: one row of the conversion table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Nothing to do beyond the target's limits.
    Same(Class),
    /// An integer kept if it fits the target's bits.
    Integer { bits: u8 },
    /// SQLite's 0/1 to a boolean.
    IntToBool,
    /// A boolean to 0/1.
    BoolToInt,
}

/// The conversion table: how a value of `from` becomes one of `to`, or why no conversion keeps every
/// value (`Err` says so in words). Only conversions that lose nothing for any valid value are listed;
/// value-level limits (an integer out of range, text too long) are checked per row by [`Step::apply`].
pub(crate) fn step(from: Class, to: Class) -> Result<Step, String> {
    use Class::*;
    match (from, to) {
        (Integer { .. }, Integer { bits }) => Ok(Step::Integer { bits }),
        (Integer { .. }, Bool) => Ok(Step::IntToBool),
        (Bool, Integer { .. }) => Ok(Step::BoolToInt),
        (Real { .. }, Real { .. })
        | (Text { .. }, Text { .. })
        | (Bool, Bool)
        | (Timestamp | TimestampTz, Timestamp | TimestampTz)
        | (Date, Date)
        | (Time, Time)
        | (Bytes, Bytes) => Ok(Step::Same(to)),
        (Vector { element: a, dims: da }, Vector { element: b, dims: db }) => {
            if a != b {
                return Err(format!("a `{a}` column cannot become a `{b}` column without changing its values"));
            }
            match (da, db) {
                (Some(x), Some(y)) if x != y => Err(format!("{x} dimensions cannot become {y}")),
                _ => Ok(Step::Same(to)),
            }
        }
        // JSON lines and SQLite: a BLOB in the element's SQLite format.
        (Bytes, Vector { .. }) => Ok(Step::Same(to)),
        (Real { .. }, Integer { .. }) | (Integer { .. }, Real { .. }) => {
            Err("integers and floats differ in what they hold exactly".into())
        }
        _ => Err("no conversion keeps every value".into()),
    }
}

impl Step {
    /// Converts one value, or says why it cannot be held by the target column as it is.
    pub(crate) fn apply(self, value: Value) -> Result<Value, String> {
        match (self, value) {
            (_, Value::Null) => Ok(Value::Null),
            (Self::Integer { bits }, Value::Int(v)) => {
                let (min, max) = int_range(bits);
                if v < min || v > max {
                    return Err(format!("{v} does not fit a {bits}-bit integer column"));
                }
                Ok(Value::Int(v))
            }
            (Self::IntToBool, Value::Int(v @ (0 | 1))) => Ok(Value::Bool(v == 1)),
            (Self::IntToBool, Value::Int(v)) => Err(format!("{v} is not a boolean (0 or 1)")),
            (Self::BoolToInt, Value::Bool(b)) => Ok(Value::Int(i64::from(b))),
            (Self::Same(class), v) => fits(class, v),
            (_, v) => Err(format!("unexpected value {v:?}")),
        }
    }
}

fn int_range(bits: u8) -> (i64, i64) {
    match bits {
        16 => (i64::from(i16::MIN), i64::from(i16::MAX)),
        32 => (i64::from(i32::MIN), i64::from(i32::MAX)),
        _ => (i64::MIN, i64::MAX),
    }
}

/// Checks a value against the limits of a column of `class`.
fn fits(class: Class, value: Value) -> Result<Value, String> {
    match (class, value) {
        (Class::Real { bits, sqlite }, Value::Real(v)) => {
            if sqlite && v.is_nan() {
                return Err("NaN, which SQLite stores as NULL".into());
            }
            if sqlite && v == 0.0 && v.is_sign_negative() {
                return Err("-0.0, which an SQLite REAL column stores as 0.0".into());
            }
            #[allow(clippy::cast_possible_truncation)] // the point: whether the f32 is the same number
            let narrowed = v as f32;
            if bits == 32 && !v.is_nan() && f64::from(narrowed) != v {
                return Err(format!("{v:?} is not exactly a 32-bit float"));
            }
            Ok(Value::Real(v))
        }
        (Class::Text { max_chars, nul }, Value::Text(v)) => {
            if !nul && v.contains('\0') {
                return Err("the text holds a NUL character, which PostgreSQL text cannot".into());
            }
            if let Some(max) = max_chars {
                let n = v.chars().count();
                if n > max as usize {
                    return Err(format!("{n} characters, more than the column's {max}"));
                }
            }
            Ok(Value::Text(v))
        }
        (Class::Vector { element, dims }, Value::Vector(blob) | Value::Bytes(blob)) => {
            super::vector::check_blob(element, &blob, dims)?;
            Ok(Value::Vector(blob))
        }
        (Class::Bool, v @ Value::Bool(_))
        | (Class::Timestamp | Class::TimestampTz, v @ Value::Timestamp(_))
        | (Class::Date, v @ Value::Date(_))
        | (Class::Time, v @ Value::Time(_))
        | (Class::Bytes, v @ Value::Bytes(_)) => Ok(v),
        (class, v) => Err(format!("unexpected value {v:?} for a {} column", class.name())),
    }
}

/// Microseconds per second.
const MICROS: i64 = 1_000_000;

#[cfg_attr(not(any(feature = "sqlite", feature = "jsonl")), allow(dead_code))]
/// A timestamp as microseconds since 1970, or why it has more precision than that.
pub(crate) fn timestamp_micros(t: NaiveDateTime) -> Result<i64, String> {
    let t = t.and_utc();
    let nanos = t.timestamp_subsec_nanos();
    if nanos % 1000 != 0 {
        return Err(format!(
            "{} has nanoseconds; timestamps keep microseconds (PostgreSQL's precision)",
            t.format("%Y-%m-%d %H:%M:%S%.9f")
        ));
    }
    t.timestamp()
        .checked_mul(MICROS)
        .and_then(|s| s.checked_add(i64::from(nanos / 1000)))
        .ok_or_else(|| format!("{} is outside the range of timestamps", t.naive_utc()))
}

/// The timestamp of `micros` since 1970, if chrono can hold it.
pub(crate) fn micros_timestamp(micros: i64) -> Option<NaiveDateTime> {
    let (secs, sub) = (micros.div_euclid(MICROS), micros.rem_euclid(MICROS));
    chrono::DateTime::from_timestamp(secs, u32::try_from(sub * 1000).ok()?).map(|t| t.naive_utc())
}

/// 1970-01-01, day 0 of [`Value::Date`].
fn epoch_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()
}

#[cfg_attr(not(any(feature = "sqlite", feature = "jsonl")), allow(dead_code))]
/// A date as days since 1970.
pub(crate) fn date_days(d: NaiveDate) -> Result<i32, String> {
    i32::try_from(d.signed_duration_since(epoch_date()).num_days()).map_err(|_| format!("{d} is out of range"))
}

/// The date `days` after 1970-01-01, if chrono can hold it.
pub(crate) fn days_date(days: i32) -> Option<NaiveDate> {
    epoch_date().checked_add_signed(chrono::TimeDelta::try_days(i64::from(days))?)
}

#[cfg_attr(not(any(feature = "sqlite", feature = "jsonl")), allow(dead_code))]
/// A time of day as microseconds since midnight, or why it has more precision than that.
pub(crate) fn time_micros(t: NaiveTime) -> Result<i64, String> {
    use chrono::Timelike;
    let nanos = t.nanosecond();
    if nanos % 1000 != 0 || nanos >= 1_000_000_000 {
        return Err(format!("{t} has nanoseconds or a leap second; times keep microseconds"));
    }
    Ok(i64::from(t.num_seconds_from_midnight()) * MICROS + i64::from(nanos / 1000))
}

/// The time `micros` after midnight, when it is one (`24:00:00` is not).
pub(crate) fn micros_time(micros: i64) -> Option<NaiveTime> {
    if !(0..86_400 * MICROS).contains(&micros) {
        return None;
    }
    let secs = u32::try_from(micros / MICROS).ok()?;
    let nanos = u32::try_from(micros % MICROS * 1000).ok()?;
    NaiveTime::from_num_seconds_from_midnight_opt(secs, nanos)
}

#[cfg_attr(not(any(feature = "sqlite", feature = "jsonl")), allow(dead_code))]
/// Diesel's text form of timestamps on SQLite (`%F %T%.f`: `2025-01-02 03:04:05.123456`).
pub(crate) const SQLITE_TIMESTAMP: &str = "%F %T%.f";

#[cfg_attr(not(any(feature = "sqlite", feature = "jsonl")), allow(dead_code))]
/// The text forms Diesel reads as timestamps on SQLite (`FromSql<Timestamp, Sqlite>`), in its order;
/// a number there is read by Diesel as a Julian day, which this crate refuses (see [`parse_sqlite_timestamp`]).
const SQLITE_TIMESTAMP_FORMATS: [&str; 18] = [
    "%F %T%.f",
    "%F %T%.f%:z",
    "%F %T",
    "%F %T%:z",
    "%F %R",
    "%F %RZ",
    "%F %R%:z",
    "%F %TZ",
    "%F %T%.fZ",
    "%FT%R",
    "%FT%RZ",
    "%FT%R%:z",
    "%FT%T",
    "%FT%TZ",
    "%FT%T%:z",
    "%FT%T%.f",
    "%FT%T%.fZ",
    "%FT%T%.f%:z",
];

#[cfg_attr(not(any(feature = "sqlite", feature = "jsonl")), allow(dead_code))]
/// Reads an SQLite timestamp text as Diesel does (any of its formats; an offset is ignored, as Diesel
/// ignores it for `Timestamp`), into microseconds.
pub(crate) fn parse_sqlite_timestamp(text: &str) -> Result<i64, String> {
    for format in SQLITE_TIMESTAMP_FORMATS {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return timestamp_micros(t);
        }
    }
    Err(format!("{text:?} is not a timestamp Diesel reads (such as 2025-01-02 03:04:05.123456)"))
}

#[cfg_attr(not(any(feature = "sqlite", feature = "jsonl")), allow(dead_code))]
const SQLITE_TIME_FORMATS: [&str; 9] = ["%T%.f", "%T", "%R", "%RZ", "%R%:z", "%TZ", "%T%:z", "%T%.fZ", "%T%.f%:z"];

#[cfg_attr(not(any(feature = "sqlite", feature = "jsonl")), allow(dead_code))]
/// Reads an SQLite time text as Diesel does, into microseconds.
pub(crate) fn parse_sqlite_time(text: &str) -> Result<i64, String> {
    for format in SQLITE_TIME_FORMATS {
        if let Ok(t) = NaiveTime::parse_from_str(text, format) {
            return time_micros(t);
        }
    }
    Err(format!("{text:?} is not a time Diesel reads (such as 03:04:05.123456)"))
}

#[cfg_attr(not(any(feature = "sqlite", feature = "jsonl")), allow(dead_code))]
/// Reads an SQLite date text (`YYYY-MM-DD`, as Diesel), into days.
pub(crate) fn parse_sqlite_date(text: &str) -> Result<i32, String> {
    let d = NaiveDate::parse_from_str(text, "%F")
        .map_err(|_| format!("{text:?} is not a date Diesel reads (such as 2025-01-02)"))?;
    date_days(d)
}

#[cfg_attr(not(any(feature = "sqlite", feature = "jsonl")), allow(dead_code))]
/// Why a number in an SQLite timestamp column is refused, for its message.
pub(crate) const NUMERIC_TIMESTAMP: &str = "Diesel reads a number in a timestamp column as a Julian day, while \
     applications usually mean Unix seconds; convert the column to text first (for Unix seconds: \
     UPDATE t SET c = strftime('%Y-%m-%d %H:%M:%f', c, 'unixepoch'))";

#[cfg(test)]
mod tests {
    use super::*;

    fn int(bits: u8) -> Class {
        Class::Integer { bits }
    }

    #[test]
    fn integers_are_kept_only_when_they_fit_the_target() {
        let to_int4 = step(int(64), int(32)).unwrap();
        assert_eq!(to_int4.apply(Value::Int(i64::from(i32::MIN))), Ok(Value::Int(i64::from(i32::MIN))));
        assert_eq!(
            to_int4.apply(Value::Int(4_294_967_296)).unwrap_err(),
            "4294967296 does not fit a 32-bit integer column"
        );
        assert_eq!(step(int(64), int(64)).unwrap().apply(Value::Int(i64::MIN)), Ok(Value::Int(i64::MIN)));
        assert_eq!(step(int(64), Class::Bool).unwrap().apply(Value::Int(1)), Ok(Value::Bool(true)));
        assert!(step(int(64), Class::Bool).unwrap().apply(Value::Int(2)).is_err());
        assert_eq!(step(Class::Bool, int(64)).unwrap().apply(Value::Bool(false)), Ok(Value::Int(0)));
    }

    #[test]
    fn lossy_pairs_are_refused_with_a_reason() {
        assert!(step(Class::Real { bits: 64, sqlite: false }, int(64)).is_err());
        assert!(step(Class::Bytes, Class::Text { max_chars: None, nul: true }).is_err());
        let v = |dims| Class::Vector { element: Element::Vector, dims };
        assert_eq!(step(v(Some(3)), v(Some(4))).unwrap_err(), "3 dimensions cannot become 4");
        assert!(step(v(Some(3)), v(None)).is_ok());
        let half = Class::Vector { element: Element::HalfVector, dims: Some(3) };
        assert!(step(v(Some(3)), half).unwrap_err().contains("cannot become a `halfvec` column"));
    }

    #[test]
    fn target_limits_are_checked_per_value() {
        let pg_text = Step::Same(Class::Text { max_chars: Some(3), nul: false });
        assert!(pg_text.apply(Value::Text("a\0b".into())).unwrap_err().contains("NUL"));
        assert!(pg_text.apply(Value::Text("éèà".into())).is_ok());
        assert!(pg_text.apply(Value::Text("abcd".into())).unwrap_err().contains("4 characters"));
        let lite_real = Step::Same(Class::Real { bits: 64, sqlite: true });
        assert!(lite_real.apply(Value::Real(f64::NAN)).unwrap_err().contains("NULL"));
        assert!(lite_real.apply(Value::Real(-0.0)).unwrap_err().contains("0.0"));
        assert!(lite_real.apply(Value::Real(f64::INFINITY)).is_ok());
        let float4 = Step::Same(Class::Real { bits: 32, sqlite: false });
        assert!(float4.apply(Value::Real(0.1)).is_err());
        assert!(float4.apply(Value::Real(f64::from(0.1f32))).is_ok());
    }

    #[test]
    fn timestamps_keep_microseconds_and_refuse_more() {
        assert_eq!(parse_sqlite_timestamp("1970-01-01 00:00:01.000002"), Ok(1_000_002));
        assert_eq!(parse_sqlite_timestamp("1969-12-31T23:59:59.5"), Ok(-500_000));
        assert!(parse_sqlite_timestamp("2025-01-01 00:00:00.123456789").unwrap_err().contains("nanoseconds"));
        assert!(parse_sqlite_timestamp("yesterday").unwrap_err().contains("not a timestamp"));
        let t = micros_timestamp(-500_000).unwrap();
        assert_eq!(t.format(SQLITE_TIMESTAMP).to_string(), "1969-12-31 23:59:59.500");
        assert_eq!(timestamp_micros(t), Ok(-500_000));
        assert_eq!(parse_sqlite_date("2000-01-01"), Ok(10_957));
        assert_eq!(days_date(10_957).unwrap().to_string(), "2000-01-01");
        assert_eq!(parse_sqlite_time("00:00:01.25"), Ok(1_250_000));
        assert_eq!(micros_time(86_400 * MICROS), None);
    }

    #[test]
    fn class_names_read_back() {
        for class in [
            int(16),
            int(32),
            int(64),
            Class::Real { bits: 32, sqlite: false },
            Class::Text { max_chars: None, nul: true },
            Class::Bool,
            Class::Timestamp,
            Class::TimestampTz,
            Class::Date,
            Class::Time,
            Class::Bytes,
            Class::Vector { element: Element::Vector, dims: Some(768) },
            Class::Vector { element: Element::Bit, dims: None },
        ] {
            assert_eq!(Class::parse(&class.name()), Some(class), "{}", class.name());
        }
        assert_eq!(Class::parse("vector(x)"), None);
    }

    #[test]
    fn keys_order_and_print_the_same_way_everywhere() {
        assert!(Key::int(i64::MIN) < Key::int(-1));
        let a = Key(vec![KeyPart::Int(1), KeyPart::Text("B".into())]);
        let b = Key(vec![KeyPart::Int(1), KeyPart::Text("a".into())]);
        assert!(a < b, "texts by their bytes");
        assert_eq!(a.to_string(), "(1, 'B')");
        assert_eq!(Key(vec![KeyPart::Text("it's".into())]).to_string(), "'it''s'");
        assert_eq!(Key::int(7).as_int(), Some(7));
    }
}
