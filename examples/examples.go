// Package examples embeds the example topologies so that `rampart run` with no file starts the
// default one, and tests can check that the embedded default is the file users read.
package examples

import _ "embed"

// Default is examples/rampart.yaml, the topology `rampart run` starts without -c.
//
//go:embed rampart.yaml
var Default []byte
