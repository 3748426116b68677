package config

import (
	"fmt"
	"net/textproto"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/net/http/httpguts"
)

// position is a 1-based line and column in the file.
type position struct{ line, col int }

func posOf(n *yaml.Node) position { return position{n.Line, n.Column} }

// decoder turns a yaml.Node tree into the schema structs, reading the `yaml` struct tags. It
// differs from yaml.Node.Decode in what it tells the user: every error carries a position, an
// unknown key gets a did-you-mean hint, and decoding goes on after an error so that one run
// reports everything. It also records where each key was written, for the checks that run after.
type decoder struct {
	file      string
	lookupEnv func(string) (string, bool)
	errs      Errors

	// pos maps a path (gateways[0].cors.mode) to the position of its value; a path is present
	// only when the file sets it to something other than null. keyPos maps it to the key.
	pos    map[string]position
	keyPos map[string]position
	// bad holds paths whose value could not be decoded, or keys that look like misspellings of
	// them, so that later checks do not pile a second error on the same mistake.
	bad map[string]bool

	// budget bounds the nodes visited, so that aliases of aliases cannot make a small file
	// expand into an enormous tree. expanding holds the anchors being expanded, to refuse cycles.
	budget    int
	exhausted bool
	expanding map[*yaml.Node]bool

	// deferEnv is set when loading for a narrower Scope: an unset ${env:NAME} is then recorded in
	// deferred, and is an error only if the scope uses the value (Scope.Parse decides).
	deferEnv bool
	deferred []deferredEnv
}

func newDecoder(file string, lookupEnv func(string) (string, bool)) *decoder {
	return &decoder{
		file:      file,
		lookupEnv: lookupEnv,
		pos:       map[string]position{},
		keyPos:    map[string]position{},
		bad:       map[string]bool{},
		expanding: map[*yaml.Node]bool{},
	}
}

// errAt records an error at an explicit position.
func (d *decoder) errAt(p position, path, hint, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: p.line, Col: p.col, Path: path, Msg: fmt.Sprintf(format, args...), Hint: hint})
}

// nodeErr records an error at n and marks path as bad.
func (d *decoder) nodeErr(n *yaml.Node, path, hint, format string, args ...any) {
	d.bad[path] = true
	d.errAt(posOf(n), path, hint, format, args...)
}

var (
	durationType      = reflect.TypeFor[Duration]()
	headerMappingType = reflect.TypeFor[[]HeaderMapping]()
)

// resolve follows aliases to the node they name. It reports false (after recording an error) for
// a cycle. The caller must call done with the returned anchors when it has finished with the node.
func (d *decoder) resolve(n *yaml.Node, path string) (*yaml.Node, []*yaml.Node, bool) {
	var held []*yaml.Node
	for n.Kind == yaml.AliasNode {
		if n.Alias == nil || d.expanding[n.Alias] {
			d.nodeErr(n, path, "an anchor cannot contain an alias of itself", "alias *%s refers to itself", n.Value)
			d.done(held)
			return nil, nil, false
		}
		d.expanding[n.Alias] = true
		held = append(held, n.Alias)
		n = n.Alias
	}
	return n, held, true
}

func (d *decoder) done(held []*yaml.Node) {
	for _, a := range held {
		delete(d.expanding, a)
	}
}

// decode stores n into v, whose path in the tree is path.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if d.budget--; d.budget < 0 {
		if !d.exhausted {
			d.exhausted = true
			d.nodeErr(n, path, "use fewer nested aliases", "the document expands to too many values through aliases")
		}
		return
	}
	at := n
	n, held, ok := d.resolve(n, path)
	if !ok {
		return
	}
	defer d.done(held)
	if isNull(n) {
		// Null leaves the zero value, the same as leaving the key out.
		return
	}
	d.pos[path] = posOf(at)

	switch v.Type() {
	case durationType:
		d.decodeDuration(n, v, path)
		return
	case headerMappingType:
		d.decodeHeaders(n, v, path)
		return
	case jsonValueType:
		d.decodeJSONValue(n, v, path) // decode_json.go
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		d.decodeInto(n, p.Elem(), path)
		v.Set(p)
	default:
		d.decodeInto(n, v, path)
	}
}

