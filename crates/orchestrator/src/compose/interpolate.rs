//! Variable interpolation as `docker compose` (compose-go's `template`
//! package) does it, and the `.env`/`env_file` format.
//!
//! Forms: `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
//! `${VAR:?error}`, `${VAR?error}`, `${VAR:+alt}`, `${VAR+alt}` and `$$` for a
//! literal `$`. Defaults and alternatives may themselves hold interpolations
//! (`${A:-${B}}`), as in compose-go v2. An unset variable with no default
//! becomes the empty string with a warning, exactly as compose warns.

use std::collections::BTreeMap;

/// The variables interpolation reads: the shell environment over `.env`.
pub(crate) type Vars = BTreeMap<String, String>;

/// Why a string could not be interpolated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TemplateError {
    /// `${VAR:?msg}` or `${VAR?msg}` with the variable unset (or empty).
    Required { name: String, message: String },
    /// A `$` that starts nothing compose understands, or an unclosed `${`.
    Invalid { template: String },
}

/// The result of interpolating one string.
#[derive(Debug, Default)]
pub(crate) struct Interpolated {
    pub(crate) value: String,
    /// Variables used without a default while unset.
    pub(crate) unset: Vec<String>,
}

fn is_name_start(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}

fn is_name_char(c: char) -> bool {
    c == '_' || c.is_ascii_alphanumeric()
}

/// Interpolates `input` with `vars`.
pub(crate) fn interpolate(input: &str, vars: &Vars) -> Result<Interpolated, TemplateError> {
    let mut out = Interpolated::default();
    interpolate_into(input, vars, &mut out, 0)?;
    Ok(out)
}

/// Nesting is bounded so that hostile input cannot exhaust the stack.
const MAX_DEPTH: usize = 16;

