package audit_test

import (
	"context"
	"fmt"
	"os"

	"github.com/intermesh/intermesh/audit"
	"github.com/intermesh/intermesh/config"
)

// An auditor needs the federation file and the nodes' public endpoints:
// by default every member's http URL in the file.
func ExampleRun() {
	fed, err := config.LoadFederation("federation.toml")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	rep, err := audit.Run(context.Background(), audit.Config{
		Federation: fed,
		Token:      os.Getenv("MESHD_HTTP_TRANSFER_TOKEN"),
		Cache:      "audit-cache", // a later run fetches only new entries
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err) // nothing could be audited
		return
	}
	rep.WriteText(os.Stdout) // or json.Marshal(rep), as 'meshctl audit --json'
	if !rep.OK {
		os.Exit(1)
	}
}
