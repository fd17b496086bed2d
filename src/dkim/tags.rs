//! Tag=value lists (RFC 6376 §3.2), the syntax of both the signature
//! header field and the key record.

/// A parsed tag list: names and values in order, each value with its
/// surrounding whitespace removed (whitespace inside it is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagList<'a> {
    tags: Vec<(&'a str, &'a str)>,
}

/// Why a tag list did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagError {
    /// A tag without `=`, an empty or invalid name, or an invalid value byte.
    Syntax,
    /// The same tag twice (§3.2: the list is then invalid).
    Duplicate,
}

fn is_fws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn trim_fws(text: &str) -> &str {
    text.trim_matches(|c: char| c.is_ascii() && is_fws(c as u8))
}

impl<'a> TagList<'a> {
    /// Parses `tag-list = tag-spec *( ";" tag-spec ) [ ";" ]`.
    pub fn parse(text: &'a str) -> Result<TagList<'a>, TagError> {
        let mut tags: Vec<(&str, &str)> = Vec::new();
        let mut specs: Vec<&str> = text.split(';').collect();
        // One trailing ";" is allowed (and so an empty last spec).
        if specs.len() > 1 && trim_fws(specs[specs.len() - 1]).is_empty() {
            specs.pop();
        }
        for spec in specs {
            let (name, value) = spec.split_once('=').ok_or(TagError::Syntax)?;
            let name = trim_fws(name);
            let value = trim_fws(value);
            let name_ok = name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            // tval: printable ASCII but ";" (split off already); FWS between.
            let value_ok = value
                .bytes()
                .all(|b| is_fws(b) || (0x21..=0x7e).contains(&b));
            if !name_ok || !value_ok {
                return Err(TagError::Syntax);
            }
            if tags.iter().any(|(n, _)| *n == name) {
                return Err(TagError::Duplicate);
            }
            tags.push((name, value));
        }
        Ok(TagList { tags })
    }

    /// The value of tag `name` (names are case-sensitive).
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.tags.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    /// The first tag's name (a key record's `v=` must come first).
    pub fn first_name(&self) -> Option<&'a str> {
        self.tags.first().map(|(n, _)| *n)
    }
}

/// A value with all its whitespace removed (base64 in `b=`, `bh=`, `p=`).
pub fn without_fws(value: &str) -> String {
    value
        .bytes()
        .filter(|&b| !is_fws(b))
        .map(char::from)
        .collect()
}

/// A colon-separated list (`h=`), each item trimmed.
pub fn colon_list(value: &str) -> impl Iterator<Item = &str> {
    value.split(':').map(trim_fws)
}

/// The byte range of tag `name`'s value within `text` (a signature's
/// value), so a verifier can blank `b=` out of the header it hashes.
pub fn value_range(text: &[u8], name: &str) -> Option<std::ops::Range<usize>> {
    let mut start = 0;
    while start <= text.len() {
        let end = text[start..]
            .iter()
            .position(|&b| b == b';')
            .map_or(text.len(), |p| start + p);
        let spec = &text[start..end];
        if let Some(eq) = spec.iter().position(|&b| b == b'=') {
            let spec_name = spec[..eq]
                .iter()
                .copied()
                .filter(|&b| !is_fws(b))
                .collect::<Vec<u8>>();
            if spec_name == name.as_bytes() {
                return Some(start + eq + 1..end);
            }
        }
        start = end + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_values_and_whitespace() {
        let list =
            TagList::parse(" v=1; a=rsa-sha256;\r\n\td = example.org ; h=From : To;").unwrap();
        assert_eq!(list.get("v"), Some("1"));
        assert_eq!(list.get("d"), Some("example.org"));
        assert_eq!(list.get("h"), Some("From : To"));
        assert_eq!(colon_list("From : To").collect::<Vec<_>>(), ["From", "To"]);
        assert_eq!(list.get("x"), None);
        assert_eq!(list.first_name(), Some("v"));
        assert_eq!(TagList::parse("k=").unwrap().get("k"), Some(""));
        assert_eq!(without_fws("ab c\r\n\tde"), "abcde");
    }

    #[test]
    fn malformed_lists_are_refused() {
        assert_eq!(TagList::parse("v=1; v=1"), Err(TagError::Duplicate));
        assert_eq!(TagList::parse("v=1;; a=b"), Err(TagError::Syntax));
        assert_eq!(TagList::parse("v"), Err(TagError::Syntax));
        assert_eq!(TagList::parse("=1"), Err(TagError::Syntax));
        assert_eq!(TagList::parse("1v=1"), Err(TagError::Syntax));
        assert_eq!(TagList::parse("v=a\u{e9}"), Err(TagError::Syntax));
        assert_eq!(TagList::parse(""), Err(TagError::Syntax));
    }

    #[test]
    fn the_b_value_is_found_and_not_bh() {
        let text = b"v=1; bh=AAA=; b=xy\r\n z ;t=1";
        let range = value_range(text, "b").unwrap();
        assert_eq!(&text[range], b"xy\r\n z ");
        let range = value_range(text, "bh").unwrap();
        assert_eq!(&text[range], b"AAA=");
        let last = b"a=1; b=end";
        assert_eq!(&last[value_range(last, "b").unwrap()], b"end");
    }
}
