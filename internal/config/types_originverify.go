package config

// ReplayStoreMemory is the default replay_store of a signed origin_verify statement: each process
// remembers the nonces it accepted. With several load balancers, write a redis:// URL instead so
// that a token accepted by one is refused by every other.
const ReplayStoreMemory = "memory"

// MTLSStatement matches a request that arrived over TLS with a client certificate that the
// listener verified (its tls.client_ca_file) and, when Subjects is set, whose subject is listed,
// written as the listener's client_subjects are: RFC 2253, such as "CN=rampart-gateway,O=Rampart".
// Without Subjects any verified client certificate matches.
type MTLSStatement struct {
	Subjects []string `yaml:"subjects"`
}
