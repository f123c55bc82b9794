//! Span-aware walk over a parsed TOML document: typed getters that record every problem with
//! its line and column instead of stopping at the first.

use std::ops::Range;

use toml_edit::{Array, Item, Key, TableLike, Value};

use super::duration::parse_duration;
use super::ConfigError;

/// A byte range in the source text, when the parser kept one.
pub(crate) type Span = Option<Range<usize>>;

/// Collects errors and turns byte offsets into 1-based line/column (columns count characters).
pub(crate) struct Diag<'t> {
    text: &'t str,
    line_starts: Vec<usize>,
    pub(crate) errors: Vec<ConfigError>,
}

impl<'t> Diag<'t> {
    pub(crate) fn new(text: &'t str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Diag {
            text,
            line_starts,
            errors: Vec::new(),
        }
    }

    /// 1-based (line, column) of a byte offset; (0, 0) when unknown.
    pub(crate) fn position(&self, span: &Span) -> (usize, usize) {
        let Some(span) = span else { return (0, 0) };
        let offset = span.start.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let start = self.line_starts[line - 1];
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count())
            + 1;
        (line, column)
    }

    /// Record a problem at `span`.
    pub(crate) fn err(&mut self, span: &Span, message: impl Into<String>) {
        let (line, column) = self.position(span);
        self.errors.push(ConfigError {
            line,
            column,
            message: message.into(),
        });
    }
}

/// Span of an item, whatever its kind.
pub(crate) fn item_span(item: &Item) -> Span {
    match item {
        Item::Value(v) => v.span(),
        Item::Table(t) => t.span(),
        Item::ArrayOfTables(a) => a.span(),
        Item::None => None,
    }
}

/// A user-facing name of the TOML type of an item.
pub(crate) fn type_name(item: &Item) -> &'static str {
    match item {
        Item::Value(v) => value_type_name(v),
        Item::Table(_) => "table",
        Item::ArrayOfTables(_) => "array of tables",
        Item::None => "nothing",
    }
}

pub(crate) fn value_type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::Integer(_) => "integer",
        Value::Float(_) => "float",
        Value::Boolean(_) => "boolean",
        Value::Datetime(_) => "date-time",
        Value::Array(_) => "array",
        Value::InlineTable(_) => "inline table",
    }
}

/// A table being read: remembers which keys were asked for, so that the rest are reported
/// as unknown by [`Tab::finish`].
pub(crate) struct Tab<'d> {
    /// `None` for a table that is implied (e.g. `multicast-client = true`) and has no keys.
    inner: Option<&'d dyn TableLike>,
    /// Where to point for "missing key" errors.
    pub(crate) span: Span,
    /// How the table is written in messages, e.g. `[[unicast-server]]`.
    pub(crate) name: String,
    asked: Vec<&'static str>,
    /// Set by [`Tab::entries`]: every key is a user-chosen name, none is unknown.
    all_known: bool,
}

impl<'d> Tab<'d> {
    pub(crate) fn new(inner: &'d dyn TableLike, span: Span, name: impl Into<String>) -> Self {
        Tab {
            inner: Some(inner),
            span,
            name: name.into(),
            asked: Vec::new(),
            all_known: false,
        }
    }

    /// A table with no keys at all (all options take their defaults).
    pub(crate) fn empty(span: Span, name: impl Into<String>) -> Self {
        Tab {
            inner: None,
            span,
            name: name.into(),
            asked: Vec::new(),
            all_known: false,
        }
    }

