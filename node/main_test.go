package node

import (
	"os"
	"testing"

	"github.com/intermesh/intermesh/internal/faultfs"
)

// TestMain makes this test binary the server of a faultfs mount when it was
// started for one.
func TestMain(m *testing.M) {
	faultfs.ServeIfAsked()
	os.Exit(m.Run())
}