// decodeInto decodes a resolved, non-null node into a non-pointer value.
func (d *decoder) decodeInto(n *yaml.Node, v reflect.Value, path string) {
	switch v.Kind() {
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		d.decodeSlice(n, v, path)
	case reflect.Map:
		d.decodeMap(n, v, path)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.nodeErr(n, path, "", "expected a string, got %s", describe(n))
			return
		}
		s, _ := d.expandEnv(n, path, false)
		v.SetString(s)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!float" {
			d.nodeErr(n, path, "", "expected a whole number, got %s", n.Value)
			return
		}
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
			d.nodeErr(n, path, "", "expected a whole number, got %s", describe(n))
			return
		}
		// Decoding into a fresh value of the field's own type checks its range and sign.
		p := reflect.New(v.Type())
		if err := n.Decode(p.Interface()); err != nil {
			d.nodeErr(n, path, "", "number %s is out of range", n.Value)
			return
		}
		v.Set(p.Elem())
	case reflect.Float32, reflect.Float64:
		if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!float" && n.ShortTag() != "!!int") {
			d.nodeErr(n, path, "", "expected a number, got %s", describe(n))
			return
		}
		p := reflect.New(v.Type())
		if err := n.Decode(p.Interface()); err != nil {
			d.nodeErr(n, path, "", "number %s is out of range", n.Value)
			return
		}
		v.Set(p.Elem())
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			d.nodeErr(n, path, "", "expected true or false, got %s", describe(n))
			return
		}
		var b bool
		if err := n.Decode(&b); err != nil {
			d.nodeErr(n, path, "", "expected true or false, got %s", describe(n))
			return
		}
		v.SetBool(b)
	default:
		// Only reachable if a field of an unsupported kind is added to types.go;
		// TestDecoderSupportsSchema catches that before it ships.
		panic(fmt.Sprintf("config: decoder does not support %s (at %s)", v.Type(), path))
	}
}

// fieldsOf lists the yaml keys of a struct type, in declaration order, with their field index.
func fieldsOf(t reflect.Type) (names []string, index map[string]int) {
	index = map[string]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		names = append(names, tag)
		index[tag] = i
	}
	return names, index
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// mappingPairs returns the key/value pairs of a mapping node, with YAML merge keys (<<: *anchor)
// expanded first so that keys written in the mapping itself win, as YAML specifies. Duplicate
// keys are reported here.
func (d *decoder) mappingPairs(n *yaml.Node, path string) [][2]*yaml.Node {
	var merged, own [][2]*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merged = append(merged, d.mergePairs(val, path)...)
			continue
		}
		own = append(own, [2]*yaml.Node{k, val})
	}
	seen := map[string]*yaml.Node{}
	var out [][2]*yaml.Node
	for _, kv := range own {
		k := kv[0]
		if k.Kind != yaml.ScalarNode {
			d.nodeErr(k, path, "", "a key must be a plain string, got %s", describe(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.nodeErr(k, join(path, k.Value), "", "duplicate key (first set at line %d)", first.Line)
			continue
		}
		seen[k.Value] = k
		out = append(out, kv)
	}
	var fromMerge [][2]*yaml.Node
	for _, kv := range merged {
		if _, ok := seen[kv[0].Value]; ok || kv[0].Kind != yaml.ScalarNode {
			continue
		}
		seen[kv[0].Value] = kv[0]
		fromMerge = append(fromMerge, kv)
	}
	return append(fromMerge, out...)
}

// mergePairs returns the pairs a merge value contributes: one mapping or a list of mappings.
func (d *decoder) mergePairs(val *yaml.Node, path string) [][2]*yaml.Node {
	if d.budget--; d.budget < 0 {
		return nil
	}
	val, held, ok := d.resolve(val, path)
	if !ok {
		return nil
	}
	defer d.done(held)
	switch val.Kind {
	case yaml.MappingNode:
		return d.mappingPairs(val, path)
	case yaml.SequenceNode:
		var out [][2]*yaml.Node
		// Earlier mappings in the list win over later ones.
		seen := map[string]bool{}
		for _, m := range val.Content {
			for _, kv := range d.mergePairs(m, path) {
				if !seen[kv[0].Value] {
					seen[kv[0].Value] = true
					out = append(out, kv)
				}
			}
		}
		return out
	default:
		d.nodeErr(val, path, "merge an anchored mapping: <<: *name", "<< expects a mapping or a list of mappings, got %s", describe(val))
		return nil
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.nodeErr(n, path, "", "expected a mapping, got %s", describe(n))
		return
	}
	names, index := fieldsOf(v.Type())
	for _, kv := range d.mappingPairs(n, path) {
		k, val := kv[0], kv[1]
		child := join(path, k.Value)
		i, ok := index[k.Value]
		if !ok && path == "" && strings.HasPrefix(k.Value, "x-") {
			// Top-level x- keys are extensions: a place to define anchors, ignored otherwise.
			continue
		}
		if !ok {
			hint := didYouMean(k.Value, names, "valid keys")
			if c, ok := closest(k.Value, names); ok {
				// The intended key is missing; one error about the typo is enough.
				d.bad[join(path, c)] = true
			}
			d.nodeErr(k, child, hint, "unknown key")
			continue
		}
		d.keyPos[child] = posOf(k)
		d.decode(val, v.Field(i), child)
	}
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		hint := ""
		if n.Kind == yaml.ScalarNode && v.Type().Elem().Kind() == reflect.String {
			hint = fmt.Sprintf("write a list, even of one: [%s]", n.Value)
		}
		d.nodeErr(n, path, hint, "expected a list, got %s", describe(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
	}
	v.Set(s)
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.nodeErr(n, path, "", "expected a mapping, got %s", describe(n))
		return
	}
	m := reflect.MakeMap(v.Type())
	for _, kv := range d.mappingPairs(n, path) {
		k, val := kv[0], kv[1]
		key := k.Value
		child := join(path, key)
		if strings.Contains(key, "${env:") {
			// A key may be an address (a target group's weights are keyed by target), which a
			// file shared by many hosts takes from the environment like the targets themselves.
			var ok bool
			if key, ok = d.expandEnv(k, child, true); !ok {
				// Checks of what is under the key name it by its expanded form.
				d.bad[join(path, key)] = true
			}
			child = join(path, key)
		}
		d.keyPos[child] = posOf(k)
		e := reflect.New(v.Type().Elem()).Elem()
		d.decode(val, e, child)
		m.SetMapIndex(reflect.ValueOf(key), e)
	}
	v.Set(m)
}

// decodeDuration reads a Go duration string. Zero is allowed (it means "unset" for most keys);
// negative durations are not.
func (d *decoder) decodeDuration(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		d.nodeErr(n, path, "", "expected a duration such as 5s, got %s", describe(n))
		return
	}
	s, ok := d.expandEnv(n, path, false)
	if !ok {
		return
	}
	dur, err := time.ParseDuration(s)
	if err != nil {
		d.nodeErr(n, path, "", "bad duration %q: write a number with a unit, such as 5s, 250ms or 10m", s)
		return
	}
	if dur < 0 {
		d.nodeErr(n, path, "", "bad duration %q: must not be negative", s)
		return
	}
	v.Set(reflect.ValueOf(Duration{dur}))
}

