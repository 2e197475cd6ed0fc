// Command meshd is the intermesh daemon: a Mesh portal that replicates its
// log with a federation of other portals.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "meshd: not implemented yet")
	os.Exit(2)
}
