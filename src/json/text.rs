//! JSON text reshaped without being parsed into values: whitespace between tokens removed
//! ([`compact`]) or laid out one member per line ([`pretty`]). Strings and numbers keep their
//! text byte for byte, so a payload's large integers and escapes read exactly as the provider
//! sent them (a round trip through `serde_json::Value` would round the first and rewrite the
//! second). The input is assumed to be JSON (the exact-payload fields are slices of a body that
//! parsed); anything else comes out reshaped but otherwise unchanged.

/// `json` without the whitespace between its tokens. Providers may pretty-print, and a
/// structured-mode CloudEvent must fit on one line.
pub fn compact(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in json.chars() {
        if in_string {
            in_string = escaped || c != '"';
            escaped = !escaped && c == '\\';
        } else if matches!(c, ' ' | '\t' | '\n' | '\r') {
            continue;
        } else {
            in_string = c == '"';
        }
        out.push(c);
    }
    out
}

/// `json` with one member or element per line, indented two spaces a level; empty objects and
/// arrays stay `{}` and `[]`.
pub fn pretty(json: &str) -> String {
    let compacted = compact(json);
    let mut out = String::with_capacity(compacted.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = compacted.chars().peekable();
    while let Some(c) = chars.next() {
        if in_string {
            in_string = escaped || c != '"';
            escaped = !escaped && c == '\\';
            out.push(c);
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                if matches!(chars.peek(), Some('}' | ']')) {
                    if let Some(close) = chars.next() {
                        out.push(close);
                    }
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            _ => out.push(c),
        }
    }
    out
}

fn newline(out: &mut String, depth: usize) {
    out.push('\n');
    for _ in 0..depth {
        out.push_str("  ");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_keeps_strings_and_numbers_as_written() {
        let json = "{ \"a\" : 9007199254740993 ,\n \"b\": \"x \\\" y\",\"c\":[ 1.50 , 2e3 ] }";
        assert_eq!(
            compact(json),
            r#"{"a":9007199254740993,"b":"x \" y","c":[1.50,2e3]}"#
        );
    }

    #[test]
    fn pretty_lays_out_one_member_per_line() {
        let json = r#"{"a":9007199254740993,"b":{"c":"x, {y}: [z]","d":[]},"e":[1,{}],"f":"\\"}"#;
        let expected = r#"{
  "a": 9007199254740993,
  "b": {
    "c": "x, {y}: [z]",
    "d": []
  },
  "e": [
    1,
    {}
  ],
  "f": "\\"
}"#;
        assert_eq!(pretty(json), expected);
        assert_eq!(compact(&pretty(json)), json);
    }

    #[test]
    fn pretty_of_a_scalar_is_the_scalar() {
        assert_eq!(pretty(" 12 "), "12");
        assert_eq!(pretty("\"a b\""), "\"a b\"");
    }
}
