//! JSON Schemas (the subset structured output needs) compiled into a tree of nodes that the
//! matcher walks. Supported: `type` (one or a list), `properties` / `required` /
//! `additionalProperties`, `items` / `minItems` / `maxItems`, `enum`, `const`, `anyOf` /
//! `oneOf` whose alternatives begin differently (an object, a string, a number…) or are
//! objects told apart by a `const` property (a discriminated union, such as a call of one of
//! several tools: the answer gives that property first), and `$ref` into `$defs` /
//! `definitions`. Annotations (`title`, `description`, `format`, `pattern`,
//! lengths…) are accepted and not enforced. An object with `properties` allows only those
//! (as OpenAI's strict mode requires), in any order, each once.

use serde_json::{Map, Value};

/// Index of a node in [`Schema::nodes`].
pub type NodeId = u32;

/// Most properties of one object and values of one enum (a matcher tracks them in a `u64`).
pub const MAX_CHOICES: usize = 64;

#[derive(Debug, Clone)]
pub enum Node {
    /// Any JSON value.
    Any,
    Object {
        /// Names and schemas of the allowed properties; `None`: any key, any value.
        properties: Option<Vec<(String, NodeId)>>,
        /// Bit `i`: property `i` must be present.
        required: u64,
    },
    Array {
        items: NodeId,
        min: usize,
        max: Option<usize>,
    },
    String,
    Number {
        integer: bool,
    },
    Boolean,
    Null,
    /// One of these JSON texts, exactly (from `enum` and `const`).
    Literals(Vec<String>),
    /// One of these, told apart by their first byte.
    AnyOf(Vec<NodeId>),
    /// One of several objects, told apart by the value of one property, which comes first:
    /// `tag` is `[(its name, a Literals node of every alternative's values)]`, and after
    /// literal `i` the object goes on as `cases[i]`.
    Tagged {
        tag: Vec<(String, NodeId)>,
        cases: Vec<NodeId>,
    },
}

#[derive(Debug)]
pub struct Schema {
    pub nodes: Vec<Node>,
    pub root: NodeId,
    /// Nodes every schema has, for values the schema leaves open: any value, `true`/`false`,
    /// `null`.
    pub any: NodeId,
    pub booleans: NodeId,
    pub null: NodeId,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SchemaError(pub String);

fn err<T>(message: impl Into<String>) -> Result<T, SchemaError> {
    Err(SchemaError(message.into()))
}

/// Deepest nesting of schemas (through `$ref` too), which also stops recursive definitions.
const MAX_DEPTH: usize = 32;
/// Longest `const` / `enum` text (as JSON) and property name: the matcher counts its place in
/// them in 16 bits.
const MAX_TEXT: usize = u16::MAX as usize;
/// Most nodes a schema compiles to: `$ref`s are expanded where they are used, so a small
/// schema could otherwise multiply into millions.
const MAX_NODES: usize = 10_000;

impl Schema {
    /// Any JSON object (`response_format: json_object`).
    pub fn any_object() -> Schema {
        Schema::compile(&serde_json::json!({"type": "object"})).expect("a valid schema")
    }

    /// Compile a JSON Schema whose root is an object.
    pub fn compile(schema: &Value) -> Result<Schema, SchemaError> {
        let mut c = Compiler {
            root: schema,
            nodes: Vec::new(),
        };
        let root = c.node(schema, 0)?;
        if !matches!(
            c.nodes[root as usize],
            Node::Object { .. } | Node::Tagged { .. }
        ) {
            return err("the schema's root must be an object ('type': 'object')");
        }
        let any = c.push(Node::Any);
        let booleans = c.push(Node::Literals(vec!["true".into(), "false".into()]));
        let null = c.push(Node::Literals(vec!["null".into()]));
        Ok(Schema {
            nodes: c.nodes,
            root,
            any,
            booleans,
            null,
        })
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id as usize]
    }
}

struct Compiler<'a> {
    root: &'a Value,
    nodes: Vec<Node>,
}

impl Compiler<'_> {
    fn push(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        (self.nodes.len() - 1) as NodeId
    }

    fn check_size(&self) -> Result<(), SchemaError> {
        if self.nodes.len() >= MAX_NODES {
            return err(format!("the schema expands to more than {MAX_NODES} parts"));
        }
        Ok(())
    }

    fn node(&mut self, schema: &Value, depth: usize) -> Result<NodeId, SchemaError> {
        self.check_size()?;
        if depth > MAX_DEPTH {
            return err(format!(
                "the schema nests deeper than {MAX_DEPTH} levels (or refers to itself)"
            ));
        }
        let obj = match schema {
            Value::Bool(true) => return Ok(self.push(Node::Any)),
            Value::Object(o) => o,
            _ => return err("each schema must be an object or true"),
        };
        if let Some(r) = obj.get("$ref") {
            let target = resolve(self.root, r)?;
            return self.node(target, depth + 1);
        }
        if let Some(c) = obj.get("const") {
            return Ok(self.push(Node::Literals(vec![literal(c)?])));
        }
        if let Some(e) = obj.get("enum") {
            let values = e
                .as_array()
                .filter(|v| !v.is_empty() && v.len() <= MAX_CHOICES)
                .ok_or_else(|| {
                    SchemaError(format!("'enum' must list 1 to {MAX_CHOICES} values"))
                })?;
            let values = values.iter().map(literal).collect::<Result<_, _>>()?;
            return Ok(self.push(Node::Literals(values)));
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(alts) = obj.get(key) {
                let alts = alts
                    .as_array()
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| SchemaError(format!("'{key}' must list schemas")))?;
                let ids = alts
                    .iter()
                    .map(|a| self.node(a, depth + 1))
                    .collect::<Result<Vec<_>, _>>()?;
                return self.any_of(ids);
            }
        }
        match obj.get("type") {
            None if obj.contains_key("properties") => self.typed("object", obj, depth),
            None => Ok(self.push(Node::Any)),
            Some(Value::String(t)) => self.typed(t, obj, depth),
            Some(Value::Array(types)) => {
                let ids = types
                    .iter()
                    .map(|t| match t.as_str() {
                        Some(t) => self.typed(t, obj, depth),
                        None => err("'type' lists must hold type names"),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                self.any_of(ids)
            }
            Some(_) => err("'type' must be a type name or a list of them"),
        }
    }

    fn typed(
        &mut self,
        ty: &str,
        obj: &Map<String, Value>,
        depth: usize,
    ) -> Result<NodeId, SchemaError> {
        let node = match ty {
            "object" => {
                let properties = match obj.get("properties") {
                    None => None,
                    Some(Value::Object(props)) => {
                        if props.len() > MAX_CHOICES {
                            return err(format!(
                                "an object may have at most {MAX_CHOICES} properties"
                            ));
                        }
                        let mut list = Vec::new();
                        for (name, s) in props {
                            if name.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
                                return err("property names with quotes, backslashes or control characters are not supported");
                            }
                            if name.len() > MAX_TEXT {
                                return err(format!(
                                    "property names may be at most {MAX_TEXT} bytes long"
                                ));
                            }
                            list.push((name.clone(), self.node(s, depth + 1)?));
                        }
                        Some(list)
                    }
                    Some(_) => return err("'properties' must be an object"),
                };
                let mut required = 0u64;
                if let Some(req) = obj.get("required") {
                    let req = req
                        .as_array()
                        .ok_or_else(|| SchemaError("'required' must be a list".into()))?;
                    for r in req {
                        let name = r.as_str().unwrap_or("");
                        let i = properties
                            .as_ref()
                            .and_then(|p| p.iter().position(|(n, _)| n == name))
                            .ok_or_else(|| {
                                SchemaError(
                                    "'required' names a property not in 'properties'".into(),
                                )
                            })?;
                        required |= 1 << i;
                    }
                }
                Node::Object {
                    properties,
                    required,
                }
            }
            "array" => {
                let items = match obj.get("items") {
                    Some(s) => self.node(s, depth + 1)?,
                    None => self.push(Node::Any),
                };
                let count = |k: &str| obj.get(k).and_then(Value::as_u64).map(|n| n as usize);
                Node::Array {
                    items,
                    min: count("minItems").unwrap_or(0),
                    max: count("maxItems"),
                }
            }
            "string" => Node::String,
            "number" => Node::Number { integer: false },
            "integer" => Node::Number { integer: true },
            "boolean" => Node::Boolean,
            "null" => Node::Null,
            // The name is not repeated: error messages never echo request text.
            _ => return err("unknown type name in 'type'"),
        };
        Ok(self.push(node))
    }

    /// Alternatives must start with different bytes, so the first byte picks one; objects
    /// among them may instead share a property of distinct `const`s or `enum`s, which picks one.
    fn any_of(&mut self, mut ids: Vec<NodeId>) -> Result<NodeId, SchemaError> {
        let objects: Vec<NodeId> = ids
            .iter()
            .copied()
            .filter(|&id| matches!(self.nodes[id as usize], Node::Object { .. }))
            .collect();
        if objects.len() > 1 {
            if let Some(tagged) = self.tagged(&objects) {
                ids.retain(|id| !objects.contains(id));
                ids.push(tagged);
            }
        }
        if ids.len() == 1 {
            return Ok(ids[0]);
        }
        let mut seen = [false; 256];
        for &id in &ids {
            for b in first_bytes(&self.nodes, id) {
                if std::mem::replace(&mut seen[b as usize], true) {
                    return err(
                        "'anyOf' / 'oneOf' / type lists are supported where the alternatives \
                         start differently (say an object and null), not two of one kind",
                    );
                }
            }
        }
        Ok(self.push(Node::AnyOf(ids)))
    }
}

