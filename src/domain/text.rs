//! Showing text a user cannot see: control characters, zero-width and other invisible
//! characters, named by code point so a message says exactly what is in a key or value.

use std::borrow::Cow;

/// Whether a character shows nothing (or only space) where it is: control characters,
/// zero-width and format characters, and every space but the plain one.
pub fn is_invisible(c: char) -> bool {
    c.is_control()
        || (c.is_whitespace() && c != ' ')
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{061C}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{E0000}'..='\u{E007F}'
        )
}

/// A character's code point and, for the common ones, what it is: `U+200B (zero-width space)`.
pub fn name_char(c: char) -> String {
    let what = match c {
        ' ' => "space",
        '\t' => "tab",
        '\n' => "line feed",
        '\r' => "carriage return",
        '\u{00A0}' => "no-break space",
        '\u{00AD}' => "soft hyphen",
        '\u{200B}' => "zero-width space",
        '\u{200C}' => "zero-width non-joiner",
        '\u{200D}' => "zero-width joiner",
        '\u{200E}' | '\u{200F}' => "direction mark",
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => "direction control",
        '\u{2060}' => "word joiner",
        '\u{FEFF}' => "byte-order mark",
        '\u{3000}' => "ideographic space",
        c if c.is_control() => "control character",
        c if c.is_whitespace() => "space character",
        _ => "invisible character",
    };
    format!("U+{:04X} ({what})", c as u32)
}

/// The text cut to at most `width` characters, an ellipsis marking a cut: for echoing input
/// that may be huge.
pub fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// The text with every invisible character written as `<U+XXXX>`, so that printing it shows
/// what is there and control characters never reach a terminal or a log raw.
pub fn show(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_invisible) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_invisible(c) {
            out.push_str(&format!("<U+{:04X}>", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The distinct invisible characters of `text`, named, in order of first appearance; empty
/// when there are none. Spaces at either end count, since they are as hard to see.
pub fn invisible_parts(text: &str) -> Vec<String> {
    let mut named: Vec<String> = Vec::new();
    let mut push = |name: String| {
        if !named.contains(&name) {
            named.push(name);
        }
    };
    if text.starts_with(' ') {
        push("a leading space".to_string());
    }
    if text.ends_with(' ') && text.len() > 1 {
        push("a trailing space".to_string());
    }
    for c in text.chars().filter(|c| is_invisible(*c)) {
        push(name_char(c));
    }
    named
}

/// The Levenshtein distance between `a` and `b` in characters, or `None` once it exceeds
/// `limit` (so comparing against a long list stays cheap).
pub fn edit_distance(a: &str, b: &str, limit: usize) -> Option<usize> {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > limit {
        return None;
    }
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        current[0] = i + 1;
        let mut row_min = current[0];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
            row_min = row_min.min(current[j + 1]);
        }
        if row_min > limit {
            return None;
        }
        std::mem::swap(&mut previous, &mut current);
    }
    (previous[b.len()] <= limit).then_some(previous[b.len()])
}

/// The candidate closest to `text` within `limit` edits (ties: the first), compared
/// ignoring ASCII case.
pub fn closest<'a>(
    text: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    limit: usize,
) -> Option<&'a str> {
    let text = text.to_ascii_lowercase();
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        if let Some(d) = edit_distance(&text, &candidate.to_ascii_lowercase(), limit)
            && best.is_none_or(|(bd, _)| d < bd)
        {
            best = Some((d, candidate));
        }
    }
    best.map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_characters_are_shown_by_code_point() {
        assert_eq!(show("prod"), "prod");
        assert_eq!(show("pro\u{200B}d"), "pro<U+200B>d");
        assert_eq!(show("a\u{1b}[31mb"), "a<U+001B>[31mb");
        assert_eq!(show("tab\there"), "tab<U+0009>here");
        assert_eq!(
            show("Grüße café"),
            "Grüße café",
            "visible non-ASCII is kept"
        );
    }

    #[test]
    fn parts_name_each_character_once() {
        assert_eq!(
            invisible_parts(" a\u{200B}b\u{200B}\u{00A0}"),
            [
                "a leading space",
                "U+200B (zero-width space)",
                "U+00A0 (no-break space)"
            ]
        );
        assert!(invisible_parts("plain value").is_empty());
    }

    #[test]
    fn edit_distances_stop_at_the_limit() {
        assert_eq!(edit_distance("instanse", "instance", 2), Some(1));
        assert_eq!(edit_distance("kitten", "sitting", 3), Some(3));
        assert_eq!(edit_distance("kitten", "sitting", 2), None);
        assert_eq!(
            closest("EC2:instanse", ["ec2:volume", "ec2:instance"], 2),
            Some("ec2:instance")
        );
        assert_eq!(closest("zzz", ["ec2:instance"], 2), None);
    }
}
