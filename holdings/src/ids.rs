//! Normalising bibliographic identifiers (ISBN, ISSN, OCLC number, LCCN) and the
//! title+author match key. The node validates holdings with these and matches citations on
//! their results, so their behaviour must not change without a migration of stored keys.

/// Validate an ISBN-10 or ISBN-13 (hyphens, spaces and a trailing qualifier such as
/// "(pbk.)" are ignored) and return it as ISBN-13.
pub fn normalise_isbn(raw: &str) -> Result<String, String> {
    // The number is made of the leading whitespace-separated groups of digits, X and hyphens,
    // up to 10 or 13 digits; a qualifier such as "(pbk.)", "pbk.", ": $12.95" or "2nd ed."
    // ends it.
    let mut head = String::new();
    for token in raw.trim().split(['(', ':', ';']).next().unwrap_or("").split_whitespace() {
        if !token.chars().all(|c| c.is_ascii_digit() || matches!(c, 'X' | 'x' | '-')) {
            break;
        }
        let before = head.chars().filter(char::is_ascii_digit).count();
        let adding = token.chars().filter(|c| c.is_ascii_digit() || matches!(c, 'X' | 'x')).count();
        if before + adding > 13 {
            break;
        }
        head.push_str(token);
    }
    let head = head.as_str();
    let digits: String = head.chars().filter(|c| !matches!(c, '-' | ' ')).collect::<String>().to_ascii_uppercase();
    match digits.len() {
        10 => {
            let b = digits.as_bytes();
            if !b[..9].iter().all(u8::is_ascii_digit) || !(b[9].is_ascii_digit() || b[9] == b'X') {
                return Err(format!("{raw:?} is not an ISBN: only digits and a final X are allowed"));
            }
            let sum: u32 = b
                .iter()
                .enumerate()
                .map(|(i, &c)| {
                    let v = if c == b'X' { 10 } else { u32::from(c - b'0') };
                    v * (10 - i as u32)
                })
                .sum();
            if !sum.is_multiple_of(11) {
                return Err(format!("{raw:?} has a wrong ISBN-10 check digit"));
            }
            let core = format!("978{}", &digits[..9]);
            Ok(format!("{core}{}", isbn13_check(&core)))
        }
        13 => {
            if !digits.bytes().all(|c| c.is_ascii_digit()) {
                return Err(format!("{raw:?} is not an ISBN: only digits are allowed in ISBN-13"));
            }
            if !digits.starts_with("978") && !digits.starts_with("979") {
                return Err(format!("{raw:?} is not an ISBN-13 (must start 978 or 979)"));
            }
            if isbn13_check(&digits[..12]) != digits.as_bytes()[12] as char {
                return Err(format!("{raw:?} has a wrong ISBN-13 check digit"));
            }
            Ok(digits)
        }
        n => Err(format!("{raw:?} is not an ISBN: expected 10 or 13 digits, found {n}")),
    }
}

fn isbn13_check(first12: &str) -> char {
    let sum: u32 = first12.bytes().enumerate().map(|(i, c)| u32::from(c - b'0') * if i % 2 == 0 { 1 } else { 3 }).sum();
    char::from(b'0' + ((10 - sum % 10) % 10) as u8)
}

/// Validate an ISSN (`1234-5679`, hyphen optional) and return it as `NNNN-NNNC`.
pub fn normalise_issn(raw: &str) -> Result<String, String> {
    let d: String = raw.trim().chars().filter(|c| *c != '-').collect::<String>().to_ascii_uppercase();
    let b = d.as_bytes();
    if b.len() != 8 || !b[..7].iter().all(u8::is_ascii_digit) || !(b[7].is_ascii_digit() || b[7] == b'X') {
        return Err(format!("{raw:?} is not an ISSN (NNNN-NNNN)"));
    }
    let sum: u32 = b[..7].iter().enumerate().map(|(i, c)| u32::from(c - b'0') * (8 - i as u32)).sum();
    let check = (11 - sum % 11) % 11;
    let want = if check == 10 { b'X' } else { b'0' + check as u8 };
    if b[7] != want {
        return Err(format!("{raw:?} has a wrong ISSN check digit"));
    }
    Ok(format!("{}-{}", &d[..4], &d[4..]))
}

/// Normalise an OCLC number: the (OCoLC), ocm, ocn and on prefixes and leading zeros go.
pub fn normalise_oclc(raw: &str) -> Result<String, String> {
    let mut s = raw.trim();
    // Prefixes as catalogues write them, in any case: "(OCoLC)ocm05853149", "(OCoLC)OCM41519086".
    for p in ["(ocolc)", "ocm", "ocn", "on"] {
        if s.len() >= p.len() && s.is_char_boundary(p.len()) && s[..p.len()].eq_ignore_ascii_case(p) {
            s = s[p.len()..].trim();
        }
    }
    let s = s.trim_start_matches('0');
    if s.is_empty() || s.len() > 15 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!("{raw:?} is not an OCLC number"));
    }
    Ok(s.to_owned())
}

/// Normalise an LCCN by the Library of Congress rules: remove blanks, drop anything after a
/// slash, and zero-pad the serial after a hyphen to six digits ("n78-890351" → "n78890351").
pub fn normalise_lccn(raw: &str) -> Result<String, String> {
    let s: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
    let s = s.split('/').next().unwrap_or("").to_ascii_lowercase();
    let s = match s.split_once('-') {
        Some((prefix, serial)) if serial.bytes().all(|c| c.is_ascii_digit()) && serial.len() <= 6 => {
            format!("{prefix}{serial:0>6}")
        }
        Some(_) => return Err(format!("{raw:?} is not an LCCN")),
        None => s,
    };
    let digits = s.bytes().rev().take_while(u8::is_ascii_digit).count();
    let prefix = &s[..s.len() - digits];
    // Two-digit years give eight digits (85000002), four-digit years ten (2001001114).
    if !(digits == 8 || digits == 10) || prefix.len() > 3 || !prefix.bytes().all(|c| c.is_ascii_lowercase()) {
        return Err(format!("{raw:?} is not an LCCN"));
    }
    Ok(s)
}

/// The words of `s` for [`title_key`]: diacritics folded, case folded, and every character
/// that is not a letter or digit a space.
fn key_words(s: &str) -> Vec<String> {
    // ASCII needs no decomposition: the same result, without its cost, for most titles.
    if s.is_ascii() {
        return s
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_ascii_lowercase)
            .collect();
    }
    key_words_unicode(s)
}

/// Decompose, drop the combining marks (é → e, ü → u), fold case, and split on everything
/// that is not a letter or digit.
fn key_words_unicode(s: &str) -> Vec<String> {
    use unicode_normalization::UnicodeNormalization;
    use unicode_normalization::char::is_combining_mark;
    s.nfkd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect::<String>()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Version of [`title_key`]'s rules; stored keys made under another version are rebuilt.
pub const TITLE_KEY_VERSION: u32 = 2;

/// The fallback match key for a citation without identifiers: the title without case,
/// diacritics, punctuation, a leading English article (the, a, an) or a subtitle (anything
/// after `:`, `/`, `;` or `=`), then `|` and the first word of the author (the surname in
/// a heading like "Claypool, John R.").
pub fn title_key(title: &str, author: &str) -> String {
    let main_title = title.split([':', '/', ';', '=']).next().unwrap_or(title);
    let mut t = key_words(main_title);
    if t.len() > 1 && matches!(t[0].as_str(), "the" | "a" | "an") {
        t.remove(0);
    }
    let a = key_words(author).into_iter().next().unwrap_or_default();
    format!("{}|{a}", t.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isbn_normalises_to_13() {
        assert_eq!(normalise_isbn("0-19-852663-6 (pbk.)").unwrap(), "9780198526636");
        assert_eq!(normalise_isbn("0 19 852663 6").unwrap(), "9780198526636");
        assert_eq!(normalise_isbn("0198526636 pbk.").unwrap(), "9780198526636");
        assert_eq!(normalise_isbn("0198526636 : $12.95").unwrap(), "9780198526636");
        assert_eq!(normalise_isbn("0198526636 2nd ed.").unwrap(), "9780198526636");
        assert_eq!(normalise_isbn("978 0 19 852663 6 (v. 1)").unwrap(), "9780198526636");
        assert_eq!(normalise_isbn("0914520407").unwrap(), "9780914520405");
        assert_eq!(normalise_isbn("978-0-19-852663-6").unwrap(), "9780198526636");
        assert_eq!(normalise_isbn("080442957X").unwrap(), "9780804429573");
        assert!(normalise_isbn("0874669951").unwrap_err().contains("check digit"));
        assert!(normalise_isbn("9780198526637").unwrap_err().contains("check digit"));
        assert!(normalise_isbn("12345").is_err());
        assert!(normalise_isbn("97801985266A6").is_err());
    }

    #[test]
    fn other_identifiers() {
        assert_eq!(normalise_issn("0317-8471").unwrap(), "0317-8471");
        assert_eq!(normalise_issn("03178471").unwrap(), "0317-8471");
        assert!(normalise_issn("0317-8472").is_err());
        // An X check digit, in either case.
        assert_eq!(normalise_issn("2434-561x").unwrap(), "2434-561X");
        assert_eq!(normalise_issn("0000-006X").unwrap(), "0000-006X");
        assert!(normalise_issn("2434-5610").unwrap_err().contains("check digit"));
        assert!(normalise_issn("2434-56").is_err());
        assert_eq!(normalise_oclc("(OCoLC)ocm05853149").unwrap(), "5853149");
        assert!(normalise_oclc("(OCoLC)abc").is_err());
        assert_eq!(normalise_oclc("(OCoLC)OCM41519086").unwrap(), "41519086");
        assert_eq!(normalise_oclc("(ocolc)on1234567890").unwrap(), "1234567890");
        assert_eq!(normalise_oclc("ocn123456789").unwrap(), "123456789");
        assert_eq!(normalise_oclc("ocm00012345").unwrap(), "12345");
        assert_eq!(normalise_oclc(" 5853149 ").unwrap(), "5853149");
        assert!(normalise_oclc("ocm").is_err());
        assert_eq!(normalise_lccn("n78-890351").unwrap(), "n78890351");
        assert_eq!(normalise_lccn("   00000002 ").unwrap(), "00000002");
        assert_eq!(normalise_lccn("2001-1114").unwrap(), "2001001114");
        assert_eq!(normalise_lccn("85000002 /AC/r86").unwrap(), "85000002");
        // The Library of Congress's own examples.
        assert_eq!(normalise_lccn("n 78-890351").unwrap(), "n78890351");
        assert_eq!(normalise_lccn("n  78-89035").unwrap(), "n78089035");
        assert_eq!(normalise_lccn("85-2 ").unwrap(), "85000002");
        assert_eq!(normalise_lccn("75-425165//r75").unwrap(), "75425165");
        assert_eq!(normalise_lccn(" 79139101 /AC/r932").unwrap(), "79139101");
        assert!(normalise_lccn("hello").is_err());
        assert!(normalise_lccn("123456789").is_err(), "nine digits are neither form");
        assert!(normalise_lccn("85-1234567").is_err(), "a serial has at most six digits");
    }

    #[test]
    fn title_keys_ignore_case_punctuation_articles_and_subtitles() {
        assert_eq!(title_key("The Glad Reunion : meeting ourselves", "Claypool, John R."), "glad reunion|claypool");
        assert_eq!(title_key("glad reunion", "CLAYPOOL"), "glad reunion|claypool");
        // Diacritics fold, in precomposed and decomposed form alike.
        assert_eq!(title_key("Mémoires d'outre-tombe", "Chateaubriand"), "memoires d outre tombe|chateaubriand");
        assert_eq!(
            title_key("Me\u{301}moires d'outre-tombe", "Chateaubriand"),
            title_key("Memoires d'outre tombe", "chateaubriand")
        );
        assert_eq!(title_key("Über Sprache", "Müller, K."), "uber sprache|muller");
        // The ASCII fast path agrees with the general one.
        for t in ["The Glad Reunion : meeting ourselves", "Claypool, John R.", "A", "--x__y--", "", "R2-D2 & C-3PO"] {
            assert_eq!(key_words(t), key_words_unicode(t), "{t:?}");
        }
    }
}