impl Compiler<'_> {
    /// A [`Node::Tagged`] over `objects`, if some property is required in each of them and
    /// holds literals no other of them allows.
    fn tagged(&mut self, objects: &[NodeId]) -> Option<NodeId> {
        let keys: Vec<String> = match &self.nodes[objects[0] as usize] {
            Node::Object {
                properties: Some(p),
                ..
            } => p.iter().map(|(k, _)| k.clone()).collect(),
            _ => return None,
        };
        for key in keys {
            let mut literals = Vec::new();
            let mut cases = Vec::new();
            for &id in objects {
                let Some(values) = self.required_literals(id, &key) else {
                    break;
                };
                cases.extend(std::iter::repeat_n(id, values.len()));
                literals.extend(values.iter().cloned());
            }
            let mut distinct = literals.clone();
            distinct.sort_unstable();
            distinct.dedup();
            let each = objects.iter().all(|o| cases.contains(o));
            if each && distinct.len() == literals.len() && literals.len() <= MAX_CHOICES {
                let tags = self.push(Node::Literals(literals));
                return Some(self.push(Node::Tagged {
                    tag: vec![(key, tags)],
                    cases,
                }));
            }
        }
        None
    }

    /// The literals object `id`'s property `key` must hold, if it is required and so bound.
    fn required_literals(&self, id: NodeId, key: &str) -> Option<&[String]> {
        let Node::Object {
            properties: Some(props),
            required,
        } = &self.nodes[id as usize]
        else {
            return None;
        };
        let i = props.iter().position(|(n, _)| n == key)?;
        match &self.nodes[props[i].1 as usize] {
            Node::Literals(values) if required >> i & 1 == 1 => Some(values),
            _ => None,
        }
    }
}

/// A `const` or `enum` value as the JSON text the answer must hold.
fn literal(value: &Value) -> Result<String, SchemaError> {
    let text = value.to_string();
    if text.len() > MAX_TEXT {
        return err(format!(
            "'const' and 'enum' values may be at most {MAX_TEXT} bytes long (as JSON)"
        ));
    }
    Ok(text)
}

/// The schema a local `$ref` (`#/$defs/name`) points at within `root`.
fn resolve<'v>(root: &'v Value, r: &Value) -> Result<&'v Value, SchemaError> {
    let path = r
        .as_str()
        .and_then(|p| p.strip_prefix("#/"))
        .ok_or_else(|| SchemaError("only local '$ref's ('#/$defs/…') are supported".into()))?;
    let mut at = root;
    for part in path.split('/') {
        at = at
            .get(part.replace("~1", "/").replace("~0", "~"))
            .ok_or_else(|| SchemaError("a '$ref' points at nothing".into()))?;
    }
    Ok(at)
}

/// The bytes a value of node `id` can start with.
pub fn first_bytes(nodes: &[Node], id: NodeId) -> Vec<u8> {
    const NUMBER: &[u8] = b"-0123456789";
    match &nodes[id as usize] {
        Node::Any => [b"{[\"tfn".as_slice(), NUMBER].concat(),
        Node::Object { .. } | Node::Tagged { .. } => vec![b'{'],
        Node::Array { .. } => vec![b'['],
        Node::String => vec![b'"'],
        Node::Number { .. } => NUMBER.to_vec(),
        Node::Boolean => vec![b't', b'f'],
        Node::Null => vec![b'n'],
        Node::Literals(l) => {
            let mut b: Vec<u8> = l.iter().filter_map(|t| t.bytes().next()).collect();
            b.sort_unstable();
            b.dedup();
            b
        }
        Node::AnyOf(ids) => ids.iter().flat_map(|&i| first_bytes(nodes, i)).collect(),
    }
}