// decodeHeaders reads request_headers, a mapping of header name to template, keeping file order.
func (d *decoder) decodeHeaders(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.nodeErr(n, path, "write one `Header-Name: value` per line", "expected a mapping of header names to values, got %s", describe(n))
		return
	}
	var out []HeaderMapping
	seen := map[string]*yaml.Node{}
	for _, kv := range d.mappingPairs(n, path) {
		k, val := kv[0], kv[1]
		child := join(path, k.Value)
		d.keyPos[child] = posOf(k)
		if !isToken(k.Value) {
			d.nodeErr(k, child, "a header name is letters, digits and !#$%&'*+-.^_`|~", "invalid header name")
			continue
		}
		canon := textproto.CanonicalMIMEHeaderKey(k.Value)
		if first, dup := seen[canon]; dup {
			d.nodeErr(k, child, "header names are case-insensitive", "header %s is already mapped at line %d", canon, first.Line)
			continue
		}
		seen[canon] = k
		rv, held, ok := d.resolve(val, child)
		if !ok {
			continue
		}
		d.done(held)
		if rv.Kind != yaml.ScalarNode || isNull(rv) {
			d.nodeErr(val, child, "quote the value: \"${secret:NAME}\"", "expected a header value, got %s", describe(rv))
			continue
		}
		d.pos[child] = posOf(val)
		lookup, unset := d.lookupEnv, ""
		if d.deferEnv {
			lookup = func(name string) (string, bool) {
				v, ok := d.lookupEnv(name)
				if !ok && unset == "" {
					unset = name
				}
				return v, true // go on parsing: other mistakes are reported whatever the scope
			}
		}
		t, err := ParseTemplate(rv.Value, lookup)
		if unset != "" {
			// The same message as ParseTemplate's, should the scope use this header: the variable
			// comes before any other mistake of the value, which is what the whole file reports.
			d.deferEnvErr(val, child, false, "", "environment variable %s is not set (referenced as ${env:%s})", unset, unset)
			if err != nil {
				// A scope that does not use the header still gets the mistake, which is no
				// stand-in's: a syntax error is reported whatever the scope.
				u := &d.deferred[len(d.deferred)-1]
				u.otherwise = &Error{File: d.file, Line: val.Line, Col: val.Column, Path: child, Msg: err.Error()}
			}
			continue
		}
		if err != nil {
			d.nodeErr(val, child, "", "%s", err)
			continue
		}
		if msg, hint := checkHeaderTemplate(t); msg != "" {
			d.nodeErr(val, child, hint, "%s", msg)
			continue
		}
		out = append(out, HeaderMapping{Name: canon, Value: t})
	}
	v.Set(reflect.ValueOf(out))
}

