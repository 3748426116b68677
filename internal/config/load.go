package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// Load reads, defaults and validates the configuration file at path, resolving ${env:NAME} from
// the process environment. A file that fails validation yields Errors, one per problem. Every
// variable the file references must be set; Scope.Load requires only those one process uses.
func Load(path string) (*Config, error) { return Scope{}.Load(path) }

// Load is Load for the components of s: a variable referenced only by what s does not use may be
// unset (see Scope).
func (s Scope) Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	return s.Parse(path, data, os.LookupEnv)
}

// Parse decodes one configuration file held in data, applies the defaults (see applyDefaults) and
// validates the whole tree. filename is used in messages only. lookupEnv resolves ${env:NAME}
// references; nil means no variable is set. Every variable the file references must be set;
// Scope.Parse requires only those one process uses.
//
// On failure Parse returns a nil *Config and an Errors value listing every problem found, in file
// order, each with its line and column; a file is never half-accepted.
func Parse(filename string, data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	return Scope{}.Parse(filename, data, lookupEnv)
}

// Parse is Parse for the components of s. The whole file is still decoded and validated, but an
// unset variable is an error only where s uses its value; elsewhere the value is a marker that
// nothing built for s reads, and the checks of the entry holding it report nothing (see Scope).
func (s Scope) Parse(filename string, data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	if lookupEnv == nil {
		lookupEnv = func(string) (string, bool) { return "", false }
	}
	d := newDecoder(filename, lookupEnv)
	d.deferEnv = !s.whole()
	root, err := parseYAML(filename, data)
	if err != nil {
		return nil, err
	}
	cfg := &Config{File: filename}
	if root != nil {
		d.budget = 10*countNodes(root) + 10_000
		if root.Kind != yaml.MappingNode && !isNull(root) {
			d.nodeErr(root, "", "a configuration file is a mapping of keys such as version, gateways and load_balancers", "expected a mapping, got %s", describe(root))
		} else {
			d.decode(root, reflect.ValueOf(cfg).Elem(), "")
		}
	}
	// A document cut short by the alias budget is not checked further: its truncated tree would
	// only produce noise.
	if !d.exhausted {
		applyDefaults(cfg, d)
		c := &checker{decoder: d, cfg: cfg}
		if len(d.deferred) > 0 {
			c.skip = s.settle(cfg, d)
		}
		c.check()
	} else {
		for _, u := range d.deferred {
			d.errs = append(d.errs, u.err)
		}
	}
	if len(d.errs) > 0 {
		d.errs.sortByPosition()
		return nil, d.errs
	}
	return cfg, nil
}

// parseYAML returns the root node of the single document in data, or nil for an empty file.
func parseYAML(filename string, data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, Errors{syntaxError(filename, err)}
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, Errors{{File: filename, Line: extra.Line, Col: extra.Column, Msg: "a second YAML document", Hint: "a configuration file holds one document; remove the --- separator"}}
	case !errors.Is(err, io.EOF):
		return nil, Errors{syntaxError(filename, err)}
	}
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			return nil, nil
		}
		return doc.Content[0], nil
	}
	return &doc, nil
}

var yamlLineErr = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError turns the YAML parser's error text into an Error with the line it names.
func syntaxError(filename string, err error) *Error {
	msg := err.Error()
	e := &Error{File: filename, Msg: msg}
	if m := yamlLineErr.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Msg = m[2]
	} else if len(msg) > 6 && msg[:6] == "yaml: " {
		e.Msg = msg[6:]
	}
	e.Msg = "invalid YAML: " + e.Msg
	return e
}

// countNodes counts the nodes of a tree without following aliases.
func countNodes(n *yaml.Node) int {
	c := 1
	for _, ch := range n.Content {
		c += countNodes(ch)
	}
	return c
}
