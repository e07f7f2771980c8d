package dialects

import (
	"errors"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
)

// Gemini's function parameters and responseSchema take an OpenAPI 3.0
// subset (genai's Schema type), not JSON Schema: no const, $ref, $defs,
// allOf, oneOf or additionalProperties, no type arrays, upper-case type
// names, enums of strings only, few formats. Gemini answers 400 ("Unknown
// name const", "Invalid JSON payload") to a tool schema that uses the
// rest, and clients use all of it (Pydantic's $defs and anyOf-with-null,
// zod's const). geminiSchema rewrites a JSON Schema into that subset;
// jsonSchemaFromGemini turns Gemini's form back into JSON Schema for the
// neutral request.

// maxSchemaDepth bounds the nesting of a schema (and of $ref expansion),
// maxSchemaNodes the size of its expansion: a $defs graph in which each
// definition refers to the next twice grows exponentially once inlined.
const (
	maxSchemaDepth = 48
	maxSchemaNodes = 20000
)

var errSchemaSize = errors.New("the JSON schema is too large or too deeply nested once its $ref are resolved")

// geminiTypes maps JSON Schema type names to Gemini's.
var geminiTypes = map[string]string{"string": "STRING", "number": "NUMBER", "integer": "INTEGER",
	"boolean": "BOOLEAN", "array": "ARRAY", "object": "OBJECT", "null": "NULL"}

// geminiFormats are the formats Gemini accepts, by Gemini type; it
// rejects the others ("only 'enum' and 'date-time' are supported for
// STRING type").
var geminiFormats = map[string][]string{"STRING": {"enum", "date-time"}, "INTEGER": {"int32", "int64"}, "NUMBER": {"float", "double"}}

// schemaConv converts one JSON Schema document.
type schemaConv struct {
	root     gjson.Result
	visiting map[string]bool // $refs being expanded: a cycle stops there
	nodes    int
	order    bool // add propertyOrdering (response schemas: Gemini orders output keys alphabetically otherwise)
}

// geminiSchema converts the JSON Schema raw to Gemini's Schema form.
// order asks for propertyOrdering on objects, so that JSON output keeps
// the schema's key order.
func geminiSchema(raw string, order bool) (string, error) {
	root := gjson.Parse(raw)
	// The root is being expanded: a "#" inside it is a cycle.
	c := &schemaConv{root: root, visiting: map[string]bool{"#": true}, order: order}
	out, err := c.conv(schemaMembers(root), 0)
	if err != nil {
		return "", err
	}
	return string(out), nil
}

// schemaMembers lists an object's members in order (nothing for other
// values: JSON Schema's true, false and non-objects say nothing Gemini
// can use).
func schemaMembers(v gjson.Result) []member {
	if !v.IsObject() {
		return nil
	}
	var ms []member
	v.ForEach(func(k, val gjson.Result) bool {
		ms = append(ms, member{k.Str, val})
		return true
	})
	return ms
}

func schemaMember(ms []member, key string) gjson.Result {
	for _, m := range ms {
		if m.key == key {
			return m.val
		}
	}
	return gjson.Result{}
}

// schemaWithout returns ms less the members named keys.
func schemaWithout(ms []member, keys ...string) []member {
	out := make([]member, 0, len(ms))
next:
	for _, m := range ms {
		for _, k := range keys {
			if m.key == k {
				continue next
			}
		}
		out = append(out, m)
	}
	return out
}

// schemaOverlay returns base with the members of top added, replacing the
// base members of the same name (a $ref's siblings override the target).
func schemaOverlay(base, top []member) []member {
	out := make([]member, 0, len(base)+len(top))
	inTop := make(map[string]bool, len(top))
	for _, t := range top {
		inTop[t.key] = true
	}
	for _, b := range base {
		if !inTop[b.key] {
			out = append(out, b)
		}
	}
	return append(out, top...)
}

var schemaTrue = gjson.Parse("true")

