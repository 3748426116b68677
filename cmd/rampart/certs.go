package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rampart-edge/rampart/internal/originverify"
)

const certsUsage = `Usage:
  rampart certs init --dir DIR [--gateway-name rampart-gateway] [--lb-hosts 127.0.0.1,::1,localhost]
                     [--validity 8760h] [--force]
      create a private CA and, signed by it, a client certificate for the gateway and a server
      certificate for the load balancer (ECDSA P-256), for mTLS between the two
`

func certsCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "init" {
		fmt.Fprint(stderr, certsUsage)
		return 2
	}
	fs := flag.NewFlagSet("rampart certs init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "directory to write the certificates to")
	name := fs.String("gateway-name", "rampart-gateway", "common name of the gateway's client certificate")
	hosts := fs.String("lb-hosts", "127.0.0.1,::1,localhost", "comma-separated names and addresses of the load balancer")
	validity := fs.Duration("validity", 365*24*time.Hour, "how long the certificates are valid")
	force := fs.Bool("force", false, "overwrite existing files")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if *dir == "" || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "rampart certs init: give the directory with --dir DIR\n\n%s", certsUsage)
		return 2
	}
	var hs []string
	for _, h := range strings.Split(*hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hs = append(hs, h)
		}
	}
	files, err := originverify.WriteCertificates(*dir, originverify.CertOptions{GatewayName: *name, LBHosts: hs, Validity: *validity, Overwrite: *force})
	if err != nil {
		fmt.Fprintf(stderr, "rampart certs init: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, `wrote %s (CA), %s (gateway client), %s (load balancer server) and their keys (mode 0600).
Keep %s offline: it signs certificates and is needed only to make new ones.

On the load balancer listener:
    tls: {cert_file: %s, key_file: %s, client_ca_file: %s, require_client_cert: true}
On each gateway route integration (url: https://…):
    tls: {ca_file: %s, cert_file: %s, key_file: %s}
To admit this gateway only, a web ACL rule can require its certificate:
    statement: {not: {mtls: {subject: "CN=%s,O=%s"}}}
`, files.CA, files.Gateway, files.LB, files.CAKey, files.LB, files.LBKey, files.CA, files.CA, files.Gateway, files.GatewayKey, *name, originverify.Organization)
	return 0
}
