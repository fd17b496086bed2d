//! The list of config keys, taken from the file parser's own structs.

use super::bounds::OLD_NAMES;
use super::file::FileConfig;
use serde::Deserialize;

/// Every key a config file may set (`smtp.listen`, `queue.warn`), read
/// from the parser itself, so documentation can be checked against it.
/// Old names (`bounds::OLD_NAMES`) still read but are not listed.
pub fn known_keys() -> Vec<String> {
    let mut keys = Vec::new();
    FileConfig::deserialize(KeyLister {
        path: String::new(),
        keys: &mut keys,
    })
    .expect("every config key is optional");
    keys.retain(|key| !OLD_NAMES.iter().any(|o| o.old == key));
    keys
}

/// A deserializer that offers every field of each section and records the
/// path of each leaf (an `Option`, left `None`).
struct KeyLister<'a> {
    path: String,
    keys: &'a mut Vec<String>,
}

impl<'de> serde::Deserializer<'de> for KeyLister<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom(format!(
            "{} is neither optional nor a section",
            self.path
        )))
    }

    fn deserialize_option<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.keys.push(self.path);
        visitor.visit_none()
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_map(Fields {
            lister: self,
            fields: fields.iter(),
            current: "",
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct newtype_struct seq tuple tuple_struct
        map enum identifier ignored_any
    }
}

struct Fields<'a> {
    lister: KeyLister<'a>,
    fields: std::slice::Iter<'static, &'static str>,
    current: &'static str,
}

impl<'de> serde::de::MapAccess<'de> for Fields<'_> {
    type Error = serde::de::value::Error;

    fn next_key_seed<K: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        use serde::de::IntoDeserializer;
        let Some(field) = self.fields.next() else {
            return Ok(None);
        };
        self.current = field;
        seed.deserialize(field.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let path = match self.lister.path.as_str() {
            "" => self.current.to_string(),
            section => format!("{section}.{}", self.current),
        };
        seed.deserialize(KeyLister {
            path,
            keys: &mut *self.lister.keys,
        })
    }
}