    /// Builds a table reader from an item that must be a table (standard or inline).
    pub(crate) fn from_item(
        d: &mut Diag<'_>,
        key_span: Span,
        item: &'d Item,
        name: impl Into<String>,
    ) -> Option<Tab<'d>> {
        let name = name.into();
        match item.as_table_like() {
            Some(t) => {
                let span = item_span(item).or(key_span);
                Some(Tab::new(t, span, name))
            }
            None => {
                d.err(
                    &item_span(item).or(key_span),
                    format!("{name} must be a table, found {}", type_name(item)),
                );
                None
            }
        }
    }

    /// The raw entry for `key`, marking it as known.
    pub(crate) fn entry(&mut self, key: &'static str) -> Option<(&'d Key, &'d Item)> {
        self.asked.push(key);
        self.inner?.get_key_value(key)
    }

    /// Every entry (for tables whose keys are names chosen by the user); marks all as known.
    pub(crate) fn entries(&mut self) -> Vec<(&'d Key, &'d Item)> {
        self.all_known = true;
        let Some(inner) = self.inner else {
            return Vec::new();
        };
        inner
            .iter()
            .filter_map(|(k, _)| inner.get_key_value(k))
            .collect()
    }

    /// The value of `key`, which must not be a table.
    pub(crate) fn value(
        &mut self,
        d: &mut Diag<'_>,
        key: &'static str,
    ) -> Option<(&'d Value, Span)> {
        let (k, item) = self.entry(key)?;
        match item {
            Item::Value(v) => Some((v, v.span().or(k.span()))),
            other => {
                d.err(
                    &k.span().or(item_span(other)),
                    format!("`{key}` must be a value, found {}", type_name(other)),
                );
                None
            }
        }
    }

    fn wrong_type(d: &mut Diag<'_>, key: &str, want: &str, v: &Value, span: &Span) {
        d.err(
            span,
            format!("`{key}` must be {want}, found {}", value_type_name(v)),
        );
    }

    /// A string value.
    pub(crate) fn str(&mut self, d: &mut Diag<'_>, key: &'static str) -> Option<(&'d str, Span)> {
        let (v, span) = self.value(d, key)?;
        match v.as_str() {
            Some(s) => Some((s, span)),
            None => {
                Self::wrong_type(d, key, "a string", v, &span);
                None
            }
        }
    }

    /// A non-empty string value.
    pub(crate) fn nonempty_str(
        &mut self,
        d: &mut Diag<'_>,
        key: &'static str,
    ) -> Option<(&'d str, Span)> {
        let (s, span) = self.str(d, key)?;
        if s.is_empty() {
            d.err(&span, format!("`{key}` must not be empty"));
            return None;
        }
        Some((s, span))
    }

    /// A boolean value.
    pub(crate) fn bool(&mut self, d: &mut Diag<'_>, key: &'static str) -> Option<bool> {
        let (v, span) = self.value(d, key)?;
        match v.as_bool() {
            Some(b) => Some(b),
            None => {
                Self::wrong_type(d, key, "true or false", v, &span);
                None
            }
        }
    }

    /// An integer value within `lo..=hi`.
    pub(crate) fn int(
        &mut self,
        d: &mut Diag<'_>,
        key: &'static str,
        lo: i64,
        hi: i64,
    ) -> Option<(i64, Span)> {
        let (v, span) = self.value(d, key)?;
        int_value(d, key, v, &span, lo, hi).map(|i| (i, span))
    }

    /// A number (integer or float) within `lo..=hi`.
    pub(crate) fn float(
        &mut self,
        d: &mut Diag<'_>,
        key: &'static str,
        lo: f64,
        hi: f64,
    ) -> Option<(f64, Span)> {
        let (v, span) = self.value(d, key)?;
        let x = match v {
            Value::Float(f) => *f.value(),
            // Integers are exact in f64 over any range a user would write here.
            #[allow(clippy::cast_precision_loss)]
            Value::Integer(i) => *i.value() as f64,
            other => {
                Self::wrong_type(d, key, "a number", other, &span);
                return None;
            }
        };
        if !(lo..=hi).contains(&x) {
            d.err(
                &span,
                format!("`{key}` must be between {lo} and {hi}, got {x}"),
            );
            return None;
        }
        Some((x, span))
    }

    /// A duration string, in seconds. `signed = false` refuses negative values.
    pub(crate) fn duration(
        &mut self,
        d: &mut Diag<'_>,
        key: &'static str,
        signed: bool,
    ) -> Option<(f64, Span)> {
        let (v, span) = self.value(d, key)?;
        let Some(text) = v.as_str() else {
            d.err(
                &span,
                format!(
                    "`{key}` must be a duration string with a unit, like \"128ms\", found {}",
                    value_type_name(v)
                ),
            );
            return None;
        };
        match parse_duration(text) {
            Ok(x) if !signed && x < 0.0 => {
                d.err(&span, format!("`{key}` must not be negative"));
                None
            }
            Ok(x) => Some((x, span)),
            Err(msg) => {
                d.err(&span, format!("`{key}`: {msg}"));
                None
            }
        }
    }

    /// An array value.
    pub(crate) fn array(
        &mut self,
        d: &mut Diag<'_>,
        key: &'static str,
    ) -> Option<(&'d Array, Span)> {
        let (v, span) = self.value(d, key)?;
        match v.as_array() {
            Some(a) => Some((a, span)),
            None => {
                Self::wrong_type(d, key, "an array", v, &span);
                None
            }
        }
    }

    /// A sub-table (standard `[a.b]` or inline `{ .. }`).
    pub(crate) fn table(
        &mut self,
        d: &mut Diag<'_>,
        key: &'static str,
        name: String,
    ) -> Option<Tab<'d>> {
        let (k, item) = self.entry(key)?;
        Tab::from_item(d, k.span(), item, name)
    }

    /// A list of tables: `[[key]]` sections or an array of inline tables.
    pub(crate) fn tables(&mut self, d: &mut Diag<'_>, key: &'static str) -> Vec<Tab<'d>> {
        let Some((k, item)) = self.entry(key) else {
            return Vec::new();
        };
        let name = format!("[[{key}]]");
        match item {
            Item::ArrayOfTables(a) => a
                .iter()
                .map(|t| Tab::new(t, t.span().or(k.span()), name.clone()))
                .collect(),
            Item::Value(Value::Array(a)) => inline_tables(d, a, &name),
            other => {
                d.err(
                    &k.span().or(item_span(other)),
                    format!(
                        "`{key}` must be written as [[{key}]] tables, found {}",
                        type_name(other)
                    ),
                );
                Vec::new()
            }
        }
    }

    /// Report every key present but never asked for.
    pub(crate) fn finish(self, d: &mut Diag<'_>) {
        let Some(inner) = self.inner.filter(|_| !self.all_known) else {
            return;
        };
        for (name, _) in inner.iter() {
            if self.asked.contains(&name) {
                continue;
            }
            let span = inner
                .get_key_value(name)
                .and_then(|(k, item)| k.span().or(item_span(item)))
                .or(self.span.clone());
            let fixed = name.replace('_', "-").to_ascii_lowercase();
            let hint = if fixed != name && self.asked.contains(&fixed.as_str()) {
                format!("; did you mean `{fixed}`?")
            } else {
                String::new()
            };
            d.err(
                &span,
                format!("unknown key `{name}` in {}{hint}", self.name),
            );
        }
    }
}

/// Each element of `array` as a table reader; non-tables are reported.
pub(crate) fn inline_tables<'d>(d: &mut Diag<'_>, array: &'d Array, name: &str) -> Vec<Tab<'d>> {
    let mut out = Vec::new();
    for v in array.iter() {
        match v.as_inline_table() {
            Some(t) => out.push(Tab::new(t, v.span(), name.to_string())),
            None => d.err(
                &v.span(),
                format!(
                    "each element of {name} must be an inline table, found {}",
                    value_type_name(v)
                ),
            ),
        }
    }
    out
}

/// Check that `v` is an integer in `lo..=hi`.
pub(crate) fn int_value(
    d: &mut Diag<'_>,
    what: &str,
    v: &Value,
    span: &Span,
    lo: i64,
    hi: i64,
) -> Option<i64> {
    let Some(i) = v.as_integer() else {
        d.err(
            span,
            format!("`{what}` must be an integer, found {}", value_type_name(v)),
        );
        return None;
    };
    if !(lo..=hi).contains(&i) {
        d.err(span, format!("`{what}` must be in {lo}..={hi}, got {i}"));
        return None;
    }
    Some(i)
}
