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

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(keys: &[&str]) -> Vec<Tag> {
        keys.iter().map(|k| Tag::new(*k, "v")).collect()
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
