package config

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// JSONValue is a free-form YAML value (a JSON Schema, a response body) kept as the JSON it
// stands for. YAML is a superset of JSON, so a value may be written in either syntax; mapping
// keys keep their file order.
type JSONValue struct {
	// JSON is the value's JSON text; nil when the key is absent or null.
	JSON []byte `yaml:"-"`
}

// IsSet reports whether the file gave a value.
func (v JSONValue) IsSet() bool { return v.JSON != nil }

// String returns the value when it is a JSON string.
func (v JSONValue) String() (string, bool) {
	var s string
	if len(v.JSON) == 0 || v.JSON[0] != '"' || json.Unmarshal(v.JSON, &s) != nil {
		return "", false
	}
	return s, true
}

var jsonValueType = reflect.TypeFor[JSONValue]()

// decodeJSONValue converts n to JSON. Tags decide the type, as YAML says: 1 is a number, "1" a
// string. Values JSON cannot hold (.inf, .nan, binary) are errors at their own position.
func (d *decoder) decodeJSONValue(n *yaml.Node, v reflect.Value, path string) {
	var b bytes.Buffer
	if d.writeJSON(&b, n, path) {
		v.Set(reflect.ValueOf(JSONValue{JSON: b.Bytes()}))
	}
}

func (d *decoder) writeJSON(b *bytes.Buffer, n *yaml.Node, path string) bool {
	if d.budget--; d.budget < 0 {
		return false
	}
	n, held, ok := d.resolve(n, path)
	if !ok {
		return false
	}
	defer d.done(held)
	switch n.Kind {
	case yaml.MappingNode:
		b.WriteByte('{')
		for i, kv := range d.mappingPairs(n, path) {
			if i > 0 {
				b.WriteByte(',')
			}
			k, _ := json.Marshal(kv[0].Value)
			b.Write(k)
			b.WriteByte(':')
			if !d.writeJSON(b, kv[1], join(path, kv[0].Value)) {
				return false
			}
		}
		b.WriteByte('}')
		return true
	case yaml.SequenceNode:
		b.WriteByte('[')
		for i, item := range n.Content {
			if i > 0 {
				b.WriteByte(',')
			}
			if !d.writeJSON(b, item, path+"["+strconv.Itoa(i)+"]") {
				return false
			}
		}
		b.WriteByte(']')
		return true
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			b.WriteString("null")
		case "!!bool":
			var x bool
			if n.Decode(&x) != nil {
				d.nodeErr(n, path, "", "expected true or false")
				return false
			}
			b.WriteString(strconv.FormatBool(x))
		case "!!int":
			var x int64
			if n.Decode(&x) != nil {
				d.nodeErr(n, path, "write a smaller number", "number %s is out of range", n.Value)
				return false
			}
			b.WriteString(strconv.FormatInt(x, 10))
		case "!!float":
			var x float64
			if n.Decode(&x) != nil || math.IsInf(x, 0) || math.IsNaN(x) {
				d.nodeErr(n, path, "JSON has no infinity or NaN", "number %s cannot be written in JSON", n.Value)
				return false
			}
			b.WriteString(strconv.FormatFloat(x, 'g', -1, 64))
		case "!!str":
			s, _ := json.Marshal(n.Value)
			b.Write(s)
		default:
			d.nodeErr(n, path, "quote it to make it a string", "%s cannot be written in JSON", describe(n))
			return false
		}
		return true
	}
	d.nodeErr(n, path, "", "unexpected %s", describe(n))
	return false
}
