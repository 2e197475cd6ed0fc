package loadgen_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/loadgen"
)

// A load run against every member of a running federation, then the proof
// that no acknowledged write was lost: served, replicated and certified.
func Example() {
	ctx := context.Background()
	fed, err := config.LoadFederation("federation.toml")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	var portals []string
	for _, m := range fed.Members {
		portals = append(portals, m.HTTP)
	}
	acks := "acks.jsonl" // appended to: give every federation its own file
	rep, err := loadgen.Run(ctx, loadgen.Config{
		Portals:     portals,
		Rate:        100, // updates per second, open loop
		Duration:    30 * time.Second,
		Accounts:    100,
		Concurrency: 256,
		Timeout:     10 * time.Second,
		Acks:        acks,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	rep.WriteText(os.Stdout) // or json.Marshal(rep), as 'meshctl load --json'

	ver, err := loadgen.Verify(ctx, loadgen.VerifyConfig{Federation: fed, Acks: acks, Wait: 2 * time.Minute})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	ver.WriteText(os.Stdout)
	if !ver.OK {
		os.Exit(1)
	}
}
