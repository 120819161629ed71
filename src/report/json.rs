//! JSON for files: the result itself, indented down to the items of its lists and maps, and
//! each item (a violation, a type's counts, an offender) on one line: readable, greppable one
//! violation per line, and a third smaller than indenting every field.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter, PrettyFormatter};

/// Objects and arrays nested deeper than this are written on one line.
const INDENTED_LEVELS: usize = 3;

/// Indents the first [`INDENTED_LEVELS`] levels as `serde_json`'s pretty printer does, and
/// writes what is deeper compactly.
struct ItemsPerLine {
    pretty: PrettyFormatter<'static>,
    depth: usize,
}

impl ItemsPerLine {
    fn deep(&self) -> bool {
        self.depth > INDENTED_LEVELS
    }
}

impl Formatter for ItemsPerLine {
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.depth += 1;
        if self.deep() {
            CompactFormatter.begin_array(w)
        } else {
            self.pretty.begin_array(w)
        }
    }

    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        let deep = self.deep();
        self.depth -= 1;
        if deep {
            CompactFormatter.end_array(w)
        } else {
            self.pretty.end_array(w)
        }
    }

    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if self.deep() {
            CompactFormatter.begin_array_value(w, first)
        } else {
            self.pretty.begin_array_value(w, first)
        }
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        if self.deep() {
            CompactFormatter.end_array_value(w)
        } else {
            self.pretty.end_array_value(w)
        }
    }

    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.depth += 1;
        if self.deep() {
            CompactFormatter.begin_object(w)
        } else {
            self.pretty.begin_object(w)
        }
    }

    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        let deep = self.deep();
        self.depth -= 1;
        if deep {
            CompactFormatter.end_object(w)
        } else {
            self.pretty.end_object(w)
        }
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if self.deep() {
            CompactFormatter.begin_object_key(w, first)
        } else {
            self.pretty.begin_object_key(w, first)
        }
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        if self.deep() {
            CompactFormatter.begin_object_value(w)
        } else {
            self.pretty.begin_object_value(w)
        }
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        if self.deep() {
            CompactFormatter.end_object_value(w)
        } else {
            self.pretty.end_object_value(w)
        }
    }
}

/// Writes `value` with its items one per line, and a final newline.
pub fn write(value: &impl Serialize, out: &mut dyn Write) -> io::Result<()> {
    let formatter = ItemsPerLine {
        pretty: PrettyFormatter::new(),
        depth: 0,
    };
    let mut serializer = serde_json::Serializer::with_formatter(&mut *out, formatter);
    value.serialize(&mut serializer).map_err(io::Error::from)?;
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn items_go_one_per_line_and_read_back_the_same() {
        let value = json!({
            "scan_id": "s",
            "tally": {
                "violations": [{"a": 1, "b": [1, 2]}, {"a": 2, "b": []}],
                "by_tag": {"CostCenter": {"missing": 3}},
                "issues": []
            }
        });
        let mut out = Vec::new();
        write(&value, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), value);
        assert!(text.contains("\n      {\"a\":1,\"b\":[1,2]},\n"), "{text}");
        assert!(text.contains("\"CostCenter\": {\"missing\":3}"), "{text}");
        assert!(text.contains("\n  \"tally\": {\n"), "{text}");
    }
}
