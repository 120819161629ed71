//! Finding a tag by name on a resource, with the policy's case rules: the one lookup that
//! validation and every analysis of a scan share, so they never disagree about which tag a
//! resource carries.

use super::Tag;

/// The tag found for a name.
#[derive(Debug, Clone, Copy)]
pub struct TagMatch<'t> {
    /// The tag judged for the name.
    pub tag: &'t Tag,
    /// The key is exactly the name's spelling.
    pub exact: bool,
    /// Other keys equal the name ignoring case (only looked for when case is ignored).
    pub others: bool,
}

/// The tag whose key is `name`. An exact match wins over a case-insensitive one (looked for
/// only when `ignore_case`) wherever it appears; among case variants the first wins, and
/// `others` says there were more. `keys_ascii` (every key is ASCII, checked once per resource
/// by the caller) lets case variants be compared by length first.
#[inline]
pub fn find_tag<'t>(
    tags: &'t [Tag],
    name: &str,
    ignore_case: bool,
    keys_ascii: bool,
) -> Option<TagMatch<'t>> {
    let mut exact = None;
    let mut folded: Option<&Tag> = None;
    let mut variants = 0usize;
    // Unicode folding is needed only when some key or the name is not ASCII.
    let unicode = !(keys_ascii && name.is_ascii());
    for tag in tags {
        let key = tag.key.as_str();
        if key.len() == name.len() && key == name {
            if !ignore_case {
                return Some(TagMatch {
                    tag,
                    exact: true,
                    others: false,
                });
            }
            exact = Some(tag);
            variants += 1;
        } else if ignore_case
            && if key.len() == name.len() {
                key.eq_ignore_ascii_case(name) || (unicode && eq_ignore_case(key, name))
            } else {
                // Unicode case folding can change the length in bytes.
                unicode && eq_ignore_case(key, name)
            }
        {
            folded = folded.or(Some(tag));
            variants += 1;
        }
    }
    let others = variants > 1;
    match (exact, folded) {
        (Some(tag), _) => Some(TagMatch {
            tag,
            exact: true,
            others,
        }),
        (None, Some(tag)) => Some(TagMatch {
            tag,
            exact: false,
            others,
        }),
        (None, None) => None,
    }
}

/// Whether every key is ASCII: once per resource, so that [`find_tag`] can skip Unicode
/// folding.
pub fn keys_are_ascii(tags: &[Tag]) -> bool {
    tags.iter().all(|t| t.key.is_ascii())
}

/// Case-insensitive equality: ASCII fast path, full Unicode lowercase otherwise.
#[inline]
pub fn eq_ignore_case(a: &str, b: &str) -> bool {
    // Equal bytes up to ASCII case means equal ignoring case, whatever else the text holds.
    if a.len() == b.len() && a.eq_ignore_ascii_case(b) {
        return true;
    }
    if a.is_ascii() && b.is_ascii() {
        return false;
    }
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

/// How a key on a resource looks like a policy's tag name without being it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookAlike {
    /// Only the case differs (`costcenter`).
    Case,
    /// Invisible characters or spaces at the ends differ (`CostCenter\u{200B}`).
    Invisible,
    /// Spaces, `-`, `_`, `.` or `:` differ (`Cost Center`, `cost-center`).
    Separators,
    /// One character is added, dropped or changed, or two neighbours swapped (`CostCentre`),
    /// in a name of five or more characters.
    Typo,
}

/// Whether `key` looks like `name` (and how), when it is not `name` itself. Cheap: it
/// allocates nothing, so validation can ask it for every missing tag.
pub fn look_alike(key: &str, name: &str) -> Option<LookAlike> {
    if key == name {
        return None;
    }
    if eq_ignore_case(key, name) {
        return Some(LookAlike::Case);
    }
    let visible = |c: &char| !super::text::is_invisible(*c);
    let lower = |c: char| c.to_lowercase();
    let trimmed = key.trim_matches(' ');
    if trimmed
        .chars()
        .filter(visible)
        .flat_map(lower)
        .eq(name.chars().flat_map(lower))
    {
        return Some(LookAlike::Invisible);
    }
    let letters = |c: &char| visible(c) && !matches!(c, ' ' | '-' | '_' | '.' | ':');
    if key
        .chars()
        .filter(letters)
        .flat_map(lower)
        .eq(name.chars().filter(letters).flat_map(lower))
    {
        return Some(LookAlike::Separators);
    }
    if name.chars().count() >= 5 && one_edit_apart(key, name) {
        return Some(LookAlike::Typo);
    }
    None
}