// resolve follows a local $ref ("#", "#/$defs/X", "#/definitions/X",
// any JSON pointer into the document). Remote refs are not fetched.
func (c *schemaConv) resolve(ref string) (gjson.Result, bool) {
	p, ok := strings.CutPrefix(ref, "#")
	if !ok {
		return gjson.Result{}, false
	}
	cur := c.root
	for _, tok := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		if p == "" {
			break
		}
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		var next gjson.Result
		switch {
		case cur.IsObject():
			cur.ForEach(func(k, v gjson.Result) bool {
				if k.Str == tok {
					next = v
					return false
				}
				return true
			})
		case cur.IsArray():
			if i, err := strconv.Atoi(tok); err == nil && i >= 0 {
				next = cur.Get(strconv.Itoa(i))
			}
		}
		if !next.Exists() {
			return gjson.Result{}, false
		}
		cur = next
	}
	return cur, true
}

// conv converts one schema object, given as its members.
func (c *schemaConv) conv(ms []member, depth int) ([]byte, error) {
	c.nodes++
	if depth > maxSchemaDepth || c.nodes > maxSchemaNodes {
		return nil, errSchemaSize
	}
	if ref := schemaMember(ms, "$ref"); ref.Type == gjson.String {
		rest := schemaWithout(ms, "$ref")
		if c.visiting[ref.Str] {
			// A recursive type (a tree, a linked list): Gemini's
			// schema has no references, so the recursion stops at a
			// free-form object.
			out := []byte(`{"type":"OBJECT"`)
			if d := schemaMember(rest, "description"); d.Type == gjson.String {
				out = append(out, `,"description":`...)
				out = AppendJSONString(out, d.Str)
			}
			return append(out, '}'), nil
		}
		target, ok := c.resolve(ref.Str)
		if !ok {
			return c.conv(rest, depth+1)
		}
		c.visiting[ref.Str] = true
		out, err := c.conv(schemaOverlay(schemaMembers(target), rest), depth+1)
		delete(c.visiting, ref.Str)
		return out, err
	}
	if all := schemaMember(ms, "allOf"); all.IsArray() {
		merged, err := c.mergeAllOf(schemaWithout(ms, "allOf"), all, depth)
		if err != nil {
			return nil, err
		}
		return c.conv(merged, depth+1)
	}
	nullable := schemaMember(ms, "nullable").Type == gjson.True
	var types []string
	switch t := schemaMember(ms, "type"); {
	case t.Type == gjson.String:
		types = append(types, t.Str)
	case t.IsArray():
		t.ForEach(func(_, v gjson.Result) bool {
			if v.Type == gjson.String {
				types = append(types, v.Str)
			}
			return true
		})
	}
	kept := types[:0]
	for _, t := range types {
		if t == "null" && len(types) > 1 {
			nullable = true
			continue
		}
		if _, ok := geminiTypes[t]; ok {
			kept = append(kept, t)
		}
	}
	types = kept

	// anyOf and oneOf: null branches become nullable; a single branch
	// left is inlined (Pydantic's Optional[X] is anyOf [X, null]).
	var branches []gjson.Result
	for _, key := range []string{"anyOf", "oneOf"} {
		each(schemaMember(ms, key), func(_, b gjson.Result) bool {
			if isNullSchema(b) {
				nullable = true
			} else {
				branches = append(branches, b)
			}
			return true
		})
	}
	if len(branches) == 1 && len(types) == 0 {
		inner := schemaOverlay(schemaMembers(branches[0]), schemaWithout(ms, "anyOf", "oneOf", "nullable"))
		if nullable {
			inner = append(schemaWithout(inner, "nullable"), member{"nullable", schemaTrue})
		}
		return c.conv(inner, depth+1)
	}

	var o schemaObject
	enum, constNote := schemaEnum(ms, &nullable)
	typ := ""
	switch {
	case len(types) == 1:
		typ = geminiTypes[types[0]]
	case len(types) > 1:
		// ["string","integer"]: one branch per type.
		if len(branches) == 0 {
			for _, t := range types {
				branches = append(branches, gjson.Parse(`{"type":"`+t+`"}`))
			}
		}
	case schemaMember(ms, "properties").IsObject():
		typ = "OBJECT"
	case schemaMember(ms, "items").Exists():
		typ = "ARRAY"
	case len(enum) > 0:
		typ = "STRING"
	}
	if len(enum) > 0 && typ != "" && typ != "STRING" {
		// Gemini's enums are strings only: the values go to the
		// description instead, so the model still sees them.
		constNote = schemaNote(constNote, "Allowed values: "+strings.Join(enum, ", ")+".")
		enum = nil
	}
	if typ != "" {
		o.str("type", typ)
	}
	if nullable {
		o.raw("nullable", "true")
	}
	if len(branches) > 0 {
		arr := []byte{'['}
		for i, b := range branches {
			out, err := c.conv(schemaMembers(b), depth+1)
			if err != nil {
				return nil, err
			}
			if i > 0 {
				arr = append(arr, ',')
			}
			arr = append(arr, out...)
		}
		o.raw("anyOf", string(append(arr, ']')))
	}
	if t := schemaMember(ms, "title"); t.Type == gjson.String {
		o.str("title", t.Str)
	}
	desc := schemaMember(ms, "description").Str
	if constNote != "" {
		desc = schemaNote(desc, constNote)
	}
	if desc != "" {
		o.str("description", desc)
	}
	if f := schemaMember(ms, "format"); f.Type == gjson.String {
		for _, ok := range geminiFormats[typ] {
			if f.Str == ok {
				o.str("format", f.Str)
			}
		}
	}
	if len(enum) > 0 {
		arr := []byte{'['}
		for i, e := range enum {
			if i > 0 {
				arr = append(arr, ',')
			}
			arr = AppendJSONString(arr, e)
		}
		o.raw("enum", string(append(arr, ']')))
	}
	if props := schemaMember(ms, "properties"); props.IsObject() {
		var p schemaObject
		var names []string
		var err error
		seen := map[string]bool{}
		props.ForEach(func(k, v gjson.Result) bool {
			if seen[k.Str] {
				return true // a repeated key: the first wins, as everywhere
			}
			seen[k.Str] = true
			var out []byte
			if out, err = c.conv(schemaMembers(v), depth+1); err != nil {
				return false
			}
			p.raw(k.Str, string(out))
			names = append(names, k.Str)
			return true
		})
		if err != nil {
			return nil, err
		}
		if len(names) > 0 {
			o.raw("properties", p.String())
			if c.order && len(names) > 1 {
				o.raw("propertyOrdering", schemaStrings(names))
			}
		}
		var req []string
		each(schemaMember(ms, "required"), func(_, r gjson.Result) bool {
			for _, n := range names {
				if r.Type == gjson.String && r.Str == n {
					req = append(req, n)
					break
				}
			}
			return true
		})
		if len(req) > 0 {
			o.raw("required", schemaStrings(req))
		}
	}
	if typ == "ARRAY" {
		items := schemaMember(ms, "items")
		if items.IsArray() { // draft-04 tuple form: the first item's schema
			items = items.Get("0")
		}
		if !items.Exists() {
			items = schemaMember(ms, "prefixItems").Get("0")
		}
		if items.Exists() {
			out, err := c.conv(schemaMembers(items), depth+1)
			if err != nil {
				return nil, err
			}
			o.raw("items", string(out))
		} else {
			// Gemini rejects an ARRAY without items ("items: missing
			// field"); a list of strings is the loosest it accepts.
			o.raw("items", `{"type":"STRING"}`)
		}
	}
	for _, k := range []string{"minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties"} {
		if v := schemaMember(ms, k); v.Type == gjson.Number && v.Int() >= 0 {
			o.raw(k, strconv.FormatInt(v.Int(), 10))
		}
	}
	for _, k := range [][2]string{{"minimum", "exclusiveMinimum"}, {"maximum", "exclusiveMaximum"}} {
		v := schemaMember(ms, k[0])
		if v.Type != gjson.Number {
			v = schemaMember(ms, k[1]) // draft 6+: a number; the bound is close enough
		}
		if v.Type == gjson.Number {
			o.raw(k[0], v.Raw)
		}
	}
	if p := schemaMember(ms, "pattern"); p.Type == gjson.String {
		o.str("pattern", p.Str)
	}
	if d := schemaMember(ms, "default"); d.Type == gjson.String || d.Type == gjson.Number || d.Type == gjson.True || d.Type == gjson.False {
		// Gemini takes scalar defaults; null and composite ones it
		// cannot check against the type are dropped.
		o.raw("default", d.Raw)
	}
	if ex := schemaMember(ms, "example"); ex.Exists() {
		o.raw("example", ex.Raw)
	} else if exs := schemaMember(ms, "examples"); exs.IsArray() {
		if first := exs.Get("0"); first.Exists() {
			o.raw("example", first.Raw)
		}
	}
	return o.Bytes(), nil
}

