package config

// The admin API shows the running config (GET /config); these make it read as the file does:
// a header template as written (its ${secret:…} references, never a key) and a duration as "5s".

// MarshalYAML returns the template as written in the file.
func (t Template) MarshalYAML() (any, error) { return t.Raw, nil }

// MarshalYAML returns the duration in Go syntax, such as "1m30s".
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }
