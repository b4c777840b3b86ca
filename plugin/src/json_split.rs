//! Finds the raw bytes of each element of a JSON array, so that each can be
//! read on its own: one element the plugin cannot read (an event of a shape
//! it does not know) never makes its neighbours unreadable. Only brackets
//! and strings are matched; every element is then parsed properly. (Going
//! through a JSON tree and back instead cost the component ~19 KB.)

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

/// The end (exclusive) of the string that opens at `b[i]`.
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
    None
}

/// The end (exclusive) of the value that starts at `b[i]`.
fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => string_end(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = string_end(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let mut j = i;
            while b
                .get(j)
                .is_some_and(|c| !matches!(c, b',' | b'}' | b']') && !c.is_ascii_whitespace())
            {
                j += 1;
            }
            Some(j)
        }
    }
}

/// The elements of the array under the top-level key `key` of the object
/// `b`; `None` when `b` is not such an object.
pub fn array_under<'a>(b: &'a [u8], key: &str) -> Option<Vec<&'a [u8]>> {
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    loop {
        i = skip_ws(b, i);
        let name_end = string_end(b, i)?;
        let name = &b[i + 1..name_end - 1];
        i = skip_ws(b, name_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(b, i + 1);
        if name == key.as_bytes() && b.get(i) == Some(&b'[') {
            return elements(b, i);
        }
        i = skip_ws(b, value_end(b, i)?);
        match b.get(i) {
            Some(b',') => i += 1,
            _ => return None,
        }
    }
}

fn elements(b: &[u8], open: usize) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut i = skip_ws(b, open + 1);
    if b.get(i) == Some(&b']') {
        return Some(out);
    }
    loop {
        let end = value_end(b, i)?;
        out.push(&b[i..end]);
        i = skip_ws(b, end);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b']') => return Some(out),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::array_under;

    #[test]
    fn each_element_is_found_whatever_it_holds() {
        let page = br#" {"object":"list","url":"/v1/events?x=[1]","data" : [ {"a":"]}\"[{","b":[1,{"c":-2}]} , 7,"s\\",
            [] ,null],"has_more":true}"#;
        let got: Vec<&str> = array_under(page, "data")
            .unwrap()
            .into_iter()
            .map(|e| std::str::from_utf8(e).unwrap())
            .collect();
        assert_eq!(
            got,
            [
                r#"{"a":"]}\"[{","b":[1,{"c":-2}]}"#,
                "7",
                r#""s\\""#,
                "[]",
                "null"
            ]
        );
        assert_eq!(array_under(br#"{"data":[]}"#, "data"), Some(vec![]));
        assert_eq!(array_under(br#"{"other":1}"#, "data"), None);
        assert_eq!(array_under(br#"{"data":[1,"#, "data"), None);
        assert_eq!(array_under(b"[1]", "data"), None);
    }
}
