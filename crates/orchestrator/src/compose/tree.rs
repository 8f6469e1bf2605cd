//! Trees of YAML values: merge keys (`<<:`), several compose files merged
//! into one, and the canonical text the config hash is taken of.

use std::collections::BTreeMap;

use serde_yaml::{Mapping, Value};

use super::{scalar_text, service};

/// Applies YAML merge keys everywhere, innermost first, so that a merged
/// mapping's own `<<:` is resolved before it is copied. Bounded by the size of
/// the tree (serde_yaml already limits alias expansion).
pub(super) fn apply_merges(value: &mut Value) -> Result<(), String> {
    match value {
        Value::Mapping(mapping) => {
            for (_, item) in mapping.iter_mut() {
                apply_merges(item)?;
            }
            if let Some(merge) = mapping.remove("<<") {
                let sources = match merge {
                    Value::Mapping(m) => vec![m],
                    Value::Sequence(items) => {
                        let mut sources = Vec::new();
                        for item in items {
                            match item {
                                Value::Mapping(m) => sources.push(m),
                                _ => return Err("a merge list may only hold mappings".into()),
                            }
                        }
                        sources
                    }
                    _ => return Err("the merged value is not a mapping".into()),
                };
                for source in sources {
                    for (key, item) in source {
                        if !mapping.contains_key(&key) {
                            mapping.insert(key, item);
                        }
                    }
                }
            }
            Ok(())
        }
        Value::Sequence(items) => items.iter_mut().try_for_each(apply_merges),
        Value::Tagged(tagged) => apply_merges(&mut tagged.value),
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => Ok(()),
    }
}

/// Merges a later compose file into the earlier ones: services, networks and
/// volumes by name, each definition merged key by key (see `merge_service`);
/// other keys replaced.
pub(super) fn merge_documents(base: &mut Mapping, overlay: Mapping) {
    for (key, value) in overlay {
        let key_text = scalar_text(&key).unwrap_or_default();
        match (base.get_mut(&key), value) {
            (Some(Value::Mapping(existing)), Value::Mapping(entries))
                if matches!(key_text.as_str(), "services" | "networks" | "volumes") =>
            {
                for (name, definition) in entries {
                    match existing.get_mut(&name) {
                        Some(Value::Mapping(old)) if key_text == "services" => {
                            if let Value::Mapping(new) = definition {
                                merge_service(old, new);
                            }
                        }
                        _ => {
                            existing.insert(name, definition);
                        }
                    }
                }
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Keys whose lists a later file replaces rather than extends.
const REPLACED_LISTS: &[&str] = &["command", "entrypoint", "profiles"];

/// Merges one service definition into another, as compose does in the
/// common cases: mappings merge recursively, `command`/`entrypoint`
/// replace, `environment`/`labels` merge by name (list or mapping form),
/// other lists (ports, volumes, ...) are concatenated without duplicates,
/// scalars replace.
///
/// The compose tags: `!reset` drops the key (the base's value too),
/// `!override` replaces the base's value instead of merging with it.
pub(super) fn merge_service(base: &mut Mapping, overlay: Mapping) {
    for (key, value) in overlay {
        let key_text = scalar_text(&key).unwrap_or_default();
        let value = match merge_tag(value) {
            MergeTag::Reset => {
                base.remove(&key);
                continue;
            }
            MergeTag::Override(value) => {
                base.insert(key, strip_merge_tags(value));
                continue;
            }
            MergeTag::None(value) => value,
        };
        let merged = match (base.remove(&key), value) {
            (Some(old), new) if matches!(key_text.as_str(), "environment" | "labels") => {
                let mut map = service::key_value_map(&old);
                map.extend(service::key_value_map(&new));
                Value::Mapping(
                    map.into_iter()
                        .map(|(k, v)| (Value::String(k), v.map_or(Value::Null, Value::String)))
                        .collect(),
                )
            }
            (Some(Value::Mapping(mut old)), Value::Mapping(new)) => {
                merge_service(&mut old, new);
                Value::Mapping(old)
            }
            (Some(Value::Sequence(mut old)), Value::Sequence(new))
                if !REPLACED_LISTS.contains(&key_text.as_str()) =>
            {
                for item in new {
                    if !old.contains(&item) {
                        old.push(item);
                    }
                }
                Value::Sequence(old)
            }
            (_, new) => new,
        };
        base.insert(key, merged);
    }
}

enum MergeTag {
    Reset,
    Override(Value),
    None(Value),
}

fn merge_tag(value: Value) -> MergeTag {
    match value {
        Value::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            match tag.trim_start_matches('!') {
                "reset" => MergeTag::Reset,
                "override" => MergeTag::Override(tagged.value),
                _ => MergeTag::None(Value::Tagged(tagged)),
            }
        }
        other => MergeTag::None(other),
    }
}

/// A value with the compose tags applied where nothing is merged into it:
/// a `!reset` key is dropped, an `!override` value is the value itself.
pub(super) fn strip_merge_tags(value: Value) -> Value {
    match value {
        Value::Mapping(mapping) => Value::Mapping(
            mapping
                .into_iter()
                .filter_map(|(key, item)| match merge_tag(item) {
                    MergeTag::Reset => None,
                    MergeTag::Override(v) | MergeTag::None(v) => Some((key, strip_merge_tags(v))),
                })
                .collect(),
        ),
        Value::Sequence(items) => {
            Value::Sequence(items.into_iter().map(strip_merge_tags).collect())
        }
        Value::Tagged(tagged) => match merge_tag(Value::Tagged(tagged)) {
            MergeTag::Reset => Value::Null,
            MergeTag::Override(v) => strip_merge_tags(v),
            MergeTag::None(v) => v,
        },
        other => other,
    }
}

/// A canonical text of a value (mapping keys sorted), the input of the
/// config hash: the same definition always hashes the same, whatever the
/// key order or serde feature flags.
pub(crate) fn canonical_json(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => out.push_str(&serde_json::Value::String(s.clone()).to_string()),
        Value::Sequence(items) => {
            out.push('[');
            for (idx, item) in items.iter().enumerate() {
                if idx > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        Value::Mapping(mapping) => {
            let sorted: BTreeMap<String, &Value> = mapping
                .iter()
                .map(|(k, v)| (scalar_text(k).unwrap_or_default(), v))
                .collect();
            out.push('{');
            for (idx, (key, item)) in sorted.into_iter().enumerate() {
                if idx > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(key).to_string());
                out.push(':');
                canonical_json(item, out);
            }
            out.push('}');
        }
        Value::Tagged(tagged) => canonical_json(&tagged.value, out),
    }
}