/// Whether one insertion, deletion, substitution or swap of neighbours (ignoring case) turns
/// `a` into `b`.
fn one_edit_apart(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return one_edit(a.as_bytes(), b.as_bytes(), u8::eq_ignore_ascii_case);
    }
    // Rare (keys in other scripts): folded copies, compared character by character.
    let a: Vec<char> = a.chars().flat_map(char::to_lowercase).collect();
    let b: Vec<char> = b.chars().flat_map(char::to_lowercase).collect();
    one_edit(&a, &b, |x, y| x == y)
}

fn one_edit<T>(a: &[T], b: &[T], eq: impl Fn(&T, &T) -> bool) -> bool {
    let (a, b) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let same = |x: &[T], y: &[T]| x.len() == y.len() && x.iter().zip(y).all(|(p, q)| eq(p, q));
    let prefix = a.iter().zip(b).take_while(|(x, y)| eq(x, y)).count();
    match b.len() - a.len() {
        0 if prefix < a.len() => {
            same(&a[prefix + 1..], &b[prefix + 1..])
                // Two neighbours swapped (`CostCentre`) counts as one slip of the fingers.
                || (prefix + 1 < a.len()
                    && eq(&a[prefix], &b[prefix + 1])
                    && eq(&a[prefix + 1], &b[prefix])
                    && same(&a[prefix + 2..], &b[prefix + 2..]))
        }
        1 => same(&a[prefix..], &b[prefix + 1..]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(keys: &[&str]) -> Vec<Tag> {
        keys.iter().map(|k| Tag::new(*k, "v")).collect()
    }

    #[test]
    fn look_alikes_are_told_apart() {
        use LookAlike::*;
        let cases = [
            ("costcenter", Some(Case)),
            ("COSTCENTER", Some(Case)),
            ("CostCenter\u{200B}", Some(Invisible)),
            (" CostCenter ", Some(Invisible)),
            ("Cost Center", Some(Separators)),
            ("cost-center", Some(Separators)),
            ("cost_center", Some(Separators)),
            ("CostCentre", Some(Typo)),
            ("CostCenterr", Some(Typo)),
            ("CostCente", Some(Typo)),
            ("CostCenter", None),
            ("Owner", None),
            ("CostCode", None),
        ];
        for (key, want) in cases {
            assert_eq!(look_alike(key, "CostCenter"), want, "{key:?}");
        }
        assert_eq!(
            look_alike("Ap", "App"),
            None,
            "short names get no typo guess"
        );
        assert_eq!(look_alike("Größe", "grösse"), None);
        assert_eq!(look_alike("KOSTENSTELLÉ", "Kostenstelle"), Some(Typo));
    }

    #[test]
    fn exact_wins_wherever_it_is_and_variants_are_counted() {
        let t = tags(&["costcenter", "CostCenter", "COSTCENTER"]);
        let found = find_tag(&t, "CostCenter", true, true).unwrap();
        assert!(found.exact && found.others);
        assert_eq!(found.tag.key, "CostCenter");
        let found = find_tag(&t[..1], "CostCenter", true, true).unwrap();
        assert!(!found.exact && !found.others);
        assert!(find_tag(&t[..1], "CostCenter", false, true).is_none());
    }

    #[test]
    fn unicode_keys_fold() {
        let t = tags(&["ÉQUIPE"]);
        assert!(find_tag(&t, "équipe", true, keys_are_ascii(&t)).is_some());
        assert!(eq_ignore_case("ÄB", "äb"));
    }
}
