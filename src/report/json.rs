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

/// Methods that write with the compact formatter below [`INDENTED_LEVELS`] and the pretty one
/// above; `+` opens a level first, `-` closes one after deciding.
macro_rules! by_depth {
    ($($step:tt $name:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $name<W: ?Sized + Write>(&mut self, w: &mut W $(, $arg: $ty)*) -> io::Result<()> {
            by_depth!(@open $step self);
            let deep = self.deep();
            by_depth!(@close $step self);
            if deep {
                CompactFormatter.$name(w $(, $arg)*)
            } else {
                self.pretty.$name(w $(, $arg)*)
            }
        }
    )*};
    (@open + $self:ident) => { $self.depth += 1; };
    (@open $other:tt $self:ident) => {};
    (@close - $self:ident) => { $self.depth -= 1; };
    (@close $other:tt $self:ident) => {};
}

impl Formatter for ItemsPerLine {
    by_depth! {
        + begin_array();
        - end_array();
        = begin_array_value(first: bool);
        = end_array_value();
        + begin_object();
        - end_object();
        = begin_object_key(first: bool);
        = begin_object_value();
        = end_object_value();
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