// mergeAllOf folds allOf into one schema: properties and required are
// united, other keywords taken from the first schema that has them.
func (c *schemaConv) mergeAllOf(base []member, all gjson.Result, depth int) ([]member, error) {
	// Every sub-schema merged counts against the same budget as those
	// converted, so that allOf over shared $refs cannot expand without
	// bound.
	c.nodes++
	if depth > maxSchemaDepth || c.nodes > maxSchemaNodes {
		return nil, errSchemaSize
	}
	var props schemaObject
	var required []string
	seen := map[string]bool{}
	var others []member
	have := map[string]bool{} // keys in others
	addSchema := func(ms []member) {
		for _, m := range ms {
			switch m.key {
			case "properties":
				m.val.ForEach(func(k, v gjson.Result) bool {
					if !seen[k.Str] {
						seen[k.Str] = true
						props.raw(k.Str, v.Raw)
					}
					return true
				})
			case "required":
				each(m.val, func(_, r gjson.Result) bool { required = append(required, r.Str); return true })
			default:
				if !have[m.key] {
					have[m.key] = true
					others = append(others, m)
				}
			}
		}
	}
	addSchema(base)
	var err error
	all.ForEach(func(_, sub gjson.Result) bool {
		if c.nodes++; c.nodes > maxSchemaNodes {
			err = errSchemaSize
			return false
		}
		ms := schemaMembers(sub)
		// Resolve a sub-schema that is a reference, so its members
		// merge (a cycle leaves the reference out).
		for hops := 0; ; hops++ {
			ref := schemaMember(ms, "$ref")
			if ref.Type != gjson.String {
				break
			}
			if hops > maxSchemaDepth || c.visiting[ref.Str] {
				ms = schemaWithout(ms, "$ref")
				break
			}
			target, ok := c.resolve(ref.Str)
			if !ok {
				ms = schemaWithout(ms, "$ref")
				break
			}
			if c.nodes += 1 + len(target.Raw)/64; c.nodes > maxSchemaNodes {
				err = errSchemaSize
				return false
			}
			ms = schemaOverlay(schemaMembers(target), schemaWithout(ms, "$ref"))
		}
		if nested := schemaMember(ms, "allOf"); nested.IsArray() {
			if depth > maxSchemaDepth {
				err = errSchemaSize
				return false
			}
			ms, err = c.mergeAllOf(schemaWithout(ms, "allOf"), nested, depth+1)
			if err != nil {
				return false
			}
		}
		addSchema(ms)
		return true
	})
	if err != nil {
		return nil, err
	}
	if len(seen) > 0 {
		others = append(others, member{"properties", gjson.Parse(props.String())})
	}
	if len(required) > 0 {
		others = append(others, member{"required", gjson.Parse(schemaStrings(required))})
	}
	return others, nil
}