// expandEnv replaces each ${env:NAME} in a scalar with the variable's value. Other ${…} text is
// left as written (a WAF search string may well contain "${jndi:"), except ${secret:…}, which is
// refused because it only means something in request_headers and would otherwise be sent literally.
// key says that n is a mapping key. It reports false when the value could not be expanded: after
// an error, or, when d.deferEnv is set and a variable is unset, with unsetMarker in its place.
func (d *decoder) expandEnv(n *yaml.Node, path string, key bool) (string, bool) {
	s := n.Value
	if !strings.Contains(s, "${") {
		return s, true
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		rest := s[i:]
		switch {
		case strings.HasPrefix(rest, "${env:"):
			end := strings.IndexByte(rest, '}')
			if end < 0 {
				d.nodeErr(n, path, "close it with }", "unterminated reference %q", rest)
				return "", false
			}
			name := rest[len("${env:"):end]
			val, ok := d.lookupEnv(name)
			if name == "" || !ok {
				const hint, format = "set it, or remove the reference", "environment variable %q is not set (referenced as ${env:%s})"
				if d.deferEnv && name != "" {
					// The whole value, not what precedes the variable: no half-expanded value.
					d.deferEnvErr(n, path, key, hint, format, name, name)
					return unsetMarker(name), false
				}
				d.nodeErr(n, path, hint, format, name, name)
				return "", false
			}
			b.WriteString(val)
			s = rest[end+1:]
		case strings.HasPrefix(rest, "${secret:"):
			d.nodeErr(n, path, "secrets can only be referenced in request_headers", "${secret:…} is not expanded here")
			return "", false
		default:
			b.WriteString("${")
			s = rest[2:]
		}
	}
	return b.String(), true
}

// deferEnvErr records an unset variable at n for Scope.Parse to report if the scope uses path,
// and marks path bad so that no check reports the value that stands in for it.
func (d *decoder) deferEnvErr(n *yaml.Node, path string, key bool, hint, format string, args ...any) {
	d.bad[path] = true
	d.deferred = append(d.deferred, deferredEnv{path: path, key: key,
		err: &Error{File: d.file, Line: n.Line, Col: n.Column, Path: path, Msg: fmt.Sprintf(format, args...), Hint: hint}})
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names the kind of a node for type errors, without echoing its value.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	switch n.ShortTag() {
	case "!!null":
		return "null"
	case "!!bool":
		return "a boolean"
	case "!!int", "!!float":
		return "a number"
	case "!!str":
		return "a string"
	}
	return "a " + strings.TrimPrefix(n.ShortTag(), "!!") + " value"
}

// isToken reports whether s is an RFC 9110 token (the grammar of header names and methods).
func isToken(s string) bool { return httpguts.ValidHeaderFieldName(s) }

// checkHeaderTemplate rejects what net/http would refuse to send at request time, so that a value
// that passes validation cannot turn every proxied request into a 502: control characters in the
// literal text (including what ${env:…} expanded to) and a ${request.header.NAME} that is not a
// header name.
func checkHeaderTemplate(t Template) (msg, hint string) {
	for _, p := range t.Parts {
		switch p.Kind {
		case RefLiteral:
			for i := 0; i < len(p.Text); i++ {
				if b := p.Text[i]; (b < 0x20 && b != '\t') || b == 0x7f {
					return fmt.Sprintf("header value has control character %#02x at byte %d", b, i),
						"remove control characters such as newlines; net/http refuses to send them, so every request would fail"
				}
			}
		case RefRequestHeader:
			if !isToken(p.Text) {
				return fmt.Sprintf("${request.header.%s} does not name a header", p.Text),
					"a header name is letters, digits and !#$%&'*+-.^_`|~, such as ${request.header.X-Client-Id}"
			}
		}
	}
	return "", ""
}
