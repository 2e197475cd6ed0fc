// Command meshctl is the intermesh client and auditor: it drives a portal's
// transactions and verifies a federation's logs offline.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "meshctl: not implemented yet")
	os.Exit(2)
}