// isNullSchema reports whether a schema allows only null.
func isNullSchema(v gjson.Result) bool {
	t := v.Get("type")
	return v.IsObject() && t.Type == gjson.String && t.Str == "null"
}

// schemaEnum reads enum and const as Gemini enum strings. Non-string
// values are kept as their JSON text; a null value makes the schema
// nullable. note describes a const Gemini cannot say as an enum.
func schemaEnum(ms []member, nullable *bool) (enum []string, note string) {
	add := func(v gjson.Result) {
		switch v.Type {
		case gjson.Null:
			*nullable = true
		case gjson.String:
			enum = append(enum, v.Str)
		default:
			enum = append(enum, v.Raw)
		}
	}
	each(schemaMember(ms, "enum"), func(_, v gjson.Result) bool { add(v); return true })
	if c := schemaMember(ms, "const"); c.Exists() {
		if c.Type == gjson.String || c.Type == gjson.Null {
			add(c)
		} else {
			note = "Must be " + c.Raw + "."
		}
	}
	return enum, note
}

func schemaNote(s, note string) string {
	if s == "" {
		return note
	}
	return s + " " + note
}

func schemaStrings(ss []string) string {
	b := []byte{'['}
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendJSONString(b, s)
	}
	return string(append(b, ']'))
}

// schemaObject builds a JSON object with its members in insertion order.
type schemaObject struct{ b []byte }

func (o *schemaObject) raw(k, v string) {
	if len(o.b) == 0 {
		o.b = append(o.b, '{')
	} else {
		o.b = append(o.b, ',')
	}
	o.b = AppendJSONString(o.b, k)
	o.b = append(o.b, ':')
	o.b = append(o.b, v...)
}