fn interpolate_into(
    input: &str,
    vars: &Vars,
    out: &mut Interpolated,
    depth: usize,
) -> Result<(), TemplateError> {
    let invalid = || TemplateError::Invalid {
        template: input.to_owned(),
    };
    if depth > MAX_DEPTH {
        return Err(invalid());
    }
    let chars: Vec<char> = input.chars().collect();
    let mut idx = 0;
    while idx < chars.len() {
        let c = chars[idx];
        if c != '$' {
            out.value.push(c);
            idx += 1;
            continue;
        }
        match chars.get(idx + 1) {
            Some('$') => {
                out.value.push('$');
                idx += 2;
            }
            Some(&next) if is_name_start(next) => {
                let start = idx + 1;
                let mut end = start;
                while end < chars.len() && is_name_char(chars[end]) {
                    end += 1;
                }
                let name: String = chars[start..end].iter().collect();
                match vars.get(&name) {
                    Some(value) => out.value.push_str(value),
                    None => out.unset.push(name),
                }
                idx = end;
            }
            Some('{') => {
                // Find the matching close brace, counting nested `${`.
                let body_start = idx + 2;
                let mut level = 1;
                let mut end = body_start;
                while end < chars.len() {
                    match chars[end] {
                        '{' if end > 0 && chars[end - 1] == '$' => level += 1,
                        '}' => {
                            level -= 1;
                            if level == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    end += 1;
                }
                if level != 0 {
                    return Err(invalid());
                }
                let body: String = chars[body_start..end].iter().collect();
                braced(&body, vars, out, depth).map_err(|err| match err {
                    TemplateError::Invalid { .. } => invalid(),
                    other => other,
                })?;
                idx = end + 1;
            }
            _ => return Err(invalid()),
        }
    }
    Ok(())
}

/// Expands the inside of `${...}`.
fn braced(
    body: &str,
    vars: &Vars,
    out: &mut Interpolated,
    depth: usize,
) -> Result<(), TemplateError> {
    let name_len = body
        .char_indices()
        .find(|&(_, c)| !is_name_char(c))
        .map_or(body.len(), |(pos, _)| pos);
    let name = &body[..name_len];
    let invalid = || TemplateError::Invalid {
        template: format!("${{{body}}}"),
    };
    if !name.chars().next().is_some_and(is_name_start) {
        return Err(invalid());
    }
    let rest = &body[name_len..];
    let value = vars.get(name);
    let set_non_empty = value.is_some_and(|v| !v.is_empty());
    let (op, arg) = if rest.is_empty() {
        ("", "")
    } else if let Some(arg) = rest.strip_prefix(":-") {
        (":-", arg)
    } else if let Some(arg) = rest.strip_prefix(":?") {
        (":?", arg)
    } else if let Some(arg) = rest.strip_prefix(":+") {
        (":+", arg)
    } else if let Some(arg) = rest.strip_prefix('-') {
        ("-", arg)
    } else if let Some(arg) = rest.strip_prefix('?') {
        ("?", arg)
    } else if let Some(arg) = rest.strip_prefix('+') {
        ("+", arg)
    } else {
        return Err(invalid());
    };
    let expand = |out: &mut Interpolated| interpolate_into(arg, vars, out, depth + 1);
    match op {
        "" => match value {
            Some(v) => out.value.push_str(v),
            None => out.unset.push(name.to_owned()),
        },
        ":-" if set_non_empty => out.value.push_str(value.map_or("", String::as_str)),
        ":-" => expand(out)?,
        "-" => match value {
            Some(v) => out.value.push_str(v),
            None => expand(out)?,
        },
        ":?" | "?" => {
            let missing = if op == ":?" {
                !set_non_empty
            } else {
                value.is_none()
            };
            if missing {
                let mut message = Interpolated::default();
                interpolate_into(arg, vars, &mut message, depth + 1)?;
                return Err(TemplateError::Required {
                    name: name.to_owned(),
                    message: message.value,
                });
            }
            out.value.push_str(value.map_or("", String::as_str));
        }
        ":+" if set_non_empty => expand(out)?,
        "+" if value.is_some() => expand(out)?,
        _ => {}
    }
    Ok(())
}

/// Parses the `.env` / `env_file` format: `KEY=VALUE` lines, optional
/// `export `, `#` comments, single quotes (literal), double quotes (with
/// `\n`, `\t`, `\"`, `\\` escapes), unquoted values trimmed and cut at ` #`.
/// Unquoted and double-quoted values are interpolated with the variables
/// defined so far and `outer` (compose does the same). A line without `=`
/// names a variable taken from `outer` when set there.
///
/// Returns the variables and, for each malformed line, its 1-based number.
pub(crate) fn parse_env_file(text: &str, outer: &Vars) -> (Vec<(String, String)>, Vec<usize>) {
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut bad_lines = Vec::new();
    for (line_idx, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        let (key, value) = match line.split_once('=') {
            Some((key, value)) => (key.trim(), Some(value)),
            None => (line, None),
        };
        if key.is_empty() || !key.chars().all(|c| is_name_char(c) || c == '.' || c == '-') {
            bad_lines.push(line_idx + 1);
            continue;
        }
        let Some(value) = value else {
            if let Some(v) = outer.get(key) {
                vars.push((key.to_owned(), v.clone()));
            }
            continue;
        };
        let value = value.trim_start();
        let lookup = |vars: &Vec<(String, String)>| {
            let mut all = outer.clone();
            for (k, v) in vars {
                all.entry(k.clone()).or_insert_with(|| v.clone());
            }
            all
        };
        let parsed = if let Some(rest) = value.strip_prefix('\'') {
            match rest.find('\'') {
                Some(end) => rest[..end].to_owned(),
                None => {
                    bad_lines.push(line_idx + 1);
                    continue;
                }
            }
        } else if let Some(rest) = value.strip_prefix('"') {
            let mut unescaped = String::new();
            let mut closed = false;
            let mut chars = rest.chars();
            while let Some(c) = chars.next() {
                match c {
                    '"' => {
                        closed = true;
                        break;
                    }
                    '\\' => match chars.next() {
                        Some('n') => unescaped.push('\n'),
                        Some('t') => unescaped.push('\t'),
                        Some('r') => unescaped.push('\r'),
                        Some(other) => {
                            if other != '"' && other != '\\' && other != '$' {
                                unescaped.push('\\');
                            }
                            unescaped.push(other);
                        }
                        None => unescaped.push('\\'),
                    },
                    c => unescaped.push(c),
                }
            }
            if !closed {
                bad_lines.push(line_idx + 1);
                continue;
            }
            interpolate(&unescaped, &lookup(&vars)).map_or(unescaped, |i| i.value)
        } else {
            let value = match value.find(" #") {
                Some(pos) => &value[..pos],
                None => value,
            };
            let value = value.trim();
            interpolate(value, &lookup(&vars)).map_or_else(|_| value.to_owned(), |i| i.value)
        };
        vars.retain(|(k, _)| k != key);
        vars.push((key.to_owned(), parsed));
    }
    (vars, bad_lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn ok(input: &str, v: &Vars) -> String {
        interpolate(input, v).expect(input).value
    }

    #[test]
    fn every_form() {
        let v = vars(&[("SET", "x"), ("EMPTY", "")]);
        assert_eq!(ok("a $SET b", &v), "a x b");
        assert_eq!(ok("${SET}y", &v), "xy");
        assert_eq!(ok("$SET-y", &v), "x-y");
        assert_eq!(ok("$$SET", &v), "$SET");
        assert_eq!(ok("$${SET}", &v), "${SET}");
        assert_eq!(ok("${SET:-d}", &v), "x");
        assert_eq!(ok("${EMPTY:-d}", &v), "d");
        assert_eq!(ok("${UNSET:-d}", &v), "d");
        assert_eq!(ok("${EMPTY-d}", &v), "");
        assert_eq!(ok("${UNSET-d}", &v), "d");
        assert_eq!(ok("${SET:+alt}", &v), "alt");
        assert_eq!(ok("${EMPTY:+alt}", &v), "");
        assert_eq!(ok("${EMPTY+alt}", &v), "alt");
        assert_eq!(ok("${UNSET+alt}", &v), "");
        assert_eq!(ok("${SET:?must}", &v), "x");
        assert_eq!(ok("${EMPTY?must}", &v), "");
        assert_eq!(ok("${UNSET:-${SET}}", &v), "x");
        assert_eq!(ok("${UNSET:-${ALSO:-deep}}!", &v), "deep!");
        assert_eq!(ok("${UNSET:-a:b}", &v), "a:b");
    }

    #[test]
    fn required_variables_fail_with_their_message() {
        let v = vars(&[("EMPTY", "")]);
        assert_eq!(
            interpolate("${HF_TOKEN:?set HF_TOKEN}", &v).unwrap_err(),
            TemplateError::Required {
                name: "HF_TOKEN".into(),
                message: "set HF_TOKEN".into()
            }
        );
        assert!(interpolate("${EMPTY:?e}", &v).is_err());
        assert!(interpolate("${UNSET?e}", &v).is_err());
    }

    #[test]
    fn unset_variables_are_blank_and_reported() {
        let out = interpolate("a${NOPE}b$ALSO_NOT", &Vars::new()).unwrap();
        assert_eq!(out.value, "ab");
        assert_eq!(out.unset, ["NOPE", "ALSO_NOT"]);
    }

    #[test]
    fn invalid_templates_are_errors() {
        for bad in ["$", "a $ b", "${", "${A", "${}", "${1A}", "${A*b}", "$-"] {
            assert!(
                matches!(
                    interpolate(bad, &Vars::new()),
                    Err(TemplateError::Invalid { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn env_file_format() {
        let outer = vars(&[("FROM_SHELL", "s")]);
        let text = "# comment\n\nexport A=1\nB = two words # note\nC='lit $A'\nD=\"esc\\n$A\"\nE=${A}x\nFROM_SHELL\nNOT_SET\nbad line=\nF=\"open\n";
        let (parsed, bad) = parse_env_file(text, &outer);
        let map: BTreeMap<_, _> = parsed.into_iter().collect();
        assert_eq!(map["A"], "1");
        assert_eq!(map["B"], "two words");
        assert_eq!(map["C"], "lit $A");
        assert_eq!(map["D"], "esc\n1");
        assert_eq!(map["E"], "1x");
        assert_eq!(map["FROM_SHELL"], "s");
        assert!(!map.contains_key("NOT_SET"));
        assert_eq!(bad, [10, 11]);
    }
}
