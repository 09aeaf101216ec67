//! A rule pack described for people and scripts: every collection and every
//! field with its type, format, allowed values, range, length, merge rule,
//! normalizer and whether it is sensitive, so that a person can discover
//! what to send (`cairn pack show`, `GET /v1/collections`).

use super::{Collection, Field, FieldType, Normalizer, RulePack};
use crate::merge::FieldRule;
use serde_json::{Map, Value, json};

impl FieldType {
    /// The type's name as packs spell it.
    pub fn keyword(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Integer => "integer",
            FieldType::Number => "number",
            FieldType::Boolean => "boolean",
            FieldType::Date => "date",
            FieldType::Datetime => "datetime",
            FieldType::Set => "set",
        }
    }
}

fn normalizer(normalizer: Normalizer) -> &'static str {
    match normalizer {
        Normalizer::Upper => "upper",
        Normalizer::Lower => "lower",
        Normalizer::Trim => "trim",
        Normalizer::Ndc11 => "ndc11",
    }
}

fn merge_rule(rule: &FieldRule) -> Value {
    match rule {
        FieldRule::Lww => json!("lww"),
        FieldRule::Counter => json!("counter"),
        FieldRule::Set => json!("set"),
        FieldRule::Max => json!("max"),
        FieldRule::Min => json!("min"),
        FieldRule::Prefer { group, by } => json!({"prefer": {"group": group, "by": by}}),
    }
}

impl Field {
    /// The field's rules; only the ones it has.
    pub fn describe(&self) -> Value {
        let mut rules = Map::new();
        rules.insert("type".into(), json!(self.ty.keyword()));
        rules.insert("required".into(), json!(self.required));
        rules.insert("sensitive".into(), json!(self.sensitive));
        if let Some(format) = &self.format {
            rules.insert("format".into(), json!(format.as_str()));
        }
        if let Some(allowed) = &self.allowed {
            rules.insert("enum".into(), json!(allowed));
        }
        if let Some(min) = self.min {
            rules.insert("min".into(), json!(min));
        }
        if let Some(max) = self.max {
            rules.insert("max".into(), json!(max));
        }
        if let Some(max_length) = self.max_length {
            rules.insert("max_length".into(), json!(max_length));
        }
        if let Some(normalize) = self.normalize {
            rules.insert("normalize".into(), json!(normalizer(normalize)));
        }
        if let Some(after) = &self.after {
            rules.insert("after".into(), json!(after));
        }
        rules.insert("merge".into(), merge_rule(&self.merge));
        Value::Object(rules)
    }
}

impl Collection {
    /// The collection, its routing and every field's rules.
    pub fn describe(&self) -> Value {
        let fields: Map<String, Value> = self
            .fields
            .iter()
            .map(|(name, field)| (name.clone(), field.describe()))
            .collect();
        let routes: Vec<Value> = self
            .routes
            .iter()
            .map(|route| json!({"field": route.field, "equals": route.equals, "stream": route.stream}))
            .collect();
        json!({
            "name": self.name,
            "pack": self.pack,
            "kind": self.kind.name(),
            "stream": self.stream,
            "scope": self.scope,
            "description": self.description,
            "routes": routes,
            "fields": fields,
            "sync": {
                "priority": self.sync.priority.name(),
                "expire_after_hours": self.sync.expire_after_hours,
            },
        })
    }
}

impl RulePack {
    /// The pack: name, version, title, source hash and every collection.
    pub fn describe(&self) -> Value {
        let collections: Vec<Value> = self
            .collections
            .values()
            .map(Collection::describe)
            .collect();
        json!({
            "name": self.name,
            "version": self.version,
            "title": self.title,
            "source_hash": self.source_hash.to_hex(),
            "collections": collections,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pack_says_every_rule_of_every_field() {
        let pack = RulePack::builtin("mro").unwrap();
        let described = pack.describe();
        assert_eq!(described["name"], "mro");
        let actions = described["collections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|collection| collection["name"] == "maintenance_actions")
            .unwrap();
        let fields = &actions["fields"];
        assert_eq!(fields["work_order"]["type"], "string");
        assert_eq!(fields["work_order"]["required"], true);
        assert_eq!(fields["work_order"]["normalize"], "upper");
        assert_eq!(fields["work_order"]["format"], "^WO-[A-Z0-9-]{1,40}$");
        assert_eq!(fields["action"]["enum"][0], "inspection");
        assert_eq!(fields["hours"]["min"], 0.0);
        assert_eq!(fields["hours"]["max"], 10000.0);
        assert_eq!(fields["description"]["max_length"], 4000);
        assert_eq!(fields["certificate_expiry"]["after"], "performed_on");
        assert_eq!(actions["routes"][0]["stream"], "critical");
        let parts = described["collections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|collection| collection["name"] == "parts")
            .unwrap();
        assert_eq!(parts["fields"]["cycles"]["merge"], "max");
        assert_eq!(parts["kind"], "entity");
    }
}