func (o *schemaObject) str(k, v string) { o.raw(k, string(AppendJSONString(nil, v))) }

// Bytes returns the object ("{}" when empty).
func (o *schemaObject) Bytes() []byte {
	if len(o.b) == 0 {
		return []byte("{}")
	}
	return append(o.b, '}')
}

func (o *schemaObject) String() string { return string(o.Bytes()) }

// Gemini's schema member names in proto (snake_case) spelling, which
// the REST API accepts as well as camelCase.
var geminiSchemaSnake = map[string]string{"any_of": "anyOf", "max_items": "maxItems", "min_items": "minItems",
	"max_length": "maxLength", "min_length": "minLength", "max_properties": "maxProperties",
	"min_properties": "minProperties", "property_ordering": "propertyOrdering"}

// jsonSchemaFromGemini turns a Gemini Schema (a function's parameters, a
// responseSchema) into JSON Schema: lower-case types, nullable as a type
// array, example as examples, properties in propertyOrdering's order.
// Members it does not know are kept as they are.
func jsonSchemaFromGemini(v gjson.Result) string {
	return string(fromGeminiSchema(v, 0))
}

func fromGeminiSchema(v gjson.Result, depth int) []byte {
	if !v.IsObject() || depth > maxSchemaDepth {
		return []byte("{}")
	}
	var ms []member
	v.ForEach(func(k, val gjson.Result) bool {
		key := k.Str
		if camel, ok := geminiSchemaSnake[key]; ok {
			key = camel
		}
		ms = append(ms, member{key, val})
		return true
	})
	nullable := schemaMember(ms, "nullable").Type == gjson.True
	var o schemaObject
	seen := map[string]bool{}
	for _, m := range ms {
		if seen[m.key] {
			continue // a repeated key: the first wins, as everywhere
		}
		seen[m.key] = true
		switch m.key {
		case "nullable", "propertyOrdering":
		case "type":
			t := strings.ToLower(m.val.Str)
			switch {
			case m.val.Type != gjson.String || t == "type_unspecified" || t == "":
			case nullable && t != "null":
				o.raw("type", string(append(AppendJSONString([]byte{'['}, t), `,"null"]`...)))
			default:
				o.str("type", t)
			}
		case "anyOf":
			arr := []byte{'['}
			n := 0
			each(m.val, func(_, b gjson.Result) bool {
				if n > 0 {
					arr = append(arr, ',')
				}
				arr = append(arr, fromGeminiSchema(b, depth+1)...)
				n++
				return true
			})
			o.raw("anyOf", string(append(arr, ']')))
		case "items":
			o.raw("items", string(fromGeminiSchema(m.val, depth+1)))
		case "properties":
			if !m.val.IsObject() {
				continue
			}
			var p schemaObject
			done := map[string]bool{}
			// Index the properties once: looking each ordered name up in
			// them would be quadratic in a hostile schema.
			byName := map[string]gjson.Result{}
			m.val.ForEach(func(k, v gjson.Result) bool {
				if _, dup := byName[k.Str]; !dup {
					byName[k.Str] = v
				}
				return true
			})
			each(schemaMember(ms, "propertyOrdering"), func(_, name gjson.Result) bool {
				if pv, ok := byName[name.Str]; ok && !done[name.Str] {
					done[name.Str] = true
					p.raw(name.Str, string(fromGeminiSchema(pv, depth+1)))
				}
				return true
			})
			m.val.ForEach(func(k, pv gjson.Result) bool {
				if !done[k.Str] {
					done[k.Str] = true
					p.raw(k.Str, string(fromGeminiSchema(pv, depth+1)))
				}
				return true
			})
			o.raw("properties", p.String())
		case "example":
			o.raw("examples", "["+m.val.Raw+"]")
		default:
			o.raw(m.key, m.val.Raw)
		}
	}
	return o.Bytes()
}

// schemaObjMember returns the member of object v named key (no gjson path
// syntax: property names may hold dots or wildcards).
func schemaObjMember(v gjson.Result, key string) gjson.Result {
	var out gjson.Result
	v.ForEach(func(k, val gjson.Result) bool {
		if k.Str == key {
			out = val
			return false
		}
		return true
	})
	return out
}
